"""jaxmlp vs the CPU peers users would pick instead: PyTorch eager and scikit-learn's MLPClassifier.

    python scripts/bench_cpu.py [--data-dir ../shared/data/mnist] [--epochs 3] [--extra-epochs 2]

Workload: real MNIST (60000 train / 10000 test), 784-512-512-10 relu, softmax cross-entropy,
Adam lr 1e-3, fp32, batch 128. Contenders:

- jaxmlp-autodiff / jaxmlp-manual: the real trainer's scan-fused epoch (`jaxmlp.train.make_epoch_fn`,
  one jitted lax.scan over the minibatches, params and optimizer state donated), with
  grad_method "autodiff" and "manual". Compile time is measured separately (AOT lower+compile).
  A final `fit()` run cross-checks that the end-to-end trainer gives the same epoch times.
- torch: PyTorch eager, the standard per-step loop (randperm + index, zero_grad, forward,
  cross_entropy, backward, Adam.step), data as in-memory tensors, He-normal init, zero biases,
  torch.set_num_threads(os.cpu_count()), torch.set_flush_denormal(True).
- torch-fused (optional, in the default list): the same with Adam(fused=True).
- sklearn: MLPClassifier(hidden_layer_sizes=(512, 512), solver="adam", batch_size=128,
  learning_rate_init=1e-3, alpha=0 (no L2, like the others), max_iter=1, warm_start=True):
  one fit() call is one shuffled epoch.

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
GEMM; the ceiling used for the goal is the faster of the two (normally the square one). Then a samples/s vs batch size sweep -> throughput.png.

Before timing it waits for the 1-minute load average to drop below --quiet-load (default 1.0;
polls every 20 s for up to --max-wait seconds) and records the load averages at start and end.
Writes results/<name>.{json,md} and results/throughput.png.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from _bench import (RESULTS, cpu_snapshot, environment, foreign_cores, load_averages, mlp_train_flops,  # noqa: E402
                    wait_for_idle_cpu, wait_for_quiet, write_results)
from jaxmlp.config import TrainConfig  # noqa: E402
from jaxmlp.data import load_dataset  # noqa: E402
from jaxmlp.train import (build_optimizer, check_data, epoch_key, evaluate, fit, init_state,  # noqa: E402
                          make_epoch_fn, model_sizes, place, run_keys, train_arrays)

REPO = Path(__file__).resolve().parents[1]
HIDDEN = (512, 512)
LR = 1e-3
GOALS = {"vs_sklearn": 2.5, "vs_torch": 2.0, "acc_points_vs_torch": 0.3, "ceiling_fraction": 0.8}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- contenders: setup() once, epoch() timed, accuracy() untimed ---------------------------------
class JaxmlpContender:
    """The real trainer's compiled epoch (what `fit` runs), stepped one epoch at a time."""

    def __init__(self, method: str, batch: int, seed: int):
        self.name = f"jaxmlp-{method}"
        self.method, self.batch, self.seed = method, batch, seed

    def setup(self, train, test) -> None:
        self.test = test
        self.cfg = TrainConfig(dataset="mnist", hidden=HIDDEN, activation="relu", optimizer="adam",
                               learning_rate=LR, batch_size=self.batch, epochs=1, seed=self.seed,
                               grad_method=self.method)
        loss = check_data(self.cfg, train)
        n = len(train)
        sizes = model_sizes(self.cfg, train, loss)
        schedule, optimizer = build_optimizer(self.cfg, sizes, n // self.batch)
        self.x, self.y = place(train_arrays(train, np.float32))
        init_key, self.train_key = run_keys(self.seed)
        self.state = jax.block_until_ready(jax.jit(lambda k: init_state(k, self.cfg, sizes, optimizer))(init_key))
        epoch_fn = make_epoch_fn(self.cfg, optimizer, schedule, loss=loss, n_train=n)
        t0 = time.perf_counter()
        self.compiled = epoch_fn.lower(epoch_key(self.train_key, 0), self.state, self.x, self.y).compile()
        self.compile_s = time.perf_counter() - t0
        self.samples_per_epoch = (n // self.batch) * self.batch  # the remainder batch is dropped
        self.epochs_done = 0

    def epoch(self) -> None:
        self.state, stats = self.compiled(epoch_key(self.train_key, self.epochs_done), self.state, self.x, self.y)
        stats = jax.device_get(stats)  # waits for the epoch
        if not stats.finite:
            raise RuntimeError(f"{self.name} diverged")
        self.epochs_done += 1

    def accuracy(self) -> float:
        return evaluate(self.state.params, self.test, config=self.cfg)["accuracy"]

    def close(self) -> None:
        del self.state, self.x, self.y, self.compiled


class TorchContender:
    """PyTorch eager: the loop a PyTorch user writes, data already in memory as tensors."""

    def __init__(self, batch: int, seed: int, fused: bool = False):
        self.name = "torch-fused" if fused else "torch"
        self.batch, self.seed, self.fused = batch, seed, fused
        self.compile_s = None

    def setup(self, train, test) -> None:
        import torch
        from torch import nn

        torch.set_flush_denormal(True)
        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(self.seed)
        self.torch, self.F = torch, torch.nn.functional
        self.model = nn.Sequential(nn.Linear(784, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                                   nn.Linear(HIDDEN[1], 10))
        for m in self.model:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # He normal (fan_in), like jaxmlp's relu default
                nn.init.zeros_(m.bias)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR, **({"fused": True} if self.fused else {}))
        self.x = torch.from_numpy(np.ascontiguousarray(train.x, dtype=np.float32))
        self.y = torch.from_numpy(train.y.astype(np.int64))
        self.xt = torch.from_numpy(np.ascontiguousarray(test.x, dtype=np.float32))
        self.yt = torch.from_numpy(test.y.astype(np.int64))
        self.gen = torch.Generator().manual_seed(self.seed)
        self.samples_per_epoch = len(self.x)  # the last partial batch is kept (DataLoader default)

    def epoch(self) -> None:
        torch, F, model, opt = self.torch, self.F, self.model, self.opt
        model.train()
        perm = torch.randperm(len(self.x), generator=self.gen)
        for i in range(0, len(self.x), self.batch):
            idx = perm[i:i + self.batch]
            xb, yb = self.x[idx], self.y[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        if not torch.isfinite(loss):
            raise RuntimeError(f"{self.name} diverged")

    def accuracy(self) -> float:
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            return float((self.model(self.xt).argmax(1) == self.yt).float().mean())

    def close(self) -> None:
        del self.model, self.opt, self.x, self.y


class SklearnContender:
    """MLPClassifier with warm_start and max_iter=1: each fit() call is one shuffled epoch."""

    def __init__(self, batch: int, seed: int):
        self.name = "sklearn"
        self.batch, self.seed = batch, seed
        self.compile_s = None

    def setup(self, train, test) -> None:
        from sklearn.neural_network import MLPClassifier

        self.clf = MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam", alpha=0.0,
                                 batch_size=self.batch, learning_rate_init=LR, max_iter=1, warm_start=True,
                                 shuffle=True, random_state=self.seed)
        self.x, self.y = np.ascontiguousarray(train.x, dtype=np.float32), train.y
        self.xt, self.yt = np.ascontiguousarray(test.x, dtype=np.float32), test.y
        self.samples_per_epoch = len(self.x)

    def epoch(self) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(self.x, self.y)

    def accuracy(self) -> float:
        return float(np.mean(self.clf.predict(self.xt) == self.yt))

    def close(self) -> None:
        del self.clf


class BareScanContender:
    """Diagnostic, not a contender: the trainer's epoch without its divergence guard -- a plain jitted
    lax.scan of jaxmlp.loss_and_grad + an optax update over a fresh permutation (params donated)."""

    def __init__(self, update: str, batch: int, seed: int):
        self.name = f"bare-scan-{update}"
        self.update, self.batch, self.seed = update, batch, seed

    def setup(self, train, test) -> None:
        import optax

        from jaxmlp import init_mlp, loss_and_grad

        n, b = len(train), self.batch
        steps = n // b
        self.x, self.y = place(train_arrays(train, np.float32))
        opt = optax.adam(LR) if self.update == "adam" else optax.sgd(LR)
        params = init_mlp(jax.random.key(self.seed), (train.x.shape[1], *HIDDEN, 10))
        self.state = (params, opt.init(params))

        def epoch(key, state, x, y):
            perm = jax.random.permutation(key, n)[: steps * b].reshape(steps, b)

            def body(carry, idx):
                p, o = carry
                _, g = loss_and_grad(p, x[idx], y[idx])
                u, o = opt.update(g, o, p)
                return (optax.apply_updates(p, u), o), None

            return jax.lax.scan(body, state, perm)[0]

        t0 = time.perf_counter()
        self.compiled = jax.jit(epoch, donate_argnums=(1,)).lower(jax.random.key(0), self.state, self.x,
                                                                   self.y).compile()
        self.compile_s = time.perf_counter() - t0
        self.samples_per_epoch = steps * b
        self.key = jax.random.key(self.seed + 1)

    def epoch(self) -> None:
        self.key, k = jax.random.split(self.key)
        self.state = jax.block_until_ready(self.compiled(k, self.state, self.x, self.y))

    def accuracy(self) -> float:
        raise NotImplementedError

    def close(self) -> None:
        del self.state, self.x, self.y, self.compiled


def steady(epoch_s: list[float], foreign: list, threshold: float) -> tuple[list[float], list[int], bool]:
    """The steady-state epochs used for the median: epochs 2..N (1-based) during which other processes
    used fewer than `threshold` cores; all of 2..N if fewer than 2 are that clean.
    Returns (times, their 1-based epoch numbers, whether the clean filter applied)."""
    idx = list(range(1, len(epoch_s))) or [0]
    clean = [i for i in idx if foreign[i] is None or foreign[i] < threshold]
    use, filtered = (clean, True) if len(clean) >= 2 else (idx, False)
    return [epoch_s[i] for i in use], [i + 1 for i in use], filtered


def _max_foreign(values) -> str:
    vals = [v for v in values if v is not None]
    return f"{max(vals):.2f}" if vals else "?"


def make_contender(name: str, batch: int, seed: int):
    if name.startswith("jaxmlp-"):
        return JaxmlpContender(name.split("-", 1)[1], batch, seed)
    if name in ("torch", "torch-fused"):
        return TorchContender(batch, seed, fused=name == "torch-fused")
    if name == "sklearn":
        return SklearnContender(batch, seed)
    raise ValueError(f"unknown contender {name!r}")


IDLE = {"max_foreign": 0.25, "window_s": 3.0, "max_wait_s": 60.0}  # set from the command line in main()


def run_interleaved(contenders, total_epochs: int, acc_after: int | None, idle_log: list) -> dict[str, dict]:
    """Epoch e of every contender, then epoch e+1, ...; test accuracy (untimed) after acc_after.

    Before each round it waits (bounded) until other processes leave the CPUs idle, and every
    epoch records how many cores other processes kept busy meanwhile (`foreign_cores`)."""
    out = {c.name: {"epoch_s": [], "foreign_cores": [], "accuracy": None} for c in contenders}
    for e in range(total_epochs):
        idle_log.append({"before_round": e + 1, **wait_for_idle_cpu(**IDLE, log=log)})
        for c in contenders:
            snap = cpu_snapshot()
            t0 = time.perf_counter()
            c.epoch()
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


# --- the numpy sgemm ceiling -------------------------------------------------------------------------
def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    raw = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        raw.append(time.perf_counter() - t0)
    return statistics.median(raw), raw


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

    def step():
        for a, b, out in gemms:
            np.matmul(a, b, out=out)

    inner = 20  # one timing = 20 steps' GEMMs, so a timing is tens of ms, not tens of microseconds
    med, raw = _median_time(lambda: [step() for _ in range(inner)], repeats)
    a = rng.standard_normal((square, square), dtype=np.float32)
    b = rng.standard_normal((square, square), dtype=np.float32)
    c = np.empty((square, square), np.float32)
    med_sq, raw_sq = _median_time(lambda: np.matmul(a, b, out=c), repeats)
    return {
        "model_gemms": {"batch": batch, "gemms_per_step": len(gemms), "flops_per_step": step_flops,
                        "steps_per_timing": inner, "median_s": med, "raw_s": raw,
                        "median_gflops_per_s": inner * step_flops / med / 1e9,
                        "best_gflops_per_s": inner * step_flops / min(raw) / 1e9},
        "square": {"n": square, "flops": 2 * square ** 3, "median_s": med_sq, "raw_s": raw_sq,
                   "median_gflops_per_s": 2 * square ** 3 / med_sq / 1e9,
                   "best_gflops_per_s": 2 * square ** 3 / min(raw_sq) / 1e9},
    }


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
    return out


def _blas_info() -> list[dict] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{k: v for k, v in pool.items() if k in ("internal_api", "version", "num_threads", "architecture",
                                                       "threading_layer", "filepath")}
            for pool in threadpool_info()]


def plot_sweep(sweep: dict, path: Path, cores: int | None) -> Path:
    """samples/s vs batch size, one line per contender, log-log; sweep = {name: {batch: {"samples_per_s"}}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    batches = set()
    for n, pts in sweep.items():
        bs = sorted(int(b) for b in pts)
        batches.update(bs)
        ax.plot(bs, [pts[b if b in pts else str(b)]["samples_per_s"] for b in bs], marker="o", label=n)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(batches)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("batch size")
    ax.set_ylabel("training samples / s (steady-state epoch)")
    ax.set_title(f"MNIST 784-512-512-10 relu, Adam, fp32, CPU ({cores} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- main -------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist", help="MNIST idx files (relative to the repo root)")
    parser.add_argument("--contenders", default="jaxmlp-autodiff,jaxmlp-manual,torch,torch-fused,sklearn")
    parser.add_argument("--epochs", type=int, default=3, help="epochs before the test accuracy is taken")
    parser.add_argument("--extra-epochs", type=int, default=2, help="more timed epochs after the accuracy")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", default="128,512,2048", help="batch sizes of the throughput sweep ('' = none)")
    parser.add_argument("--sweep-contenders", default="jaxmlp-autodiff,torch")
    parser.add_argument("--sweep-sklearn", default="128,512", help="batch sizes at which sklearn joins the sweep")
    parser.add_argument("--sweep-epochs", type=int, default=2, help="timed epochs per sweep point (after 1 warm-up)")
    parser.add_argument("--square", type=int, default=2048, help="size of the square sgemm")
    parser.add_argument("--gemm-repeats", type=int, default=15)
    parser.add_argument("--no-fit-check", action="store_true", help="skip the end-to-end fit() cross-check")
    parser.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the trainer epoch against bare scans without its divergence guard")
    parser.add_argument("--breakdown-epochs", type=int, default=4, help="timed epochs per breakdown variant")
    parser.add_argument("--n-train", type=int, default=None, help="use a training subset (smoke tests only)")
    parser.add_argument("--quiet-load", type=float, default=1.0)
    parser.add_argument("--max-wait", type=float, default=900.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--idle-foreign", type=float, default=0.25,
                        help="before each round of epochs, wait until other processes use fewer cores than this")
    parser.add_argument("--idle-wait", type=float, default=60.0, help="at most this many seconds per such wait")
    parser.add_argument("--name", default="cpu_vs_peers", help="results/<name>.{json,md}")
    parser.add_argument("--plot", default="throughput.png", help="results/<plot> ('' = no plot)")
    parser.add_argument("--replot", metavar="JSON", help="only redraw the plot from a results JSON of this script")
    args = parser.parse_args()
    if args.replot:
        import json

        rec = json.loads(Path(args.replot).read_text())
        print(plot_sweep(rec["sweep"], RESULTS / args.plot, rec["environment"]["cpu_count"]))
        return
    names = [n for n in args.contenders.split(",") if n]
    ref = "jaxmlp-autodiff" if "jaxmlp-autodiff" in names else names[0]

    data_dir = Path(args.data_dir)
    data_dir = data_dir if data_dir.is_absolute() else (REPO / data_dir).resolve()
    splits = load_dataset("mnist", data_dir=str(data_dir))
    train, test = splits.train, splits.test
    if args.n_train:
        from jaxmlp.data.dataset import Dataset

        train = Dataset(train.x[:args.n_train], train.y[:args.n_train], name=train.name,
                        num_classes=train.num_classes, feature_shape=train.feature_shape)
    sizes = (train.x.shape[1], *HIDDEN, 10)
    log(f"MNIST: train {train.x.shape}, test {test.x.shape}; model {sizes}")

    quiet = wait_for_quiet(args.quiet_load, 20.0, args.max_wait, log=log)
    load_start = load_averages()
    log(f"timing starts: load {load_start} (quiet={quiet['quiet']}, waited {quiet['waited_s']} s)")
    t_run = time.perf_counter()

    # 1. sgemm ceiling (numpy / OpenBLAS, all cores)
    IDLE.update(max_foreign=args.idle_foreign, max_wait_s=args.idle_wait)
    gemm_idle = wait_for_idle_cpu(**IDLE, log=log)
    snap = cpu_snapshot()
    gemm_start = sgemm_ceiling(sizes, args.batch, args.square, args.gemm_repeats)
    gemm_start.update(when="start", foreign_cores=foreign_cores(snap, cpu_snapshot()), idle_wait=gemm_idle)
    log(f"sgemm at start: model GEMMs at batch {args.batch}: {gemm_start['model_gemms']['best_gflops_per_s']:.1f} "
        f"GFLOP/s best; square {args.square}: {gemm_start['square']['best_gflops_per_s']:.1f} GFLOP/s best")

    # 2. the main comparison, interleaved
    contenders = [make_contender(n, args.batch, args.seed) for n in names]
    setup_s = {}
    for c in contenders:
        t0 = time.perf_counter()
        c.setup(train, test)
        setup_s[c.name] = time.perf_counter() - t0
        log(f"  {c.name:16s} setup {setup_s[c.name]:.2f} s"
            + (f" (compile {c.compile_s:.2f} s)" if c.compile_s is not None else ""))
    total_epochs = args.epochs + args.extra_epochs
    idle_log: list = []
    raw = run_interleaved(contenders, total_epochs, args.epochs, idle_log)
    main_runs = {}
    for c in contenders:
        ep = raw[c.name]["epoch_s"]
        used, used_epochs, filtered = steady(ep, raw[c.name]["foreign_cores"], args.idle_foreign)
        med = statistics.median(used)
        flops = mlp_train_flops(sizes, c.samples_per_epoch)
        main_runs[c.name] = {
            "samples_per_epoch": c.samples_per_epoch, "compile_s": c.compile_s, "setup_s": setup_s[c.name],
            "epoch_s": ep, "foreign_cores": raw[c.name]["foreign_cores"], "first_epoch_s": ep[0],
            "median_epoch_s": med, "median_over_epochs": used_epochs, "clean_filter_applied": filtered,
            "samples_per_s": c.samples_per_epoch / med, "flops_per_epoch": flops, "gflops_per_s": flops / med / 1e9,
            "test_accuracy": raw[c.name]["accuracy"], "accuracy_after_epochs": args.epochs,
        }
    for c in contenders:
        c.close()
    del contenders
    gc.collect()
    ref_s = main_runs[ref]["median_epoch_s"]
    for r in main_runs.values():
        r["ratio_vs_jaxmlp"] = r["median_epoch_s"] / ref_s  # peer time / jaxmlp time: > 1 = jaxmlp faster

    # 3. end-to-end cross-check through fit()
    fit_check = None
    if not args.no_fit_check and ref.startswith("jaxmlp-"):
        cfg = TrainConfig(dataset="mnist", hidden=HIDDEN, activation="relu", optimizer="adam", learning_rate=LR,
                          batch_size=args.batch, epochs=args.epochs, seed=args.seed, grad_method=ref.split("-", 1)[1])
        idle_log.append({"before": "fit() cross-check", **wait_for_idle_cpu(**IDLE, log=log)})
        snap = cpu_snapshot()
        t0 = time.perf_counter()
        _, hist = fit(cfg, train, None, test)
        fit_foreign = foreign_cores(snap, cpu_snapshot())
        fit_check = {"grad_method": cfg.grad_method, "epochs": args.epochs, "wall_s": time.perf_counter() - t0,
                     "compile_s": hist.compile_seconds, "epoch_s": hist.seconds,
                     "median_epoch_s": statistics.median(hist.seconds[1:] or hist.seconds),
                     "test_accuracy": hist.final["test"]["accuracy"], "foreign_cores": fit_foreign}
        log(f"fit() cross-check: compile {hist.compile_seconds:.2f} s, epochs {[round(s, 3) for s in hist.seconds]}, "
            f"test accuracy {100 * fit_check['test_accuracy']:.2f}%")

    # 3b. where jaxmlp's epoch time goes: the trainer's epoch vs the same scan without its divergence guard
    breakdown = None
    if args.breakdown and ref.startswith("jaxmlp-"):
        log("breakdown: trainer epoch vs bare scans")
        cs = [JaxmlpContender(ref.split("-", 1)[1], args.batch, args.seed), BareScanContender("adam", args.batch, args.seed),
              BareScanContender("sgd", args.batch, args.seed)]
        for c in cs:
            c.setup(train, test)
        res = run_interleaved(cs, 1 + args.breakdown_epochs, None, idle_log)
        breakdown = {}
        for c in cs:
            ep = res[c.name]["epoch_s"]
            used, used_epochs, _ = steady(ep, res[c.name]["foreign_cores"], args.idle_foreign)
            med = statistics.median(used)
            breakdown[c.name] = {"epoch_s": ep, "foreign_cores": res[c.name]["foreign_cores"],
                                 "median_over_epochs": used_epochs, "median_epoch_s": med,
                                 "gflops_per_s": mlp_train_flops(sizes, c.samples_per_epoch) / med / 1e9}
            c.close()
        del cs
        gc.collect()

    # 4. throughput sweep
    sweep = {}
    batches = [int(b) for b in args.sweep.split(",") if b]
    sk_batches = {int(b) for b in args.sweep_sklearn.split(",") if b}
    for b in batches:
        sweep_names = [n for n in args.sweep_contenders.split(",") if n] + (["sklearn"] if b in sk_batches else [])
        reuse = [n for n in sweep_names if b == args.batch and n in main_runs]
        todo = [n for n in sweep_names if n not in reuse]
        for n in reuse:
            sweep.setdefault(n, {})[b] = {"samples_per_s": main_runs[n]["samples_per_s"],
                                          "epoch_s": main_runs[n]["epoch_s"],
                                          "foreign_cores": main_runs[n]["foreign_cores"], "from": "main run"}
        if not todo:
            continue
        log(f"sweep batch {b}: {todo}")
        cs = [make_contender(n, b, args.seed) for n in todo]
        for c in cs:
            c.setup(train, test)
        res = run_interleaved(cs, 1 + args.sweep_epochs, None, idle_log)
        for c in cs:
            ep = res[c.name]["epoch_s"]
            med = statistics.median(steady(ep, res[c.name]["foreign_cores"], args.idle_foreign)[0])
            sweep.setdefault(c.name, {})[b] = {"samples_per_s": c.samples_per_epoch / med, "epoch_s": ep,
                                               "foreign_cores": res[c.name]["foreign_cores"],
                                               "compile_s": c.compile_s, "from": "sweep (epoch 1 = warm-up)"}
            c.close()
        del cs
        gc.collect()

    # 5. the sgemm ceiling again, at the end; fractions of the combined ceiling
    gemm_idle = wait_for_idle_cpu(**IDLE, log=log)
    snap = cpu_snapshot()
    gemm_end = sgemm_ceiling(sizes, args.batch, args.square, args.gemm_repeats)
    gemm_end.update(when="end", foreign_cores=foreign_cores(snap, cpu_snapshot()), idle_wait=gemm_idle)
    gemm = combine_ceiling([gemm_start, gemm_end])
    log(f"sgemm ceiling: model GEMMs {gemm['model_gemms']['gflops_per_s']:.1f} GFLOP/s, square "
        f"{gemm['square']['gflops_per_s']:.1f} GFLOP/s (best of start and end); using {gemm['ceiling_used']}")
    for r in [*main_runs.values(), *(breakdown or {}).values()]:
        r["fraction_of_ceiling"] = r["gflops_per_s"] / gemm["ceiling_gflops_per_s"]
        r["fraction_of_square_sgemm"] = r["gflops_per_s"] / gemm["square"]["gflops_per_s"]
        r["fraction_of_model_gemms"] = r["gflops_per_s"] / gemm["model_gemms"]["gflops_per_s"]

    load_end = load_averages()
    run_s = time.perf_counter() - t_run
    log(f"done in {run_s:.0f} s; load at end {load_end}")

    # 6. plot
    plot_path = None
    if args.plot and sweep:
        plot_path = plot_sweep(sweep, RESULTS / args.plot, os.cpu_count())

    # 7. goals
    goals = {}
    jr = main_runs[ref]
    if "sklearn" in main_runs:
        v = main_runs["sklearn"]["ratio_vs_jaxmlp"]
        goals["speedup_vs_sklearn"] = {"value": v, "goal": f">= {GOALS['vs_sklearn']}", "met": v >= GOALS["vs_sklearn"]}
    for tn in ("torch", "torch-fused"):
        if tn in main_runs:
            v = main_runs[tn]["ratio_vs_jaxmlp"]
            goals[f"speedup_vs_{tn}"] = {"value": v, "goal": f">= {GOALS['vs_torch']}", "met": v >= GOALS["vs_torch"]}
    if "torch" in main_runs:
        d = 100 * (jr["test_accuracy"] - main_runs["torch"]["test_accuracy"])
        goals["accuracy_points_vs_torch"] = {"value": d, "goal": f"within {GOALS['acc_points_vs_torch']} points "
                                             "(or better)", "met": d >= -GOALS["acc_points_vs_torch"]}
    v = jr["fraction_of_ceiling"]
    goals["fraction_of_sgemm_ceiling"] = {"value": v, "goal": f">= {GOALS['ceiling_fraction']}",
                                          "met": v >= GOALS["ceiling_fraction"]}

    record = {
        "title": "jaxmlp vs PyTorch eager vs scikit-learn on CPU: MNIST 784-512-512-10 relu, Adam 1e-3, fp32, batch "
                 f"{args.batch}",
        "environment": environment(("torch", "scikit-learn", "matplotlib")),
        "workload": {"data": "MNIST (real idx files)", "data_dir": str(data_dir), "n_train": len(train),
                     "n_test": len(test), "sizes": list(sizes), "activation": "relu", "optimizer": "adam",
                     "learning_rate": LR, "dtype": "float32", "batch": args.batch, "epochs": args.epochs,
                     "extra_timed_epochs": args.extra_epochs, "seed": args.seed},
        "method": "contenders interleaved epoch by epoch; epoch 1 = warm-up (reported separately), median over "
                  "epochs 2..N during which other processes used < idle_foreign cores (all of 2..N if fewer than 2); "
                  "jaxmlp compile (AOT lower+compile) reported separately; test accuracy after "
                  f"{args.epochs} epochs (untimed); GFLOP/s = 6*N*sum(d_in*d_out)/epoch s; ratio = peer epoch s / "
                  f"{ref} epoch s",
        "quiet_wait": quiet, "idle_foreign": args.idle_foreign, "idle_waits": idle_log, "load_average_start": load_start, "load_average_end": load_end, "run_s": run_s,
        "sgemm": gemm, "reference": ref, "runs": main_runs, "fit_check": fit_check, "breakdown": breakdown,
        "sweep": {n: {str(b): v for b, v in pts.items()} for n, pts in sweep.items()},
        "goals": goals,
        "plot": None if plot_path is None else str(plot_path.relative_to(REPO)),
    }
    rows = []
    for n, r in main_runs.items():
        rows.append([n, f"{r['median_epoch_s']:.3f}", f"{r['first_epoch_s']:.3f}",
                     "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}",
                     f"{r['ratio_vs_jaxmlp']:.2f}", f"{100 * r['test_accuracy']:.2f}", f"{r['samples_per_s']:,.0f}",
                     f"{r['gflops_per_s']:.1f}", f"{r['fraction_of_ceiling']:.2f}",
                     f"{_max_foreign([r['foreign_cores'][e - 1] for e in r['median_over_epochs']])} "
                     f"({len(r['median_over_epochs'])} epochs)"])
    notes = [f"Median epoch = median over epochs 2..{total_epochs} (epoch 1 is warm-up and shown on its own) "
             f"during which other processes used < {args.idle_foreign} cores (all of 2..{total_epochs} if fewer "
             "than 2 were that clean; the epochs used are listed in the JSON), "
             "contenders interleaved epoch by epoch. Ratio = contender epoch time / "
             f"{ref} epoch time (> 1: jaxmlp is faster). Accuracy: MNIST test set after {args.epochs} epochs, seed "
             f"{args.seed}, one run each. GFLOP/s counts 6 * N * sum(d_in*d_out) per epoch.",
             "", "**sgemm ceiling** (numpy float32 matmul, OpenBLAS, all cores; measured at the start and at the "
             "end of this run):", "",
             "| GEMM set | median s (start / end) | GFLOP/s median (start / end) | GFLOP/s best |", "|---|---|---|---|"]
    for key, label in (("model_gemms", f"the 9 GEMMs of one training step at batch {args.batch} (x"
                        f"{gemm_start['model_gemms']['steps_per_timing']} steps per timing)"),
                       ("square", f"square {args.square}x{args.square}")):
        ms = gemm["measurements"]
        notes.append(f"| {label}" + (" **= the ceiling used**" if gemm["ceiling_used"] == key else "") + " | "
                     + " / ".join(f"{m[key]['median_s']:.4f}" for m in ms) + " | "
                     + " / ".join(f"{m[key]['median_gflops_per_s']:.1f}" for m in ms)
                     + f" | {gemm[key]['gflops_per_s']:.1f} |")
    notes += ["", "The ceiling used is the best rate of the faster GEMM set (a ceiling has to bound what the "
              "workload can reach; the best of the repeats, since a busy neighbour only lowers it).", "",
              f"{ref} reaches {jr['fraction_of_model_gemms']:.2f}x the model-shaped GEMM rate and "
              f"{jr['fraction_of_square_sgemm']:.2f} of the square sgemm.", "",
             "**Goals**", "", "| goal | measured | target | met |", "|---|---|---|---|"]
    for g, v in goals.items():
        notes.append(f"| {g} | {v['value']:.2f} | {v['goal']} | {'yes' if v['met'] else 'no'} |")
    if fit_check:
        notes += ["", f"**fit() cross-check** ({fit_check['grad_method']}, {fit_check['epochs']} epochs, end to end "
                  f"through `jaxmlp.train.fit`): compile {fit_check['compile_s']:.2f} s, epochs "
                  f"{', '.join(f'{s:.3f}' for s in fit_check['epoch_s'])} s, test accuracy "
                  f"{100 * fit_check['test_accuracy']:.2f}%."]
    if breakdown:
        notes += ["", "**Where jaxmlp's epoch time goes** (diagnostic; same data, model and batch, interleaved, "
                  "median of the clean timed epochs after one warm-up): the trainer's epoch vs a bare jitted "
                  "lax.scan of `loss_and_grad` + optax update without the trainer's divergence guard "
                  "(a per-step flag on the loss and a finite check of the final params and optimizer state).", "", "| variant | median epoch s | GFLOP/s | fraction of ceiling |", "|---|---|---|---|"]
        for n, v in breakdown.items():
            notes.append(f"| {n} | {v['median_epoch_s']:.3f} | {v['gflops_per_s']:.1f} | "
                         f"{v['gflops_per_s'] / gemm['ceiling_gflops_per_s']:.2f} |")
    if sweep:
        notes += ["", "**Throughput sweep** (samples/s, median of the timed epochs after one warm-up epoch; "
                  f"plot: `{args.plot}`)", "", "| contender | " + " | ".join(f"batch {b}" for b in batches) + " |",
                  "|---|" + "---|" * len(batches)]
        for n, pts in sweep.items():
            notes.append(f"| {n} | " + " | ".join(f"{pts[b]['samples_per_s']:,.0f}" if b in pts else "-"
                                                   for b in batches) + " |")
    if sweep:
        notes += ["", "Other processes during the sweep epochs (max cores): " + "; ".join(
            f"{n} @ {b}: {_max_foreign(v.get('foreign_cores', [None])[1:] if 'foreign_cores' in v else [])}"
            for n, pts in sweep.items() for b, v in sorted(pts.items()) if "foreign_cores" in v) + "."]
    notes += ["", "'other processes' = cores kept busy by other processes during an epoch (/proc/stat busy time "
              "minus this process's CPU time); before every round of epochs the script waits (up to "
              f"{args.idle_wait:.0f} s) until that is < {args.idle_foreign} cores."]
    notes += ["", f"**Load average** (1/5/15 min) at start: {load_start['1min']}/{load_start['5min']}/"
              f"{load_start['15min']}, at end: {load_end['1min']}/{load_end['5min']}/{load_end['15min']}. "
              + (f"The machine was quiet (1-min load < {args.quiet_load}) when timing started "
                 f"(waited {quiet['waited_s']:.0f} s)." if quiet["quiet"] else
                 f"**The machine never got quiet** (1-min load stayed >= {args.quiet_load} for "
                 f"{quiet['waited_s']:.0f} s of waiting); it is shared with other test runs, so these timings "
                 "carry that noise."),
              "", "Settings: torch uses torch.set_num_threads(os.cpu_count()) and set_flush_denormal(True), He-normal "
              "init, default Adam (torch) and Adam(fused=True) (torch-fused); sklearn uses alpha=0 (no L2, like the "
              "others) and float32 inputs; jaxmlp drops the remainder batch (59904 samples/epoch), torch and sklearn "
              "keep it (60000). No GPU was used."]
    write_results(args.name, record, ["contender", "median epoch s", "epoch 1 s", "compile s", "ratio vs jaxmlp",
                                      "test acc %", "samples/s", "GFLOP/s", "fraction of ceiling",
                                      "other processes, max cores (epochs in median)"], rows,
                  notes="\n".join(notes))
    print("\n".join(["| " + " | ".join(map(str, r)) + " |" for r in rows]))
    for g, v in goals.items():
        print(f"goal {g}: {v['value']:.3f} ({v['goal']}) -> {'met' if v['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
