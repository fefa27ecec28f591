"""batch_study.png: what a batch-size study measured, in three panels (matplotlib's Agg canvas,
as jaxmlp.plots).

1. Steps against examples to the target, one point per batch size (the median over seeds, the
   seeds' spread as bars), with the fitted hyperbola (S / S_min − 1)(E / E_min − 1) = 1 and
   B_crit = E_min / S_min marked on it.
2. Steps against batch size, log-log: the perfect-scaling line S ∝ 1/B through the smallest
   batch size's point, the fit S = S_min (1 + B_crit / B), and where the measured steps leave
   the line.
3. The best learning rate against batch size, log-log, with the fitted eps_opt(B) =
   eps_max / (1 + B_noise / B).

    plot_study(result, "runs/study/batch_study.png")
"""
from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.figure import Figure

from jaxmlp.batchsize.result import StudyResult
from jaxmlp.plots import _save


def plot_study(result: StudyResult, path: str | os.PathLike) -> None:
    """Write the study's figure to `path`."""
    _save(study_figure(result), path)


def study_figure(result: StudyResult) -> Figure:
    fig = Figure(figsize=(16, 4.8), layout="constrained")
    axes = fig.subplots(1, 3)
    rows = result.reached
    batch = np.array([r.batch_size for r in rows], np.float64)
    steps = np.array([r.median_steps for r in rows])
    spread = np.array([[r.median_steps - r.best_steps.min(), r.best_steps.max() - r.median_steps] for r in rows]).T \
        if rows else None
    _frontier_panel(axes[0], result, batch, steps, spread)
    _scaling_panel(axes[1], result, batch, steps, spread)
    _lr_panel(axes[2], result)
    fig.suptitle(f"batch-size study: target {result.settings.target}, seeds {len(result.settings.seeds)}",
                 fontsize=11)
    return fig


def _frontier_panel(ax, result: StudyResult, batch, steps, spread) -> None:
    ax.set(xscale="log", yscale="log", xlabel="examples to target E", ylabel="steps to target S",
           title="steps against examples")
    if len(batch):
        ax.errorbar(steps * batch, steps, yerr=spread, fmt="o", color="tab:blue", capsize=3)
        for b, s in zip(batch, steps):
            ax.annotate(f"{b:.0f}", (s * b, s), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if result.frontier is not None:
        fit = result.frontier[0]
        b = np.geomspace(batch.min() / 4, batch.max() * 4, 200)
        s = fit.s_min + fit.e_min / b
        ax.plot(s * b, s, color="tab:orange", label=f"fit: S_min {fit.s_min:.0f}, E_min {fit.e_min:.3g}")
        if math.isfinite(fit.b_crit) and fit.b_crit > 0:
            ax.plot([2 * fit.e_min], [2 * fit.s_min], "*", color="tab:red", markersize=12,
                    label=f"B_crit = {fit.b_crit:.0f}")
        ax.legend(fontsize=8)


def _scaling_panel(ax, result: StudyResult, batch, steps, spread) -> None:
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="steps to target S",
           title="steps against batch size")
    if not len(batch):
        return
    ax.errorbar(batch, steps, yerr=spread, fmt="o", color="tab:blue", capsize=3, label="measured (median)")
    b = np.geomspace(batch.min(), batch.max(), 200)
    ax.plot(b, steps[0] * batch[0] / b, "--", color="gray", label="perfect scaling S ∝ 1/B")
    if result.frontier is not None:
        fit = result.frontier[0]
        ax.plot(b, fit.s_min + fit.e_min / b, color="tab:orange", label="fit S_min (1 + B_crit / B)")
        if math.isfinite(fit.b_crit) and fit.b_crit > 0:
            ax.axvline(fit.b_crit, color="tab:red", linestyle=":", label=f"B_crit = {fit.b_crit:.0f}")
    if result.b_simple is not None and math.isfinite(result.b_simple):
        ax.axvline(result.b_simple, color="tab:green", linestyle="-.", label=f"B_simple = {result.b_simple:.0f}")
    ax.legend(fontsize=8)


def _lr_panel(ax, result: StudyResult) -> None:
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="best learning rate",
           title="tuned learning rate against batch size")
    for row in result.rows:  # every rate raced, faint; the best, solid
        ax.plot([row.batch_size] * len(row.lrs), row.lrs, ".", color="lightgray")
    rows = result.reached
    if rows:
        ax.plot([r.batch_size for r in rows], [r.best_lr for r in rows], "o-", color="tab:blue", label="best")
        edges = [r for r in rows if r.at_edge]
        if edges:
            ax.plot([r.batch_size for r in edges], [r.best_lr for r in edges], "s", mfc="none", color="tab:red",
                    markersize=10, label="on the grid's edge")
    if result.eps is not None and math.isfinite(result.eps.eps_max):
        b = np.geomspace(min(r.batch_size for r in rows), max(r.batch_size for r in rows), 200)
        ax.plot(b, result.eps.eps_max / (1 + result.eps.b_noise / b), color="tab:orange",
                label=f"eps_opt: {result.eps.eps_max:.3g} / (1 + {result.eps.b_noise:.0f} / B)")
    if rows:
        ax.legend(fontsize=8)
