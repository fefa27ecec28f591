"""The training loop, as named phases: restore or init, run an epoch, evaluate it, decide on
early stopping, save, and finish with the final evaluation. The decisions (evaluation cadence,
the epoch record, divergence, early stopping) are the loop policy `sweep` shares (policy.py).

    params, history = fit(TrainConfig(hidden=(100,)), splits.train, splits.val, splits.test)

The loop is pure in the sense of the numeric core: `fit` writes nothing and prints nothing by
itself. The CLI passes a `Checkpointer` (checkpoint.py) and `Callback`s (progress bar,
metrics.jsonl) explicitly.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp import compile_cache, parallel
from jaxmlp.checkpoint import newest_checkpoint
from jaxmlp.config import TrainConfig
from jaxmlp.mlp import Params
from jaxmlp.runfiles import STEP_CHECKPOINT_DIR
from jaxmlp.training.adaptive_batch import BatchState, adaptive_epoch, batch_cap, start_batch_state
from jaxmlp.training.audit import GradientAudit, audit_columns, audit_failure
from jaxmlp.training.evaluate import EvalSet, Evaluator
from jaxmlp.training.feed import Feeder, host_arrays, in_memory, row_reader
from jaxmlp.training.gradtrack import gradient_record
from jaxmlp.training.history import Callback, History
from jaxmlp.training.optim import scaled_learning_rate
from jaxmlp.training.plan import Plan, check_plan, plan_run
from jaxmlp.training.policy import divergence, early_stop, epoch_record, eval_due, zero_score_loss
from jaxmlp.training.programs import Programs, run_programs
from jaxmlp.training.state import TrainState, epoch_key, run_keys
from jaxmlp.training.stream import Chunk, Resume, stream_chunks, stream_epoch
from jaxmlp.types import Array


HEAD_ROWS = 1024  # the training rows the zero-score loss (policy.zero_score_loss) and the audit read


@dataclasses.dataclass
class Progress:
    """What the loop carries from epoch to epoch on the host."""

    state: TrainState
    train_key: Array
    history: History
    start_epoch: int  # 0-based: the first epoch this call runs
    best_params: Params | None = None  # restore_best: the params of the best val-loss epoch
    batch: BatchState | None = None  # adaptive_batch: the batch schedule's state
    resume: Resume | None = None  # stream: where a mid-epoch checkpoint left the first epoch
    chunks: Iterator[Chunk] | None = None  # stream: the run's chunks, read ahead (stream.stream_chunks)
    zero_score: Callable[[], float] = lambda: 0.0  # the loss of all-zero scores (zero_score_loss): a divergence reference


class Loop(NamedTuple):
    """What every epoch of a fit reads: the plan and what was built from it once."""

    plan: Plan
    programs: Programs
    feeder: Feeder | None  # None: streamed (stream.py)
    read: Callable  # read(rows) -> (x, y): the training set's rows on the host (feed.row_reader)
    check_data: Callable[[], None]  # stream: raises DataError when the data set's files changed
    evaluator: Evaluator
    evals: dict[str, tuple[EvalSet, int] | None]  # train (eval_train / track_activations) and val, laid out once
    audit: GradientAudit | None
    checkpointer: Any
    step_checkpointer: Any  # stream: mid-epoch checkpoints (checkpoint_every_steps)
    callbacks: Sequence[Callback]
    batch_cap: int | None  # adaptive_batch: the largest batch the run may move to (batch_cap, once)


def fit(config: TrainConfig | Plan, train, val=None, test=None, *, callbacks: Sequence[Callback] = (),
        checkpointer=None, resume: bool = False) -> tuple[Params, History]:
    """Train an MLP on `train` (a jaxmlp.data.Dataset); returns (params, history).

    config: a TrainConfig, planned here for this data (plan_run: the auto settings, the loss,
        the devices, the memory), or the Plan that `plan_run` already made of it and this data
        (the CLI plans before it claims a run directory; a resume plans with `resumed`).
    val: evaluated every `eval_every` epochs (and after the last); drives early stopping.
    test: evaluated once at the end (history.final["test"]).
    checkpointer: a `jaxmlp.checkpoint.Checkpointer`; when given, a checkpoint is saved every
        `checkpoint_every` epochs and after the last, and `resume=True` continues from its
        latest checkpoint (bit-identical to an uninterrupted run on the same machine).
    callbacks: `Callback`s for progress display and logging; fit itself never prints.
    The first fit of a process turns on the persistent compilation cache (compile_cache.py)
    unless the process already chose one, e.g. through JAX's own settings.

    Raises ValueError for settings that do not fit the data or the devices, TrainingDiverged
    (nothing is saved for the diverged epoch), and with audit_strict GradientAuditFailed (nothing
    is saved for the epoch whose audit failed; its record is logged).
    """
    compile_cache.ensure_configured()
    steps_checkpointer = None if checkpointer is None else checkpointer.sibling(STEP_CHECKPOINT_DIR)
    # without resume a checkpointer only saves; the latest checkpoint's meta is read once: for the plan and the restore
    source, meta = newest_checkpoint(checkpointer, steps_checkpointer) if resume else (None, None)
    resumed = None if meta is None else TrainConfig.from_dict(meta["config"])
    if isinstance(config, Plan):
        check_plan(config, train, val, resumed)  # a plan made beforehand: for these data and this resume
    plan = config if isinstance(config, Plan) else plan_run(config, train, val, test, resumed=resumed)
    streamed = plan.feed == "stream"
    train = train if streamed else in_memory(train)  # a data set on disk that fits the devices: read once
    programs = run_programs(plan)
    progress = restore_or_init(plan, programs, source, meta)
    read = row_reader(train, plan.config.dtype)
    head = read(np.arange(min(len(train), HEAD_ROWS)))  # (x, y) of the first rows: the zero-score loss, the audit
    progress.zero_score = functools.cache(functools.partial(zero_score_loss, plan.loss, head[1], plan.sizes[-1]))
    evaluator = Evaluator(plan)
    feeder = None if streamed else Feeder(plan, host_arrays(train, plan.config.dtype), progress.train_key)
    wants_train_eval = plan.config.eval_train or plan.config.track_activations
    evals = {"train": evaluator.eval_set(train, feeder and feeder.resident) if wants_train_eval else None,
             "val": None if val is None else evaluator.eval_set(val)}
    progress.history.eval_compile_seconds = evaluator.compile_seconds
    audit = GradientAudit(plan, head) if plan.config.audit_every else None
    cap = batch_cap(plan) if plan.config.adaptive_batch else None
    check_data = getattr(train, "check_unchanged", lambda: None)
    loop = Loop(plan, programs, feeder, read, check_data, evaluator, evals, audit,
                checkpointer, steps_checkpointer, callbacks, cap)
    for cb in callbacks:
        cb.on_train_begin(train_begin_info(loop, progress))
    train_epochs(loop, progress)
    params = finish(loop, progress, {"train": (train, evals["train"]), "val": (val, evals["val"]),
                                     "test": (test, None)})
    for cb in callbacks:
        cb.on_train_end(progress.history)
    return params, progress.history


def train_epochs(loop: Loop, progress: Progress) -> None:
    """The epochs from `progress.start_epoch`: train, evaluate, audit, decide, save, report."""
    if loop.feeder is not None:
        loop.feeder.start(progress.start_epoch)
    if loop.programs.stream is not None:
        position = 0 if progress.resume is None else progress.resume.position
        progress.chunks = stream_chunks(loop.plan, loop.read, progress.train_key, progress.start_epoch, position)
    try:
        _train_epochs(loop, progress)
    finally:
        if progress.chunks is not None:
            progress.chunks.close()  # an early stop or a failure: the reads ahead end here


def _train_epochs(loop: Loop, progress: Progress) -> None:
    config = loop.plan.config
    for epoch in range(progress.start_epoch, config.epochs):
        record = run_epoch(loop, progress, epoch)
        record.update(evaluate_epoch(loop, progress.state.params, epoch))
        record.update(audit_columns(loop.audit, config, progress.state.params, epoch))
        stop, improved, progress.history.watch = early_stop(config, progress.history.watch, record)
        if improved and config.restore_best:
            progress.best_params = jax.tree.map(jnp.copy, progress.state.params)  # survives donation
        row = progress.history.append(record)  # as metrics.jsonl has it: the same keys live and after a resume
        failed = audit_failure(config, record)
        last = epoch + 1 == config.epochs
        if not failed and (stop or last or (config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0)):
            save(loop.plan, progress, loop.checkpointer, epoch + 1)  # first: an epoch whose save fails is reported nowhere
        for cb in loop.callbacks:
            cb.on_epoch_end(row)
        if failed:
            raise failed  # its record is logged; nothing is saved for it
        if stop:
            break


def resume_start(config: TrainConfig, history: History, saved_epoch: int) -> int:
    """The 0-based epoch a resume from checkpoint epoch `saved_epoch` starts at (>= config.epochs:
    nothing left to train). A run that stopped early continues only when the resumed config's
    patience would not stop it again at once (patience 0, or more epochs than it has gone
    without improvement); it then stops being `stopped_early`."""
    if history.stopped_early:
        if config.patience and saved_epoch - history.best_epoch >= config.patience:
            return max(saved_epoch, config.epochs)
        history.stopped_early = False
    return saved_epoch


def restore_or_init(plan: Plan, programs: Programs, checkpointer=None, meta: dict[str, Any] | None = None
                    ) -> Progress:
    """Fresh params from the seed, or the latest checkpoint of `checkpointer`, whose `meta`
    (checkpoint.newest_checkpoint) is given; None starts fresh. A mid-epoch checkpoint (stream) resumes its
    epoch at its position."""
    init_key, train_key = run_keys(plan.config.seed)
    batch = start_batch_state(plan.config) if plan.config.adaptive_batch else None
    if meta is None:
        state = programs.init(plan.place(init_key))
        return Progress(state, train_key, History(compile_seconds=programs.compile_seconds), 0, batch=batch)
    saved_sizes = tuple(meta["sizes"])
    if saved_sizes != plan.sizes:
        raise ValueError(f"the checkpoint's layer sizes {saved_sizes} do not fit this data and config {plan.sizes}")
    abstract = plan.abstract_state()
    restored = checkpointer.restore(abstract, abstract_best=abstract.params)
    history = History.from_dict(restored.meta["history"])
    history.compile_seconds = programs.compile_seconds
    start = resume_start(plan.config, history, int(restored.meta["epoch"]))
    if batch is not None:  # the schedule where the checkpoint left it
        batch = BatchState(**restored.meta["batch"])
    resume = Resume(**restored.meta["position"]) if "position" in restored.meta else None
    return Progress(restored.state, jax.random.wrap_key_data(restored.key_data), history, start, restored.best,
                    batch=batch, resume=resume)


def train_begin_info(loop: Loop, progress: Progress) -> dict[str, Any]:
    """What `Callback.on_train_begin` receives."""
    plan = loop.plan
    return dict(config=plan.config, sizes=plan.sizes, loss=plan.loss, n_train=plan.spec.n_train,
                steps_per_epoch=plan.spec.steps_per_epoch, start_epoch=progress.start_epoch,
                compile_seconds=loop.programs.compile_seconds,
                eval_compile_seconds=progress.history.eval_compile_seconds, history=progress.history,
                devices=plan.devices, peak_lr=scaled_learning_rate(plan.config), processes=jax.process_count(),
                data_feed=plan.feed, chunk_steps=plan.chunk_steps)


def run_epoch(loop: Loop, progress: Progress, epoch: int) -> dict[str, Any]:
    """Run 0-based `epoch` (one compiled call; a streamed epoch's chunks; an adaptive epoch's
    segments), update `progress.state`; its record's training columns. Raises TrainingDiverged
    when the epoch diverged (policy.divergence; the state is then lost)."""
    plan = loop.plan
    t = time.perf_counter()
    data = None if loop.feeder is None else loop.feeder.take(epoch)
    streamed = loop.programs.stream is not None  # chunks read from the host while the last runs (stream.py)
    key = None if streamed else plan.place(epoch_key(progress.train_key, epoch))  # streamed: drawn by stream_chunks
    columns: dict[str, Any] = {}
    samples = plan.spec.steps_per_epoch * plan.config.batch_size
    if streamed:
        loop.check_data()  # DataError when a file of the data set changed since the run started
        at_checkpoint = functools.partial(save_position, loop, progress, epoch) if loop.step_checkpointer else None
        progress.state, stats = stream_epoch(plan, loop.programs.stream, progress.chunks, epoch, progress.state,
                                             progress.resume, at_checkpoint)
        progress.resume = None
    elif progress.batch is None:
        progress.state, stats = loop.programs.epoch(key, progress.state, *data)
    else:  # the batch size moves within the epoch (adaptive_batch.py)
        run = adaptive_epoch(plan, key, progress.state, *data, progress.batch, loop.batch_cap)
        progress.state, stats, progress.batch = run.state, run.stats, run.batch
        samples = sum(s["batch"] * s["steps"] for s in run.segments)
        columns["batch"] = {"segments": run.segments, "scaled_steps": progress.batch.scaled_steps}
    del data
    if loop.feeder is not None:
        loop.feeder.prefetch()  # per_process: the next epoch is gathered and sent while this one runs
    stats = jax.device_get(stats)
    seconds = time.perf_counter() - t
    history = progress.history
    diverged, history.watch = divergence(plan.config, history.watch, epoch, bool(stats.finite), int(stats.bad_step),
                                         stats.loss, stats.first_loss, progress.zero_score)
    if diverged is not None:
        raise diverged  # fit's answer to a diverged run: the caller's error; nothing is saved for the epoch
    return epoch_record(epoch, stats.loss, stats.lr, seconds, samples,
                        {"gradients": gradient_record(stats.gradients), **columns})


def evaluate_epoch(loop: Loop, params: Params, epoch: int) -> dict[str, Any]:
    """The evaluation columns of 0-based `epoch`'s record ({} when no evaluation is due)."""
    config = loop.plan.config
    if not eval_due(epoch, config.eval_every, config.epochs):
        return {}
    return loop.evaluator.epoch_columns(params, loop.evals["train"], loop.evals["val"])


def save(plan: Plan, progress: Progress, checkpointer, epoch: int) -> None:
    """Checkpoint 1-based `epoch` (nothing without a checkpointer)."""
    if checkpointer is not None:
        checkpointer.save(epoch, progress.state, jax.random.key_data(progress.train_key),
                          checkpoint_record(plan, progress, epoch), best=progress.best_params)


def save_position(loop: Loop, progress: Progress, epoch: int, position: int, carry) -> None:
    """A mid-epoch checkpoint of 0-based `epoch` after its first `position` steps (stream's
    checkpoint_every_steps), numbered by the global step. The carry's params, optimizer state and
    running loss are what the epoch resumes from; none is saved once a step was non-finite (the
    epoch then diverges and the last checkpoint stays the last good one)."""
    if not bool(jax.device_get(carry.ok)):
        return
    steps = loop.plan.spec.steps_per_epoch
    done = 0 if progress.resume is None else progress.resume.position  # progress.state: where the epoch resumed
    state = TrainState(carry.params, carry.opt_state, progress.state.step - done + position)
    resume = Resume(position, float(jax.device_get(carry.loss_sum)), float(jax.device_get(carry.first_loss)))
    meta = {**checkpoint_record(loop.plan, progress, epoch), "global_step": epoch * steps + position,
            "position": resume._asdict()}
    loop.step_checkpointer.save(epoch * steps + position, state, jax.random.key_data(progress.train_key), meta,
                                best=progress.best_params)


def checkpoint_record(plan: Plan, progress: Progress, epoch: int) -> dict[str, Any]:
    """A checkpoint's meta after `epoch` whole epochs: what the run is and its history so far."""
    spec = plan.spec
    return {"epoch": epoch, "sizes": list(spec.sizes), "loss": spec.loss, "steps_per_epoch": spec.steps_per_epoch,
            "n_train": spec.n_train, "target_shape": list(spec.target_shape), "config": plan.config.to_dict(),
            "history": progress.history.to_dict(),
            **({} if progress.batch is None else {"batch": progress.batch._asdict()})}


def finish(loop: Loop, progress: Progress, splits: dict) -> Params:
    """Evaluate the kept params (the best ones with restore_best, `history.restored_best`) on
    every split given into `history.final`; return them as this process's local arrays."""
    history, evaluator = progress.history, loop.evaluator
    history.restored_best = loop.plan.config.restore_best and progress.best_params is not None
    params = progress.best_params if history.restored_best else progress.state.params
    history.final = {}
    for name, (data, prepared) in splits.items():
        if data is not None:
            prepared = evaluator.eval_set(data) if prepared is None else prepared
            history.final[name] = evaluator.metrics(params, *prepared)
    return parallel.to_local(params)
