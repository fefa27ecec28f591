"""`sweep`: train every model of a grid as its solo `fit` would, one compiled program per group,
chunk after chunk, with per-model early stopping, restore-best and divergence by masking.

    result = sweep(TrainConfig(hidden=(512, 512), epochs=10, val_fraction=0.1),
                   {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3], "seed": range(4)}, splits.train, splits.val, splits.test)
    print(result.format_table())          # ranked by validation loss
    result.best_params                    # the best model's params, as its own fit would return them

Phases, as in `fit`: plan (grid -> configs -> groups -> chunks sized to the device memory), place
the data once (a streamed sweep leaves the training set on disk: sweeps/stream.py), restore or
start; per chunk: init, then per epoch one program call for all its models (streamed: one per
chunk of steps), the evaluations, and per model fit's loop policy (training/policy.py: the
evaluation cadence, the epoch record, divergence and early stopping), and restore-best: a
stopped or diverged model keeps its state while the others go on, and nothing crosses between
models. At a chunk's end its models' final evaluation and the
best model so far (kept whole, for `best/`). Like `fit`, it writes and prints nothing itself; the
CLI passes a Checkpointer and callbacks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from jaxmlp.config import TrainConfig
from jaxmlp.sweeps import hosts, store
from jaxmlp.sweeps.plan import Chunk, SweepPlan, make_plan
from jaxmlp.sweeps.chunk_programs import ChunkPrograms, chunk_programs, traced_dtype
from jaxmlp.sweeps.result import ModelResult, SweepResult
from jaxmlp.training.evaluate import EvalSet, eval_batch_rows, make_eval_set
from jaxmlp.sweeps.stream import shared_stream, streamed_epoch, streamed_evals
from jaxmlp.training.feed import host_arrays, row_reader
from jaxmlp.training.fit import HEAD_ROWS
from jaxmlp.training.policy import divergence, early_stop, epoch_record, eval_due, zero_score_loss
from jaxmlp.training.state import run_keys
from jaxmlp.types import Array


class SweepData(NamedTuple):
    """The data on the devices, placed once for every chunk."""

    x: Array | None  # (N, D) the training set; None streamed
    y: Array | None  # (N,) labels or (N, k) targets; None streamed
    evals: dict[str, tuple[EvalSet, int]]  # train (its rows of x), val, test: (EvalSet, examples)
    classification: bool
    host_y: np.ndarray  # y on the host (streamed: its first HEAD_ROWS, as fit): the loss of all-zero scores
    read: Callable | None = None  # streamed: the training set's rows on the host (feed.row_reader)
    check_data: Callable[[], None] = lambda: None  # streamed: DataError when a shard changed


class ChunkInputs(NamedTuple):
    """What a chunk's programs take per model, on the devices: leading axis P."""

    traced: dict[str, Array]  # the group's traced fields, each (P,)
    init_keys: Array  # (P, *KEY_SHAPE) raw key data
    schemes: Array  # (P,) int32: index of the model's init scheme in group.inits
    train_keys: Array  # (P, *KEY_SHAPE)


def sweep(config: TrainConfig, grid, train, val=None, test=None, *, callbacks: Sequence[Any] = (),
          checkpointer=None, resume: bool = False, models_per_program: int | None = None,
          width: int | str | None = "auto", keep_params: bool = False) -> SweepResult:
    """Train the models of `grid` (field -> values, a Cartesian product; or a list of overrides)
    on top of `config`; returns a SweepResult.

    Each model is its solo `fit(model config, train, val, test)`. Models that differ only in
    traced numbers, seeds and init share one program; other fields split them into groups, run
    one after another. `config.devices` shards the model axis (the models never share a batch).
    models_per_program: the models one program holds (default: as many as fit the device
    memory); width: models vmapped together (auto: 1 on CPU, all on accelerators; all). With a
    `checkpointer` the stacked state is saved every `checkpoint_every` epochs and at each
    chunk's end, and resume=True continues bit-identically. keep_params: keep every model's
    kept params on the host (ModelResult.params). Raises ValueError for a bad grid, a model's
    config that does not fit the data, or models that do not fit the device memory.
    """
    if keep_params and resume:
        raise ValueError("keep_params cannot be combined with resume (earlier chunks' params are not checkpointed)")
    saved = store.read_plan(checkpointer) if resume and checkpointer is not None else None
    if saved and saved.get("streamed") and config.data_feed == "auto":  # streamed before: streams on, whatever memory says
        config = dataclasses.replace(config, data_feed="stream")
    plan = make_plan(config, grid, train, val, test, models_per_program=models_per_program,
                     width=saved["width"] if saved else width, layout=saved and saved["chunks"])
    data = place_data(plan, train, val, test)
    progress = store.restore(checkpointer, plan) if saved else store.SweepProgress()
    for cb in callbacks:
        cb.on_sweep_begin(begin_info(plan, progress))
    for chunk in plan.chunks[progress.chunk:]:
        run_chunk(plan, data, chunk, progress, checkpointer, callbacks, keep_params)
    result = SweepResult([progress.models[i] for i in range(len(plan.configs))],
                         progress.leader and progress.leader.snapshot, progress.compile_seconds,
                         progress.train_seconds)
    for cb in callbacks:
        cb.on_sweep_end(result)
    return result


def place_data(plan: SweepPlan, train, val, test) -> SweepData:
    """The training set on every device of the plan, once; the evaluation sets beside it. A
    streamed sweep reads nothing whole: its splits are evaluated batch by batch as they are read."""
    base = plan.base
    replicated = None if plan.mesh is None else jax.sharding.NamedSharding(plan.mesh, jax.sharding.PartitionSpec())
    rows = eval_batch_rows(base.eval_batch_size, len(train))  # the solo run's batches: one program for every split
    if plan.streamed:
        read = row_reader(train, base.dtype)
        evals = streamed_evals(plan, {"train": train, "val": val, "test": test}, base.dtype, rows)
        return SweepData(None, None, evals, train.num_classes is not None,
                         read(np.arange(min(len(train), HEAD_ROWS)))[1], read, train.check_unchanged)
    host = host_arrays(train, base.dtype)
    x, y = hosts.put(host, replicated)  # each process places its own devices' copies
    evals = {"train": (make_eval_set(*host, rows, resident=(x, y)), len(train))}
    for name, split in (("val", val), ("test", test)):
        if split is not None:
            evals[name] = (make_eval_set(*host_arrays(split, base.dtype), rows), len(split))
    evals = {name: (hosts.put(eval_set, replicated), n) for name, (eval_set, n) in evals.items()}
    return SweepData(x, y, evals, train.num_classes is not None, host[1])


def begin_info(plan: SweepPlan, progress: store.SweepProgress) -> dict[str, Any]:
    """What a callback's on_sweep_begin receives."""
    epochs = [plan.groups[c.group].program.epochs for c in plan.chunks]
    return dict(plan=plan, models=len(plan.configs), groups=len(plan.groups), chunks=len(plan.chunks),
                processes=jax.process_count(),
                total_epochs=sum(epochs), done_epochs=sum(epochs[:progress.chunk]) + progress.epoch,
                records=[{"model": m.index, **r} for m in progress.models.values() for r in m.history.records()])


def run_chunk(plan: SweepPlan, data: SweepData, chunk: Chunk, progress: store.SweepProgress, checkpointer,
              callbacks: Sequence[Any], keep_params: bool) -> None:
    """Train one chunk from `progress` (fresh, or resumed mid-chunk) to its end."""
    group, spec = plan.groups[chunk.group], plan.specs[chunk.group]
    programs = chunk_programs(group.program, spec, group.traced, group.inits, size=chunk.size, width=plan.width,
                              mesh=plan.mesh, streamed=plan.streamed)
    progress.compile_seconds += programs.compile_seconds
    inputs = chunk_inputs(plan, chunk, programs)
    carry = progress.carry or start_chunk(plan, chunk, programs, inputs, progress)
    epochs = group.program.epochs
    zero = functools.cache(functools.partial(zero_score_loss, spec.loss, data.host_y, spec.sizes[-1]))  # when asked
    with (shared_stream(plan, data.read, chunk, programs, progress.epoch) if plan.streamed
          else contextlib.nullcontext()) as chunks:
        for epoch in range(progress.epoch, epochs):
            carry, records = run_epoch(plan, data, chunk, programs, inputs, carry, epoch, progress, zero, chunks)
            progress.epoch = epoch + 1
            for cb in callbacks:
                cb.on_epoch_end(records)
            if not carry.active.any():
                break
            every = plan.base.checkpoint_every
            if checkpointer is not None and every and (epoch + 1) % every == 0 and epoch + 1 < epochs:
                store.save(checkpointer, plan, chunk, carry, inputs.train_keys, progress, complete=False)
    finish_chunk(plan, data, chunk, programs, inputs, carry, progress, keep_params)
    if checkpointer is not None:
        store.save(checkpointer, plan, chunk, carry, inputs.train_keys, progress, complete=True)
    progress.chunk, progress.epoch, progress.carry = chunk.index + 1, 0, None
    for cb in callbacks:
        cb.on_chunk_end(chunk, [progress.models[i] for i in chunk.members])


def padded_members(chunk: Chunk) -> tuple[int, ...]:
    """The chunk's models, then copies of its last one up to its size (padding: never recorded)."""
    return chunk.members + (chunk.members[-1],) * (chunk.size - len(chunk.members))


def chunk_inputs(plan: SweepPlan, chunk: Chunk, programs: ChunkPrograms) -> ChunkInputs:
    """Each model's traced values, init scheme and keys (from its seed, as a solo run draws them)."""
    group = plan.groups[chunk.group]
    configs = [plan.configs[i] for i in padded_members(chunk)]
    keys = [[np.asarray(jax.random.key_data(k)) for k in run_keys(c.seed)] for c in configs]
    traced = {name: np.array([getattr(c, name) for c in configs], traced_dtype(group.program, name))
              for name in group.traced}
    schemes = np.array([group.inits.index(c.init) for c in configs], np.int32)
    host = ChunkInputs(traced, np.stack([k[0] for k in keys]), schemes, np.stack([k[1] for k in keys]))
    return hosts.put(host, programs.sharding)


def start_chunk(plan: SweepPlan, chunk: Chunk, programs: ChunkPrograms, inputs: ChunkInputs,
                progress: store.SweepProgress) -> store.ChunkCarry:
    """Fresh models from their seeds: the chunk's stacked state, every real model active."""
    for i in chunk.members:
        progress.models[i] = ModelResult(i, chunk.group, plan.overrides[i], plan.configs[i])
    active = np.arange(chunk.size) < len(chunk.members)
    return store.ChunkCarry(programs.init(inputs.init_keys, inputs.schemes), None, active)


def run_epoch(plan: SweepPlan, data: SweepData, chunk: Chunk, programs: ChunkPrograms, inputs: ChunkInputs,
              carry: store.ChunkCarry, epoch: int, progress: store.SweepProgress,
              zero_score: Callable[[], float], chunks=None) -> tuple[store.ChunkCarry, list[dict[str, Any]]]:
    """0-based `epoch` of every model of the chunk (one program call; streamed, one per chunk of
    `chunks`: shared_stream), its evaluations and each model's verdict (`zero_score()`: the loss
    of all-zero scores, fit's divergence reference); returns the new carry and the records of
    the models that ran it."""
    t = time.perf_counter()
    active = hosts.put(carry.active, programs.sharding)
    if chunks is None:
        state, stats = programs.epoch(inputs.traced, inputs.train_keys, np.int32(epoch), carry.state, active,
                                      data.x, data.y)
    else:
        state, stats = streamed_epoch(programs, inputs.traced, chunks, epoch, carry.state, active, data.check_data)
    stats = hosts.fetch(stats, plan.mesh)  # every model's numbers, on every host
    seconds = time.perf_counter() - t
    progress.train_seconds += seconds
    columns = evaluate_epoch(plan, data, chunk, programs, state.params, epoch)
    spec = plan.specs[chunk.group]
    samples = spec.steps_per_epoch * plan.configs[chunk.members[0]].batch_size
    active, improved, records = carry.active.copy(), np.zeros(chunk.size, bool), []
    for j, index in enumerate(chunk.members):
        if not carry.active[j]:
            continue
        model, history = progress.models[index], progress.models[index].history
        # fit's rules, per model: a non-finite epoch (its update was masked) or a finite loss explosion
        diverged, history.watch = divergence(model.config, history.watch, epoch, bool(stats.finite[j]), None,
                                             stats.loss[j], stats.first_loss[j], zero_score)
        if diverged is not None:
            model.diverged_epoch, active[j] = epoch + 1, False
            continue
        record = epoch_record(epoch, stats.loss[j], stats.lr[j], seconds, samples,
                              {name: value(j) for name, value in columns.items()})
        # early stopping reads the model's own epochs (a grid field)
        stop, improved[j], history.watch = early_stop(model.config, history.watch, record)
        active[j] = not stop
        records.append({"model": index, **history.append(record)})
    best = carry.best
    if plan.base.restore_best and improved.any():
        mask = hosts.put(improved, programs.sharding)
        best = programs.select(mask, state.params, state.params if best is None else best)
    return store.ChunkCarry(state, best, active), records


def evaluate_epoch(plan: SweepPlan, data: SweepData, chunk: Chunk, programs: ChunkPrograms, params,
                   epoch: int) -> dict[str, Any]:
    """The evaluation columns of `epoch`, as functions of a model's position ({} when none is due)."""
    base = plan.base
    if not eval_due(epoch, base.eval_every, plan.groups[chunk.group].program.epochs):
        return {}
    columns = {}
    if base.eval_train:
        columns.update({"train_" + k: v for k, v in split_metrics(plan, data, programs, params, "train").items()
                        if k != "loss"})
    if "val" in data.evals:
        columns.update({"val_" + k: v for k, v in split_metrics(plan, data, programs, params, "val").items()})
    return columns


def split_metrics(plan: SweepPlan, data: SweepData, programs: ChunkPrograms, params, split: str) -> dict[str, Any]:
    """{"loss": f, "accuracy" | "mse": f} with f(j) model j's exact mean over `split`."""
    eval_set, n = data.evals[split]
    loss_sums, metric_sums = hosts.fetch(programs.metrics(params, eval_set), plan.mesh)  # (P,), (P,)
    metric = "accuracy" if data.classification else "mse"
    return {"loss": lambda j: float(loss_sums[j]) / n, metric: lambda j: float(metric_sums[j]) / n}


def finish_chunk(plan: SweepPlan, data: SweepData, chunk: Chunk, programs: ChunkPrograms, inputs: ChunkInputs,
                 carry: store.ChunkCarry, progress: store.SweepProgress, keep_params: bool) -> None:
    """Evaluate each model's kept params (the best ones with restore_best) on every split into
    its history.final; keep the best model so far whole (progress.leader)."""
    use_best = np.array([carry.best is not None and j < len(chunk.members)
                         and progress.models[chunk.members[j]].history.best_epoch is not None
                         for j in range(chunk.size)])
    kept = carry.state.params if not use_best.any() else programs.select(
        hosts.put(use_best, programs.sharding), carry.best, carry.state.params)
    finals = {split: split_metrics(plan, data, programs, kept, split) for split in data.evals}
    for j, index in enumerate(chunk.members):
        model = progress.models[index]
        model.history.final = {split: {k: f(j) for k, f in metrics.items()} for split, metrics in finals.items()}
        if keep_params:
            model.params = hosts.fetch(kept, plan.mesh, model=j)
    store.update_leader(plan, chunk, carry, inputs.train_keys, use_best, progress)
