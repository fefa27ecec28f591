"""jaxmlp on a GPU: MNIST time-to-accuracy vs PyTorch, wide-MLP throughput, manual vs autodiff, vmap over seeds.

    python scripts/bench_gpu.py                 # all parts, on a GPU; writes results/gpu.{json,md}
    python scripts/bench_gpu.py --parts 1,4     # a subset (the file then holds only those parts)
    python scripts/bench_gpu.py --smoke         # tiny sizes on any device (CPU too); writes /tmp/jaxmlp_gpu_smoke.*

Parts:
  1. MNIST time-to-accuracy: data on the GPU, 784-512-512-10 relu, Adam 1e-3, batch 128, fp32,
     `--seeds` seeds: seconds of training until test accuracy >= `--target` (evaluated after every
     epoch, untimed), steady-state and with the one-time compile/warm-up overhead added. jaxmlp is
     the trainer's scan-fused epoch (`jaxmlp.train.make_epoch_fn`); PyTorch eager (data on the GPU,
     the standard per-step loop) and `torch.compile` (each of `--torch-compile-modes` is tried and
     the faster steady-state epoch is kept for all seeds). The remainder batch is dropped by all.
  2. Wide-MLP throughput: sizes (W, W, W, W) (three W x W layers), softmax cross-entropy, Adam, one
     jitted loop of training steps, widths x batches x {fp32, tf32, bf16}: TFLOP/s (6 * B * 3W^2 per
     step) and the fraction of a bare GEMM (B x W) @ (W x W) of the same shape and precision
     (fraction = 9 * GEMM time / step time, the step's FLOPs being nine such GEMMs). bf16 uses
     jaxmlp's mixed-precision policy (`jaxmlp.precision`, fp32 master params) when present, else
     pure bf16 params; fp32 = jax.default_matmul_precision("float32"), tf32 = "tensorfloat32".
  3. Manual vs autodiff: step time (loss_and_grad + Adam, jitted loop) ratio manual / autodiff at
     three sizes.
  4. `jax.vmap` of the trainer's epoch over 1, 8 and 64 seeds of the MNIST MLP as one compiled
     program; goal: 64 seeds in <= 2.6x the epoch time of 1.

Timing: warm-up (compile) first, block_until_ready / torch.cuda.synchronize, medians of repeats.
Results are written after every part, so a run cut short keeps what it finished.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share the GPU with PyTorch in this process

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from _bench import RESULTS, environment, mlp_train_flops, write_results  # noqa: E402
from jaxmlp import init_mlp, loss_and_grad  # noqa: E402
from jaxmlp.config import TrainConfig  # noqa: E402
from jaxmlp.data import load_dataset  # noqa: E402
from jaxmlp.precision import policy_loss_and_grad  # noqa: E402
from jaxmlp.train import (build_optimizer, check_data, epoch_key, evaluate, init_state, make_epoch_fn,  # noqa: E402
                          model_sizes, place, run_keys, train_arrays)

REPO = Path(__file__).resolve().parents[1]
HIDDEN = (512, 512)
LR = 1e-3
JAX_PRECISION = {"fp32": "float32", "tf32": "tensorfloat32", "bf16": "default"}
TORCH_PRECISION = {"fp32": "highest", "tf32": "high"}

FULL = dict(seeds=5, target=0.98, max_epochs=30, n_train=None, widths="1024,4096,16384",
            batches="1024,8192,65536", dtypes="fp32,tf32,bf16", vmap_seeds="1,8,64", repeats=5,
            grad_sizes="784-512-512-10@128,2048-2048-2048-10@1024,4096-4096-4096-4096@8192",
            torch_compile_modes="reduce-overhead,max-autotune", name="gpu", vmap_epochs=3)
SMOKE = dict(seeds=2, target=0.80, max_epochs=3, n_train=2048, widths="64,128", batches="64,256",
             dtypes="fp32,tf32,bf16", vmap_seeds="1,2,4", repeats=2,
             grad_sizes="64-32-32-10@16,128-64-64-10@32,128-128-128-128@64",
             torch_compile_modes="default", name="/tmp/jaxmlp_gpu_smoke", vmap_epochs=1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    raw = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        raw.append(time.perf_counter() - t0)
    return statistics.median(raw), raw


# --- part 1: MNIST time-to-accuracy --------------------------------------------------------------------------
def tta_run(epoch_fn, evaluate_fn, max_epochs: int, target: float) -> dict:
    """Train epoch by epoch (timed) with an untimed test evaluation after each, until >= target."""
    epoch_s, accs = [], []
    for e in range(max_epochs):
        t0 = time.perf_counter()
        epoch_fn(e)
        epoch_s.append(time.perf_counter() - t0)
        accs.append(evaluate_fn())
        if accs[-1] >= target:
            break
    reached = accs[-1] >= target
    return {"epoch_s": epoch_s, "accuracy": accs, "reached": reached, "epochs_to_target": len(epoch_s) if reached
            else None, "steady_s": sum(epoch_s) if reached else None}


class JaxTTA:
    name = "jaxmlp"

    def __init__(self, train, test, batch: int, precision: str):
        self.test, self.precision = test, precision
        self.cfg = TrainConfig(dataset="mnist", hidden=HIDDEN, optimizer="adam", learning_rate=LR, batch_size=batch,
                               epochs=1)
        loss = check_data(self.cfg, train)
        self.sizes = model_sizes(self.cfg, train, loss)
        schedule, self.optimizer = build_optimizer(self.cfg, self.sizes, len(train) // batch)
        self.x, self.y = place(train_arrays(train, np.float32))
        self.init = jax.jit(lambda k: init_state(k, self.cfg, self.sizes, self.optimizer))
        epoch_fn = make_epoch_fn(self.cfg, self.optimizer, schedule, loss=loss, n_train=len(train))
        init_key, _ = run_keys(0)
        t0 = time.perf_counter()
        with jax.default_matmul_precision(JAX_PRECISION[precision]):
            self.compiled = epoch_fn.lower(epoch_key(init_key, 0), self.init(init_key), self.x, self.y).compile()
            self.state = None
        self.compile_s = time.perf_counter() - t0

    def start(self, seed: int) -> None:
        init_key, self.train_key = run_keys(seed)
        self.state = jax.block_until_ready(self.init(init_key))

    def epoch(self, e: int) -> None:
        self.state, stats = self.compiled(epoch_key(self.train_key, e), self.state, self.x, self.y)
        jax.device_get(stats.finite)

    def accuracy(self) -> float:
        with jax.default_matmul_precision(JAX_PRECISION[self.precision]):
            return evaluate(self.state.params, self.test, config=self.cfg)["accuracy"]


class TorchTTA:
    def __init__(self, train, test, batch: int, precision: str, compile_mode: str | None, device: str):
        import torch
        from torch import nn

        self.torch, self.F, self.device, self.batch = torch, torch.nn.functional, device, batch
        self.name = "torch-eager" if compile_mode is None else f"torch.compile({compile_mode})"
        self.compile_mode, self.compile_s = compile_mode, None
        torch.set_float32_matmul_precision(TORCH_PRECISION.get(precision, "highest"))
        self.base = nn.Sequential(nn.Linear(784, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                                  nn.Linear(HIDDEN[1], 10)).to(device)
        self.model = self.base if compile_mode is None else torch.compile(self.base, mode=compile_mode)
        self.x = torch.from_numpy(np.asarray(train.x, np.float32)).to(device)
        self.y = torch.from_numpy(train.y.astype(np.int64)).to(device)
        self.xt = torch.from_numpy(np.asarray(test.x, np.float32)).to(device)
        self.yt = torch.from_numpy(test.y.astype(np.int64)).to(device)
        self.steps = len(self.x) // batch  # drop the remainder batch, like jaxmlp (and no recompile/graph for it)

    def start(self, seed: int) -> None:
        torch, nn = self.torch, self.torch.nn
        torch.manual_seed(seed)
        with torch.no_grad():  # re-initialize in place: a compiled model keeps its graphs
            for m in self.base:
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        fused = {"fused": True} if self.device == "cuda" else {}
        self.opt = torch.optim.Adam(self.base.parameters(), lr=LR, **fused)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    def epoch(self, e: int) -> None:
        torch, F, model, opt = self.torch, self.F, self.model, self.opt
        model.train()
        perm = torch.randperm(len(self.x), generator=self.gen, device=self.device)
        mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
        for i in range(self.steps):
            idx = perm[i * self.batch:(i + 1) * self.batch]
            if mark is not None and self.compile_mode == "reduce-overhead":
                mark()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(self.x[idx]), self.y[idx])
            loss.backward()
            opt.step()
        if self.device == "cuda":
            torch.cuda.synchronize()

    def accuracy(self) -> float:
        torch = self.torch
        self.base.eval()  # eager eval of the same params (a compiled eval would recompile for the test shape)
        with torch.no_grad():
            acc = float((self.base(self.xt).argmax(1) == self.yt).float().mean())
        self.base.train()
        return acc


def warm(contender, max_epochs: int = 2) -> dict:
    """One-time overhead: a throwaway run (seed 1000) of 2 epochs; overhead = epoch 1 - epoch 2 (+ AOT compile)."""
    contender.start(1000)
    ep = []
    for e in range(max_epochs):
        t0 = time.perf_counter()
        contender.epoch(e)
        ep.append(time.perf_counter() - t0)
    aot = getattr(contender, "compile_s", None) or 0.0
    return {"warm_epoch_s": ep, "aot_compile_s": aot, "overhead_s": aot + max(ep[0] - ep[-1], 0.0)}


def part_mnist(args, train, test, device: str, torch_ok: bool) -> dict:
    seeds = list(range(args.seeds))
    out = {"target": args.target, "batch": args.batch, "precision": args.precision, "seeds": seeds,
           "n_train": len(train), "contenders": {}}
    contenders = [JaxTTA(train, test, args.batch, args.precision)]
    if torch_ok:
        contenders.append(TorchTTA(train, test, args.batch, args.precision, None, device))
        modes = [m for m in args.torch_compile_modes.split(",") if m and m != "none"]
        best, probes = None, {}
        for mode in modes:  # try each compile mode; keep the faster steady-state epoch
            try:
                c = TorchTTA(train, test, args.batch, args.precision, mode, device)
                w = warm(c)
            except Exception as exc:  # noqa: BLE001 - a mode that fails to compile is reported, not fatal
                probes[mode] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                log(f"torch.compile mode {mode} failed: {probes[mode]['error']}")
                continue
            probes[mode] = w
            log(f"torch.compile({mode}): warm epochs {[round(s, 3) for s in w['warm_epoch_s']]}")
            if best is None or w["warm_epoch_s"][-1] < best[1]["warm_epoch_s"][-1]:
                best = (c, w)
        out["torch_compile_probes"] = probes
        if best is not None:
            contenders.append(best[0])
            best[0].warm_info = best[1]
    for c in contenders:
        info = getattr(c, "warm_info", None) or warm(c)
        runs = []
        for s in seeds:
            c.start(s)
            r = tta_run(c.epoch, c.accuracy, args.max_epochs, args.target)
            r["with_compile_s"] = None if r["steady_s"] is None else r["steady_s"] + info["overhead_s"]
            runs.append(r)
            log(f"  {c.name:28s} seed {s}: {r['epochs_to_target']} epochs, steady {r['steady_s']} s, "
                f"acc {[round(a, 4) for a in r['accuracy']]}")
        steady = [r["steady_s"] for r in runs if r["steady_s"] is not None]
        out["contenders"][c.name] = {
            "overhead": info, "runs": runs, "reached": f"{len(steady)}/{len(runs)}",
            "median_steady_s": statistics.median(steady) if steady else None,
            "median_with_compile_s": statistics.median(steady) + info["overhead_s"] if steady else None,
            "median_epoch_s": statistics.median([s for r in runs for s in r["epoch_s"]]),
        }
    return out


# --- part 2 and 3: jitted loops of training steps ---------------------------------------------------------------
# part 2 runs bf16 through jaxmlp's own mixed-precision policy
BF16_MODE = "mixed (jaxmlp.precision policy bf16: fp32 master params and Adam, bf16 matmuls/activations)"


def make_steps(sizes, batch: int, dtype, method: str, seed: int = 0, policy: str | None = None):
    """(run(n) -> state after n Adam steps on one fixed batch, flops per step); one compile, n traced.

    policy: None = plain `loss_and_grad` in `dtype`; "bf16" = `jaxmlp.precision.policy_loss_and_grad`.
    """
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = init_mlp(k1, sizes, dtype=dtype)
    x = jax.random.normal(k2, (batch, sizes[0]), dtype)
    y = jax.random.randint(k3, (batch,), 0, sizes[-1])
    opt = optax.adam(LR)
    state0 = (params, opt.init(params))
    if policy is None:
        grad_fn = loss_and_grad
    else:
        def grad_fn(p, xx, yy, **kw):
            return policy_loss_and_grad(p, xx, yy, precision=policy, **kw)

    @jax.jit
    def run(state, n):
        def body(_, st):
            p, o = st
            _, g = grad_fn(p, x, y, method=method)
            u, o = opt.update(g, o, p)
            return optax.apply_updates(p, u), o
        return jax.lax.fori_loop(0, n, body, state)

    return run, state0, mlp_train_flops(sizes, batch)


def make_gemm(batch: int, width: int, dtype):
    """run(n): n chained (B, W) @ (W, W) GEMMs (chained, so none can be hoisted or skipped)."""
    k1, k2 = jax.random.split(jax.random.key(1))
    a = jax.random.normal(k1, (batch, width), dtype)
    w = (jax.random.normal(k2, (width, width), jnp.float32) / math.sqrt(width)).astype(dtype)

    @jax.jit
    def run(a0, n):
        return jax.lax.fori_loop(0, n, lambda _, acc: acc @ w, a0)

    return run, a, 2 * batch * width * width


def time_loop(run, state, flops_per_iter: int, repeats: int, target_s: float) -> dict:
    """Compile + warm up with n=1, pick n so one call takes ~target_s, median of `repeats` calls."""
    t0 = time.perf_counter()
    jax.block_until_ready(run(state, 1))
    first_s = time.perf_counter() - t0
    t1, _ = median_time(lambda: run(state, 1), 2)
    n = max(1, min(1000, int(target_s / max(t1, 1e-6))))
    med, raw = median_time(lambda: run(state, n), repeats)
    per = med / n
    return {"iters_per_call": n, "median_call_s": med, "raw_call_s": raw, "s_per_iter": per,
            "tflops_per_s": flops_per_iter / per / 1e12, "first_call_s": first_s}


def fits_memory(sizes, batch: int, itemsize: int, frac: float = 0.7) -> bool:
    try:
        limit = jax.devices()[0].memory_stats()["bytes_limit"]
    except Exception:  # noqa: BLE001 - no memory stats (CPU): assume it fits
        return True
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    need = itemsize * (4 * n_params + 3 * batch * sum(sizes))  # params, grads, 2 Adam moments; activations
    return need < frac * limit


def part_wide(args) -> dict:
    out = {"bf16_mode": BF16_MODE, "points": []}
    for prec in args.dtypes.split(","):
        dtype = jnp.float32  # master params; bf16 runs through the policy
        gemm_dtype = jnp.bfloat16 if prec == "bf16" else jnp.float32
        for width in [int(w) for w in args.widths.split(",")]:
            for batch in [int(b) for b in args.batches.split(",")]:
                sizes = (width,) * 4
                point = {"precision": prec, "width": width, "batch": batch, "sizes": list(sizes)}
                if not fits_memory(sizes, batch, 4):
                    point["skipped"] = "estimated memory above 70% of the device"
                    out["points"].append(point)
                    continue
                try:
                    with jax.default_matmul_precision(JAX_PRECISION[prec]):
                        run, state, flops = make_steps(sizes, batch, dtype, "autodiff",
                                                       policy="bf16" if prec == "bf16" else None)
                        step = time_loop(run, state, flops, args.repeats, args.target_call_s)
                        del run, state
                        grun, a, gflops = make_gemm(batch, width, gemm_dtype)
                        gemm = time_loop(grun, a, gflops, args.repeats, args.target_call_s)
                        del grun, a
                except Exception as exc:  # noqa: BLE001 - e.g. out of memory: record and go on
                    point["error"] = f"{type(exc).__name__}: {exc}"[:300]
                    out["points"].append(point)
                    log(f"  wide {prec} W={width} B={batch}: {point['error']}")
                    continue
                frac = 9 * gemm["s_per_iter"] / step["s_per_iter"]
                point.update({"step": step, "gemm": gemm, "fraction_of_bare_gemm": frac})
                out["points"].append(point)
                log(f"  wide {prec} W={width} B={batch}: step {step['s_per_iter'] * 1e3:.3f} ms, "
                    f"{step['tflops_per_s']:.2f} TFLOP/s, bare GEMM {gemm['tflops_per_s']:.2f} TFLOP/s, "
                    f"fraction {frac:.2f}")
    return out


def part_grad(args) -> dict:
    out = {"precision": args.precision, "sizes": []}
    for spec in args.grad_sizes.split(","):
        dims, batch = spec.split("@")
        sizes, batch = tuple(int(d) for d in dims.split("-")), int(batch)
        res = {"sizes": list(sizes), "batch": batch}
        with jax.default_matmul_precision(JAX_PRECISION[args.precision]):
            runs = {m: make_steps(sizes, batch, jnp.float32, m) for m in ("manual", "autodiff")}
            timed = {m: time_loop(r, s, f, 1, args.target_call_s) for m, (r, s, f) in runs.items()}  # warm + pick n
            n = {m: timed[m]["iters_per_call"] for m in runs}
            raw = {m: [] for m in runs}
            for _ in range(args.repeats):  # interleaved
                for m, (r, s, _) in runs.items():
                    t0 = time.perf_counter()
                    jax.block_until_ready(r(s, n[m]))
                    raw[m].append((time.perf_counter() - t0) / n[m])
        res["s_per_step"] = {m: statistics.median(v) for m, v in raw.items()}
        res["raw_s_per_step"] = raw
        res["ratio_manual_over_autodiff"] = res["s_per_step"]["manual"] / res["s_per_step"]["autodiff"]
        out["sizes"].append(res)
        log(f"  grad {spec}: manual {res['s_per_step']['manual'] * 1e3:.4f} ms, autodiff "
            f"{res['s_per_step']['autodiff'] * 1e3:.4f} ms, ratio {res['ratio_manual_over_autodiff']:.3f}")
    return out


# --- part 4: vmap over seeds ---------------------------------------------------------------------------------------
def part_vmap(args, train) -> dict:
    cfg = TrainConfig(dataset="mnist", hidden=HIDDEN, optimizer="adam", learning_rate=LR, batch_size=args.batch,
                      epochs=1)
    loss = check_data(cfg, train)
    sizes = model_sizes(cfg, train, loss)
    schedule, optimizer = build_optimizer(cfg, sizes, len(train) // args.batch)
    epoch_fn = make_epoch_fn(cfg, optimizer, schedule, loss=loss, n_train=len(train))
    x, y = place(train_arrays(train, np.float32))
    init = jax.jit(jax.vmap(lambda k: init_state(k, cfg, sizes, optimizer)))
    vepoch = jax.jit(jax.vmap(epoch_fn, in_axes=(0, 0, None, None)), donate_argnums=(1,))
    out = {"batch": args.batch, "precision": args.precision, "n_train": len(train), "runs": []}
    with jax.default_matmul_precision(JAX_PRECISION[args.precision]):
        for s in [int(v) for v in args.vmap_seeds.split(",")]:
            keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(s))
            state = init(keys)
            t0 = time.perf_counter()
            state, stats = vepoch(keys, state, x, y)
            jax.device_get(stats.finite)
            first = time.perf_counter() - t0
            raw = []
            for e in range(args.vmap_epochs):
                ek = jax.vmap(lambda k: jax.random.fold_in(k, e + 1))(keys)
                t0 = time.perf_counter()
                state, stats = vepoch(ek, state, x, y)
                finite = jax.device_get(stats.finite)
                raw.append(time.perf_counter() - t0)
            out["runs"].append({"seeds": s, "first_epoch_s_with_compile": first, "epoch_s": raw,
                                "median_epoch_s": statistics.median(raw), "all_finite": bool(np.all(finite))})
            log(f"  vmap {s} seeds: epoch {statistics.median(raw):.4f} s (first, with compile, {first:.2f} s)")
            del state
    base = out["runs"][0]["median_epoch_s"]
    for r in out["runs"]:
        r["ratio_vs_first"] = r["median_epoch_s"] / base
    out["goal"] = "64 seeds in <= 2.6x the epoch time of 1 seed"
    return out


# --- report ---------------------------------------------------------------------------------------------------------------
def write(args, record: dict) -> None:
    rows, notes = [], []
    m = record.get("mnist")
    if m:
        for name, c in m["contenders"].items():
            rows.append([f"MNIST time to {100 * m['target']:.1f}%", name,
                         "-" if c["median_steady_s"] is None else f"{c['median_steady_s']:.2f} s",
                         "-" if c["median_with_compile_s"] is None else f"{c['median_with_compile_s']:.2f} s",
                         f"reached {c['reached']} seeds; epoch {c['median_epoch_s']:.3f} s; one-time overhead "
                         f"{c['overhead']['overhead_s']:.2f} s"])
    w = record.get("wide")
    if w:
        for p in w["points"]:
            if "step" in p:
                rows.append([f"wide MLP {p['precision']}", f"W={p['width']} B={p['batch']}",
                             f"{p['step']['tflops_per_s']:.2f} TFLOP/s", f"GEMM {p['gemm']['tflops_per_s']:.2f} TFLOP/s",
                             f"fraction of bare GEMM {p['fraction_of_bare_gemm']:.2f}"])
            else:
                rows.append([f"wide MLP {p['precision']}", f"W={p['width']} B={p['batch']}", "-", "-",
                             p.get("skipped") or p.get("error")])
    if w:
        notes.append(f"Part 2 bf16: {w['bf16_mode']}. ")
    g = record.get("grad")
    if g:
        for s in g["sizes"]:
            rows.append(["manual / autodiff", "-".join(map(str, s["sizes"])) + f" @ {s['batch']}",
                         f"{s['s_per_step']['manual'] * 1e3:.4f} ms", f"{s['s_per_step']['autodiff'] * 1e3:.4f} ms",
                         f"ratio {s['ratio_manual_over_autodiff']:.3f}"])
    v = record.get("vmap")
    if v:
        for r in v["runs"]:
            rows.append(["vmap over seeds", f"{r['seeds']} seeds", f"{r['median_epoch_s']:.4f} s/epoch",
                         f"{r['first_epoch_s_with_compile']:.2f} s first (compile)",
                         f"{r['ratio_vs_first']:.2f}x of {v['runs'][0]['seeds']} seed(s)"])
    notes.append(f"Matmul precision of parts 1, 3 and 4: {args.precision} (jax.default_matmul_precision / "
                 "torch.set_float32_matmul_precision). Time to accuracy: training seconds only (test evaluation "
                 "after each epoch is untimed), median over seeds; 'with compile' adds the one-time compile/warm-up "
                 "overhead. Goal of part 4: 64 seeds in <= 2.6x the epoch time of 1 seed. Raw timings in the JSON."
                 + (" SMOKE RUN (tiny sizes, not a benchmark)." if args.smoke else ""))
    write_results(args.name, record, ["part", "case", "value", "reference", "detail"], rows, notes="\n".join(notes))
    print("\n".join(" | ".join(map(str, r)) for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device; never writes results/gpu.*")
    parser.add_argument("--parts", default="1,2,3,4")
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--batch", type=int, default=128, help="MNIST batch size (parts 1 and 4)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32"), help="matmul precision, parts 1/3/4")
    parser.add_argument("--target-call-s", type=float, default=0.2, help="parts 2/3: seconds per timed call")
    for k, v in FULL.items():
        parser.add_argument("--" + k.replace("_", "-"), type=type(v) if v is not None else int, default=None,
                            help=f"default {v!r} ({SMOKE[k]!r} with --smoke)")
    args = parser.parse_args()
    for k, v in (SMOKE if args.smoke else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    backend = jax.default_backend()
    if args.smoke:
        target = (RESULTS / f"{args.name}.json").resolve()
        if target.parent == RESULTS.resolve() and target.stem == "gpu":
            parser.error("--smoke never writes results/gpu.*: pass another --name")
    elif backend != "gpu":
        parser.error(f"no GPU (jax backend {backend!r}); use --smoke to check the script on this machine")
    parts = {int(p) for p in args.parts.split(",") if p}

    try:
        import torch
        torch_ok = True
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if backend == "gpu" and device != "cuda":
            log("torch has no CUDA here: the PyTorch contenders are skipped")
            torch_ok = False
    except ImportError:
        torch_ok, device = False, "cpu"

    record = {"title": "jaxmlp on " + ("a GPU" if backend == "gpu" else f"{backend} (smoke)"),
              "environment": environment(("torch",)), "smoke": args.smoke, "args": vars(args)}
    if torch_ok:
        import torch
        record["environment"]["torch_device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    train = test = None
    if parts & {1, 4}:
        data_dir = Path(args.data_dir)
        data_dir = data_dir if data_dir.is_absolute() else (REPO / data_dir).resolve()
        splits = load_dataset("mnist", data_dir=str(data_dir), n_samples=args.n_train)
        train, test = splits.train, splits.test
    for part in sorted(parts):
        log(f"part {part}")
        if part == 1:
            record["mnist"] = part_mnist(args, train, test, device, torch_ok)
        elif part == 2:
            record["wide"] = part_wide(args)
        elif part == 3:
            record["grad"] = part_grad(args)
        elif part == 4:
            record["vmap"] = part_vmap(args, train)
        write(args, record)  # after every part: a run cut short keeps what it finished
    log(f"wrote {args.name}.json/.md")


if __name__ == "__main__":
    main()
