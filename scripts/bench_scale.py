"""Scaling benchmark: precision policies on a wide MLP against a bare GEMM, and large-batch accuracy.

    python scripts/bench_scale.py                                 # both parts, on a GPU: results/scale.{json,md}
    python scripts/bench_scale.py --devices all                   # the step data-parallel over every device
    python scripts/bench_scale.py --parts step --width 256 --batch 512 --name /tmp/scale_smoke   # CPU smoke
    python scripts/bench_scale.py --parts accuracy --epochs 10 --name scale_cpu_large_batch    # MNIST on CPU
    python scripts/bench_scale.py --parts feed --name scale_cpu_feed                           # the feeds, on CPU

Part "step": the trainer's own training step (`training.step.make_step` of a run's Plan, with its
optimizer, init and device mesh: gather the batch, loss_and_grad under the precision
policy, Adam update, finiteness check) on an MLP of `--layers`
square `--width` x `--width` layers (default 4 x 8192; softmax cross-entropy over `--width`
classes), batch `--batch` (default 16384), `--steps` per jitted call, for:
  - fp32: `--precision highest`, true fp32 matmuls;
  - tf32: `--precision fp32` under jax.default_matmul_precision("tensorfloat32");
  - default: `--precision fp32` as the trainer runs it (JAX's default matmul precision: TF32 on
    Ampere+ GPUs, so this row should match tf32 there; full fp32 on CPU);
  - bf16: `--precision bf16` (bf16 matmuls/activations, fp32 master params, Adam state and loss).
Each row reports step time and achieved TFLOP/s, counting 6 * B * sum(d_in * d_out) FLOPs per step
(weight matmuls only). The baseline is a bare bf16 GEMM chain timed in the same run: 3 * layers
chained (B, W) @ (W, W) bf16 matmuls per iteration, the same FLOPs as one step (per device: with
--devices N the GEMM has B / N rows). Goal (GPU): bf16 step >= 0.85 of the bare GEMM's speed.

Part "accuracy": real MNIST through `jaxmlp.training.fit`, equal epochs: batch `--small-batch` (128)
with Adam lr 1e-3 against batch `--large-batch` (8192) with the large-batch recipe: LAMB (or
`--large-optimizer lars`), peak lr = `--large-lr` * batch / 256 (lr_scaling linear), linear
warm-up over `--warmup-epochs` then cosine decay (warmup_cosine), weight decay 1e-4 on weights
only (biases masked). Goal: test accuracies within 0.5 points. Accuracy does not depend on timing.

Part "feed": the cost of `--data-feed per_process` against `resident` on real MNIST through
`jaxmlp.training.fit` (batch `--small-batch`, Adam 1e-3, `--feed-epochs` epochs, runs alternated for
`--feed-rounds` rounds). The per-process feed gathers each epoch's minibatches on the host and
sends them while the previous epoch runs; `history.seconds` (the epoch call plus that host work)
gives the median epoch time, epoch 1 of every run excluded. Peak device memory is recorded where
the backend reports it (GPU; CPU reports none). Both feeds train the same run, so their test
accuracies must agree.

Timing: warm-up (compile) first, block_until_ready, interleaved medians of `--repeats` calls.
The 1-minute load average is recorded before timing (pass --wait-quiet to wait for < 1.5).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from _bench import (REPO, environment, interleaved_medians, load_averages, log, markdown_table,  # noqa: E402
                    time_call, wait_for_quiet, write_results)
from jaxmlp import fit, parallel  # noqa: E402
from jaxmlp.config import TrainConfig  # noqa: E402
from jaxmlp.training import RunSpec, plan_of  # noqa: E402
from jaxmlp.training.epoch import gather_batch  # noqa: E402
from jaxmlp.training.optim import scaled_learning_rate  # noqa: E402
from jaxmlp.training.state import init_state  # noqa: E402
from jaxmlp.training.step import make_step, start_carry  # noqa: E402

ROWS = {  # name -> (trainer precision policy, matmul precision context around it or None)
    "fp32": ("highest", None),
    "tf32": ("fp32", "tensorfloat32"),
    "default": ("fp32", None),
    "bf16": ("bf16", None),
}


def in_context(fn, matmul_precision):
    """fn, called (and so traced and compiled) under jax.default_matmul_precision(matmul_precision)."""
    if matmul_precision is None:
        return fn

    def call(*args):
        with jax.default_matmul_precision(matmul_precision):
            return fn(*args)

    return call


# --- part "step" ---------------------------------------------------------------------------------------------
def make_train_steps(args, precision: str):
    """(run(carry) -> carry after `steps` trainer steps on one batch, carry0).

    The optimizer and device mesh come from the run's Plan (plan_of), the init is the one
    run_programs jits (init_state from the plan's optimizer, replicated on the mesh); the compiled
    epoch of run_programs does not serve here (it gathers every step's batch from a resident
    training set, and a set of `steps` wide batches would not fit), so the step is jitted in a
    fori_loop over one fixed batch.
    """
    width, batch = args.width, args.batch
    sizes = (width,) * (args.layers + 1)
    config = TrainConfig(hidden=sizes[1:-1], batch_size=batch, optimizer="adam", learning_rate=1e-4, dropout=0.0,
                         precision=precision, devices=args.devices, grad_method=args.grad_method)
    # one random batch stands for the data set: n_train = batch, one step per epoch
    spec = RunSpec("softmax_cross_entropy", sizes, batch, 1, (), True)
    plan = plan_of(config, spec)
    dp = plan.data_parallel
    step = make_step(plan)
    init = jax.jit(lambda k: init_state(k, plan.config, plan.sizes, plan.optimizer), **(dp.jit_kwargs(1) if dp else {}))
    kx, ky, kp = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (batch, width), jnp.float32)
    y = jax.random.randint(ky, (batch,), 0, width, jnp.int32)
    idx = jnp.arange(batch, dtype=jnp.int32)
    x, y, idx, carry = plan.place((x, y, idx, start_carry(init(plan.place(kp)))))

    def steps(carry, x, y, idx):
        key = jax.random.key(1)
        return jax.lax.fori_loop(0, args.steps, lambda i, c: step(c, (i, gather_batch(x, y, idx),
                                                                       jax.random.fold_in(key, i))), carry)

    jitted = jax.jit(steps, **(dp.jit_kwargs(4) if dp else {}))
    return (lambda c: jitted(c, x, y, idx)), carry


def make_gemm_chain(args, rows: int):
    """(run(a) -> a after steps * 3 * layers chained (rows, W) @ (W, W) bf16 GEMMs, a0)."""
    ka, kw = jax.random.split(jax.random.key(2))
    a = jax.random.normal(ka, (rows, args.width), jnp.float32).astype(jnp.bfloat16)
    w = (jax.random.normal(kw, (args.width, args.width), jnp.float32) / math.sqrt(args.width)).astype(jnp.bfloat16)
    n = args.steps * 3 * args.layers
    jitted = jax.jit(lambda a0: jax.lax.fori_loop(0, n, lambda _, acc: acc @ w, a0))
    return jitted, a


def part_step(args) -> tuple[dict, list[list]]:
    dp = parallel.data_parallel(args.devices)
    n_dev = dp.size if dp else 1
    parallel.check_batch(args.batch, n_dev)
    sizes = (args.width,) * (args.layers + 1)
    flops = 6 * args.batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # per step, all devices
    fns, compile_s = {}, {}
    for name in args.rows.split(","):
        policy, matmul = ROWS[name]
        run, carry = make_train_steps(args, policy)
        fn = in_context(run, matmul)
        compile_s[name] = time_call(lambda fn=fn, carry=carry: fn(carry))  # the first call compiles
        fns[name] = (lambda fn=fn, carry=carry: fn(carry))
        log(f"  {name}: compiled + first call {compile_s[name]:.2f}s")
    gemm, a = make_gemm_chain(args, args.batch // n_dev)
    compile_s["bare_bf16_gemm"] = time_call(lambda: gemm(a))
    fns["bare_bf16_gemm"] = lambda: gemm(a)
    for fn in fns.values():  # a second warm-up call each
        time_call(fn)
    load = load_averages()
    timed = interleaved_medians(fns, args.repeats)
    per_step = {name: t["median_s"] / args.steps for name, t in timed.items()}
    gemm_flops = flops / n_dev  # the GEMM chain runs one device's share
    out = {"sizes": list(sizes), "batch": args.batch, "devices": n_dev, "steps_per_call": args.steps,
           "grad_method": args.grad_method, "flops_per_step": flops, "compile_and_first_call_s": compile_s,
           "load_before_timing": load, "timings": timed, "s_per_step": per_step,
           "tflops_per_s": {name: (gemm_flops if name == "bare_bf16_gemm" else flops) / s / 1e12
                            for name, s in per_step.items()}}
    out["bf16_fraction_of_bare_gemm"] = per_step["bare_bf16_gemm"] / per_step["bf16"] if "bf16" in per_step else None
    rows = []
    for name, s in per_step.items():
        frac = per_step["bare_bf16_gemm"] / s
        rows.append([name, f"{s * 1e3:.3f}", f"{out['tflops_per_s'][name]:.2f}", f"{frac:.2f}"])
        log(f"  {name}: {s * 1e3:.3f} ms/step, {out['tflops_per_s'][name]:.2f} TFLOP/s, {frac:.2f} of bare GEMM")
    return out, rows


# --- part "accuracy" -----------------------------------------------------------------------------------------
def part_accuracy(args) -> tuple[dict, list[list]]:
    from jaxmlp.data import load_dataset

    splits = load_dataset("mnist", data_dir=args.data_dir)
    load = load_averages()
    common = dict(dataset="mnist", hidden=tuple(int(h) for h in args.hidden.split(",")), epochs=args.epochs,
                  dropout=0.0, checkpoint_every=0, precision=args.precision, devices=args.devices, seed=args.seed)
    configs = {
        f"batch {args.small_batch}, adam": TrainConfig(batch_size=args.small_batch, optimizer="adam",
                                                       learning_rate=1e-3, **common),
        f"batch {args.large_batch}, {args.large_optimizer}": TrainConfig(
            batch_size=args.large_batch, optimizer=args.large_optimizer, learning_rate=args.large_lr,
            lr_scaling="linear", base_batch_size=256, schedule="warmup_cosine", warmup_epochs=args.warmup_epochs,
            weight_decay=1e-4, **common),
    }
    runs, rows = {}, []
    for name, config in configs.items():
        t0 = time.perf_counter()
        _, history = fit(config, splits.train, None, splits.test)
        runs[name] = {"config": config.to_dict(), "peak_lr": scaled_learning_rate(config),
                      "steps": len(history.epoch) * (len(splits.train) // config.batch_size),
                      "test": history.final["test"], "train": history.final["train"],
                      "train_loss": history.train_loss, "train_seconds": sum(history.seconds),
                      "compile_seconds": history.compile_seconds, "wall_s": time.perf_counter() - t0}
        r = runs[name]
        rows.append([name, f"{r['peak_lr']:g}", r["steps"], f"{100 * r['test']['accuracy']:.2f}",
                     f"{100 * r['train']['accuracy']:.2f}", f"{r['train_seconds']:.1f}"])
        log(f"  {name}: test {100 * r['test']['accuracy']:.2f}%, train {100 * r['train']['accuracy']:.2f}%, "
            f"{r['steps']} steps, {r['train_seconds']:.1f}s")
    small, large = (runs[name]["test"]["accuracy"] for name in configs)
    gap = 100 * (small - large)
    return {"runs": runs, "epochs": args.epochs, "gap_points": gap, "goal": "gap <= 0.5 points",
            "load_before_timing": load, "load_at_end": load_averages()}, rows


# --- part "feed" ---------------------------------------------------------------------------------------------
def peak_device_bytes() -> int | None:
    stats = jax.local_devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def part_feed(args) -> tuple[dict, list[list]]:
    from jaxmlp.data import load_dataset

    splits = load_dataset("mnist", data_dir=args.data_dir)
    load = load_averages()
    common = dict(dataset="mnist", hidden=tuple(int(h) for h in args.hidden.split(",")), epochs=args.feed_epochs,
                  batch_size=args.small_batch, optimizer="adam", learning_rate=1e-3, checkpoint_every=0,
                  dropout=0.0, eval_train=False, devices=args.devices, seed=args.seed)
    runs: dict[str, list] = {"resident": [], "per_process": []}
    for r in range(args.feed_rounds):
        for feed in runs:
            _, history = fit(TrainConfig(data_feed=feed, **common), splits.train, None, splits.test)
            runs[feed].append({"epoch_s": history.seconds, "test_accuracy": history.final["test"]["accuracy"],
                               "peak_device_bytes": peak_device_bytes()})
            log(f"  round {r + 1} {feed}: epochs {', '.join(f'{t:.3f}' for t in history.seconds)} s, "
                f"test {100 * history.final['test']['accuracy']:.2f}%")
    medians = {feed: statistics.median(t for run in rs for t in run["epoch_s"][1:]) for feed, rs in runs.items()}
    rows = [[feed, f"{medians[feed]:.3f}", f"{medians[feed] / medians['resident']:.3f}",
             f"{100 * rs[-1]['test_accuracy']:.2f}", rs[-1]["peak_device_bytes"] or "not reported"]
            for feed, rs in runs.items()]
    for row in rows:
        log("  " + " | ".join(str(c) for c in row))
    return {"runs": runs, "median_epoch_s": medians, "per_process_over_resident": medians["per_process"] /
            medians["resident"], "load_before_timing": load, "load_at_end": load_averages()}, rows


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="step,accuracy", help="comma-separated: step, accuracy, feed")
    parser.add_argument("--name", default="scale", help="results/<name>.{json,md}; an absolute path elsewhere")
    parser.add_argument("--devices", default="1", help="data-parallel devices: N or all")
    parser.add_argument("--width", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=4, help="number of width x width layers")
    parser.add_argument("--batch", type=int, default=16384)
    parser.add_argument("--steps", type=int, default=10, help="training steps per jitted call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", default="fp32,tf32,default,bf16", help="subset of " + ",".join(ROWS))
    parser.add_argument("--grad-method", default="autodiff", choices=("autodiff", "manual"))
    parser.add_argument("--wait-quiet", action="store_true", help="wait for a 1-minute load < 1.5 before timing")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", default="512,512")
    parser.add_argument("--small-batch", type=int, default=128)
    parser.add_argument("--large-batch", type=int, default=8192)
    parser.add_argument("--large-optimizer", default="lamb", choices=("lamb", "lars"))
    parser.add_argument("--large-lr", type=float, default=2e-3, help="lr at batch 256; scaled linearly")
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "highest"),
                        help="precision policy of the accuracy runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feed-epochs", type=int, default=4, help="part feed: epochs per run")
    parser.add_argument("--feed-rounds", type=int, default=2, help="part feed: runs of each feed, alternated")
    args = parser.parse_args(argv)
    args.devices = 0 if args.devices == "all" else int(args.devices)
    if args.name == "scale" and jax.default_backend() == "cpu":
        parser.error("results/scale.* holds GPU results: on CPU pass --name (e.g. /tmp/scale_smoke or "
                     "scale_cpu_large_batch for --parts accuracy)")
    return args


# --- the tables: (header, rows, note) of each part -----------------------------------------------------------
def step_table(args, s: dict, rows: list[list]) -> tuple:
    frac = s["bf16_fraction_of_bare_gemm"]
    return (["precision", "ms / step (median)", "TFLOP/s", "speed vs bare bf16 GEMM"], rows,
            f"Step: the trainer's step, sizes {tuple(s['sizes'])}, batch {s['batch']} on {s['devices']} "
            f"device(s); FLOPs/step = 6 * B * sum(d_in * d_out); medians of {args.repeats} interleaved "
            f"calls of {args.steps} steps" + (f"; bf16 step / bare bf16 GEMM = {frac:.2f}" if frac else "")
            + f" (goal on GPU >= 0.85); 1-min load before timing: {s['load_before_timing']['1min']}.")


def accuracy_table(args, a: dict, rows: list[list]) -> tuple:
    return (["MNIST run", "peak lr", "steps", "test acc %", "train acc %", "train s"], rows,
            f"Accuracy: {args.epochs} epochs each, hidden {args.hidden}; test-accuracy gap "
            f"{a['gap_points']:.2f} points (goal <= 0.5). Accuracies do not depend "
            f"on timing; 1-min load when the runs started: {a['load_before_timing']['1min']}.")


def feed_table(args, f: dict, rows: list[list]) -> tuple:
    return (["data feed", "median epoch s", "vs resident", "test acc %", "peak device bytes"], rows,
            f"Feed: MNIST, hidden {args.hidden}, batch {args.small_batch}, Adam 1e-3, "
            f"{args.feed_epochs} epochs per run, {args.feed_rounds} alternated runs per feed; median "
            f"over epochs 2..{args.feed_epochs} of every run (history.seconds: the epoch call plus the "
            f"per-process feed's host gather of the next epoch). per_process / resident = "
            f"{f['per_process_over_resident']:.3f}; 1-min load before timing: {f['load_before_timing']['1min']}.")


PARTS = {  # in the order they run: (start line, part, table)
    "step": (lambda a: f"step: {a.layers} x {a.width}^2 layers, batch {a.batch}, {a.steps} steps per call",
             part_step, step_table),
    "accuracy": (lambda a: f"accuracy: MNIST, {a.epochs} epochs", part_accuracy, accuracy_table),
    "feed": (lambda a: f"feed: MNIST, {a.feed_epochs} epochs x {a.feed_rounds} rounds per feed", part_feed,
             feed_table),
}


def main(argv=None) -> None:
    args = parse_args(argv)
    parts = args.parts.split(",")
    record = {"title": "Scaling: precision policies vs a bare bf16 GEMM; large-batch MNIST; data feeds",
              "environment": environment(("orbax-checkpoint",)), "args": vars(args)}
    if args.wait_quiet:
        record["quiet"] = wait_for_quiet(threshold=1.5)
    tables = []  # (header, rows, note)
    for name, (start, part, table) in PARTS.items():
        if name in parts:
            log(start(args))
            record[name], rows = part(args)
            tables.append(table(args, record[name], rows))
    (header, rows, note), rest = tables[0], tables[1:]
    notes = [note]
    for h, r, n in rest:  # further tables go into the notes, in the same markdown form
        notes += ["\n".join(markdown_table(h, r)), n]
    json_path, md_path = write_results(args.name, record, header, rows, notes="\n\n".join(notes))
    log(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
