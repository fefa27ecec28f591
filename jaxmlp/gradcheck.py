"""Gradient checking: hand-written backprop vs jax.grad vs centered finite differences.

For every parameter leaf (layer, field) it reports the CS231n relative error

    rel(a, b) = max |a - b| / max(max |a|, max |b|, tiny)

taken over the leaf (a leaf-wise max, so entries that cancel to ~0 do not blow it up), for
manual vs autodiff over the whole leaf and for autodiff vs numeric over sampled entries.

    rows = gradcheck(params, x, y, loss="softmax_cross_entropy", activation="tanh")
    print(format_table(rows))

The CLI `jaxmlp gradcheck --sizes 784,100,10 --dtype float64` prints that table on random
data and exits 1 when a tolerance is exceeded.
"""
from __future__ import annotations

import argparse
import sys
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.activations import get_activation
from jaxmlp.backprop import loss_and_grad, objective
from jaxmlp.losses import get_loss
from jaxmlp.mlp import init_mlp
from jaxmlp.names import ACTIVATIONS, LOSS_NAMES
from jaxmlp.types import Array

# Default tolerances by dtype: (manual vs autodiff, autodiff vs numeric).
TOLERANCES = {"float64": (1e-12, 1e-6), "float32": (1e-5, 5e-2)}
# Finite-difference step by dtype: float32 needs a coarse step to beat round-off.
STEPS = {"float64": 1e-6, "float32": 1e-3}


class GradCheckRow(NamedTuple):
    layer: int
    field: str  # "W", "b" or "alpha"
    manual_vs_autodiff: float
    autodiff_vs_numeric: float
    checked: int  # entries compared against finite differences


def relative_error(a, b) -> float:
    """max |a - b| / max(max |a|, max |b|, tiny) over all entries (0.0 for two zero arrays)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def numeric_grad_at(f, params, path_leaf: int, indices: Array, eps: float) -> Array:
    """Centered differences (f(p + eps e_i) - f(p - eps e_i)) / 2 eps at flat `indices` of one leaf.

    f: params -> scalar. path_leaf indexes `jax.tree.leaves(params)`. Returns (len(indices),).
    """
    leaves, treedef = jax.tree.flatten(params)
    leaf = leaves[path_leaf]

    def f_shifted(i, delta):
        shifted = leaf.ravel().at[i].add(delta).reshape(leaf.shape)
        new_leaves = leaves[:path_leaf] + [shifted] + leaves[path_leaf + 1:]
        return f(jax.tree.unflatten(treedef, new_leaves))

    plus = jax.vmap(lambda i: f_shifted(i, eps))(indices)
    minus = jax.vmap(lambda i: f_shifted(i, -eps))(indices)
    return (plus - minus) / (2 * eps)


def gradcheck(params, x, y, *, key: Array | None = None, num_checks: int | None = 20,
              eps: float | None = None, loss: str = "softmax_cross_entropy", l2: float = 0.0,
              activation: str = "relu", dropout: float = 0.0, input_noise: float = 0.0,
              **activation_options) -> list[GradCheckRow]:
    """Compare manual, autodiff and numeric gradients of the objective for every param leaf.

    x (B, d_in), y targets. `key` drives dropout/noise (the same mask in every evaluation) and
    picks `num_checks` random entries per leaf for finite differences (None: every entry).
    """
    dtype = jnp.result_type(params[0].W).name
    eps = STEPS.get(dtype, 1e-6) if eps is None else eps
    key = jax.random.key(0) if key is None else key
    model_key, pick_key = jax.random.split(key)
    loss_fn, act = get_loss(loss), get_activation(activation, **activation_options)
    settings = dict(loss=loss_fn, l2=l2, activation=act, key=model_key, dropout=dropout, input_noise=input_noise,
                    train=True)
    _, manual = loss_and_grad(params, x, y, method="manual", **settings)
    _, auto = loss_and_grad(params, x, y, method="autodiff", **settings)
    f = jax.jit(lambda p: objective(p, x, y, **settings))

    rows = []
    leaf_index = 0
    pick_keys = jax.random.split(pick_key, 3 * len(params))
    for layer_i, (m_layer, a_layer) in enumerate(zip(manual, auto)):
        for field in ("W", "b", "alpha"):
            a_leaf, m_leaf = getattr(a_layer, field), getattr(m_layer, field)
            if a_leaf is None:
                continue
            size = a_leaf.size
            if num_checks is None or num_checks >= size:
                idx = jnp.arange(size)
            else:
                idx = jax.random.choice(pick_keys[leaf_index], size, (num_checks,), replace=False)
            numeric = numeric_grad_at(f, params, leaf_index, idx, eps)
            rows.append(GradCheckRow(layer_i, field, relative_error(m_leaf, a_leaf),
                                     relative_error(a_leaf.ravel()[idx], numeric), int(idx.size)))
            leaf_index += 1
    return rows


def format_table(rows: Sequence[GradCheckRow]) -> str:
    """A plain-text table: layer, field, manual-vs-autodiff, autodiff-vs-numeric, entries checked."""
    lines = [f"{'layer':>5}  {'field':<5}  {'manual-vs-autodiff':>18}  {'autodiff-vs-numeric':>19}  {'checked':>7}"]
    for r in rows:
        lines.append(f"{r.layer:>5}  {r.field:<5}  {r.manual_vs_autodiff:>18.3e}  "
                     f"{r.autodiff_vs_numeric:>19.3e}  {r.checked:>7}")
    return "\n".join(lines)


def random_problem(key: Array, sizes: Sequence[int], loss: str, batch: int, dtype) -> tuple[Array, Array]:
    """Random inputs (batch, d_in) and targets that fit `loss` for an MLP with `sizes`."""
    x_key, y_key = jax.random.split(key)
    x = jax.random.normal(x_key, (batch, sizes[0]), dtype)
    loss_fn = get_loss(loss)
    if loss_fn.integer_labels:
        y = jax.random.randint(y_key, (batch,), 0, sizes[-1])
    elif loss_fn.name == "binary_logistic":
        y = jax.random.bernoulli(y_key, 0.5, (batch, sizes[-1])).astype(dtype)
    else:
        y = jax.random.normal(y_key, (batch, sizes[-1]), dtype)
    return x, y


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes must be comma-separated integers like 784,100,10, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxmlp gradcheck",
                                description="Compare manual backprop, jax.grad and finite differences "
                                            "on a random net and random data.")
    p.add_argument("--sizes", type=_parse_sizes, default=(784, 100, 10),
                   help="layer sizes d_in,h1,...,d_out (default 784,100,10)")
    p.add_argument("--activation", default="relu", metavar="NAME",
                   help=f"hidden activation, one of {', '.join(ACTIVATIONS)} (default %(default)s)")
    p.add_argument("--loss", default="softmax_cross_entropy", metavar="NAME",
                   help=f"one of {', '.join(LOSS_NAMES)} (default %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                   help="dtype of the params and data (default %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="random examples (default %(default)s)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 strength of the objective (default %(default)s)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="probability to drop a hidden unit; one fixed mask (default %(default)s)")
    p.add_argument("--input-noise", type=float, default=0.0,
                   help="std of Gaussian noise added to x; one fixed draw (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the net, data and checks (default %(default)s)")
    p.add_argument("--num-checks", type=int, default=20,
                   help="finite-difference entries per leaf; 0 = all (default %(default)s)")
    tolerances = {i: ", ".join(f"{tol[i]:g} in {dtype}" for dtype, tol in TOLERANCES.items()) for i in (0, 1)}
    p.add_argument("--tol-manual", type=float, default=None,
                   help=f"manual-vs-autodiff tolerance (default {tolerances[0]})")
    p.add_argument("--tol-numeric", type=float, default=None,
                   help=f"autodiff-vs-numeric tolerance (default {tolerances[1]})")
    return p


def _run(args: argparse.Namespace) -> list[GradCheckRow]:
    """Build the random problem the flags describe and check it."""
    dtype = jnp.dtype(args.dtype)
    init_key, data_key, check_key = jax.random.split(jax.random.key(args.seed), 3)
    params = init_mlp(init_key, args.sizes, activation=args.activation, dtype=dtype)
    x, y = random_problem(data_key, args.sizes, args.loss, args.batch, dtype)
    return gradcheck(params, x, y, key=check_key, num_checks=args.num_checks or None, loss=args.loss,
                     l2=args.l2, activation=args.activation, dropout=args.dropout, input_noise=args.input_noise)


def main(argv: Sequence[str] | None = None) -> int:
    """`jaxmlp gradcheck ...`: print the table; 0 if within tolerance, 1 if not, 2 for bad input."""
    args = build_parser().parse_args(argv)
    if args.batch < 1 or args.num_checks < 0:
        print("jaxmlp gradcheck: error: --batch must be >= 1 and --num-checks >= 0", file=sys.stderr)
        return 2
    with jax.enable_x64(args.dtype == "float64"):  # scoped: the caller keeps its own setting
        try:
            rows = _run(args)
        except ValueError as err:
            print(f"jaxmlp gradcheck: error: {err}", file=sys.stderr)
            return 2
    tol_manual, tol_numeric = TOLERANCES[args.dtype]
    tol_manual = args.tol_manual if args.tol_manual is not None else tol_manual
    tol_numeric = args.tol_numeric if args.tol_numeric is not None else tol_numeric
    print(format_table(rows))
    worst_manual = max(r.manual_vs_autodiff for r in rows)
    worst_numeric = max(r.autodiff_vs_numeric for r in rows)
    ok = worst_manual <= tol_manual and worst_numeric <= tol_numeric
    print(f"worst manual-vs-autodiff {worst_manual:.3e} (tol {tol_manual:.0e}), "
          f"autodiff-vs-numeric {worst_numeric:.3e} (tol {tol_numeric:.0e}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
