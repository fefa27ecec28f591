"""Demo `features`: XOR (checkerboard) data, raw features vs a hand-made feature vs a hidden layer.

CS182 lecture 1: a linear classifier on (x1, x2) cannot separate XOR (about 50% error); the
hand-made feature x1*x2 makes it linearly separable (about 0% error); one hidden layer
learns such a feature by itself. All three decision regions are drawn in the (x1, x2) plane.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from jaxmlp.data.preprocess import stratified_split
from jaxmlp.data.synthetic import checkerboard
from jaxmlp.demos.common import grid_over, new_figure, percent, plot_regions, save_figure
from jaxmlp.demos.gd import accuracy_of, predict_sets, train_full_batch
from jaxmlp.types import Array

NAME = "features"


def with_product(x: Array) -> Array:
    """(N, 2) -> (N, 3): append the hand-made feature x1 * x2."""
    return jnp.concatenate([x, x[:, :1] * x[:, 1:2]], axis=1)


MODELS = (  # (label, feature map, layer sizes)
    ("logistic regression on (x1, x2)", lambda x: x, (2, 2)),
    ("logistic regression on (x1, x2, x1*x2)", with_product, (3, 2)),
    ("1 hidden layer (8 ReLU) on (x1, x2)", lambda x: x, (2, 8, 2)),
)


def run(key: Array, out_dir: Path, *, quick: bool = False) -> dict:
    """Fit the three models of MODELS; plot their regions side by side; return the numbers."""
    steps = 500 if quick else 3000
    data_key, split_key, init_key = jax.random.split(key, 3)
    data = checkerboard(data_key, n=400 if quick else 1000, tiles=2)
    train, val = stratified_split(split_key, data, 0.3)
    xt, yt, xv, yv = (jnp.asarray(a) for a in (train.x, train.y, val.x, val.y))
    grid = grid_over(train.x, 80 if quick else 250)
    fig, axes = new_figure(len(MODELS), size=3.4)
    results = {}
    for ax, (label, phi, sizes) in zip(axes[0], MODELS):
        init_key, k = jax.random.split(init_key)
        fit = train_full_batch(k, phi(xt), yt, sizes=sizes, steps=steps, learning_rate=0.05, optimizer="adam")
        pred_t, pred_v, regions = predict_sets(fit.params, phi(xt), phi(xv), phi(jnp.asarray(grid.points)))
        acc_t, acc_v = accuracy_of(pred_t, yt), accuracy_of(pred_v, yv)
        results[label] = {"train_accuracy": acc_t, "val_accuracy": acc_v, "train_error": 1 - acc_t,
                          "val_error": 1 - acc_v}
        plot_regions(ax, grid, regions, xt, yt, 2, title=f"{label}\nval error {percent(1 - acc_v)}")
    fig.suptitle("XOR: raw features, a hand-made feature, a learned one", fontsize=11)
    figures = [save_figure(fig, out_dir, NAME)]
    numbers = {"data": {"set": "checkerboard (XOR)", "train": len(train), "val": len(val)},
               "training": {"optimizer": "adam", "learning_rate": 0.05, "steps": steps, "backprop": "manual"},
               "models": results, "figures": figures}
    return numbers
