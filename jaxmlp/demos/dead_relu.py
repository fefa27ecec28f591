"""Demo `dead-relu`: too large a learning rate kills ReLU units.

CS231n, "Neural Networks Part 1": a large gradient step can push a ReLU's weights where it is
never active again; "as much as 40% of your network can be dead" with a learning rate set too
high. A (2, 100, 100, 3) ReLU net is trained on the spiral by plain full-batch gradient descent
at a sensible and at too-large learning rates. Every step's manual forward pass over the whole
training set also gives metrics.py's dead fraction (units never active on any example), so
"per epoch" here is per full-batch step.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.data.synthetic import spiral
from jaxmlp.demos.common import integer_ticks, new_figure, save_figure
from jaxmlp.demos.gd import accuracy_of, predict_sets, train_full_batch
from jaxmlp.dataset_metrics import dataset_activation_stats
from jaxmlp.types import Array

NAME = "dead-relu"
SIZES = (2, 100, 100, 3)
LEARNING_RATES = (0.5, 2.0, 3.0)  # sensible, too large, far too large (plain gradient descent)
VERDICTS = ("sensible", "too large", "far too large")
COLORS = ("#2e8b3a", "#e67e22", "#c0392b")
# The sensible rate's curves run close to the too-large one's: drawn last, solid and on top, with the
# others dashed and dotted beneath, every curve stays visible.
STYLES = ({"ls": "-", "lw": 2.2, "zorder": 3}, {"ls": "--", "lw": 1.6, "zorder": 2}, {"ls": ":", "lw": 1.8, "zorder": 1})


def dead_fraction_curves(key: Array, x: Array, y: Array, learning_rate: float, steps: int):
    """Train with plain GD; return (fit, dead (steps, 2)) with the per-step dead fractions."""
    fit = train_full_batch(key, x, y, sizes=SIZES, steps=steps, learning_rate=learning_rate,
                           optimizer="sgd", track_activations=True)
    return fit, fit.stats["dead_fraction"]


def run(key: Array, out_dir: Path, *, quick: bool = False) -> dict:
    """Same init for every learning rate; plot dead fraction per layer and loss per step."""
    steps = 200 if quick else 1000
    data_key, init_key = jax.random.split(key)
    data = spiral(data_key, n_per_class=100, num_classes=3, noise=0.2)
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    fig, axes = new_figure(3, size=3.6, aspect=0.85)
    results = {}
    for lr, verdict, color, style in zip(LEARNING_RATES, VERDICTS, COLORS, STYLES):
        fit, dead = dead_fraction_curves(init_key, x, y, lr, steps)
        dead = np.asarray(dead)
        losses = np.asarray(fit.losses)
        (pred,) = predict_sets(fit.params, x)
        results[str(lr)] = {
            "verdict": verdict, "dead_fraction_initial": dead[0], "dead_fraction_final": dead[-1],
            "dead_fraction_max": dead.max(axis=0), "train_accuracy": accuracy_of(pred, y),
            "final_loss": float(losses[-1]),
            # the trained params, checked in batches of 64 (dataset_metrics.dataset_activation_stats)
            "dead_fraction_after_training":
                dataset_activation_stats(fit.params, x, batch_size=64)["dead_fraction"],
        }
        for layer in range(dead.shape[1]):
            axes[0, layer].plot(np.arange(steps), 100 * dead[:, layer], color=color, label=f"lr {lr} ({verdict})",
                                **style)
        axes[0, 2].plot(np.arange(steps), np.minimum(losses, 5.0), color=color, label=f"lr {lr} ({verdict})", **style)
    for layer in range(2):
        axes[0, layer].set_title(f"hidden layer {layer + 1}: dead ReLUs", fontsize=10)
        axes[0, layer].set_ylabel("% units never active on the training set")
        axes[0, layer].set_ylim(-2, 102)
    axes[0, 2].set_title("training loss (clipped at 5)", fontsize=10)
    axes[0, 2].set_yscale("log")
    for ax in axes[0]:
        ax.set_xlabel("full-batch step (epoch)")
        integer_ticks(ax.xaxis)
        ax.legend(fontsize=8)
    fig.suptitle(f"Dead ReLUs vs learning rate: {'-'.join(map(str, SIZES))} net, spiral, plain GD", fontsize=11)
    figures = [save_figure(fig, out_dir, NAME)]
    numbers = {"data": {"set": "spiral", "n": len(data)},
               "training": {"sizes": SIZES, "optimizer": "sgd (plain full-batch GD)", "steps": steps,
                            "backprop": "manual", "same_init_for_all": True},
               "learning_rates": results, "figures": figures}
    return numbers
