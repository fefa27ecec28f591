"""JSON and TOML as jaxmlp reads them: strictly, every problem one ValueError a user can act on.

    data = loads_json(path.read_text())    # --config, --grid, --grid-file, config.json, sweep.json
    data = loads_toml(path.read_text())    # --config run.toml

Python's json module keeps the last of a repeated key without a word (TOML refuses one), and
both parsers recurse once per nesting level, so a 10 KB file nested 5,000 levels deep ends in a
RecursionError. Here a repeated key is refused by name, and nesting deeper than MAX_DEPTH is
refused whether or not the parser got that far. Imports nothing heavy: the CLI parses before
JAX is loaded.
"""
from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # levels of lists and tables; configs are flat, grids and sweep.json a few levels deep


def loads_json(text: str) -> Any:
    """The value of JSON `text`; ValueError for bad JSON, a repeated key or too deep a nesting."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _too_deep() from None
    _check_depth(data)
    return data


def loads_toml(text: str) -> dict[str, Any]:
    """The table of TOML `text`; ValueError for bad TOML (a repeated key included) or too deep a nesting."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, from its backport
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise _too_deep() from None
    _check_depth(data)
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, value in pairs:
        if key in table:
            raise ValueError(f"duplicate key {key!r}")
        table[key] = value
    return table


def _check_depth(data: Any) -> None:
    """ValueError if lists and tables nest deeper than MAX_DEPTH (walked without recursion)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def _too_deep() -> ValueError:
    return ValueError(f"lists and tables nested deeper than {MAX_DEPTH} levels")
