"""Many models in one process: `jaxmlp sweep` against sequential fits and separate processes.

    python scripts/bench_sweep.py                 # CPU part -> results/sweep.{json,md}
    python scripts/bench_sweep.py --gpu           # GPU part -> results/sweep_gpu.{json,md}, one command, < 5 min
    python scripts/bench_sweep.py --multihost     # 2 pinned processes vs 1 -> results/sweep_multihost.{json,md}
    python scripts/bench_sweep.py --smoke         # both parts' code at tiny sizes -> /tmp/jaxmlp_sweep_smoke.*

CPU part: 16 MNIST 784-512-512-10 relu models (4 seeds x 4 learning rates, Adam), 2 epochs, batch
128, trained three ways, each timed as whole processes from spawn to exit (start-up, data
loading, compiles, training, evaluation and writing included), each after waiting (up to 2
minutes) for the other processes on the machine to leave the CPUs idle, with its CPU time and
the cores other processes used meanwhile recorded (this VM is shared):
  1. one `jaxmlp sweep` process (width auto: on CPU one model after another inside one program);
  2. one process making 16 sequential `jaxmlp.fit` calls;
  3. 16 `jaxmlp train` processes, one after another;
and, for the record, `jaxmlp sweep --width all` (all 16 vmapped, batched matmuls). Goal: the
sweep >= 1.5x faster than the 16 processes.

Multi-host part (--multihost): the same 16-model sweep (`jaxmlp sweep --devices all`) as one process
pinned to one core (`taskset -c 0`) and as 2 jax.distributed processes (gloo on 127.0.0.1) pinned to a
core each (`taskset -c 0`, `taskset -c 1`), the model axis over their 2 devices; whole processes, spawn
to the last exit, after waiting for idle CPUs. Goal: 2 processes <= 0.6x the wall time of 1; both
rank the models the same.

GPU part: 1, 8, 64 and 256 MNIST models at batch 128, all vmapped in one program: the median
epoch of the sweep's compiled epoch (after a warm-up epoch), against the floor of one epoch. Per
step each model's Adam update reads params, grads and two moments and writes three arrays
(7 x 4 bytes x 669,706 params), at the HBM bandwidth measured here (a 2 GiB a + 1), and its
matmuls take 6 x 128 x sum(d_in d_out) = 0.51 GFLOP, at the fp32 (TF32) matmul rate measured
here (8192^3 GEMMs). Goal: 64 models within 1.5x of the floor.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import (cpu_snapshot, environment, foreign_cores, load_averages, log, markdown_table, median_time,
                    mlp_train_flops, repo_path, wait_for_idle_cpu, write_results)

LRS = "3e-4,1e-3,3e-3,1e-2"
CPU = dict(seeds=4, lrs=LRS, epochs=2, n_samples=None, hidden="512,512", name="sweep")
SMOKE = dict(seeds=2, lrs="1e-3,3e-3", epochs=1, n_samples=1280, hidden="32,32", name="/tmp/jaxmlp_sweep_smoke")
GPU_MODELS = "1,8,64,256"

FIT_LOOP = """
import json, sys, time
from jaxmlp import fit, TrainConfig, load_dataset
data_dir, hidden, epochs, n_samples, seeds, lrs = json.loads(sys.argv[1])
splits = load_dataset("mnist", data_dir=data_dir, n_samples=n_samples)
for lr in lrs:
    for seed in range(seeds):
        config = TrainConfig(dataset="mnist", hidden=hidden, batch_size=128, epochs=epochs, learning_rate=lr,
                             seed=seed, dropout=0.0, checkpoint_every=0)
        fit(config, splits.train, splits.val, splits.test)
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="the GPU part (needs a GPU)")
    parser.add_argument("--multihost", action="store_true", help="2 processes pinned to a core each vs 1 (CPU)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device; writes only under /tmp")
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--models", default=GPU_MODELS, help=f"GPU part: model counts [{GPU_MODELS}]")
    parser.add_argument("--epochs-timed", type=int, default=3, help="GPU part: timed epochs per count [3]")
    args = parser.parse_args(argv)
    args.data_dir = str(repo_path(args.data_dir))
    for k, v in (SMOKE if args.smoke else CPU).items():
        setattr(args, k, v)
    if args.smoke:
        args.models, args.epochs_timed = "1,2", 1
    return args


# --- CPU: three ways to train the same 16 models -----------------------------------------------------
def config_flags(args) -> list[str]:
    flags = ["--dataset", "mnist", "--data-dir", args.data_dir, "--hidden", args.hidden, "--batch-size", "128",
             "--dropout", "0", "--val-fraction", "0", "--epochs", str(args.epochs), "--checkpoint-every", "0", "--quiet",
             "--no-plots"]
    return flags + (["--n-samples", str(args.n_samples)] if args.n_samples else [])


def timed(argv: list[str], cwd: Path, *more: list[str]) -> dict:
    """One process, or several started together (`more`), spawn to the last exit (each must
    succeed): wall s, their CPU s (user + sys), and the cores other processes on the machine kept
    busy meanwhile."""
    before, children = cpu_snapshot(children=True), _children_cpu()
    procs = [subprocess.Popen(a, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for a in (argv, *more)]
    outs = [p.communicate() for p in procs]
    after, cpu = cpu_snapshot(children=True), _children_cpu() - children
    for a, p, (_, stderr) in zip((argv, *more), procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(a[:4])} ... failed ({p.returncode}): {stderr.strip()[-500:]}")
    wall = after[0] - before[0] if before and after else None
    return {"wall_s": wall, "cpu_s": cpu, "other_cores": foreign_cores(before, after)}


def _children_cpu() -> float:
    """CPU s (user + sys) of this process's finished children: the timed process's own, as a difference."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def quiet_then(name: str, run) -> dict:
    """Wait (up to 2 minutes) until other processes leave the CPUs idle, then `run()`."""
    waited = wait_for_idle_cpu(max_wait_s=120)
    result = run()
    log(f"{name}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU, other processes "
        f"{result['other_cores']:.2f} cores")
    return {**result, "idle_wait": waited}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jaxmlp.cli", *args]


def cpu_part(args, work: Path) -> dict:
    lrs = [float(v) for v in args.lrs.split(",")]
    grid = ["--grid", f"learning_rate={args.lrs}", "--grid", f"seed=0:{args.seeds}"]
    runs = {}
    for name, width in (("sweep", "auto"), ("sweep_vmapped", "all")):
        out = work / name
        runs[name] = quiet_then(name, lambda: timed(cli("sweep", *config_flags(args), *grid, "--width", width,
                                                         "--out-dir", str(out)), work))
        summary = json.loads((out / "summary.json").read_text())
        runs[name].update(compile_s=summary["compile_seconds"], train_s=summary["train_seconds"])
    spec = json.dumps([args.data_dir, [int(h) for h in args.hidden.split(",")], args.epochs, args.n_samples,
                       args.seeds, lrs])
    runs["fits"] = quiet_then("fits", lambda: timed([sys.executable, "-c", FIT_LOOP, spec], work))
    runs["processes"] = quiet_then("processes", lambda: _processes(args, lrs, work))
    base = runs["processes"]["wall_s"]
    for run in runs.values():
        run["speedup_vs_processes"] = base / run["wall_s"]
    return {"models": len(lrs) * args.seeds, "epochs": args.epochs, "hidden": args.hidden, "runs": runs,
            "goal": "sweep >= 1.5x faster than 16 processes",
            "goal_met": runs["sweep"]["speedup_vs_processes"] >= 1.5}


def multihost_part(args, work: Path) -> dict:
    """The sweep in 1 process on core 0, then in 2 processes on cores 0 and 1."""
    import socket

    sweep = cli("sweep", *config_flags(args), "--grid", f"learning_rate={args.lrs}", "--grid", f"seed=0:{args.seeds}",
                "--devices", "all")
    one, two = work / "one", work / "two"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hosts = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--out-dir", str(two)]
    runs = {"one": quiet_then("1 process, 1 core", lambda: timed(
        ["taskset", "-c", "0", *sweep, "--out-dir", str(one)], work))}
    first, second = [["taskset", "-c", str(i), *sweep, *hosts, "--process-id", str(i)] for i in range(2)]
    runs["two"] = quiet_then("2 processes, 1 core each", lambda: timed(first, work, second))
    for name, out in (("one", one), ("two", two)):
        summary = json.loads((out / "summary.json").read_text())
        runs[name].update(compile_s=summary["compile_seconds"], train_s=summary["train_seconds"],
                          ranking=[row["model"] for row in summary["table"]])
    ratio = runs["two"]["wall_s"] / runs["one"]["wall_s"]
    return {"models": args.seeds * len(args.lrs.split(",")), "epochs": args.epochs, "hidden": args.hidden,
            "runs": runs, "ratio": ratio, "same_ranking": runs["one"]["ranking"] == runs["two"]["ranking"],
            "goal": "2 processes <= 0.6x the wall time of 1", "goal_met": ratio <= 0.6}


def multihost_rows(part: dict) -> list[list]:
    what = {"one": "1 process pinned to 1 core (`taskset -c 0`)",
            "two": "2 processes (jax.distributed, gloo), each pinned to its own core"}
    return [[what[name], f"{run['wall_s']:.1f} s", f"{run['wall_s'] / part['runs']['one']['wall_s']:.2f}x",
             f"{run['cpu_s']:.1f} s", f"{run['other_cores']:.2f}", f"{run['train_s']:.1f} s + {run['compile_s']:.1f} s"]
            for name, run in part["runs"].items()]


def multihost_notes(part: dict) -> str:
    return (f"{part['models']} models, {part['epochs']} epochs, hidden {part['hidden']}, `jaxmlp sweep --devices all`. "
            "Whole processes, spawn to the last exit, each way after waiting up to 2 minutes for idle CPUs. The "
            "sweep's epochs + compile are process 0's. Same ranking in both: "
            f"{'yes' if part['same_ranking'] else 'NO'}. Goal: 2 processes <= 0.6x the wall time of 1: "
            f"{'met' if part['goal_met'] else 'not met'} ({part['ratio']:.2f}x).")


def _processes(args, lrs: list[float], work: Path) -> dict:
    """The models as `jaxmlp train` processes, one after another: their sums."""
    each = [timed(cli("train", *config_flags(args), "--learning-rate", str(lr), "--seed", str(seed), "--out-dir",
                      str(work / f"train-{lr}-{seed}")), work) for lr in lrs for seed in range(args.seeds)]
    wall = sum(r["wall_s"] for r in each)
    return {"wall_s": wall, "cpu_s": sum(r["cpu_s"] for r in each),
            "other_cores": sum(r["other_cores"] * r["wall_s"] for r in each) / wall, "per_process": each}


def cpu_notes(part: dict) -> str:
    ratio = part["runs"]["sweep"]["speedup_vs_processes"]
    return (f"{part['models']} models, {part['epochs']} epochs, hidden {part['hidden']}. Whole processes, spawn to exit, "
            "each way after waiting up to 2 minutes for idle CPUs. The VM is shared: the cores other processes "
            "kept busy meanwhile are shown, and wall times carry that noise; CPU time (user + sys of the timed "
            "processes) is less sensitive to it. Goal: the sweep >= 1.5x faster than the processes: "
            f"{'met' if ratio >= 1.5 else 'not met'} ({ratio:.2f}x).")


def cpu_rows(part: dict) -> list[list]:
    what = {"sweep": "one `jaxmlp sweep` process (width auto: one model after another)",
            "fits": f"{part['models']} sequential `fit` calls in one process",
            "processes": f"{part['models']} `jaxmlp train` processes",
            "sweep_vmapped": "one `jaxmlp sweep --width all` process (all vmapped)"}
    return [[what[name], f"{run['wall_s']:.1f} s", f"{run['speedup_vs_processes']:.2f}x", f"{run['cpu_s']:.1f} s",
             f"{run['other_cores']:.2f}",
             f"{run['train_s']:.1f} s + {run['compile_s']:.1f} s compile" if "train_s" in run else ""]
            for name, run in part["runs"].items()]


# --- GPU: the vmapped epoch of 1 .. 256 models against the floor --------------------------------------
def measured_rates(smoke: bool) -> dict:
    """HBM bytes/s (a + 1 over a 2 GiB float32 array: read + write) and fp32 matmul FLOP/s (8192^3)."""
    import jax
    import jax.numpy as jnp

    n, k = (1 << 20, 512) if smoke else (1 << 29, 8192)
    a = jnp.ones((n,), jnp.float32)
    add = jax.jit(lambda v: v + 1.0)
    m = jnp.ones((k, k), jnp.float32)
    mm = jax.jit(lambda p, q: p @ q)
    out = {}
    for name, fn, work in (("hbm_bytes_per_s", lambda: add(a), 2 * 4 * n), ("matmul_flops_per_s", lambda: mm(m, m),
                                                                              2 * k ** 3)):
        jax.block_until_ready(fn())  # warm-up
        out[name] = work / median_time(fn, 10)[0]
    return out


def placed_data(config, train):
    """The training set placed as the sweep places it (place_data): it depends on the sweep-wide
    settings (dtype, evaluation batch, devices), not on the model count, so once for every count."""
    from jaxmlp.sweeps.loop import place_data
    from jaxmlp.sweeps.plan import make_plan

    return place_data(make_plan(config, {"seed": [0]}, train, models_per_program=1, width="all"), train, None, None)


def epoch_seconds(config, splits, data, models: int, timed_epochs: int) -> tuple[float, float]:
    """(median epoch s, compile s) of `models` vmapped models: the sweep's own compiled epoch, on
    `data` (placed_data)."""
    import jax
    import numpy as np

    from jaxmlp.sweeps.loop import chunk_inputs
    from jaxmlp.sweeps.plan import make_plan
    from jaxmlp.sweeps.chunk_programs import chunk_programs

    plan = make_plan(config, {"seed": list(range(models))}, splits.train, models_per_program=models, width="all")
    (chunk,), group = plan.chunks, plan.groups[0]
    programs = chunk_programs(group.program, plan.specs[0], group.traced, group.inits, size=chunk.size, width=None,
                              mesh=None)
    inputs = chunk_inputs(plan, chunk, programs)
    state = programs.init(inputs.init_keys, inputs.schemes)
    active = jax.device_put(np.ones(chunk.size, bool))
    times = []
    for epoch in range(1 + timed_epochs):  # the first epoch warms up
        t0 = time.perf_counter()
        state, stats = programs.epoch(inputs.traced, inputs.train_keys, np.int32(epoch), state, active, data.x, data.y)
        assert bool(np.all(jax.device_get(stats.finite)))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), programs.compile_seconds


def gpu_part(args) -> dict:
    from jaxmlp import TrainConfig, load_dataset
    from jaxmlp.mlp import param_count

    hidden = tuple(int(h) for h in args.hidden.split(","))
    sizes = (784, *hidden, 10)
    splits = load_dataset("mnist", data_dir=args.data_dir, n_samples=args.n_samples)
    config = TrainConfig(dataset="mnist", hidden=hidden, batch_size=128, epochs=4, dropout=0.0, checkpoint_every=0)
    rates = measured_rates(args.smoke)
    steps, params = len(splits.train) // 128, param_count(sizes)
    adam_s = 7 * 4 * params / rates["hbm_bytes_per_s"]  # one model, one step
    gemm_s = mlp_train_flops(sizes, 128) / rates["matmul_flops_per_s"]
    data, rows = placed_data(config, splits.train), []
    for m in (int(v) for v in args.models.split(",")):
        seconds, compile_s = epoch_seconds(config, splits, data, m, args.epochs_timed)
        floor = steps * m * (adam_s + gemm_s)
        rows.append({"models": m, "epoch_s": seconds, "compile_s": compile_s, "floor_s": floor,
                     "ratio_to_floor": seconds / floor})
        log(f"{m} models: epoch {seconds * 1e3:.1f} ms, floor {floor * 1e3:.1f} ms ({seconds / floor:.2f}x)")
    return {"sizes": sizes, "params": params, "steps_per_epoch": steps, **rates, "adam_floor_s_per_model_step":
            adam_s, "gemm_floor_s_per_model_step": gemm_s, "runs": rows, "goal": "64 models within 1.5x of the floor"}


def gpu_notes(part: dict) -> str:
    ratio = next((r["ratio_to_floor"] for r in part["runs"] if r["models"] == 64), None)
    verdict = "not measured" if ratio is None else f"{'met' if ratio <= 1.5 else 'not met'} ({ratio:.2f}x)"
    return (f"Floor per model and step: Adam traffic {part['adam_floor_s_per_model_step'] * 1e6:.2f} us at the measured "
            f"{part['hbm_bytes_per_s'] / 1e12:.2f} TB/s, matmuls {part['gemm_floor_s_per_model_step'] * 1e6:.2f} us at "
            f"the measured {part['matmul_flops_per_s'] / 1e12:.1f} TFLOP/s; {part['steps_per_epoch']} steps per epoch. "
            f"Goal: 64 models within 1.5x of the floor: {verdict}.")


def gpu_rows(part: dict) -> list[list]:
    return [[f"{r['models']} models", f"{r['epoch_s'] * 1e3:.1f} ms", f"{r['floor_s'] * 1e3:.1f} ms",
             f"{r['ratio_to_floor']:.2f}x", f"{r['compile_s']:.1f} s"] for r in part["runs"]]


def main(argv=None) -> None:
    args = parse_args(argv)
    import jax

    if args.gpu and not args.smoke and jax.default_backend() != "gpu":
        raise SystemExit(f"bench_sweep.py: no GPU (jax backend {jax.default_backend()!r}); run the CPU part, or "
                         "--gpu --smoke to check the GPU part's code here")
    record = {"environment": environment(), "load_before": load_averages()}
    if args.gpu:
        record.update(title="jaxmlp sweep on a GPU: vmapped epochs against the HBM floor", gpu=gpu_part(args))
        header, rows = ["models", "epoch", "floor", "epoch / floor", "compile"], gpu_rows(record["gpu"])
        name, notes = args.name + "_gpu", gpu_notes(record["gpu"])
    elif args.multihost:
        with tempfile.TemporaryDirectory() as work:
            record.update(title="16 MNIST models: one sweep over 2 processes on a core each, against 1 process (CPU)",
                          multihost=multihost_part(args, Path(work)))
        header, rows = ["how", "wall (whole processes)", "wall / 1 process", "CPU time",
                        "other processes' cores meanwhile", "sweep: epochs + compile"], multihost_rows(record["multihost"])
        name, notes = args.name + "_multihost", multihost_notes(record["multihost"])
    else:
        with tempfile.TemporaryDirectory() as work:
            record.update(title="16 MNIST models: one sweep, sequential fits, separate processes (CPU)",
                          cpu=cpu_part(args, Path(work)))
        header, rows = ["how", "wall (whole processes)", "faster than the processes", "CPU time",
                        "other processes' cores meanwhile", "sweep: epochs + compile"], cpu_rows(record["cpu"])
        name, notes = args.name, cpu_notes(record["cpu"])
    record["load_after"] = load_averages()
    print("\n".join(markdown_table(header, rows)))
    write_results(name, record, header, rows, notes)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
