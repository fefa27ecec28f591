"""Manual backprop vs jax.grad: jitted loss_and_grad step time for a 784-512-512-10 relu MLP.

    python scripts/bench_grad.py [--batches 128,1024] [--repeats 50]

Writes results/grad_parity.{json,md}. Goal: manual/autodiff time ratio within 1.00 +- 0.05.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402

from _bench import environment, interleaved_medians, time_call, write_results  # noqa: E402
from jaxmlp import init_mlp, loss_and_grad  # noqa: E402

SIZES = (784, 512, 512, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="128,1024")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--name", default="grad_parity", help="results/<name>.{json,md}")
    args = parser.parse_args()

    params = init_mlp(jax.random.key(0), SIZES)
    rows, runs = [], []
    for batch in [int(b) for b in args.batches.split(",")]:
        x = jax.random.normal(jax.random.key(1), (batch, SIZES[0]))
        y = jax.random.randint(jax.random.key(2), (batch,), 0, SIZES[-1])
        steps = {m: jax.jit(lambda p, xx, yy, m=m: loss_and_grad(p, xx, yy, method=m)) for m in ("manual", "autodiff")}
        compile_s = {m: time_call(lambda m=m: steps[m](params, x, y)) for m in steps}  # first call compiles
        for m in steps:  # a few more warm-up calls
            for _ in range(3):
                time_call(lambda m=m: steps[m](params, x, y))
        timed = interleaved_medians({m: (lambda m=m: steps[m](params, x, y)) for m in steps}, args.repeats)
        ratio = timed["manual"]["median_s"] / timed["autodiff"]["median_s"]
        flops = 6 * batch * sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))  # forward + backward matmuls
        runs.append({"batch": batch, "compile_s": compile_s, "timings": timed, "ratio_manual_over_autodiff": ratio,
                     "gflops_per_s": {m: flops / timed[m]["median_s"] / 1e9 for m in steps}})
        rows.append([batch, f"{timed['manual']['median_s'] * 1e3:.3f}", f"{timed['autodiff']['median_s'] * 1e3:.3f}",
                     f"{ratio:.3f}", f"{flops / timed['autodiff']['median_s'] / 1e9:.1f}",
                     f"{compile_s['manual']:.2f} / {compile_s['autodiff']:.2f}"])
        print(f"batch {batch}: manual {timed['manual']['median_s'] * 1e3:.3f} ms, "
              f"autodiff {timed['autodiff']['median_s'] * 1e3:.3f} ms, ratio {ratio:.3f}")
    record = {"title": "Manual backprop vs jax.grad (jitted loss_and_grad, 784-512-512-10 relu, fp32)",
              "environment": environment(), "sizes": SIZES, "repeats": args.repeats, "runs": runs,
              "goal": "ratio manual/autodiff within 1.00 +- 0.05"}
    write_results(args.name, record,
                  ["batch", "manual ms (median)", "autodiff ms (median)", "ratio manual/autodiff",
                   "autodiff GFLOP/s", "compile s (manual / autodiff)"], rows,
                  notes=f"Medians of {args.repeats} interleaved calls after warm-up; goal: ratio 1.00 +- 0.05.")


if __name__ == "__main__":
    main()
