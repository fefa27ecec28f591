"""Exact evaluation over whole data sets: `EvalSet` (a data set laid out in padded, masked
batches), `Evaluator` (a run's metrics and activation statistics over EvalSets), and the
public `evaluate` and `predict`.

Every pass is jitted and batched; the last batch is padded with row 0 and masked out
(batching.pad_rows), so means are exact. On a data-parallel mesh every batch is split over
the devices.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp import metrics as metrics_lib
from jaxmlp import parallel
from jaxmlp.activations import get_activation
from jaxmlp.batching import pad_rows
from jaxmlp.config import TrainConfig
from jaxmlp.losses import get_loss, predict_classes
from jaxmlp.mlp import Params, mlp_apply
from jaxmlp.training.feed import feed_rows, place, replicate, train_arrays
from jaxmlp.training.run import Run
from jaxmlp.training.spec import resolve_loss

Array = jax.Array


class EvalSet(NamedTuple):
    """A data set of n examples laid out for evaluation in nb = ceil(n / B) batches of B rows.

    Resident rows: x (N, D), y (N,) or (N, k) on the device and rows (nb, B) int32; batch i is
    x[rows[i]], so the training set already on the device is evaluated without a second copy.
    Batched (rows None): x (nb, B, D), y (nb, B[, k]), split over the devices along B when each
    process fed its rows. Either way the positions >= n of the last batch repeat row 0 and are
    masked out.
    """

    x: Array
    y: Array
    rows: Array | None


def make_eval_set(x: np.ndarray, y: np.ndarray, batch_size: int, *, dp: parallel.DataParallel | None = None,
                  feed: str = "resident", resident: tuple[Array, Array] | None = None) -> EvalSet:
    """The EvalSet of host arrays x (n, D), y (n, ...): batched and fed per process (feed
    per_process), else resident rows, reusing `resident` (x, y already on the device) if given."""
    rows, _ = pad_rows(x.shape[0], batch_size, dp.size if dp is not None else 1)  # (nb, B)
    if feed == "per_process":
        return EvalSet(*feed_rows(dp, (x, y), rows), None)
    xd, yd = resident if resident is not None else replicate((x, y), dp)
    return EvalSet(xd, yd, replicate(rows, dp))


def scan_eval_set(body: Callable, init, data: EvalSet, n: int, dp: parallel.DataParallel | None = None):
    """Fold `body(acc, x_i (B, D), y_i (B, ...), mask_i (B,) bool) -> acc` over the batches of
    `data` (inside jit); with `dp` every batch is split over its devices."""
    batches = data.rows if data.rows is not None else (data.x, data.y)
    nb, b = jax.tree.leaves(batches)[0].shape[:2]

    def fold(acc, inputs):
        i, batch = inputs
        xi, yi = (data.x[batch], data.y[batch]) if data.rows is not None else batch
        if dp is not None:
            xi, yi = dp.constrain_batch(xi), dp.constrain_batch(yi)
        return body(acc, xi, yi, i * b + jnp.arange(b) < n), None

    return jax.lax.scan(fold, init, (jnp.arange(nb), batches))[0]


@functools.lru_cache(maxsize=64)
def _metrics_fn(loss: str, activation: str, options: tuple, classification: bool,
                dp: parallel.DataParallel | None = None) -> Callable:
    """Jitted (params, EvalSet, n) -> (sum of per-example losses, sum of correct / squared errors)."""
    loss_fn = get_loss(loss)
    opts = dict(options)

    def sums(params, data: EvalSet, n: int):
        def body(acc, x, y, m):  # x (B, D), y (B[, k]), m (B,)
            scores = mlp_apply(params, x, activation=activation, **opts)  # (B, d_out)
            per = loss_fn.per_example(scores, y)  # (B,)
            if classification:
                metric = (predict_classes(scores).astype(y.dtype) == y).astype(jnp.float32)
            else:
                metric = jnp.mean((scores - y.reshape(scores.shape)) ** 2, axis=1)
            return acc[0] + jnp.sum(jnp.where(m, per, 0)), acc[1] + jnp.sum(jnp.where(m, metric, 0))

        zero = jnp.zeros((), params[0].W.dtype)
        return scan_eval_set(body, (zero, zero), data, n, dp)

    return jax.jit(sums, static_argnums=(2,))


@functools.lru_cache(maxsize=16)
def _activation_stats_fn(loss: str, l2: float, activation: str, options: tuple,
                         dp: parallel.DataParallel | None = None) -> Callable:
    """Jitted `track_activations` stats over an EvalSet: dead / saturation fractions (L,) and
    grad norms (L + 1,), one manual forward and backward pass per batch (metrics.py)."""
    opts = dict(options)

    def stats(params, data: EvalSet, n: int):
        def body(acc, x, y, m):
            return metrics_lib.dataset_stats_update(acc, params, x, y, m, n, loss=loss, activation=activation, **opts)

        acc = scan_eval_set(body, metrics_lib.dataset_stats_start(params), data, n, dp)
        return metrics_lib.dataset_stats_result(acc, params, l2=l2, activation=activation)

    return jax.jit(stats, static_argnums=(2,))


def _metrics(params, data: EvalSet, n: int, loss: str, activation: str, options: dict, classification: bool,
             dp: parallel.DataParallel | None = None) -> dict[str, float]:
    fn = _metrics_fn(get_loss(loss).name, activation, tuple(sorted(options.items())), classification, dp)
    loss_sum, metric_sum = jax.device_get(parallel.to_local(fn(params, data, n)))
    return {"loss": float(loss_sum) / n, ("accuracy" if classification else "mse"): float(metric_sum) / n}


class Evaluator:
    """A run's exact evaluations: `metrics` (loss and accuracy or mse) and `activation_stats`
    (track_activations) of params over an EvalSet of n examples laid out by `eval_set`."""

    def __init__(self, run: Run):
        self.run, self.options = run, run.config.activation_options()

    def eval_set(self, data, resident: tuple[Array, Array] | None = None) -> tuple[EvalSet, int]:
        """(EvalSet, n) of a Dataset, laid out for this run's devices and feed."""
        run = self.run
        x, y = train_arrays(data, np.dtype(run.config.dtype))
        return make_eval_set(x, y, run.config.eval_batch_size, dp=run.data_parallel, feed=run.feed,
                             resident=resident), len(data)

    def metrics(self, params, data: EvalSet, n: int) -> dict[str, float]:
        run = self.run
        return _metrics(params, data, n, run.loss, run.config.activation, self.options, run.spec.classification,
                        run.data_parallel)

    def activation_stats(self, params, data: EvalSet, n: int) -> dict[str, list[float]]:
        run, c = self.run, self.run.config
        fn = _activation_stats_fn(run.loss, c.l2, c.activation, tuple(sorted(self.options.items())), run.data_parallel)
        stats = jax.device_get(parallel.to_local(fn(params, data, n)))
        return {k: np.asarray(v).tolist() for k, v in stats.items()}


def evaluate(params: Params, data, *, config: TrainConfig | None = None, loss: str | None = None,
             activation: str | None = None, batch_size: int | None = None,
             **activation_options) -> dict[str, float]:
    """Exact mean loss over all examples of `data`, plus accuracy (classification) or mse
    (regression, of the raw scores). Jitted and batched; the last batch is padded and masked.

    Settings come from `config` unless given explicitly (loss defaults to auto from the data).
    """
    config = config or TrainConfig()
    loss = loss or resolve_loss(config, data)
    activation = activation or config.activation
    options = activation_options or (config.activation_options() if activation == config.activation else {})
    eval_set = make_eval_set(*train_arrays(data, params[0].W.dtype), batch_size or config.eval_batch_size)
    return _metrics(params, eval_set, len(data), loss, activation, options, data.num_classes is not None)


@functools.lru_cache(maxsize=64)
def _predict_fn(activation: str, options: tuple) -> Callable:
    opts = dict(options)

    @jax.jit
    def scores(params, xb):  # (nb, B, D) -> (nb, B, d_out)
        return jax.lax.map(lambda x: mlp_apply(params, x, activation=activation, **opts), xb)

    return scores


def predict(params: Params, x, *, activation: str = "relu", batch_size: int = 1024,
            **activation_options) -> Array:
    """Scores (N, d_out) for inputs x (N, d_in), batched and jitted (train=False: no dropout);
    N = 0 gives an empty (0, d_out) array."""
    get_activation(activation, **activation_options)  # fail early on bad options
    x = np.asarray(x, dtype=params[0].W.dtype)
    d_in, d_out = params[0].W.shape[-2], params[-1].W.shape[-1]
    if x.ndim != 2 or x.shape[1] != d_in:
        raise ValueError(f"x must have shape (N, {d_in}) for these params, got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return jnp.zeros((0, d_out), x.dtype)
    rows, _ = pad_rows(n, batch_size)  # (nb, B)
    out = _predict_fn(activation, tuple(sorted(activation_options.items())))(params, place(x[rows]))
    return out.reshape(-1, out.shape[-1])[:n]  # (N, d_out)
