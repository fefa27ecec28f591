"""sweep.png: every model's curve (validation loss, else training loss) coloured by one varying
field, and for a 2-D grid a heatmap of the final metric: over the two fields other than the seed
that vary (averaged over the seeds), or over the two that vary. Matplotlib's Agg canvas, as
jaxmlp.plots.

    plot_sweep(result, "runs/sweep/sweep.png")
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from matplotlib import cm, colors, ticker
from matplotlib.figure import Figure

from jaxmlp.plots import _save
from jaxmlp.sweeps.grid import varying_fields


def plot_sweep(result, path: str | os.PathLike) -> None:
    """Write the sweep's figure to `path`."""
    varying = varying_fields([m.overrides for m in result.models])
    not_seed = [name for name in varying if name != "seed"]
    axes2d = not_seed if len(not_seed) == 2 else varying if len(varying) == 2 else []
    fig = Figure(figsize=(12.5, 4.6) if axes2d else (7, 4.6))
    colour = (not_seed or varying or [None])[0]  # the seed only when nothing else varies
    _curves(fig.add_subplot(1, 2 if axes2d else 1, 1), result, colour)
    if axes2d:
        _heatmap(fig, fig.add_subplot(1, 2, 2), result, *axes2d)
    fig.tight_layout()
    _save(fig, path)


def _curves(ax, result, field: str | None) -> None:
    models = [m for m in result.models if m.history.epoch]
    use_val = any(v is not None for m in models for v in m.history.val_loss)
    values = [m.overrides.get(field) for m in models]
    colour_of, legend = _palette(values)
    for m, value in zip(models, values):
        h = m.history
        points = [(e, v) for e, v in zip(h.epoch, h.val_loss if use_val else h.train_loss) if v is not None]
        if points:
            ax.plot(*zip(*points), color=colour_of(value), lw=1.2, alpha=0.8, ls="--" if m.diverged else "-")
    if legend is not None:
        cbar = ax.figure.colorbar(legend, ax=ax)
        cbar.set_label(field)
    elif field is not None:
        for value in dict.fromkeys(map(str, values)):
            ax.plot([], [], color=colour_of(value), label=f"{field}={value}")
        ax.legend(fontsize=8)
    losses = [v for m in models for v in (m.history.val_loss if use_val else m.history.train_loss) if v is not None]
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel("validation loss" if use_val else "training loss (minibatch mean)")
    ax.set_title(f"{len(models)} models" + (f", coloured by {field}" if field else ""))
    ax.grid(alpha=0.3)


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


def _heatmap(fig, ax, result, row: str, col: str) -> None:
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
    seeds = " (mean over seeds)" if any(len(v) > 1 for v in cells.values()) else ""
    ax.set_title(f"final {name}{seeds}")
    fig.colorbar(image, ax=ax)
