"""What an epoch carries and returns: TrainState, EpochStats; fresh and
abstract states; the run's keys.

Randomness is threaded explicitly from `config.seed`:

    run key --split--> init key (params), train key
    train key --fold_in(epoch)--> epoch key        (epoch.py splits it further per step)

so epoch e of a run is the same computation whether or not the run was resumed before it.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxmlp.config import TrainConfig
from jaxmlp.mlp import Params, init_mlp
from jaxmlp.types import Array


class TrainState(NamedTuple):
    """Everything an epoch updates: params, optimizer state, optimizer steps taken (() int32)."""

    params: Params
    opt_state: optax.OptState
    step: Array


class EpochStats(NamedTuple):
    """What one epoch call returns besides the new state (all device scalars)."""

    loss: Array  # mean minibatch objective over the epoch's good steps
    finite: Array  # bool: no non-finite loss / gradient / parameter appeared
    bad_step: Array  # int32: first step of the epoch with a non-finite loss (or its last step, when only the final params are non-finite), -1 if none
    lr: Array  # learning rate of the epoch's last step
    first_loss: Array  # () float32: the objective of the epoch's first step (before its update)
    gradients: dict | None = None  # track_gradients: gradtrack.track_summary of the epoch


def init_params(key: Array, config: TrainConfig, sizes: Sequence[int]) -> Params:
    """Fresh params of layer sizes (d_in, *hidden, d_out) as the config's activation and init say."""
    return init_mlp(key, sizes, activation=config.activation, init=config.init,
                    dtype=jnp.dtype(config.dtype), **config.activation_options())


def init_state(key: Array, config: TrainConfig, sizes: Sequence[int], optimizer) -> TrainState:
    """Fresh params (from `key`) and optimizer state, step 0."""
    params = init_params(key, config, sizes)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def abstract_state(config: TrainConfig, sizes: Sequence[int], optimizer) -> TrainState:
    """The TrainState's structure, shapes and dtypes (ShapeDtypeStructs): a restore target."""
    return jax.eval_shape(lambda k: init_state(k, config, sizes, optimizer), jax.random.key(0))


def run_keys(seed: int) -> tuple[Array, Array]:
    """(init key, train key) of a run, both from `seed` alone."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    return init_key, train_key


def epoch_key(train_key: Array, epoch: int) -> Array:
    """The key of 0-based epoch `epoch`."""
    return jax.random.fold_in(train_key, epoch)
