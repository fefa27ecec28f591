"""`predict(params, x)`: a trained net's scores for inputs in memory or on disk, batched and jitted."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.activations import get_activation
from jaxmlp.batching import pad_rows
from jaxmlp.mlp import Params, mlp_apply
from jaxmlp.training.feed import read_blocks
from jaxmlp.training.programs import program
from jaxmlp.types import Array

PREDICT_ROWS = 1 << 16  # rows of a data set on disk that `predict` reads at once


@program("predict")
def _predict_fn(activation: str, options: tuple) -> Callable:
    opts = dict(options)

    def scores(params, xb):  # (nb, B, D) -> (nb, B, d_out)
        return jax.lax.map(lambda x: mlp_apply(params, x, activation=activation, **opts), xb)

    return jax.jit(scores)


def predict(params: Params, x, *, activation: str = "relu", batch_size: int = 1024,
            **activation_options) -> Array:
    """Scores (N, d_out) for inputs x (N, d_in), batched and jitted (train=False: no dropout);
    N = 0 gives an empty (0, d_out) array. x may be a data set on disk (data.streamed): its rows
    are read PREDICT_ROWS at a time, each block's scores computed while the next is read, and the
    scores come back as one host array (N, d_out)."""
    get_activation(activation, **activation_options)  # fail early on bad options
    if hasattr(x, "rows"):
        return np.concatenate([np.asarray(predict(params, block, activation=activation, batch_size=batch_size,
                                                  **activation_options))
                               for _, (block, _) in read_blocks(x.rows, len(x), PREDICT_ROWS)])
    x = np.asarray(x, dtype=params[0].W.dtype)
    d_in, d_out = params[0].W.shape[-2], params[-1].W.shape[-1]
    if x.ndim != 2 or x.shape[1] != d_in:
        raise ValueError(f"x must have shape (N, {d_in}) for these params, got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return jnp.zeros((0, d_out), x.dtype)
    rows, _ = pad_rows(n, batch_size)  # (nb, B)
    out = _predict_fn(activation, tuple(sorted(activation_options.items())))(params, jax.device_put(x[rows]))
    return out.reshape(-1, out.shape[-1])[:n]  # (N, d_out)
