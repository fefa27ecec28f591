"""The optimizer of a run: weight-decay mask, learning-rate scaling, schedules, and a table of
optax factories (in the style of optax's `alias.py`).

    schedule, optimizer = build_optimizer(config, steps_per_epoch)

The chain is clip_by_global_norm (optional) -> [masked weight decay] -> the optimizer. Every
piece is optax's own, but for two schedule pieces written here op for op as optax writes them
(linear_warmup, cosine_decay) so that their step counts may be traced; this module only maps a
TrainConfig, and its numbers (training.hyper.Hyper, traced in a sweep), onto them.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxmlp.config import TrainConfig
from jaxmlp.mlp import Layer, Params
from jaxmlp.training.hyper import Hyper, hyper_of


def decay_mask(params: Params) -> Params:
    """True for weights W, False for biases b and PReLU slopes alpha (None stays None)."""
    return [Layer(True, False, None if layer.alpha is None else False) for layer in params]


def scaled_learning_rate(config: TrainConfig, learning_rate: float | jax.Array | None = None):
    """The peak learning rate after `lr_scaling`: learning_rate * batch_size / base_batch_size
    (linear, Goyal et al. 2017), its square root (sqrt), or learning_rate itself (none).
    `learning_rate` (a sweep's traced value) replaces config.learning_rate when given."""
    lr = config.learning_rate if learning_rate is None else learning_rate
    ratio = config.batch_size / config.base_batch_size
    return lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[config.lr_scaling]


def make_schedule(config: TrainConfig, steps_per_epoch: int, hyper: Hyper | None = None) -> optax.Schedule:
    """The optax learning-rate schedule, with epochs converted to optimizer steps.

    step: lr * decay_rate ** floor(epoch / decay_epochs); exponential: the same without the
    floor; cosine: cosine decay to lr * final_lr_fraction over `config.schedule_length()`
    epochs (then constant at that final lr); warmup_cosine: linear warm-up over warmup_epochs
    then cosine. warmup_epochs > 0 puts the same linear warm-up in front of any other schedule.

    The numbers come from `hyper` (default: the config's), so the peak, the warm-up length and
    the final fraction may be traced (a sweep); whether there is a warm-up is the config's.
    """
    hyper = hyper_of(config) if hyper is None else hyper
    lr, spe = scaled_learning_rate(config, hyper.learning_rate), steps_per_epoch  # the peak lr
    total, warmup = config.schedule_length() * spe, hyper.warmup_epochs * spe
    if config.schedule == "warmup_cosine":  # optax.warmup_cosine_decay_schedule's pieces
        end = lr * hyper.final_lr_fraction
        base = cosine_decay(lr, _max(total, warmup + 1) - warmup, end / lr)
    elif config.schedule == "constant":
        base = optax.constant_schedule(lr)
    elif config.schedule in ("step", "exponential"):
        base = optax.exponential_decay(lr, config.decay_epochs * spe, config.decay_rate,
                                       staircase=config.schedule == "step")
    else:  # cosine
        base = cosine_decay(lr, _max(total - warmup, 1), hyper.final_lr_fraction)
    if config.warmup_epochs == 0:
        return base
    return optax.join_schedules([linear_warmup(lr, warmup), base], [warmup])


def linear_warmup(peak, steps) -> optax.Schedule:
    """optax.linear_schedule(0.0, peak, steps), op for op, where `steps` (> 0) may be traced."""
    def schedule(count):
        frac = 1 - jnp.clip(count, 0, steps) / steps
        return (0.0 - peak) * frac + peak

    return schedule


def cosine_decay(peak, steps, alpha) -> optax.Schedule:
    """optax.cosine_decay_schedule(peak, steps, alpha), op for op, where `steps` (> 0) may be traced."""
    steps = float(steps) if isinstance(steps, int) else steps

    def schedule(count):
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(count, steps) / steps))
        return peak * ((1 - alpha) * cosine + alpha)

    return schedule


def _max(a, b):
    """max of two step counts, either of which may be traced."""
    return max(a, b) if isinstance(a, int) and isinstance(b, int) else jnp.maximum(a, b)


# name -> factory(hyper, schedule, decay mask) -> the optax optimizer; hyper: the run's numbers
# (training.hyper.Hyper). The optimizers in DECOUPLED_DECAY apply weight_decay themselves; the
# others get `add_decayed_weights` before them.
Factory = Callable[[Hyper, optax.Schedule, Params], optax.GradientTransformation]
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


def make_optimizer(config: TrainConfig, schedule: optax.Schedule,
                   hyper: Hyper | None = None) -> optax.GradientTransformation:
    """clip_by_global_norm (optional) -> [masked weight decay] -> the optax optimizer.

    adamw, lamb and lars decay decoupled inside the optimizer; the others get
    `add_decayed_weights` before them (decay added to the gradient, like torch's
    weight_decay). Either way the mask (`decay_mask`, applied to the params the optimizer
    meets) skips biases and PReLU slopes. The numbers come from
    `hyper` (default: the config's); which parts the chain has, from the config.
    """
    hyper = hyper_of(config) if hyper is None else hyper
    mask = decay_mask
    parts: list[optax.GradientTransformation] = []
    if config.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(config.clip_norm))
    if config.weight_decay and config.optimizer not in DECOUPLED_DECAY:
        parts.append(optax.add_decayed_weights(hyper.weight_decay, mask))
    parts.append(OPTIMIZERS[config.optimizer](hyper, schedule, mask))
    return optax.chain(*parts)


def build_optimizer(config: TrainConfig, steps_per_epoch: int,
                    hyper: Hyper | None = None) -> tuple[optax.Schedule, optax.GradientTransformation]:
    """(schedule, optimizer) of a run; `hyper` (default: the config's numbers) as in
    make_schedule / make_optimizer."""
    schedule = make_schedule(config, steps_per_epoch, hyper)
    return schedule, make_optimizer(config, schedule, hyper)
