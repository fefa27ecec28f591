"""`--grid FIELD=VALUES` and `--grid-file FILE`: a sweep's grid from the command line.

    --grid learning_rate=1e-4,3e-4,1e-3      comma-separated values
    --grid seed=0:8                          integers A:B[:STEP] (B excluded): 0 .. 7
    --grid hidden=512,512/1024               lists (tuple fields) separated by /: (512, 512), (1024,)
    --grid 'hidden=[[64], [64, 64]]'         a JSON list
    --grid-file grid.json                    a JSON mapping of field -> values, or a list of overrides

Each value is parsed as its TrainConfig field's type; a bad one is a one-line UsageError naming it.
"""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Sequence

from jaxmlp.cli.flags import value_parser
from jaxmlp.cli.usage import UsageError, one_line
from jaxmlp.config import FIELD_NAMES, TrainConfig
from jaxmlp.parsing import loads_json

MAX_MODELS = 10_000  # the most models `jaxmlp sweep` plans without --max-models (planning costs ms per model)
GRID_HELP = ("FIELD=VALUES, repeatable (the Cartesian product): comma-separated values, A:B[:STEP] for integers "
             "(B excluded), lists separated by / for hidden (512,512/1024), or a JSON list")


def parse_grid(args: list[str], prog: str) -> dict[str, Sequence[Any]]:
    """The grid of repeated --grid arguments, in their order."""
    grid: dict[str, Sequence[Any]] = {}
    for arg in args:
        name, sep, text = arg.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise UsageError(f"{prog}: error: --grid {arg}: expected FIELD=VALUES, e.g. learning_rate=1e-4,1e-3")
        if name not in FIELD_NAMES:
            raise UsageError(f"{prog}: error: --grid {arg}: unknown config field {name!r}")
        if name in grid:
            raise UsageError(f"{prog}: error: --grid {name} is given twice")
        try:
            grid[name] = parse_values(name, text.strip())
        except ValueError as exc:
            raise UsageError(f"{prog}: error: --grid {arg}: {one_line(exc)}") from None
    return grid


def parse_values(name: str, text: str) -> Sequence[Any]:
    """The values of field `name` written as `text` (A:B[:STEP] as a range, which the grid's size
    counts without listing it); ValueError saying what was expected."""
    hint = typing.get_type_hints(TrainConfig)[name]
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    base = inner[0] if type(None) in typing.get_args(hint) else hint
    if text.startswith("["):
        values = loads_json(text)
        if not isinstance(values, list):
            raise ValueError("a JSON grid must be a list of values")
        return values
    if base is int and ":" in text:
        bounds = [int(part) for part in text.split(":")]
        if len(bounds) not in (2, 3):
            raise ValueError(f"{name} takes a range A:B or A:B:STEP, got {text!r}")
        return range(*bounds)
    tuple_field = typing.get_origin(base) is tuple
    parse = value_parser(hint)
    values = []
    for part in text.split("/" if tuple_field else ","):
        if base is bool:
            if part.strip().lower() not in ("true", "false"):
                raise ValueError(f"{name} takes true or false, got {part!r}")
            values.append(part.strip().lower() == "true")
            continue
        try:
            values.append(parse(part.strip()))
        except ValueError:
            raise ValueError(f"{name} takes {parse.__name__} values, got {part!r}") from None
    return values


def load_grid_file(path: str, prog: str) -> Any:
    """A grid from a JSON file: a mapping field -> values, or a list of overrides."""
    try:
        grid = loads_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{prog}: error: --grid-file {path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{prog}: error: --grid-file {path}: cannot parse ({one_line(exc)})") from None
    if not isinstance(grid, (dict, list)):
        raise UsageError(f"{prog}: error: --grid-file {path}: expected a mapping of field -> values or a list of "
                         "overrides")
    return grid


def check_grid_size(grid: Any, max_models: int | None, prog: str) -> None:
    """UsageError, giving the count, for a grid of more models than `max_models` (None: MAX_MODELS),
    counted before anything is expanded or planned."""
    from jaxmlp.sweeps.grid import grid_size

    limit = MAX_MODELS if max_models is None else max_models
    size = grid_size(grid)
    if size > limit:
        raise UsageError(f"{prog}: error: the grid has {size} models, more than --max-models {limit}; pass "
                         f"--max-models {size} to train them all")
