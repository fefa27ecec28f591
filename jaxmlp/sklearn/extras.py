"""jaxmlp's training extras on the estimators: an optax optimizer from jaxmlp's own table in place
of scikit-learn's adam / sgd update, with weight decay, gradient clipping and a schedule.

    optimizer='adamw', weight_decay=1e-2, clip_norm=1.0, schedule='warmup_cosine', warmup_epochs=2

The chain is the trainer's (`jaxmlp.training.optim.make_schedule` / `make_optimizer`, read-only
use): clip_by_global_norm -> [add_decayed_weights] -> the optimizer, its learning rate the
schedule of learning_rate_init over max_iter epochs. What the chain holds is a static `Chain`
(part of engine.Spec, the cache key of a compiled epoch); its numbers (the learning rate,
weight_decay, warmup_epochs, beta_1, ...) come traced from engine.Hyper, so a grid over them
shares one program. clip_norm and the schedule's length (max_iter) are compiled in, because the
trainer's chain takes them as constants.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import optax

from jaxmlp.config import TrainConfig
from jaxmlp.sklearn.params import EXTRA_DEFAULTS
from jaxmlp.training.hyper import hyper_of
from jaxmlp.training.optim import DECOUPLED_DECAY, make_optimizer, make_schedule

NEEDS_OPTIMIZER = ("weight_decay", "clip_norm", "schedule", "warmup_epochs")  # read only by the optax chain
NOT_LBFGS = ("optimizer", "dropout", "input_noise", *NEEDS_OPTIMIZER)  # lbfgs trains full batch, without them


class Chain(NamedTuple):
    """The static parts of an optax chain (hashable)."""

    optimizer: str  # a name of training.optim.OPTIMIZERS
    clip_norm: float | None = None
    schedule: str = "constant"  # constant, cosine or warmup_cosine
    schedule_epochs: int = 1  # the cosine's length: max_iter (1 where no cosine reads it)
    warmup: bool = False  # a linear warm-up in front (its length is traced)
    decay: bool = False  # add_decayed_weights ahead of a coupled optimizer (adamw, lamb, lars decay inside)


def chain_of(est) -> Chain | None:
    """The estimator's Chain, or None for scikit-learn's own update (optimizer=None)."""
    if est.optimizer is None:
        return None
    schedule = est.schedule or "constant"
    return Chain(est.optimizer, None if est.clip_norm is None else float(est.clip_norm), schedule,
                 int(est.max_iter) if schedule != "constant" else 1, est.warmup_epochs > 0,
                 est.weight_decay > 0 and est.optimizer not in DECOUPLED_DECAY)


@functools.lru_cache(maxsize=64)
def config_of(chain: Chain) -> TrainConfig:
    """The TrainConfig whose chain make_optimizer builds; weight_decay and warmup_epochs only say
    whether those parts exist (their values come from the traced Hyper)."""
    return TrainConfig(optimizer=chain.optimizer, clip_norm=chain.clip_norm, weight_decay=float(chain.decay),
                       schedule=chain.schedule, warmup_epochs=int(chain.warmup), epochs=chain.schedule_epochs,
                       dropout=0.0)


def transformation(chain: Chain, h, steps_per_epoch) -> optax.GradientTransformation:
    """The optax chain, its numbers from engine.Hyper `h` (traced or not);
    steps_per_epoch (may be traced) converts the schedule's epochs to steps."""
    config = config_of(chain)
    hyper = hyper_of(config)._replace(learning_rate=h.lr, weight_decay=h.weight_decay, momentum=h.momentum,
                                      b1=h.beta_1, b2=h.beta_2, eps=h.epsilon, warmup_epochs=h.warmup_epochs)
    return make_optimizer(config, make_schedule(config, steps_per_epoch, hyper), hyper)


def check(est) -> None:
    """ValueError in one line naming the public class, for extras that do not go together (each
    value's own range is CONSTRAINTS', checked before)."""
    name, given = type(est).__name__, [p for p in NOT_LBFGS if getattr(est, p) != EXTRA_DEFAULTS[p]]
    if est.solver == "lbfgs" and given:
        raise ValueError(f"{name}: {_listed(given, 'is', 'are')} only available for stochastic solvers "
                         "('adam', 'sgd'). lbfgs is not stochastic.")
    unread = [p for p in given if p in NEEDS_OPTIMIZER]
    if est.optimizer is None and unread:
        raise ValueError(f"{name}: {_listed(unread, 'applies', 'apply')} only with an optax optimizer "
                         f"(optimizer='adamw', 'sgd', ...); solver={est.solver!r} alone keeps scikit-learn's update.")
    if est.schedule == "warmup_cosine" and est.warmup_epochs < 1:
        raise ValueError(f"{name}: schedule='warmup_cosine' needs warmup_epochs >= 1, got {est.warmup_epochs}.")
    if est.warmup_epochs > est.max_iter:
        raise ValueError(f"{name}: warmup_epochs must be <= max_iter={est.max_iter}, got {est.warmup_epochs}.")


def _listed(names: list[str], one: str, many: str) -> str:
    """'a is' / 'a, b are': names with the verb that agrees."""
    return f"{', '.join(names)} {one if len(names) == 1 else many}"
