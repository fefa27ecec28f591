"""TrainConfig fields as command-line flags, and config files of fields.

Every `TrainConfig` field is a flag (`--batch-size 64`, `--hidden 512,512`, `--no-standardize`,
`--clip-norm none`), generated from the dataclass so flags and config never drift; its help is
the field's help text (`config.FIELD_HELP`).
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Collection, Sequence

from jaxmlp.cli.usage import UsageError, one_line
from jaxmlp.config import AUTO, FIELD_HELP, FIELD_NAMES, TrainConfig
from jaxmlp.parsing import loads_json, loads_toml


def _named(fn, name: str):
    fn.__name__ = name  # argparse says "invalid <name> value: 'x'"
    return fn


def value_parser(tp: Any):
    """A string parser for a field annotation (X, X | None, tuple[int, ...])."""
    args = typing.get_args(tp)
    if type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        parse = value_parser(inner)
        return _named(lambda s: None if s.lower() in ("none", "null") else parse(s), f"{parse.__name__}-or-none")
    if typing.get_origin(tp) is tuple:
        return _named(_int_list, "comma-separated int list")
    if tp is int:
        return _named(lambda s: int(s), "int")
    if tp is float:
        return _named(lambda s: float(s), "float")
    return _named(lambda s: s, "str")


def width(text: str):
    """--width of a sweep or a batch study: auto, all or a positive count (its range: sweeps.plan.resolve_width)."""
    return text if text in ("auto", "all") else int(text)


def int_at_least(minimum: int):
    """An int parser that refuses values below `minimum` (argparse: "argument --top: must be >= 0, got -1")."""
    def parse(text: str) -> int:
        value = int(text)  # a ValueError: argparse says "invalid int value"
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return _named(parse, "int")


def _int_list(text: str) -> tuple[int, ...]:
    """'512,512' -> (512, 512); '' -> () (e.g. no hidden layer); an empty item ('10,,10') is an error."""
    items = text.replace(" ", "").split(",")
    if items == [""]:
        return ()
    return tuple(int(v) for v in items)  # int('') raises: argparse reports the value


_devices_arg = _named(lambda s: 0 if s.strip().lower() == "all" else int(s), "int-or-all")  # --devices N|all


def _or_auto(parse):
    """`parse`, with "auto" passed through for a field whose None means auto."""
    return _named(lambda s: AUTO if s.strip().lower() == AUTO else parse(s), f"{parse.__name__}-or-auto")


def add_config_flags(parser: argparse.ArgumentParser, unlisted: Collection[str] = ()) -> None:
    """One --flag per TrainConfig field; unset flags stay out of the namespace (SUPPRESS). The
    fields in `unlisted` still parse but --help leaves them out: a command that they do not
    apply to refuses them itself, with its reason, rather than as unknown flags."""
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("config (TrainConfig fields; defaults in brackets)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        if f.metadata["auto"] and f.default is None:
            shown = AUTO
        help_text = f"{FIELD_HELP.get(f.name, '')} [{shown}]".replace("%", "%%")
        if f.name in unlisted:
            help_text = argparse.SUPPRESS
        if hints[f.name] in (bool, bool | None):  # --x / --no-x (an auto switch: its config file may say "auto")
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            parse = _devices_arg if f.name == "devices" else value_parser(hints[f.name])
            if f.metadata["auto"]:
                parse = _or_auto(parse)
            group.add_argument(flag, dest=f.name, type=parse, default=argparse.SUPPRESS,
                               metavar=f.name.upper(), help=help_text)


def normalize_flags(argv: Sequence[str]) -> list[str]:
    """Accept --batch_size as well as --batch-size for config fields."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg:
            name, eq, value = arg[2:].partition("=")
            bare = name[3:] if name.startswith("no_") else name
            if bare in FIELD_NAMES:
                arg = "--" + name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def given_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """The config fields set on the command line."""
    return {name: getattr(ns, name) for name in FIELD_NAMES if hasattr(ns, name)}


CONFIG_SUFFIXES = (".json", ".toml")


def load_config_file(path: str, prog: str = "jaxmlp train") -> dict[str, Any]:
    """Field values from a .json or .toml file (a flat table of TrainConfig fields)."""
    p = Path(path)
    error = f"{prog}: error: --config {path}:"
    if p.suffix.lower() not in CONFIG_SUFFIXES:
        raise UsageError(f"{error} not a .json or .toml file")
    if p.is_dir():
        raise UsageError(f"{error} is a directory, not a .json or .toml file")
    try:
        data = (loads_toml if p.suffix.lower() == ".toml" else loads_json)(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{error} file not found") from None
    except OSError as exc:
        raise UsageError(f"{error} cannot read ({exc.strerror or one_line(exc)})") from None
    except ValueError as exc:  # bad JSON or TOML, a repeated key, too deep a nesting; UnicodeDecodeError
        raise UsageError(f"{error} cannot parse ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{error} expected a table of config fields")
    return data
