"""What a batch-size study measured: a `BatchRow` per batch size (a line of results.jsonl), and
the `StudyResult` of them all: the frontier fit with its bootstrap interval, the eps_opt fit,
B_simple at the target, and the table.

    row.best_steps       # (K,) the best rate's steps to the target per seed (inf: never reached)
    result.frontier      # (estimate, lower, upper) Frontier, or None with fewer than 2 points
    print(result.table())
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from jaxmlp.batchsize.frontier import EpsFit, Frontier, bootstrap_frontier, fit_eps_opt

LEVEL = 0.9  # the bootstrap interval's coverage


class BatchRow(NamedTuple):
    """One batch size's races."""

    batch_size: int
    lrs: list[float]  # every rate raced, ascending
    steps: list[list[float]]  # (L, K) steps to the target; inf: the seed never reached it
    best_lr: float | None  # None: no rate reached the target on every seed
    at_edge: bool  # the best rate is still on the widened grid's edge
    widened: int  # widenings of the grid
    steps_run: int  # the longest race's steps
    seconds: float  # wall time of the races, compile excluded
    compile_seconds: float
    checks: int
    model_steps: int  # steps trained, summed over every model of the races
    model_checks: int  # one model's params evaluated on the target's split, summed over the checks
    b_simple: float | None  # tr(Σ) / |G|² over the training set where the best rate reached the target

    @property
    def best_steps(self) -> np.ndarray:
        """(K,) the best rate's steps per seed (empty without a best rate)."""
        if self.best_lr is None:
            return np.zeros(0)
        return np.asarray(self.steps[self.lrs.index(self.best_lr)], np.float64)

    @property
    def median_steps(self) -> float:
        return float(np.median(self.best_steps)) if self.best_lr is not None else math.inf

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (inf as None)."""
        return {**self._asdict(), "steps": [[None if math.isinf(s) else s for s in r] for r in self.steps]}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> BatchRow:
        """The row of `to_json`'s dict; ValueError (KeyError, TypeError) when it is not one."""
        steps = [[math.inf if s is None else float(s) for s in r] for r in record["steps"]]
        return cls(**{**{name: record[name] for name in cls._fields}, "steps": steps})


class StudyResult(NamedTuple):
    settings: Any  # study.StudySettings
    rows: list[BatchRow]
    frontier: tuple[Frontier, Frontier, Frontier] | None  # (estimate, lower, upper)
    eps: EpsFit | None  # fit_eps_opt of the best rates

    @property
    def reached(self) -> list[BatchRow]:
        """The rows with a best rate (every seed reached the target)."""
        return [r for r in self.rows if r.best_lr is not None]

    @property
    def b_simple(self) -> float | None:
        """The median B_simple at the target over the batch sizes."""
        values = [r.b_simple for r in self.rows if r.b_simple is not None]
        return float(np.median(values)) if values else None

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """(header, one row of text cells per batch size): the table's content."""
        header = ["batch", "best lr", "steps (median)", "steps per seed", "examples", "widened", "wall s", "B_simple"]
        rows = [[str(r.batch_size), ("-" if r.best_lr is None else f"{r.best_lr:.4g}") + (" (edge)" if r.at_edge else ""),
                 _num(r.median_steps), ", ".join("-" if math.isinf(s) else f"{s:.0f}" for s in r.best_steps) or "-",
                 _num(r.median_steps * r.batch_size), str(r.widened), f"{r.seconds:.1f}",
                 "-" if r.b_simple is None else f"{r.b_simple:.0f}"] for r in self.rows]
        return header, rows

    def table(self) -> str:
        """The Markdown table of the rows, then the fits."""
        header, rows = self.cells()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                 *("| " + " | ".join(row) + " |" for row in rows)]
        return "\n".join(lines + ["", *self.fit_lines()])

    def fit_lines(self) -> list[str]:
        if self.frontier is None:
            return [f"no fit: fewer than 2 batch sizes reached {self.settings.target}"]
        est, lo, hi = self.frontier
        lines = [f"S_min = {est.s_min:.1f} steps [{lo.s_min:.1f}, {hi.s_min:.1f}], E_min = {est.e_min:.0f} examples "
                 f"[{lo.e_min:.0f}, {hi.e_min:.0f}], B_crit = {est.b_crit:.0f} [{lo.b_crit:.0f}, {hi.b_crit:.0f}] "
                 f"({LEVEL:.0%} bootstrap over seeds)"]
        if self.b_simple is not None:
            lines.append(f"B_simple at the target: {self.b_simple:.0f} (median over batch sizes)")
        if self.eps is not None:
            lines.append(f"eps_opt(B) = {self.eps.eps_max:.4g} / (1 + {self.eps.b_noise:.0f} / B)")
        return lines

    def to_json(self) -> dict[str, Any]:
        fit = None if self.frontier is None else {k: f._asdict() for k, f in zip(("estimate", "lower", "upper"),
                                                                                 self.frontier)}
        return {"target": str(self.settings.target), "rows": [r.to_json() for r in self.rows], "frontier": fit,
                "level": LEVEL, "eps_opt": None if self.eps is None else self.eps._asdict(), "b_simple": self.b_simple}


def _num(value: float) -> str:
    return "-" if math.isinf(value) else f"{value:,.0f}"


def summarize(settings, rows: list[BatchRow], *, seed: int) -> StudyResult:
    """The fits of the rows whose best rate reached the target (2 at least for each fit)."""
    reached = [r for r in rows if r.best_lr is not None]
    if len(reached) < 2:
        return StudyResult(settings, rows, None, None)
    batches = [r.batch_size for r in reached]
    frontier = bootstrap_frontier(batches, [r.best_steps for r in reached], seed=seed, level=LEVEL)
    return StudyResult(settings, rows, frontier, fit_eps_opt(batches, [r.best_lr for r in reached]))
