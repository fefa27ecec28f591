"""Activation stats and gradient norms over a whole data set for fixed params: passes over its
batches that fold `metrics`' per-batch tallies (dead and saturated units, see there).

    stats = dataset_activation_stats(params, x)            # forward passes only; summarize's keys
    stats = dataset_stats(params, xb, yb, mask, n, l2=l2)  # plus "grad_norm" (L + 1,)

`dataset_stats` is one `lax.scan` over data already cut into batches; a trainer that holds its
data in another layout drives `dataset_stats_start` / `_update` / `_result` itself.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.backprop import backward, forward
from jaxmlp.batching import pad_rows
from jaxmlp.losses import get_loss, l2_grad
from jaxmlp.metrics import (ActivationTally, empty_tally, layer_grad_norms, merge_tallies, summarize,
                            tally_activations)
from jaxmlp.mlp import Params
from jaxmlp.types import Array


def dataset_activation_stats(params: Params, x: Array, *, activation: str = "relu", batch_size: int = 1024,
                             threshold: float | None = None, **activation_options) -> dict[str, Array]:
    """Stats over a whole data set x (N, d_in), evaluated in batches (deterministic, train=False).

    The batches are `batching.pad_rows`'s: the last is filled up with row 0 and those rows are
    masked out, so the result equals `activation_stats` of one forward pass over all of x.
    """
    rows, valid = pad_rows(x.shape[0], batch_size)  # (nb, B) each

    def step(tally, batch):
        xi, mi = batch
        _, cache = forward(params, xi, activation=activation, train=False, **activation_options)
        return merge_tallies(tally, tally_activations(cache, activation, threshold=threshold, mask=mi)), None

    tally, _ = jax.lax.scan(step, empty_tally(params), (x[rows], valid))  # x[rows]: (nb, B, d_in)
    return summarize(tally, activation, threshold=threshold)


class DatasetStats(NamedTuple):
    """What `dataset_stats_update` accumulates over the batches of a data set."""

    tally: ActivationTally
    grad_sum: Params  # sum over batches of d(sum of the batch's real-row losses) / n


def dataset_stats_start(params: Params) -> DatasetStats:
    """The empty accumulator of a pass over a data set."""
    return DatasetStats(empty_tally(params), jax.tree.map(jnp.zeros_like, params))


def dataset_stats_update(acc: DatasetStats, params: Params, x: Array, y: Array, mask: Array, n: int, *,
                         loss: str = "softmax_cross_entropy", activation: str = "relu",
                         threshold: float | None = None, **activation_options) -> DatasetStats:
    """Fold one batch into `acc`: one manual forward pass (its cache gives the tally) and one
    backward pass fed the upstream gradient of this batch's share of the data-set mean loss.

    x (B, d_in), y (B,) or (B, k), mask (B,) bool: the real (not padding) rows; n: real rows in
    the whole data set.
    """
    loss_fn = get_loss(loss)
    scores, cache = forward(params, x, activation=activation, **activation_options)
    up = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
    # loss_fn.grad is d(mean over B rows); rescale to d(sum over real rows) / n
    dscores = (loss_fn.grad(up, y) * (x.shape[0] / n) * mask[:, None]).astype(scores.dtype)  # (B, d_out)
    grads, _ = backward(params, cache, dscores, activation=activation, **activation_options)
    tally = merge_tallies(acc.tally, tally_activations(cache, activation, threshold=threshold, mask=mask))
    return DatasetStats(tally, jax.tree.map(jnp.add, acc.grad_sum, grads))


def dataset_stats_result(acc: DatasetStats, params: Params, *, l2: float = 0.0, activation: str = "relu",
                         threshold: float | None = None) -> dict[str, Array]:
    """`summarize`'s keys plus "grad_norm" (L + 1,): per-layer norms of the gradient of the
    objective on all n rows (mean loss + 0.5 * l2 * sum ||W||^2)."""
    grads = l2_grad(acc.grad_sum, params, l2)
    return {**summarize(acc.tally, activation, threshold=threshold), "grad_norm": layer_grad_norms(grads)}


def dataset_stats(params: Params, xb: Array, yb: Array, mask: Array, n: int, *, loss: str = "softmax_cross_entropy",
                  l2: float = 0.0, activation: str = "relu", threshold: float | None = None,
                  **activation_options) -> dict[str, Array]:
    """Activation stats and per-layer gradient norms over a whole data set, from one manual
    forward and backward pass per batch (the stats come from that forward pass's cache).

    xb (nb, B, d_in), yb (nb, B) or (nb, B, k): the data set cut into nb batches, the last
    zero-padded; mask (nb, B) marks the n real rows. The gradient is that of the objective on
    all n rows, built by feeding `backward` the upstream gradient of the masked mean. A trainer
    that holds its data in another layout drives `dataset_stats_start` / `_update` / `_result`
    itself.
    """
    def body(acc, batch):
        return dataset_stats_update(acc, params, *batch, n, loss=loss, activation=activation, threshold=threshold,
                                    **activation_options), None

    acc, _ = jax.lax.scan(body, dataset_stats_start(params), (xb, yb, mask))
    return dataset_stats_result(acc, params, l2=l2, activation=activation, threshold=threshold)


__all__ = [
    "dataset_activation_stats", "DatasetStats", "dataset_stats_start", "dataset_stats_update",
    "dataset_stats_result", "dataset_stats",
]
