"""jaxmlp vs the CPU peers users would pick instead: PyTorch eager and scikit-learn's MLPClassifier.

    python scripts/bench_cpu.py [--data-dir ../shared/data/mnist] [--epochs 3] [--extra-epochs 2]
    python scripts/bench_cpu.py --n-train 2048 --epochs 1 --extra-epochs 1 --sweep '' --square 256 \\
        --gemm-repeats 3 --breakdown-epochs 1 --max-wait 0 --idle-wait 0 --name /tmp/cpu_smoke   # smoke

Workload: real MNIST (60000 train / 10000 test), 784-512-512-10 relu, softmax cross-entropy,
Adam lr 1e-3, fp32, batch 128. Contenders (scripts/_contenders.py):

- jaxmlp-autodiff / jaxmlp-manual: the real trainer's scan-fused epoch as `run_programs` gives it
  (the same compiled program `fit` runs: one jitted lax.scan over the minibatches, params and
  optimizer state donated), with grad_method "autodiff" and "manual". Compile time is measured
  separately (AOT lower+compile). A final `fit()` run cross-checks that the end-to-end trainer
  gives the same epoch times (it reuses the contender's compiled program).
- torch: PyTorch eager, the standard per-step loop (randperm + index, zero_grad, forward,
  cross_entropy, backward, Adam.step), data as in-memory tensors, He-normal init, zero biases,
  torch.set_num_threads(os.cpu_count()), torch.set_flush_denormal(True).
- torch-fused (optional, in the default list): the same with Adam(fused=True).
- sklearn: MLPClassifier(hidden_layer_sizes=(512, 512), solver="adam", batch_size=128,
  learning_rate_init=1e-3, alpha=0 (no L2, like the others), max_iter=1, warm_start=True):
  one fit() call is one shuffled epoch.

The peers are the `.[bench]` extra (PyTorch, scikit-learn): when a contender named in
--contenders, --sweep-contenders or --sweep-sklearn needs one that is not installed, the script
stops before timing anything with one line naming it and the install command
(`pip install -e '.[bench]'`); leave those contenders out to time jaxmlp alone.

Every contender runs the same number of epochs, interleaved epoch by epoch (epoch e of every
contender, then epoch e+1, ...) so load drift hits all alike. Epoch 1 is reported separately
(warm-up; jaxmlp's compile is reported on its own too); the median is over epochs 2..N. Each
epoch records how many cores OTHER processes kept busy meanwhile (/proc/stat); before every
round the script waits (bounded) for idle CPUs, and the median uses only the epochs with other
processes under --idle-foreign cores (all of 2..N if fewer than two are that clean) -- on a
2-core machine one busy neighbour slows PyTorch's OpenMP loop by 10-30x, which would otherwise
decide the comparison. A diagnostic "breakdown" then times the trainer's epoch against bare
jitted scans of loss_and_grad + Adam / SGD without the trainer's divergence guard.
Test accuracy is measured after `--epochs` epochs (untimed); `--extra-epochs` more epochs
only add timing samples. Achieved GFLOP/s = 6 * N * sum(d_in * d_out) / epoch seconds, against
a numpy float32 matmul ceiling measured in the same run: (a) the 9 GEMMs of one training step
at batch 128 (forward, weight-gradient and input-gradient of each layer) and (b) a big square
GEMM; the ceiling used for the goal is the faster of the two (normally the square one). Then a
samples/s vs batch size sweep -> throughput.png.

Before timing it waits for the 1-minute load average to drop below --quiet-load (default 1.0;
polls every 20 s for up to --max-wait seconds) and records the load averages at start and end.
Writes results/<name>.{json,md} and results/throughput.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from _bench import (RESULTS, cpu_snapshot, foreign_cores, load_averages, log, median_time,  # noqa: E402
                    mlp_train_flops, repo_path, require, wait_for_idle_cpu, wait_for_quiet)
from _contenders import (HIDDEN, LR, JaxmlpContender, SklearnContender, TorchContender, mnist_config,  # noqa: E402
                         peers_of)
from _cpu_report import plot_sweep, record_of, write_report  # noqa: E402
from jaxmlp import fit, init_mlp, loss_and_grad  # noqa: E402
from jaxmlp.data import load_dataset  # noqa: E402
from jaxmlp.data.dataset import Dataset  # noqa: E402
from jaxmlp.training import program_key  # noqa: E402
from jaxmlp.training.evaluate import host_arrays  # noqa: E402

GOALS = {"vs_sklearn": 2.5, "vs_torch": 2.0, "acc_points_vs_torch": 0.3, "ceiling_fraction": 0.8}


# --- phase: the command line -----------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist", help="MNIST idx files (relative to the repo root)")
    p.add_argument("--contenders", default="jaxmlp-autodiff,jaxmlp-manual,torch,torch-fused,sklearn")
    p.add_argument("--epochs", type=int, default=3, help="epochs before the test accuracy is taken")
    p.add_argument("--extra-epochs", type=int, default=2, help="more timed epochs after the accuracy")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep", default="128,512,2048", help="batch sizes of the throughput sweep ('' = none)")
    p.add_argument("--sweep-contenders", default="jaxmlp-autodiff,torch")
    p.add_argument("--sweep-sklearn", default="128,512", help="batch sizes at which sklearn joins the sweep")
    p.add_argument("--sweep-epochs", type=int, default=2, help="timed epochs per sweep point (after 1 warm-up)")
    p.add_argument("--square", type=int, default=2048, help="size of the square sgemm")
    p.add_argument("--gemm-repeats", type=int, default=15)
    p.add_argument("--no-fit-check", action="store_true", help="skip the end-to-end fit() cross-check")
    p.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the trainer epoch against bare scans without its divergence guard")
    p.add_argument("--breakdown-epochs", type=int, default=4, help="timed epochs per breakdown variant")
    p.add_argument("--n-train", type=int, default=None, help="use a training subset (smoke tests only)")
    p.add_argument("--quiet-load", type=float, default=1.0)
    p.add_argument("--max-wait", type=float, default=900.0, help="seconds to wait for a quiet machine")
    p.add_argument("--idle-foreign", type=float, default=0.25,
                   help="before each round of epochs, wait until other processes use fewer cores than this")
    p.add_argument("--idle-wait", type=float, default=60.0, help="at most this many seconds per such wait")
    p.add_argument("--name", default="cpu_vs_peers", help="results/<name>.{json,md}")
    p.add_argument("--plot", default="throughput.png", help="results/<plot> ('' = no plot)")
    p.add_argument("--replot", metavar="JSON", help="only redraw the plot from a results JSON of this script")
    args = p.parse_args(argv)
    args.names = [n for n in args.contenders.split(",") if n]
    args.ref = "jaxmlp-autodiff" if "jaxmlp-autodiff" in args.names else args.names[0]
    args.batches = [int(b) for b in args.sweep.split(",") if b]
    args.sweep_names = [n for n in args.sweep_contenders.split(",") if n]
    args.sklearn_batches = {int(b) for b in args.sweep_sklearn.split(",") if b}
    return args


def require_peers(args) -> None:
    """Stop with one line unless the peers of every contender asked for are installed."""
    sweep = args.sweep_names + (["sklearn"] if args.sklearn_batches & set(args.batches) else [])
    require(peers_of(args.names + (sweep if args.batches else [])),
            "leave those contenders out of --contenders, --sweep-contenders and --sweep-sklearn")


# --- phase: data and machine -----------------------------------------------------------------------------
@dataclasses.dataclass
class Bench:
    """What the phases share: the arguments, the data, the model sizes, the idle-CPU rounds."""

    args: argparse.Namespace
    train: Dataset
    test: Dataset
    data_dir: Path
    rounds: "Rounds"

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.train.x.shape[1], *HIDDEN, self.train.num_classes)


def load_mnist(args) -> Bench:
    data_dir = repo_path(args.data_dir)
    splits = load_dataset("mnist", data_dir=str(data_dir))
    train = splits.train
    if args.n_train:
        train = train.subset(slice(args.n_train))
    b = Bench(args, train, splits.test, data_dir, Rounds(args.idle_foreign, args.idle_wait))
    log(f"MNIST: train {train.x.shape}, test {b.test.x.shape}; model {b.sizes}")
    return b


def wait_quiet(args) -> dict:
    """Wait (bounded) for a quiet machine; the record's quiet_wait and load_average_start."""
    quiet = wait_for_quiet(args.quiet_load, 20.0, args.max_wait)
    load_start = load_averages()
    log(f"timing starts: load {load_start} (quiet={quiet['quiet']}, waited {quiet['waited_s']} s)")
    return {"quiet_wait": quiet, "load_average_start": load_start}


class Rounds:
    """Contenders run interleaved, epoch by epoch, each round after a bounded wait for idle CPUs."""

    def __init__(self, max_foreign: float, max_wait_s: float):
        self.idle = {"max_foreign": max_foreign, "window_s": 3.0, "max_wait_s": max_wait_s}
        self.waits: list[dict] = []  # the record's idle_waits

    def wait(self, **label) -> dict:
        """Wait for idle CPUs; with a label, the wait goes into `waits`."""
        seen = wait_for_idle_cpu(**self.idle)
        if label:
            self.waits.append({**label, **seen})
        return seen

    def interleave(self, contenders, total_epochs: int, acc_after: int | None) -> dict[str, dict]:
        """Epoch e of every contender, then epoch e+1, ...; test accuracy (untimed) after acc_after.
        Every epoch records how many cores other processes kept busy meanwhile (`foreign_cores`)."""
        out = {c.name: {"epoch_s": [], "foreign_cores": [], "accuracy": None} for c in contenders}
        for e in range(total_epochs):
            self.wait(before_round=e + 1)
            for c in contenders:
                snap = cpu_snapshot()
                t0 = time.perf_counter()
                c.epoch(e)
                dt = time.perf_counter() - t0
                fc = foreign_cores(snap, cpu_snapshot())
                out[c.name]["epoch_s"].append(dt)
                out[c.name]["foreign_cores"].append(None if fc is None else round(fc, 3))
                log(f"  {c.name:16s} epoch {e + 1}: {dt:.3f} s  (load {os.getloadavg()[0]:.2f}, other processes "
                    f"{'?' if fc is None else f'{fc:.2f}'} cores)")
            if acc_after is not None and e + 1 == acc_after:
                for c in contenders:
                    out[c.name]["accuracy"] = c.accuracy()
                    log(f"  {c.name:16s} test accuracy after {acc_after} epochs: {100 * out[c.name]['accuracy']:.2f}%")
        return out


def steady(epoch_s: list[float], foreign: list, threshold: float) -> tuple[list[float], list[int], bool]:
    """The steady-state epochs used for the median: epochs 2..N (1-based) during which other processes
    used fewer than `threshold` cores; all of 2..N if fewer than 2 are that clean.
    Returns (times, their 1-based epoch numbers, whether the clean filter applied)."""
    idx = list(range(1, len(epoch_s))) or [0]
    clean = [i for i in idx if foreign[i] is None or foreign[i] < threshold]
    use, filtered = (clean, True) if len(clean) >= 2 else (idx, False)
    return [epoch_s[i] for i in use], [i + 1 for i in use], filtered


# --- phase: timed runs (main comparison, breakdown, sweep all go through time_contenders) ----------------
def make_contender(name: str, batch: int):
    if name.startswith("jaxmlp-"):
        return JaxmlpContender(batch, name.split("-", 1)[1])
    if name in ("torch", "torch-fused"):
        return TorchContender(batch, fused=name == "torch-fused")
    if name == "sklearn":
        return SklearnContender(batch)
    raise ValueError(f"unknown contender {name!r}")


def time_contenders(b: Bench, contenders, total_epochs: int, acc_after: int | None = None) -> dict[str, dict]:
    """Set up and start each contender, run them interleaved, close them: {name: summary}."""
    setup_s = {}
    for c in contenders:
        t0 = time.perf_counter()
        c.setup(b.train, b.test)
        c.start(b.args.seed)
        setup_s[c.name] = time.perf_counter() - t0
        log(f"  {c.name:16s} setup {setup_s[c.name]:.2f} s"
            + (f" (compile {c.compile_s:.2f} s)" if c.compile_s is not None else ""))
    timed = b.rounds.interleave(contenders, total_epochs, acc_after)
    out = {}
    for c in contenders:
        ep, fc = timed[c.name]["epoch_s"], timed[c.name]["foreign_cores"]
        used, used_epochs, filtered = steady(ep, fc, b.args.idle_foreign)
        med, flops = statistics.median(used), mlp_train_flops(b.sizes, c.samples_per_epoch)
        out[c.name] = {
            "samples_per_epoch": c.samples_per_epoch, "compile_s": c.compile_s, "setup_s": setup_s[c.name],
            "epoch_s": ep, "foreign_cores": fc, "first_epoch_s": ep[0], "median_epoch_s": med,
            "median_over_epochs": used_epochs, "clean_filter_applied": filtered,
            "samples_per_s": c.samples_per_epoch / med, "flops_per_epoch": flops, "gflops_per_s": flops / med / 1e9,
            "test_accuracy": timed[c.name]["accuracy"]}
        c.close()
    gc.collect()
    return out


def pick(run: dict, *keys: str) -> dict:
    return {k: run[k] for k in keys}


def compare(b: Bench) -> dict[str, dict]:
    """The main comparison: every contender, --epochs + --extra-epochs interleaved; ratio vs the reference."""
    args = b.args
    runs = time_contenders(b, [make_contender(n, args.batch) for n in args.names], args.epochs + args.extra_epochs,
                           args.epochs)
    ref_s = runs[args.ref]["median_epoch_s"]
    for r in runs.values():
        r["accuracy_after_epochs"] = args.epochs
        r["ratio_vs_jaxmlp"] = r["median_epoch_s"] / ref_s  # peer time / jaxmlp time: > 1 = jaxmlp faster
    return runs


def check_fit(b: Bench) -> dict | None:
    """The reference trainer end to end through fit(): the same compiled epoch as the contender
    (run_programs caches programs by program_key), so its epochs should time alike."""
    args = b.args
    if args.no_fit_check or not args.ref.startswith("jaxmlp-"):
        return None
    method = args.ref.split("-", 1)[1]
    cfg = mnist_config(args.batch, method, epochs=args.epochs, seed=args.seed)
    b.rounds.wait(before="fit() cross-check")
    snap, t0 = cpu_snapshot(), time.perf_counter()
    _, hist = fit(cfg, b.train, None, b.test)
    check = {"grad_method": method, "epochs": args.epochs, "wall_s": time.perf_counter() - t0,
             "compile_s": hist.compile_seconds, "epoch_s": hist.seconds,
             "median_epoch_s": statistics.median(hist.seconds[1:] or hist.seconds),
             "test_accuracy": hist.final["test"]["accuracy"], "foreign_cores": foreign_cores(snap, cpu_snapshot()),
             "same_program_as_contender": program_key(cfg) == program_key(mnist_config(args.batch, method))}
    log(f"fit() cross-check: compile {hist.compile_seconds:.2f} s, epochs {[round(s, 3) for s in hist.seconds]}, "
        f"test accuracy {100 * check['test_accuracy']:.2f}%")
    return check


def time_breakdown(b: Bench) -> dict | None:
    """Where jaxmlp's epoch time goes: the trainer's epoch vs bare scans without its divergence guard."""
    args = b.args
    if not (args.breakdown and args.ref.startswith("jaxmlp-")):
        return None
    log("breakdown: trainer epoch vs bare scans")
    cs = [make_contender(args.ref, args.batch), BareScanContender("adam", args.batch),
          BareScanContender("sgd", args.batch)]
    runs = time_contenders(b, cs, 1 + args.breakdown_epochs)
    return {n: pick(r, "epoch_s", "foreign_cores", "median_over_epochs", "median_epoch_s", "gflops_per_s")
            for n, r in runs.items()}


def sweep_batches(b: Bench, main_runs: dict) -> dict[str, dict[int, dict]]:
    """samples/s vs batch size: {contender: {batch: point}}; the main run stands in at its own batch."""
    args, sweep = b.args, {}
    for batch in args.batches:
        names = args.sweep_names + (["sklearn"] if batch in args.sklearn_batches else [])
        reuse = [n for n in names if batch == args.batch and n in main_runs]
        for n in reuse:
            sweep.setdefault(n, {})[batch] = {**pick(main_runs[n], "samples_per_s", "epoch_s", "foreign_cores"),
                                              "from": "main run"}
        todo = [n for n in names if n not in reuse]
        if todo:
            log(f"sweep batch {batch}: {todo}")
            runs = time_contenders(b, [make_contender(n, batch) for n in todo], 1 + args.sweep_epochs)
            for n, r in runs.items():
                sweep.setdefault(n, {})[batch] = {**pick(r, "samples_per_s", "epoch_s", "foreign_cores", "compile_s"),
                                                  "from": "sweep (epoch 1 = warm-up)"}
    return sweep


class BareScanContender:
    """Diagnostic, deliberately NOT the trainer (so not run_programs): the trainer's epoch without its
    divergence guard -- a plain jitted lax.scan of jaxmlp.loss_and_grad + an optax update over a
    fresh permutation (params donated). No accuracy."""

    def __init__(self, update: str, batch: int):
        self.name, self.update, self.batch = f"bare-scan-{update}", update, batch

    def setup(self, train, test) -> None:
        n, b = len(train), self.batch
        steps = n // b
        self.x, self.y = jax.device_put(host_arrays(train, np.float32))
        self.opt = optax.adam(LR) if self.update == "adam" else optax.sgd(LR)
        self.sizes = (train.x.shape[1], *HIDDEN, train.num_classes)

        def epoch(key, state, x, y):
            perm = jax.random.permutation(key, n)[: steps * b].reshape(steps, b)

            def body(carry, idx):
                p, o = carry
                _, g = loss_and_grad(p, x[idx], y[idx])
                u, o = self.opt.update(g, o, p)
                return (optax.apply_updates(p, u), o), None

            return jax.lax.scan(body, state, perm)[0]

        t0 = time.perf_counter()
        state = jax.eval_shape(self.fresh, jax.random.key(0))
        self.compiled = jax.jit(epoch, donate_argnums=(1,)).lower(jax.random.key(0), state, self.x, self.y).compile()
        self.compile_s = time.perf_counter() - t0
        self.samples_per_epoch = steps * b

    def fresh(self, key):
        params = init_mlp(key, self.sizes)
        return params, self.opt.init(params)

    def start(self, seed: int) -> None:
        self.state, self.key = jax.block_until_ready(self.fresh(jax.random.key(seed))), jax.random.key(seed + 1)

    def epoch(self, e: int) -> None:
        self.state = jax.block_until_ready(self.compiled(jax.random.fold_in(self.key, e), self.state, self.x, self.y))

    def close(self) -> None:
        del self.state, self.x, self.y, self.compiled


# --- phase: the numpy sgemm ceiling ----------------------------------------------------------------------
def sgemm_ceiling(sizes, batch: int, square: int, repeats: int) -> dict:
    """numpy float32 matmul GFLOP/s: the 9 GEMMs of one training step at `batch`, and a square GEMM."""
    rng = np.random.default_rng(0)
    gemms = []  # (A, B, out) with out = A @ B
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        act = rng.standard_normal((batch, d_in), dtype=np.float32)
        w = rng.standard_normal((d_in, d_out), dtype=np.float32)
        g = rng.standard_normal((batch, d_out), dtype=np.float32)
        gemms += [(act, w, np.empty((batch, d_out), np.float32)),      # forward   (B, din) @ (din, dout)
                  (act.T, g, np.empty((d_in, d_out), np.float32)),     # grad W    (din, B) @ (B, dout)
                  (g, w.T, np.empty((batch, d_in), np.float32))]       # grad in   (B, dout) @ (dout, din)
    step_flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in gemms)
    inner = 20  # one timing = 20 steps' GEMMs, so a timing is tens of ms, not tens of microseconds

    def steps():
        for _ in range(inner):
            for a, b, out in gemms:
                np.matmul(a, b, out=out)

    a, b = (rng.standard_normal((square, square), dtype=np.float32) for _ in range(2))
    c = np.empty((square, square), np.float32)
    out = {}
    for key, fn, flops, info in (
            ("model_gemms", steps, inner * step_flops, {"batch": batch, "gemms_per_step": len(gemms),
                                                         "flops_per_step": step_flops, "steps_per_timing": inner}),
            ("square", lambda: np.matmul(a, b, out=c), 2 * square ** 3, {"n": square, "flops": 2 * square ** 3})):
        fn()  # warm-up
        med, raw = median_time(fn, repeats)
        out[key] = {**info, "median_s": med, "raw_s": raw, "median_gflops_per_s": flops / med / 1e9,
                    "best_gflops_per_s": flops / min(raw) / 1e9}
    return out


def measure_ceiling(b: Bench, when: str) -> dict:
    """sgemm_ceiling after a wait for idle CPUs, with what other processes did meanwhile."""
    idle = b.rounds.wait()
    snap = cpu_snapshot()
    gemm = sgemm_ceiling(b.sizes, b.args.batch, b.args.square, b.args.gemm_repeats)
    gemm.update(when=when, foreign_cores=foreign_cores(snap, cpu_snapshot()), idle_wait=idle)
    log(f"sgemm at {when}: model GEMMs at batch {b.args.batch}: {gemm['model_gemms']['best_gflops_per_s']:.1f} "
        f"GFLOP/s best; square {b.args.square}: {gemm['square']['best_gflops_per_s']:.1f} GFLOP/s best")
    return gemm


def combine_ceiling(measurements: list[dict]) -> dict:
    """The ceiling from sgemm measurements taken at the start and the end of the run: for each GEMM
    set the best rate seen (a ceiling is what the BLAS can reach; a neighbour's load only lowers
    it), and as the ceiling the faster of the two sets -- a ceiling must bound what the workload
    can reach (on a small CPU OpenBLAS's batch-128 GEMMs are thread-starved and can be slower than
    a fused XLA epoch)."""
    out = {"measurements": measurements}
    for key in ("model_gemms", "square"):
        out[key] = {"gflops_per_s": max(m[key]["best_gflops_per_s"] for m in measurements),
                    "median_gflops_per_s": [m[key]["median_gflops_per_s"] for m in measurements]}
    out["ceiling_used"] = "square" if out["square"]["gflops_per_s"] >= out["model_gemms"]["gflops_per_s"] \
        else "model_gemms"
    out["ceiling_gflops_per_s"] = out[out["ceiling_used"]]["gflops_per_s"]
    out["blas"] = _blas_info()
    log(f"sgemm ceiling: model GEMMs {out['model_gemms']['gflops_per_s']:.1f} GFLOP/s, square "
        f"{out['square']['gflops_per_s']:.1f} GFLOP/s (best of start and end); using {out['ceiling_used']}")
    return out


def _blas_info() -> list[dict] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{k: v for k, v in pool.items() if k in ("internal_api", "version", "num_threads", "architecture",
                                                       "threading_layer", "filepath")}
            for pool in threadpool_info()]


def add_fractions(gemm: dict, *run_sets: dict | None) -> None:
    """Each run's GFLOP/s as fractions of the ceiling, the square sgemm and the model GEMMs."""
    for runs in run_sets:
        for r in (runs or {}).values():
            r["fraction_of_ceiling"] = r["gflops_per_s"] / gemm["ceiling_gflops_per_s"]
            r["fraction_of_square_sgemm"] = r["gflops_per_s"] / gemm["square"]["gflops_per_s"]
            r["fraction_of_model_gemms"] = r["gflops_per_s"] / gemm["model_gemms"]["gflops_per_s"]


# --- phase: replot, goals -------------------------------------------------------------------------------
def replot(args) -> None:
    rec = json.loads(Path(args.replot).read_text())
    print(plot_sweep(rec["sweep"], RESULTS / args.plot, rec["environment"]["cpu_count"]))


def goals_of(runs: dict, ref: str) -> dict:
    def goal(value: float, target: str, met: bool) -> dict:
        return {"value": value, "goal": target, "met": met}

    goals = {}
    if "sklearn" in runs:
        v = runs["sklearn"]["ratio_vs_jaxmlp"]
        goals["speedup_vs_sklearn"] = goal(v, f">= {GOALS['vs_sklearn']}", v >= GOALS["vs_sklearn"])
    for tn in ("torch", "torch-fused"):
        if tn in runs:
            v = runs[tn]["ratio_vs_jaxmlp"]
            goals[f"speedup_vs_{tn}"] = goal(v, f">= {GOALS['vs_torch']}", v >= GOALS["vs_torch"])
    if "torch" in runs:
        d = 100 * (runs[ref]["test_accuracy"] - runs["torch"]["test_accuracy"])
        goals["accuracy_points_vs_torch"] = goal(d, f"within {GOALS['acc_points_vs_torch']} points (or better)",
                                                 d >= -GOALS["acc_points_vs_torch"])
    v = runs[ref]["fraction_of_ceiling"]
    goals["fraction_of_sgemm_ceiling"] = goal(v, f">= {GOALS['ceiling_fraction']}", v >= GOALS["ceiling_fraction"])
    return goals


# --- main: the phases in order ---------------------------------------------------------------------------
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.replot:
        return replot(args)
    require_peers(args)
    b = load_mnist(args)
    res = wait_quiet(args)
    t_run = time.perf_counter()
    gemm_start = measure_ceiling(b, "start")
    res["runs"] = compare(b)
    res["fit_check"] = check_fit(b)
    res["breakdown"] = time_breakdown(b)
    res["sweep"] = sweep_batches(b, res["runs"])
    res["sgemm"] = combine_ceiling([gemm_start, measure_ceiling(b, "end")])
    add_fractions(res["sgemm"], res["runs"], res["breakdown"])
    res["load_average_end"], res["run_s"] = load_averages(), time.perf_counter() - t_run
    log(f"done in {res['run_s']:.0f} s; load at end {res['load_average_end']}")
    res["plot"] = plot_sweep(res["sweep"], RESULTS / args.plot, os.cpu_count()) if args.plot and res["sweep"] else None
    res["goals"] = goals_of(res["runs"], args.ref)
    write_report(b, record_of(b, res))


if __name__ == "__main__":
    main()
