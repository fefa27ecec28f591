"""How the command line fails: one line on stderr and an exit status (`UsageError`: 2; a
`CommandError`, such as an output that cannot be written: 1).

`Parser` is the argparse parser of every command: its errors are UsageErrors, not a usage block.
"""
from __future__ import annotations

import argparse
import sys
import typing
from typing import Any

PROG = "jaxmlp"
EXIT_INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)


class CommandError(Exception):
    """A one-line error of a command that failed: printed to stderr, exit code `code`."""

    code = 1


class UsageError(CommandError):
    """A one-line error for the user (bad input; nothing was changed): printed to stderr, exit code 2."""

    code = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def fail(message: Any, code: int) -> int:
    """Print `message` as one line on stderr; returns the exit status `code`."""
    print(one_line(message), file=sys.stderr)
    return code


MAX_LINE = 1000  # characters of an error line: a value echoed back (a 50 MB string, 200,000 keys) is cut
_HEAD, _TAIL = 700, 240  # what a cut line keeps of its start and its end (where the advice usually is)


def one_line(message: Any) -> str:
    """`message` on one line of at most MAX_LINE characters; a longer one keeps its start and end
    and says how much was cut from the middle."""
    text = " ".join(str(message).split())
    if len(text) <= MAX_LINE:
        return text
    return f"{text[:_HEAD]} [... {len(text) - _HEAD - _TAIL} of {len(text)} characters cut ...] {text[-_TAIL:]}"
