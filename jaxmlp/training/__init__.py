"""The trainer's parts, for code that takes a run apart (benchmarks, tests, a loop of one's own).
The public way in is the top-level package: `jaxmlp.fit`, `jaxmlp.evaluate`, `jaxmlp.predict`,
`jaxmlp.plan_run`; what a run is made of is here, a module per concept:

    plan = plan_run(config, splits.train, splits.val, splits.test)   # planned once
    programs = run_programs(plan)                                   # jitted init, compiled epoch
    state = programs.init(plan.place(run_keys(config.seed)[0]))
    state, stats = programs.epoch(plan.place(epoch_key(train_key, 0)), state, *feeder.take(0))

Modules, each importing only those above it:

    history   History (per-epoch records, final evaluation) and Callback; no JAX
    state     TrainState, EpochStats, fresh and abstract states, run keys
    hyper     Hyper: the numbers a step reads (traced per model in a sweep)
    optim     weight-decay mask, LR scaling, schedules, the table of optax optimizers
    memory    the device memory a run needs, from shapes, and what a device has
    plan      plan_run -> Plan: auto settings, loss and activation, sizes, devices, feed, optimizer,
              the state's shapes, memory, every check
    gradtrack track_gradients: per-example statistics and the noise scale inside the step
    step      make_step(plan): one optimizer step, precision policy, accumulation, finite flag
    epoch     make_epoch(plan): the pure scan-fused epoch; the epoch's order of minibatches
    programs  the one program cache (cached, program); run_programs(plan): jitted init, compiled epoch
    feed      Feeder: the training set resident on the devices, or fed per process; row readers
              (host_arrays, row_reader) of a data set in memory or on disk
    stream    the streamed epoch: chunks of k steps read from disk and sent while the last runs
    evaluate  EvalSet, Evaluator, evaluate: exact, padded and masked passes (streamed from disk, too)
    predict   predict: scores of inputs in memory or on disk
    audit     audit_every: manual vs jax.grad vs finite differences on a fixed batch
    adaptive_batch  adaptive_batch: the batch size following the measured noise scale segment by
              segment, the learning rate by AdaScale's gain; adaptive_epoch, BatchState
    policy    the loop policy fit and sweep share: evaluation cadence, epoch record, divergence
              (TrainingDiverged), early stopping
    fit       the loop as named phases: plan, restore or init, epoch, evaluate, early stop, save, finish

Scale-out: with `devices` > 1 the training set, params and optimizer state are replicated on a
1-D mesh and every minibatch is split over it (parallel.py), so XLA adds the gradient
all-reduce; the random keys do not depend on the device count. Each gradient follows the
`precision` policy (precision.py); `accumulate` K runs K microbatches per optimizer update.
"""
from jaxmlp.training.audit import GradientAuditFailed
from jaxmlp.training.epoch import epoch_order, gather_batch, make_epoch
from jaxmlp.training.evaluate import EvalSet, Evaluator, make_eval_set
from jaxmlp.training.feed import Feeder, host_arrays, row_reader
from jaxmlp.training.history import Callback, History
from jaxmlp.training.optim import (build_optimizer, decay_mask, make_optimizer, make_schedule,
                                   scaled_learning_rate)
from jaxmlp.training.plan import Plan, RunSpec, plan_of, plan_run, run_spec, spec_from_meta
from jaxmlp.training.programs import Programs, cached, program_key, run_programs
from jaxmlp.training.policy import TrainingDiverged
from jaxmlp.training.state import EpochStats, TrainState, abstract_state, epoch_key, init_state, run_keys
from jaxmlp.training.step import StepCarry, make_step, start_carry

__all__ = [
    "Plan", "RunSpec", "plan_run", "plan_of", "run_spec", "spec_from_meta",
    "Programs", "run_programs", "program_key", "cached",
    "make_epoch", "epoch_order", "gather_batch", "make_step", "StepCarry", "start_carry",
    "Feeder", "host_arrays", "row_reader", "Evaluator", "EvalSet", "make_eval_set",
    "build_optimizer", "decay_mask", "make_optimizer", "make_schedule", "scaled_learning_rate",
    "TrainState", "EpochStats", "TrainingDiverged", "GradientAuditFailed", "History", "Callback",
    "abstract_state", "init_state", "run_keys", "epoch_key",
]
