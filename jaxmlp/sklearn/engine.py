"""The compiled programs behind the estimators: scikit-learn's objective, its adam and sgd
updates, the masked epoch and the forward pass, as pure JAX functions.

The objective is scikit-learn's (`BaseMultilayerPerceptron._backprop`): the weighted mean loss
of the output activation (softmax / logistic log-loss, half squared error, half Poisson
deviance) plus 0.5 * alpha * sum ||W||^2 / sum(w) over the minibatch, its gradient the
canonical (p - y) one. The adam and sgd updates are scikit-learn's `_stochastic_optimizers`
line for line (adam's step size lr * sqrt(1 - b2^t) / (1 - b1^t), epsilon outside the root);
with optimizer= the update is jaxmlp's optax chain instead (extras.py).

Every number that may differ between fits (alpha, the learning rate, momentum, weight decay,
input noise, ...) is a traced
argument (`Hyper`) and every size is padded to a bucket (buckets.py), so one compiled epoch
serves every fold and every candidate of a grid search that keeps the model's shape.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

import optax

from jaxmlp.activations import get_activation
from jaxmlp.mlp import Layer, mlp_apply
from jaxmlp.sklearn import extras
from jaxmlp.training.programs import program
from jaxmlp.types import Array


class Spec(NamedTuple):
    """What a program is compiled for, beside the array shapes (hashable: the cache key)."""

    activation: str  # jaxmlp.activations name
    slope: float | None  # leaky_relu / elu slope
    out: str  # output activation: softmax, logistic, identity, exp
    solver: str = "adam"  # adam or sgd (lbfgs has its own program, lbfgs.py)
    dropout: float = 0.0
    noise: bool = False  # Gaussian input noise while training (its std is traced: Hyper.input_noise)
    chain: extras.Chain | None = None  # jaxmlp's optax chain in place of the solver's update


class Hyper(NamedTuple):
    """The traced numbers of an epoch, each a () array."""

    alpha: Array
    lr: Array
    momentum: Array
    nesterov: Array  # () bool
    beta_1: Array
    beta_2: Array
    epsilon: Array
    weight_decay: Array  # read by the optax chain only, as are the next
    warmup_epochs: Array  # () int32
    input_noise: Array


class AdamState(NamedTuple):
    t: Array  # () int32: steps taken
    m: list  # first moments, shaped as the params
    v: list  # second moments


def scores(spec: Spec, params: list, x: Array, key: Array | None = None, noise=0.0) -> Array:
    """Output scores z (B, k) of x (B, D); when `key` is given, dropout on the hidden units and
    Gaussian input noise of std `noise` (where the spec has them)."""
    opts = {} if spec.slope is None else {"alpha": spec.slope}
    act = get_activation(spec.activation, **opts)
    train = key is not None and (spec.dropout > 0 or spec.noise)
    return mlp_apply(params, x, activation=act, key=key if train else None, dropout=spec.dropout,
                     input_noise=noise if spec.noise else 0.0, train=train)


def outputs(spec: Spec, params: list, x: Array) -> Array:
    """scikit-learn's network output (B, k): the output activation of the scores."""
    z = scores(spec, params, x)
    return {"softmax": jax.nn.softmax, "logistic": jax.nn.sigmoid, "identity": lambda a: a,
            "exp": jnp.exp}[spec.out](z)


def row_losses(out: str, z: Array, y: Array) -> tuple[Array, Array]:
    """(value (B,), surrogate (B,)) per row: value is scikit-learn's loss (log-losses on
    probabilities clipped to [eps, 1 - eps]; squared error averaged over outputs), surrogate
    has the gradient scikit-learn steps along, (p - y) per output."""
    lo, hi = jnp.log(jnp.finfo(z.dtype).eps), jnp.log1p(-jnp.finfo(z.dtype).eps)
    if out == "softmax":
        logp = jax.nn.log_softmax(z)
        return -jnp.sum(y * jnp.clip(logp, lo, hi), 1), -jnp.sum(y * logp, 1)
    if out == "logistic":
        lp, lq = jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
        value = -jnp.sum(y * jnp.clip(lp, lo, hi) + (1 - y) * jnp.clip(lq, lo, hi), 1)
        return value, -jnp.sum(y * lp + (1 - y) * lq, 1)
    if out == "identity":
        half_sq = 0.5 * (y - z) ** 2
        return jnp.mean(half_sq, 1), jnp.sum(half_sq, 1)
    p = jnp.exp(z)  # exp: half Poisson deviance
    return jnp.sum(xlogy(y, y) - y * z - y + p, 1), jnp.sum(p - y * z, 1)


def objective(spec: Spec, params: list, x: Array, y: Array, w: Array, alpha, key=None,
              noise=0.0) -> tuple[Array, Array]:
    """(surrogate, value) of a minibatch x (B, D), y (B, k) with row weights w (B,) (0 = padding):
    the weighted mean loss plus scikit-learn's 0.5 * alpha * sum ||W||^2 / sum(w)."""
    value, surrogate = row_losses(spec.out, scores(spec, params, x, key, noise), y)
    total = jnp.sum(w)
    total = jnp.where(total > 0, total, 1)  # an all-zero-weight batch: no NaN, and a zero gradient
    l2 = 0.5 * alpha * sum(jnp.sum(layer.W ** 2) for layer in params) / total
    return jnp.sum(w * surrogate) / total + l2, jnp.sum(w * value) / total + l2


def init_state(spec: Spec, params: list, hyper: Hyper):
    """A fresh optimizer state: the optax chain's, else adam's (t, m, v) or sgd's velocities."""
    if spec.chain is not None:  # the state's structure, not its values, depends on the numbers
        return extras.transformation(spec.chain, hyper, 1).init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    return AdamState(jnp.zeros((), jnp.int32), zeros, zeros) if spec.solver == "adam" else zeros


def chain_update(chain: optax.GradientTransformation):
    """An `update(state, params, grads) -> (params, state)` by an optax chain."""
    def step(state, params, grads):
        updates, state = chain.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def update(solver: str, state, params: list, grads: list, h: Hyper):
    """(params, state) after one scikit-learn adam / sgd update."""
    if solver == "adam":
        t = state.t + 1
        m = jax.tree.map(lambda m, g: h.beta_1 * m + (1 - h.beta_1) * g, state.m, grads)
        v = jax.tree.map(lambda v, g: h.beta_2 * v + (1 - h.beta_2) * g * g, state.v, grads)
        tf = t.astype(h.lr.dtype)
        lr = h.lr * jnp.sqrt(1 - h.beta_2 ** tf) / (1 - h.beta_1 ** tf)
        params = jax.tree.map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + h.epsilon), params, m, v)
        return params, AdamState(t, m, v)
    velocity = jax.tree.map(lambda v, g: h.momentum * v - h.lr * g, state, grads)
    step = jax.tree.map(lambda v, g: jnp.where(h.nesterov, h.momentum * v - h.lr * g, v), velocity, grads)
    return jax.tree.map(jnp.add, params, step), velocity


@program("sklearn_epoch")
def epoch_program(spec: Spec):
    """The jitted `epoch(params, state, x, y, w, order, n, batch, hyper, key, *, bp)` ->
    (params, state, loss_sum).

    x (Np, D), y (Np, k), w (Np,): the padded training set and its row weights; order
    (Np + bp,) int32: the epoch's row order (its first n entries); n, batch: () int32, the real
    rows and minibatch size; bp (static): the padded minibatch. Minibatch s holds rows
    order[s * batch : s * batch + batch] (the last one fewer), the lanes past them weighted 0.
    loss_sum is sum over minibatches of loss * rows, as scikit-learn accumulates it.
    """
    grad_fn = jax.value_and_grad(functools.partial(objective, spec), has_aux=True)

    def epoch(params, state, x, y, w, order, n, batch, hyper, key, *, bp):
        lanes = jnp.arange(bp)
        steps = (n + batch - 1) // batch  # traced: one program for every n and batch that fit the buckets
        step_fn = functools.partial(update, spec.solver, h=hyper)
        if spec.chain is not None:
            step_fn = chain_update(extras.transformation(spec.chain, hyper, steps))

        def body(s, carry):
            params, state, loss_sum = carry
            start = s * batch
            rows = jax.lax.dynamic_slice(order, (start,), (bp,))
            valid = (lanes < batch) & (start + lanes < n)
            step_key = None if key is None else jax.random.fold_in(key, s)
            (_, value), grads = grad_fn(params, x[rows], y[rows], jnp.where(valid, w[rows], 0), hyper.alpha, step_key,
                                        hyper.input_noise)
            params, state = step_fn(state, params, grads)
            return params, state, loss_sum + value * jnp.sum(valid).astype(value.dtype)

        return jax.lax.fori_loop(0, steps, body, (params, state, jnp.zeros((), x.dtype)))

    return jax.jit(epoch, static_argnames=("bp",))


@program("sklearn_outputs")
def outputs_program(spec: Spec):
    """The jitted `outputs(params, x (Np, D)) -> (Np, k)`."""
    return jax.jit(functools.partial(outputs, spec))


def to_params(coefs, intercepts, dtype) -> list:
    """scikit-learn's coefs_ / intercepts_ -> jaxmlp params (a list of Layer) on the device."""
    return [Layer(jnp.asarray(W, dtype), jnp.asarray(b, dtype)) for W, b in zip(coefs, intercepts)]
