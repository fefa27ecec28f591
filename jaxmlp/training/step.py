"""One optimizer step, the body of the epoch's scan: the gradient under the precision policy,
gradient accumulation over microbatches, the optax update, and the finite flag the scan carries.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmlp.backprop import loss_and_grad
from jaxmlp.mlp import Params
from jaxmlp.training.gradtrack import make_tracked_step
from jaxmlp.training.hyper import Hyper, hyper_of
from jaxmlp.training.plan import Plan
from jaxmlp.training.state import TrainState
from jaxmlp.types import Array


class StepCarry(NamedTuple):
    """What the scan carries from minibatch to minibatch."""

    params: Params
    opt_state: optax.OptState
    ok: Array  # () bool: every step so far was finite
    loss_sum: Array  # () float32: sum of the good steps' objective values
    bad_step: Array  # () int32: index of the first non-finite step, -1 if none
    first_loss: Array  # () float32: the objective of step 0
    track: Any = None  # gradtrack.GradTrack with track_gradients, else None


def start_carry(state: TrainState, track=None) -> StepCarry:
    return StepCarry(state.params, state.opt_state, jnp.array(True), jnp.zeros((), jnp.float32),
                     jnp.array(-1, jnp.int32), jnp.zeros((), jnp.float32), track)


def all_finite(tree) -> Array:
    """() bool: no NaN or inf in any leaf of `tree`."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def make_step(plan: Plan, hyper: Hyper | None = None, track_update: Callable | None = None) -> Callable:
    """The pure minibatch update `step(carry, (i, (xb, yb), key)) -> carry`, the scan body.

    xb (K, B / K, D), yb (K, B / K) or (K, B / K, k): one minibatch of B rows as K = `accumulate`
    microbatches (`epoch.gather_batch` cuts it from a resident training set); i: the step's
    index in the epoch; key: its dropout / noise key. A non-finite loss clears `carry.ok` and
    records the step in `carry.bad_step`.

    The gradient is computed under the `config.precision` policy (precision.py). With K > 1
    the microbatches run in an inner scan that sums their gradients into one buffer; their
    mean makes ONE optimizer update, the same update as the whole minibatch at once
    (microbatch j draws dropout / noise from fold_in(key, j)). On the plan's data-parallel mesh
    every microbatch is split over its devices. l2, dropout and input_noise come from `hyper`
    (default: the config's; traced in a sweep, whose plan then holds the model's optimizer).
    With `track_gradients` (or a `track_update`) the step's gradient comes from gradtrack's
    manual pass, which also updates `carry.track` (with `track_update`, gradtrack's hook: the
    epoch's GradTrack by default).
    """
    config, optimizer, data_parallel = plan.config, plan.optimizer, plan.data_parallel
    tracked = make_tracked_step(plan, *([track_update] if track_update else [])) \
        if config.track_gradients or track_update else None
    hyper = hyper_of(config) if hyper is None else hyper
    # loss_and_grad with the plan's loss and activation and the config's settings bound, so
    # tracing a step looks nothing up; l2, dropout and input_noise may be traced (a sweep)
    grads_of = functools.partial(loss_and_grad, loss=plan.loss_fn, l2=hyper.l2, activation=plan.activation,
                                 dropout=hyper.dropout, input_noise=hyper.input_noise, train=True,
                                 method=config.grad_method, precision=config.precision)
    constrain = (lambda a: a) if data_parallel is None else data_parallel.constrain_batch

    def step(carry: StepCarry, inputs) -> StepCarry:
        i, (xb, yb), key = inputs  # (), ((K, b, D), (K, b[, k])), key
        track = None
        if tracked is not None:
            value, grads, track = tracked(carry.track, i, carry.params, xb, yb, key)
        elif xb.shape[0] == 1:  # called here, not through a helper: the step is 3 calls above the forward pass
            value, grads = grads_of(carry.params, constrain(xb[0]), constrain(yb[0]), key=key)
        else:
            value, grads = accumulated_grads(grads_of, constrain, carry.params, xb, yb, key)
        updates, new_opt_state = optimizer.update(grads, carry.opt_state, carry.params)
        new_params = optax.apply_updates(carry.params, updates)
        # Only the scalar loss is checked per step (passes over every gradient and param each
        # step cost ~12% of a CPU epoch). A non-finite gradient makes the updated params, and so
        # the next step's loss, non-finite; the epoch's end checks the final params and state.
        good = carry.ok & jnp.isfinite(value)
        return StepCarry(new_params, new_opt_state, good,
                         carry.loss_sum + jnp.where(good, value, 0).astype(jnp.float32),
                         jnp.where(carry.ok & ~good, i, carry.bad_step),
                         jnp.where(i == 0, value.astype(jnp.float32), carry.first_loss), track)

    return step


def accumulated_grads(grads_of: Callable, constrain: Callable, params: Params, xb: Array, yb: Array,
                      key: Array) -> tuple[Array, Params]:
    """The mean (objective, grads) over K microbatches xb (K, b, D), yb (K, b[, k]), summed in an
    inner scan into one buffer: the same update as the whole minibatch at once. Microbatch j
    draws dropout / noise from fold_in(key, j); `constrain` splits each over the devices."""
    def micro(acc, inputs):
        j, xm, ym = inputs
        value, grads = grads_of(params, constrain(xm), constrain(ym), key=jax.random.fold_in(key, j))
        return (acc[0] + value, jax.tree.map(jnp.add, acc[1], grads)), None

    k = xb.shape[0]
    zero = (jnp.zeros((), jnp.promote_types(params[0].W.dtype, jnp.float32)), jax.tree.map(jnp.zeros_like, params))
    (value, grads), _ = jax.lax.scan(micro, zero, (jnp.arange(k, dtype=jnp.int32), xb, yb))
    return value / k, jax.tree.map(lambda g: g / k, grads)
