"""Shared pieces of the demo runners: figures (matplotlib, Agg, no pyplot), decision regions,
the JSON of numbers, and data splits.

Figures are built with `matplotlib.figure.Figure` directly, so no global backend or pyplot
state is touched: this works headless and never interferes with other matplotlib users.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

Array = jax.Array

# One colour per class: fill (light) for regions, point (dark) for the data.
REGION_COLORS = ("#f6c4c4", "#c4d9f6", "#c9ecc4", "#f1e3b3", "#e1c9f1")
POINT_COLORS = ("#c0392b", "#2e63b8", "#2e8b3a", "#b8860b", "#7d3c98")


def new_figure(ncols: int, nrows: int = 1, *, size: float = 3.6, aspect: float = 1.0) -> tuple[Figure, np.ndarray]:
    """A Figure with an (nrows, ncols) array of axes, each about `size` inches wide."""
    fig = Figure(figsize=(size * ncols, size * aspect * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def percent(fraction: float) -> str:
    """A fraction as a percent with one decimal: whole percents would show 99.5% as "100%" and
    0.3% as "0%", claims the numbers do not make."""
    return f"{fraction:.1%}"


def save_figure(fig: Figure, out_dir: Path, name: str) -> str:
    """Write `fig` as out_dir/name.png (dpi 110); return the file name."""
    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=110)
    return path.name


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (jax.Array, np.ndarray)):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def save_json(numbers: dict, out_dir: Path, name: str) -> str:
    """Write `numbers` (arrays become lists, floats to 6 significant digits, inf/nan to null)
    as out_dir/name.json."""
    path = Path(out_dir) / f"{name}.json"
    path.write_text(json.dumps(_jsonable(numbers), indent=2) + "\n")
    return path.name


class Grid(NamedTuple):
    """A square grid of 2-D points: xx, yy (R, R) for pcolormesh; points (R*R, 2) float32."""

    xx: np.ndarray
    yy: np.ndarray
    points: np.ndarray


def grid_over(x: Array, resolution: int, margin: float | np.ndarray = 0.25) -> Grid:
    """A (resolution, resolution) grid over the extent of 2-D points x (N, 2) plus a margin (one,
    or (2,) one per feature)."""
    x = np.asarray(x)
    lo, hi = x.min(axis=0) - margin, x.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    return Grid(xx, yy, np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32))


def plot_regions(ax, grid: Grid, regions: np.ndarray, x: Array, y: Array, num_classes: int, *,
                 title: str = "", ticks: bool = False) -> None:
    """Decision regions (the predicted class (R*R,) at each grid point) with the data on top, the
    points of class c labelled "class c" (for a legend); colours repeat after len(POINT_COLORS)."""
    regions = np.asarray(regions).reshape(grid.xx.shape)
    fills = [REGION_COLORS[c % len(REGION_COLORS)] for c in range(num_classes)]
    ax.pcolormesh(grid.xx, grid.yy, regions, cmap=ListedColormap(fills),
                  vmin=-0.5, vmax=num_classes - 0.5, shading="auto")
    x, y = np.asarray(x), np.asarray(y)
    for c in range(num_classes):
        sel = y == c
        ax.scatter(x[sel, 0], x[sel, 1], s=9, c=POINT_COLORS[c % len(POINT_COLORS)], edgecolors="white",
                   linewidths=0.3, label=f"class {c}")
    ax.set_xlim(grid.xx.min(), grid.xx.max())
    ax.set_ylim(grid.yy.min(), grid.yy.max())
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=10)
