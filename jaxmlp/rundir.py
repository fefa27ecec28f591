"""A run directory: its files, and its life: claimed atomically, held by one run at a time, proven
jaxmlp's before anything in it is replaced, and never left through a link.

    claim = claim_new_run_dir("spiral")                  # runs/spiral-<timestamp>[-k], made with one mkdir
    claim = claim_run_dir(path, config, kind="train")    # an explicit --out-dir, or a run to --resume
    ...                                                  # the run writes config.json, checkpoints, ...
    claim.release()                                      # (or the process ends: the lock goes with it)

What jaxmlp may touch: a new run starts only in a missing or empty directory, or in one that
holds a run of jaxmlp's own, proven by the marker `.jaxmlp-run` it writes when it claims a new
directory (naming the kind of run: train or sweep). `--overwrite` removes only the files that
kind of run writes (`KIND_FILES`), and in `checkpoints/` only what orbax writes; a directory that
is not empty and holds no marker (`/`, a home, a folder of the user's) is refused, and so is any
symbolic link at a name jaxmlp would write or delete, or anywhere inside such a directory: every
check runs before the first file is removed, so a refusal changes nothing. A claim that fails
removes what it made (the lock file, the marker, the directories it created).

A claim holds the run directory's lock (runlock.py) for the run's life.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

from jaxmlp.config import AUTO_FIELDS, TrainConfig
from jaxmlp.runlock import LOCK_FILE, RunDirClaim, RunDirError, check_not_in_use, is_own_lock, link_error

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PREPROCESSING_FILE = "preprocessing.json"
SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.jsonl"
SWEEP_SUMMARY_FILE = "summary.md"
SWEEP_PLOT_FILE = "sweep.png"
BEST_DIR = "best"  # a sweep's best model: a train run directory of its own
MARKER_FILE = ".jaxmlp-run"  # {"kind": "train" | "sweep"}: written by the claim of a new run
# Everything each kind of run writes into its directory, its marker of a run first: --overwrite
# removes these, and nothing else.
KIND_FILES = {
    "train": (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_DIR, "loss_curve.png", "decision_boundary.png",
              "gradient_stats.png", "params.npz", PREPROCESSING_FILE),
    "sweep": (SWEEP_FILE, RESULTS_FILE, SWEEP_SUMMARY_FILE, SUMMARY_FILE, SWEEP_PLOT_FILE, CHECKPOINT_DIR, BEST_DIR),
}
RUN_FILES = KIND_FILES["train"]
_DIRS = (CHECKPOINT_DIR, BEST_DIR)  # the names above that are directories
_ORBAX_ENTRY = re.compile(r"\d+(\.orbax-checkpoint-tmp.*)?")  # what orbax writes in checkpoints/


def run_dir_name(dataset: str) -> str:
    """<dataset tag>-<YYYYmmdd-HHMMSS>, the tag made file-name safe (npz:data/x.npz -> x)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset.partition(":")[2]).stem if ":" in dataset else dataset)
    return f"{tag.strip('-') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_new_run_dir(dataset: str, root: Path | None = None, kind: str = "train") -> RunDirClaim:
    """Make and claim a fresh runs/<dataset>-<timestamp> under `root` (the current directory),
    with a -2, -3, ... suffix when another run made that name first."""
    runs = (root or Path.cwd()) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    base = run_dir_name(dataset)
    for i in range(1, 10_000):
        path = runs / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()  # atomic: exactly one process makes each name
        except FileExistsError:
            continue
        return _claimed(path, [path], lambda claim: _write_marker(claim, kind))
    raise RunDirError(f"{runs}: no free run directory name for {base}")


def has_checkpoint(run_dir: Path) -> bool:
    """True when the run directory holds at least one complete checkpoint (orbax renames a
    checkpoint's directory to its bare epoch number once it is complete)."""
    ckpt = run_dir / CHECKPOINT_DIR
    return ckpt.is_dir() and not ckpt.is_symlink() and any(
        p.name.isdigit() and p.is_dir() for p in ckpt.iterdir())


def run_kind(run_dir: Path) -> str | None:
    """The kind of run the marker of `run_dir` names ("train", "sweep"), or None without a marker."""
    path = run_dir / MARKER_FILE
    if path.is_symlink():
        raise link_error(path)
    try:
        kind = json.loads(path.read_text()).get("kind")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError, RecursionError):
        raise RunDirError(f"{path}: not a jaxmlp run marker (unreadable); remove it or choose another --out-dir") \
            from None
    if kind not in KIND_FILES:
        raise RunDirError(f"{path}: names an unknown kind of run {str(kind)[:40]!r}")
    return kind


def check_new_run_dir(run_dir: Path, config: TrainConfig, *, overwrite: bool = False, claimed: bool = False,
                      kind: str = "train") -> list[str]:
    """The files of an earlier run a new `kind` run in `run_dir` would remove; RunDirError when it
    must not start there. Read-only.

    A missing or empty directory is free. One marked as jaxmlp's holds a run: refused unless
    `overwrite`, or unless it is a train run that never saved a checkpoint, started over by the
    same command (the same config: nothing it wrote can be lost). Anything else is refused.
    """
    if run_dir.is_symlink() and not run_dir.exists():
        raise RunDirError(f"out_dir {run_dir} is a dangling symbolic link")
    if not run_dir.exists():
        return []
    if not run_dir.is_dir():
        raise RunDirError(f"out_dir {run_dir} exists and is not a directory")
    if not claimed:  # (a probe from the claiming process would conflict with its own lock)
        check_not_in_use(run_dir)
    previous = run_kind(run_dir)
    if previous is None:
        foreign = sorted(name for name in os.listdir(run_dir) if not is_own_lock(run_dir / name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise RunDirError(f"run dir {run_dir} is not empty ({shown}) and holds no run of jaxmlp's (no "
                              f"{MARKER_FILE}); a new run starts only in a new or empty directory: choose another "
                              "--out-dir")
        return []
    taken = [name for name in KIND_FILES[previous] if os.path.lexists(run_dir / name)]
    check_no_links(run_dir, taken)
    same = previous == kind == "train" and _same_run_without_checkpoint(run_dir, config)
    if taken and not overwrite and not same:
        what = (f"already holds a {'run' if previous == 'train' else 'sweep'}" if previous == kind else
                f"holds a jaxmlp {previous}, not a {kind}")
        resume = f"pass --resume {run_dir} to continue it or " if previous == kind else ""
        raise RunDirError(f"run dir {run_dir} {what}; {resume}--overwrite to start over")
    return taken


def check_no_links(run_dir: Path, names) -> None:
    """RunDirError when a name of `names` in `run_dir`, or anything inside one that is a directory,
    is a symbolic link, or is a file where jaxmlp writes a directory (or the reverse)."""
    for name in names:
        path = run_dir / name
        if path.is_symlink():
            raise link_error(path)
        if path.exists() and path.is_dir() != (name in _DIRS):
            raise RunDirError(f"{path} is a {'directory' if path.is_dir() else 'file'}, which jaxmlp does not "
                              "write there; move it away or choose another --out-dir")
        for parent, dirs, files in os.walk(path) if name in _DIRS else ():
            for entry in dirs + files:
                if os.path.islink(os.path.join(parent, entry)):
                    raise link_error(Path(parent, entry))


def claim_run_dir(run_dir: Path, config: TrainConfig, *, overwrite: bool = False, resume: bool = False,
                  kind: str = "train") -> RunDirClaim:
    """Claim an explicit run directory for a new `kind` run (made if missing; an earlier run's
    files removed as `check_new_run_dir` allows), or, with `resume`, the run it holds."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"out_dir {run_dir} exists and is not a directory")
    if resume:
        return _claimed(run_dir, [], lambda claim: check_no_links(run_dir, KIND_FILES[kind]))
    check_new_run_dir(run_dir, config, overwrite=overwrite, kind=kind)  # before a directory is made

    def start_over(claim: RunDirClaim) -> None:  # checked again now that no other run can write here
        taken = check_new_run_dir(run_dir, config, overwrite=overwrite, claimed=True, kind=kind)
        previous = run_kind(run_dir)
        _check_removable(run_dir, taken)
        for name in taken:
            _remove(run_dir / name)
        if previous != kind:
            _write_marker(claim, kind)

    return _claimed(run_dir, _make_dirs(run_dir), start_over)


def _claimed(run_dir: Path, made: list[Path], prepare) -> RunDirClaim:
    """A claim on `run_dir` once `prepare(claim)` ran; if anything fails, the lock file, the marker
    and the directories `made` (deepest first) that this claim created are removed again."""
    claim = None
    try:
        claim = RunDirClaim(run_dir)
        prepare(claim)
        return claim
    except BaseException:
        if claim is not None:
            claim.release()
            for name in (LOCK_FILE, MARKER_FILE) if claim.made_lock else ():
                (run_dir / name).unlink(missing_ok=True)
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()  # (only while empty)
        raise


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p `path`; the directories it created, outermost first."""
    missing = []
    while not path.exists() and not path.is_symlink():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        p.mkdir()
    return list(reversed(missing))


def _write_marker(claim: RunDirClaim, kind: str) -> None:
    from jaxmlp.atomic import write_json  # (atomic replaces a link at the name; it never writes through one)

    write_json(claim.path / MARKER_FILE, {"kind": kind})


def _check_removable(run_dir: Path, names) -> None:
    """RunDirError unless every directory an --overwrite removes entries from lets us remove them,
    so that a refusal comes before the first file is gone."""
    parents = [run_dir] + [Path(p) for n in names if (run_dir / n).is_dir() for p, _, _ in os.walk(run_dir / n)]
    for parent in parents:
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunDirError(f"{parent}: permission denied: cannot remove the earlier run's files")


def _remove(path: Path) -> None:
    """Remove one file of an earlier run: in checkpoints/ only what orbax wrote, best/ as the run
    directory it is, the directory itself once nothing else is left in it."""
    if path.name == CHECKPOINT_DIR:
        for entry in path.iterdir():
            if _ORBAX_ENTRY.fullmatch(entry.name):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    elif path.name == BEST_DIR:
        kind = run_kind(path)
        for name in KIND_FILES[kind] if kind else ():
            if os.path.lexists(path / name):
                _remove(path / name)
        for name in (MARKER_FILE, LOCK_FILE):
            if name == MARKER_FILE or is_own_lock(path / name):
                (path / name).unlink(missing_ok=True)
    else:
        path.unlink()
        return
    with contextlib.suppress(OSError):
        path.rmdir()  # (kept when it holds anything jaxmlp did not write)


def _same_run_without_checkpoint(run_dir: Path, config: TrainConfig) -> bool:
    if has_checkpoint(run_dir):
        return False
    try:
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    mine = config.with_fixed_schedule().to_dict()
    settled = {name: saved.get(name) for name in AUTO_FIELDS if mine[name] is None}  # decided for the data at its start
    return saved == {**mine, **settled}
