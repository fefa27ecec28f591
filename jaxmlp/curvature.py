"""Curvature from the same backward walk: the exact diagonal of the generalized Gauss-Newton
matrix (BackPACK's DiagGGNExact) and the two Kronecker factors of each layer (KFLR, the exact
variant of KFAC), for softmax cross-entropy.

The GGN of the mean loss is G = (1/B) Σ_i J_iᵀ H_i J_i, with J_i the Jacobian of example i's
scores and H_i = diag(p_i) − p_i p_iᵀ the Hessian of its cross-entropy in the scores. H_i has
the square-root factor S_i = diag(√p_i) − p_i √p_iᵀ (S_i S_iᵀ = H_i since Σ p = 1), whose
column c is √p_ic (e_c − p_i). Backpropagating each of the C columns through the same Wᵀ and
σ' rules as a gradient gives J_iᵀ s_ic, so

    diag(G) = (1/B) Σ_c Σ_i (J_iᵀ s_ic)²        the SumGradSquared of the C walks (gradstats.py)
    KFLR of a layer:  A = (1/B) Σ_i a_i a_iᵀ  (d_in, d_in),  G = (1/B) Σ_i Σ_c δ_ic δ_icᵀ  (d_out, d_out)

with a_i the layer's input and δ_ic the pre-activation gradient of column c (a maxout layer's
G is over its k * d_out pre-activations). The C walks run under one `vmap`. L2 is left out;
its GGN is l2 on every weight. For one example (B = 1), kron(A, G) is the GGN block of W exactly.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmlp.activations import get_activation
from jaxmlp.backprop import backward, forward, loss_precision
from jaxmlp.gradstats import per_example_stats
from jaxmlp.losses import check_targets, get_loss
from jaxmlp.mlp import Params
from jaxmlp.types import Array


def softmax_hessian_sqrt(scores: Array) -> Array:
    """(B, C, C) S_i with S_i S_iᵀ = diag(p_i) − p_i p_iᵀ, p_i = softmax(scores_i); column c is √p_ic (e_c − p_i)."""
    p = jax.nn.softmax(loss_precision(scores), axis=1)  # (B, C)
    eye = jnp.eye(p.shape[1], dtype=p.dtype)
    return (eye[None] - p[:, :, None]) * jnp.sqrt(p)[:, None, :]  # [i, :, c] = √p_c (e_c − p)


def _forward(params: Params, x: Array, y: Array, activation: str, key, dropout: float, input_noise: float,
             train: bool, activation_options: dict):
    """(act, cache, S (C, B, C): the Hessian factor's columns as C upstream gradients, each / B)."""
    act = get_activation(activation, **activation_options)
    check_targets(get_loss("softmax_cross_entropy"), (jnp.shape(x)[0], params[-1].W.shape[-1]), y)
    scores, cache = forward(params, x, activation=act, key=key, dropout=dropout, input_noise=input_noise, train=train)
    columns = jnp.moveaxis(softmax_hessian_sqrt(scores), 2, 0) / x.shape[0]  # (C, B, C): walk c starts from S[:, :, c]
    return act, cache, columns.astype(scores.dtype)


def diag_ggn(params: Params, x: Array, y: Array, *, activation: str = "relu", key: Array | None = None,
             dropout: float = 0.0, input_noise: float = 0.0, train: bool = True, **activation_options) -> Params:
    """The exact GGN diagonal of the mean softmax cross-entropy over x (B, d_in), y (B,) labels,
    with the structure of params. (y only fixes the shapes: the GGN of cross-entropy does not
    depend on the labels.)"""
    act, cache, columns = _forward(params, x, y, activation, key, dropout, input_noise, train, activation_options)
    # each walk's dscores is its column / B, like a mean loss's, so its SumGradSquared is Σ_i (J_iᵀ s_ic)²
    per_column = jax.vmap(lambda d: per_example_stats(params, cache, d, act).sum_grad_squared)(columns)
    return jax.tree.map(lambda s: jnp.sum(s, axis=0) / x.shape[0], per_column)


def kflr_factors(params: Params, x: Array, y: Array, *, activation: str = "relu", key: Array | None = None,
                 dropout: float = 0.0, input_noise: float = 0.0, train: bool = True,
                 **activation_options) -> list[tuple[Array, Array]]:
    """Per layer (A (d_in, d_in), G (d_out, d_out) or (k d_out, k d_out) for maxout): the exact
    Kronecker factors of the GGN block of W for the mean softmax cross-entropy."""
    act, cache, columns = _forward(params, x, y, activation, key, dropout, input_noise, train, activation_options)
    batch = x.shape[0]
    deltas = jax.vmap(lambda d: [s.delta for s in backward(params, cache, d, activation=act, steps=True)[0]])(columns)
    factors = []
    for c, delta in zip(cache, deltas):  # delta (C, B, [k,] d_out), each row carrying the walk's 1/B
        rows = (delta * batch).reshape(-1, delta[0, 0].size)  # (C B, [k] d_out): δ_ic
        factors.append((c.a_prev.T @ c.a_prev / batch, rows.T @ rows / batch))
    return factors


__all__ = ["diag_ggn", "kflr_factors", "softmax_hessian_sqrt"]
