"""Hand-written backpropagation: the twin of `mlp.py`, by the chain rule, layer by layer.

`forward` runs the same network as `mlp_apply` and keeps a cache of what each layer's
backward step needs. `backward` takes ANY upstream gradient `dscores` (CS231n layer style)
and walks the layers in reverse, each step the derivative written beside its forward rule:

    dW, db, da = affine_backward(layer, a_prev, delta)   # mlp.py: a_prev.T @ delta, delta.sum(0), delta @ W.T
    da = dropout_backward(da, mask)                      # mlp.py: da * mask
    delta, dslope = act.backward(da, z, a, alpha)        # activations.py: dL/dz of the layer below

Its grads have exactly the tree structure of params, so `jax.tree.map` compares them with
`jax.grad`'s. `loss_and_grad(..., method="manual" | "autodiff")` gives the same (loss, grads)
either way.

Keywords at the door, one tuple inside: `forward`, `objective` and `loss_and_grad` take
`key=, dropout=, input_noise=, train=` and activation options as keywords, as callers write
them; each packs them once into `mlp.ForwardOptions` and an `Activation` and calls its core
(`scores_and_cache`, `objective_value`, `value_and_grads`), which pass only those two on.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.activations import Activation, get_activation
from jaxmlp.losses import Loss, check_targets, get_loss, l2_grad, l2_penalty
from jaxmlp.mlp import (ForwardOptions, Layer, Params, affine, affine_backward, check_input, dropout_backward,
                        dropout_mask, mlp_scores, prepare_input, regularizer_on)

Array = jax.Array


class LayerCache(NamedTuple):
    """What one layer's backward step needs.

    a_prev: (B, d_in) the layer's input (after the previous layer's dropout)
    z: (B, d_out) pre-activations, (B, k, d_out) for maxout; for the output layer, the scores
    a: (B, d_out) activations before dropout; None for the output layer
    mask: (B, d_out) inverted-dropout multiplier; None when dropout is off or for the output layer
    """

    a_prev: Array
    z: Array
    a: Array | None
    mask: Array | None


def scores_and_cache(params: Params, x: Array, act: Activation, options: ForwardOptions
                     ) -> tuple[Array, list[LayerCache]]:
    """Scores (B, d_out), exactly as `mlp.mlp_scores`, and the per-layer cache for `backward`."""
    a, dropout_keys = prepare_input(params, x, act, options)
    dropping = options.train and regularizer_on(options.dropout)
    cache = []
    for i, layer in enumerate(params[:-1]):
        z = affine(layer, a)  # (B, h) or (B, k, h)
        h = act.forward(z, layer.alpha)  # (B, h)
        mask = dropout_mask(dropout_keys[i], h.shape, options.dropout, h.dtype) if dropping else None
        cache.append(LayerCache(a, z, h, mask))
        a = h if mask is None else h * mask
    scores = affine(params[-1], a)  # (B, d_out)
    cache.append(LayerCache(a, scores, None, None))
    return scores, cache


def forward(params: Params, x: Array, *, activation: str = "relu", key: Array | None = None,
            dropout: float = 0.0, input_noise: float = 0.0, train: bool = False,
            **activation_options) -> tuple[Array, list[LayerCache]]:
    """`scores_and_cache` with keywords: scores (B, d_out), exactly as `mlp_apply`, and the cache."""
    act = get_activation(activation, **activation_options)
    return scores_and_cache(params, x, act, ForwardOptions(key, dropout, input_noise, train))


class BackwardStep(NamedTuple):
    """One layer's step of the backward walk, kept for per-example statistics (gradstats.py).

    grads: the layer's gradient, summed over the batch (the structure of its `Layer`)
    delta: (B, d_out), (B, k, d_out) for maxout: dL/dz, one row per example
    da: (B, d_out) dL/da of a hidden layer's activation output, through its dropout mask; None
        for the output layer
    """

    grads: Layer
    delta: Array
    da: Array | None


def backward_steps(params: Params, cache: list[LayerCache], dscores: Array, act: Activation
                   ) -> tuple[list[BackwardStep], Array]:
    """The backward walk of `backward`, every layer's step kept: (steps in layer order, dx (B, d_in))."""
    dW, db, da = affine_backward(params[-1], cache[-1].a_prev, dscores)  # the output layer: no activation
    steps = [BackwardStep(Layer(dW, db, None), dscores, None)]  # the last layer first
    for layer, c in zip(params[-2::-1], cache[-2::-1]):  # the hidden layers, last first
        da_out = dropout_backward(da, c.mask)  # (B, h) dL/da, through the dropout mask
        delta, dslope = act.backward(da_out, c.z, c.a, layer.alpha)  # (B, h) or (B, k, h) dL/dz
        dW, db, da = affine_backward(layer, c.a_prev, delta)  # da (B, d_in): the layer below's
        steps.append(BackwardStep(Layer(dW, db, dslope), delta, da_out))
    return steps[::-1], da


def backward(params: Params, cache: list[LayerCache], dscores: Array, *, activation: str = "relu",
             **activation_options) -> tuple[Params, Array]:
    """Backpropagate an upstream gradient dscores (B, d_out) through the cached forward pass.

    Returns (grads, dx): grads has the tree structure of params (None where params have None),
    dx (B, d_in) is the gradient with respect to the network's input.
    """
    steps, dx = backward_steps(params, cache, dscores, get_activation(activation, **activation_options))
    return [step.grads for step in steps], dx


def loss_precision(scores: Array) -> Array:
    """Scores for the loss in at least float32: a bf16 network still gets an fp32 softmax/loss."""
    return scores.astype(jnp.promote_types(scores.dtype, jnp.float32))


def objective_value(params: Params, x: Array, y: Array, loss: Loss, l2: float, act: Activation,
                    options: ForwardOptions) -> Array:
    """The training objective: mean loss over the batch + 0.5 * l2 * sum ||W||^2 (a scalar)."""
    scores = mlp_scores(params, x, act, options)
    return loss.value(loss_precision(scores), y) + l2_penalty(params, l2)


def objective(params: Params, x: Array, y: Array, *, loss: str = "softmax_cross_entropy", l2: float = 0.0,
              activation: str = "relu", key: Array | None = None, dropout: float = 0.0,
              input_noise: float = 0.0, train: bool = True, **activation_options) -> Array:
    """`objective_value` with keywords: mean loss + 0.5 * l2 * sum ||W||^2 (a scalar)."""
    act = get_activation(activation, **activation_options)
    return objective_value(params, x, y, get_loss(loss), l2, act, ForwardOptions(key, dropout, input_noise, train))


def manual_loss_grad_and_cache(params: Params, x: Array, y: Array, loss: Loss, l2: float, act: Activation,
                               options: ForwardOptions) -> tuple[Array, Params, list[LayerCache]]:
    """The manual method, keeping its forward cache: (objective, grads, cache).

    forward, then the loss's own gradient, then backward, plus l2 * W for the weight decay
    term. The cache lets callers read activation statistics without a second forward pass.
    """
    scores, cache = scores_and_cache(params, x, act, options)
    value = loss.value(loss_precision(scores), y) + l2_penalty(params, l2)
    dscores = loss.grad(loss_precision(scores), y).astype(scores.dtype)  # (B, d_out), back in the network's dtype
    grads, _ = backward(params, cache, dscores, activation=act)
    return value, l2_grad(grads, params, l2), cache


def value_and_grads(params: Params, x: Array, y: Array, loss: Loss, l2: float, act: Activation,
                    options: ForwardOptions, method: str) -> tuple[Array, Params]:
    """(objective value, grads with the structure of params), by `method` "autodiff" or "manual"."""
    if method not in ("autodiff", "manual"):
        raise ValueError(f"method must be 'autodiff' or 'manual', got {method!r}")
    check_input(params, x)
    check_targets(loss, (jnp.shape(x)[0], params[-1].W.shape[-1]), y)
    if method == "autodiff":
        return jax.value_and_grad(objective_value)(params, x, y, loss, l2, act, options)
    value, grads, _ = manual_loss_grad_and_cache(params, x, y, loss, l2, act, options)
    return value, grads


def loss_and_grad(params: Params, x: Array, y: Array, *, loss: str = "softmax_cross_entropy", l2: float = 0.0,
                  activation: str = "relu", key: Array | None = None, dropout: float = 0.0,
                  input_noise: float = 0.0, train: bool = True, method: str = "autodiff",
                  **activation_options) -> tuple[Array, Params]:
    """(objective value, grads with the structure of params) for x (B, d_in) and targets y.

    method="autodiff" is `jax.value_and_grad(objective)`; method="manual" is `forward`, the
    loss's own gradient, and `backward`, plus l2 * W for the weight decay term.
    """
    act = get_activation(activation, **activation_options)
    options = ForwardOptions(key, dropout, input_noise, train)
    return value_and_grads(params, x, y, get_loss(loss), l2, act, options, method)
