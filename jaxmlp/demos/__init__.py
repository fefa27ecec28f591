"""The lectures' demonstrations, one command each:
`jaxmlp demo NAME [--quick] [--out-dir DIR] [--seed N] [--data-dir DIR] [--download]`.

Each demo trains its small model(s) full-batch (every step on the whole training set: Adam, or
plain gradient descent for dead-relu) on the hand-written backprop (demos/gd.py), writes a PNG and a JSON of its numbers to the output directory
(default runs/demos/, which git ignores; `--out-dir results/figures` refreshes the committed
figures), and returns those numbers.

One module per demo: derivatives (activations), capacity, regularization, features,
dead_relu, universal (universal-approximation), linear_collapse, and example_gradients
(trained on MNIST with the trainer, not full-batch; MNIST from --data-dir, $JAXMLP_DATA or the
cache, or --download).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import jax

from jaxmlp.data import DataError
from jaxmlp.demos import (capacity, dead_relu, derivatives, example_gradients, features, linear_collapse,
                          regularization, universal)
from jaxmlp.demos.common import save_json

DEFAULT_OUT_DIR = Path("runs/demos")

SUMMARY = """\
    activations               each activation's derivative: manual backward vs jax.grad
    capacity                  spiral decision regions with 3, 6 and 20 hidden units
    regularization            20 hidden units with L2 0, 0.001, 0.01, 0.1 vs a small net
    features                  XOR: raw features vs x1*x2 vs a hidden layer
    dead-relu                 fraction of dead ReLUs per epoch at sensible / too-large learning rates
    universal-approximation   one hidden layer of growing width fitting sin(x)
    linear-collapse           stacked linear layers equal one matrix
    example-gradients         MNIST digits with the largest per-example gradient norm; the noise scale
"""

DEMOS: dict[str, Callable[..., dict]] = {
    derivatives.NAME: derivatives.run,
    capacity.NAME: capacity.run,
    regularization.NAME: regularization.run,
    features.NAME: features.run,
    dead_relu.NAME: dead_relu.run,
    universal.NAME: universal.run,
    linear_collapse.NAME: linear_collapse.run,
    example_gradients.NAME: example_gradients.run,
}
DATA_DEMOS = (example_gradients.NAME,)  # the demos that read a data set: --data-dir and --download apply


def run_demo(name: str, *, out_dir: str | Path = DEFAULT_OUT_DIR, seed: int = 0, quick: bool = False,
             data_dir: str | None = None, download: bool = False) -> dict:
    """Run one demo: its PNG(s) and `NAME.json` go to out_dir; returns the JSON's numbers.

    Each demo's key is fold_in(key(seed), index of the demo), so demos are independent of each
    other. data_dir and download go to the demos in DATA_DEMOS (as `load_dataset` takes them).
    """
    if name not in DEMOS:
        raise ValueError(f"unknown demo {name!r}; choose one of {', '.join(DEMOS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = jax.random.fold_in(jax.random.key(seed), list(DEMOS).index(name))
    data = {"data_dir": data_dir, "download": download} if name in DATA_DEMOS else {}
    numbers = {"demo": name, "seed": seed, "quick": quick, **DEMOS[name](key, out_dir, quick=quick, **data)}
    save_json(numbers, out_dir, name)
    return numbers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxmlp demo", description="Reproduce one of the lecture notes' demonstrations.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SUMMARY)
    parser.add_argument("name", choices=[*DEMOS, "all"], metavar="NAME",
                        help=f"one of: {', '.join(DEMOS)}, or all")
    parser.add_argument("--quick", action="store_true", help="fewer steps and coarser plots (for tests)")
    parser.add_argument("--out-dir", default=str(DEFAULT_OUT_DIR),
                        help="where PNGs and JSON go (default %(default)s; results/figures refreshes the committed "
                        "figures)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default %(default)s)")
    reads = ", ".join(DATA_DEMOS)
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help=f"{reads}: where MNIST is looked for (default: $JAXMLP_DATA, then the cache)")
    parser.add_argument("--download", action="store_true",
                        help=f"{reads}: download MNIST (checksums verified) when it is not found")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry: `NAME [--quick] [--out-dir DIR] [--seed N] [--data-dir DIR] [--download]`;
    returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    names = list(DEMOS) if args.name == "all" else [args.name]
    if (args.data_dir is not None or args.download) and not set(names) & set(DATA_DEMOS):
        flag = "--data-dir" if args.data_dir is not None else "--download"
        print(f"jaxmlp demo: error: {flag} applies only to the demos that read data ({', '.join(DATA_DEMOS)}), "
              f"not to {args.name}", file=sys.stderr)
        return 2
    try:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, or no permission
        why = "exists and is not a directory" if Path(args.out_dir).exists() else f"cannot be created ({exc.strerror})"
        print(f"jaxmlp demo: error: --out-dir {args.out_dir} {why}", file=sys.stderr)
        return 2
    for name in names:
        start = time.perf_counter()
        try:
            numbers = run_demo(name, out_dir=args.out_dir, seed=args.seed, quick=args.quick,
                               data_dir=args.data_dir, download=args.download)
        except DataError as exc:  # example-gradients without MNIST
            print(f"jaxmlp demo: error: {name}: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        files = ", ".join(str(Path(args.out_dir) / f) for f in [*numbers["figures"], f"{name}.json"])
        print(f"{name}: {time.perf_counter() - start:.1f}s -> {files}")
    return 0


__all__ = ["DEMOS", "DATA_DEMOS", "DEFAULT_OUT_DIR", "run_demo", "main", "build_parser"]


if __name__ == "__main__":
    raise SystemExit(main())
