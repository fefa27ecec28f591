"""Run plots with matplotlib's Agg canvas (no display, no pyplot global state).

    plot_loss_curve(history, "run/loss_curve.png")
    plot_decision_boundary(lambda g: predict(params, g), x, y, "run/decision_boundary.png")
    plot_gradient_stats(history, "run/gradient_stats.png")   # track_gradients runs; titled with the run's name

Each plot is built as a `Figure` first (`loss_curve_figure`, `decision_boundary_figure`,
`gradient_stats_figure`), so it can be inspected without saving; legends sit outside the axes,
where they cover no data. Epoch axes have whole-number ticks, log axes plain-number ticks and an
accuracy axis spans its data (demos.common's axis helpers).
"""
from __future__ import annotations

import io
import os
from typing import Callable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxmlp.atomic import atomic_write_bytes
from jaxmlp.demos.common import fit_fraction_axis, grid_over, integer_ticks, log_scale, plot_regions
from jaxmlp.losses import predict_classes

SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:red"}


def _save(fig: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_loss_curve(history, path: str | os.PathLike, *, test_epoch: int | None = None) -> None:
    _save(loss_curve_figure(history, test_epoch=test_epoch), path)


def loss_curve_figure(history, *, test_epoch: int | None = None) -> Figure:
    """Two panels over the epochs: the loss (train objective and val) and the accuracy (mse for
    regression) on the whole training set and val, each with the final test value drawn at
    `test_epoch`, the epoch of the evaluated params (default: the last; restore_best: the best)."""
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    test = history.final.get("test", {})
    metric = "accuracy" if "accuracy" in test or any(a is not None for a in history.val_accuracy) else "mse"
    at = test_epoch or (history.epoch[-1] if history.epoch else None)
    panels = ((loss_ax, "loss", {"train (minibatch objective)": history.train_loss, "val": history.val_loss}),
              (metric_ax, metric, {"train (whole set)": getattr(history, f"train_{metric}"),
                                   "val": getattr(history, f"val_{metric}")}))
    for ax, name, series in panels:
        values = _curves(ax, history, series)
        if test.get(name) is not None and at is not None:
            ax.plot([at], [test[name]], "*", ms=13, color=SPLIT_COLORS["test"],
                    label=f"test (epoch {at} params): {test[name]:.4g}")
            values.append(test[name])
        if name != "accuracy" and values and min(values) > 0:
            log_scale(ax, values)
        elif name == "accuracy":
            fit_fraction_axis(ax, values)
        ax.set_xlabel("epoch")
        integer_ticks(ax.xaxis)
        ax.set_ylabel(name + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False, fontsize=9)
    return fig


def _curves(ax, history, series: dict[str, Sequence[float | None]]) -> list[float]:
    """The train and val series (their None entries skipped) and the best val epoch on one axes;
    returns the values drawn."""
    drawn = []
    for label, values in series.items():
        points = [(e, v) for e, v in zip(history.epoch, values) if v is not None]
        if points:
            split = "val" if label == "val" else "train"
            ax.plot(*zip(*points), "o-" if split == "val" else "-", ms=3, color=SPLIT_COLORS[split], label=label)
            drawn += [v for _, v in points]
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="gray", ls=":", label=f"best val epoch {history.best_epoch}")
    return drawn


def plot_decision_boundary(scores_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
                           path: str | os.PathLike, *, resolution: int = 200,
                           axis_labels: tuple[str, str] = ("feature 0", "feature 1")) -> None:
    _save(decision_boundary_figure(scores_fn, x, y, resolution=resolution, axis_labels=axis_labels), path)


def decision_boundary_figure(scores_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, *,
                             resolution: int = 200,
                             axis_labels: tuple[str, str] = ("feature 0", "feature 1")) -> Figure:
    """Predicted class over a grid around 2-D points x (N, 2) in light fills, with the points in
    dark colours of their class y (N,) on top and a class legend beside the axes.

    scores_fn maps grid points (M, 2) to scores (M, C) (C == 1: binary, score > 0 is class 1).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"decision boundaries need 2-D inputs (N, 2), got {x.shape}")
    grid = grid_over(x, resolution, margin=0.1 * np.ptp(x, axis=0) + 1e-6)  # (2,): per feature
    pred = predict_classes(np.asarray(scores_fn(grid.points)))  # (M,)
    n_classes = max(int(y.max()) + 1, int(pred.max()) + 1, 2)
    fig = Figure(figsize=(6.2, 5), layout="constrained")
    ax = fig.add_subplot()
    plot_regions(ax, grid, pred, x, y, n_classes, title="decision boundary (training split)", ticks=True)
    ax.set_aspect("auto")  # the two features may have different units
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.legend(title="class of the point", loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False,
              markerscale=2)
    return fig


def plot_gradient_stats(history, path: str | os.PathLike, *, run: str | None = None) -> None:
    """`run` names the run in the title; by default the name of the directory `path` is in. An
    adaptive_batch run's figure is its batch schedule (batch_schedule_figure)."""
    run = run or os.path.basename(os.path.dirname(os.path.abspath(path)))
    adaptive = any(b is not None for b in history.batch)
    _save(batch_schedule_figure(history, run=run) if adaptive else gradient_stats_figure(history, run=run), path)


def batch_schedule_figure(history, *, run: str | None = None) -> Figure:
    """adaptive_batch, per segment against the steps taken: the batch size, B_simple (the noise
    scale the next batch follows) and AdaScale's gain, each on a log axis."""
    segments = [s for b in history.batch if b is not None for s in b["segments"]]
    steps = np.cumsum([s["steps"] for s in segments])
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    if run:
        fig.suptitle(f"adaptive batch size of run {run}", fontsize=11)
    series = {"batch size": [s["batch"] for s in segments],
              "B_simple = tr(Σ) / |G|² (after the segment)": [s.get("b_simple") for s in segments],
              "AdaScale gain r (learning rate / learning_rate)": [s["gain"] for s in segments]}
    for ax, (title, values) in zip(fig.subplots(1, 3), series.items()):
        ax.step(steps, np.asarray([np.nan if v is None else v for v in values], float), where="pre",
                color="tab:purple")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        log_scale(ax, values)
        ax.grid(alpha=0.3)
    return fig


def gradient_stats_figure(history, *, run: str | None = None) -> Figure:
    """track_gradients, per epoch: the noise scale B_simple, per-layer gradient norms and
    signal-to-noise ratios, and percentiles of the per-example gradient norms; titled with `run`."""
    rows = [(e, g) for e, g in zip(history.epoch, history.gradients) if g is not None]
    epochs = np.asarray([e for e, _ in rows])

    def column(key: str) -> np.ndarray:  # (epochs, ...), None -> nan
        return np.asarray([g[key] for _, g in rows], dtype=float)

    fig = Figure(figsize=(11.5, 7), layout="constrained")
    if run:
        fig.suptitle(f"gradient statistics of run {run}", fontsize=11)
    (noise, norms), (snr, examples) = fig.subplots(2, 2)
    panels = {noise: ({"B_simple": column("noise_scale")}, "B_simple (examples)",
                      "gradient noise scale B_simple = tr(Σ) / |G|²"),
              norms: (_layers(column("layer_grad_norm")), "‖ḡ_l‖", "minibatch gradient norm ‖ḡ_l‖ (epoch mean)"),
              snr: (_layers(column("layer_snr")), "B |G_l|² / tr(Σ_l)", "signal-to-noise B |G_l|² / tr(Σ_l)"),
              examples: (_percentiles(rows), "‖g_i‖", "per-example gradient norm ‖g_i‖")}
    for ax, (series, ylabel, title) in panels.items():
        for label, values in series.items():
            ax.plot(epochs, values, "o-", ms=3, label=label, **({"color": "tab:purple"} if ax is noise else {}))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel + " (log scale)")
        integer_ticks(ax.xaxis)
        log_scale(ax, np.concatenate([np.ravel(v) for v in series.values()]))
        ax.grid(alpha=0.3)
        if ax is not noise:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def _layers(values: np.ndarray) -> dict[str, np.ndarray]:
    """(epochs, L + 1) -> {"layer l": (epochs,)}."""
    return {f"layer {layer}": values[:, layer] for layer in range(values.shape[1])}


def _percentiles(rows) -> dict[str, np.ndarray]:
    """The per-epoch percentiles of the per-example gradient norms, by name."""
    names = {"p50": "median", "p90": "90th percentile", "p99": "99th percentile", "max": "max"}
    return {name: np.asarray([g["example_grad_norm"][k] for _, g in rows], dtype=float) for k, name in names.items()}
