"""The compiled programs of one chunk: P same-shaped models as one program.

    programs = chunk_programs(group.program, spec, group.traced, group.inits, size=P, width=None, mesh=None)
    state = programs.init(init_key_data (P, 2), scheme (P,))              # stacked TrainState
    state, stats = programs.epoch(traced {name: (P,)}, train_key_data (P, 2), epoch (), state, active (P,), x, y)
    loss_sums, metric_sums = programs.metrics(params, eval_set)            # (P,), (P,)
    carry = programs.stream.start(state); carry = programs.stream.chunk(traced, carry, index, x, y, keys)
    state, stats = programs.stream.end(traced, active, state, carry)       # a streamed sweep's epoch

Each model's epoch IS the solo epoch (training.epoch.make_epoch), built inside the trace from
the model's Hyper: the group's numbers with the traced ones replaced by the model's own (its
optimizer and schedule included), its keys from its seed as in a solo run. A model whose epoch
went non-finite, or that is no longer `active` (stopped early, diverged, padding), keeps its
state: it is masked, never mixed with the others.

Across the model axis, `width` models step together as one vmapped (batched) computation and
the rest follow one after another (lax.map) inside the same program; width None vmaps all of
them. On several devices the model axis is split over the 1-D Mesh axis "models" (shard_map):
each device trains its share on its own copy of the training set, with no communication.

A streamed sweep (sweeps/stream.py) runs each model's solo streamed epoch instead
(training/stream.py): `stream` starts the models' scan carries, runs a chunk of k steps of
minibatches read once from disk and given to every model (replicated, never split: the models
share it), and ends the epoch with each model's own schedule, masked as above. The carry is
donated, the epoch-start state is not: a masked model goes back to it.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxmlp import parallel
from jaxmlp.config import TrainConfig
from jaxmlp.sweeps import hosts
from jaxmlp.training.epoch import epoch_end, make_chunk, make_epoch
from jaxmlp.training.evaluate import EvalSet, fold_batches, gather_rows_fn, metrics_step
from jaxmlp.training.hyper import hyper_of
from jaxmlp.training.plan import Plan, RunSpec, plan_of
from jaxmlp.training.programs import cached, chunk_input_specs, compiled, program, usual_chunk_lengths
from jaxmlp.training.state import epoch_key, init_state
from jaxmlp.training.step import start_carry
from jaxmlp.types import Array

MODELS = "models"  # the mesh axis of the model dimension


class StreamedModels(NamedTuple):
    """A streamed chunk's programs over its P models (sweeps/stream.py runs them)."""

    plan: Plan  # the group program's one-model Plan: its spec and chunk_steps
    start: Callable  # (state) -> the scan carry, leaves (P, ...)
    chunk: Callable  # (traced, carry, index (k,), x (k, K, B / K, D), y (k, K, B / K[, k']), keys (k,)) -> carry
    end: Callable  # (traced, active (P,), state, carry) -> (state, EpochStats (P,)), masked per model
    compile: Callable  # (chunk's argument specs) -> the chunk compiled for those shapes (programs.compiled)


class ChunkPrograms(NamedTuple):
    """The compiled programs of a chunk of P models (leading axis P everywhere)."""

    init: Callable  # (init key data (P, *KEY_SHAPE) uint32, scheme (P,) int32) -> TrainState, leaves (P, ...)
    epoch: Callable  # (traced, train key data, epoch, state, active, x, y) -> (state, EpochStats (P,)); state donated
    metrics: Callable  # metrics(params (P, ...), EvalSet) -> (loss sums (P,), metric sums (P,)), one program
    select: Callable  # (mask (P,), new, old) -> where(mask, new, old) per model: best params
    compile_seconds: float  # the epoch's (streamed: the chunk's) compile (~0 when an earlier chunk compiled it)
    sharding: NamedSharding | None  # the model axis over the mesh; None on one device
    stream: StreamedModels  # a streamed sweep's epoch, in chunks (its `epoch` is then never called)


KEY_SHAPE = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape  # one key's raw data


def models_mesh(devices: int) -> Mesh | None:
    """A 1-D Mesh of `devices` (N, or 0 = all) on the axis "models"; None for one device."""
    devs = parallel.resolve_devices(devices)
    return None if len(devs) == 1 else Mesh(np.array(devs), (MODELS,))


def traced_dtype(config: TrainConfig, name: str) -> np.dtype:
    """The dtype of a traced field's per-model values: int32 for warmup_epochs, else the params' dtype."""
    return np.dtype(np.int32 if name == "warmup_epochs" else config.dtype)


def over_models(fn: Callable, width: int | None) -> Callable:
    """`fn` of one model's arguments, mapped over the leading model axis of every argument:
    `width` models at a time vmapped, the rest one after another (None: all vmapped)."""
    def mapped(*args):
        n = jax.tree.leaves(args)[0].shape[0]
        if width == 1:  # a scan of the one-model program, even over one model
            return jax.lax.map(lambda a: fn(*a), args)
        if width is None or width >= n:
            return jax.vmap(fn)(*args)
        return jax.lax.map(lambda a: fn(*a), args, batch_size=width)

    return mapped


def on_mesh(fn: Callable, mesh: Mesh | None, split: tuple[bool, ...], **jit_kwargs) -> Callable:
    """`fn` jitted; on a mesh run per device on its share of the model axis (shard_map), where
    split[i] says whether argument i is split over the models (else replicated)."""
    if mesh is None:
        return jax.jit(fn, **jit_kwargs)
    specs = tuple(PartitionSpec(MODELS) if s else PartitionSpec() for s in split)
    # check_vma off: the solo epoch starts its scan carry from constants, which shard_map's
    # varying-axis types would ask to mark per device; every output is split over the models anyway.
    sharded = jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(MODELS), check_vma=False)
    return jax.jit(sharded, in_shardings=tuple(NamedSharding(mesh, spec) for spec in specs),
                   out_shardings=NamedSharding(mesh, PartitionSpec(MODELS)), **jit_kwargs)


def chunk_programs(config: TrainConfig, spec: RunSpec, traced: tuple[str, ...], inits: tuple[str | None, ...], *,
                   size: int, width: int | None, mesh: Mesh | None, streamed: bool = False) -> ChunkPrograms:
    """The programs of a chunk of `size` models of a group (`config`: the group's program config);
    streamed: its chunk compiled ahead, for its usual lengths, instead of the resident epoch."""
    programs = _jitted_chunk_programs(config, spec, inits, width, mesh)
    t0 = time.perf_counter()
    if streamed:
        _compile_stream_chunk(programs, traced, size)
        return programs._replace(compile_seconds=time.perf_counter() - t0)
    epoch = cached(("chunk_epoch", programs.epoch, config, spec, traced, size),
                   lambda: _compile_epoch(programs, config, spec, traced, size))
    return programs._replace(epoch=epoch, compile_seconds=time.perf_counter() - t0)


@program("chunk_programs")
def _jitted_chunk_programs(config: TrainConfig, spec: RunSpec, inits: tuple[str | None, ...], width: int | None,
                           mesh: Mesh | None) -> ChunkPrograms:
    """The chunk's jitted programs, built once per group program and layout."""
    plan = plan_of(config, spec, local=True)
    init = on_mesh(over_models(_model_init(plan, inits), width=1), mesh, (True, True))  # compiles as fast as one
    epoch = on_mesh(_chunk_epoch(plan, width), mesh, (True, True, False, True, True, False, False),
                    donate_argnums=(3,))
    select = jax.jit(lambda mask, new, old: jax.tree.map(lambda a, b: jnp.where(
        mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old))
    sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec(MODELS))
    return ChunkPrograms(init, epoch, _chunk_metrics(plan, width, mesh, sharding), select, 0.0, sharding,
                         _stream_models(plan, width, mesh))


def _chunk_metrics(plan: Plan, width: int | None, mesh: Mesh | None, sharding: NamedSharding | None) -> Callable:
    """metrics(params (P, ...), EvalSet) -> (loss sums (P,), metric sums (P,)): the solo run's
    per-batch evaluation for every model, one program for every split, driven batch by batch."""
    solo, gather = metrics_step(plan.loss_fn, plan.activation, plan.spec.classification), gather_rows_fn()

    def batch(params, acc, x, y, valid):  # acc: ((P,), (P,))
        return over_models(lambda p, a: solo(p, a, x, y, valid), width)(params, acc)

    program = on_mesh(batch, mesh, (True, True, False, False, False))

    def metrics(params, data: EvalSet):
        first = jax.tree.leaves(params)[0]
        zero = hosts.put(np.zeros(first.shape[0], first.dtype), sharding)
        return fold_batches(program, (zero, zero), params, data, gather=gather)

    return metrics


def _model_init(plan: Plan, inits: tuple[str | None, ...]) -> Callable:
    """init(key data, scheme ()) -> one model's fresh TrainState, with init scheme inits[scheme]."""
    config, sizes, optimizer = plan.config, plan.sizes, plan.optimizer  # only the optimizer state's structure

    def init(key_data: Array, scheme: Array):
        key = jax.random.wrap_key_data(key_data)
        states = [init_state(key, dataclasses.replace(config, init=name), sizes, optimizer) for name in inits]
        return states[0] if len(states) == 1 else jax.tree.map(lambda *s: jax.lax.select_n(scheme, *s), *states)

    return init


def _chunk_epoch(plan: Plan, width: int | None) -> Callable:
    """epoch(traced, train key data, epoch, state, active, x, y) over the models it is given."""
    base = hyper_of(plan.config)

    def model_epoch(traced, train_key_data, epoch, state, active, x, y):  # one model
        hyper = base._replace(**traced)
        epoch_fn = make_epoch(plan.with_hyper(hyper), hyper)
        new, stats = epoch_fn(epoch_key(jax.random.wrap_key_data(train_key_data), epoch), state, x, y)
        return kept(active & stats.finite, new, state), stats

    def chunk_epoch(traced, train_key_data, epoch, state, active, x, y):
        return over_models(lambda t, k, s, a: model_epoch(t, k, epoch, s, a, x, y), width)(
            traced, train_key_data, state, active)

    return chunk_epoch


def kept(keep: Array, new, old):
    """One model's `new` state where `keep` (), else its `old` one."""
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)


def _stream_models(plan: Plan, width: int | None, mesh: Mesh | None) -> StreamedModels:
    """A streamed chunk's start, chunk and end over the models it is given; the chunk's inputs
    (index, x, y, keys) are the same for every model, replicated on a mesh."""
    base, steps = hyper_of(plan.config), plan.spec.steps_per_epoch

    def model_chunk(traced, carry, index, x, y, keys):  # one model: the solo streamed chunk, its own numbers
        hyper = base._replace(**traced)
        return make_chunk(plan.with_hyper(hyper), hyper)(carry, index, x, y, keys)

    def chunk(traced, carry, index, x, y, keys):
        return over_models(lambda t, c: model_chunk(t, c, index, x, y, keys), width)(traced, carry)

    def model_end(traced, active, state, carry):  # the model's own schedule gives its lr column
        hyper = base._replace(**traced)
        new, stats = epoch_end(state, carry, steps, plan.with_hyper(hyper).schedule, False)
        return kept(active & stats.finite, new, state), stats

    jitted = on_mesh(chunk, mesh, (True, True, False, False, False, False), donate_argnums=(1,))

    def compile_chunk(*args):  # once per chunk length (the usual ones ahead: _compile_stream_chunk)
        return compiled(("sweep_stream_chunk", jitted), jitted, *args)

    return StreamedModels(plan, on_mesh(over_models(start_carry, width), mesh, (True,)),
                          lambda *args: compile_chunk(*args)(*args),
                          on_mesh(over_models(model_end, width), mesh, (True,) * 4), compile_chunk)


def _compile_stream_chunk(programs: ChunkPrograms, traced: tuple[str, ...], size: int) -> None:
    """The streamed chunk of `size` models compiled for its usual lengths: k and the epoch's last,
    S mod k, its arguments placed as sweeps/stream.py places them."""
    plan, config = programs.stream.plan, programs.stream.plan.config
    split, rep = (None, None) if programs.sharding is None else (
        programs.sharding, NamedSharding(programs.sharding.mesh, PartitionSpec()))
    key_data = jax.ShapeDtypeStruct((size, *KEY_SHAPE), jnp.uint32)
    state = jax.eval_shape(programs.init, key_data, jax.ShapeDtypeStruct((size,), jnp.int32))
    carry = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=split),
                         jax.eval_shape(programs.stream.start, state))
    values = {name: jax.ShapeDtypeStruct((size,), traced_dtype(config, name), sharding=split) for name in traced}
    for k in usual_chunk_lengths(plan):
        programs.stream.compile(values, carry, *chunk_input_specs(plan, k, rep, rep))


def _compile_epoch(programs: ChunkPrograms, config: TrainConfig, spec: RunSpec, traced: tuple[str, ...],
                   size: int) -> Callable:
    """The chunk's epoch compiled for `size` models (jit's cache: ~0 s for a size compiled before)."""
    key_data = jax.ShapeDtypeStruct((size, *KEY_SHAPE), jnp.uint32)
    state = jax.eval_shape(programs.init, key_data, jax.ShapeDtypeStruct((size,), jnp.int32))
    dtype = np.dtype(config.dtype)
    x = jax.ShapeDtypeStruct((spec.n_train, spec.sizes[0]), dtype)
    y = jax.ShapeDtypeStruct((spec.n_train, *spec.target_shape), np.int32 if spec.classification else dtype)
    values = {name: jax.ShapeDtypeStruct((size,), traced_dtype(config, name)) for name in traced}
    return programs.epoch.lower(values, key_data, jax.ShapeDtypeStruct((), jnp.int32), state,
                                jax.ShapeDtypeStruct((size,), jnp.bool_), x, y).compile()


def chunk_abstract_state(config: TrainConfig, spec: RunSpec, inits: tuple[str | None, ...], *, size: int,
                         mesh: Mesh | None):
    """ShapeDtypeStructs (sharded over the models on a mesh) of a chunk's stacked TrainState: a
    checkpoint's restore target. Nothing is compiled."""
    programs = _jitted_chunk_programs(config, spec, inits, None, mesh)
    key_data = jax.ShapeDtypeStruct((size, *KEY_SHAPE), jnp.uint32)
    state = jax.eval_shape(programs.init, key_data, jax.ShapeDtypeStruct((size,), jnp.int32))
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=programs.sharding), state)
