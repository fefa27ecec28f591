"""The gradient noise scale and the critical batch size (McCandlish et al. 2018, "An Empirical
Model of Large-Batch Training", Appendix A).

With G the true gradient and Σ the per-example gradient covariance, the simple noise scale is

    B_simple = tr(Σ) / |G|²

A minibatch gradient of size B has E‖G_B‖² = |G|² + tr(Σ) / B, so two batch sizes
B_small < B_big give unbiased estimates of both terms:

    |G|²  ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small)
    tr(Σ) ≈ (|G_small|² − |G_big|²) / (1 / B_small − 1 / B_big)

Per-example norms (gradstats.py) give B_small = 1 (|G_small|² = the mean of ‖g_i‖²) and
B_big = the batch, from one backward pass. The two estimates are noisy and their ratio is
not unbiased, so a run smooths numerator and denominator with separate EMAs and divides
afterwards, as gpt-neox and k-diffusion do; the EMA is bias-corrected like Adam's moments.

Everything here is elementwise, so the signal and noise of each layer (arrays (L + 1,)) are
estimated alike; |G|² and tr(Σ) add up over layers.

For fixed params, `dataset_estimate` needs no estimator: one pass of per-example statistics
over a whole data set gives |G|² and tr(Σ) of that data set exactly (`dataset_sums` makes
the pass block by block, for a set read from disk).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.activations import Activation
from jaxmlp.batching import pad_rows
from jaxmlp.gradstats import gradient_stats, layer_sq_norms
from jaxmlp.losses import Loss
from jaxmlp.metrics import layer_grad_norms
from jaxmlp.mlp import Params
from jaxmlp.types import Array


class NoiseEstimate(NamedTuple):
    """signal: the |G|² estimate; noise: the tr(Σ) estimate (scalars or per-layer arrays)."""

    signal: Array
    noise: Array


def two_batch_estimate(small_sq_norm: Array, big_sq_norm: Array, b_small: int, b_big: int) -> NoiseEstimate:
    """Unbiased |G|² and tr(Σ) from squared gradient norms measured at two batch sizes b_small < b_big."""
    if not 0 < b_small < b_big:
        raise ValueError(f"the noise scale needs 0 < b_small < b_big, got b_small={b_small}, b_big={b_big}")
    signal = (b_big * big_sq_norm - b_small * small_sq_norm) / (b_big - b_small)
    noise = (small_sq_norm - big_sq_norm) / (1.0 / b_small - 1.0 / b_big)
    return NoiseEstimate(signal, noise)


def per_example_estimate(mean_example_sq_norm: Array, batch_sq_norm: Array, batch: int) -> NoiseEstimate:
    """B_small = 1, B_big = batch: mean_example_sq_norm is the batch mean of ‖g_i‖², batch_sq_norm ‖ḡ‖²."""
    return two_batch_estimate(mean_example_sq_norm, batch_sq_norm, 1, batch)


def noise_scale(estimate: NoiseEstimate) -> Array:
    """B_simple = tr(Σ) / |G|² (inf when the signal estimate is not positive)."""
    return jnp.where(estimate.signal > 0, estimate.noise / estimate.signal, jnp.inf)


class NoiseEMA(NamedTuple):
    """Separate EMAs of the signal and noise estimates; `weight` = 1 − beta^steps (bias correction)."""

    signal: Array
    noise: Array
    weight: Array


def ema_start(shape: tuple[int, ...] = (), dtype=jnp.float32) -> NoiseEMA:
    """An EMA that has seen nothing, of estimates of this shape."""
    zeros = jnp.zeros(shape, dtype)
    return NoiseEMA(zeros, zeros, jnp.zeros((), dtype))


def ema_update(ema: NoiseEMA, estimate: NoiseEstimate, beta: float) -> NoiseEMA:
    """Fold one step's estimate in: x ← beta x + (1 − beta) estimate, for signal and noise alike."""
    def mix(old, new):
        return beta * old + (1 - beta) * new.astype(old.dtype)

    return NoiseEMA(mix(ema.signal, estimate.signal), mix(ema.noise, estimate.noise),
                    beta * ema.weight + (1 - beta))


def ema_estimate(ema: NoiseEMA) -> NoiseEstimate:
    """The bias-corrected EMAs (divided by 1 − beta^steps): a weighted mean of the estimates seen."""
    weight = jnp.maximum(ema.weight, jnp.finfo(ema.weight.dtype).tiny)
    return NoiseEstimate(ema.signal / weight, ema.noise / weight)


def suggested_batch_range(b_simple: float, limit: int | None = None) -> tuple[int, int] | None:
    """Powers of two around B_simple: [B_simple / 2, 2 B_simple], rounded outwards and at most
    `limit` (the training set, say); None if B_simple is not finite and positive.

    In McCandlish et al.'s model a batch B = r B_noise needs (1 + 1/r) times the fewest steps
    and (1 + r) times the fewest examples; within r in [1/2, 2] neither exceeds 3x. B_simple
    stands in for B_noise (equal when the Hessian is a multiple of the identity).
    """
    if not math.isfinite(b_simple) or b_simple <= 0:
        return None
    low = 2 ** max(0, math.floor(math.log2(b_simple / 2)))
    high = 2 ** max(0, math.ceil(math.log2(b_simple * 2)))
    if limit is not None:
        cap = 2 ** math.floor(math.log2(limit))
        low, high = min(low, cap), min(high, cap)
    return int(low), int(high)


class DatasetSums(NamedTuple):
    """A pass over a data set so far, with g_i example i's gradient (L2 left out)."""

    sq_sum: Array  # (L + 1,) Σ_i |g_i|² per layer
    grad_sum: Params  # Σ_i g_i, shaped as the params
    n: Array  # () the examples counted


def dataset_estimate(params: Params, x: Array, y: Array, key: Array | None, *, loss: Loss, act: Activation,
                     dropout: float = 0.0, input_noise: float = 0.0, batch_size: int = 1024) -> NoiseEstimate:
    """Per layer (L + 1,), exactly over the n examples of x (n, d_in), y: signal = |G|² with G the
    mean gradient, noise = tr(Σ) with Σ the population covariance of the per-example gradients
    (L2 left out), in one jitted pass of batches of min(batch_size, n). With a key, batch j's
    dropout and input noise come from fold_in(key, j) (train=True); without one they are off."""
    return sums_estimate(dataset_sums(params, x, y, key, loss=loss, act=act, dropout=dropout,
                                      input_noise=input_noise, batch_size=min(batch_size, x.shape[0])))


def dataset_sums(params: Params, x: Array, y: Array, key: Array | None, sums: DatasetSums | None = None,
                 first_batch: int = 0, *, loss: Loss, act: Activation, dropout: float = 0.0,
                 input_noise: float = 0.0, batch_size: int = 1024) -> DatasetSums:
    """`sums` (a fresh pass when None) with the m examples of x (m, d_in), y added, as batches
    first_batch, first_batch + 1, ... of exactly batch_size rows (the last one padded). A data
    set passed in blocks of whole batches, each block's first_batch counting on, gives the sums
    of one pass over it bit for bit: the blocks may come from disk one at a time."""
    rows, mask = pad_rows(x.shape[0], batch_size, shrink=False)  # (nb, B) each
    if sums is None:
        sums = DatasetSums(jnp.zeros(len(params), params[0].W.dtype), jax.tree.map(jnp.zeros_like, params),
                           jnp.sum(jnp.zeros(1, bool)))
    return _add_batches(params, x, y, rows, mask, key, sums, first_batch, loss, act, dropout, input_noise)


@functools.partial(jax.jit, static_argnums=(8, 9, 10, 11))
def _add_batches(params, x, y, rows, mask, key, sums, first_batch, loss, act, dropout, input_noise) -> DatasetSums:
    def body(acc, batch):
        j, rows_j, mask_j = batch
        _, stats = gradient_stats(params, x[rows_j], y[rows_j], loss=loss, activation=act,
                                  key=None if key is None else jax.random.fold_in(key, j), dropout=dropout,
                                  input_noise=input_noise, train=key is not None, mask=mask_j)
        sq_sum = acc.sq_sum + jnp.sum(layer_sq_norms(stats.batch_l2), axis=0)  # (L + 1,)
        grad_sum = jax.tree.map(lambda a, g: a + g * rows_j.shape[0], acc.grad_sum, stats.grad)
        return DatasetSums(sq_sum, grad_sum, acc.n + jnp.sum(mask_j)), None

    sums, _ = jax.lax.scan(body, sums, (first_batch + jnp.arange(rows.shape[0]), rows, mask))
    return sums


@jax.jit
def sums_estimate(sums: DatasetSums) -> NoiseEstimate:
    """Per layer (L + 1,): |G|² and tr(Σ) of the examples a pass summed."""
    signal = layer_grad_norms(jax.tree.map(lambda g: g / sums.n, sums.grad_sum)) ** 2
    return NoiseEstimate(signal, sums.sq_sum / sums.n - signal)


__all__ = ["dataset_estimate", "dataset_sums", "DatasetSums", "sums_estimate", "NoiseEstimate", "two_batch_estimate",
           "per_example_estimate", "noise_scale", "NoiseEMA", "ema_start", "ema_update", "ema_estimate",
           "suggested_batch_range"]
