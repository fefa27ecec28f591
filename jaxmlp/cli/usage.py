"""How the command line fails: one line on stderr and an exit status (`UsageError`: 2).

`Parser` is the argparse parser of every command: its errors are UsageErrors, not a usage block.
"""
from __future__ import annotations

import argparse
import sys
import typing
from typing import Any

PROG = "jaxmlp"
EXIT_INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)


class UsageError(Exception):
    """A one-line error for the user: printed to stderr, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def fail(message: Any, code: int) -> int:
    """Print `message` as one line on stderr; returns the exit status `code`."""
    print(one_line(message), file=sys.stderr)
    return code


def one_line(message: Any) -> str:
    return " ".join(str(message).split())
