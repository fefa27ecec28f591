"""The arithmetic of a batch-size study (jaxmlp.batchsize): the frontier S(B) = S_min (1 + B_crit / B)
and eps_opt(B) = eps_max / (1 + B_noise / B) are recovered from noisy synthetic measurements, the
bootstrap interval covers the truth and narrows with more seeds, steps to a target are counted from
a curve, and the learning-rate grid finds its best value and widens past an edge.

Synthetic truth: S_min = 1000 steps, E_min = 64000 examples (B_crit = 64), batch sizes 8 ... 4096.
"""
import math

import numpy as np
import pytest

from jaxmlp.batchsize import (Frontier, best_lr, bootstrap_frontier, fit_eps_opt, fit_frontier, grid_ratio, lr_grid,
                                lr_steps, race_decided, scaled_center, widen)
from jaxmlp.batchsize.target import Target, check_target, next_check, parse_target

S_MIN, E_MIN = 1000.0, 64000.0
TRUTH = Frontier(S_MIN, E_MIN, E_MIN / S_MIN)
BATCHES = 2.0 ** np.arange(3, 13)  # 8 ... 4096
STEPS = S_MIN * (1 + TRUTH.b_crit / BATCHES)


def noisy_steps(seed: int, seeds_per_batch: int, sigma: float = 0.05) -> np.ndarray:
    """(batch sizes, seeds) step counts with multiplicative lognormal noise of log-std sigma."""
    rng = np.random.default_rng(seed)
    return STEPS[:, None] * np.exp(sigma * rng.standard_normal((len(BATCHES), seeds_per_batch)))


# ---------------------------------------------------------------- fit_frontier

def test_fit_frontier_is_exact_without_noise():
    got = fit_frontier(BATCHES, STEPS)
    np.testing.assert_allclose(got, TRUTH, rtol=1e-10)
    assert got.b_crit == got.e_min / got.s_min


@pytest.mark.parametrize("seed", range(8))
def test_fit_frontier_recovers_s_min_and_e_min_within_5_percent(seed):
    # 5% lognormal noise per run, the median of 9 seeds per batch size (as a study measures S);
    # over 2000 noise seeds the largest error of either was under 4%
    got = fit_frontier(BATCHES, np.median(noisy_steps(seed, 9), axis=1))
    assert abs(got.s_min / S_MIN - 1) < 0.05
    assert abs(got.e_min / E_MIN - 1) < 0.05
    assert abs(got.b_crit / TRUTH.b_crit - 1) < 0.08


def test_fit_frontier_one_run_per_batch_size_is_unbiased_and_beats_an_unweighted_fit():
    # one 5%-noisy run per batch size: single fits miss E_min by > 5% about one time in six, so
    # judge the estimator over many noise seeds instead
    fits, unweighted = [], []
    design = np.stack([np.ones_like(BATCHES), 1 / BATCHES], axis=1)
    for seed in range(300):
        steps = noisy_steps(seed, 1)[:, 0]
        fits.append(fit_frontier(BATCHES, steps)[:2])
        unweighted.append(np.linalg.lstsq(design, steps, rcond=None)[0])
    err = np.asarray(fits) / [S_MIN, E_MIN] - 1
    assert np.all(np.abs(err.mean(axis=0)) < 0.01)            # no bias
    assert np.all(np.median(np.abs(err), axis=0) < 0.05)      # typical error within 5%
    err_unweighted = np.asarray(unweighted) / [S_MIN, E_MIN] - 1
    # plain least squares is ruled by the large step counts of small batches: S_min suffers
    assert np.sqrt(np.mean(err[:, 0] ** 2)) < 0.7 * np.sqrt(np.mean(err_unweighted[:, 0] ** 2))


def test_fit_frontier_boundaries_when_steps_do_not_fall_or_fall_as_one_over_b():
    rising = fit_frontier(BATCHES, 1000 + 0.1 * BATCHES)      # unconstrained E_min < 0
    assert rising.e_min == 0 and rising.b_crit == 0 and 1000 < rising.s_min < 1000 + 0.1 * 4096
    perfect = fit_frontier(BATCHES, E_MIN / BATCHES * (BATCHES / 8) ** -0.1)  # faster than 1/B: S_min < 0
    assert perfect.s_min == 0 and perfect.b_crit == math.inf and perfect.e_min > 0


@pytest.mark.parametrize("batches, steps, message", [
    ([], [], "at least 2 distinct batch sizes"),
    ([64], [100.0], "at least 2 distinct batch sizes"),
    ([64, 64], [100.0, 110.0], "at least 2 distinct batch sizes"),
    ([8, 16], [100.0], "got 2 batch sizes but 1 step counts"),
    ([0, 16], [100.0, 50.0], "batch sizes must be positive finite"),
    ([8, 16], [100.0, -5.0], "step counts must be positive finite"),
    ([8, 16], [100.0, math.nan], "step counts must be positive finite"),
])
def test_fit_frontier_bad_input_is_a_one_line_value_error(batches, steps, message):
    with pytest.raises(ValueError, match=message) as info:
        fit_frontier(batches, steps)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- bootstrap_frontier

def test_bootstrap_interval_contains_the_truth_and_brackets_the_estimate():
    # a 90% interval misses one data set in ten (this one's b_crit by 0.04%): the test below checks
    # the 90% coverage over many data sets; here a 99% interval for one
    est, lo, hi = bootstrap_frontier(BATCHES, list(noisy_steps(0, 8, sigma=0.1)), seed=1, level=0.99)
    for name in Frontier._fields:
        assert getattr(lo, name) <= getattr(TRUTH, name) <= getattr(hi, name), name
        assert getattr(lo, name) <= getattr(est, name) <= getattr(hi, name), name
    assert est == fit_frontier(BATCHES, np.median(noisy_steps(0, 8, sigma=0.1), axis=1))
    assert bootstrap_frontier(BATCHES, list(noisy_steps(0, 8, sigma=0.1)), seed=1, level=0.99) == (est, lo, hi)
    _, lo90, hi90 = bootstrap_frontier(BATCHES, list(noisy_steps(0, 8, sigma=0.1)), seed=1)
    assert all(l99 < l90 and h90 < h99 for l99, l90, h90, h99 in zip(lo, lo90, hi90, hi))


def test_bootstrap_90_percent_interval_covers_the_truth_about_90_percent_of_the_time():
    covered = np.zeros(3)
    for data_seed in range(40):
        _, lo, hi = bootstrap_frontier(BATCHES, list(noisy_steps(100 + data_seed, 8, 0.1)), seed=data_seed,
                                       n_boot=400)
        covered += [lo_v <= t <= hi_v for lo_v, t, hi_v in zip(lo, TRUTH, hi)]
    assert np.all(covered >= 30), covered                    # expect 36 of 40; 30 is 3 sd below


def test_bootstrap_interval_is_narrower_with_more_seeds():
    data = noisy_steps(7, 32, sigma=0.1)
    _, lo4, hi4 = bootstrap_frontier(BATCHES, list(data[:, :4]), seed=0)
    _, lo32, hi32 = bootstrap_frontier(BATCHES, list(data), seed=0)
    for name in Frontier._fields:
        width4 = math.log(getattr(hi4, name) / getattr(lo4, name))
        width32 = math.log(getattr(hi32, name) / getattr(lo32, name))
        assert width32 < 0.7 * width4, name


def test_bootstrap_skips_missing_seeds_and_drops_batch_sizes_no_seed_reached():
    data = [list(row) for row in noisy_steps(3, 6, sigma=0.1)]
    data[2][1] = math.nan          # a seed that did not reach the target
    data[4][0] = None
    data[5][3] = math.inf
    clean = [[v for v in row if v is not None and math.isfinite(v)] for row in data]
    assert [len(row) for row in clean] == [6, 6, 5, 6, 5, 5, 6, 6, 6, 6]
    with_missing = bootstrap_frontier(BATCHES, data, seed=5, n_boot=300)
    assert with_missing == bootstrap_frontier(BATCHES, clean, seed=5, n_boot=300)
    assert with_missing[0] == fit_frontier(BATCHES, [np.median(row) for row in clean])
    # a batch size where no seed reached the target is dropped, exactly as if never measured
    unreached = data[:-1] + [[math.nan] * 6]
    assert bootstrap_frontier(BATCHES, unreached, seed=5, n_boot=300) == \
        bootstrap_frontier(BATCHES[:-1], clean[:-1], seed=5, n_boot=300)
    with pytest.raises(ValueError, match="at least 2 distinct batch sizes"):
        bootstrap_frontier(BATCHES[:2], [[100.0], [math.nan, None]], seed=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"level": 1.0}, "level must be in"),
    ({"n_boot": 0}, "n_boot must be at least 1"),
])
def test_bootstrap_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_frontier(BATCHES, list(noisy_steps(0, 3)), seed=0, **kwargs)


def test_bootstrap_rejects_mismatched_lengths_and_negative_steps():
    with pytest.raises(ValueError, match="got 10 batch sizes but 9 step lists"):
        bootstrap_frontier(BATCHES, list(noisy_steps(0, 3))[:-1], seed=0)
    with pytest.raises(ValueError, match="step counts must be positive"):
        bootstrap_frontier([8, 16], [[100.0, -1.0], [60.0]], seed=0)


# ---------------------------------------------------------------- fit_eps_opt

EPS_MAX, B_NOISE = 0.1, 128.0
EPS_BATCHES = np.round(2.0 ** np.arange(6, 24.5) / 2)   # 8, 11, 16, 23, ... 4096: every half power of two


def test_fit_eps_opt_is_exact_without_noise():
    got = fit_eps_opt(EPS_BATCHES, EPS_MAX / (1 + B_NOISE / EPS_BATCHES))
    np.testing.assert_allclose(got, (EPS_MAX, B_NOISE), rtol=1e-10)


@pytest.mark.parametrize("seed", range(8))
def test_fit_eps_opt_recovers_eps_max_and_b_noise_within_5_percent(seed):
    # 2% lognormal noise on each tuned rate; over 2000 noise seeds the largest error was under 4%
    rng = np.random.default_rng(seed)
    lrs = EPS_MAX / (1 + B_NOISE / EPS_BATCHES) * np.exp(0.02 * rng.standard_normal(len(EPS_BATCHES)))
    got = fit_eps_opt(EPS_BATCHES, lrs)
    assert abs(got.eps_max / EPS_MAX - 1) < 0.05
    assert abs(got.b_noise / B_NOISE - 1) < 0.05


def test_fit_eps_opt_boundaries_and_bad_input():
    flat = fit_eps_opt([8, 64, 512], [0.01, 0.01, 0.01])
    assert flat.b_noise == pytest.approx(0, abs=1e-12) and flat.eps_max == pytest.approx(0.01)
    linear = fit_eps_opt([8, 64, 512], [0.001, 0.008 * 1.5, 0.064 * 3])  # faster than linear scaling
    assert linear.eps_max == math.inf and linear.b_noise == math.inf
    with pytest.raises(ValueError, match="learning rates must be positive finite"):
        fit_eps_opt([8, 64], [0.01, 0.0])
    with pytest.raises(ValueError, match="at least 2 distinct batch sizes"):
        fit_eps_opt([64], [0.01])


# ---------------------------------------------------------------- the target and its checks

def test_checks_resolve_steps_within_5_percent_at_every_count():
    checks, t = [], 0
    while t < 100_000:
        t = next_check(t)
        checks.append(t)
    assert checks[:40] == list(range(1, 41))                      # every step up to 40: exact
    for first in range(1, 100_000, 7):                            # the target first holds at step `first`
        s = next(c for c in checks if c >= first)                 # the step the race reports
        assert s - first < max(1, 0.05 * s) and s >= first
    assert len(checks) < 40 + 21 * math.log(100_000 / 40) + 5     # about 40 + 21 ln(S / 40) checks


@pytest.mark.parametrize("text, want", [("val_accuracy=0.975", Target("val", "accuracy", 0.975)),
                                        ("train_loss=0.05", Target("train", "loss", 0.05)),
                                        ("val_mse = 1e-2", Target("val", "mse", 0.01))])
def test_parse_target(text, want):
    assert parse_target(text) == want
    assert want.reached(want.value) and not want.reached(math.nan)
    assert want.reached(want.value + 0.01) == want.higher_is_better


@pytest.mark.parametrize("text, message", [
    ("val_accuracy=1.5", "unreachable"), ("val_accuracy=0", "unreachable"), ("train_loss=-1", "unreachable"),
    ("val_acc=0.9", "SPLIT_METRIC=VALUE"), ("test_loss=0.1", "SPLIT_METRIC=VALUE"), ("val_loss", "SPLIT_METRIC"),
    ("val_loss=abc", "must be a number"), ("val_loss=nan", "finite")])
def test_parse_target_bad_input(text, message):
    with pytest.raises(ValueError, match=message):
        parse_target(text)


def test_check_target_against_the_data():
    check_target(Target("val", "accuracy", 0.9), classification=True, has_val=True)
    with pytest.raises(ValueError, match="needs a validation set"):
        check_target(Target("val", "loss", 0.1), classification=True, has_val=False)
    with pytest.raises(ValueError, match="regression"):
        check_target(Target("train", "accuracy", 0.9), classification=False, has_val=False)
    with pytest.raises(ValueError, match="for regression"):
        check_target(Target("train", "mse", 0.1), classification=True, has_val=False)


def test_scaled_center_rules():
    assert scaled_center(0.1, 256, 1024, "linear") == pytest.approx(0.4)
    assert scaled_center(0.1, 256, 1024, "sqrt") == pytest.approx(0.2)
    assert scaled_center(0.1, 256, 1024, "none") == 0.1
    assert scaled_center(0.1, 256, 64, "linear") == pytest.approx(0.025)
    with pytest.raises(ValueError, match="rule must be one of linear, sqrt, none"):
        scaled_center(0.1, 256, 1024, "cubic")
    with pytest.raises(ValueError, match="base_batch must be a positive finite"):
        scaled_center(0.1, 0, 1024, "linear")


def test_lr_grid_is_log_spaced_and_centred():
    grid = lr_grid(1e-3)
    assert grid.shape == (6,) and np.all(np.diff(grid) > 0)
    assert math.exp(np.mean(np.log(grid))) == pytest.approx(1e-3)
    assert grid[-1] / grid[0] == pytest.approx(4.0)
    assert grid_ratio(grid) == pytest.approx(4 ** 0.2)
    odd = lr_grid(0.3, points=5, span=16)
    np.testing.assert_allclose(odd, [0.075, 0.15, 0.3, 0.6, 1.2])
    with pytest.raises(ValueError, match="points must be at least 2"):
        lr_grid(1e-3, points=1)
    with pytest.raises(ValueError, match="span must be a finite number > 1"):
        lr_grid(1e-3, span=1.0)
    with pytest.raises(ValueError, match="center must be a positive finite"):
        lr_grid(-1e-3)


def test_best_lr_interior_edges_ties_and_unreached():
    grid = lr_grid(0.1, points=5, span=16)                      # 0.025 ... 0.4, ratio 2
    assert best_lr(grid, [900, 500, 300, 400, None]) == (0.1, False)
    assert best_lr(grid, [900, 500, 300, 300, math.nan]) == (0.1, False)   # tie -> the smaller lr
    assert best_lr(grid, [200, 500, 300, 300, None]) == (0.025, True)
    assert best_lr(grid, [None, math.nan, 300, math.inf, 250]) == (0.4, True)
    assert best_lr(grid[::-1], [250, math.inf, 300, None, None]) == (0.4, True)  # any order
    with pytest.raises(ValueError, match="no learning rate in the grid reached the target"):
        best_lr(grid, [None, math.nan, math.inf, None, None])
    with pytest.raises(ValueError, match="equal, non-zero length"):
        best_lr(grid, [1, 2])


@pytest.mark.parametrize("at_low_edge", [True, False])
def test_a_best_on_an_edge_widens_the_grid_past_that_edge(at_low_edge):
    grid = lr_grid(0.01)                                        # ratio 4^(1/5)
    steps = np.arange(6.0) + 100 if at_low_edge else 100 - np.arange(6.0)
    best = best_lr(grid, steps)
    assert best.at_edge and (best.lr == grid.min()) == at_low_edge
    new = widen(grid, best.lr == grid.min())
    r = grid_ratio(grid)
    assert len(new) == 5                                        # floor(log 4 / log 4^(1/5)) points
    if at_low_edge:
        assert np.all(new < grid.min())
        np.testing.assert_allclose(new[-1], grid.min() / r)
    else:
        assert np.all(new > grid.max())
        np.testing.assert_allclose(new[0], grid.max() * r)
    merged = np.concatenate([grid, new])
    assert grid_ratio(merged) == pytest.approx(r)               # still one log-spaced grid
    assert len(widen(grid, at_low_edge, factor=1.1)) == 1       # at least one point


def test_widen_rejects_grids_it_cannot_continue():
    with pytest.raises(ValueError, match="not log-spaced"):
        widen([0.1, 0.2, 0.5], True)
    with pytest.raises(ValueError, match="at least 2 positive finite values"):
        widen([0.1], False)
    with pytest.raises(ValueError, match="factor must be a finite number > 1"):
        widen([0.1, 0.2], False, factor=1.0)


def test_a_race_is_decided_once_no_running_rate_can_beat_the_best_finished_one():
    nan, inf = math.nan, math.inf
    steps = np.array([[100.0, 120.0],      # finished: median 110
                      [nan, 90.0],         # one seed running: median >= (at + 90) / 2
                      [nan, nan]])         # both running: median >= at
    assert not race_decided(steps, at=100)     # (100 + 90) / 2 = 95 < 110: it might still win
    assert not race_decided(steps, at=129)     # 109.5 < 110
    assert race_decided(steps, at=130)         # 110 >= 110: the finished rate wins (or ties)
    assert not race_decided(np.full((2, 2), nan), at=10 ** 6)              # nothing finished: never
    assert race_decided(np.array([[nan, nan]]), at=50, incumbent=50.0)      # a widened grid behind the incumbent
    assert not race_decided(np.array([[inf, 80.0], [nan, nan]]), at=10 ** 6)  # half reached is no finish (inf)
    assert race_decided(np.array([[inf, inf], [80.0, 90.0]]), at=0)


def test_lr_steps_is_the_median_over_seeds_with_unreached_as_inf():
    assert lr_steps(np.array([[100.0, 120.0], [math.inf, 80.0], [50.0, 60.0]])).tolist() == [110.0, math.inf, 55.0]
