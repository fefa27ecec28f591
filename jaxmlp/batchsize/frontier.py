"""The steps–examples frontier of a batch-size study (McCandlish et al. 2018, "An Empirical Model
of Large-Batch Training"; Shallue et al. 2018, "Measuring the Effects of Data Parallelism").

Train at many batch sizes B, each with a tuned learning rate, and count the optimizer steps S
(and examples E = S·B) to reach a fixed target. The model is

    (S / S_min − 1)(E / E_min − 1) = 1,   i.e.   S = S_min (1 + B_crit / B),   E = E_min (1 + B / B_crit)

with B_crit = E_min / S_min: below B_crit doubling the batch nearly halves the steps, above it
the steps barely fall. S = S_min + E_min / B is linear in (S_min, E_min), so the fit is a
weighted least squares with regressors (1, 1/B). The optimal learning rate follows
eps_opt(B) = eps_max / (1 + B_noise / B), and 1 / eps = 1 / eps_max + (B_noise / eps_max) / B is
linear in 1/B too: both fits share `relative_fit`.

Pure numpy; step counts are in optimizer steps, examples in training examples, batch sizes in
examples per step.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

class Frontier(NamedTuple):
    """s_min: steps at an infinite batch; e_min: examples at batch → 0; b_crit = e_min / s_min (examples).

    s_min = 0 means the steps fell as 1/B over the whole range (b_crit = inf); e_min = 0 means
    they did not fall at all (b_crit = 0). See `fit_frontier`."""

    s_min: float
    e_min: float
    b_crit: float


class EpsFit(NamedTuple):
    """eps_opt(B) = eps_max / (1 + b_noise / B): eps_max the learning rate at B → inf, b_noise in examples."""

    eps_max: float
    b_noise: float


def _positive_points(batch_sizes, values, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(B, y) as float64 arrays (n,), checked: equal lengths, positive finite, >= 2 distinct B."""
    b = np.asarray(batch_sizes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if b.ndim != 1 or y.ndim != 1:
        raise ValueError(f"batch sizes and {what} must be 1-D sequences, got shapes {b.shape} and {y.shape}")
    if len(b) != len(y):
        raise ValueError(f"got {len(b)} batch sizes but {len(y)} {what}")
    if not (np.all(np.isfinite(b)) and np.all(b > 0)):
        raise ValueError(f"batch sizes must be positive finite numbers, got {b.tolist()}")
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError(f"{what} must be positive finite numbers, got {y.tolist()}")
    if len(np.unique(b)) < 2:
        raise ValueError(f"the fit needs at least 2 distinct batch sizes, got {np.unique(b).tolist()}")
    return b, y


def relative_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit y ≈ a + b·x by least squares in relative error, with a, b >= 0, for many rows at once.

    x: (k,) regressor (here 1/B); y: (k,) or (n, k) positive responses, one fit per row.
    Minimizes Σ_i ((y_i − a − b x_i) / y_i)², i.e. weights 1/y², right when the noise is
    proportional to y. Returns (a, b), each shape y.shape[:-1].

    Constraint: where the unconstrained optimum has a or b <= 0 the constrained optimum lies on
    the boundary, so that parameter is 0 and the other is refit alone; of the two one-parameter
    fits the one with the smaller residual is taken. With two parameters this is the exact
    non-negative least-squares solution (the one-parameter fits of positive data are positive).
    """
    u = 1.0 / y                      # rows scaled by 1/y: minimize Σ (1 − a u − b v)²
    v = x / y
    suu, svv, suv = (u * u).sum(-1), (v * v).sum(-1), (u * v).sum(-1)
    su, sv = u.sum(-1), v.sum(-1)
    det = suu * svv - suv * suv      # > 0 when x has two distinct values
    a = (svv * su - suv * sv) / det
    b = (suu * sv - suv * su) / det
    inside = (a > 0) & (b > 0)
    a_only, b_only = su / suu, sv / svv
    a_better = su * su / suu >= sv * sv / svv   # residual k − (Σu)²/Σu² vs k − (Σv)²/Σv²
    a = np.where(inside, a, np.where(a_better, a_only, 0.0))
    b = np.where(inside, b, np.where(a_better, 0.0, b_only))
    return a, b


def _frontier(s_min: np.ndarray, e_min: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s_min, e_min, b_crit) with b_crit = e_min / s_min, inf where s_min = 0."""
    with np.errstate(divide="ignore"):
        b_crit = np.where(s_min > 0, e_min / np.where(s_min > 0, s_min, 1.0), np.inf)
    return s_min, e_min, b_crit


def fit_frontier(batch_sizes: Sequence[float], steps: Sequence[float]) -> Frontier:
    """Fit S(B) = S_min (1 + B_crit / B) to measured points.

    batch_sizes: (n,) examples per step, at least 2 distinct; steps: (n,) steps to the target
    (medians over seeds may be fractional). The fit is linear in (S_min, E_min) with
    regressors (1, 1/B), weighted least squares in relative error (step counts are noisy in
    proportion to their size), S_min, E_min >= 0 (see `relative_fit` for the boundary cases).
    """
    b, s = _positive_points(batch_sizes, steps, "step counts")
    s_min, e_min = relative_fit(1.0 / b, s)
    return Frontier(*(float(v) for v in _frontier(s_min, e_min)))


def _reached(per_seed, what: str) -> np.ndarray:
    """The finite entries of one batch size's per-seed step counts (NaN, inf, None: not reached)."""
    arr = np.asarray([np.nan if v is None else v for v in np.ravel(np.asarray(per_seed, dtype=object))],
                     dtype=np.float64)
    if np.any(arr[np.isfinite(arr)] <= 0):
        raise ValueError(f"{what} must be positive, got {arr.tolist()}")
    return arr[np.isfinite(arr)]


def bootstrap_frontier(batch_sizes: Sequence[float], steps_per_seed: Sequence[Sequence[float]], *, seed: int,
                       n_boot: int = 1000, level: float = 0.9) -> tuple[Frontier, Frontier, Frontier]:
    """The frontier of the per-batch-size medians over seeds, and a bootstrap percentile interval.

    batch_sizes: (n,); steps_per_seed: n sequences over seeds (lengths may differ) of steps to
    the target, NaN / inf / None for a seed that never reached it. Those seeds are skipped, and
    a batch size where no seed reached the target is dropped. Each of n_boot resamples draws
    the seeds of every batch size with replacement and refits on the medians.

    Returns (estimate, lower, upper): the fit on the medians of the data, and the
    (1 − level)/2 and (1 + level)/2 percentiles of s_min, e_min and b_crit, each taken on its
    own (so lower.b_crit is the b_crit percentile, not lower.e_min / lower.s_min). The
    percentiles are order statistics of the resamples (numpy's "inverted_cdf"), so an
    infinite b_crit (see `relative_fit`) does not turn them into NaN.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if len(batch_sizes) != len(steps_per_seed):
        raise ValueError(f"got {len(batch_sizes)} batch sizes but {len(steps_per_seed)} step lists")
    reached = [_reached(s, "step counts") for s in steps_per_seed]
    kept = [i for i, r in enumerate(reached) if len(r)]
    b = [batch_sizes[i] for i in kept]
    estimate = fit_frontier(b, [np.median(reached[i]) for i in kept])   # validates what is left
    rng = np.random.default_rng(seed)
    medians = np.stack([np.median(reached[i][rng.integers(0, len(reached[i]), (n_boot, len(reached[i])))], axis=1)
                        for i in kept], axis=1)                           # (n_boot, kept)
    fits = np.stack(_frontier(*relative_fit(1.0 / np.asarray(b, np.float64), medians)))  # (3, n_boot)
    q = np.quantile(fits, [(1 - level) / 2, (1 + level) / 2], axis=1, method="inverted_cdf")  # (2, 3)
    return estimate, Frontier(*map(float, q[0])), Frontier(*map(float, q[1]))


def fit_eps_opt(batch_sizes: Sequence[float], best_lrs: Sequence[float]) -> EpsFit:
    """Fit eps_opt(B) = eps_max / (1 + B_noise / B) to the tuned learning rate of each batch size.

    batch_sizes: (n,) examples per step, at least 2 distinct; best_lrs: (n,) positive. 1/eps =
    1/eps_max + (B_noise/eps_max)(1/B) is linear in 1/B; the fit is least squares in the
    relative error of 1/eps (to first order the relative error of eps itself, so a grid's
    multiplicative spacing weighs alike at every batch size), coefficients >= 0. Boundary
    cases (see `relative_fit`): 1/eps_max = 0 means eps grew ∝ B over the whole range
    (eps_max = b_noise = inf); B_noise/eps_max = 0 means eps did not change (b_noise = 0).
    """
    b, eps = _positive_points(batch_sizes, best_lrs, "learning rates")
    c, d = relative_fit(1.0 / b, 1.0 / eps)
    if c <= 0:
        return EpsFit(math.inf, math.inf)
    return EpsFit(float(1.0 / c), float(d / c))
