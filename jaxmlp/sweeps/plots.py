"""sweep.png: every model's curve (validation loss, else training loss), coloured by the first
varying field and dashed by the second, beside a heatmap of the final metric for each pair of
varying fields (the fields other than the seed, or the two that vary), averaged over the other
fields and the seeds: with three or more fields, the heatmaps are what tell the models apart.
The curves and the heatmaps show different metrics, and their titles say which. Matplotlib's Agg
canvas, as jaxmlp.plots.

    plot_sweep(result, "runs/sweep/sweep.png")
    fig = sweep_figure(result)            # the same figure, unsaved
"""
from __future__ import annotations

import itertools
import math
import os
from typing import Any

import numpy as np
from matplotlib import cm, colors
from matplotlib.figure import Figure

from jaxmlp.demos.common import integer_ticks, log_scale
from jaxmlp.plots import _save
from jaxmlp.sweeps.grid import varying_fields

MAX_HEATMAP_FIELDS = 4  # their 6 pairs; more would make the figure too wide to read
HEATMAPS_PER_ROW = 2
LINESTYLES = ("-", "--", ":", "-.")


def plot_sweep(result, path: str | os.PathLike) -> None:
    """Write the sweep's figure to `path`."""
    _save(sweep_figure(result), path)


def sweep_figure(result) -> Figure:
    """The curves panel and one heatmap per pair of varying fields (`heatmap_pairs`)."""
    varying = varying_fields([m.overrides for m in result.models])
    not_seed = [name for name in varying if name != "seed"]
    pairs = heatmap_pairs(varying)
    rows, cols = math.ceil(len(pairs) / HEATMAPS_PER_ROW), min(len(pairs), HEATMAPS_PER_ROW)
    fig = Figure(figsize=(7 + 4.8 * cols, 4.6 * max(rows, 1)), layout="constrained")
    grid = fig.add_gridspec(max(rows, 1), 1 + cols, width_ratios=[1.4] + [1] * cols)
    fields = (not_seed or varying or [None])[:2]  # the seed only when nothing else varies
    curve_name = _curves(fig.add_subplot(grid[:, 0]), result, *fields, *[None] * (2 - len(fields)))
    names = {_heatmap(fig, fig.add_subplot(grid[i // cols, 1 + i % cols]), result, *pair, varying)
             for i, pair in enumerate(pairs)}
    if names:  # the two kinds of panel show two metrics: say so once, above both
        fig.suptitle(f"curves: {curve_name} per epoch; heatmaps: the kept params' final "
                     f"{' / '.join(sorted(names))} (a different metric)", fontsize=11)
    return fig


def heatmap_pairs(varying: list[str]) -> list[tuple[str, str]]:
    """Each pair of the varying fields other than the seed (of the first MAX_HEATMAP_FIELDS), or
    (field, seed) when one field and the seed vary."""
    not_seed = [name for name in varying if name != "seed"]
    if len(not_seed) >= 2:
        return list(itertools.combinations(not_seed[:MAX_HEATMAP_FIELDS], 2))
    return [tuple(varying)] if len(varying) == 2 else []


def _curves(ax, result, colour: str | None, style: str | None) -> str:
    """Every model's loss per epoch, coloured by the `colour` field and dashed by the `style`
    field; a diverged model ends in a cross. Returns the name of the loss drawn."""
    models = [m for m in result.models if m.history.epoch]
    use_val = any(v is not None for m in models for v in m.history.val_loss)
    name = "validation loss" if use_val else "training loss (minibatch mean)"
    values = [m.overrides.get(colour) for m in models]
    colour_of, legend = _palette(values)
    styles = {str(v): LINESTYLES[i % len(LINESTYLES)]
              for i, v in enumerate(dict.fromkeys(str(m.overrides.get(style)) for m in models))}
    losses = []
    for m, value in zip(models, values):
        points = [(e, v) for e, v in zip(m.history.epoch, m.history.val_loss if use_val else m.history.train_loss)
                  if v is not None]
        if points:
            line, = ax.plot(*zip(*points), color=colour_of(value), lw=1.2, alpha=0.8,
                            ls=styles[str(m.overrides.get(style))])
            if m.diverged:
                ax.plot(*points[-1], "x", color=line.get_color(), ms=8)
            losses += [v for _, v in points]
    _curve_legends(ax, models, colour, values, colour_of, legend, style, styles)
    if losses and min(losses) > 0:
        log_scale(ax, losses)
    ax.set_xlabel("epoch")
    integer_ticks(ax.xaxis)
    ax.set_ylabel(name)
    ax.set_title(f"{name} per epoch, {len(models)} models", fontsize=10)
    ax.grid(alpha=0.3)
    return name


def _curve_legends(ax, models, colour, values, colour_of, mappable, style, styles) -> None:
    """A colour bar (numbers) or entries (anything else) for the colour field, entries for the
    line styles and for a diverged model's cross."""
    if mappable is not None:
        ax.figure.colorbar(mappable, ax=ax).set_label(colour)
    elif colour is not None:
        for value in dict.fromkeys(map(str, values)):
            ax.plot([], [], color=colour_of(value), label=f"{colour}={value}")
    if style is not None:
        for value, ls in styles.items():
            ax.plot([], [], color="gray", ls=ls, label=f"{style}={value}")
    if any(m.diverged for m in models):
        ax.plot([], [], "x", color="gray", label="diverged")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _palette(values: list[Any]):
    """(value -> colour, a ScalarMappable for a colour bar or None): viridis over numbers (log-spaced
    when all positive and spanning more than 10x), tab10 over anything else."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if values and len(numbers) == len(values) and len(set(numbers)) > 1:
        lo, hi = min(numbers), max(numbers)
        norm = colors.LogNorm(lo, hi) if lo > 0 and hi / lo > 10 else colors.Normalize(lo, hi)
        mappable = cm.ScalarMappable(norm=norm, cmap="viridis")
        return (lambda v: mappable.to_rgba(v)), mappable
    index = {str(v): i for i, v in enumerate(dict.fromkeys(map(str, values)))}
    return (lambda v: cm.tab10(index[str(v)] % 10)), None


def final_metric(model) -> tuple[str, float]:
    """(name, value) the heatmap shows: the kept params' test accuracy (or mse), else val, else the
    training loss."""
    final = model.history.final
    for split in ("test", "val"):
        for metric in ("accuracy", "mse"):
            if metric in final.get(split, {}):
                return f"{split} {metric}", final[split][metric]
    return "train loss", final.get("train", {}).get("loss", math.nan)


def _heatmap(fig, ax, result, row: str, col: str, varying: list[str]) -> str:
    """The mean final metric of the models in each (row value, col value) cell; returns its name."""
    models = [m for m in result.models if not m.diverged and m.history.final]
    rows = list(dict.fromkeys(str(m.overrides[row]) for m in models))
    cols = list(dict.fromkeys(str(m.overrides[col]) for m in models))
    cells: dict[tuple[int, int], list[float]] = {}
    name = "metric"
    for m in models:
        name, value = final_metric(m)
        cells.setdefault((rows.index(str(m.overrides[row])), cols.index(str(m.overrides[col]))), []).append(value)
    grid = np.full((len(rows), len(cols)), np.nan)
    for (i, j), vals in cells.items():
        grid[i, j] = float(np.mean(vals))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for (i, j), vals in cells.items():  # dark text on the bright half of viridis
        bright = image.norm(grid[i, j]) > 0.6
        ax.text(j, i, f"{grid[i, j]:.4g}", ha="center", va="center", color="k" if bright else "w", fontsize=8)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(col)
    ax.set_ylabel(row)
    others = [f for f in varying if f not in (row, col)]
    mean = f"\n(mean over {', '.join(others)})" if others and any(len(v) > 1 for v in cells.values()) else ""
    ax.set_title(f"final {name}{mean}", fontsize=10)
    fig.colorbar(image, ax=ax)
    return name
