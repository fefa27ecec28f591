"""Demo `universal-approximation`: one hidden ReLU layer of growing width fits sin(x).

CS231n / CS182: a network with one hidden layer can approximate any continuous function on a
compact set, given enough units. Two periods of sin on [-2 pi, 2 pi]; widths 1 to 64. A
one-hidden-layer ReLU net is a piecewise-linear function with one kink per unit at
x = -b/w; the hidden biases are initialised so those kinks spread uniformly over the domain
(with zero biases all kinks would start at x = 0). The JSON reports the max |error| on a dense
grid against width.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib import colormaps

from jaxmlp.data.synthetic import sin_1d
from jaxmlp.demos.common import new_figure, save_figure
from jaxmlp.demos.gd import outputs_sets, train_full_batch
from jaxmlp.mlp import Params, init_mlp
from jaxmlp.types import Array

NAME = "universal-approximation"
LIMIT = 2 * math.pi


@partial(jax.jit, static_argnums=(1, 2))
def init_spread_kinks(key: Array, width: int, limit: float = LIMIT) -> Params:
    """A (1, width, 1) ReLU net whose kinks -b/w are uniform in [-limit, limit]."""
    init_key, kink_key = jax.random.split(key)
    params = init_mlp(init_key, (1, width, 1), activation="relu")
    kinks = jax.random.uniform(kink_key, (width,), minval=-limit, maxval=limit)  # (width,)
    params[0] = params[0]._replace(b=-kinks * params[0].W[0])
    return params


def run(key: Array, out_dir: Path, *, quick: bool = False) -> dict:
    """Fit sin with each width; plot the fits and max error vs width."""
    widths = (2, 16) if quick else (1, 2, 4, 8, 16, 32, 64)
    steps, restarts = (1500, 1) if quick else (6000, 3)
    data_key, init_key = jax.random.split(key)
    data = sin_1d(data_key, n=256, low=-LIMIT, high=LIMIT)
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    grid = np.linspace(-LIMIT, LIMIT, 2001, dtype=np.float32)[:, None]  # (2001, 1)
    truth = np.sin(grid)
    fig, axes = new_figure(2, size=4.6, aspect=0.75)
    ax_fit, ax_err = axes[0]
    ax_fit.plot(grid[:, 0], truth[:, 0], color="black", lw=3, alpha=0.3, label="sin(x)")
    plotted = widths[::2] if len(widths) > 4 else widths  # fewer curves, readable
    colors = colormaps["viridis"](np.linspace(0.0, 0.85, len(widths)))
    max_err, mse = {}, {}
    for w, c in zip(widths, colors):
        fits = []
        for _ in range(restarts):  # keep the restart with the lowest final training loss
            init_key, k = jax.random.split(init_key)
            fits.append(train_full_batch(None, x, y, sizes=(1, w, 1), params=init_spread_kinks(k, w), steps=steps,
                                         learning_rate=0.005, optimizer="adam", loss="mean_squared_error"))
        final = [float(np.asarray(f.losses)[-1]) for f in fits]
        best = fits[int(np.argmin(final))]
        (pred,) = outputs_sets(best.params, grid)  # (2001, 1)
        max_err[str(w)] = float(np.max(np.abs(pred - truth)))
        mse[str(w)] = min(final)
        if w in plotted:
            ax_fit.plot(grid[:, 0], pred[:, 0], color=c, lw=1.3, label=f"{w} units")
    ax_fit.scatter(data.x[:, 0], data.y[:, 0], s=4, color="0.3", zorder=0, label="training points")
    ax_fit.set_title("fits", fontsize=10)
    ax_fit.set_xlabel("x")
    ax_fit.legend(fontsize=7, ncol=2, loc="lower left")
    ax_err.plot(widths, [max_err[str(w)] for w in widths], "o-", color="#2e63b8")
    ax_err.set_xscale("log", base=2)
    ax_err.set_yscale("log")
    ax_err.set_xlabel("hidden units")
    ax_err.set_ylabel("max |f(x) - sin(x)| on [-2pi, 2pi]")
    ax_err.set_title("max error vs width", fontsize=10)
    ax_err.grid(True, which="both", alpha=0.3)
    fig.suptitle("One hidden ReLU layer approximating sin(x)", fontsize=11)
    figures = [save_figure(fig, out_dir, NAME)]
    numbers = {"function": "sin(x) on [-2pi, 2pi]", "data": {"train_points": len(data), "grid_points": 2001},
               "training": {"optimizer": "adam", "learning_rate": 0.005, "steps": steps, "loss": "mse",
                            "backprop": "manual", "restarts_per_width": restarts,
                            "kept": "restart with the lowest final training loss"},
               "max_abs_error": max_err, "final_train_mse": mse, "figures": figures}
    return numbers

