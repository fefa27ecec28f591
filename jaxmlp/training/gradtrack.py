"""`track_gradients`: per-example gradient statistics inside the scanned step, summarized per epoch.

A tracked step takes its gradient from one manual forward pass and backward walk
(gradstats.gradient_stats), whatever `grad_method`: the same walk gives every example's
squared gradient norm per layer from row norms of the cached activations and deltas, so the
statistics cost little beside the step. Per layer l, with B the batch:

    |G_small|² = mean_i ‖g_i,l‖²  (B_small = 1)        |G_big|² = ‖ḡ_l‖²  (B_big = B)

give unbiased estimates of |G_l|² and tr(Σ_l) (noise_scale.per_example_estimate), smoothed by
separate EMAs of decay `gradient_ema` over the epoch's steps. The EMAs restart every epoch
(bias-corrected), so an epoch stays one compiled call that carries nothing into the next, and
a resumed run is bit-identical.

`gradient_record` gives the epoch's "gradients" column of metrics.jsonl:
    noise_scale        B_simple = Σ_l tr(Σ_l) / Σ_l |G_l|² from the EMAs at the epoch's end
    signal, noise      Σ_l |G_l|² and Σ_l tr(Σ_l), the EMAs it divides
    layer_grad_norm    (L + 1) the epoch's mean of ‖ḡ_l‖, the minibatch gradient of the loss (L2 left out)
    layer_snr          (L + 1) B |G_l|² / tr(Σ_l): signal over noise of a minibatch gradient of B examples
                       (negative when the unbiased |G_l|² estimate is: the signal is below the noise floor)
    example_grad_norm  {p50, p90, p99, max} of ‖g_i‖ over every example the epoch used (each at the
                       params of its step)
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxmlp.config import TrainConfig
from jaxmlp.gradstats import GradStats, gradient_stats, layer_sq_norms
from jaxmlp.losses import l2_grad, l2_penalty
from jaxmlp.metrics import layer_grad_norms
from jaxmlp.mlp import Params
from jaxmlp.noise_scale import NoiseEMA, NoiseEstimate, ema_estimate, ema_start, ema_update, noise_scale, \
    per_example_estimate
from jaxmlp.precision import matmul_precision
from jaxmlp.types import Array

PERCENTILES = (50, 90, 99, 100)
PERCENTILE_NAMES = ("p50", "p90", "p99", "max")


class GradTrack(NamedTuple):
    """What the epoch's scan carries for the statistics (L + 1 layers, S steps of B examples)."""

    ema: NoiseEMA  # signal and noise (L + 1,)
    norm_sum: Array  # (L + 1,) sum over the steps so far of ‖ḡ_l‖
    example_norms: Array  # (S, B) ‖g_i‖ of every step's examples


def start_track(config: TrainConfig, steps: int) -> GradTrack:
    """The empty GradTrack of an epoch of `steps` minibatches."""
    layers = len(config.hidden) + 1
    return GradTrack(ema_start((layers,)), jnp.zeros((layers,), jnp.float32),
                     jnp.zeros((steps, config.batch_size), jnp.float32))


def update_track(track: GradTrack, i: Array, stats: GradStats, beta: float) -> GradTrack:
    """Fold step i's GradStats into the track."""
    example_sq = layer_sq_norms(stats.batch_l2).astype(jnp.float32)  # (B, L + 1)
    batch_norm = layer_grad_norms(stats.grad).astype(jnp.float32)  # (L + 1,) ‖ḡ_l‖
    estimate = per_example_estimate(jnp.mean(example_sq, axis=0), batch_norm ** 2, example_sq.shape[0])
    return GradTrack(ema_update(track.ema, estimate, beta), track.norm_sum + batch_norm,
                     track.example_norms.at[i].set(jnp.sqrt(jnp.sum(example_sq, axis=1))))


def track_summary(track: GradTrack) -> dict[str, Array]:
    """The epoch's statistics as device arrays (see the module docstring)."""
    layers = ema_estimate(track.ema)
    total = NoiseEstimate(jnp.sum(layers.signal), jnp.sum(layers.noise))
    steps, batch = track.example_norms.shape
    return {"noise_scale": noise_scale(total), "signal": total.signal, "noise": total.noise,
            "layer_grad_norm": track.norm_sum / steps, "layer_snr": batch * layers.signal / layers.noise,
            "example_grad_norm": jnp.percentile(track.example_norms, jnp.asarray(PERCENTILES, jnp.float32))}


def make_tracked_step(plan, update: Callable = update_track) -> Callable:
    """`tracked(track, i, params, xb (1, B, D), yb (1, B[, k]), key) -> (objective, grads, track)`.

    The objective and grads are the training step's under the training.Plan `plan` (mean loss +
    the L2 term, with dropout and input noise from `key`); on its data-parallel mesh the batch is
    split over the devices. `update(track, i, GradStats, beta) -> track` folds the step's
    statistics in (update_track: the epoch's GradTrack; the adaptive batch size sums its own).
    """
    config, loss_fn, act, dp = plan.config, plan.loss_fn, plan.activation, plan.data_parallel

    def tracked(track: GradTrack, i: Array, params: Params, xb: Array, yb: Array, key: Array):
        xb, yb = xb[0], yb[0]  # track_gradients runs without accumulation: one (B, D) batch
        if dp is not None:
            xb, yb = dp.constrain_batch(xb), dp.constrain_batch(yb)
        with matmul_precision(config.precision):
            losses, stats = gradient_stats(params, xb, yb, loss=loss_fn, activation=act, key=key,
                                           dropout=config.dropout, input_noise=config.input_noise)
        value = jnp.mean(losses) + l2_penalty(params, config.l2)
        grads = l2_grad(stats.grad, params, config.l2)
        return value, grads, update(track, i, stats, config.gradient_ema)

    return tracked


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def gradient_record(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON-safe "gradients" column of a `track_summary` fetched to the host (None stays
    None; a non-finite number, e.g. B_simple while the signal estimate is <= 0, becomes None)."""
    if summary is None:
        return None
    host = {k: np.asarray(v, np.float64) for k, v in summary.items()}
    record: dict[str, Any] = {k: _finite(float(host[k])) for k in ("noise_scale", "signal", "noise")}
    for k in ("layer_grad_norm", "layer_snr"):
        record[k] = [_finite(float(v)) for v in host[k]]
    record["example_grad_norm"] = dict(zip(PERCENTILE_NAMES, (_finite(float(v)) for v in host["example_grad_norm"])))
    return record


__all__ = ["GradTrack", "start_track", "update_track", "track_summary", "make_tracked_step", "gradient_record",
           "PERCENTILES"]
