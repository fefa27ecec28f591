"""Demo `linear-collapse`: stacked linear layers are one linear map.

CS231n / CS182: without a nonlinearity, x W1 W2 ... WL (plus biases) is x W + b with
W = W1 W2 ... WL and b = (((b1 W2 + b2) W3 + b3) ... ) WL + bL, so depth adds nothing. The
demo collapses a random 4-layer identity-activation net, compares its outputs with the single
matrix's (max |difference| in the JSON), then trains a deep linear net on the spiral: its
decision regions are those of a linear classifier (straight boundaries).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.data.synthetic import spiral
from jaxmlp.demos.common import grid_over, percent, plot_regions, save_figure
from jaxmlp.demos.gd import accuracy_of, predict_sets, train_full_batch
from jaxmlp.mlp import Params, init_mlp, mlp_apply
from jaxmlp.types import Array

NAME = "linear-collapse"
SIZES = (4, 8, 8, 8, 3)


@jax.jit
def collapse(params: Params) -> tuple[Array, Array]:
    """The single affine map (W (d_in, d_out), b (d_out,)) equal to an identity-activation MLP."""
    W, b = params[0].W, params[0].b
    for layer in params[1:]:
        W, b = W @ layer.W, b @ layer.W + layer.b
    return W, b


@jax.jit
def deep_and_flat(params: Params, x: Array) -> tuple[Array, Array]:
    """(deep net's outputs, x W + b with the collapsed map), both (N, d_out), for x (N, d_in)."""
    W, b = collapse(params)
    return mlp_apply(params, x, activation="identity"), x @ W + b


def collapse_gap(params: Params, x: Array) -> float:
    """max |deep(x) - (x W + b)| over x (N, d_in): zero up to float rounding."""
    deep, flat = deep_and_flat(params, x)
    return float(np.max(np.abs(np.asarray(deep) - np.asarray(flat))))


@jax.jit
def random_linear_net(key: Array) -> tuple[Params, Array]:
    """An identity-activation MLP of SIZES with random weights AND biases, and inputs x (500, d_in)."""
    init_key, bias_key, x_key = jax.random.split(key, 3)
    params = init_mlp(init_key, SIZES, activation="identity")
    bias_keys = jax.random.split(bias_key, len(params))
    params = [layer._replace(b=0.1 * jax.random.normal(k, layer.b.shape)) for layer, k in zip(params, bias_keys)]
    return params, jax.random.normal(x_key, (500, SIZES[0]))


def run(key: Array, out_dir: Path, *, quick: bool = False) -> dict:
    """Show the factor matrices and their product, outputs deep vs collapsed, and a trained
    deep linear classifier's regions."""
    net_key, data_key, train_key = jax.random.split(key, 3)
    params, x = random_linear_net(net_key)
    W, b = (np.asarray(a) for a in collapse(params))
    deep, flat = (np.asarray(a) for a in deep_and_flat(params, x))
    gap = float(np.max(np.abs(deep - flat)))

    fig = _figure_matrices(params, W)
    ax_out = fig.axes[-2]
    ax_out.scatter(flat.ravel(), deep.ravel(), s=5, color="#2e63b8")
    lim = float(np.max(np.abs(flat))) * 1.05
    ax_out.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8, zorder=0)
    ax_out.set_title(f"outputs on 500 random inputs: 4 layers vs 1 matrix\nmax |diff| = {gap:.1e}", fontsize=9)
    ax_out.set_xlabel("x W + b")
    ax_out.set_ylabel("deep linear net")

    data = spiral(data_key, n_per_class=100, num_classes=3, noise=0.2)
    xs, ys = jnp.asarray(data.x), jnp.asarray(data.y)
    steps = 300 if quick else 2000
    sizes = (2, 16, 16, 16, 3)
    fit = train_full_batch(train_key, xs, ys, sizes=sizes, steps=steps, learning_rate=0.02,
                           optimizer="adam", activation="identity")
    grid = grid_over(data.x, 80 if quick else 250)
    pred, regions = predict_sets(fit.params, xs, grid.points, activation="identity")
    acc = accuracy_of(pred, ys)
    trained_gap = collapse_gap(fit.params, xs)
    plot_regions(fig.axes[-1], grid, regions, xs, ys, 3,
                 title=f"trained {'-'.join(map(str, sizes))} linear net: straight boundaries, train acc {percent(acc)}")
    fig.suptitle("Stacked linear layers collapse to one matrix", fontsize=11)
    figures = [save_figure(fig, out_dir, NAME)]
    return {"sizes": SIZES, "product_matrix": W, "product_bias": b, "max_abs_output_difference": gap,
            "max_abs_output": float(np.max(np.abs(deep))),
            "trained_deep_linear": {"sizes": sizes, "steps": steps, "train_accuracy": acc,
                                    "max_abs_output_difference": trained_gap},
            "figures": figures}


def _figure_matrices(params: Params, W: Array):
    """Heat maps W1 ... WL = W in the top row; two empty axes below for outputs and regions."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 6.4), layout="constrained")
    grid = fig.add_gridspec(2, len(params) + 1, height_ratios=(1, 1.6))
    vmax = max(float(np.max(np.abs(np.asarray(m)))) for m in [W, *(layer.W for layer in params)])
    for i, layer in enumerate(params):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(np.asarray(layer.W), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"W{i + 1} {tuple(layer.W.shape)}" + ("  x" if i < len(params) - 1 else "  ="), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[0, len(params)])
    image = ax.imshow(np.asarray(W), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_title(f"W = W1 W2 W3 W4 {tuple(W.shape)}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(image, ax=ax, shrink=0.8)
    half = (len(params) + 1) // 2
    fig.add_subplot(grid[1, :half])
    fig.add_subplot(grid[1, half:])
    return fig
