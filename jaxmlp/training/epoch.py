"""One epoch as ONE compiled call: the epoch's order (permutation, step keys), the minibatch
gather from a resident training set, and the `lax.scan` of the step over the minibatches.

    key --split--> permutation key, step key;  step key --fold_in(i)--> step i's dropout / noise key

The epoch scans the step (step.py) over the S = N // batch_size minibatches. Divergence is found
on the device: a non-finite loss trips a flag carried through the scan (a non-finite gradient
makes the params, and so the next loss, non-finite), and the final params and optimizer state
are checked once at the end. The host sees `finite == False` once, after the epoch; `fit` then
raises TrainingDiverged and saves nothing from that epoch, so the last checkpoint stays the last
good one.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxmlp.training.gradtrack import start_track, track_summary
from jaxmlp.training.hyper import Hyper
from jaxmlp.training.plan import Plan
from jaxmlp.training.state import EpochStats, TrainState
from jaxmlp.training.step import StepCarry, all_finite, make_step, start_carry
from jaxmlp.types import Array

FEEDS = ("resident", "per_process")


def epoch_permutation(key: Array, n_train: int) -> tuple[Array, Array]:
    """(perm (N,), step key): the epoch's order of the training rows, and the key its steps'
    dropout / noise keys fold their index into. An adaptive-batch epoch slices perm as it goes."""
    perm_key, step_key = jax.random.split(key)
    return jax.random.permutation(perm_key, n_train), step_key


def epoch_order(key: Array, n_train: int, batch_size: int) -> tuple[Array, Array, Array]:
    """(step index (S,), minibatch rows (S, B), step keys (S,)) of one epoch, S = n_train // batch_size.

    The permutation drops the last n_train mod batch_size rows: the remainder batch.
    """
    steps = n_train // batch_size
    perm, step_key = epoch_permutation(key, n_train)
    perm = perm[: steps * batch_size].reshape(steps, batch_size)  # (S, B)
    index = jnp.arange(steps, dtype=jnp.int32)  # (S,)
    keys = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(index)  # (S,) one key per step
    return index, perm, keys


def gather_batch(x: Array, y: Array, rows: Array, accumulate: int = 1) -> tuple[Array, Array]:
    """Minibatch rows (B,) of a resident training set x (N, D), y (N, ...) as the step's
    (xb (K, B / K, D), yb (K, B / K, ...)), K = accumulate."""
    rows = rows.reshape(accumulate, rows.shape[0] // accumulate)  # (K, B / K)
    return x[rows], y[rows]


def make_epoch(plan: Plan, hyper: Hyper | None = None) -> Callable:
    """The pure `epoch(key, state, x, y) -> (state, EpochStats)` of `plan`; the caller jits it
    (programs.run_programs: state donated, shardings on a mesh) or traces it inside its own
    program (a sweep's, with each model's `hyper` and optimizer).

    plan.feed "resident": x (N, D) and y (N,) or (N, k) are the whole training set, already on
    the device; the epoch draws a permutation from `key` and gathers every minibatch there.
    "per_process": x (S, K, B / K, D), y (S, K, B / K[, k]) are this epoch's minibatches,
    gathered on the host from `epoch_order(key, ...)`'s rows (feed.py). Both see the same
    minibatches in the same order; the permutation drops the remainder batch (N mod
    batch_size examples; every epoch reshuffles, so each example is still used). Divergence is
    found on the device (the module docstring says how).
    """
    config, n_train, schedule = plan.config, plan.spec.n_train, plan.schedule
    batch, accumulate = config.batch_size, config.accumulate
    steps = n_train // batch
    if steps < 1:
        raise ValueError(f"batch_size={batch} is larger than the training set ({n_train} examples)")
    if plan.feed not in FEEDS:
        raise ValueError(f"feed must be resident or per_process, got {plan.feed!r}")
    step = make_step(plan, hyper)

    def epoch(key: Array, state: TrainState, x: Array, y: Array) -> tuple[TrainState, EpochStats]:
        index, rows, keys = epoch_order(key, n_train, batch)  # (S,), (S, B), (S,)
        track = start_track(config, steps) if config.track_gradients else None

        def resident_step(carry, inputs):  # gather the minibatch from the resident training set
            i, rows_i, key_i = inputs
            return step(carry, (i, gather_batch(x, y, rows_i, accumulate), key_i)), None

        if plan.feed == "resident":
            carry, _ = jax.lax.scan(resident_step, start_carry(state, track), (index, rows, keys))
        else:  # the host gathered the minibatches; `rows` is unused (and compiled away)
            carry, _ = jax.lax.scan(lambda c, inputs: (step(c, inputs), None), start_carry(state, track),
                                    (index, (x, y), keys))
        return epoch_end(state, carry, steps, schedule, track is not None)

    return epoch


def make_chunk(plan: Plan, hyper: Hyper | None = None) -> Callable:
    """The pure `chunk(carry, index (k,), x (k, K, B / K, D), y (k, K, B / K[, k']), keys (k,))
    -> carry`: the epoch's steps index[0]..index[-1] on minibatches the host gathered (`hyper`:
    a sweep model's traced numbers, as make_epoch takes them)."""
    step = make_step(plan, hyper)

    def chunk(carry: StepCarry, index: Array, x: Array, y: Array, keys: Array) -> StepCarry:
        carry, _ = jax.lax.scan(lambda c, inputs: (step(c, inputs), None), carry, (index, (x, y), keys))
        return carry

    return chunk


def epoch_end(state: TrainState, carry: StepCarry, steps: int, schedule, tracked: bool
              ) -> tuple[TrainState, EpochStats]:
    """The epoch's (TrainState, EpochStats) from the carry after its `steps` steps: the final
    params and optimizer state are checked once (the last update, too), and the mean loss is
    over the steps with a finite loss. A streamed epoch (stream.py) ends here as well."""
    end_finite = all_finite(carry.params) & all_finite(carry.opt_state)
    carry = carry._replace(ok=carry.ok & end_finite,
                           bad_step=jnp.where(carry.ok & ~end_finite, steps - 1, carry.bad_step))
    n_good = jnp.where(carry.ok, steps, carry.bad_step)  # steps with a finite loss this epoch
    new_step = state.step + n_good
    stats = EpochStats(carry.loss_sum / jnp.maximum(n_good, 1), carry.ok, carry.bad_step,
                       jnp.asarray(schedule(new_step - 1), jnp.float32), carry.first_loss,
                       track_summary(carry.track) if tracked else None)
    return TrainState(carry.params, carry.opt_state, new_step), stats
