"""How a sweep runs its models: groups (one compiled program each) and chunks (the models a
program holds at a time, sized from shapes to fit the device memory).

    groups = plan_groups(configs)       # models whose programs differ only in traced numbers, seed and init
    groups = plan_groups(configs, by_seed=True)   # a streamed sweep: one stream, one seed, per group
    size = models_per_program_of(group_plan, models=8, devices=2, width=None, limit=device_memory_limit())
    chunks = plan_chunks(groups, [size, ...], devices=2)

A program of P models on D devices holds P / D models per device: their params, optimizer state
(and best params with restore_best), and the activations of the `width` models that step
together (all of them when vmapped, one when they run one after another), plus the shared
training set once (training.memory gives each part's bytes), or, streamed, the chunks of rows in
flight once.

A streamed sweep (a training set on disk that data_feed stream, or auto when it does not fit,
reads chunk by chunk: sweeps/stream.py) groups by seed too: a model's minibatches come from its
seed, so the models of a chunk share one seed and so one stream of rows read once from disk.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple, Sequence

import jax
from jax.sharding import Mesh

from jaxmlp import distributed
from jaxmlp.config import TrainConfig
from jaxmlp.sweeps.grid import expand_grid, model_configs
from jaxmlp.sweeps.chunk_programs import models_mesh
from jaxmlp.training.hyper import TRACEABLE
from jaxmlp.training.memory import (USABLE_FRACTION, MemoryEstimate, check_memory, device_memory_limit,
                                    estimate_memory, format_bytes)
from jaxmlp.training.plan import Plan, RunSpec, plan_run, with_feed

# Traced fields whose value decides whether a part of the program exists (the weight-decay term,
# the l2 penalty, the dropout mask, the input noise, the warm-up): a group's program takes the
# largest, so the part exists when any member needs it; a member's 0 then changes nothing.
STRUCTURAL = ("weight_decay", "l2", "dropout", "input_noise", "warmup_epochs")


class Group(NamedTuple):
    """Models trained by one compiled program."""

    index: int
    members: tuple[int, ...]  # model indices, in grid order
    program: TrainConfig  # the members' shared fields; each STRUCTURAL traced field at its largest value
    traced: tuple[str, ...]  # the Hyper fields that differ between the members
    inits: tuple[str | None, ...]  # the members' distinct init schemes


class Chunk(NamedTuple):
    """The models one program holds at a time; chunks of a group run one after another."""

    index: int
    group: int
    members: tuple[int, ...]  # the models it trains
    size: int  # models in the program: the members, then copies of the last one (padding, never recorded)


def plan_groups(configs: Sequence[TrainConfig], *, by_seed: bool = False) -> list[Group]:
    """Group the models' configs by everything but their seed (unless `by_seed`: a streamed
    sweep's), traced numbers and init."""
    by_key: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        by_key.setdefault(_group_key(config, by_seed), []).append(i)
    groups = []
    for index, members in enumerate(by_key.values()):
        cs = [configs[i] for i in members]
        traced = tuple(name for name in TRACEABLE if len({getattr(c, name) for c in cs}) > 1)
        # seed: the programs never read it (a model's keys are an input): one value for every group,
        # so groups that differ only in their seed (a streamed sweep's) share their compiled programs
        program = dataclasses.replace(cs[0], seed=TrainConfig.__dataclass_fields__["seed"].default,
                                      **{n: max(getattr(c, n) for c in cs) for n in traced if n in STRUCTURAL})
        groups.append(Group(index, tuple(members), program, traced, tuple(dict.fromkeys(c.init for c in cs))))
    return groups


def _group_key(config: TrainConfig, by_seed: bool) -> tuple:
    skip = {"init", *TRACEABLE} if by_seed else {"seed", "init", *TRACEABLE}
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in config.to_dict().items() if k not in skip)


def program_bytes(estimate: MemoryEstimate, models: int, *, devices: int, width: int | None,
                  restore_best: bool) -> int:
    """Device bytes per device of a program of `models` models (`estimate`: one model's)."""
    local = -(-models // devices)
    per_model = estimate.params * (2 if restore_best else 1) + estimate.optimizer
    stepping = local if width is None else min(width, local)
    return estimate.data + local * per_model + stepping * estimate.activations


def models_per_program_of(plan: Plan, *, models: int, devices: int, width: int | None, limit: int | None,
                          asked: int | None = None, feed: str = "resident") -> int:
    """How many of a group's `models` (`plan`: the group program's training Plan) one program
    holds, a multiple of `devices`: `asked` (rounded down), or as many as fit `limit` bytes per
    device (all of them without a limit). feed: "resident" (every device holds the training set)
    or "stream" (the chunks in flight, shared by the models).

    ValueError naming what to lower when one model does not fit, or `asked` models do not.
    """
    config = plan.config
    estimate = estimate_memory(config, plan.spec, plan.shapes, feed=feed)  # the data once, for every model
    check_memory(estimate, limit, what="one model of this sweep")
    # a multiple of the devices: all the models, or as many as asked (rounded down, one per device at least)
    want = -(-models // devices) * devices if asked is None else max(devices, asked // devices * devices)
    if limit is None:
        return want

    def need(n: int) -> int:
        return program_bytes(estimate, n, devices=devices, width=width, restore_best=config.restore_best)

    budget = int(USABLE_FRACTION * limit)
    lo, hi = 0, want // devices  # the largest multiple of `devices` up to `want` that fits, by bisection
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid * devices) <= budget else (lo, mid - 1)
    most = lo * devices
    if most == want:
        return want
    if asked is None and most:
        return most
    raise ValueError(f"{want} models per program need about {format_bytes(need(want))} per device but a device has "
                     f"{format_bytes(limit)}; lower models_per_program to {most}" if most else
                     f"one model per device needs about {format_bytes(need(devices))} (restore_best keeps a second "
                     f"copy of its params) but a device has {format_bytes(limit)}; lower hidden or batch_size")


def plan_chunks(groups: Sequence[Group], per_program: Sequence[int], *, devices: int) -> list[Chunk]:
    """Each group's members in chunks of at most its `per_program` models, all of one padded size
    (a multiple of `devices`), so that a group compiles once."""
    chunks: list[Chunk] = []
    for group, most in zip(groups, per_program):
        most, n = max(devices, most // devices * devices), len(group.members)
        count = -(-n // most)
        size = -(-(-(-n // count)) // devices) * devices
        for start in range(0, n, size):
            chunks.append(Chunk(len(chunks), group.index, group.members[start:start + size], size))
    return chunks


class SweepPlan(NamedTuple):
    """Everything decided before training: the models, their groups and chunks, where they run."""

    base: TrainConfig  # the sweep-wide settings (its devices: the model axis's)
    overrides: list[dict[str, Any]]  # per model
    configs: list[TrainConfig]  # per model: its solo run's config (one device)
    groups: list[Group]
    specs: list[RunSpec]  # per group
    chunks: list[Chunk]
    width: int | None  # models vmapped together (None: all of a program's)
    mesh: Mesh | None  # the "models" axis over the devices (of every process); None on one device
    streamed: bool = False  # the training set on disk, read chunk by chunk (sweeps/stream.py)

    @property
    def devices(self) -> int:
        """The devices of the model axis, over every process."""
        return 1 if self.mesh is None else int(self.mesh.devices.size)

    def idle_line(self) -> str | None:
        """One line when the grid leaves devices idle (no program has a model for each), else None."""
        busiest = max(len(c.members) for c in self.chunks)
        if busiest >= self.devices:
            return None
        return (f"{self.devices - busiest} of {self.devices} devices idle: the largest program has {busiest} "
                f"model(s), one per device, and the idle devices run masked copies (a grid of {self.devices} "
                "models or more uses them all)")


def make_plan(config: TrainConfig, grid, train, val=None, test=None, *, models_per_program: int | None = None,
              width: int | str | None = "auto", layout: list | None = None) -> SweepPlan:
    """The plan of sweeping `grid` over `config` on this data; ValueError naming what is wrong
    (the grid, a model's config against the data, the device memory). `layout`: the chunks of a
    checkpointed plan ([group, members, size] each), which a resumed sweep repeats.

    With several processes (jax.distributed) the model axis spans every device of every process;
    first of all the processes compare their grids and settings (one CRC-32 each), so that hosts
    started with different grids all stop here, before any other collective step."""
    distributed.assert_same_everywhere(grid=json.dumps([grid, models_per_program, width, layout], default=list).encode())
    if models_per_program is not None and models_per_program < 1:
        raise ValueError(f"models_per_program must be >= 1, got {models_per_program}")
    config = config.with_auto_resolved(len(train), None if val is None else len(val))  # fit's auto settings
    config = with_feed(config, train)  # data_feed auto: stream a set on disk that does not fit, as fit would
    streamed = hasattr(train, "rows") and config.data_feed == "stream"
    overrides = expand_grid(grid)
    configs = model_configs(config, overrides)
    groups = plan_groups(configs, by_seed=streamed)
    plans = [plan_run(group.program, train, val, test, local=True) for group in groups]  # every check, per group
    specs = [p.spec for p in plans]
    mesh = models_mesh(config.devices)
    devices = 1 if mesh is None else int(mesh.devices.size)
    width = resolve_width(width)
    if layout is None:
        limit = device_memory_limit()
        sizes = [models_per_program_of(p, models=len(g.members), devices=devices, width=width, limit=limit,
                                       asked=models_per_program, feed="stream" if streamed else "resident")
                 for g, p in zip(groups, plans)]
        chunks = plan_chunks(groups, sizes, devices=devices)
    else:
        chunks = [Chunk(i, g, tuple(members), size) for i, (g, members, size) in enumerate(layout)]
        if [m for c in chunks for m in c.members] != [m for g in groups for m in g.members]:
            raise ValueError("the checkpoint was written by another sweep: its models or groups differ from this grid")
    return SweepPlan(config, overrides, configs, groups, specs, chunks, width, mesh, streamed)


def resolve_width(width: int | str | None) -> int | None:
    """auto: one model at a time on a CPU, where vmapping buys no clear speed (results/sweep.md) and
    each model then runs its solo run's program, bit for bit; all vmapped on accelerators, where
    one model's step leaves the chip idle; all (or None): all."""
    if width == "auto":
        return 1 if jax.devices()[0].platform == "cpu" else None
    if width in (None, "all"):
        return None
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, auto or all, got {width!r}")
    return width
