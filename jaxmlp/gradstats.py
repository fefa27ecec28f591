"""Per-example gradient statistics from the hand-written backward pass, BackPACK style.

The forward cache keeps every layer's input a (B, d_in); the backward walk gives every
layer's per-example output gradient δ (B, d_out). Example i's weight gradient is the outer
product g_W,i = a_i ⊗ δ_i, so its statistics come without materializing B gradients:

    ‖g_W,i‖² = ‖a_i‖² ‖δ_i‖²          ‖g_b,i‖² = ‖δ_i‖²        (BatchL2Grad; Goodfellow 2015, "ghost norms")
    Σ_i g_W,i ⊙ g_W,i = (a²)ᵀ (δ²)     Σ_i g_b,i ⊙ g_b,i = Σ_i δ_i ⊙ δ_i       (SumGradSquared)
    variance = Σ_i g_i ⊙ g_i / B − ḡ ⊙ ḡ,  ḡ = Σ_i g_i / B                     (Variance)
    g_W,i = a_i ⊗ δ_i,  g_b,i = δ_i                                          (BatchGrad, opt-in)

With `jax.grad` the same needs `vmap(grad)`, which stores B copies of the gradient.

Scaling: every statistic is defined on the per-example losses ℓ_i, whose batch mean is the
loss. The walk runs on `Loss.grad`, the gradient of that mean, so its δ rows carry a factor
1/B; it is undone on the rows (δ_i times B) before any statistic is formed, and `grad` is the
gradient of the mean loss itself. The L2 term belongs to no example and is left out.

Every layer kind is covered by the cache and the walk (backprop.backward with steps=True):
- dropout: a_i is the layer's input after the previous layer's mask, and δ comes back
  through the same mask;
- maxout (W (k, d_in, d_out)): δ (B, k, d_out) is nonzero only at each unit's argmax piece
  (split evenly among ties), and every piece j gets its own norm ‖a_i‖² ‖δ_i[j]‖²: the
  batch_l2 leaves of a maxout layer are (B, k);
- PReLU: the slope gradient of example i, the activation's own rule applied to row i alone.

    losses, stats = gradient_stats(params, x, y, loss="softmax_cross_entropy", activation="relu")
    stats.sq_norm                      # (B,) ‖g_i‖² over all parameters
    stats.batch_l2[0].W                # (B,) ‖g_W,i‖² of the first layer
    jax.tree.map(jnp.allclose, stats.sum_grad_squared, reference.sum_grad_squared)

`stats_from_batch_grads` computes the same statistics from materialized per-example
gradients (from `vmap(grad)`, say): the definitions the tests and the benchmark compare with.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.activations import Activation, get_activation
from jaxmlp.backprop import BackwardStep, LayerCache, backward, forward, loss_precision
from jaxmlp.losses import Loss, check_targets, get_loss
from jaxmlp.mlp import Layer, Params
from jaxmlp.types import Array


class GradStats(NamedTuple):
    """Per-example gradient statistics. Every field but `sq_norm` has the tree structure of params
    (None where params have None), so one `jax.tree.map` compares two GradStats.

    g_i is the gradient of example i's own loss ℓ_i (`Loss.per_example`), whose batch mean is
    the loss; the L2 term 0.5 * l2 * Σ‖W‖² belongs to no example and is left out of everything.

    grad: ḡ = Σ_i g_i / B, the gradient of the mean loss
    batch_l2: ‖g_i‖² per layer and field, leaves (B,); (B, k) in a maxout layer, one per piece
    sum_grad_squared: Σ_i g_i ⊙ g_i, leaves shaped like the params
    variance: Σ_i g_i ⊙ g_i / B − ḡ ⊙ ḡ, leaves shaped like the params
    batch_grad: the g_i themselves, leaves (B, *param shape); None unless asked for
    sq_norm: (B,) ‖g_i‖² over all parameters, the sum of every batch_l2 leaf
    """

    grad: Params
    batch_l2: Params
    sum_grad_squared: Params
    variance: Params
    batch_grad: Params | None
    sq_norm: Array


def _sum_rows(x: Array, keep: int) -> Array:
    """Sum x over every axis after its first `keep` axes: (B, k, ...) -> (B, k) for keep=2."""
    return jnp.sum(x, axis=tuple(range(keep, x.ndim)))


def slope_rows(act: Activation, step: BackwardStep, c: LayerCache, alpha: Array) -> Array:
    """(B, d) the PReLU slope gradient of each example: the activation's rule on one row at a time."""
    def one(da, z, a):  # (d,) rows
        return act.backward(da[None], z[None], a[None], alpha)[1]

    return jax.vmap(one)(step.da, c.z, c.a)


def _layer_stats(step: BackwardStep, a_prev: Array, slopes: Array | None,
                 batch_grad: bool) -> tuple[Layer, Layer, Layer | None]:
    """(batch_l2, sum_grad_squared, batch_grad or None) of one layer, from its input a_prev
    (B, d_in), the walk's δ (B, d_out) or (B, k, d_out) and per-example PReLU slopes (B, d_out)
    or None. The walk's δ is that of the mean loss: times B it is each example's own."""
    delta = step.delta * step.delta.shape[0]  # dℓ_i/dz_i: the mean's 1/B undone, on (B, d_out) rows
    p = "k" if delta.ndim == 3 else ""  # maxout pieces
    a2, d2 = a_prev * a_prev, delta * delta  # (B, d_in), (B, [k,] d_out)
    unit_l2 = _sum_rows(d2, delta.ndim - 1)  # (B,) or (B, k): ‖δ_i‖² (per piece)
    a_l2 = jnp.sum(a2, axis=1).reshape((-1,) + (1,) * (unit_l2.ndim - 1))  # (B, 1...) ‖a_i‖²
    no_slope = slopes is None
    l2 = Layer(a_l2 * unit_l2, unit_l2, None if no_slope else jnp.sum(slopes * slopes, axis=1))
    sgs = Layer(jnp.einsum(f"bi,b{p}o->{p}io", a2, d2), jnp.sum(d2, axis=0),
                None if no_slope else jnp.sum(slopes * slopes, axis=0))
    rows = Layer(jnp.einsum(f"bi,b{p}o->b{p}io", a_prev, delta), delta, slopes) if batch_grad else None
    return l2, sgs, rows


def per_example_stats(params: Params, cache: list[LayerCache], dscores: Array, act: Activation, *,
                      batch_grad: bool = False) -> GradStats:
    """The GradStats of a cached forward pass (`backprop.forward`).

    dscores (B, d_out) is the gradient of the batch MEAN loss, as `Loss.grad` gives it: row i
    is dℓ_i/ds_i / B. The walk runs on it unchanged, so `grad` is the walk's own gradient,
    and the 1/B is undone on the per-example rows only (δ times B: O(B d) work, never a pass
    over the gradient). batch_grad=True also returns every g_i (B copies of the params: for
    small models).
    """
    steps, _ = backward(params, cache, dscores, activation=act, steps=True)
    per_layer = []
    for layer, step, c in zip(params, steps, cache):
        slopes = None if layer.alpha is None else slope_rows(act, step, c, layer.alpha) * dscores.shape[0]
        per_layer.append(_layer_stats(step, c.a_prev, slopes, batch_grad))
    l2s, sgss, rows = (list(t) for t in zip(*per_layer))
    return _assemble([s.grads for s in steps], l2s, sgss, rows if batch_grad else None, dscores.shape[0])


def layer_sq_norms(batch_l2: Params) -> Array:
    """(B, L + 1) ‖g_i‖² of each layer (all its fields and pieces) from GradStats.batch_l2."""
    return jnp.stack([sum(_sum_rows(leaf, 1) for leaf in jax.tree.leaves(layer)) for layer in batch_l2], axis=1)


def _assemble(grad: Params, batch_l2: Params, sgs: Params, rows: Params | None, batch: int) -> GradStats:
    """The GradStats of these pieces: variance and sq_norm derived."""
    variance = jax.tree.map(lambda s, g: s / batch - g * g, sgs, grad)
    return GradStats(grad, batch_l2, sgs, variance, rows, jnp.sum(layer_sq_norms(batch_l2), axis=1))


def stats_from_batch_grads(params: Params, batch_grads: Params) -> GradStats:
    """The definitions, from materialized per-example gradients: leaves (B, *param shape), e.g.
    `jax.vmap(jax.grad(per_example_loss))`. batch_l2 keeps the piece axis of maxout layers."""
    batch = jax.tree.leaves(batch_grads)[0].shape[0]

    def norms(layer: Layer, rows: Layer) -> Layer:
        keep = 2 if layer.W.ndim == 3 else 1  # maxout: one norm per piece
        return jax.tree.map(lambda g: _sum_rows(g * g, keep), rows)

    l2 = [norms(layer, rows) for layer, rows in zip(params, batch_grads)]
    sgs = jax.tree.map(lambda g: jnp.sum(g * g, axis=0), batch_grads)
    grad = jax.tree.map(lambda g: jnp.mean(g, axis=0), batch_grads)
    return _assemble(grad, l2, sgs, batch_grads, batch)


def gradient_stats(params: Params, x: Array, y: Array, *, loss: str | Loss = "softmax_cross_entropy",
                   activation: str | Activation = "relu", key: Array | None = None, dropout: float = 0.0,
                   input_noise: float = 0.0, train: bool = True, batch_grad: bool = False,
                   mask: Array | None = None, **activation_options) -> tuple[Array, GradStats]:
    """(per-example losses (B,), GradStats) of one forward pass and one backward walk, x (B, d_in).

    The walk starts from `loss.grad`, the mean loss's gradient, as the trainer's does; the loss
    runs in at least float32 like the trainer's, the walk in the params' dtype. With train=True,
    dropout and input noise (which need `key`) act as in `loss_and_grad`, and the statistics are
    those of that forward pass's per-example losses. mask (B,) bool: rows that are False (the
    padding of a last batch) get g_i = 0; `grad` still divides by B.
    """
    act, loss = get_activation(activation, **activation_options), get_loss(loss)
    check_targets(loss, (jnp.shape(x)[0], params[-1].W.shape[-1]), y)
    scores, cache = forward(params, x, activation=act, key=key, dropout=dropout, input_noise=input_noise, train=train)
    up = loss_precision(scores)
    dscores = loss.grad(up, y)  # (B, d_out): dℓ_i/ds_i / B
    if mask is not None:
        dscores = jnp.where(mask[:, None], dscores, 0)
    dscores = dscores.astype(scores.dtype)
    return loss.per_example(up, y), per_example_stats(params, cache, dscores, act, batch_grad=batch_grad)


__all__ = ["GradStats", "gradient_stats", "per_example_stats", "stats_from_batch_grads",
           "layer_sq_norms", "slope_rows"]
