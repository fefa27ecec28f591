"""Hand-written backpropagation: the twin of `mlp.py`, by the chain rule, layer by layer.

`forward` runs the same network as `mlp_apply` and keeps a cache of what each layer's
backward step needs. `backward` takes ANY upstream gradient `dscores` (CS231n layer style)
and walks the layers in reverse:

    dW = a_prev.T @ delta        db = delta.sum(0)        da_prev = delta @ W.T

then through the dropout mask and the activation's local derivative (from activations.py)
to the previous layer's delta. Its grads have exactly the tree structure of params, so
`jax.tree.map` compares them with `jax.grad`'s.

`loss_and_grad(..., method="manual" | "autodiff")` gives the same (loss, grads) either way.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.activations import get_activation
from jaxmlp.losses import check_targets, get_loss, l2_grad, l2_penalty
from jaxmlp.mlp import Layer, Params, affine, check_input, dropout_mask, mlp_apply, prepare_input

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


def forward(params: Params, x: Array, *, activation: str = "relu", key: Array | None = None,
            dropout: float = 0.0, input_noise: float = 0.0, train: bool = False,
            **activation_options) -> tuple[Array, list[LayerCache]]:
    """Scores (B, d_out), exactly as `mlp_apply`, and the per-layer cache for `backward`."""
    act = get_activation(activation, **activation_options)
    a, dropout_keys = prepare_input(params, x, act, key=key, dropout=dropout, input_noise=input_noise, train=train)
    cache = []
    for i, layer in enumerate(params[:-1]):
        z = affine(layer, a)  # (B, h) or (B, k, h)
        h = act.forward(z, layer.alpha)  # (B, h)
        mask = dropout_mask(dropout_keys[i], h.shape, dropout, h.dtype) if train and dropout > 0 else None
        cache.append(LayerCache(a, z, h, mask))
        a = h if mask is None else h * mask
    scores = affine(params[-1], a)  # (B, d_out)
    cache.append(LayerCache(a, scores, None, None))
    return scores, cache


def _affine_backward(layer: Layer, a_prev: Array, delta: Array) -> tuple[Array, Array, Array]:
    """Given delta = dL/dz, return (dW, db, da_prev) for z = a_prev @ W + b."""
    if layer.W.ndim == 3:  # maxout: delta (B, k, d_out), W (k, d_in, d_out)
        dW = jnp.einsum("bi,bko->kio", a_prev, delta)  # (k, d_in, d_out)
        da_prev = jnp.einsum("bko,kio->bi", delta, layer.W)  # (B, d_in)
    else:
        dW = a_prev.T @ delta  # (d_in, d_out)
        da_prev = delta @ layer.W.T  # (B, d_in)
    return dW, jnp.sum(delta, axis=0), da_prev


def backward(params: Params, cache: list[LayerCache], dscores: Array, *, activation: str = "relu",
             **activation_options) -> tuple[Params, Array]:
    """Backpropagate an upstream gradient dscores (B, d_out) through the cached forward pass.

    Returns (grads, dx): grads has the tree structure of params (None where params have None),
    dx (B, d_in) is the gradient with respect to the network's input.
    """
    act = get_activation(activation, **activation_options)
    grads = [None] * len(params)
    delta = dscores  # dL/dz of the current layer
    for i in reversed(range(len(params))):
        layer, c = params[i], cache[i]
        dW, db, da_prev = _affine_backward(layer, c.a_prev, delta)
        grads[i] = Layer(dW, db, grads[i].alpha if grads[i] is not None else None)
        if i == 0:
            return grads, da_prev
        prev, pc = params[i - 1], cache[i - 1]
        da = da_prev if pc.mask is None else da_prev * pc.mask  # through the dropout mask
        delta, dslope = act.backward(da, pc.z, pc.a, prev.alpha)  # through the activation
        grads[i - 1] = Layer(None, None, dslope)  # its slope grad, W and b filled next iteration
    raise AssertionError("unreachable")


def _check_loss_args(params, x, y, loss, method):
    if method not in ("autodiff", "manual"):
        raise ValueError(f"method must be 'autodiff' or 'manual', got {method!r}")
    check_input(params, x)
    check_targets(loss, (jnp.shape(x)[0], params[-1].W.shape[-1]), y)


def _loss_precision(scores: Array) -> Array:
    """Scores for the loss in at least float32: a bf16 network still gets an fp32 softmax/loss."""
    return scores.astype(jnp.promote_types(scores.dtype, jnp.float32))


def objective(params: Params, x: Array, y: Array, *, loss: str = "softmax_cross_entropy", l2: float = 0.0,
              activation: str = "relu", key: Array | None = None, dropout: float = 0.0,
              input_noise: float = 0.0, train: bool = True, **activation_options) -> Array:
    """The training objective: mean loss over the batch + 0.5 * l2 * sum ||W||^2 (a scalar)."""
    loss_fn = get_loss(loss)
    scores = mlp_apply(params, x, activation=activation, key=key, dropout=dropout,
                       input_noise=input_noise, train=train, **activation_options)
    return loss_fn.value(_loss_precision(scores), y) + l2_penalty(params, l2)


def loss_and_grad(params: Params, x: Array, y: Array, *, loss: str = "softmax_cross_entropy", l2: float = 0.0,
                  activation: str = "relu", key: Array | None = None, dropout: float = 0.0,
                  input_noise: float = 0.0, train: bool = True, method: str = "autodiff",
                  **activation_options) -> tuple[Array, Params]:
    """(objective value, grads with the structure of params) for x (B, d_in) and targets y.

    method="autodiff" is `jax.value_and_grad(objective)`; method="manual" is `forward`, the
    loss's own gradient, and `backward`, plus l2 * W for the weight decay term.
    """
    loss_fn = get_loss(loss)
    _check_loss_args(params, x, y, loss_fn, method)
    kwargs = dict(activation=activation, key=key, dropout=dropout, input_noise=input_noise, train=train,
                  **activation_options)
    if method == "autodiff":
        return jax.value_and_grad(objective)(params, x, y, loss=loss_fn, l2=l2, **kwargs)
    value, grads, _ = manual_loss_grad_and_cache(params, x, y, loss=loss_fn, l2=l2, **kwargs)
    return value, grads


def manual_loss_grad_and_cache(params: Params, x: Array, y: Array, *, loss: str = "softmax_cross_entropy",
                               l2: float = 0.0, activation: str = "relu", **forward_options
                               ) -> tuple[Array, Params, list[LayerCache]]:
    """The manual method, keeping its forward cache: (objective, grads, cache).

    forward, then the loss's own gradient, then backward, plus l2 * W for the weight decay
    term. The cache lets callers read activation statistics without a second forward pass.
    """
    loss_fn = get_loss(loss)
    scores, cache = forward(params, x, activation=activation, **forward_options)
    value = loss_fn.value(_loss_precision(scores), y) + l2_penalty(params, l2)
    dscores = loss_fn.grad(_loss_precision(scores), y).astype(scores.dtype)  # (B, d_out), back in the network's dtype
    act_options = {k: v for k, v in forward_options.items() if k not in ("key", "dropout", "input_noise", "train")}
    grads, _ = backward(params, cache, dscores, activation=activation, **act_options)
    return value, l2_grad(grads, params, l2), cache


def input_grad(params: Params, x: Array, y: Array, *, loss: str = "softmax_cross_entropy",
               activation: str = "relu", key: Array | None = None, dropout: float = 0.0,
               input_noise: float = 0.0, train: bool = True, method: str = "autodiff",
               **activation_options) -> Array:
    """Gradient of the mean loss with respect to the input x: (B, d_in) -> (B, d_in)."""
    loss_fn = get_loss(loss)
    _check_loss_args(params, x, y, loss_fn, method)
    kwargs = dict(activation=activation, key=key, dropout=dropout, input_noise=input_noise, train=train,
                  **activation_options)
    if method == "autodiff":
        return jax.grad(lambda xx: loss_fn.value(mlp_apply(params, xx, **kwargs), y))(x)
    scores, cache = forward(params, x, **kwargs)
    _, dx = backward(params, cache, loss_fn.grad(scores, y), activation=activation, **activation_options)
    return dx
