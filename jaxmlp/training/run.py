"""One way to build a run: `build_run(config, spec)` -> `Run`, the optimizer, schedule and
compiled programs that `fit`, `restore.restore_params` and the benchmarks all share.

    run = build_run(config, run_spec(config, train))
    state = run.init(run.place(run_keys(config.seed)[0]))
    state, stats = run.epoch(run.place(epoch_key(train_key, 0)), state, x, y)

Compiles are cached across runs: `program_key` resets every field that does not change the
programs (config.HOST_ONLY_FIELDS), so fits that differ only in those (seed sweeps, a resume
with more epochs) share one compile.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import optax

from jaxmlp import parallel
from jaxmlp.config import HOST_ONLY_FIELDS, TrainConfig
from jaxmlp.precision import ambient_settings
from jaxmlp.training.epoch import make_epoch_fn
from jaxmlp.training.feed import replicate, resolve_feed
from jaxmlp.training.optim import build_optimizer
from jaxmlp.training.spec import RunSpec
from jaxmlp.training.state import TrainState, abstract_state, init_state


class Run(NamedTuple):
    """A run's optimizer and compiled programs.

    init(key) -> TrainState (jitted); epoch(key, state, x, y) -> (state, EpochStats), compiled
    for the feed's data shapes (None when built with compile=False); compile_seconds: the
    epoch's compile time (~0 when an earlier run compiled the same program). On several devices
    (`data_parallel`) both take and return replicated global arrays.
    """

    config: TrainConfig
    spec: RunSpec
    schedule: optax.Schedule
    optimizer: optax.GradientTransformation
    init: Callable
    epoch: Callable | None
    compile_seconds: float
    data_parallel: parallel.DataParallel | None
    feed: str

    @property
    def loss(self) -> str:
        return self.spec.loss

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.spec.sizes

    def abstract_state(self) -> TrainState:
        """ShapeDtypeStructs of the TrainState (replicated on a mesh): a checkpoint restore target."""
        abstract = abstract_state(self.config, self.sizes, self.optimizer)
        return abstract if self.data_parallel is None else self.data_parallel.abstract(abstract)

    def place(self, tree):
        """Host arrays or keys on every device of the run (the default device without a mesh)."""
        return replicate(tree, self.data_parallel)


def program_key(config: TrainConfig) -> TrainConfig:
    """The cache key of the compiled programs: `config` with every field that does not change
    them set to its default, so fits that differ only in those (seed sweeps, a resume with more
    epochs) share compiles.
    Only a cosine schedule's length reads `epochs`: it becomes `epochs` here, the rest resets."""
    fields = TrainConfig.__dataclass_fields__
    reset: dict[str, Any] = {name: fields[name].default for name in HOST_ONLY_FIELDS}
    cosine = config.schedule in ("cosine", "warmup_cosine")
    reset["epochs"] = config.schedule_length() if cosine else max(1, config.warmup_epochs)
    reset["schedule_epochs"] = None
    return dataclasses.replace(config, **reset)


def data_specs(config: TrainConfig, spec: RunSpec, feed: str) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
    """The epoch's (x, y) shapes: the training set (N, D) resident, or an epoch's minibatches
    (S, K, B / K, D) fed per process; y int32 labels or targets in the config's dtype."""
    lead = (spec.n_train,) if feed == "resident" else (
        spec.steps_per_epoch, config.accumulate, config.batch_size // config.accumulate)
    dtype = np.dtype(config.dtype)
    y_dtype = np.dtype(np.int32) if spec.classification else dtype
    return (jax.ShapeDtypeStruct(lead + (spec.sizes[0],), dtype),
            jax.ShapeDtypeStruct(lead + spec.target_shape, y_dtype))


def build_run(config: TrainConfig, spec: RunSpec, *, compile: bool = True) -> Run:
    """The Run of `config` on data described by `spec` (`spec.run_spec(config, train)`).

    compile=False skips compiling the epoch (restoring params needs only the optimizer's
    state structure); `epoch` is then None.
    """
    feed, program = resolve_feed(config), program_key(config)
    t0 = time.perf_counter()
    init, epoch = _run_programs(program, spec, feed, ambient_settings(), compile)
    seconds = time.perf_counter() - t0  # ~0 when an earlier run compiled the same programs
    schedule, optimizer = _optimizer(program, spec)
    return Run(config, spec, schedule, optimizer, init, epoch, seconds, parallel.data_parallel(config.devices), feed)


@functools.lru_cache(maxsize=16)
def _optimizer(config: TrainConfig, spec: RunSpec):
    return build_optimizer(config, spec.sizes, spec.steps_per_epoch)


@functools.lru_cache(maxsize=16)
def _init_fn(config: TrainConfig, sizes: tuple[int, ...], x64: bool) -> Callable:
    """The jitted init(key) -> TrainState: it depends on the layer sizes, not on the data set's
    size (the optimizer state's structure does not depend on the schedule's step counts)."""
    _, optimizer = build_optimizer(config, sizes, 1)
    dp = parallel.data_parallel(config.devices)
    return jax.jit(lambda key: init_state(key, config, sizes, optimizer), **(dp.jit_kwargs(1) if dp else {}))


@functools.lru_cache(maxsize=16)
def _run_programs(config: TrainConfig, spec: RunSpec, feed: str, ambient: tuple[bool, str | None],
                  compile: bool) -> tuple[Callable, Callable | None]:
    """(jitted init(key) -> TrainState, compiled epoch or None) of a program config under the
    `ambient` settings (precision.ambient_settings)."""
    schedule, optimizer = _optimizer(config, spec)
    dp = parallel.data_parallel(config.devices)
    init = _init_fn(config, spec.sizes, ambient[0])
    if not compile:
        return init, None
    jit_kwargs = None
    if dp is not None:
        data = dp.replicated if feed == "resident" else dp.batch_sharding(axis=2)  # (S, K, B / K, ...)
        jit_kwargs = dict(in_shardings=(dp.replicated, dp.replicated, data, data), out_shardings=dp.replicated)
    epoch_fn = make_epoch_fn(config, optimizer, schedule, loss=spec.loss, n_train=spec.n_train, feed=feed,
                             data_parallel=dp, jit_kwargs=jit_kwargs)
    key_spec = jax.eval_shape(lambda: jax.random.key(0))
    compiled = epoch_fn.lower(key_spec, abstract_state(config, spec.sizes, optimizer),
                              *data_specs(config, spec, feed)).compile()
    return init, compiled
