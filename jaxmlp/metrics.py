"""Activation health metrics: dead ReLUs, saturated sigmoid/tanh units, per-layer gradient norms.

Everything here reads the cache of the hand-written forward pass (`backprop.forward`), so it
costs no second forward pass: the trainer's own step already computed every pre-activation z.
All functions are pure and jittable (the activation name and thresholds are static Python
values).

Definitions (per hidden layer; the output layer has no activation and is never counted):

- **dead unit** (relu family: relu, leaky_relu, prelu, elu, gelu): a unit whose pre-activation
  is never positive, z <= 0, for every example of the data set given. For relu its gradient
  is then zero for all of these inputs, so gradient descent can never revive it from them.
  (For the leaky variants and elu/gelu the unit still gets a small gradient; "dead" then means
  stuck in the negative regime.) ``dead_fraction`` = dead units / units in the layer.
- **saturated activation** (sigmoid, tanh): |z| > threshold, where the local derivative is
  tiny. Defaults: ``SATURATION_THRESHOLDS`` = 3 for sigmoid (sigma'(3) ~ 0.045, under a fifth
  of its peak 0.25) and 2 for tanh (tanh'(2) ~ 0.071, under a tenth of its peak 1).
  ``saturation_fraction`` = saturated (example, unit) pairs / (examples * units).

Batching over a large data set: `tally_activations` summarises one batch into a mergeable
`ActivationTally` ("ever active" masks are combined with logical or, saturation counts are
added); `merge_tallies` folds batches together and `summarize` turns the total into fractions.
A unit is dead only if it was inactive in ALL batches.

    scores, cache = backprop.forward(params, x, activation="relu")
    stats = activation_stats(cache, "relu")          # {"dead_fraction": (L,)}
    norms = layer_grad_norms(grads)                  # (L + 1,) one norm per layer

In a trainer's scan over minibatches (still one forward and one backward per step):

    tally = empty_tally(params)                                            # epoch start
    value, grads, st = loss_grad_and_stats(params, xb, yb, **loss_and_grad_kwargs)
    tally = merge_tallies(tally, st.activations)                           # every step
    summarize(tally, activation)                                           # epoch end

Since the params move during the epoch, that epoch figure means "never active on any
minibatch this epoch"; `dataset_metrics.dataset_activation_stats(params, x_train)` gives the
exact figure for fixed params at the cost of one extra (batched) forward pass over the
training set.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxmlp.activations import Activation, get_activation
from jaxmlp.backprop import LayerCache, manual_loss_grad_and_cache
from jaxmlp.mlp import Params
from jaxmlp.types import Array

RELU_FAMILY = ("relu", "leaky_relu", "prelu", "elu", "gelu")
SATURATION_THRESHOLDS = {"sigmoid": 3.0, "tanh": 2.0}


class ActivationTally(NamedTuple):
    """Mergeable per-hidden-layer counts over the examples seen so far (L hidden layers).

    ever_active: tuple of L bool arrays (h_i,): unit had z > 0 for at least one example
    saturated: (L,) float32, sum over examples of the fraction of the layer's units with
        |z| > threshold (so saturated / examples is the saturation fraction)
    examples: () float32, number of examples counted
    """

    ever_active: tuple[Array, ...]
    saturated: Array
    examples: Array


class StepStats(NamedTuple):
    """What `loss_grad_and_stats` returns besides loss and grads.

    activations: this batch's `ActivationTally` (merge across batches with `merge_tallies`)
    grad_norms: (L + 1,) the Euclidean norm of each layer's gradient (all its leaves)
    """

    activations: ActivationTally
    grad_norms: Array


def _name(activation: str | Activation) -> str:
    return activation.name if isinstance(activation, Activation) else str(activation)


def saturation_threshold(activation: str | Activation, threshold: float | None = None) -> float | None:
    """The |z| threshold used for `activation`: `threshold` if given, else the default (or None)."""
    if threshold is not None:
        return float(threshold)
    return SATURATION_THRESHOLDS.get(_name(activation))


def _hidden(cache: Sequence[LayerCache]) -> Sequence[LayerCache]:
    """The hidden layers' entries; the last cache entry is the output layer."""
    return cache[:-1]


def _row_mask(z: Array, mask: Array | None) -> Array:
    """(B,) float weights of the valid rows of z (B, ...): all ones when mask is None."""
    if mask is None:
        return jnp.ones(z.shape[0], z.dtype)
    return mask.astype(z.dtype)


def tally_activations(cache: Sequence[LayerCache], activation: str | Activation = "relu", *,
                      threshold: float | None = None, mask: Array | None = None) -> ActivationTally:
    """Summarise one batch's cache (from `backprop.forward`) into a mergeable tally.

    mask: optional (B,) bool, False for padding rows that must not count (e.g. the padded tail
    of the last batch). For maxout (z of shape (B, k, h)) a unit is active when its output
    max_j z_j is positive.
    """
    thr = saturation_threshold(activation, threshold)
    ever, saturated = [], []
    for c in _hidden(cache):
        z = c.z if c.z.ndim == 2 else jnp.max(c.z, axis=-2)  # (B, h); maxout: the winning piece
        w = _row_mask(z, mask)  # (B,)
        ever.append(jnp.any((z > 0) & (w[:, None] > 0), axis=0))  # (h,)
        if thr is None:
            saturated.append(jnp.zeros((), jnp.float32))
        else:
            per_row = jnp.mean((jnp.abs(z) > thr).astype(jnp.float32), axis=1)  # (B,)
            saturated.append(jnp.sum(per_row * w.astype(jnp.float32)))
    first_z = cache[0].z
    examples = jnp.sum(_row_mask(first_z, mask).astype(jnp.float32))
    saturated = jnp.stack(saturated) if saturated else jnp.zeros((0,), jnp.float32)  # (L,)
    return ActivationTally(tuple(ever), saturated, examples)


def empty_tally(params: Params) -> ActivationTally:
    """The neutral tally (no examples seen) for these params: start of an epoch's fold."""
    hidden = params[:-1]
    return ActivationTally(
        tuple(jnp.zeros(layer.W.shape[-1], bool) for layer in hidden),
        jnp.zeros(len(hidden), jnp.float32),
        jnp.zeros((), jnp.float32),
    )


def merge_tallies(a: ActivationTally, b: ActivationTally) -> ActivationTally:
    """Combine two tallies: ever-active masks by logical or, counts by addition."""
    return ActivationTally(
        tuple(jnp.logical_or(x, y) for x, y in zip(a.ever_active, b.ever_active)),
        a.saturated + b.saturated,
        a.examples + b.examples,
    )


def dead_fraction_from_tally(tally: ActivationTally) -> Array:
    """(L,) fraction of each hidden layer's units never active over the tallied examples."""
    if not tally.ever_active:  # no hidden layers
        return jnp.zeros((0,), jnp.float32)
    return jnp.stack([jnp.mean(jnp.logical_not(e).astype(jnp.float32)) for e in tally.ever_active])


def summarize(tally: ActivationTally, activation: str | Activation = "relu", *,
              threshold: float | None = None) -> dict[str, Array]:
    """Fractions per hidden layer from a tally: the keys that apply to `activation`.

    relu family -> {"dead_fraction": (L,)};  sigmoid/tanh (or any activation given an explicit
    threshold) -> {"saturation_fraction": (L,)}. Other activations (identity, maxout) get {}.
    """
    stats: dict[str, Array] = {}
    if _name(activation) in RELU_FAMILY:
        stats["dead_fraction"] = dead_fraction_from_tally(tally)
    if saturation_threshold(activation, threshold) is not None:
        stats["saturation_fraction"] = tally.saturated / jnp.maximum(tally.examples, 1.0)
    return stats


def activation_stats(cache: Sequence[LayerCache], activation: str | Activation = "relu", *,
                     threshold: float | None = None) -> dict[str, Array]:
    """Per-hidden-layer stats of one forward pass's cache; see `summarize` for the keys."""
    return summarize(tally_activations(cache, activation, threshold=threshold), activation,
                     threshold=threshold)


def dead_fraction(cache: Sequence[LayerCache]) -> Array:
    """(L,) fraction of each hidden layer's units with z <= 0 for every example in the cache."""
    return dead_fraction_from_tally(tally_activations(cache, "relu"))


def saturation_fraction(cache: Sequence[LayerCache], threshold: float) -> Array:
    """(L,) fraction of (example, unit) pairs of each hidden layer with |z| > threshold."""
    tally = tally_activations(cache, "identity", threshold=threshold)
    return tally.saturated / jnp.maximum(tally.examples, 1.0)


def layer_grad_norms(grads: Params, leaf: str | None = None) -> Array:
    """(L + 1,) Euclidean norm of each layer's gradient.

    leaf=None takes all of the layer's leaves together (W, b and a PReLU alpha):
    sqrt(||dW||^2 + ||db||^2 + ...); leaf="W" (or "b", "alpha") takes one of them only.
    The norms are in the grads' dtype, at least float32: a float64 run keeps every digit (the
    noise scale's |G|^2 is exact), a bfloat16 one is summed without its 8-bit mantissa.
    """
    dtype = jnp.promote_types(jax.tree.leaves(grads)[0].dtype, jnp.float32)
    norms = []
    for g in grads:
        leaves = [getattr(g, leaf)] if leaf is not None else [x for x in g if x is not None]
        sq = sum(jnp.sum(jnp.square(x.astype(dtype))) for x in leaves if x is not None)
        norms.append(jnp.sqrt(jnp.asarray(sq, dtype)))
    return jnp.stack(norms)


def loss_grad_and_stats(params: Params, x: Array, y: Array, *, loss: str = "softmax_cross_entropy",
                        l2: float = 0.0, activation: str = "relu", key: Array | None = None,
                        dropout: float = 0.0, input_noise: float = 0.0, train: bool = True,
                        threshold: float | None = None, mask: Array | None = None, method: str = "manual",
                        **activation_options) -> tuple[Array, Params, StepStats]:
    """One manual forward and one backward pass: (loss, grads, StepStats).

    loss and grads equal `backprop.loss_and_grad(..., method="manual")` (mean loss over all
    rows of x; `mask` only excludes padding rows from the activation tally). x: (B, d_in).
    `method` exists so a trainer can pass its loss_and_grad kwargs unchanged; only "manual" is
    accepted, because the stats are read from the manual forward pass's cache.
    """
    if method != "manual":
        raise ValueError(f"loss_grad_and_stats reads the manual forward cache; method must be 'manual', "
                         f"got {method!r}")
    act = get_activation(activation, **activation_options)
    value, grads, cache = manual_loss_grad_and_cache(params, x, y, loss=loss, l2=l2, activation=act, key=key,
                                                     dropout=dropout, input_noise=input_noise, train=train)
    tally = tally_activations(cache, act, threshold=threshold, mask=mask)
    return value, grads, StepStats(tally, layer_grad_norms(grads))


__all__ = [
    "RELU_FAMILY", "SATURATION_THRESHOLDS", "ActivationTally", "StepStats",
    "tally_activations", "empty_tally", "merge_tallies", "summarize", "activation_stats",
    "dead_fraction", "dead_fraction_from_tally", "saturation_fraction", "saturation_threshold",
    "layer_grad_norms", "loss_grad_and_stats",
]
