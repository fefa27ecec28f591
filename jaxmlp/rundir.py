"""A run directory: its files, and its life: claimed atomically, held by one run at a time, and started over only
when that loses nothing.

    claim = claim_new_run_dir("spiral")          # runs/spiral-<timestamp>[-k], made with one mkdir
    claim = claim_run_dir(path, config)          # an explicit --out-dir, or a run to --resume
    ...                                          # the run writes config.json, checkpoints, ...
    claim.release()                              # (or the process ends: the lock goes with it)

A claim holds an exclusive `fcntl.flock` on `<run_dir>/.lock` for the run's life, so a second
run into a directory in use is refused in one line, and a killed run (even kill -9) frees it at
once. A new run directory is created by `mkdir` without exist_ok, with a numeric suffix on
collision, so two runs started in the same second never share one.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import time
from pathlib import Path

from jaxmlp.config import AUTO_FIELDS, TrainConfig

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PREPROCESSING_FILE = "preprocessing.json"
# Everything a run writes into its directory: --overwrite removes these, and nothing else.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_DIR, "loss_curve.png", "decision_boundary.png",
             "gradient_stats.png", "params.npz", PREPROCESSING_FILE)
LOCK_FILE = ".lock"  # held (flock) by the run writing here


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, missing, in use, no checkpoint)."""


class RunDirClaim:
    """An exclusive hold on a run directory: an open, flock'ed `<path>/.lock` holding our pid."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(self._fd, patience=0.5):  # (another run's read-only probe holds it for microseconds)
            holder = _read_pid(self._fd)
            os.close(self._fd)
            raise _in_use_error(path, holder)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Let go of the directory (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _try_lock(fd: int, patience: float = 0.0) -> bool:
    """Take the exclusive lock without blocking, retrying for `patience` seconds; False if held."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _in_use_error(path: Path, holder: int | None) -> RunDirError:
    pid = f" (pid {holder})" if holder else ""
    return RunDirError(f"run dir {path} is in use by another jaxmlp run{pid}; wait for it to end or choose "
                       "another --out-dir")


def check_not_in_use(run_dir: Path) -> None:
    """RunDirError when another process holds `run_dir` (read-only: makes no lock file)."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:  # no lock file (or no directory): nobody holds it
        return
    try:
        if not _try_lock(fd):
            raise _in_use_error(run_dir, _read_pid(fd))
    finally:
        os.close(fd)  # (drops the probe's lock, if it got one)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def run_dir_name(dataset: str) -> str:
    """<dataset tag>-<YYYYmmdd-HHMMSS>, the tag made file-name safe (npz:data/x.npz -> x)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset.partition(":")[2]).stem if ":" in dataset else dataset)
    return f"{tag.strip('-') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_new_run_dir(dataset: str, root: Path | None = None) -> RunDirClaim:
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
        return RunDirClaim(path)
    raise RunDirError(f"{runs}: no free run directory name for {base}")


def has_checkpoint(run_dir: Path) -> bool:
    """True when the run directory holds at least one complete checkpoint (orbax renames a
    checkpoint's directory to its bare epoch number once it is complete)."""
    ckpt = run_dir / CHECKPOINT_DIR
    return ckpt.is_dir() and any(p.name.isdigit() and p.is_dir() for p in ckpt.iterdir())


def check_new_run_dir(run_dir: Path, config: TrainConfig, *, overwrite: bool = False,
                      claimed: bool = False, files: tuple[str, ...] = RUN_FILES) -> list[str]:
    """The run files a new run in `run_dir` would replace; RunDirError when it must not.

    Read-only. A new run is refused where another run's files are, unless `overwrite`; a run
    that never saved a checkpoint (killed, out of memory or interrupted in its first epochs) may
    be started over by the same command (the same config): nothing it wrote can be lost.
    `files`: what a run writes (RUN_FILES; a sweep's own), the first of them marking a run.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"out_dir {run_dir} exists and is not a directory")
    if not claimed:  # (a probe from the claiming process would conflict with its own lock)
        check_not_in_use(run_dir)
    taken = [name for name in files if (run_dir / name).exists()]
    if taken and not overwrite and not _same_run_without_checkpoint(run_dir, config):
        what = "already holds a run" if files[0] in taken else f"already has {', '.join(taken)}"
        raise RunDirError(f"run dir {run_dir} {what}; pass --resume {run_dir} to continue it "
                          "or --overwrite to start over")
    return taken


def claim_run_dir(run_dir: Path, config: TrainConfig, *, overwrite: bool = False,
                  resume: bool = False, files: tuple[str, ...] = RUN_FILES) -> RunDirClaim:
    """Claim an explicit run directory for a new run (made if missing; the previous run's `files`
    removed as `check_new_run_dir` allows), or, with `resume`, the run it holds."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"out_dir {run_dir} exists and is not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    claim = RunDirClaim(run_dir)
    try:
        if not resume:  # checked again now that no other run can write here
            for name in check_new_run_dir(run_dir, config, overwrite=overwrite, claimed=True, files=files):
                target = run_dir / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
    except BaseException:
        claim.release()
        raise
    return claim


def _same_run_without_checkpoint(run_dir: Path, config: TrainConfig) -> bool:
    if has_checkpoint(run_dir):
        return False
    try:
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    mine = config.with_fixed_schedule().to_dict()
    settled = {name: saved.get(name) for name in AUTO_FIELDS if mine[name] is None}  # decided for the data at its start
    return saved == {**mine, **settled}
