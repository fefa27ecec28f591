"""A sweep's grid: which models it trains, as TrainConfig overrides, and how each field may vary.

    expand_grid({"learning_rate": [1e-3, 3e-3], "seed": range(4)})   # 8 overrides, the last field fastest
    expand_grid([{"learning_rate": 1e-3}, {"hidden": (64, 64)}])     # an explicit list: 2 models
    model_configs(base, overrides)                                    # one validated TrainConfig per model
    grid_size({"seed": range(10**6), "learning_rate": [1e-3, 3e-3]})   # 2000000, counted, not expanded

How a field may vary between the models of one sweep (`field_kind`):
- "seed": each model draws its own init, shuffling, dropout and noise keys from its seed;
- "traced" (training.hyper.Hyper: learning_rate, weight_decay, l2, dropout, input_noise, momentum,
  b1, b2, eps, rms_decay, warmup_epochs, final_lr_fraction): a traced per-model scalar, so one
  compiled epoch serves every value;
- "init": only the initial params differ (he / xavier / lecun, normal / uniform), and one epoch
  program still serves;
- "group": any other field that changes the compiled programs (hidden, activation, batch_size,
  optimizer, schedule, epochs, grad_method, ...) splits the models into groups, one program each;
- "sweep": the data, the loop, the output, the devices and the dtype are settings of the whole
  sweep, and a grid that varies one is refused.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence, Sized

from jaxmlp.config import FIELD_NAMES, HOST_ONLY_FIELDS, TrainConfig
from jaxmlp.training.hyper import TRACEABLE

SWEEP_WIDE = (HOST_ONLY_FIELDS - {"seed"}) | {"devices", "dtype"}


def field_kind(name: str) -> str:
    """seed, traced, init, group or sweep (see the module docstring); ValueError for an unknown field."""
    if name not in FIELD_NAMES:
        raise ValueError(f"grid: unknown config field {name!r}")
    if name == "seed":
        return "seed"
    if name in TRACEABLE:
        return "traced"
    if name == "init":
        return "init"
    return "sweep" if name in SWEEP_WIDE else "group"


def expand_grid(grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The per-model overrides of `grid`: a mapping field -> values (their Cartesian product, the
    last field varying fastest) or a sequence of override mappings. ValueError, naming the field,
    for an empty grid, a field without values, an unknown field or one the whole sweep shares."""
    if isinstance(grid, Mapping):
        if not grid:
            raise ValueError("grid: empty; give at least one field and its values")
        values = {}
        for name, vals in grid.items():
            _check_field(name)
            if isinstance(vals, (str, bytes, Mapping)) or not hasattr(vals, "__iter__"):
                raise ValueError(f"grid: {name} needs a list of values, got {vals!r}")
            values[name] = [_plain(v) for v in vals]
            if not values[name]:
                raise ValueError(f"grid: {name} has no values")
        return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise ValueError(f"grid must be a mapping of field -> values or a list of overrides, got {type(grid).__name__}")
    if len(grid) == 0:
        raise ValueError("grid: the list of overrides is empty")
    for i, overrides in enumerate(grid):
        if not isinstance(overrides, Mapping):
            raise ValueError(f"grid: model {i} must be a mapping of field -> value, got {overrides!r}")
        for name in overrides:
            _check_field(name)
    return [{name: _plain(v) for name, v in overrides.items()} for overrides in grid]


def grid_size(grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> int:
    """How many models `grid` makes (expand_grid's length), counted without listing them: the
    product of the value counts, a range's arithmetically; a value expand_grid refuses counts 1."""
    def count(values: Any) -> int:
        if isinstance(values, range):  # len() overflows past 2**63
            return max(0, -(-(values.stop - values.start) // values.step))
        return len(values) if isinstance(values, Sized) and not isinstance(values, (str, bytes, Mapping)) else 1

    return math.prod(count(v) for v in grid.values()) if isinstance(grid, Mapping) else count(grid)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (TrainConfig takes Python ints and floats)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def _check_field(name: str) -> None:
    if field_kind(name) == "sweep":
        raise ValueError(f"grid: {name} cannot differ between the models of a sweep: it is a setting of the "
                         f"whole sweep (give it once, e.g. --{name.replace('_', '-')})")


def model_configs(base: TrainConfig, overrides: Sequence[Mapping[str, Any]]) -> list[TrainConfig]:
    """One TrainConfig per model: `base` with its overrides, on one device each (the sweep's
    `devices` shard the models), its cosine schedule's length written down as a run records it
    (TrainConfig.with_fixed_schedule). ValueError naming the model and the bad value."""
    check_supported(base)
    configs = []
    for i, o in enumerate(overrides):
        try:
            configs.append(TrainConfig.from_dict({**base.to_dict(), **o, "devices": 1}).with_fixed_schedule())
            check_supported(configs[-1])
        except ValueError as exc:
            raise ValueError(f"grid: model {i} ({format_overrides(o)}): {exc}") from None
    return configs


# per-run instruments, and mid-epoch checkpoints (a sweep checkpoints at epoch ends): run the model alone
UNSUPPORTED = ("track_activations", "track_gradients", "audit_every", "checkpoint_every_steps")


def check_supported(config: TrainConfig) -> None:
    """ValueError for settings a sweep does not support."""
    for name in UNSUPPORTED:
        if getattr(config, name):
            raise ValueError(f"{name} is not supported in a sweep; train that model alone with jaxmlp train")
    if config.data_feed == "per_process":
        raise ValueError("a sweep keeps its training set resident on every device or streams it from disk: "
                         "data_feed must be auto, resident or stream")


def varying_fields(overrides: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fields that take more than one value over the models, in the order first seen."""
    names = list(dict.fromkeys(name for o in overrides for name in o))
    return [n for n in names if len({_hashable(o.get(n)) for o in overrides}) > 1]


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def format_overrides(overrides: Mapping[str, Any]) -> str:
    """'learning_rate=0.001 hidden=64,64' (or '(base)' for none)."""
    def show(v):
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else f"{v:g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={show(v)}" for k, v in overrides.items()) or "(base)"
