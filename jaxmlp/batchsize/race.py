"""One race: a learning-rate × seed grid at one batch size, trained in lockstep until every rate
that could still be the best has reached the target, or the step budget is spent.

    result = run_race(plan, programs, lrs=[...], seeds=[0, 1], target=target, data=data,
                      budget=steps, size=P)
    result.steps          # (L, K) steps to the target, inf where a seed never reached it

The host drives the stretches between checks; each stretch and each check is one call of a
compiled program (programs.py). The target is checked on the 5% schedule (target.next_check:
every step up to 40, then every floor(t / 20) steps), so S, the first check at which it holds,
is resolved within 5% at every batch size, inside epochs. Checks are of the active models only.

A seed that reached the target, or diverged, stops; the race stops when lr_grid.race_decided
says no running rate can beat the best finished one (or the `incumbent` of an earlier race).
Each seed's params at its S are kept, for the noise scale at the target.
"""
from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxmlp.batchsize.lr_grid import race_decided
from jaxmlp.batchsize.programs import RacePrograms
from jaxmlp.batchsize.target import Target, next_check
from jaxmlp.training.evaluate import EvalSet
from jaxmlp.training.plan import Plan
from jaxmlp.training.state import run_keys


class RaceData(NamedTuple):
    """The race's data on the device: the training set (x (N, D), y (N, ...)) and the EvalSet of
    the target's split with its row count."""

    x: Any
    y: Any
    eval_set: EvalSet
    n_eval: int


class RaceResult(NamedTuple):
    steps: np.ndarray  # (L, K) float: steps to the target; inf: never reached (diverged, out of budget, stopped)
    steps_run: int  # steps the race ran
    reach_params: Any  # params (P, ...) on the device: each seed's at its S (else at its last step)
    seconds: float  # wall time of the race, compile excluded
    compile_seconds: float
    checks: int  # evaluations of the split
    model_steps: int  # steps trained, summed over the models
    model_checks: int  # evaluations of one model's params, summed over the checks


class Racer:
    """The race's models and their programs: advances a state between two steps, and scores it."""

    def __init__(self, plan: Plan, programs: RacePrograms, lrs, seeds, size: int, target: Target, data: RaceData):
        real = len(lrs) * len(seeds)
        model_lr = [lrs[m // len(seeds)] for m in range(real)] + [lrs[-1]] * (size - real)  # padding: never active
        keys = [run_keys(seeds[m % len(seeds)]) for m in range(real)] + [run_keys(seeds[-1])] * (size - real)
        self.init_keys, self.train_keys = (np.stack([np.asarray(jax.random.key_data(k[i])) for k in keys])
                                           for i in (0, 1))
        self.lr = np.asarray(model_lr, plan.config.dtype)  # (P,)
        self.programs, self.target, self.data = programs, target, data
        self.per_epoch = plan.spec.steps_per_epoch
        self.order, self.advance, self.compile_seconds = (-1, None), None, 0.0
        self.checks = self.model_steps = self.model_checks = 0

    def run(self, state, t: int, stop: int, active: np.ndarray):
        """(state at step `stop`, ok (P,)): steps t .. stop - 1 of the active models, across epochs."""
        ok = np.ones(len(active), bool)
        while t < stop:
            epoch = t // self.per_epoch
            if self.order[0] != epoch:
                self.order = (epoch, self.programs.order(self.train_keys, np.int32(epoch)))
            end = min(stop, (epoch + 1) * self.per_epoch)
            args = (self.lr, state, *self.order[1], np.int32(t - epoch * self.per_epoch),
                    np.int32(end - epoch * self.per_epoch), active & ok, self.data.x, self.data.y)
            if self.advance is None:  # compiled ahead of time, to count the compile apart
                c0 = time.perf_counter()
                self.advance = self.programs.advance.lower(*args).compile()
                self.compile_seconds = time.perf_counter() - c0
            state, step_ok = self.advance(*args)
            self.model_steps += int((active & ok).sum()) * (end - t)
            ok &= np.asarray(step_ok)
            t = end
        return state, ok

    def hits(self, params, active: np.ndarray) -> np.ndarray:
        """(P,) bool: the active models whose params meet the target."""
        loss_sums, metric_sums = self.programs.score(params, active, self.data.eval_set)
        self.checks += 1
        self.model_checks += int(active.sum())
        values = np.asarray(loss_sums if self.target.metric == "loss" else metric_sums) / self.data.n_eval
        return active & np.array([self.target.reached(v) for v in values])


def run_race(plan: Plan, programs: RacePrograms, lrs, seeds, *, target: Target, data: RaceData, budget: int,
             size: int, incumbent: float = np.inf) -> RaceResult:
    """Race learning rates `lrs` (L,) × `seeds` (K,) at the plan's batch size, as one program of
    `size` >= L·K models (the rest pad it and never train); `budget`: the most steps."""
    real = len(lrs) * len(seeds)
    racer = Racer(plan, programs, lrs, seeds, size, target, data)
    state = programs.init(racer.init_keys)
    active = np.arange(size) < real  # (P,)
    steps, diverged = np.full(size, np.nan), np.zeros(size, bool)
    t, reach, start = 0, None, time.perf_counter()
    while active.any() and t < budget and not race_decided(_table(steps, diverged, active, real, len(seeds)), t,
                                                           incumbent):
        stop = min(next_check(t), budget)
        state, ok = racer.run(state, t, stop, active)
        diverged |= active & ~ok
        active &= ok
        t = stop
        hit = racer.hits(state.params, active)
        if hit.any():
            steps[hit] = t
            reach = programs.keep(hit, state.params, state.params if reach is None else reach)
            active &= ~hit
    reach = state.params if reach is None else programs.keep(np.isnan(steps), state.params, reach)
    seconds = time.perf_counter() - start - racer.compile_seconds
    return RaceResult(_table(steps, diverged, np.zeros(size, bool), real, len(seeds)), t, reach, seconds,
                      racer.compile_seconds, racer.checks, racer.model_steps, racer.model_checks)


def _table(steps: np.ndarray, diverged: np.ndarray, running: np.ndarray, real: int, n_seed: int) -> np.ndarray:
    """(L, K) steps of the real models: NaN while running, inf when ended without the target."""
    ended = np.where(np.isnan(steps) & (diverged | ~running), np.inf, steps)
    return ended[:real].reshape(-1, n_seed)
