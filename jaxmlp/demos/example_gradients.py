"""Demo `example-gradients`: which MNIST digits pull hardest on the weights, and how the
gradient noise scale moves during training.

A 784-256-10 relu net trains a few epochs on MNIST with `track_gradients` (the trainer's
scanned step computes every example's gradient norm from the manual backward pass's cache).
Then one pass of per-example statistics (gradstats.py) ranks the whole training set by ‖g_i‖,
the norm of the gradient of example i's own loss at the trained params: the top of the list
are digits the net gets wrong or barely right, typically ambiguous or mislabeled. The second
figure follows the noise scale B_simple over the epochs (the trainer's EMA estimate), with
the exact whole-training-set value at init and at the end (noise_scale.dataset_estimate);
McCandlish et al. (2018) report that it grows as the loss falls.

MNIST is looked for where `load_dataset("mnist", data_dir=..., download=...)` looks: `data_dir`
(`jaxmlp demo --data-dir`), $JAXMLP_DATA, then the cache; `download` fetches it when missing.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from jaxmlp.activations import get_activation
from jaxmlp.batching import pad_rows
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.demos.common import integer_ticks, log_scale, new_figure, save_figure
from jaxmlp.gradstats import gradient_stats
from jaxmlp.losses import get_loss
from jaxmlp.noise_scale import NoiseEstimate, dataset_estimate, noise_scale
from jaxmlp.training.predict import predict
from jaxmlp.training.fit import fit
from jaxmlp.training.state import init_params, run_keys
from jaxmlp.types import Array

NAME = "example-gradients"
TOP = 24  # examples in the image grid


def example_norms(params, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(‖g_i‖ (N,), loss_i (N,)) of every example of x (N, 784), y (N,): relu, cross-entropy, eval mode."""
    rows, _ = pad_rows(x.shape[0], batch_size)  # (nb, B); the padding repeats row 0 and is cut off
    x, y = jnp.asarray(x), jnp.asarray(y)

    def one(rows_j):
        losses, stats = gradient_stats(params, x[rows_j], y[rows_j], train=False)
        return jnp.sqrt(stats.sq_norm), losses

    norms, losses = jax.jit(lambda r: jax.lax.map(one, r))(jnp.asarray(rows))
    return np.asarray(norms).reshape(-1)[: len(x)], np.asarray(losses).reshape(-1)[: len(x)]


def exact_noise_scale(params, x: np.ndarray, y: np.ndarray) -> float:
    """B_simple of the whole set at these params (relu, cross-entropy, no dropout)."""
    est = dataset_estimate(params, x, y, None, loss=get_loss("softmax_cross_entropy"), act=get_activation("relu"))
    return float(noise_scale(NoiseEstimate(jnp.sum(est.signal), jnp.sum(est.noise))))


def _grid(out_dir: Path, x: np.ndarray, y: np.ndarray, pred: np.ndarray, norms: np.ndarray, top: np.ndarray) -> str:
    fig, axes = new_figure(8, len(top) // 8, size=1.35, aspect=1.25)
    for ax, i in zip(axes.ravel(), top):
        ax.imshow(x[i].reshape(28, 28), cmap="gray_r")
        wrong = pred[i] != y[i]
        ax.set_title(f"label {y[i]}, net {pred[i]}\n‖g‖ {norms[i]:.1f}", fontsize=7,
                     color="#c0392b" if wrong else "black")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"The {len(top)} MNIST training digits with the largest per-example gradient norm "
                 "(red: the net disagrees with the label)", fontsize=9)
    return save_figure(fig, out_dir, NAME)


def _noise_curve(out_dir: Path, history, init_scale: float, final_scale: float, what: str) -> str:
    return save_figure(noise_curve_figure(history, init_scale, final_scale, what), out_dir, f"{NAME}-noise-scale")


def noise_curve_figure(history, init_scale: float, final_scale: float, what: str) -> Figure:
    """The tracked B_simple per epoch and the exact one at init (epoch 0) and at the end, on a log
    axis, and the training loss on a second axis; the legend below both."""
    fig, axes = new_figure(1, size=6.0, aspect=0.6)
    ax = axes[0, 0]
    epochs = np.asarray(history.epoch)
    tracked = np.asarray([g["noise_scale"] for g in history.gradients], dtype=float)
    ax.plot(epochs, tracked, "o-", color="tab:purple", label="B_simple, EMA over the epoch's minibatches")
    ax.plot([0, epochs[-1]], [init_scale, final_scale], "s", color="black", label="exact, whole training set")
    ax.set_xlabel("epoch (0: init)")
    integer_ticks(ax.xaxis)
    ax.set_ylabel("gradient noise scale B_simple")
    log_scale(ax, [*tracked, init_scale, final_scale])
    loss_ax = ax.twinx()
    loss_ax.plot(epochs, history.train_loss, "--", color="tab:blue", label="training loss")
    loss_ax.set_ylabel("training loss (minibatch mean)")
    # one legend below the axes: inside, any corner covers a curve's end (the loss falls to the lower right)
    handles = [h for a in (ax, loss_ax) for h in a.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    ax.set_title(f"The noise scale grows as the loss falls ({what})", fontsize=10)
    return fig


def run(key: Array, out_dir: Path, *, quick: bool = False, data_dir: str | None = None,
        download: bool = False) -> dict:
    """Train with track_gradients, rank the training set by ‖g_i‖, plot both figures."""
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    config = TrainConfig(dataset="mnist", hidden=(64,) if quick else (256,), epochs=2 if quick else 6,
                         batch_size=128, optimizer="adam", learning_rate=1e-3, dropout=0.0, track_gradients=True,
                         seed=seed, n_samples=4000 if quick else None, checkpoint_every=0)
    splits = load_dataset("mnist", data_dir=data_dir, download=download, n_samples=config.n_samples,
                          seed=config.data_seed)
    x, y = splits.train.x, splits.train.y.astype(np.int32)
    init = init_params(run_keys(seed)[0], config, (784, *config.hidden, 10))
    init_scale = exact_noise_scale(init, x, y)
    params, history = fit(config, splits.train, test=splits.test)
    final_scale = exact_noise_scale(params, x, y)
    norms, losses = example_norms(params, x, y)
    pred = np.asarray(predict(params, x)).argmax(axis=1)
    top = np.argsort(-norms)[:TOP]
    what = f"MNIST {len(x)}, {'-'.join(map(str, (784, *config.hidden, 10)))} relu, batch {config.batch_size}"
    figures = [_grid(out_dir, x, y, pred, norms, top), _noise_curve(out_dir, history, init_scale, final_scale, what)]
    wrong = pred != y
    return {
        "training": {"sizes": [784, *config.hidden, 10], "epochs": config.epochs, "batch_size": config.batch_size,
                     "optimizer": "adam 1e-3", "n_train": len(x), "test_accuracy": history.final["test"]["accuracy"]},
        "noise_scale": {"exact_at_init": init_scale, "exact_after_training": final_scale,
                        "tracked_per_epoch": [g["noise_scale"] for g in history.gradients],
                        "train_loss_per_epoch": history.train_loss},
        "top_examples": [{"index": int(i), "label": int(y[i]), "predicted": int(pred[i]), "grad_norm": norms[i],
                          "loss": losses[i]} for i in top],
        "top_misclassified_fraction": float(np.mean(wrong[top])),
        "train_misclassified_fraction": float(np.mean(wrong)),
        "grad_norm_percentiles": dict(zip(("p50", "p90", "p99", "max"), np.percentile(norms, [50, 90, 99, 100]))),
        "figures": figures,
    }
