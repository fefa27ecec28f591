"""The target of a batch-size study, and when it is checked.

    target = parse_target("val_accuracy=0.975")      # Target("val", "accuracy", 0.975)
    check_target(target, classification=True, has_val=True)
    t = next_check(t)                                # the next step a race checks the target at

A target names a split (train or val), a metric and a value: `loss` (the mean per-example loss,
lower is better), `accuracy` (classification, higher is better) or `mse` (regression, lower is
better), each computed over the whole split exactly as the trainer's evaluation does.

Checks fall at steps 1, 2, ..., 40, then every floor(t / 20) steps: the first check at which
the target holds, S, lies less than S / 20 steps after the step the target was first reached,
so S is resolved within 5% at every batch size, while a race of S steps makes only about
40 + 21 ln(S / 40) checks.
"""
from __future__ import annotations

import math
from typing import NamedTuple

SPLITS = ("train", "val")
METRICS = {"loss": False, "accuracy": True, "mse": False}  # metric -> higher is better
CHECKS_PER_STEP_COUNT = 20  # resolution 1/20 = 5%


class Target(NamedTuple):
    """split: train | val; metric: loss | accuracy | mse; value: the threshold."""

    split: str
    metric: str
    value: float

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric]

    @property
    def name(self) -> str:
        return f"{self.split}_{self.metric}"

    def reached(self, value: float) -> bool:
        """Whether a measured value meets the target (NaN never does)."""
        return value >= self.value if self.higher_is_better else value <= self.value

    def __str__(self) -> str:
        return f"{self.name}={self.value:g}"


def parse_target(text: str) -> Target:
    """Target from "SPLIT_METRIC=VALUE" (val_accuracy=0.975, train_loss=0.05, val_mse=0.01);
    ValueError naming what is wrong, including a value no model can reach (an accuracy outside
    (0, 1], a loss or mse below 0)."""
    name, sep, value = text.partition("=")
    split, _, metric = name.strip().partition("_")
    if not sep or split not in SPLITS or metric not in METRICS:
        raise ValueError(f"a target is SPLIT_METRIC=VALUE with SPLIT in {'/'.join(SPLITS)} and METRIC in "
                         f"{'/'.join(METRICS)} (e.g. val_accuracy=0.975), got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"the target value must be a number, got {value.strip()!r} in {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"the target value must be finite, got {text!r}")
    if metric == "accuracy" and not 0 < number <= 1:
        raise ValueError(f"the target {text!r} is unreachable: an accuracy lies in [0, 1] (give a fraction, "
                         "e.g. 0.975, in (0, 1])")
    if metric != "accuracy" and number < 0:
        raise ValueError(f"the target {text!r} is unreachable: a {metric} is never below 0")
    return Target(split, metric, number)


def check_target(target: Target, *, classification: bool, has_val: bool) -> None:
    """ValueError when the data cannot measure `target`: accuracy of a regression, mse of a
    classification, a val target without a validation set."""
    if target.metric == "accuracy" and not classification:
        raise ValueError(f"the target {target} needs class labels; this is a regression (use loss or mse)")
    if target.metric == "mse" and classification:
        raise ValueError(f"the target {target} is for regression; this is a classification (use loss or accuracy)")
    if target.split == "val" and not has_val:
        raise ValueError(f"the target {target} needs a validation set: set --val-fraction (e.g. 0.1) or give one")


def next_check(t: int) -> int:
    """The step of the check after step t (>= 0): t + 1 up to 40, then t + floor(t / 20)."""
    return t + max(1, t // CHECKS_PER_STEP_COUNT)
