"""A run, planned once: `plan_run(config, train, val, test)` resolves the auto settings, the loss,
the layer sizes, the device layout, the data feed, the optimizer and the memory estimate, and
makes every pre-flight check. Every later step (the programs, the loop, the evaluator, the
checkpoint) reads the Plan; none of them rebuilds a part of it.

    plan = plan_run(TrainConfig(hidden=(100,)), splits.train, splits.val, splits.test)
    plan.sizes, plan.loss, plan.spec.steps_per_epoch, plan.memory.total, plan.shapes.params
    plan_of(config, spec_from_meta(meta, config)).abstract_state()   # a checkpoint's restore target

The CLI plans before it claims a run directory and hands the plan to `fit`, so a run that does
not fit its data or its devices is refused before a file is written.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np
import optax

from jaxmlp import distributed, parallel
from jaxmlp.activations import Activation, get_activation
from jaxmlp.config import TrainConfig
from jaxmlp.losses import Loss, get_loss, loss_for
from jaxmlp.training.memory import (USABLE_FRACTION, MemoryEstimate, check_memory, chunk_steps, device_memory_limit,
                                   estimate_memory, host_memory_available)
from jaxmlp.training.optim import build_optimizer
from jaxmlp.training.state import TrainState, abstract_state


class RunSpec(NamedTuple):
    """The data-dependent facts a run's programs are built from (hashable: a program-cache key).

    loss: canonical loss name; sizes: (d_in, *hidden, d_out); n_train: training examples;
    steps_per_epoch: n_train // batch_size (the remainder batch is dropped); target_shape: ()
    for labels or one target per example, (k,) for (N, k) targets; classification: integer labels.
    """

    loss: str
    sizes: tuple[int, ...]
    n_train: int
    steps_per_epoch: int
    target_shape: tuple[int, ...]
    classification: bool


class Plan(NamedTuple):
    """Everything a run decides before it trains (`plan_run`)."""

    config: TrainConfig  # auto settings resolved, a cosine schedule's length fixed
    spec: RunSpec
    loss_fn: Loss  # spec.loss, looked up once
    activation: Activation  # config.activation with its options, looked up once
    feed: str  # resident | per_process (feed.py) | stream (stream.py)
    data_parallel: parallel.DataParallel | None  # the 1-D mesh of `config.devices`; None: one device
    schedule: optax.Schedule
    optimizer: optax.GradientTransformation
    shapes: TrainState  # the state's ShapeDtypeStructs (one device's; abstract_state places them)
    memory: MemoryEstimate  # bytes per device
    chunk_steps: int  # stream: the steps of a chunk (memory.chunk_steps); else the epoch's

    @property
    def loss(self) -> str:
        return self.spec.loss

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.spec.sizes

    @property
    def devices(self) -> int:
        return 1 if self.data_parallel is None else self.data_parallel.size

    def abstract_state(self) -> TrainState:
        """ShapeDtypeStructs of the TrainState (replicated on a mesh): a checkpoint restore target."""
        return self.shapes if self.data_parallel is None else self.data_parallel.abstract(self.shapes)

    def data_specs(self) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
        """The epoch's (x, y) shapes: the training set (N, D) resident, an epoch's minibatches
        (S, K, B / K, D) fed per process, or a chunk's (k, K, B / K, D) streamed; y int32 labels
        or targets in the config's dtype."""
        config, spec = self.config, self.spec
        lead = (spec.n_train,) if self.feed == "resident" else (
            self.chunk_steps, config.accumulate, config.batch_size // config.accumulate)
        dtype = np.dtype(config.dtype)
        y_dtype = np.dtype(np.int32) if spec.classification else dtype
        return (jax.ShapeDtypeStruct(lead + (spec.sizes[0],), dtype),
                jax.ShapeDtypeStruct(lead + spec.target_shape, y_dtype))

    def with_hyper(self, hyper) -> Plan:
        """This plan with its schedule and optimizer built from `hyper` (a training.hyper.Hyper,
        whose numbers may be traced): one model of a sweep or a batch-size race, or an adaptive
        run's segment at its learning rate."""
        schedule, optimizer = build_optimizer(self.config, self.spec.steps_per_epoch, hyper)
        return self._replace(schedule=schedule, optimizer=optimizer)

    def place(self, tree):
        """Host arrays or keys on every device of the run (the default device without a mesh)."""
        return jax.device_put(tree) if self.data_parallel is None else self.data_parallel.replicate(tree)


def plan_run(config: TrainConfig, train, val=None, test=None, *, resumed: TrainConfig | None = None,
             local: bool = False) -> Plan:
    """The Plan of training `config` on the Datasets `train` (val, test: checked against it).

    resumed: the config of the checkpoint a run resumes from; it keeps that checkpoint's
    schedule length (TrainConfig.with_fixed_schedule); local: see plan_of. Raises ValueError naming the setting that
    does not fit: the loss, the batch size, validation data for patience, 64-bit JAX, the devices,
    the device memory; with several processes first what differs between them (the config and
    every data set, by CRC-32), so that no process fails a check its peers pass and leaves them
    waiting.
    """
    distributed.check_same_run(config, train=train, val=val, test=test)
    config = config.with_auto_resolved(len(train), None if val is None else len(val)).with_fixed_schedule(resumed)
    config = with_feed(config, train)
    spec = run_spec(config, train)  # ValueError: a loss that does not fit the data
    for name, data in (("val", val), ("test", test)):
        if data is not None and (data.num_features, data.num_classes is None) != (train.num_features,
                                                                                  train.num_classes is None):
            raise ValueError(f"the {name} set ({data.name}: {data.num_features} features, "
                             f"{'targets' if data.num_classes is None else 'class labels'}) does not match the "
                             f"training set ({train.num_features} features, "
                             f"{'targets' if train.num_classes is None else 'class labels'})")
    if config.batch_size > len(train):
        raise ValueError(f"batch_size must be <= the number of training examples ({len(train)}), "
                         f"got {config.batch_size}")
    if (config.patience or config.restore_best) and val is None:
        what = "patience (early stopping)" if config.patience else "restore_best"
        raise ValueError(f"{what} needs validation data: set val_fraction > 0")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs 64-bit JAX: set JAX_ENABLE_X64=1 or use jax.enable_x64()")
    check_stream(config)
    plan = plan_of(config, spec, local=local)  # ValueError: more devices than there are, a batch they do not split
    check_memory(plan.memory, device_memory_limit())
    return plan


def with_feed(config: TrainConfig, train) -> TrainConfig:
    """`config` with data_feed "stream" where "auto" cannot hold the training set: a data set on
    disk (data.streamed) whose rows need more than USABLE_FRACTION of the device's memory or half
    of the host's available memory (the host holds a copy while placing it). Otherwise as given."""
    if config.data_feed != "auto" or not hasattr(train, "rows"):
        return config
    device, host = device_memory_limit(), host_memory_available()
    fits = (device is None or train.nbytes <= USABLE_FRACTION * device) and (host is None or 2 * train.nbytes <= host)
    return config if fits else dataclasses.replace(config, data_feed="stream")


def check_stream(config: TrainConfig) -> None:
    """ValueError for a setting the streamed feed does not support, or that needs it."""
    if config.data_feed == "stream":
        if config.adaptive_batch:
            raise ValueError("adaptive_batch needs the training set in memory: it cannot use data_feed stream")
        if config.checkpoint_every_steps and config.track_gradients:
            raise ValueError("checkpoint_every_steps cannot save the running gradient statistics of track_gradients: "
                             "set one of them off")
    elif config.checkpoint_every_steps:
        raise ValueError(f"checkpoint_every_steps (mid-epoch checkpoints) needs data_feed stream, not "
                         f"{config.data_feed!r}")


def check_plan(plan: Plan, train, val=None, resumed: TrainConfig | None = None) -> None:
    """ValueError unless `plan` fits the Dataset `train` (and `val`) and the checkpoint config
    `resumed` as plan_run would have made it: fit's check of a plan made beforehand."""
    if run_spec(plan.config, train) != plan.spec:
        raise ValueError(f"the plan was made for other training data ({plan.spec.n_train} examples, sizes "
                         f"{plan.sizes}); plan_run with this data ({len(train)} examples)")
    if (plan.config.patience or plan.config.restore_best) and val is None:
        raise ValueError("the plan uses validation data (patience or restore_best) but none is given")
    saved_length = None if resumed is None else resumed.with_fixed_schedule().schedule_epochs
    if resumed is not None and plan.config.schedule_epochs != saved_length:
        raise ValueError(f"the plan's schedule spans {plan.config.schedule_epochs} epochs, the checkpoint it resumes "
                         f"{saved_length}: plan_run(..., resumed=its config)")


def plan_of(config: TrainConfig, spec: RunSpec, *, local: bool = False) -> Plan:
    """The Plan of `config` (resolved as plan_run resolves it) on data described by `spec`,
    checking only the device layout: what restoring a checkpoint (`spec_from_meta`) or a sweep's
    model needs. The feed: `config.data_feed`, auto resident in one process and per_process
    with several. local: one model on one device of this process whatever the processes (a
    sweep's model, `config.devices` 1): no mesh, the training set resident."""
    schedule, optimizer = build_optimizer(config, max(spec.steps_per_epoch, 1))
    shapes = abstract_state(config, spec.sizes, optimizer)
    activation, loss_fn = get_activation(config.activation, **config.activation_options()), get_loss(spec.loss)
    dp = None if local else parallel.data_parallel(config.devices)
    devices = 1 if dp is None else dp.size
    parallel.check_batch(config.batch_size, devices, config.accumulate)
    several = jax.process_count() > 1 and not local
    feed = config.data_feed if config.data_feed != "auto" else "per_process" if several else "resident"
    memory = estimate_memory(config, spec, shapes, feed=feed, devices=devices)
    chunk = chunk_steps(config, spec) if feed == "stream" else spec.steps_per_epoch
    return Plan(config, spec, loss_fn, activation, feed, dp, schedule, optimizer, shapes, memory, chunk)


def run_spec(config: TrainConfig, train) -> RunSpec:
    """The RunSpec of training `config` on the Dataset `train`: d_out is the class count, 1 for
    binary_logistic, k for (N, k) targets. ValueError when the loss does not fit the data."""
    loss = loss_for(config.loss, train.num_classes, train.name).name
    target_shape = tuple(int(s) for s in train.target_shape)
    if train.num_classes is None:
        d_out = target_shape[0] if target_shape else 1
    else:
        d_out = 1 if loss == "binary_logistic" else int(train.num_classes)
    n = len(train)
    return RunSpec(loss, (train.num_features, *config.hidden, d_out), n, n // config.batch_size,
                   target_shape, train.num_classes is not None)


def spec_from_meta(meta: dict, config: TrainConfig) -> RunSpec:
    """The RunSpec a checkpoint was saved with, from its meta (checkpoints written before meta
    held n_train and target_shape get n_train = steps * batch_size and a target shape inferred
    from the loss: enough to rebuild the optimizer and the state's structure)."""
    loss, sizes, steps = meta["loss"], tuple(meta["sizes"]), int(meta["steps_per_epoch"])
    classification = loss != "mean_squared_error"
    inferred = () if classification or sizes[-1] == 1 else (sizes[-1],)
    return RunSpec(loss, sizes, int(meta.get("n_train", steps * config.batch_size)), steps,
                   tuple(meta.get("target_shape", inferred)), classification)
