"""Run plots with matplotlib's Agg canvas (no display, no pyplot global state).

    plot_loss_curve(history, "run/loss_curve.png")
    plot_decision_boundary(lambda g: predict(params, g), x, y, "run/decision_boundary.png")
"""
from __future__ import annotations

import io
import os
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxmlp.checkpoint import atomic_write_bytes
from jaxmlp.losses import predict_classes


def _save(fig: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_loss_curve(history, path: str | os.PathLike) -> None:
    """Train and val loss per epoch (log scale when positive), val accuracy on a second axis."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    epochs = np.asarray(history.epoch)
    ax.plot(epochs, history.train_loss, label="train loss (minibatch mean)", color="tab:blue")
    val = [(e, v) for e, v in zip(history.epoch, history.val_loss) if v is not None]
    if val:
        ax.plot(*zip(*val), "o-", ms=3, label="val loss", color="tab:orange")
    losses = [v for v in history.train_loss if v is not None] + [v for _, v in val]
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    acc = [(e, a) for e, a in zip(history.epoch, history.val_accuracy) if a is not None]
    if acc:
        ax2 = ax.twinx()
        ax2.plot(*zip(*acc), "s--", ms=3, color="tab:green", label="val accuracy")
        ax2.set_ylabel("val accuracy")
        ax2.set_ylim(0, 1.02)
        ax2.legend(loc="center right")
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="gray", ls=":", label=f"best epoch {history.best_epoch}")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_decision_boundary(scores_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
                           path: str | os.PathLike, *, resolution: int = 200) -> None:
    """Predicted class over a grid around 2-D points x (N, 2), with the points coloured by y (N,).

    scores_fn maps grid points (M, 2) to scores (M, C) (C == 1: binary, score > 0 is class 1).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"decision boundaries need 2-D inputs (N, 2), got {x.shape}")
    lo, hi = x.min(axis=0), x.max(axis=0)
    margin = 0.1 * (hi - lo) + 1e-6
    g0, g1 = np.meshgrid(np.linspace(lo[0] - margin[0], hi[0] + margin[0], resolution),
                         np.linspace(lo[1] - margin[1], hi[1] + margin[1], resolution))
    grid = np.stack([g0.ravel(), g1.ravel()], axis=1).astype(np.float32)  # (M, 2)
    scores = np.asarray(scores_fn(grid))
    pred = predict_classes(scores)  # (M,)
    n_classes = max(int(y.max()) + 1, int(pred.max()) + 1, 2)
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    ax.contourf(g0, g1, pred.reshape(g0.shape), levels=np.arange(n_classes + 1) - 0.5, cmap="Spectral", alpha=0.35)
    ax.scatter(x[:, 0], x[:, 1], c=y, s=12, cmap="Spectral", vmin=0, vmax=n_classes - 1, edgecolors="k",
               linewidths=0.3)
    ax.set_xlim(g0.min(), g0.max())
    ax.set_ylim(g1.min(), g1.max())
    ax.set_title("decision boundary")
    _save(fig, path)


def plot_gradient_stats(history, path: str | os.PathLike) -> None:
    """track_gradients, per epoch: the noise scale B_simple, per-layer gradient norms and
    signal-to-noise ratios, and percentiles of the per-example gradient norms."""
    rows = [(e, g) for e, g in zip(history.epoch, history.gradients) if g is not None]
    epochs = np.asarray([e for e, _ in rows])

    def column(key: str) -> np.ndarray:  # (epochs, ...), None -> nan
        return np.asarray([g[key] for _, g in rows], dtype=float)

    fig = Figure(figsize=(10, 7), layout="constrained")
    (noise, norms), (snr, examples) = fig.subplots(2, 2)
    noise.plot(epochs, column("noise_scale"), "o-", ms=3, color="tab:purple")
    noise.set_title("gradient noise scale B_simple = tr(Σ) / |G|²", fontsize=10)
    for ax, key, title in ((norms, "layer_grad_norm", "minibatch gradient norm ‖ḡ_l‖ (epoch mean)"),
                           (snr, "layer_snr", "signal-to-noise B |G_l|² / tr(Σ_l)")):
        values = column(key)  # (epochs, L + 1)
        for layer in range(values.shape[1]):
            ax.plot(epochs, values[:, layer], "o-", ms=3, label=f"layer {layer}")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    percentiles = np.asarray([[g["example_grad_norm"][k] for k in ("p50", "p90", "p99", "max")] for _, g in rows],
                             dtype=float)
    for i, name in enumerate(("median", "90th percentile", "99th percentile", "max")):
        examples.plot(epochs, percentiles[:, i], "o-", ms=3, label=name)
    examples.set_title("per-example gradient norm ‖g_i‖", fontsize=10)
    examples.legend(fontsize=8)
    for ax in (noise, norms, snr, examples):
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    _save(fig, path)
