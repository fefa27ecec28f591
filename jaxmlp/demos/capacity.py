"""Demo `capacity`: decision regions on the spiral for 3, 6 and 20 hidden units.

CS231n, "Neural Networks Part 1": more neurons can express more complicated functions.
One hidden ReLU layer trained by full-batch Adam on the 3-class spiral (manual backprop);
the JSON reports train and validation accuracy for each width.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.data.preprocess import stratified_split
from jaxmlp.data.synthetic import spiral
from jaxmlp.demos.common import grid_over, new_figure, percent, plot_regions, save_figure
from jaxmlp.demos.gd import accuracy_of, predict_sets, train_full_batch
from jaxmlp.types import Array

NAME = "capacity"
HIDDEN = (3, 6, 20)


def run(key: Array, out_dir: Path, *, quick: bool = False) -> dict:
    """Train one net per width in HIDDEN; plot regions side by side; return the numbers."""
    steps = 400 if quick else 3000
    data_key, split_key, init_key = jax.random.split(key, 3)
    data = spiral(data_key, n_per_class=100, num_classes=3, noise=0.2)
    train, val = stratified_split(split_key, data, 0.3)
    xt, yt, xv, yv = (jnp.asarray(a) for a in (train.x, train.y, val.x, val.y))
    grid = grid_over(train.x, 80 if quick else 250)
    fig, axes = new_figure(len(HIDDEN), size=3.4)
    results = {}
    for ax, h in zip(axes[0], HIDDEN):
        init_key, k = jax.random.split(init_key)
        fit = train_full_batch(k, xt, yt, sizes=(2, h, 3), steps=steps, learning_rate=0.02, optimizer="adam")
        pred_t, pred_v, regions = predict_sets(fit.params, xt, xv, grid.points)
        acc_t, acc_v = accuracy_of(pred_t, yt), accuracy_of(pred_v, yv)
        results[str(h)] = {"train_accuracy": acc_t, "val_accuracy": acc_v,
                           "final_loss": float(np.asarray(fit.losses)[-1])}
        plot_regions(ax, grid, regions, xt, yt, 3, title=f"{h} hidden neurons\ntrain {percent(acc_t)}, val {percent(acc_v)}")
    fig.suptitle("More hidden neurons, more capacity (spiral, 1 hidden ReLU layer)", fontsize=11)
    figures = [save_figure(fig, out_dir, NAME)]
    numbers = {"data": {"set": "spiral", "train": len(train), "val": len(val), "noise": 0.2},
               "training": {"optimizer": "adam", "learning_rate": 0.02, "steps": steps, "backprop": "manual"},
               "hidden": results, "figures": figures}
    return numbers
