"""Files that are complete or absent: every file jaxmlp writes goes to a temporary name in
the same directory, is flushed and fsync'ed, and is renamed onto its path only when whole, so a
kill, a full disk or an error never leaves a half-written file (or clobbers the old one).

    atomic_write_bytes(path, data)
    write_json(path, {"a": 1})
    with atomic_file(path) as f: np.savez(f, ...)
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a tmp file in the same directory, fsync, then os.replace onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        f.write(data)


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
