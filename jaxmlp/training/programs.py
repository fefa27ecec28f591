"""The one cache of built and compiled programs, and a run's own: `run_programs(plan)` ->
`Programs`, the jitted init and the compiled epoch that `fit` and the benchmarks share.

    programs = run_programs(plan)
    state = programs.init(plan.place(run_keys(config.seed)[0]))
    state, stats = programs.epoch(plan.place(epoch_key(train_key, 0)), state, x, y)

`cached(key, build)` is the only place a program is kept for later: every key is explicit about
what decides the program (the program config, the data's shapes and layout) and gets the JAX
settings a trace reads (precision.ambient_settings) appended, so a program built under one
setting is never handed out under another. `program_key` resets every config field that does
not change the programs (config.HOST_ONLY_FIELDS), so fits that differ only in those (seed
sweeps, a resume with more epochs) share one compile.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Hashable, NamedTuple

import jax
import numpy as np

from jaxmlp.config import HOST_ONLY_FIELDS, TrainConfig
from jaxmlp.precision import ambient_settings
from jaxmlp.training.epoch import epoch_end, make_chunk, make_epoch
from jaxmlp.training.gradtrack import start_track
from jaxmlp.training.step import StepCarry, start_carry
from jaxmlp.training.plan import Plan
from jaxmlp.training.state import EpochStats, TrainState, init_state

_PROGRAMS: dict[Hashable, Any] = {}
MAX_PROGRAMS = 256  # the oldest go first beyond this (a long-lived process sweeping many shapes)


def cached(key: tuple, build: Callable[[], Any]) -> Any:
    """`build()`'s program, built once per `key` and the JAX settings in force."""
    program = lookup(key)
    return keep(key, build()) if program is None else program


def program(name: str) -> Callable:
    """Decorator: the builder `build(*args) -> program` keeps its programs in the cache under
    (name, *args); its arguments must be hashable and decide the program."""
    def decorate(build: Callable) -> Callable:
        @functools.wraps(build)
        def built(*args):
            return cached((name, *args), lambda: build(*args))

        return built

    return decorate


def lookup(key: tuple) -> Any | None:
    """The program kept under `key` and the JAX settings in force, or None."""
    return _PROGRAMS.get((*key, ambient_settings()))


def keep(key: tuple, program: Any) -> Any:
    """Keep `program` under `key` and the JAX settings in force; returns it."""
    if len(_PROGRAMS) >= MAX_PROGRAMS:
        del _PROGRAMS[next(iter(_PROGRAMS))]
    _PROGRAMS[(*key, ambient_settings())] = program
    return program


def compiled(key: tuple, jitted: Callable, *args) -> Callable:
    """`jitted` compiled ahead of time for arguments shaped like `args` (arrays or
    ShapeDtypeStructs, their shardings included), once per process: `key` names what decides
    the program besides those shapes (a fresh `jitted` of the same key is not compiled again)."""
    specs = tuple(_shape_spec(a) for a in args)
    return cached((*key, specs), lambda: jitted.lower(*(jax.tree.unflatten(t, leaves)
                                                         for t, leaves in specs)).compile())


def _shape_spec(tree) -> tuple:
    """A hashable (treedef, ShapeDtypeStruct leaves) of a tree of arrays or ShapeDtypeStructs; an
    array on the default device counts as unplaced (the program compiled for one serves both)."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=_placement(a)) for a in leaves)


def _placement(a):
    sharding = getattr(a, "sharding", None)
    default = isinstance(sharding, jax.sharding.SingleDeviceSharding) and sharding.device_set == {jax.devices()[0]}
    return None if default else sharding


class StreamPrograms(NamedTuple):
    """A streamed run's programs (stream.py): start(state) -> carry; chunk(carry, index, x, y,
    keys) -> carry (donates the carry; compiled once per chunk length, the usual ones when the
    run starts); end(state, carry) -> (state, stats)."""

    start: Callable
    chunk: Callable
    end: Callable


def stream_programs(plan: Plan) -> StreamPrograms:
    """The programs of `plan`'s streamed epochs, kept in the program cache; the chunk is compiled
    here for its usual lengths (usual_chunk_lengths)."""
    key = (program_key(plan.config), plan.spec, plan.data_parallel)
    dp, config, steps = plan.data_parallel, plan.config, plan.spec.steps_per_epoch
    rep = {} if dp is None else dict(in_shardings=dp.replicated, out_shardings=dp.replicated)

    def start(state: TrainState) -> StepCarry:
        return start_carry(state, start_track(config, steps) if config.track_gradients else None)

    def end(state: TrainState, carry: StepCarry) -> tuple[TrainState, EpochStats]:
        return epoch_end(state, carry, steps, plan.schedule, config.track_gradients)

    chunk_kwargs = {} if dp is None else dict(
        in_shardings=(dp.replicated, dp.replicated, dp.batch_sharding(2), dp.batch_sharding(2), dp.replicated),
        out_shardings=dp.replicated)
    jitted = cached(("stream_chunk", *key), lambda: jax.jit(make_chunk(plan), donate_argnums=(0,), **chunk_kwargs))

    def chunk(carry, index, x, y, keys):  # compiled per chunk length (a checkpoint's cut may add one)
        return compiled(("stream_chunk", *key), jitted, carry, index, x, y, keys)(carry, index, x, y, keys)

    replicated, split = (None, None) if dp is None else (dp.replicated, dp.batch_sharding(2))
    carry = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                         jax.eval_shape(start, plan.abstract_state()))
    for k in usual_chunk_lengths(plan):
        compiled(("stream_chunk", *key), jitted, carry, *chunk_input_specs(plan, k, split, replicated))
    return StreamPrograms(cached(("stream_start", *key), lambda: jax.jit(start, **rep)), chunk,
                          cached(("stream_end", *key), lambda: jax.jit(end, **rep)))


def usual_chunk_lengths(plan: Plan) -> set[int]:
    """The lengths a streamed epoch's chunks usually have, compiled when a run starts: k and the
    epoch's last, S mod k (a checkpoint's cut may add one, compiled when it comes)."""
    return {plan.chunk_steps, plan.spec.steps_per_epoch % plan.chunk_steps} - {0}


def chunk_input_specs(plan: Plan, k: int, data_sharding, sharding) -> tuple:
    """ShapeDtypeStructs of a chunk of k steps' inputs (index (k,), x, y, keys (k,)): x and y
    placed by `data_sharding`, the index and keys by `sharding` (None: the default device)."""
    data = [jax.ShapeDtypeStruct((k, *s.shape[1:]), s.dtype, sharding=data_sharding) for s in plan.data_specs()]
    key_dtype = jax.eval_shape(lambda: jax.random.key(0)).dtype
    return (jax.ShapeDtypeStruct((k,), np.int32, sharding=sharding), *data,
            jax.ShapeDtypeStruct((k,), key_dtype, sharding=sharding))


class Programs(NamedTuple):
    """A run's programs: init(key) -> TrainState (jitted); epoch(key, state, x, y) -> (state,
    EpochStats), compiled for the feed's data shapes, or a streamed epoch's `stream` programs;
    compile_seconds: the epoch's (or the chunk's) compile time
    (~0 when an earlier run compiled the same program). On several devices both take and return
    replicated global arrays."""

    init: Callable
    epoch: Callable | None  # None: adaptive_batch (segments) or data_feed stream (chunks)
    compile_seconds: float
    stream: StreamPrograms | None = None  # data_feed stream: the chunked epoch's


def program_key(config: TrainConfig) -> TrainConfig:
    """The part of a cache key that is the config: `config` with every field that does not change
    the programs set to its default. Only a cosine schedule's length reads `epochs`: it becomes
    `epochs` here, the rest resets."""
    fields = TrainConfig.__dataclass_fields__
    reset: dict[str, Any] = {name: fields[name].default for name in HOST_ONLY_FIELDS}
    cosine = config.schedule in ("cosine", "warmup_cosine")
    reset["epochs"] = config.schedule_length() if cosine else max(1, config.warmup_epochs)
    reset["schedule_epochs"] = None
    return dataclasses.replace(config, **reset)


def run_programs(plan: Plan) -> Programs:
    """The jitted init and the compiled epoch of `plan` (built by the first plan of their key)."""
    key = (program_key(plan.config), plan.spec, plan.feed, plan.data_parallel)
    t0 = time.perf_counter()
    epoch = lookup(("epoch", *key))
    stream = None
    if plan.feed == "stream":  # chunks of k steps (stream.py)
        epoch, stream = None, stream_programs(plan)
    elif plan.config.adaptive_batch:  # segments compiled per batch size (adaptive_batch.py)
        epoch = None
    elif epoch is None:  # jitted with the state donated, on a mesh with its shardings; compiled for the data
        shardings, key_spec = epoch_shardings(plan), jax.eval_shape(lambda: jax.random.key(0))
        shapes = (key_spec, plan.abstract_state(), *plan.data_specs())
        jitted = jax.jit(make_epoch(plan), donate_argnums=(1,), **shardings)
        epoch = keep(("epoch", *key), jitted.lower(*shapes).compile())
    seconds = time.perf_counter() - t0
    dp = plan.data_parallel
    init = cached(("init", key[0], plan.sizes, dp), lambda: jax.jit(
        lambda k: init_state(k, plan.config, plan.sizes, plan.optimizer), **(dp.jit_kwargs(1) if dp else {})))
    return Programs(init, epoch, seconds, stream)


def epoch_shardings(plan: Plan) -> dict[str, Any]:
    """jax.jit's in_shardings and out_shardings of the epoch on the plan's mesh ({} without one)."""
    dp = plan.data_parallel
    if dp is None:
        return {}
    data = dp.replicated if plan.feed == "resident" else dp.batch_sharding(axis=2)  # (S, K, B / K, ...)
    return dict(in_shardings=(dp.replicated, dp.replicated, data, data), out_shardings=dp.replicated)

