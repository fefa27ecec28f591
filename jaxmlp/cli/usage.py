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
    """An ArgumentParser whose errors raise UsageError; a misspelled flag gets a "did you mean"."""

    _unrecognized: typing.Sequence[str] = ()

    def parse_known_args(self, args=None, namespace=None):
        # argparse reports a subcommand's unknown flags from the top parser, which does not know
        # the subcommand's flags: each parser notes what it could not place, for error() to find
        namespace, self._unrecognized = super().parse_known_args(args, namespace)
        return namespace, self._unrecognized

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("unrecognized arguments:"):
            message += _did_you_mean(_innermost_with_extras(self))
        raise UsageError(f"{self.prog}: error: {message}")


def _innermost_with_extras(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The subcommand's parser that left arguments unplaced, else `parser` itself."""
    for action in getattr(parser._subparsers, "_group_actions", ()):
        for sub in getattr(action, "choices", {}).values():
            if getattr(sub, "_unrecognized", None):
                return _innermost_with_extras(sub)
    return parser


def _did_you_mean(parser: argparse.ArgumentParser) -> str:
    """"; did you mean --epochs?" for the first unknown flag with a close match among
    `parser`'s flags, else ""."""
    import difflib  # stdlib and light, but only a failing command needs it

    # compared without their dashes, which every flag shares and which would make --bogus "close" to --loss
    flags = {s.lstrip("-"): s for action in parser._actions for s in action.option_strings}
    for arg in getattr(parser, "_unrecognized", []):
        if arg.startswith("-"):
            close = difflib.get_close_matches(arg.partition("=")[0].lstrip("-"), flags, n=1, cutoff=0.6)
            if close:
                return f"; did you mean {flags[close[0]]}?"
    return ""


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
