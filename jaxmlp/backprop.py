"""Hand-written backpropagation: the twin of `mlp.py`, by the chain rule, layer by layer.

`forward` runs the same network as `mlp_apply` and keeps a cache of what each layer's
backward step needs. `backward` takes ANY upstream gradient `dscores` (CS231n layer style)
and walks the layers in reverse, each step the derivative written beside its forward rule:

    dW, db, da = affine_backward(layer, a_prev, delta)   # mlp.py: a_prev.T @ delta, delta.sum(0), delta @ W.T
    da = dropout_backward(da, mask)                      # mlp.py: da * mask
    delta, dslope = act.backward(da, z, a, alpha)        # activations.py: dL/dz of the layer below

Its grads have exactly the tree structure of params, so `jax.tree.map` compares them with
`jax.grad`'s. `loss_and_grad(..., method="manual" | "autodiff", precision=...)` gives the same
(loss, grads) either way, under a precision policy (precision.py).

One function per concept: `activation` and `loss` are names (with activation options as
keywords) or the `Activation` / `Loss` objects already looked up, which is how the trainer
passes them, so a traced step resolves nothing and unpacks no options.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.activations import Activation, get_activation
from jaxmlp.losses import Loss, check_targets, get_loss, l2_grad, l2_penalty
from jaxmlp.mlp import (ForwardOptions, Layer, Params, affine, affine_backward, check_input, dropout_backward,
                        dropout_mask, mlp_apply, prepare_input, regularizer_on)
from jaxmlp.precision import Policy, cast_floating, get_policy, matmul_precision
from jaxmlp.types import Array


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


def forward(params: Params, x: Array, *, activation: str | Activation = "relu", key: Array | None = None,
            dropout: float = 0.0, input_noise: float = 0.0, train: bool = False,
            **activation_options) -> tuple[Array, list[LayerCache]]:
    """Scores (B, d_out), exactly as `mlp_apply`, and the per-layer cache for `backward`."""
    act = get_activation(activation, **activation_options)
    a, dropout_keys = prepare_input(params, x, act, ForwardOptions(key, dropout, input_noise, train))
    dropping = train and regularizer_on(dropout)
    cache = []
    for i, layer in enumerate(params[:-1]):
        z = affine(layer, a)  # (B, h) or (B, k, h)
        h = act.forward(z, layer.alpha)  # (B, h)
        mask = dropout_mask(dropout_keys[i], h.shape, dropout, h.dtype) if dropping else None
        cache.append(LayerCache(a, z, h, mask))
        a = h if mask is None else h * mask
    scores = affine(params[-1], a)  # (B, d_out)
    cache.append(LayerCache(a, scores, None, None))
    return scores, cache


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


def backward(params: Params, cache: list[LayerCache], dscores: Array, *, activation: str | Activation = "relu",
             steps: bool = False, **activation_options) -> tuple[Params | list[BackwardStep], Array]:
    """Backpropagate an upstream gradient dscores (B, d_out) through the cached forward pass.

    Returns (grads, dx): grads has the tree structure of params (None where params have None),
    dx (B, d_in) is the gradient with respect to the network's input. steps=True returns every
    layer's `BackwardStep` in layer order in place of grads (its `.grads` are grads' layers),
    for the per-example statistics of gradstats.py and curvature.py.
    """
    act = get_activation(activation, **activation_options)
    dW, db, da = affine_backward(params[-1], cache[-1].a_prev, dscores)  # the output layer: no activation
    walk = [BackwardStep(Layer(dW, db, None), dscores, None)]  # the last layer first
    for layer, c in zip(params[-2::-1], cache[-2::-1]):  # the hidden layers, last first
        da_out = dropout_backward(da, c.mask)  # (B, h) dL/da, through the dropout mask
        delta, dslope = act.backward(da_out, c.z, c.a, layer.alpha)  # (B, h) or (B, k, h) dL/dz
        dW, db, da = affine_backward(layer, c.a_prev, delta)  # da (B, d_in): the layer below's
        walk.append(BackwardStep(Layer(dW, db, dslope), delta, da_out))
    walk = walk[::-1]
    return (walk if steps else [step.grads for step in walk]), da


def loss_precision(scores: Array) -> Array:
    """Scores for the loss in at least float32: a bf16 network still gets an fp32 softmax/loss."""
    return scores.astype(jnp.promote_types(scores.dtype, jnp.float32))


def objective(params: Params, x: Array, y: Array, *, loss: str | Loss = "softmax_cross_entropy", l2: float = 0.0,
              activation: str | Activation = "relu", key: Array | None = None, dropout: float = 0.0,
              input_noise: float = 0.0, train: bool = True, **activation_options) -> Array:
    """The training objective: mean loss over the batch + 0.5 * l2 * sum ||W||^2 (a scalar)."""
    scores = mlp_apply(params, x, activation=activation, key=key, dropout=dropout, input_noise=input_noise,
                       train=train, **activation_options)
    return get_loss(loss).value(loss_precision(scores), y) + l2_penalty(params, l2)


def manual_loss_grad_and_cache(params: Params, x: Array, y: Array, *, loss: str | Loss = "softmax_cross_entropy",
                               l2: float = 0.0, activation: str | Activation = "relu", key: Array | None = None,
                               dropout: float = 0.0, input_noise: float = 0.0, train: bool = True,
                               **activation_options) -> tuple[Array, Params, list[LayerCache]]:
    """The manual method, keeping its forward cache: (objective, grads, cache).

    forward, then the loss's own gradient, then backward, plus l2 * W for the weight decay
    term. The cache lets callers read activation statistics without a second forward pass.
    """
    act, loss = get_activation(activation, **activation_options), get_loss(loss)
    scores, cache = forward(params, x, activation=act, key=key, dropout=dropout, input_noise=input_noise, train=train)
    value = loss.value(loss_precision(scores), y) + l2_penalty(params, l2)
    dscores = loss.grad(loss_precision(scores), y).astype(scores.dtype)  # (B, d_out), back in the network's dtype
    grads, _ = backward(params, cache, dscores, activation=act)
    return value, l2_grad(grads, params, l2), cache


def loss_and_grad(params: Params, x: Array, y: Array, *, loss: str | Loss = "softmax_cross_entropy", l2: float = 0.0,
                  activation: str | Activation = "relu", key: Array | None = None, dropout: float = 0.0,
                  input_noise: float = 0.0, train: bool = True, method: str = "autodiff",
                  precision: str | Policy = "fp32", **activation_options) -> tuple[Array, Params]:
    """(objective value, grads with the structure of params) for x (B, d_in) and targets y.

    method="autodiff" is `jax.value_and_grad(objective)`; method="manual" is `forward`, the
    loss's own gradient, and `backward`, plus l2 * W for the weight decay term. Under the
    `precision` policy (precision.py) the value is float32 (float64 for float64 params) and the
    grads have the params' dtypes whatever the policy; bf16 runs the network on bf16 copies and
    takes the L2 term on the fp32 master weights.
    """
    if method not in ("autodiff", "manual"):
        raise ValueError(f"method must be 'autodiff' or 'manual', got {method!r}")
    act, loss, policy = get_activation(activation, **activation_options), get_loss(loss), get_policy(precision)
    check_input(params, x)
    check_targets(loss, (jnp.shape(x)[0], params[-1].W.shape[-1]), y)
    grad_fn = jax.value_and_grad(objective) if method == "autodiff" else manual_loss_grad_and_cache
    kwargs = dict(loss=loss, activation=act, key=key, dropout=dropout, input_noise=input_noise, train=train)
    with matmul_precision(policy):
        if policy.compute_dtype is None:
            return grad_fn(params, x, y, l2=l2, **kwargs)[:2]
        low = cast_floating(params, policy.compute_dtype)
        value, grads = grad_fn(low, jnp.asarray(x).astype(policy.compute_dtype), y, l2=0.0, **kwargs)[:2]
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)  # the cast's VJP: back to fp32
    value = value.astype(jnp.promote_types(value.dtype, jnp.float32))
    # the penalty on the fp32 master weights, in fp32
    return value + l2_penalty(params, l2), l2_grad(grads, params, l2)
