"""The trainer: data on the device once, one compiled call per epoch, divergence caught on device.

    params, history = fit(TrainConfig(hidden=(100,)), splits.train, splits.val, splits.test)
    evaluate(params, splits.test, config=cfg)     # {"loss": ..., "accuracy": ...}
    predict(params, x, activation="relu")         # (N, d_out) scores

Modules, one concept each, imports pointing down this list:

    history   History (per-epoch records, final evaluation) and Callback; no JAX
    state     TrainState, EpochStats, TrainingDiverged, fresh and abstract states, run keys
    optim     weight-decay mask, LR scaling, schedules, the table of optax optimizers
    gradtrack track_gradients: per-example statistics and the noise scale inside the step
    step      one optimizer step: precision policy, gradient accumulation, the finite flag
    epoch     the epoch plan and the scan-fused epoch (one jitted call, state donated)
    feed      Feeder: the training set resident on the devices, or fed per process
    spec      RunSpec (loss, sizes, epoch shape) and the pre-flight checks, processes included
    run       build_run: optimizer, schedule and compiled programs, cached across runs
    evaluate  EvalSet, Evaluator, evaluate, predict: exact, padded and masked passes, one program per run
    audit     audit_every: manual vs jax.grad vs finite differences on a fixed batch
    policy    the loop policy fit and sweep share: evaluation cadence, epoch record, divergence, early stopping
    fit       the loop as named phases: restore or init, epoch, evaluate, early stop, save, finish

Scale-out: with `devices` > 1 the training set, params and optimizer state are replicated on a
1-D mesh and every minibatch is split over it (parallel.py), so XLA adds the gradient
all-reduce; the random keys do not depend on the device count. Each gradient follows the
`precision` policy (precision.py); `accumulate` K runs K microbatches per optimizer update.
"""
from jaxmlp.training.audit import GradientAuditFailed
from jaxmlp.training.evaluate import EvalSet, Evaluator, evaluate, predict
from jaxmlp.training.fit import fit
from jaxmlp.training.history import Callback, History
from jaxmlp.training.run import Run, build_run, program_key
from jaxmlp.training.spec import RunSpec, check_data, run_spec
from jaxmlp.training.state import EpochStats, TrainingDiverged, TrainState

__all__ = [
    "fit", "evaluate", "predict", "History", "Callback", "TrainingDiverged", "GradientAuditFailed", "TrainState",
    "EpochStats",
    "Run", "build_run", "program_key", "RunSpec", "run_spec", "check_data", "EvalSet", "Evaluator",
]
