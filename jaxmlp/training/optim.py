"""The optimizer of a run: weight-decay mask, learning-rate scaling, schedules, and a table of
optax factories (in the style of optax's `alias.py`).

    schedule, optimizer = build_optimizer(config, sizes, steps_per_epoch)

The chain is clip_by_global_norm (optional) -> [masked weight decay] -> the optimizer. Every
piece is optax's own; this module only maps a TrainConfig onto it.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import optax

from jaxmlp.config import TrainConfig
from jaxmlp.mlp import Layer, Params
from jaxmlp.training.state import init_params


def decay_mask(params: Params) -> Params:
    """True for weights W, False for biases b and PReLU slopes alpha (None stays None)."""
    return [Layer(True, False, None if layer.alpha is None else False) for layer in params]


def scaled_learning_rate(config: TrainConfig) -> float:
    """The peak learning rate after `lr_scaling`: learning_rate * batch_size / base_batch_size
    (linear, Goyal et al. 2017), its square root (sqrt), or learning_rate itself (none)."""
    ratio = config.batch_size / config.base_batch_size
    return config.learning_rate * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[config.lr_scaling]


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """The optax learning-rate schedule, with epochs converted to optimizer steps.

    step: lr * decay_rate ** floor(epoch / decay_epochs); exponential: the same without the
    floor; cosine: cosine decay to lr * final_lr_fraction over `config.schedule_length()`
    epochs (then constant at that final lr); warmup_cosine: linear warm-up over warmup_epochs
    then cosine. warmup_epochs > 0 puts the same linear warm-up in front of any other schedule.
    """
    lr, spe = scaled_learning_rate(config), steps_per_epoch  # the peak lr, after lr_scaling
    total, warmup = config.schedule_length() * spe, config.warmup_epochs * spe
    if config.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total, warmup + 1),
                                                  end_value=lr * config.final_lr_fraction)
    if config.schedule == "constant":
        base = optax.constant_schedule(lr)
    elif config.schedule in ("step", "exponential"):
        base = optax.exponential_decay(lr, config.decay_epochs * spe, config.decay_rate,
                                       staircase=config.schedule == "step")
    else:  # cosine
        base = optax.cosine_decay_schedule(lr, max(total - warmup, 1), alpha=config.final_lr_fraction)
    if warmup == 0:
        return base
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), base], [warmup])


# name -> factory(config, schedule, decay mask) -> the optax optimizer. The optimizers in
# DECOUPLED_DECAY apply weight_decay themselves; the others get `add_decayed_weights` before them.
Factory = Callable[[TrainConfig, optax.Schedule, Params], optax.GradientTransformation]
OPTIMIZERS: dict[str, Factory] = {
    "sgd": lambda c, lr, mask: optax.sgd(lr),
    "momentum": lambda c, lr, mask: optax.sgd(lr, momentum=c.momentum),
    "nesterov": lambda c, lr, mask: optax.sgd(lr, momentum=c.momentum, nesterov=True),
    "adam": lambda c, lr, mask: optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps),
    "adamw": lambda c, lr, mask: optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay,
                                             mask=mask),
    "rmsprop": lambda c, lr, mask: optax.rmsprop(lr, decay=c.rms_decay, eps=c.eps),
    "lars": lambda c, lr, mask: optax.lars(lr, weight_decay=c.weight_decay, weight_decay_mask=mask,
                                           trust_ratio_mask=mask, momentum=c.momentum),
    "lamb": lambda c, lr, mask: optax.lamb(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay,
                                           mask=mask),
}
DECOUPLED_DECAY = frozenset({"adamw", "lars", "lamb"})


def make_optimizer(config: TrainConfig, schedule: optax.Schedule, params: Params) -> optax.GradientTransformation:
    """clip_by_global_norm (optional) -> [masked weight decay] -> the optax optimizer.

    adamw, lamb and lars decay decoupled inside the optimizer; the others get
    `add_decayed_weights` before them (decay added to the gradient, like torch's
    weight_decay). Either way the mask skips biases and PReLU slopes.
    """
    mask = decay_mask(params)
    parts: list[optax.GradientTransformation] = []
    if config.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(config.clip_norm))
    if config.weight_decay and config.optimizer not in DECOUPLED_DECAY:
        parts.append(optax.add_decayed_weights(config.weight_decay, mask))
    parts.append(OPTIMIZERS[config.optimizer](config, schedule, mask))
    return optax.chain(*parts)


def build_optimizer(config: TrainConfig, sizes: Sequence[int],
                    steps_per_epoch: int) -> tuple[optax.Schedule, optax.GradientTransformation]:
    """(schedule, optimizer) of a run; the weight-decay mask is built from the params' shapes."""
    schedule = make_schedule(config, steps_per_epoch)
    template = jax.eval_shape(lambda k: init_params(k, config, sizes), jax.random.key(0))
    return schedule, make_optimizer(config, schedule, template)
