"""Demo `regularization`: 20 hidden units with L2 strength 0, 0.001, 0.01 and 0.1.

CS231n, "Neural Networks Part 1": do not use a smaller network to prevent overfitting; use a
bigger one with stronger regularization. The data are noisy two moons (a spiral needs large
weights, so any real L2 wipes it out); the JSON reports train and validation accuracy, each
averaged over a few seeds (data split and init), next to a small 3-unit net without L2, and
which L2 strength did best on validation.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.data.preprocess import stratified_split
from jaxmlp.data.synthetic import moons
from jaxmlp.demos.common import grid_over, new_figure, percent, plot_regions, save_figure
from jaxmlp.demos.gd import accuracy_of, predict_sets, train_full_batch
from jaxmlp.types import Array

NAME = "regularization"
# (label, hidden units, l2 strength); the first is the small-net baseline
MODELS = (("3 hidden, no L2", 3, 0.0), ("20 hidden, no L2", 20, 0.0), ("20 hidden, L2 0.001", 20, 1e-3),
          ("20 hidden, L2 0.01", 20, 1e-2), ("20 hidden, L2 0.1", 20, 1e-1))


def run(key: Array, out_dir: Path, *, quick: bool = False) -> dict:
    """Train every model in MODELS on `seeds` splits; plot the first seed's regions."""
    steps, seeds = (400, 1) if quick else (3000, 3)
    data_key, key = jax.random.split(key)
    data = moons(data_key, n=400, noise=0.3)
    accs = {label: [] for label, _, _ in MODELS}
    grid = grid_over(data.x, 80 if quick else 250)
    fig, axes = new_figure(len(MODELS), size=3.0)
    for seed in range(seeds):
        key, split_key, init_key = jax.random.split(key, 3)
        train, val = stratified_split(split_key, data, 0.5)
        xt, yt, xv, yv = (jnp.asarray(a) for a in (train.x, train.y, val.x, val.y))
        for col, (label, h, l2) in enumerate(MODELS):
            init_key, k = jax.random.split(init_key)
            fit = train_full_batch(k, xt, yt, sizes=(2, h, 2), steps=steps, learning_rate=0.02,
                                   optimizer="adam", l2=l2)
            pred_t, pred_v, regions = predict_sets(fit.params, xt, xv, grid.points)
            t, v = accuracy_of(pred_t, yt), accuracy_of(pred_v, yv)
            accs[label].append((t, v))
            if seed == 0:
                plot_regions(axes[0, col], grid, regions, xt, yt, 2, title=f"{label}\ntrain {percent(t)}, val {percent(v)}")
    fig.suptitle("Bigger net + L2 vs a small net (noisy moons, seed 0 shown)", fontsize=11)
    figures = [save_figure(fig, out_dir, NAME)]
    models = {}
    for label, h, l2 in MODELS:
        a = np.asarray(accs[label])  # (seeds, 2)
        models[label] = {"hidden": h, "l2": l2, "train_accuracy": float(a[:, 0].mean()),
                         "val_accuracy": float(a[:, 1].mean()), "val_accuracy_per_seed": a[:, 1]}
    best = max((m for m in models if m.startswith("20")), key=lambda m: models[m]["val_accuracy"])
    numbers = {"data": {"set": "moons", "n": len(data), "noise": 0.3, "val_fraction": 0.5},
               "training": {"optimizer": "adam", "learning_rate": 0.02, "steps": steps, "seeds": seeds,
                            "backprop": "manual"},
               "models": models,
               # chosen on the same validation splits it is scored on (hyperparameter selection)
               "best_big_net": best,
               "best_big_minus_small_val_accuracy":
                   models[best]["val_accuracy"] - models[MODELS[0][0]]["val_accuracy"],
               "figures": figures}
    return numbers
