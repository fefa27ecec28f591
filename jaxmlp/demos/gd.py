"""Full-batch gradient descent for the small demo models: one jitted `lax.scan` over steps.

The lecture notes train their toy 2-D and 1-D networks with full-batch gradient descent;
`train_full_batch` does the same with an optax optimizer and the hand-written backprop
(`loss_and_grad(..., method="manual")`), so every demo also exercises backprop.py. Pure: key
first, no I/O; returns the trained params and the loss of every step.

    fit = train_full_batch(key, x, y, sizes=(2, 20, 3), steps=2000, learning_rate=0.01)
    fit.params, fit.losses                    # [Layer, ...], (steps,)
    pred_train, pred_val = predict_sets(fit.params, x, x_val)

Initialisation and training are one compiled program (compiled once per shapes and
configuration; the learning rate is a traced argument), which keeps the demos fast on CPU.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmlp.backprop import loss_and_grad
from jaxmlp.losses import predict_classes
from jaxmlp.metrics import layer_grad_norms, loss_grad_and_stats, summarize
from jaxmlp.mlp import Params, init_mlp, mlp_apply
from jaxmlp.types import Array


class GDResult(NamedTuple):
    """params: trained [Layer, ...]; losses: (steps,) objective before each update;
    stats: with track_activations, per-step {"dead_fraction" or "saturation_fraction": (steps, L),
    "grad_norms": (steps, L + 1)} over the whole training set; otherwise None."""

    params: Params
    losses: Array
    stats: dict[str, Array] | None


def make_optimizer(name: str, learning_rate: float | Array, momentum: float = 0.9) -> optax.GradientTransformation:
    """'sgd' (plain gradient descent, as in the notes), 'momentum' or 'adam'."""
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=momentum)
    if name == "adam":
        return optax.adam(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, momentum or adam")


def train_full_batch(key: Array | None, x: Array, y: Array, *, sizes: Sequence[int], steps: int,
                     learning_rate: float, optimizer: str = "adam", loss: str = "softmax_cross_entropy",
                     l2: float = 0.0, activation: str = "relu", init: str | None = None,
                     params: Params | None = None, track_activations: bool = False,
                     **activation_options) -> GDResult:
    """Initialise an MLP of `sizes` from `key` (unless `params` is given; then key may be None)
    and run `steps` full-batch updates on x (N, d_in), y (N,) or (N, k).

    With track_activations=True every step's single manual forward pass also yields the
    activation stats of that step's params over the whole training set (metrics.py).
    """
    make_optimizer(optimizer, 0.0)  # fail early on a bad name
    config = (int(steps), optimizer, loss, activation, bool(track_activations),
              tuple(sorted(activation_options.items())), tuple(sizes), init)
    hyper = {"learning_rate": jnp.asarray(learning_rate, jnp.float32), "l2": jnp.asarray(l2, jnp.float32)}
    p, losses, stats = _fit(key, params, jnp.asarray(x), jnp.asarray(y), hyper, config)
    return GDResult(p, losses, stats)


@partial(jax.jit, static_argnums=5)
def _fit(key: Array | None, params: Params | None, x: Array, y: Array, hyper: dict[str, Array], config: tuple):
    """Init (when params is None) and the scanned loop, as one compiled program.

    The learning rate and the L2 strength are traced, so models that differ only in them
    share one compilation.
    """
    steps, optimizer, loss, activation, track, options, sizes, init = config
    options = dict(options)
    if params is None:
        params = init_mlp(key, sizes, activation=activation, init=init, **options)
    opt = make_optimizer(optimizer, hyper["learning_rate"])
    kw = dict(loss=loss, l2=hyper["l2"], activation=activation, train=True, **options)

    def step(carry, _):
        p, state = carry
        if track:
            value, grads, st = loss_grad_and_stats(p, x, y, **kw)
        else:
            value, grads = loss_and_grad(p, x, y, method="manual", **kw)
        if track:
            stats = summarize(st.activations, activation)
            stats["grad_norms"] = layer_grad_norms(grads)
        else:
            stats = None
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), (value, stats)

    (params, _), (losses, stats) = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, losses, stats


@partial(jax.jit, static_argnums=(2, 3))
def _scores(params: Params, x: Array, activation: str, options: tuple) -> Array:
    return mlp_apply(params, x, activation=activation, **dict(options))


def outputs_sets(params: Params, *xs: Array, activation: str = "relu", **activation_options) -> list[np.ndarray]:
    """Network outputs for several inputs xs[i] (N_i, d_in) -> (N_i, d_out), in ONE compiled call
    (the inputs are concatenated), as numpy arrays."""
    sizes = [int(np.shape(x)[0]) for x in xs]
    stacked = jnp.concatenate([jnp.asarray(x, jnp.float32) for x in xs], axis=0)
    out = np.asarray(_scores(params, stacked, activation, tuple(sorted(activation_options.items()))))
    return np.split(out, np.cumsum(sizes)[:-1])


def predict_sets(params: Params, *xs: Array, activation: str = "relu", **activation_options) -> list[np.ndarray]:
    """Predicted classes (N_i,) for each xs[i] (N_i, d_in): `losses.predict_classes` of the scores."""
    return [predict_classes(s) for s in outputs_sets(params, *xs, activation=activation, **activation_options)]


def accuracy_of(pred: np.ndarray, y: Array) -> float:
    """Fraction of predictions (N,) equal to labels y (N,)."""
    return float(np.mean(np.asarray(pred) == np.asarray(y)))


__all__ = ["GDResult", "make_optimizer", "train_full_batch", "outputs_sets", "predict_sets", "accuracy_of"]
