"""`batch_study(config, batch_sizes, target, train, val)`: the critical batch size, measured
(McCandlish et al. 2018; Shallue et al. 2018).

    result = jaxmlp.batch_study(TrainConfig(hidden=(128,), optimizer="momentum", learning_rate=0.05, epochs=40),
                                [64, 128, 256, 512], "val_accuracy=0.97", splits.train, splits.val)
    result.rows[0].best_lr, result.frontier.b_crit, print(result.table())

For each batch size, smallest first, a learning-rate grid (log-spaced, centred on the previous
batch size's best rate scaled by `rule`) races every rate × seed as one program until the best
rate is known (race.py); a best rate on the grid's edge widens the grid past that edge, up to
`max_widen` times. The best rate's steps to the target, per seed, are the batch size's point;
its params at the target give B_simple there (noise_scale.dataset_estimate over the training
set). The points fit S = S_min (1 + B_crit / B) with a bootstrap interval over the seeds, and
the best rates fit eps_opt(B) = eps_max / (1 + B_noise / B) (frontier.py).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np

from jaxmlp.batchsize.lr_grid import RULES, best_lr, lr_grid, lr_steps, scaled_center, widen
from jaxmlp.batchsize.programs import race_programs
from jaxmlp.batchsize.race import RaceData, RaceResult, run_race
from jaxmlp.batchsize.result import BatchRow, StudyResult, summarize
from jaxmlp.batchsize.target import Target, check_target, parse_target
from jaxmlp.config import TrainConfig
from jaxmlp.noise_scale import dataset_estimate
from jaxmlp.sweeps.plan import models_per_program_of, resolve_width
from jaxmlp.training.evaluate import eval_batch_rows, make_eval_set
from jaxmlp.training.feed import host_arrays
from jaxmlp.training.memory import device_memory_limit
from jaxmlp.training.plan import Plan, plan_run

LINEAR_RULE_OPTIMIZERS = ("sgd", "momentum", "nesterov", "lars")  # the rest adapt per coordinate: sqrt


class StudySettings(NamedTuple):
    """How a study runs (study.json keeps them, so that a resume repeats them)."""

    batch_sizes: tuple[int, ...]  # ascending powers of two
    target: Target
    seeds: tuple[int, ...]
    lr_points: int  # rates per grid
    lr_span: float  # largest / smallest rate of a grid
    rule: str  # linear | sqrt | none: how a grid's centre follows the batch size
    max_widen: int  # widenings of one batch size's grid at most
    lr: float  # the first grid's centre is this rate, tuned at `lr_batch`, scaled by `rule`
    lr_batch: int


def study_settings(config: TrainConfig, batch_sizes: Sequence[int], target: str | Target, *, n_train: int,
                   seeds: Sequence[int] = (0, 1), lr_points: int = 6, lr_span: float = 4.0, rule: str | None = None,
                   max_widen: int = 2) -> StudySettings:
    """The checked settings; ValueError naming the first that is wrong."""
    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes:
        raise ValueError("the batch-size range is empty: give at least 2 batch sizes (e.g. 32:4096)")
    if odd := [b for b in sizes if b < 1 or b & (b - 1)]:
        raise ValueError(f"batch sizes must be powers of two, got {odd[0]}")
    if len(set(sizes)) < 2:
        raise ValueError(f"a study needs at least 2 distinct batch sizes, got {list(sizes)}")
    if max(sizes) > n_train:
        raise ValueError(f"batch size {max(sizes)} is larger than the training set ({n_train} examples)")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    if lr_points < 2 or not lr_span > 1 or max_widen < 0:
        raise ValueError(f"lr_points must be >= 2, lr_span > 1 and max_widen >= 0; got {lr_points}, {lr_span}, "
                         f"{max_widen}")
    rule = rule or ("linear" if config.optimizer in LINEAR_RULE_OPTIMIZERS else "sqrt")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")
    target = parse_target(target) if isinstance(target, str) else target
    lr_batch = config.base_batch_size if config.lr_scaling != "none" else config.batch_size
    return StudySettings(tuple(sorted(sizes)), target, tuple(int(s) for s in seeds), int(lr_points), float(lr_span),
                         rule, int(max_widen), float(config.learning_rate), int(lr_batch))


def batch_study(config: TrainConfig, batch_sizes: Sequence[int], target: str | Target, train, val=None, *,
                seeds: Sequence[int] = (0, 1), lr_points: int = 6, lr_span: float = 4.0, rule: str | None = None,
                max_widen: int = 2, width: int | str | None = "auto", done: Sequence[BatchRow] = (),
                on_row: Callable[[BatchRow], None] | None = None) -> StudyResult:
    """Measure steps to `target` at each batch size with a tuned learning rate, and fit the
    critical batch size. config: the model, optimizer and data settings (its batch_size and
    lr_scaling are replaced per batch size; `epochs` is each batch size's budget; its
    learning_rate, tuned at its batch_size (base_batch_size with lr_scaling), scaled to the
    first batch size by `rule`, centres the first grid). target:
    "val_accuracy=0.975" and the like (target.py). done: rows of batch sizes already measured
    (a resumed study's); on_row: called with each new row. ValueError for a bad setting, before
    anything trains."""
    settings = study_settings(config, batch_sizes, target, n_train=len(train), seeds=seeds, lr_points=lr_points,
                              lr_span=lr_span, rule=rule, max_widen=max_widen)
    width = resolve_width(width)
    plans = plan_study(config, settings, train, val, width)
    return run_study(settings, plans, train, val, width=width, done=done, on_row=on_row)


def plan_study(config: TrainConfig, settings: StudySettings, train, val, width: int | None) -> list[Plan]:
    """Every batch size's race Plan (race_plan), so that every check is made before anything
    trains (the CLI plans before it claims a run directory); `width` resolved."""
    return [race_plan(config, b, settings, train, val, width) for b in settings.batch_sizes]


def run_study(settings: StudySettings, plans: Sequence[Plan], train, val=None, *, width: int | None,
              done: Sequence[BatchRow] = (), on_row: Callable[[BatchRow], None] | None = None) -> StudyResult:
    """`batch_study` with its settings made and its batch sizes planned (plan_study)."""
    data = race_data(plans[0], settings.target, train, val)
    rows = list(done)
    for plan in plans[len(rows):]:
        rows.append(measure_batch(plan, settings, data, rows[-1] if rows else None, width))
        if on_row is not None:
            on_row(rows[-1])
    return summarize(settings, rows, seed=plans[0].config.seed)


def race_plan(config: TrainConfig, batch: int, settings: StudySettings, train, val, width: int | None) -> Plan:
    """The Plan of one batch size's races: no early stopping, gradient tracking or lr scaling;
    ValueError when the target does not fit the data or the grid's models the device memory."""
    race = dataclasses.replace(config, batch_size=batch, lr_scaling="none", track_gradients=False, patience=0,
                               restore_best=False, audit_every=0)
    plan = plan_run(race, train, val)
    check_target(settings.target, classification=plan.spec.classification, has_val=val is not None)
    size = settings.lr_points * len(settings.seeds)
    models_per_program_of(plan, models=size, devices=1, width=width, limit=device_memory_limit(), asked=size)
    return plan


def race_data(plan: Plan, target: Target, train, val) -> RaceData:
    """The training set on the device, and the EvalSet of the target's split."""
    x, y = host_arrays(train, plan.config.dtype)
    resident = jax.device_put((x, y))
    split = train if target.split == "train" else val
    ex, ey = (x, y) if target.split == "train" else host_arrays(val, plan.config.dtype)
    batch = eval_batch_rows(plan.config.eval_batch_size, len(split))
    eval_set = make_eval_set(ex, ey, batch, resident=resident if target.split == "train" else None)
    return RaceData(*resident, eval_set, len(split))


def measure_batch(plan: Plan, settings: StudySettings, data: RaceData, previous: BatchRow | None,
                  width: int | None) -> BatchRow:
    """One batch size's row: race the grid (widened while its best rate is on an edge), then
    B_simple at the best rate's target."""
    config, batch, seeds = plan.config, plan.config.batch_size, settings.seeds
    base_lr, base_batch = (settings.lr, settings.lr_batch) if previous is None or previous.best_lr is None else \
        (previous.best_lr, previous.batch_size)
    grid = lr_grid(scaled_center(base_lr, base_batch, batch, settings.rule), points=settings.lr_points,
                   span=settings.lr_span)
    programs, size = race_programs(plan, width), len(grid) * len(seeds)
    budget = config.epochs * plan.spec.steps_per_epoch
    start = time.perf_counter()
    races = [(grid, run_race(plan, programs, grid, seeds, target=settings.target, data=data, budget=budget,
                             size=size))]
    lrs, steps = _merged(races)
    while (best := _best(lrs, steps)) is not None and best.at_edge and len(races) <= settings.max_widen:
        new = widen(lrs, best.lr == lrs.min(), factor=settings.lr_span)[:settings.lr_points]
        races.append((new, run_race(plan, programs, new, seeds, target=settings.target, data=data, budget=budget,
                                    size=size, incumbent=float(lr_steps(steps).min()))))
        lrs, steps = _merged(races)
    seconds = time.perf_counter() - start
    compile_s = sum(r.compile_seconds for _, r in races)
    b_simple = None if best is None else _b_simple_at_target(plan, races, best.lr, data)
    order = np.argsort(lrs)
    return BatchRow(batch, lrs[order].tolist(), steps[order].tolist(), None if best is None else best.lr,
                    bool(best is not None and best.at_edge), len(races) - 1,
                    max(r.steps_run for _, r in races), seconds - compile_s, compile_s,
                    *(sum(getattr(r, f) for _, r in races) for f in ("checks", "model_steps", "model_checks")), b_simple)


def _merged(races: list[tuple[np.ndarray, RaceResult]]) -> tuple[np.ndarray, np.ndarray]:
    """Every rate raced (L,) and its (L, K) steps."""
    return (np.concatenate([np.asarray(g, np.float64) for g, _ in races]),
            np.concatenate([r.steps for _, r in races]))


def _best(lrs: np.ndarray, steps: np.ndarray):
    """best_lr of the rates whose every seed reached the target; None when none did."""
    medians = lr_steps(steps)
    return best_lr(lrs, medians) if np.isfinite(medians).any() else None


def _b_simple_at_target(plan: Plan, races, lr: float, data: RaceData) -> float | None:
    """B_simple = tr(Σ) / |G|² over the training set at the params where the best rate's first
    seed reached the target (the seed's own params, none of the others')."""
    for grid, result in races:
        hits = np.flatnonzero(np.isclose(np.asarray(grid, np.float64), lr, rtol=1e-12, atol=0))
        if len(hits) and np.isfinite(result.steps[hits[0], 0]):
            model = hits[0] * result.steps.shape[1]
            params = jax.tree.map(lambda a: a[model], result.reach_params)
            est = dataset_estimate(params, data.x, data.y, None, loss=plan.loss_fn, act=plan.activation,
                                   batch_size=plan.config.eval_batch_size)
            signal, noise = float(np.sum(est.signal)), float(np.sum(est.noise))
            return noise / signal if signal > 0 else math.inf
    return None
