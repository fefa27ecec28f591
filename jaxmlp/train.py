"""`jaxmlp.train`: the trainer's public names, kept importable for code written against the
single-module trainer. The trainer itself lives in the `jaxmlp.training` package."""
from jaxmlp.training.epoch import epoch_plan, epoch_rows, gather_batch, make_epoch_fn
from jaxmlp.training.evaluate import EvalSet, Evaluator, evaluate, make_eval_set, predict
from jaxmlp.training.feed import Feeder, host_arrays, place, resolve_feed
from jaxmlp.training.fit import fit
from jaxmlp.training.history import Callback, History
from jaxmlp.training.optim import (build_optimizer, decay_mask, make_optimizer, make_schedule,
                                   scaled_learning_rate)
from jaxmlp.training.run import Run, build_run, program_key
from jaxmlp.training.spec import RunSpec, check_data, model_sizes, resolve_loss, run_spec
from jaxmlp.training.state import (EpochStats, TrainingDiverged, TrainState, abstract_state, epoch_key,
                                   init_state, run_keys)
from jaxmlp.training.step import StepCarry, make_step_fn, start_carry

__all__ = [
    "fit", "evaluate", "predict", "History", "Callback", "TrainingDiverged", "TrainState", "EpochStats",
    "Run", "build_run", "program_key", "RunSpec", "run_spec", "check_data", "model_sizes", "resolve_loss",
    "build_optimizer", "decay_mask", "make_optimizer", "make_schedule", "scaled_learning_rate",
    "abstract_state", "init_state", "run_keys", "epoch_key", "StepCarry", "make_step_fn", "start_carry",
    "epoch_plan", "epoch_rows", "gather_batch", "make_epoch_fn", "EvalSet", "Evaluator", "make_eval_set",
    "Feeder", "place", "resolve_feed", "host_arrays",
]
