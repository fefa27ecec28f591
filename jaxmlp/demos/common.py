"""Shared pieces of the demo runners and of every jaxmlp figure: figures (matplotlib, Agg, no
pyplot), axes that read well (integer epoch ticks, plain-number log ticks, an accuracy axis fitted
to its data), decision regions, the JSON of numbers, and data splits.

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
from matplotlib import ticker
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from jaxmlp.types import Array

# One colour per class: fill (light) for regions, point (dark) for the data.
REGION_COLORS = ("#f6c4c4", "#c4d9f6", "#c9ecc4", "#f1e3b3", "#e1c9f1")
POINT_COLORS = ("#c0392b", "#2e63b8", "#2e8b3a", "#b8860b", "#7d3c98")


def new_figure(ncols: int, nrows: int = 1, *, size: float = 3.6, aspect: float = 1.0) -> tuple[Figure, np.ndarray]:
    """A Figure with an (nrows, ncols) array of axes, each about `size` inches wide."""
    fig = Figure(figsize=(size * ncols, size * aspect * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def integer_ticks(axis) -> None:
    """Whole-number ticks on an epoch or step axis (`ax.xaxis`): a run of 5 epochs would get 1.25, 2.5, ..."""
    axis.set_major_locator(ticker.MaxNLocator(integer=True))


def log_scale(ax, values) -> None:
    """A log y axis labelled in plain numbers at more multiples of 10^k the narrower its data: over
    a decade or two matplotlib labels one or two ticks (6x10^2 and 10^3), too few to read."""
    ax.set_yscale("log")
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    ratio = v.max() / v.min() if v.size else math.inf
    if ratio > 100:  # two decades or more: the powers of ten are enough
        return
    if ratio > 2:
        subs = (1.0, 2.0, 5.0) if ratio > 10 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=subs))
    else:  # within a factor of 2 the axis is all but linear: evenly spaced round numbers
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))


def fit_fraction_axis(ax, values, *, margin: float = 0.1) -> None:
    """Y limits of a fraction (accuracy) axis fitted to the data plus `margin` of its range (at least
    0.5 points), within [0, 1]: on 0-1, train, val and test at 97-99% collapse into one line."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return
    pad = max(margin * (v.max() - v.min()), 0.005)
    ax.set_ylim(max(v.min() - pad, 0.0), min(v.max() + pad, 1.0 + pad / 4))


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
