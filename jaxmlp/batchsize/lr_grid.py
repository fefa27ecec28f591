"""The learning-rate grid of a batch-size study: where to centre it for a new batch size, the
best value on it, and how to extend it when the best falls on an edge.

Each batch size gets its own tuned learning rate (Shallue et al. 2018): a log-spaced grid
around the rate scaled from a reference batch size, the value with the fewest steps to the
target taken as best. A best value on an edge of the grid means the optimum may lie beyond
it, so `widen` gives the next points past that edge, with the grid's own ratio, and only
those need training. Pure numpy; learning rates are plain floats, batch sizes in examples.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

RULES = ("linear", "sqrt", "none")


class BestLR(NamedTuple):
    """lr: the grid value with the fewest steps to the target; at_edge: it is the grid's smallest or largest."""

    lr: float
    at_edge: bool


def scaled_center(base_lr: float, base_batch: float, batch: float, rule: str) -> float:
    """The learning rate for `batch` scaled from `base_lr`, tuned at `base_batch`.

    rule: "linear" multiplies by batch / base_batch (Goyal et al. 2017, for SGD with momentum
    below the critical batch size); "sqrt" by sqrt(batch / base_batch) (the usual rule for
    adaptive optimizers such as Adam, Hoffer et al. 2017; Malladi et al. 2022); "none" keeps
    base_lr.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")
    for name, v in (("base_lr", base_lr), ("base_batch", base_batch), ("batch", batch)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v}")
    ratio = batch / base_batch
    return base_lr * {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[rule]


def lr_grid(center: float, *, points: int = 6, span: float = 4.0) -> np.ndarray:
    """`points` learning rates, log-spaced and centred on `center`: shape (points,), ascending.

    The grid runs from center / sqrt(span) to center · sqrt(span) (so span = largest / smallest)
    with the constant ratio span^(1 / (points − 1)) between neighbours; its geometric mean is
    `center`, which is itself a grid value when `points` is odd. The defaults (6 points over a
    factor 4) step by 4^(1/5) ≈ 1.32.
    """
    if not (math.isfinite(center) and center > 0):
        raise ValueError(f"center must be a positive finite number, got {center}")
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    if not (math.isfinite(span) and span > 1):
        raise ValueError(f"span must be a finite number > 1, got {span}")
    return center * span ** np.linspace(-0.5, 0.5, points)


def grid_ratio(grid: Sequence[float]) -> float:
    """The constant ratio between neighbours of a log-spaced grid (any order), checked to 1e-6."""
    g = np.sort(np.asarray(grid, dtype=np.float64))
    if g.ndim != 1 or len(g) < 2 or not (np.all(np.isfinite(g)) and g[0] > 0):
        raise ValueError(f"a grid needs at least 2 positive finite values, got {np.asarray(grid).tolist()}")
    ratios = g[1:] / g[:-1]
    if not (ratios[0] > 1 and np.allclose(ratios, ratios[0], rtol=1e-6, atol=0)):
        raise ValueError(f"the grid is not log-spaced (neighbour ratios {ratios.tolist()})")
    return float(ratios[0])


def best_lr(grid: Sequence[float], steps: Sequence[float | None]) -> BestLR:
    """The grid value that reached the target in the fewest steps, and whether it is on an edge.

    grid: (n,) learning rates, any order; steps: (n,) steps to the target for each, None, NaN
    or inf where it never reached it. Ties go to the smaller learning rate (the safer one).
    at_edge is True when the best is the grid's smallest or largest value; which edge is
    `best.lr == min(grid)`, the argument `widen` takes. Raises ValueError when no value
    reached the target: there is no best to widen around.
    """
    g = np.asarray(grid, dtype=np.float64)
    s = np.asarray([np.nan if v is None else v for v in steps], dtype=np.float64)
    if g.ndim != 1 or len(g) == 0 or len(g) != len(s):
        raise ValueError(f"grid and steps must be 1-D of equal, non-zero length, got {len(g)} and {len(s)}")
    if not (np.all(np.isfinite(g)) and np.all(g > 0)):
        raise ValueError(f"learning rates must be positive finite numbers, got {g.tolist()}")
    reached = np.isfinite(s)
    if not reached.any():
        raise ValueError("no learning rate in the grid reached the target")
    order = np.lexsort((g, np.where(reached, s, np.inf)))   # fewest steps first, then smaller lr
    lr = float(g[order[0]])
    return BestLR(lr, bool(lr == g.min() or lr == g.max()))


def widen(grid: Sequence[float], at_low_edge: bool, *, factor: float = 4.0) -> np.ndarray:
    """The new learning rates past one edge of a log-spaced grid, continuing its ratio r.

    grid: (n >= 2,) log-spaced (any order); at_low_edge: extend below the smallest value, else
    above the largest. The new points are edge · r^±k for k = 1, 2, ... as far as `factor` past
    the edge (floor(log factor / log r) points, at least 1); the defaults add one default
    grid's span (factor 4). Returns only the new points, ascending, shape (m,), so the caller
    trains just those; grid ∪ new is again log-spaced with ratio r.
    """
    if not (math.isfinite(factor) and factor > 1):
        raise ValueError(f"factor must be a finite number > 1, got {factor}")
    r = grid_ratio(grid)
    count = max(1, math.floor(math.log(factor) / math.log(r) + 1e-9))
    k = np.arange(1, count + 1)
    if at_low_edge:
        return np.min(grid) * r ** -k[::-1]
    return np.max(grid) * r ** k


def lr_steps(steps: np.ndarray) -> np.ndarray:
    """(L,) each learning rate's steps to the target: the median over its seeds of steps
    (L, K), inf for a seed that never reached it (so one unreached seed of two makes it inf)."""
    return np.median(np.where(np.isnan(steps), np.inf, steps), axis=1)


def race_decided(steps: np.ndarray, at: int, incumbent: float = math.inf) -> bool:
    """Whether a race of L learning rates × K seeds can stop at step `at`: the best learning
    rate is known, since no rate still running can beat it.

    steps: (L, K) steps to the target, NaN for a seed still running, inf for one that ended
    without it (diverged, or out of budget); incumbent: the best median of an earlier race
    (a widened grid's). A running seed will take more than `at` steps, so a rate's median is
    at least the median with `at` in place of its running seeds (the median grows with each
    entry). The race is decided when a finished rate's median, or the incumbent, is at most
    every running rate's bound; with nothing finished, never.
    """
    running = np.isnan(steps).any(axis=1)  # (L,)
    best = min([incumbent, *lr_steps(steps[~running])])
    return bool(np.isfinite(best) and np.all(np.median(np.where(np.isnan(steps[running]), at, steps[running]),
                                                       axis=1) >= best))
