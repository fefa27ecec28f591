"""What jaxmlp reads from users, strictly and in bounded time and space: JSON and TOML
(jaxmlp/parsing.py), the error line that echoes it (cli/usage.one_line), and a grid's size,
counted without listing its models (sweeps/grid.grid_size)."""
from __future__ import annotations

import pytest

from jaxmlp.cli.grid_flags import parse_values
from jaxmlp.cli.usage import MAX_LINE, one_line
from jaxmlp.parsing import MAX_DEPTH, loads_json, loads_toml
from jaxmlp.sweeps.grid import expand_grid, grid_size


def test_a_repeated_json_key_is_refused_by_name_at_any_level():
    assert loads_json('{"a": {"b": 1}, "c": [{"b": 2}]}') == {"a": {"b": 1}, "c": [{"b": 2}]}
    for text, key in (('{"epochs": 2, "epochs": 3}', "'epochs'"), ('{"a": [{"b": 1, "b": 1}]}', "'b'")):
        with pytest.raises(ValueError, match=f"duplicate key {key}"):
            loads_json(text)
    with pytest.raises(ValueError):  # TOML refuses one itself
        loads_toml("a = 1\na = 2\n")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 100_000])
def test_nesting_past_the_limit_is_one_value_error_not_a_recursion_error(depth):
    for loads, text in ((loads_json, "[" * depth + "]" * depth), (loads_toml, "a = " + "[" * depth + "]" * depth),
                        (loads_json, '{"a": ' * depth + "1" + "}" * depth)):
        with pytest.raises(ValueError, match=f"nested deeper than {MAX_DEPTH} levels"):
            loads(text)


def test_nesting_up_to_the_limit_is_read():
    assert loads_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert loads_toml("a = " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))["a"] is not None


def test_an_error_line_is_cut_in_the_middle_to_the_limit_and_says_so():
    assert one_line("a  b\n c") == "a b c"
    message = "error: 'x" + "x" * 50_000_000 + "'; valid specs: spiral"
    line = one_line(message)
    assert len(line) <= MAX_LINE and line.startswith("error: 'xxx") and line.endswith("'; valid specs: spiral")
    kept = len(line) - len(f" [... {len(message) - 940} of {len(message)} characters cut ...] ")
    assert f" [... {len(message) - kept} of {len(message)} characters cut ...] " in line


def test_a_grid_is_counted_without_listing_it():
    seeds = parse_values("seed", "0:1000000")
    assert isinstance(seeds, range) and grid_size({"seed": seeds, "learning_rate": [1e-3, 1e-2]}) == 2_000_000
    assert grid_size({"seed": range(0, 10**30)}) == 10**30  # len() of such a range overflows
    for r in (range(0, 7, 2), range(7, 0, -2), range(5, 5), range(5, 0), range(0, 1, 5)):
        assert grid_size({"seed": r}) == len(r) == len(expand_grid({"seed": r}) if len(r) else [])
    assert grid_size([{"seed": 1}, {"seed": 2}, {}]) == 3
