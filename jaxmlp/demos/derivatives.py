"""Demo `activations`: each activation and its derivative, hand-written vs `jax.grad`.

The derivative drawn for every activation is the one the manual backprop uses,
`Activation.backward(da=1, z, a)`, overlaid with `vmap(grad(forward))`. The JSON reports the
largest absolute gap between the two over the plotted range (kinks included: z = 0 is on the
grid, and activations.py breaks ties exactly as jax.grad does).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.activations import get_activation
from jaxmlp.demos.common import new_figure, save_figure
from jaxmlp.types import Array

NAME = "activations"

# (label, activation name, options)
CASES: tuple[tuple[str, str, dict], ...] = (
    ("sigmoid", "sigmoid", {}),
    ("tanh", "tanh", {}),
    ("relu", "relu", {}),
    ("leaky_relu a=0.01", "leaky_relu", {"alpha": 0.01}),
    ("leaky_relu a=0.1", "leaky_relu", {"alpha": 0.1}),
    ("elu", "elu", {}),
    ("gelu", "gelu", {}),
    ("gelu (tanh approx.)", "gelu", {"approximate": True}),
)


def z_grid(n: int, limit: float = 4.0) -> np.ndarray:
    """(n,) float32 evenly spaced points in [-limit, limit] with z = 0 included exactly (n odd)."""
    half = np.linspace(0.0, limit, n // 2 + 1, dtype=np.float32)[1:]
    return np.concatenate([-half[::-1], np.zeros(1, np.float32), half])


def derivatives(name: str, z: Array, **options) -> tuple[Array, Array, Array]:
    """(a, manual da/dz, autodiff da/dz), each (n,), of activation `name` at z (n,)."""
    act = get_activation(name, **options)
    a = act.forward(z, None)
    manual, _ = act.backward(jnp.ones_like(z), z, a, None)
    auto = jax.vmap(jax.grad(lambda s: act.forward(s, None)))(z)
    return a, manual, auto


@jax.jit
def all_derivatives(z: Array) -> dict[str, tuple[Array, Array, Array]]:
    """`derivatives` of every case in CASES, keyed by label, in one compiled call."""
    return {label: derivatives(name, z, **opts) for label, name, opts in CASES}


def max_gaps(curves: dict[str, tuple[Array, Array, Array]]) -> dict[str, float]:
    """Max |manual - autodiff| derivative, per case label, from `all_derivatives`' output."""
    return {label: float(np.max(np.abs(np.asarray(m) - np.asarray(g)))) for label, (_, m, g) in curves.items()}


def run(key: Array, out_dir: Path, *, quick: bool = False) -> dict:
    """Plot every activation (top) and its two derivatives (bottom); return the numbers."""
    del key  # deterministic
    z = z_grid(201 if quick else 2001)

    curves = all_derivatives(jnp.asarray(z))
    gaps = max_gaps(curves)
    per_row = 4
    rows = -(-len(CASES) // per_row)
    fig, axes = new_figure(per_row, 2 * rows, size=2.8, aspect=0.8)
    for i, (label, name, opts) in enumerate(CASES):
        a, manual, auto = curves[label]
        top, bottom = axes[2 * (i // per_row), i % per_row], axes[2 * (i // per_row) + 1, i % per_row]
        top.plot(z, np.asarray(a), color="black", lw=1.5)
        top.set_title(label, fontsize=9)
        bottom.plot(z, np.asarray(manual), color="#2e63b8", lw=2.5, label="manual backward")
        bottom.plot(z, np.asarray(auto), color="#f39c12", lw=1.2, ls="--", label="jax.grad")
        bottom.set_xlabel(f"z   (max gap {gaps[label]:.1e})", fontsize=8)
        for ax in (top, bottom):
            ax.axhline(0, color="0.8", lw=0.6, zorder=0)
            ax.axvline(0, color="0.8", lw=0.6, zorder=0)
            ax.tick_params(labelsize=7)
    for r in range(rows):
        axes[2 * r, 0].set_ylabel("f(z)")
        axes[2 * r + 1, 0].set_ylabel("f'(z)")
    axes[1, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Activations (rows 1, 3) and derivatives (rows 2, 4): manual backward vs jax.grad", fontsize=11)
    figures = [save_figure(fig, out_dir, NAME)]
    numbers = {"grid": {"points": int(z.shape[0]), "limit": float(z.max())},
               "max_abs_derivative_gap": gaps, "max_gap_overall": max(gaps.values()), "figures": figures}
    return numbers
