"""How a `jaxmlp train` run ends when it does not finish: one line on stderr naming what
happened and what the run directory still holds, and the exit status.

    exit 1    the run failed: diverged, a gradient audit failed (audit_strict), out of memory, a file
              system error while training, a process of a multi-host run gone
    exit 2    bad input: a flag, a config, a data set or a run directory that cannot be used
    exit 130  interrupted (Ctrl-C)

Also the other way a resume can end early: with nothing to do (`nothing_to_resume`).
"""
from __future__ import annotations

from pathlib import Path

from jaxmlp.cli.usage import EXIT_INTERRUPTED, PROG, fail
from jaxmlp.config import TrainConfig


def os_error(exc: OSError, path: Path | None = None) -> str:
    """'<path>: <OS error>' for an OSError, naming the file it is about."""
    where = exc.filename or path or "?"
    return f"{where}: {exc.strerror or exc}"


def _last_checkpoint(ckpt) -> int | None:
    try:
        return ckpt.latest_epoch() if ckpt is not None else None
    except Exception:  # a vanished or unreadable directory: as good as no checkpoint
        return None


def _kept(run_dir: Path, last: int | None) -> str:
    if last is None:
        return f"no checkpoint was saved in {run_dir}: rerun the command to start over"
    return f"the last complete checkpoint is epoch {last} in {run_dir}"


def _peer_gone(command: str, run_dir: Path, last: int | None, lost: str) -> str:
    return f"{PROG} {command}: error: {lost} ({_kept(run_dir, last)}; continue with --resume {run_dir} on every host)"


def say_when_peer_lost(run_dir: Path, command: str) -> None:
    """In a multi-host run, the line that the peer watch (jaxmlp/peerwatch.py) prints when it
    ends the process names `run_dir`'s last complete checkpoint, listed afresh then: the watch
    runs beside the main thread, which may be in the middle of a save."""
    from jaxmlp import checkpoint, distributed
    from jaxmlp.runfiles import CHECKPOINT_DIR

    def last_words(lost: str) -> str:
        try:
            last = checkpoint.Checkpointer(run_dir / CHECKPOINT_DIR, alone=True).latest_epoch()
        except Exception:  # no checkpoint directory yet, or one being pruned: none to name
            last = None
        return _peer_gone(command, run_dir, last, lost)

    distributed.on_peer_lost(last_words)


def ended(exc: BaseException, run_dir: Path, ckpt, command: str = "train") -> int:
    """Report `exc`, which ended the run (of `jaxmlp <command>`) in `run_dir`, in one line; its
    exit status. Re-raises what is not one of the ways a run is known to end (a bug deserves its
    traceback)."""
    from jaxmlp import distributed
    from jaxmlp.data import DataError
    from jaxmlp.training import GradientAuditFailed, TrainingDiverged

    prefix = f"{PROG} {command}: error:"
    last = _last_checkpoint(ckpt)
    kept = _kept(run_dir, last)
    if isinstance(exc, (TrainingDiverged, GradientAuditFailed)):
        return fail(f"{prefix} {exc} ({kept})", 1)
    if (lost := distributed.peer_lost(exc)) is not None:  # exits now: JAX's shutdown would wait for the lost peer
        distributed.exit_now(_peer_gone(command, run_dir, last, lost))
    if isinstance(exc, KeyboardInterrupt):
        resume = f"; continue with --resume {run_dir}" if last is not None else ""
        return fail(f"{PROG} {command}: interrupted; {kept}{resume}", EXIT_INTERRUPTED)
    if isinstance(exc, OSError):
        resume = f"; continue with --resume {run_dir} once that is fixed" if last is not None else ""
        return fail(f"{prefix} {os_error(exc, run_dir)} ({kept}{resume})", 1)
    if _out_of_memory(exc):
        return fail(f"{prefix} out of device memory ({' '.join(str(exc).split())[:160]}); lower batch_size, hidden "
                    f"or eval_batch_size ({kept})", 1)
    if isinstance(exc, DataError):  # a data set on disk changed while the run read it (checked every epoch)
        resume = f"; continue with --resume {run_dir} once it is put back" if last is not None else ""
        return fail(f"{prefix} {exc} ({kept}{resume})", 2)
    if isinstance(exc, ValueError):
        return fail(f"{prefix} {exc}", 2)
    raise exc


def _out_of_memory(exc: BaseException) -> bool:
    import jax

    return isinstance(exc, (jax.errors.JaxRuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in str(exc))


def nothing_to_resume(config: TrainConfig, run_dir: Path, meta: dict) -> str | None:
    """The line to print when resuming `run_dir` (its latest checkpoint's `meta`) under `config`
    has nothing to train (a finished run without new epochs; an early-stopped run whose patience
    would stop it again), else None."""
    from jaxmlp.training.fit import resume_start
    from jaxmlp.training.history import History

    epoch, history = int(meta["epoch"]), History.from_dict(meta["history"])
    stopped = history.stopped_early
    if resume_start(config, history, epoch) < config.epochs:
        return None
    if stopped:
        since = epoch - history.best_epoch
        return (f"nothing to resume: {run_dir} stopped early at epoch {epoch} (no val-loss improvement since epoch "
                f"{history.best_epoch}, patience {config.patience}); pass --patience > {since} (or 0) to continue "
                "it; no file was changed")
    return (f"nothing to resume: {run_dir} has finished its {epoch} epochs; pass --epochs > {epoch} to train "
            "further; no file was changed")

