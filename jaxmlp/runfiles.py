"""What lies in a run directory: the names each kind of run writes there, the marker that proves
a directory is jaxmlp's (`.jaxmlp-run`, naming the kind), and the checks that every one of those
names is what jaxmlp writes there: a regular file or a directory, never a symbolic link, a FIFO,
a socket or a device, anywhere inside either.

    run_kind(run_dir)                          # "train", "sweep", "batch-study", or None without a marker
    check_own_files(run_dir, RUN_FILES)        # RunDirError naming the first entry that is not
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from jaxmlp.atomic import read_regular
from jaxmlp.parsing import loads_json
from jaxmlp.runlock import RunDirError, is_own_lock, link_error

CHECKPOINT_DIR = "checkpoints"
STEP_CHECKPOINT_DIR = "step_checkpoints"  # a streamed run's mid-epoch checkpoints, by global step
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PREPROCESSING_FILE = "preprocessing.json"
SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.jsonl"
SWEEP_SUMMARY_FILE = "summary.md"
SWEEP_PLOT_FILE = "sweep.png"
BEST_DIR = "best"  # a sweep's best model: a train run directory of its own
STUDY_FILE = "study.json"
STUDY_PLOT_FILE = "batch_study.png"
MARKER_FILE = ".jaxmlp-run"  # {"kind": "train" | "sweep" | "batch-study"}: written by the claim of a new run
# Everything each kind of run writes into its directory: --overwrite removes these, and nothing else.
KIND_FILES = {
    "train": (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_DIR, STEP_CHECKPOINT_DIR, "loss_curve.png", "decision_boundary.png",
              "gradient_stats.png", "params.npz", PREPROCESSING_FILE),
    "sweep": (SWEEP_FILE, RESULTS_FILE, SWEEP_SUMMARY_FILE, SUMMARY_FILE, SWEEP_PLOT_FILE, CHECKPOINT_DIR, BEST_DIR),
    "batch-study": (STUDY_FILE, RESULTS_FILE, SWEEP_SUMMARY_FILE, SUMMARY_FILE, STUDY_PLOT_FILE),
}
RUN_FILES = KIND_FILES["train"]
DIRS = (CHECKPOINT_DIR, STEP_CHECKPOINT_DIR, BEST_DIR)  # the names above that are directories


def run_kind(run_dir: Path) -> str | None:
    """The kind of run the marker of `run_dir` names ("train", "sweep"), or None without a marker."""
    path = run_dir / MARKER_FILE
    try:
        kind = loads_json(read_regular(path).decode()).get("kind")
    except FileNotFoundError:
        return None
    except OSError as exc:
        if path.is_symlink():
            raise link_error(path) from None
        raise RunDirError(f"{path}: not a jaxmlp run marker ({exc.strerror or exc}); remove it or choose another "
                          "--out-dir") from None
    except (ValueError, AttributeError):  # (UnicodeDecodeError is a ValueError)
        raise RunDirError(f"{path}: not a jaxmlp run marker (unreadable); remove it or choose another --out-dir") \
            from None
    if not isinstance(kind, str) or kind not in KIND_FILES:
        raise RunDirError(f"{path}: names an unknown kind of run {str(kind)[:40]!r}")
    return kind


def only_marker_left(run_dir: Path) -> bool:
    """True when nothing but the marker (and a lock a run left) is in `run_dir`: no file of a run,
    none of the user's."""
    return all(name == MARKER_FILE or is_own_lock(run_dir / name) for name in os.listdir(run_dir))


def has_checkpoint(run_dir: Path) -> bool:
    """True when the run directory holds at least one complete checkpoint, of an epoch or mid-epoch
    (orbax renames a checkpoint's directory to its bare number once it is complete)."""
    for name in (CHECKPOINT_DIR, STEP_CHECKPOINT_DIR):
        ckpt = run_dir / name
        if ckpt.is_dir() and not ckpt.is_symlink() and any(p.name.isdigit() and p.is_dir() for p in ckpt.iterdir()):
            return True
    return False


def check_own_files(run_dir: Path, names) -> None:
    """RunDirError when a name of `names` in `run_dir`, or anything inside one that is a directory,
    is a symbolic link or not a plain file or directory, or is a file where jaxmlp writes a
    directory (or the reverse). Read-only: nothing is opened but directories."""
    for name in names:
        path = run_dir / name
        if not os.path.lexists(path):
            continue
        _check_entry(path)
        if path.is_dir() != (name in DIRS):
            raise RunDirError(f"{path} is a {'directory' if path.is_dir() else 'file'}, which jaxmlp does not "
                              "write there; move it away or choose another --out-dir")
        for parent, dirs, files in os.walk(path) if name in DIRS else ():
            for entry in dirs + files:
                _check_entry(Path(parent, entry))


def _check_entry(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:  # pruned meanwhile by a run writing there: nothing to read there
        return
    if stat.S_ISLNK(mode):
        raise link_error(path)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise RunDirError(f"{path} is not a regular file or directory (a FIFO, socket or device); jaxmlp neither "
                          "reads nor removes it: move it away or choose another --out-dir")
