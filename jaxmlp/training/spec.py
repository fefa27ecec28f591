"""What a run is, read off its config and data before anything is compiled: the loss, the
layer sizes and the epoch's shape (`RunSpec`), and the pre-flight checks (`check_data`),
including the check that every process of a multi-host run holds the same config and data.
"""
from __future__ import annotations

import json
from typing import NamedTuple

import jax
import numpy as np

from jaxmlp import distributed, parallel
from jaxmlp.config import PER_HOST_FIELDS, TrainConfig
from jaxmlp.losses import get_loss
from jaxmlp.training.feed import resolve_feed
from jaxmlp.training.memory import check_memory, device_memory_limit, estimate_memory


class RunSpec(NamedTuple):
    """The data-dependent facts a run's programs are built from (hashable: a compile-cache key).

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


def resolve_loss(config: TrainConfig, data) -> str:
    """The canonical loss name for this config and data set; ValueError when they do not fit."""
    classification = data.num_classes is not None
    name = config.loss
    if name == "auto":
        name = "softmax_cross_entropy" if classification else "mean_squared_error"
    loss = get_loss(name)
    if classification and loss.name == "mean_squared_error":
        raise ValueError(f"loss mean_squared_error needs regression targets, but {data.name} is a "
                         "classification set; use softmax_cross_entropy, multiclass_hinge or binary_logistic")
    if not classification and loss.name != "mean_squared_error":
        raise ValueError(f"loss {loss.name} needs class labels, but {data.name} is a regression set; "
                         "use mean_squared_error")
    if loss.name == "binary_logistic" and data.num_classes != 2:
        raise ValueError(f"loss binary_logistic needs 2 classes, {data.name} has {data.num_classes}")
    return loss.name


def model_sizes(config: TrainConfig, data, loss: str) -> tuple[int, ...]:
    """(d_in, *hidden, d_out): d_out is the class count, 1 for binary_logistic, k for (N, k) targets."""
    if data.num_classes is None:
        d_out = int(data.y.shape[1]) if data.y.ndim == 2 else 1
    else:
        d_out = 1 if loss == "binary_logistic" else int(data.num_classes)
    return (int(data.x.shape[1]), *config.hidden, d_out)


def run_spec(config: TrainConfig, train) -> RunSpec:
    """The RunSpec of training `config` on the Dataset `train`."""
    loss = resolve_loss(config, train)
    n = len(train)
    return RunSpec(loss, model_sizes(config, train, loss), n, n // config.batch_size,
                   tuple(int(s) for s in np.shape(train.y)[1:]), train.num_classes is not None)


def spec_from_meta(meta: dict, config: TrainConfig) -> RunSpec:
    """The RunSpec a checkpoint was saved with, from its meta (checkpoints written before meta
    held n_train and target_shape get n_train = steps * batch_size and a target shape inferred
    from the loss: enough to rebuild the optimizer and the state's structure)."""
    loss, sizes, steps = meta["loss"], tuple(meta["sizes"]), int(meta["steps_per_epoch"])
    classification = loss != "mean_squared_error"
    inferred = () if classification or sizes[-1] == 1 else (sizes[-1],)
    return RunSpec(loss, sizes, int(meta.get("n_train", steps * config.batch_size)), steps,
                   tuple(meta.get("target_shape", inferred)), classification)


def check_processes_agree(config: TrainConfig, **splits) -> None:
    """With several processes: ValueError unless all hold the same config and data sets."""
    if jax.process_count() == 1:
        return
    shared = {k: v for k, v in config.to_dict().items() if k not in PER_HOST_FIELDS}
    things = {"config": json.dumps(shared, sort_keys=True).encode()}
    for name, data in splits.items():
        if data is not None:
            things[f"{name} x"], things[f"{name} y"] = np.asarray(data.x), np.asarray(data.y)
    distributed.assert_same_everywhere(**things)


def check_data(config: TrainConfig, train, val=None, test=None) -> None:
    """The checks `fit` makes before training (the CLI runs them before writing a run dir).

    Raises ValueError naming the setting that does not fit (the loss, by `resolve_loss`, and the
    device memory the run needs by `memory.estimate_memory` included), or,
    with several processes, what differs between them (the config and every data set given,
    compared by CRC-32, first, so that no process fails a check its peers pass and leaves them
    waiting).
    """
    check_processes_agree(config, train=train, val=val, test=test)
    resolve_loss(config, train)
    if config.batch_size > len(train):
        raise ValueError(f"batch_size must be <= the number of training examples ({len(train)}), "
                         f"got {config.batch_size}")
    if (config.patience or config.restore_best) and val is None:
        what = "patience (early stopping)" if config.patience else "restore_best"
        raise ValueError(f"{what} needs validation data: set val_fraction > 0")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs 64-bit JAX: set JAX_ENABLE_X64=1 or use jax.enable_x64()")
    dp = parallel.data_parallel(config.devices)  # ValueError: more devices than there are
    devices = dp.size if dp else 1
    parallel.check_batch(config.batch_size, devices, config.accumulate)
    estimate = estimate_memory(config, run_spec(config, train), feed=resolve_feed(config), devices=devices)
    check_memory(estimate, device_memory_limit())
