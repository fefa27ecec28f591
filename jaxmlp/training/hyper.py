"""The numbers a training step reads from its config: `Hyper`, one field per TrainConfig field
that changes no array shape and no program structure.

    hyper = hyper_of(config)                          # Python numbers: a solo run, as always
    hyper = hyper_of(config)._replace(learning_rate=lr)   # lr () traced: one model of a sweep

A solo run passes Python numbers, which the compiled program folds as constants. A sweep
(jaxmlp/sweeps) passes the fields that differ between its models as traced per-model scalars,
so one compiled epoch trains them all. Which parts of the program exist (a dropout mask, a
warm-up, the weight-decay term) is read from the config, never from these numbers; a traced
value of 0 in a part that exists changes nothing (mask 1, penalty 0, warm-up of 0 steps).
"""
from __future__ import annotations

from typing import NamedTuple

from jaxmlp.types import Array


class Hyper(NamedTuple):
    """Each field a Python number (from the config) or a traced () scalar."""

    learning_rate: float | Array  # the peak, before lr_scaling
    weight_decay: float | Array
    l2: float | Array
    dropout: float | Array
    input_noise: float | Array
    momentum: float | Array
    b1: float | Array
    b2: float | Array
    eps: float | Array
    rms_decay: float | Array
    warmup_epochs: int | Array
    final_lr_fraction: float | Array


TRACEABLE: tuple[str, ...] = Hyper._fields


def hyper_of(config) -> Hyper:
    """The config's values (a TrainConfig, or anything with these attributes)."""
    return Hyper(*(getattr(config, name) for name in TRACEABLE))
