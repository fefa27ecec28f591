"""Output files a command writes where the user says (`predict --out`, `export --npz`,
`noise-scale --json`): checked before any work, never over an existing file without
--overwrite, written atomically (jaxmlp/atomic.py), and a write that fails is one line.

    out = output_path(ns.out, "--out", "predict", overwrite=ns.overwrite, suffixes=(".npy", ".csv"))
    ...                                      # the work
    with writing(out, "predict"):
        atomic.atomic_write_bytes(out, data)

An existing file, a directory or a wrong suffix is bad input (UsageError, exit 2, nothing
written). A write that fails (a read-only folder, a full disk) is a file system error: exit 1,
one line with the path and the OS error, and no file, not even a partial one.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Iterator, Sequence

from jaxmlp.cli.usage import PROG, CommandError, UsageError


def add_overwrite_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def output_path(path: str | Path, flag: str, command: str, *, overwrite: bool, suffixes: Sequence[str] = ()) -> Path:
    """`path` as an output of `jaxmlp <command>` (given as `flag`), or UsageError: no name, a suffix
    not in `suffixes` (when given), a directory or anything else that is not a regular file (a
    FIFO, a device: never replaced by a file), an existing file without `overwrite`."""
    out = Path(path)
    error = f"{PROG} {command}: error:"
    if not str(path):
        raise UsageError(f"{error} {flag} needs a file name")
    if suffixes and out.suffix.lower() not in suffixes:
        raise UsageError(f"{error} {flag} {out}: the file name must end in {' or '.join(suffixes)}")
    if out.is_dir():
        raise UsageError(f"{error} {flag} {out} is a directory")
    if out.exists() and not out.is_file():
        raise UsageError(f"{error} {flag} {out} is not a regular file (a FIFO, socket or device)")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise UsageError(f"{error} {out} exists; pass --overwrite to replace it")
    return out


@contextlib.contextmanager
def writing(out: Path, command: str) -> Iterator[None]:
    """Turn an OSError while writing output `out` into one line naming it (CommandError, exit 1)."""
    try:
        yield
    except OSError as exc:  # its filename is often the temporary file: name the output instead
        raise CommandError(f"{PROG} {command}: error: cannot write {out}: {exc.strerror or exc} "
                           "(no file was written)") from None
