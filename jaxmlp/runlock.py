"""The lock a run holds on its directory: an exclusive `fcntl.flock` on `<run_dir>/.lock` for the
run's life, so a second run into a directory in use is refused in one line, and a killed run (even
kill -9) frees it at once. The lock file is opened without following links and never written:
the holder's pid comes from /proc/locks.

    claim = RunDirClaim(run_dir)    # RunDirError when another run holds it
    check_not_in_use(run_dir)       # the same test, read-only (makes no lock file)
    claim.release()
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from jaxmlp.atomic import open_regular

LOCK_FILE = ".lock"  # held (flock) by the run writing here


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, missing, in use, not jaxmlp's, a link)."""


class RunDirClaim:
    """An exclusive hold on a run directory: an open, flock'ed `<path>/.lock`."""

    def __init__(self, path: Path):
        self.path = path
        self.made_lock = False  # this claim created the lock file (a failed claim removes it)
        self.undo_steps: list = []  # what else release(undo=True) takes back, last first
        try:
            self._fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o644)
            self.made_lock = True
        except FileExistsError:
            self._fd = _open_lock(path, os.O_RDWR)
        if not _try_lock(self._fd, patience=0.5):  # (another run's read-only probe holds it for microseconds)
            holder = _holder_pid(self._fd)
            os.close(self._fd)
            raise _in_use_error(path, holder)

    def release(self, *, undo: bool = False) -> None:
        """Let go of the directory (idempotent); `undo`: the command changed nothing else (it
        ended as bad input), so a lock file this claim created goes too."""
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
            if undo and self.made_lock:
                (self.path / LOCK_FILE).unlink(missing_ok=True)
            for step in reversed(self.undo_steps) if undo else ():
                step()


def _open_lock(path: Path, flags: int) -> int:
    """The lock file opened without following a link, and without blocking on a FIFO."""
    try:
        return open_regular(path / LOCK_FILE, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_error(path / LOCK_FILE) from None
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            raise
        if exc.errno == errno.EINVAL:
            raise RunDirError(f"{path / LOCK_FILE} is not a regular file; it is not jaxmlp's lock: move it away or "
                              "choose another --out-dir") from None
        raise RunDirError(f"{path / LOCK_FILE}: cannot open the run's lock ({exc.strerror or exc})") from None


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


def _holder_pid(fd: int) -> int | None:
    """The pid holding a flock on the file of `fd`, from /proc/locks (Linux); None if not found."""
    inode = os.fstat(fd).st_ino
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF"
        fields = line.split()
        if "FLOCK" in fields and len(fields) >= 6 and fields[-3].rsplit(":", 1)[-1] == str(inode):
            return int(fields[-4]) if fields[-4].isdigit() else None
    return None


def _in_use_error(path: Path, holder: int | None) -> RunDirError:
    pid = f" (pid {holder})" if holder else ""
    return RunDirError(f"run dir {path} is in use by another jaxmlp run{pid}; wait for it to end or choose "
                       "another --out-dir")


def link_error(path: Path) -> RunDirError:
    return RunDirError(f"{path} is a symbolic link; jaxmlp never follows a link in its run directory: remove the "
                       "link or choose another --out-dir")


def check_not_in_use(run_dir: Path) -> None:
    """RunDirError when another process holds `run_dir` (read-only: makes no lock file)."""
    try:
        fd = _open_lock(run_dir, os.O_RDONLY)
    except FileNotFoundError:  # no lock file (or no directory): nobody holds it
        return
    except NotADirectoryError:
        return
    try:
        if not _try_lock(fd):
            raise _in_use_error(run_dir, _holder_pid(fd))
    finally:
        os.close(fd)  # (drops the probe's lock, if it got one)


def is_own_lock(path: Path) -> bool:
    """A lock file a jaxmlp run left (empty, or an older jaxmlp's pid), not a user's .lock."""
    if path.name != LOCK_FILE or path.is_symlink() or not path.is_file() or path.stat().st_size > 32:
        return False
    text = path.read_text(errors="replace").strip()
    return text == "" or text.isdigit()
