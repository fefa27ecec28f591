"""What jaxmlp wraps around orbax's checkpoint reads and writes: their failures, each reported
in one line (CheckpointWriteError, CheckpointUnreadable, CheckpointRemoved), and the noise orbax
makes around them (its writer threads' tracebacks, the reports of reads abandoned after one
failed, Ctrl-C in the middle of a save). Used by checkpoint.py.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path

from jaxmlp.runlock import RunDirError


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only or vanished directory); the
    previous complete checkpoint stays loadable."""

    def __init__(self, directory: Path, epoch: int, cause: BaseException):
        code = re.search(r"os_error_code='?(\d+)", str(cause))
        errno_ = int(code.group(1)) if code else getattr(cause, "errno", None)
        reason = os.strerror(errno_) if errno_ else " ".join(str(cause).split())[:200]
        super().__init__(errno_, f"cannot write checkpoint {epoch}: {reason}", str(directory))


class CheckpointUnreadable(RunDirError):
    """A checkpoint that cannot be read: damaged files, or its `meta` item missing."""

    def __init__(self, directory: Path, epoch: int, cause: BaseException | str, older: list[int] = ()):
        text = " ".join(str(cause).split()).split(" [tensorstore_spec=")[0]  # the spec: ~2 KB of settings
        found = re.findall(r'local file "([^"]+)"', text)
        where = f"{found[-1]}: " if found else ""
        reason = text.rsplit(": ", 1)[-1] if found else text
        fallback = (f"; the older checkpoints {', '.join(map(str, older))} are intact and never used in its place: "
                    f"pick one with --epoch, or move {directory / str(epoch)} out of {directory} to resume from "
                    f"epoch {older[-1]}" if older else "")
        super().__init__(f"checkpoint {epoch} in {directory} is damaged ({where}{reason[:160]}){fallback}")


class CheckpointRemoved(RunDirError):
    """The checkpoint being read was removed meanwhile: a run writing the directory pruned it."""

    def __init__(self, directory: Path, epoch: int | None):
        which = "a checkpoint" if epoch is None else f"checkpoint {epoch}"
        super().__init__(f"{which} in {directory} was removed while it was read: a run is writing there (it "
                         "keeps only its newest checkpoints); try again")


@contextlib.contextmanager
def orbax_threads_quiet():
    """Orbax's writer threads log a failed write's traceback through absl before the save raises
    it; the raised error is reported once, by the caller."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def sigint_deferred():
    """Ctrl-C during a save is held until the save is complete (in the main thread), so an
    interrupt never tears down orbax's event loop halfway through a write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list = []
    previous = signal.signal(signal.SIGINT, lambda *args: pending.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending and callable(previous):
            previous(*pending[0])


def quiet_orbax_reports() -> None:
    """When one read of a checkpoint fails (damaged, or pruned by a run writing there), orbax's
    event loop closes while tensorstore's other reads are still under way: at random they end in
    'Event loop is closed', '... exception was never retrieved', 'coroutine ... was never
    awaited' reports, after the failure, which the caller reports once. And a step directory
    without orbax's step metadata (half deleted by a jaxmlp killed mid-prune before pruning
    renamed first) warns on every listing; its items are checked when read. Those reports, and
    only those, are dropped (set up once per process; jaxmlp itself runs no coroutines)."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    previous = sys.unraisablehook

    def hook(unraisable):
        code = getattr(unraisable.object, "cr_code", None)
        abandoned = code is not None and _orbax_source(code.co_filename)
        if not (abandoned or str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook
    sys.excepthook = _without_closed_loop_callbacks(sys.excepthook)
    warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)
    logging.getLogger("asyncio").addFilter(  # a Task's repr names the file its coroutine is defined in
        lambda r: not ("exception was never retrieved" in str(r.msg) and _orbax_source(r.getMessage())))
    logging.getLogger("absl").addFilter(lambda r: not str(r.msg).startswith("Metadata file does not exist"))
    # A write thread's failure is logged with its traceback, then raised again by the save it
    # belonged to, which the caller reports in one line (CheckpointWriteError).
    logging.getLogger("absl").addFilter(lambda r: "_SignalingThread.run() raised an exception" not in str(r.msg))


_quieted = False


def _without_closed_loop_callbacks(previous):
    """sys.excepthook, less the reports of tensorstore's threads handing a result to orbax's event
    loop after it closed (printed through PyErr_Print, each a bare 'Event loop is closed')."""

    def excepthook(kind, value, tb):
        frames = traceback.extract_tb(tb)
        if not (kind is RuntimeError and str(value) == "Event loop is closed" and frames
                and frames[0].name == "call_soon_threadsafe"):
            previous(kind, value, tb)

    return excepthook


def _orbax_source(text: str) -> bool:
    """True when a report names orbax's or tensorstore's code, or a checkpoint (a gathered read's
    error names the checkpoint directory, not the code)."""
    return any(word in text.lower() for word in ("orbax", "tensorstore", "checkpoint"))
