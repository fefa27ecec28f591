"""`jaxmlp evaluate RUN_DIR`: a saved run's loss and accuracy (or mse) on a data set, exact over
all its examples (the run's own test split by default)."""
from __future__ import annotations

import argparse

from jaxmlp.cli import saved_run
from jaxmlp.cli.run_config import dtype_scope


def add_arguments(parser: argparse.ArgumentParser) -> None:
    saved_run.add_run_dir(parser)
    saved_run.add_data_flags(parser)
    saved_run.add_checkpoint_flags(parser)


def cmd_evaluate(ns: argparse.Namespace) -> int:
    from jaxmlp.training.evaluate import evaluate

    config = saved_run.run_config(ns, "evaluate")
    with dtype_scope(config.dtype):
        params, config, meta = saved_run.restore(ns, "evaluate")
        data, split = saved_run.load_data(ns, "evaluate", config, meta)
        _check_targets(data, meta)
        metrics = evaluate(params, data, config=config, loss=meta["loss"])
    print(f"{data.name} {split} split, {len(data)} examples, {meta['kept']}: "
          + " ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    return 0


def _check_targets(data, meta: dict) -> None:
    """The labels must be classes the model scores; regression targets as many as it outputs."""
    out, loss = int(meta["sizes"][-1]), meta["loss"]
    if data.num_classes is not None:
        scored = 2 if loss == "binary_logistic" else out
        if data.num_classes > scored:
            raise saved_run.error("evaluate", f"{data.name}: labels go up to {data.num_classes - 1}, but the model "
                                  f"scores {scored} classes (0 to {scored - 1})")
    elif data.y.shape[1] != out:
        raise saved_run.error("evaluate", f"{data.name}: targets have {data.y.shape[1]} column(s), but the model "
                              f"outputs {out}")
