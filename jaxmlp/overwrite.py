"""What `--overwrite` removes of an earlier run, and how: planned whole and checked before the
first file goes, so a refusal changes nothing.

Only what that kind of run wrote (runfiles.KIND_FILES): checkpoints/ only when it holds nothing
but orbax's checkpoints (orbax would take anything else with a number for a name for one of the
new run's, so another file there is refused, not kept or removed); a sweep's best/ as the train
run directory it is, kept (marker and all) while a file of the user's is in it.

    paths = removal(run_dir, taken)    # RunDirError for what it cannot prove jaxmlp wrote
    check_removable(run_dir, paths)    # RunDirError for what cannot be removed (immutable, read-only)
    remove(run_dir, taken, paths)
"""
from __future__ import annotations

import array
import fcntl
import os
import re
import shutil
from pathlib import Path

from jaxmlp.runfiles import BEST_DIR, CHECKPOINT_DIR, KIND_FILES, MARKER_FILE, only_marker_left, run_kind
from jaxmlp.runlock import LOCK_FILE, RunDirError

_ORBAX_ENTRY = re.compile(r"\d+(\.orbax-checkpoint-tmp.*)?")  # a checkpoint orbax wrote (or began) in checkpoints/
_ORBAX_ITEM = re.compile(r"(_CHECKPOINT_METADATA|commit_success\.txt|state|best|meta)(\.orbax-checkpoint-tmp.*)?")
_FS_IOC_GETFLAGS = 0x80086601
_PINNED = 0x10 | 0x20  # FS_IMMUTABLE_FL, FS_APPEND_FL: what they guard not even root may remove


def removal(run_dir: Path, names) -> list[Path]:
    """Every path --overwrite removes for the `names` of an earlier run in `run_dir` (whole: a
    directory in the list goes with everything in it)."""
    paths = []
    for name in names:
        path = run_dir / name
        if name == CHECKPOINT_DIR:
            foreign = [str(e.relative_to(path)) for e in _entries(path) if not _orbax_wrote(e, e.relative_to(path))]
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise RunDirError(f"{path} holds files jaxmlp did not write ({shown}); move them out before "
                                  "--overwrite")
            paths.append(path)
        elif name == BEST_DIR:
            kind = run_kind(path)
            if kind not in (None, "train"):
                raise RunDirError(f"{path / MARKER_FILE}: a sweep's {BEST_DIR}/ holds a train run, not a {kind}")
            paths += removal(path, [n for n in KIND_FILES["train"] if os.path.lexists(path / n)])
        else:
            paths.append(path)
    return paths


def _entries(path: Path) -> list[Path]:
    """What is in checkpoints/ and in each checkpoint (one level into each)."""
    return [e for top in sorted(path.iterdir()) for e in [top, *(sorted(top.iterdir()) if top.is_dir() else ())]]


def _orbax_wrote(entry: Path, rel: Path) -> bool:
    """True for a checkpoint directory orbax writes in checkpoints/ (`rel` one part), or an item in one."""
    if len(rel.parts) == 1:
        return entry.is_dir() and bool(_ORBAX_ENTRY.fullmatch(rel.name))
    return bool(_ORBAX_ITEM.fullmatch(rel.name))


def check_removable(run_dir: Path, paths: list[Path]) -> None:
    """RunDirError unless every path, and everything inside each, can be removed (its folder
    writable, nothing immutable or append-only)."""
    for path in paths:
        entries = [path] + [Path(p, e) for p, dirs, files in os.walk(path) for e in dirs + files]
        for entry in entries:
            if _pinned(entry) or (entry == path and _pinned(entry.parent)):
                raise RunDirError(f"{entry}: immutable or append-only: cannot remove the earlier run's files")
            if not os.access(entry.parent, os.W_OK | os.X_OK):
                raise RunDirError(f"{entry.parent}: permission denied: cannot remove the earlier run's files")


def remove(run_dir: Path, names, paths: list[Path]) -> None:
    """Remove `paths` (from `removal`), then best/ once only its marker (and lock) is left in it:
    not while a file of the user's is."""
    for path in paths:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    best = run_dir / BEST_DIR
    if BEST_DIR in names and only_marker_left(best):
        for name in (MARKER_FILE, LOCK_FILE):
            (best / name).unlink(missing_ok=True)
        best.rmdir()


def _pinned(path: Path) -> bool:
    """True when `path` is immutable or append-only (chattr +i / +a); False where that cannot be told."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        return bool(flags[0] & _PINNED)
    except OSError:  # a file system without the attributes
        return False
    finally:
        os.close(fd)
