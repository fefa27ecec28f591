"""`adaptive_batch`: the batch size follows the gradient noise scale while training (McCandlish
et al. 2018), and the learning rate follows the batch by AdaScale's gain (Johnson et al. 2020).

An epoch is one permutation of the training set (the fixed-batch run's, from the same key),
consumed from the front in segments of n_train / batch_segments examples (one step when the
batch is larger), while a whole batch remains. A segment runs at one batch size B, floor(segment
/ B) steps on rows perm[pos : pos + B], as one call of a program compiled once per B
(programs.cached; with the persistent cache, once ever). Its steps take their gradients from
the per-example pass of track_gradients (gradtrack) and sum, per layer, the batch means of
‖g_i‖² and ‖ḡ‖²: their means over the segment give the unbiased |G|² and tr(Σ) of
noise_scale.per_example_estimate (Σ: the per-example covariance). Each is folded into an EMA
across segments with decay gradient_ema per step (a segment of n steps weighs 1 − β^n;
bias-corrected like Adam's moments), so a short segment at a large batch moves it little.
After each segment, from the EMAs:

    B_simple = tr(Σ) / |G|²
    next B   = the power of two nearest B_simple, within [batch_size, cap]        (batch_cap)
    gain r   = (tr(Σ) / B0 + |G|²) / (tr(Σ) / B + |G|²),   B0 = batch_size
    lr       = learning_rate · r

r is AdaScale's gain for scale s = B / B0: its variance term is that of a gradient of the base
batch B0 (tr(Σ) / B0). Divided through by |G|² it reads (1 + B_simple / B0) / (1 + B_simple / B),
which is McCandlish's eps_opt(B) / eps_opt(B0) with B_noise = B_simple: the two rules the issue
names are one rule here, and no flag chooses between them. r runs from 1 (noise-free: a big
step is worth one small one) to s (noise-dominated: worth s small ones); the scale-invariant
iterations Σ r are recorded. A batch size that never changes reproduces the fixed-batch run
with track_gradients step for step.

The batch state (the next segment's batch and rate, the last B_simple, Σ r) is checkpointed
in the run's meta at epoch ends, so a resume continues the schedule bit-identically.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.gradstats import GradStats, layer_sq_norms
from jaxmlp.metrics import layer_grad_norms
from jaxmlp.noise_scale import per_example_estimate
from jaxmlp.training.epoch import epoch_permutation, gather_batch
from jaxmlp.training.hyper import hyper_of
from jaxmlp.training.memory import check_memory, device_memory_limit
from jaxmlp.training.plan import Plan, plan_of
from jaxmlp.training.programs import cached, keep, lookup, program_key
from jaxmlp.training.state import EpochStats, TrainState
from jaxmlp.training.step import all_finite, make_step, start_carry
from jaxmlp.types import Array


class BatchState(NamedTuple):
    """What the batch schedule carries from segment to segment (and in a checkpoint's meta)."""

    batch: int  # the next segment's batch size
    lr: float  # its learning rate
    gain: float  # its AdaScale gain r (1 at batch_size)
    b_simple: float | None  # B_simple of the EMAs (None before the first segment)
    scaled_steps: float  # AdaScale's scale-invariant iterations so far: Σ r over the steps
    signal: float  # the EMAs of |G|² and tr(Σ), and their weight 1 − β^steps (bias correction)
    noise: float
    weight: float


class NoiseSums(NamedTuple):
    """Per layer (L + 1,): Σ over a segment's steps of mean_i ‖g_i‖² and of ‖ḡ‖²."""

    example_sq: Array
    batch_sq: Array


def start_batch_state(config) -> BatchState:
    return BatchState(config.batch_size, config.learning_rate, 1.0, None, 0.0, 0.0, 0.0, 0.0)


def nearest_power_of_two(x: float) -> int:
    """The power of two nearest x (> 0) in log scale; 1 below 1."""
    return 2 ** max(0, round(math.log2(x))) if x > 0 else 1


def adascale_gain(signal: float, noise: float, base: int, batch: int) -> float:
    """AdaScale's r = (tr(Σ) / B0 + |G|²) / (tr(Σ) / B + |G|²) for the per-example tr(Σ) = noise,
    |G|² = signal, B0 = base, B = batch: in [1, B / B0]; B / B0 where the |G|² estimate is <= 0."""
    scale, noise = batch / base, max(noise, 0.0)
    if signal <= 0:
        return scale
    return min(scale, max(1.0, (noise / base + signal) / (noise / batch + signal)))


def next_state(config, state: BatchState, signal: float, noise: float, steps: int, cap: int) -> BatchState:
    """The schedule after a segment of `steps` steps at state.batch that measured |G|² = signal
    and tr(Σ) = noise (totals over the layers, means over its steps)."""
    keep = config.gradient_ema ** steps
    ema = [keep * old + (1 - keep) * new for old, new in ((state.signal, signal), (state.noise, noise))]
    weight = keep * state.weight + (1 - keep)
    g2, trace = ema[0] / weight, ema[1] / weight
    b_simple = trace / g2 if g2 > 0 else math.inf
    batch = min(cap, max(config.batch_size, nearest_power_of_two(b_simple) if math.isfinite(b_simple) else cap))
    gain = adascale_gain(g2, trace, config.batch_size, batch)
    return BatchState(batch, config.learning_rate * gain, gain, b_simple if math.isfinite(b_simple) else None,
                      state.scaled_steps + state.gain * steps, *ema, weight)


def batch_plan(plan: Plan, batch: int) -> Plan:
    """`plan` at batch size `batch` (its spec's steps per epoch and its memory estimate follow)."""
    config = dataclasses.replace(plan.config, batch_size=batch)
    return plan_of(config, plan.spec._replace(steps_per_epoch=plan.spec.n_train // batch))


def batch_cap(plan: Plan) -> int:
    """The largest batch: a power of two within max_batch_size, the training set, and the device
    memory (the estimate of each larger power of two checked)."""
    config = plan.config
    limit = min(config.max_batch_size or math.inf, plan.spec.n_train)
    cap = config.batch_size
    while cap * 2 <= limit:
        try:
            check_memory(batch_plan(plan, cap * 2).memory, device_memory_limit())
        except ValueError:
            break
        cap *= 2
    return cap


def sum_noise(sums: NoiseSums, i: Array, stats: GradStats, beta: float) -> NoiseSums:
    """gradtrack's update hook: fold one step's per-example statistics into the segment's sums."""
    example_sq = layer_sq_norms(stats.batch_l2).astype(jnp.float32)  # (B, L + 1)
    return NoiseSums(sums.example_sq + jnp.mean(example_sq, axis=0),
                     sums.batch_sq + layer_grad_norms(stats.grad).astype(jnp.float32) ** 2)


def make_segment(plan: Plan):
    """The pure `segment(perm, step_key, state, x, y, pos, first, n, lr, sums) -> (state, (loss
    sum, ok, bad step, first loss, sums))` at the plan's batch size B: steps first .. first + n - 1
    of the epoch whose order (epoch_permutation) is (perm, step_key), step j on rows
    perm[pos + (j - first) B : ... + B], folding their statistics into the NoiseSums `sums` (so
    a segment cut in two calls sums exactly as one call does)."""
    batch, base = plan.config.batch_size, hyper_of(plan.config)

    def segment(perm, step_key, state: TrainState, x, y, pos, first, n, lr, sums: NoiseSums):
        hyper = base._replace(learning_rate=lr)
        step = make_step(plan.with_hyper(hyper), hyper, track_update=sum_noise)

        def body(j, carry):
            rows = jax.lax.dynamic_slice(perm, (pos + j * batch,), (batch,))  # (B,)
            i = first + j
            return step(carry, (i, gather_batch(x, y, rows), jax.random.fold_in(step_key, i)))

        carry = jax.lax.fori_loop(0, n, body, start_carry(state, sums))
        ok = carry.ok & all_finite(carry.params) & all_finite(carry.opt_state)
        return (TrainState(carry.params, carry.opt_state, state.step + n),
                (carry.loss_sum, ok, carry.bad_step, carry.first_loss, carry.track))

    return segment


def segment_program(plan: Plan, batch: int, args) -> Any:
    """The segment at `batch`, jitted (state donated) and compiled for `args` once per batch size
    (the lookup itself plans nothing: the key is the batch size and the plan's)."""
    key = ("adaptive_segment", program_key(plan.config), plan.spec, batch)
    found = lookup(key)
    if found is None:
        at = batch_plan(plan, batch)
        found = keep(key, jax.jit(make_segment(at), donate_argnums=(2,)).lower(*args).compile())
    return found


class Checks(NamedTuple):
    """Where an epoch asks whether to stop: after(step) -> the next step to ask at;
    done(step, state) -> True to stop there (steps counted over the run)."""

    after: Callable[[int], int]
    done: Callable[[int, TrainState], bool]


class EpochRun(NamedTuple):
    """What `adaptive_epoch` returns."""

    state: TrainState
    stats: EpochStats
    batch: BatchState  # after the epoch (or where a check stopped it)
    segments: list[dict[str, Any]]  # each segment's {batch, steps, lr, gain, b_simple}
    stopped_at: int | None  # the step (of the run) at which `check` said stop; None: the whole epoch ran


def adaptive_epoch(plan: Plan, key: Array, state: TrainState, x, y, bstate: BatchState, cap: int, *,
                   check: Checks | None = None, step0: int = 0) -> EpochRun:
    """One epoch of segments from `bstate` (the module docstring says which). With `check`, they are cut
    at the run's steps check.after gives (counting from `step0`, the steps before this epoch) and
    check.done(step, state) is asked there; True stops the epoch (a batch-size study's
    measurement of steps to a target). Cutting changes no number the training computes."""
    config, dtype, n_train = plan.config, plan.config.dtype, plan.spec.n_train
    per_segment = n_train // config.batch_segments
    order = cached(("adaptive_order", n_train), lambda: jax.jit(epoch_permutation, static_argnums=1))(key, n_train)
    programs: dict[int, Any] = {}  # batch -> its segment, looked up once an epoch
    pos = first = 0
    loss_sum, first_loss, records = 0.0, 0.0, []
    while pos + bstate.batch <= n_train:
        batch = bstate.batch
        n = min(max(1, per_segment // batch), (n_train - pos) // batch)
        zeros = np.zeros(len(plan.sizes) - 1, np.float32)
        sums, done = NoiseSums(zeros, zeros), 0
        records.append({"batch": batch, "steps": n, "lr": float(bstate.lr), "gain": float(bstate.gain)})
        while done < n:
            cut = n if check is None else min(n, check.after(step0 + first + done) - step0 - first)
            args = (*order, state, x, y, np.int32(pos + done * batch), np.int32(first + done), np.int32(cut - done),
                    np.asarray(bstate.lr, dtype), sums)
            if batch not in programs:
                programs[batch] = segment_program(plan, batch, args)
            state, (part_loss, ok, bad, part_first, sums) = programs[batch](*args)
            part_loss, ok, bad, part_first = jax.device_get((part_loss, ok, bad, part_first))
            first_loss = part_first if first + done == 0 else first_loss
            if not ok:
                bad = bad if bad >= 0 else first + cut - 1  # only the final params were non-finite
                stats = _epoch_stats(loss_sum, first + done, bstate.lr, first_loss, bad)
                return EpochRun(state, stats, bstate, records, None)
            loss_sum, done = loss_sum + float(part_loss), cut
            if check is not None and check.done(step0 + first + done, state):
                records[-1]["steps"] = done
                return EpochRun(state, _epoch_stats(loss_sum, first + done, bstate.lr, first_loss), bstate, records,
                                step0 + first + done)
        sums = jax.device_get(sums)
        estimate = per_example_estimate(np.sum(sums.example_sq) / n, np.sum(sums.batch_sq) / n, batch)
        bstate = next_state(config, bstate, float(estimate.signal), float(estimate.noise), n, cap)
        records[-1]["b_simple"] = bstate.b_simple
        pos, first = pos + n * batch, first + n
    return EpochRun(state, _epoch_stats(loss_sum, first, records[-1]["lr"], first_loss), bstate, records, None)


def _epoch_stats(loss_sum: float, steps: int, lr: float, first_loss: float, bad: int | None = None) -> EpochStats:
    """The EpochStats of an adaptive epoch's `steps` steps so far: finite, with their mean loss, or
    not finite from step `bad` on (the loss is then NaN: the epoch is not recorded)."""
    if bad is not None:
        return EpochStats(np.float32(np.nan), np.bool_(False), np.int32(bad), np.float32(lr), np.float32(first_loss))
    return EpochStats(np.float32(loss_sum / steps), np.bool_(True), np.int32(-1), np.float32(lr),
                      np.float32(first_loss))
