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

import os
import re
import time
from pathlib import Path

from jaxmlp.atomic import make_dirs, read_regular, remove_dirs, write_json
from jaxmlp.config import AUTO_FIELDS, TrainConfig
from jaxmlp.parsing import loads_json
from jaxmlp.overwrite import check_removable, remove, removal
from jaxmlp.runfiles import (BEST_DIR, CHECKPOINT_DIR, CONFIG_FILE, KIND_FILES, MARKER_FILE,  # noqa: F401
                             METRICS_FILE, PREPROCESSING_FILE, RESULTS_FILE, RUN_FILES, SUMMARY_FILE,
                             SWEEP_FILE, SWEEP_PLOT_FILE, SWEEP_SUMMARY_FILE, check_own_files, has_checkpoint,
                             only_marker_left, run_kind)
from jaxmlp.runlock import LOCK_FILE, RunDirClaim, RunDirError, check_not_in_use, is_own_lock

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


def check_new_run_dir(run_dir: Path, config: TrainConfig, *, overwrite: bool = False, claimed: bool = False,
                      kind: str = "train", nested: bool = False) -> list[str]:
    """The files of an earlier run a new `kind` run in `run_dir` would remove; RunDirError when it
    must not start there. Read-only.

    A missing or empty directory is free. One marked as jaxmlp's holds a run: refused unless
    `overwrite`, or unless it is a train run that never saved a checkpoint, started over by the
    same command (the same config: nothing it wrote can be lost). Anything else is refused, and so
    is a directory inside another run's, unless `nested` (a sweep's own best/).
    """
    if not nested:
        _check_not_inside_a_run(run_dir)
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
    check_own_files(run_dir, taken)
    same = previous == kind == "train" and _same_run_without_checkpoint(run_dir, config)
    if taken and not overwrite and not same:
        what = (f"already holds a {'run' if previous == 'train' else previous}" if previous == kind else
                f"holds a jaxmlp {previous}, not a {kind}")
        resume = f"pass --resume {run_dir} to continue it or " if previous == kind else ""
        raise RunDirError(f"run dir {run_dir} {what}; {resume}--overwrite to start over")
    return taken


def _check_not_inside_a_run(run_dir: Path) -> None:
    for parent in Path(os.path.abspath(run_dir)).parents:
        if os.path.lexists(parent / MARKER_FILE):
            raise RunDirError(f"out_dir {run_dir} is inside the jaxmlp run {parent}, whose files it would mix with; "
                              "choose a directory outside it")


def claim_run_dir(run_dir: Path, config: TrainConfig, *, overwrite: bool = False, resume: bool = False,
                  kind: str = "train", nested: bool = False) -> RunDirClaim:
    """Claim an explicit run directory for a new `kind` run (made if missing; an earlier run's
    files removed as `check_new_run_dir` allows), or, with `resume`, the run it holds."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"out_dir {run_dir} exists and is not a directory")
    if resume:
        return _claimed(run_dir, [], lambda claim: check_own_files(run_dir, KIND_FILES[kind]))
    check_new_run_dir(run_dir, config, overwrite=overwrite, kind=kind, nested=nested)  # before a directory is made

    def start_over(claim: RunDirClaim) -> None:  # checked again now that no other run can write here
        taken = check_new_run_dir(run_dir, config, overwrite=overwrite, claimed=True, kind=kind, nested=nested)
        previous = run_kind(run_dir)
        paths = removal(run_dir, taken)
        check_removable(run_dir, paths)
        remove(run_dir, taken, paths)
        if previous != kind:
            _write_marker(claim, kind)

    return _claimed(run_dir, make_dirs(run_dir), start_over)


def _claimed(run_dir: Path, made: list[Path], prepare) -> RunDirClaim:
    """A claim on `run_dir` once `prepare(claim)` ran. What the claim made (the lock file, the
    marker, the directories `made`) is taken back when it fails, or when the command releases it
    with undo=True (it ended as bad input, having written nothing else)."""
    claim = None
    try:
        claim = RunDirClaim(run_dir)
        claim.undo_steps.append(lambda: remove_dirs(made))
        prepare(claim)
        return claim
    except BaseException:
        if claim is None:
            remove_dirs(made)
        else:
            claim.release(undo=True)
        raise


def _write_marker(claim: RunDirClaim, kind: str) -> None:
    path = claim.path / MARKER_FILE
    new = not os.path.lexists(path)
    write_json(path, {"kind": kind})  # (a replace: never written through a link)
    if new:
        claim.undo_steps.append(lambda: _unmark(claim.path))


def _unmark(run_dir: Path) -> None:
    """Remove the marker while nothing but it (and a lock) is in `run_dir`: its run wrote nothing."""
    if only_marker_left(run_dir):
        (run_dir / MARKER_FILE).unlink(missing_ok=True)


def _same_run_without_checkpoint(run_dir: Path, config: TrainConfig) -> bool:
    if has_checkpoint(run_dir):
        return False
    try:
        saved = loads_json(read_regular(run_dir / CONFIG_FILE).decode())
    except (OSError, ValueError):
        return False
    mine = config.with_fixed_schedule().to_dict()
    settled = {name: saved.get(name) for name in AUTO_FIELDS if mine[name] is None}  # decided for the data at its start
    return saved == {**mine, **settled}
