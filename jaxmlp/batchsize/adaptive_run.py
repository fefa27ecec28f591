"""Steps and examples to a target of an `adaptive_batch` run, measured as a batch-size study
measures a fixed batch (the target checked on the 5% schedule, target.next_check), so that its
(S, E) point can be set against the study's frontier.

    point = measure_adaptive(config, "val_accuracy=0.96", train, val, seed=0)
    point.steps, point.examples, point.schedule        # S, E, [(batch, steps), ...]
    frontier_ratio(point, result.frontier[0])         # S over the frontier's steps at the same E

The run is training.adaptive_batch's, epoch by epoch from the seed, with its segments cut at the
checks (which changes no number the training computes); it stops at the first check where the
target holds, or after config.epochs.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import NamedTuple

import jax

from jaxmlp.batchsize.frontier import Frontier
from jaxmlp.batchsize.target import Target, check_target, next_check, parse_target
from jaxmlp.config import TrainConfig
from jaxmlp.training.adaptive_batch import Checks, adaptive_epoch, batch_cap, start_batch_state
from jaxmlp.training.evaluate import Evaluator
from jaxmlp.training.feed import host_arrays
from jaxmlp.training.plan import plan_run
from jaxmlp.training.programs import run_programs
from jaxmlp.training.state import epoch_key, run_keys


class AdaptivePoint(NamedTuple):
    steps: float  # S: steps to the target (inf: not reached within config.epochs)
    examples: float  # E: examples to it
    schedule: list[tuple[int, int]]  # (batch size, steps) of each segment run, in order
    seconds: float


def measure_adaptive(config: TrainConfig, target: str | Target, train, val=None, *, seed: int) -> AdaptivePoint:
    """Train `config` (adaptive_batch on) from `seed` until `target` holds at a check."""
    target = parse_target(target) if isinstance(target, str) else target
    config = dataclasses.replace(config, seed=seed, adaptive_batch=True, patience=0, restore_best=False)
    plan = plan_run(config, train, val)
    check_target(target, classification=plan.spec.classification, has_val=val is not None)
    evaluator = Evaluator(plan)
    resident = jax.device_put(host_arrays(train, plan.config.dtype))
    split = (train, resident) if target.split == "train" else (val, None)
    eval_set = evaluator.eval_set(*split)
    init_key, train_key = run_keys(seed)
    state, bstate, cap = run_programs(plan).init(init_key), start_batch_state(plan.config), batch_cap(plan)
    done = Checks(next_check, lambda t, s: target.reached(evaluator.metrics(s.params, *eval_set)[target.metric]))
    t, schedule, start = 0, [], time.perf_counter()
    for epoch in range(plan.config.epochs):
        run = adaptive_epoch(plan, epoch_key(train_key, epoch), state, *resident, bstate, cap, check=done, step0=t)
        state, bstate = run.state, run.batch
        schedule += [(s["batch"], s["steps"]) for s in run.segments]
        if not run.stats.finite:
            break
        t = t + sum(s["steps"] for s in run.segments)
        if run.stopped_at is not None:
            return AdaptivePoint(float(t), float(sum(b * n for b, n in schedule)), schedule,
                                 time.perf_counter() - start)
    return AdaptivePoint(math.inf, math.inf, schedule, time.perf_counter() - start)


def frontier_ratio(point: AdaptivePoint, frontier: Frontier) -> float:
    """S over the frontier's steps at the same examples, S_min E / (E − E_min): at most 1 on or
    inside the frontier (0 where E <= E_min, where the frontier reaches no point)."""
    if point.examples <= frontier.e_min:
        return 0.0
    return point.steps / (frontier.s_min * point.examples / (point.examples - frontier.e_min))
