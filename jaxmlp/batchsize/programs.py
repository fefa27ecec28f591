"""The programs of one race: P models of one batch size, each with its own learning rate and
seed, trained in lockstep from step to step and scored on the target's split.

    programs = race_programs(plan, width=1)               # plan: the race's batch size
    state = programs.init(init key data (P, 2))          # stacked TrainState, leaves (P, ...)
    rows, keys = programs.order(train key data (P, 2), epoch ())        # (P, S, B), (P, S)
    state, ok = programs.advance(lr (P,), state, rows, keys, start (), stop (), active (P,), x, y)
    loss_sums, metric_sums = programs.score(params (P, ...), active (P,), EvalSet)   # (P,), (P,)

`advance` runs steps start..stop - 1 of the epoch whose order it is given: each model's step
is the solo trainer's step (training.step.make_step) with the model's learning rate traced,
its minibatches and dropout keys drawn from its seed as a solo run draws them
(training.epoch.epoch_order). A model that is not `active` (it reached the target, diverged,
or pads the program) is skipped, by `advance` and by `score`: on the CPU, where the models run
one after another, it costs nothing. `start` and `stop` are traced, so every stretch between two checks runs the
same compiled program: one compile per batch size.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.sweeps.chunk_programs import over_models
from jaxmlp.training.epoch import epoch_order, gather_batch
from jaxmlp.training.evaluate import EvalSet, fold_batches, gather_rows_fn, metrics_step
from jaxmlp.training.hyper import hyper_of
from jaxmlp.training.plan import Plan
from jaxmlp.training.state import TrainState, epoch_key, init_state
from jaxmlp.training.step import make_step, start_carry
from jaxmlp.types import Array


class RacePrograms(NamedTuple):
    """The jitted programs of a race (leading axis P, the models, everywhere)."""

    init: Callable  # (init key data (P, 2) uint32) -> TrainState
    order: Callable  # (train key data (P, 2), epoch ()) -> (rows (P, S, B) int32, step keys (P, S))
    advance: Callable  # (lr, state, rows, keys, start, stop, active, x, y) -> (state, ok (P,)); state donated
    score: Callable  # (params, active (P,), EvalSet) -> (loss sums (P,), metric sums (P,)); 0 where inactive
    keep: Callable  # (mask (P,), new, old) -> new where mask else old, per model


def race_programs(plan: Plan, width: int | None) -> RacePrograms:
    """The race programs of `plan` (its batch size, its config with the race's settings);
    `width`: models vmapped together, the rest one after another (None: all vmapped)."""
    config, sizes, n_train = plan.config, plan.sizes, plan.spec.n_train
    init = jax.jit(jax.vmap(lambda key_data: init_state(jax.random.wrap_key_data(key_data), config, sizes,
                                                        plan.optimizer)))

    def order(train_key_data, epoch):  # one model's epoch: minibatch rows (S, B), step keys (S,)
        _, rows, keys = epoch_order(epoch_key(jax.random.wrap_key_data(train_key_data), epoch), n_train,
                                    config.batch_size)
        return rows, keys

    keep = jax.jit(lambda mask, new, old: jax.tree.map(
        lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old))
    return RacePrograms(init, jax.jit(jax.vmap(order, in_axes=(0, None))),
                        jax.jit(_advance(plan, width), donate_argnums=(1,)), _score(plan, width), keep)


def _advance(plan: Plan, width: int | None) -> Callable:
    """advance(lr (P,), state, rows, keys, start, stop, active, x, y) over the models given."""
    accumulate, base = plan.config.accumulate, hyper_of(plan.config)

    def model_advance(lr, state: TrainState, rows, keys, start, stop, active, x, y):  # one model
        hyper = base._replace(learning_rate=lr)
        step = make_step(plan.with_hyper(hyper), hyper)

        def run(state: TrainState):
            carry = jax.lax.fori_loop(start, stop, lambda i, c: step(c, (i, gather_batch(x, y, rows[i], accumulate),
                                                                         keys[i])), start_carry(state))
            return TrainState(carry.params, carry.opt_state, state.step + (stop - start)), carry.ok

        return jax.lax.cond(active, run, lambda s: (s, jnp.array(True)), state)

    def advance(lr, state, rows, keys, start, stop, active, x, y):
        return over_models(lambda *a: model_advance(*a[:4], start, stop, a[4], x, y), width)(
            lr, state, rows, keys, active)

    return advance


def _score(plan: Plan, width: int | None) -> Callable:
    """score(params (P, ...), active (P,), EvalSet) -> (loss sums (P,), metric sums (P,)) over the
    split's rows, for the active models (0 for the others)."""
    solo, gather = metrics_step(plan.loss_fn, plan.activation, plan.spec.classification), gather_rows_fn()

    def one(p, on, a, x, y, valid):  # one model's batch, or nothing
        return jax.lax.cond(on, lambda: solo(p, a, x, y, valid), lambda: a)

    batch = jax.jit(lambda params, acc, x, y, valid, active: over_models(
        lambda p, on, a: one(p, on, a, x, y, valid), width)(params, active, acc))

    def score(params, active, data: EvalSet) -> tuple[Array, Array]:
        first = jax.tree.leaves(params)[0]
        zero = jnp.asarray(np.zeros(first.shape[0], first.dtype))
        return fold_batches(batch, (zero, zero), params, data, jnp.asarray(active), gather=gather)

    return score
