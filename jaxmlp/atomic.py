"""Files that are complete or absent: every file jaxmlp writes goes to a temporary name in
the same directory, is flushed and fsync'ed, and is renamed onto its path only when whole, so a
kill, a full disk or an error never leaves a half-written file (or clobbers the old one).

    atomic_write_bytes(path, data)       # missing parent folders are made, and removed again on failure
    write_json(path, {"a": 1})
    with atomic_file(path) as f: np.savez(f, ...)
    read_regular(path)                   # a file jaxmlp wrote, read back: never through a link, never a FIFO
    open_regular(path, os.O_RDWR)        # the same, as a descriptor (a lock file)
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a tmp file in the same directory, fsync, then os.replace onto `path`; the missing
    folders above it are made, and removed again when the write fails."""
    path = Path(path)
    made = make_dirs(path.parent)
    try:
        with atomic_file(path) as f:
            f.write(data)
    except BaseException:
        remove_dirs(made)
        raise


def make_dirs(path: Path) -> list[Path]:
    """mkdir -p `path`; the directories it created, outermost first."""
    missing = []
    while not path.exists() and not path.is_symlink():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        p.mkdir()
    return list(reversed(missing))


def remove_dirs(made: list[Path]) -> None:
    """Remove the directories `make_dirs` made, deepest first, each only while empty."""
    for path in reversed(made):
        with contextlib.suppress(OSError):
            path.rmdir()


def open_regular(path: str | os.PathLike, flags: int = os.O_RDONLY) -> int:
    """A descriptor of the regular file at `path`. A link there is not followed (ELOOP), and a
    FIFO, socket or device is refused (EINVAL) rather than kept open: opening one could block
    forever, hence O_NONBLOCK."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of the regular file at `path` (opened as `open_regular` does)."""
    with os.fdopen(open_regular(path), "rb") as f:
        return f.read()


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file object that appears at `path` only once it is complete (tmp + os.replace)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """`obj` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())
