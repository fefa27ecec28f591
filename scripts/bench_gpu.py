"""jaxmlp on a GPU: MNIST time-to-accuracy vs PyTorch, wide-MLP throughput, manual vs autodiff, vmap over seeds.

    python scripts/bench_gpu.py                 # all parts, on a GPU; writes results/gpu.{json,md}
    python scripts/bench_gpu.py --parts 1,4     # a subset (the file then holds only those parts)
    python scripts/bench_gpu.py --smoke         # tiny sizes on any device (CPU too); writes /tmp/jaxmlp_gpu_smoke.*

Parts:
  1. MNIST time-to-accuracy: data on the GPU, 784-512-512-10 relu, Adam 1e-3, batch 128, fp32,
     `--seeds` seeds: seconds of training until test accuracy >= `--target` (evaluated after every
     epoch, untimed), steady-state and with the one-time cost added. jaxmlp is the trainer's
     scan-fused epoch as `run_programs` compiles it for `fit` (scripts/_contenders.py); PyTorch eager
     (data on the GPU, the standard per-step loop) and `torch.compile` (each of
     `--torch-compile-modes` is tried and the faster steady-state epoch is kept for all seeds). The
     remainder batch is dropped by all. The one-time cost is measured on a throwaway run (seed
     1000) and broken down: init (first init call - a later one), epoch compile (run_programs' AOT
     compile; torch.compile compiles inside the first epoch instead), evaluation compile (first
     evaluation - a later one) and first-epoch warm-up (epoch 1 - epoch 2).
  2. Wide-MLP throughput: sizes (W, W, W, W) (three W x W layers), softmax cross-entropy, Adam, one
     jitted loop of training steps, widths x batches x {fp32, tf32, bf16}: TFLOP/s (6 * B * 3W^2 per
     step) and the fraction of a bare GEMM (B x W) @ (W x W) of the same shape and precision
     (fraction = 9 * GEMM time / step time, the step's FLOPs being nine such GEMMs). bf16 uses
     jaxmlp's mixed-precision policy (`jaxmlp.precision`, fp32 master params); fp32 =
     jax.default_matmul_precision("float32"), tf32 = "tensorfloat32".
  3. Manual vs autodiff: step time (loss_and_grad + Adam, jitted loop) ratio manual / autodiff at
     three sizes.
  4. `jax.vmap` of the trainer's epoch over 1, 8 and 64 seeds of the MNIST MLP as one compiled
     program; goal: 64 seeds in <= 2.6x the epoch time of 1.

Needs: part 1 compares against PyTorch, the `.[bench]` extra: without torch installed the script
stops before timing anything with one line naming it and the install command
(`pip install -e '.[bench]'`); `--parts 2,3,4` need only jaxmlp. A torch without CUDA on a GPU
machine skips just the PyTorch contenders, with a line saying so.

Timing: warm-up (compile) first, block_until_ready / a read of the last loss, medians of repeats.
Results are written after every part, so a run cut short keeps what it finished; each part's
rows are printed once when it ends, the whole table once at the end.
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

from _bench import (RESULTS, environment, interleaved_medians, log, median_time, mlp_train_flops,  # noqa: E402
                    repo_path, require, time_call, write_results)
from _contenders import LR, JaxmlpContender, TorchContender, mnist_config  # noqa: E402
from jaxmlp import init_mlp, loss_and_grad  # noqa: E402
from jaxmlp.data import load_dataset  # noqa: E402
from jaxmlp.training import make_epoch, plan_run  # noqa: E402
from jaxmlp.training.evaluate import host_arrays  # noqa: E402
from jaxmlp.training.state import epoch_key, init_state, run_keys  # noqa: E402

JAX_PRECISION = {"fp32": "float32", "tf32": "tensorfloat32", "bf16": "default"}
TORCH_PRECISION = {"fp32": "highest", "tf32": "high"}
HEADER = ["part", "case", "value", "reference", "detail"]

FULL = dict(seeds=5, target=0.98, max_epochs=30, n_train=None, widths="1024,4096,16384",
            batches="1024,8192,65536", dtypes="fp32,tf32,bf16", vmap_seeds="1,8,64", repeats=5,
            grad_sizes="784-512-512-10@128,2048-2048-2048-10@1024,4096-4096-4096-4096@8192",
            torch_compile_modes="reduce-overhead,max-autotune", name="gpu", vmap_epochs=3)
SMOKE = dict(seeds=2, target=0.80, max_epochs=3, n_train=2048, widths="64,128", batches="64,256",
             dtypes="fp32,tf32,bf16", vmap_seeds="1,2,4", repeats=2,
             grad_sizes="64-32-32-10@16,128-64-64-10@32,128-128-128-128@64",
             torch_compile_modes="default", name="/tmp/jaxmlp_gpu_smoke", vmap_epochs=1)


# --- phase: the command line and the machine -------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
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
    args = parser.parse_args(argv)
    for k, v in (SMOKE if args.smoke else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.smoke:
        target = (RESULTS / f"{args.name}.json").resolve()
        if target.parent == RESULTS.resolve() and target.stem == "gpu":
            parser.error("--smoke never writes results/gpu.*: pass another --name")
    elif jax.default_backend() != "gpu":
        parser.error(f"no GPU (jax backend {jax.default_backend()!r}); use --smoke to check the script on this machine")
    args.part_list = sorted({int(p) for p in args.parts.split(",") if p})
    return args


def torch_device(args) -> str | None:
    """PyTorch's device for part 1 ("cuda" or, off a GPU, "cpu"); None when part 1 is not run or
    a GPU run finds a torch without CUDA (then the PyTorch contenders are skipped, with a line).
    Without torch at all the script ends here with one line (part 1 needs it)."""
    if 1 not in args.part_list:
        return None
    require({"torch": ("torch", "part 1, time to accuracy vs PyTorch")}, "run --parts 2,3,4 without it")
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if jax.default_backend() == "gpu" and device != "cuda":
        log("torch has no CUDA here: the PyTorch contenders are skipped")
        return None
    return device


def start_record(args, device: str | None) -> dict:
    backend = jax.default_backend()
    record = {"title": "jaxmlp on " + ("a GPU" if backend == "gpu" else f"{backend} (smoke)"),
              "environment": environment(("torch",)), "smoke": args.smoke, "args": vars(args)}
    if device is not None:
        import torch

        record["environment"]["torch_device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return record


# --- part 1: MNIST time-to-accuracy ------------------------------------------------------------------------------
def tta_run(c, seed: int, max_epochs: int, target: float) -> dict:
    """From seed `seed`: train epoch by epoch (timed) with an untimed test evaluation after each, until >= target."""
    c.start(seed)
    epoch_s, accs = [], []
    for e in range(max_epochs):
        epoch_s.append(time_call(lambda e=e: c.epoch(e)))
        accs.append(c.accuracy())
        if accs[-1] >= target:
            break
    reached = accs[-1] >= target
    return {"epoch_s": epoch_s, "accuracy": accs, "reached": reached, "epochs_to_target": len(epoch_s) if reached
            else None, "steady_s": sum(epoch_s) if reached else None}


def one_time_cost(c, setup_s: float) -> dict:
    """The one-time cost, on a throwaway run (seed 1000) of 2 epochs, in parts: init (first call -
    second), epoch compile (AOT, at setup), evaluation compile (first call - second), first-epoch
    warm-up (epoch 1 - epoch 2). overhead_s is their sum; setup_s (c.setup's seconds) is recorded beside."""
    init = [time_call(lambda: c.start(1000))]
    epochs = [time_call(lambda e=e: c.epoch(e)) for e in range(2)]
    evals = [time_call(c.accuracy) for _ in range(2)]
    init.append(time_call(lambda: c.start(1000)))
    parts = {"init_s": max(init[0] - init[1], 0.0), "epoch_compile_s": c.compile_s or 0.0,
             "eval_compile_s": max(evals[0] - evals[1], 0.0), "first_epoch_s": max(epochs[0] - epochs[1], 0.0)}
    return {"warm_epoch_s": epochs, "init_call_s": init, "eval_call_s": evals, "setup_s": setup_s, **parts,
            "aot_compile_s": parts["epoch_compile_s"],  # the key the committed results (gpu_h200.json) carry
            "overhead_s": sum(parts.values())}


def mnist_contenders(args, train, test, device: str | None) -> tuple[list, dict]:
    """([(contender, one-time cost)]: jaxmlp, torch eager, the faster torch.compile mode; the mode probes)."""
    out = []
    for c in [JaxmlpContender(args.batch, name="jaxmlp")] + ([] if device is None else [
            TorchContender(args.batch, fused=device == "cuda", device=device, drop_remainder=True,
                           name="torch-eager")]):
        out.append((c, set_up(c, train, test)))
    best, probes = None, {}
    for mode in [m for m in args.torch_compile_modes.split(",") if m and m != "none"] if device else []:
        try:
            c = TorchContender(args.batch, fused=device == "cuda", compile_mode=mode, device=device,
                               drop_remainder=True)
            w = set_up(c, train, test)
        except Exception as exc:  # noqa: BLE001 - a mode that fails to compile is reported, not fatal
            probes[mode] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            log(f"torch.compile mode {mode} failed: {probes[mode]['error']}")
            continue
        probes[mode] = w
        log(f"torch.compile({mode}): warm epochs {[round(s, 3) for s in w['warm_epoch_s']]}")
        if best is None or w["warm_epoch_s"][-1] < best[1]["warm_epoch_s"][-1]:
            best = (c, w)
    return out + ([best] if best else []), probes


def set_up(c, train, test) -> dict:
    """Set c up (timed) and measure its one-time cost."""
    return one_time_cost(c, time_call(lambda: c.setup(train, test)))


def part_mnist(args, train, test, device: str | None) -> dict:
    if device is not None:
        import torch

        torch.set_float32_matmul_precision(TORCH_PRECISION.get(args.precision, "highest"))
    seeds = list(range(args.seeds))
    out = {"target": args.target, "batch": args.batch, "precision": args.precision, "seeds": seeds,
           "n_train": len(train), "contenders": {}}
    contenders, probes = mnist_contenders(args, train, test, device)
    if device is not None:
        out["torch_compile_probes"] = probes
    for c, cost in contenders:
        runs = [tta_run(c, s, args.max_epochs, args.target) for s in seeds]
        for s, r in zip(seeds, runs):
            r["with_compile_s"] = None if r["steady_s"] is None else r["steady_s"] + cost["overhead_s"]
            log(f"  {c.name:28s} seed {s}: {r['epochs_to_target']} epochs, steady {r['steady_s']} s, "
                f"acc {[round(a, 4) for a in r['accuracy']]}")
        steady = [r["steady_s"] for r in runs if r["steady_s"] is not None]
        out["contenders"][c.name] = {
            "overhead": cost, "runs": runs, "reached": f"{len(steady)}/{len(runs)}",
            "median_steady_s": statistics.median(steady) if steady else None,
            "median_with_compile_s": statistics.median(steady) + cost["overhead_s"] if steady else None,
            "median_epoch_s": statistics.median([s for r in runs for s in r["epoch_s"]]),
        }
        c.close()
    return out


# --- parts 2 and 3: jitted loops of training steps (bare steps, not the trainer) -------------------------------
# part 2 runs bf16 through jaxmlp's own mixed-precision policy
BF16_MODE = "mixed (jaxmlp.precision policy bf16: fp32 master params and Adam, bf16 matmuls/activations)"


def make_steps(sizes, batch: int, dtype, method: str, seed: int = 0, policy: str | None = None):
    """(run(state, n) -> state after n Adam steps on one fixed batch, state0, flops per step); one compile.

    policy: None = plain `loss_and_grad` in `dtype`; "bf16" = `loss_and_grad(..., precision="bf16")`.
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
            return loss_and_grad(p, xx, yy, precision=policy, **kw)

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
    """run(a, n): n chained (B, W) @ (W, W) GEMMs (chained, so none can be hoisted or skipped)."""
    k1, k2 = jax.random.split(jax.random.key(1))
    a = jax.random.normal(k1, (batch, width), dtype)
    w = (jax.random.normal(k2, (width, width), jnp.float32) / math.sqrt(width)).astype(dtype)

    @jax.jit
    def run(a0, n):
        return jax.lax.fori_loop(0, n, lambda _, acc: acc @ w, a0)

    return run, a, 2 * batch * width * width


def calls_per_timing(run, state, target_s: float) -> tuple[int, float]:
    """(n so that run(state, n) takes ~target_s, seconds of the first (compiling) call)."""
    first_s = time_call(lambda: run(state, 1))
    t1, _ = median_time(lambda: run(state, 1), 2)
    return max(1, min(1000, int(target_s / max(t1, 1e-6)))), first_s


def time_loop(run, state, flops_per_iter: int, repeats: int, target_s: float) -> dict:
    """Compile + warm up with n=1, pick n so one call takes ~target_s, median of `repeats` calls."""
    n, first_s = calls_per_timing(run, state, target_s)
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


def wide_point(args, prec: str, width: int, batch: int) -> dict:
    """One point of part 2: the step loop and the bare GEMM at (prec, width, batch)."""
    sizes = (width,) * 4
    point = {"precision": prec, "width": width, "batch": batch, "sizes": list(sizes)}
    if not fits_memory(sizes, batch, 4):
        return {**point, "skipped": "estimated memory above 70% of the device"}
    try:
        with jax.default_matmul_precision(JAX_PRECISION[prec]):
            # fp32 master params; bf16 runs through the policy
            run, state, flops = make_steps(sizes, batch, jnp.float32, "autodiff", policy="bf16" if prec == "bf16" else None)
            step = time_loop(run, state, flops, args.repeats, args.target_call_s)
            del run, state
            grun, a, gflops = make_gemm(batch, width, jnp.bfloat16 if prec == "bf16" else jnp.float32)
            gemm = time_loop(grun, a, gflops, args.repeats, args.target_call_s)
            del grun, a
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory: record and go on
        log(f"  wide {prec} W={width} B={batch}: {type(exc).__name__}: {exc}"[:300])
        return {**point, "error": f"{type(exc).__name__}: {exc}"[:300]}
    frac = 9 * gemm["s_per_iter"] / step["s_per_iter"]
    log(f"  wide {prec} W={width} B={batch}: step {step['s_per_iter'] * 1e3:.3f} ms, "
        f"{step['tflops_per_s']:.2f} TFLOP/s, bare GEMM {gemm['tflops_per_s']:.2f} TFLOP/s, fraction {frac:.2f}")
    return {**point, "step": step, "gemm": gemm, "fraction_of_bare_gemm": frac}


def part_wide(args) -> dict:
    return {"bf16_mode": BF16_MODE,
            "points": [wide_point(args, prec, int(w), int(b)) for prec in args.dtypes.split(",")
                       for w in args.widths.split(",") for b in args.batches.split(",")]}


def part_grad(args) -> dict:
    out = {"precision": args.precision, "sizes": []}
    for spec in args.grad_sizes.split(","):
        dims, batch = spec.split("@")
        sizes, batch = tuple(int(d) for d in dims.split("-")), int(batch)
        with jax.default_matmul_precision(JAX_PRECISION[args.precision]):
            runs = {m: make_steps(sizes, batch, jnp.float32, m) for m in ("manual", "autodiff")}
            n = {m: calls_per_timing(r, s, args.target_call_s)[0] for m, (r, s, _) in runs.items()}  # warm + pick n
            timed = interleaved_medians({m: (lambda r=r, s=s, m=m: r(s, n[m])) for m, (r, s, _) in runs.items()},
                                        args.repeats)
        raw = {m: [t / n[m] for t in timed[m]["raw_s"]] for m in runs}
        res = {"sizes": list(sizes), "batch": batch, "s_per_step": {m: statistics.median(v) for m, v in raw.items()},
               "raw_s_per_step": raw}
        res["ratio_manual_over_autodiff"] = res["s_per_step"]["manual"] / res["s_per_step"]["autodiff"]
        out["sizes"].append(res)
        log(f"  grad {spec}: manual {res['s_per_step']['manual'] * 1e3:.4f} ms, autodiff "
            f"{res['s_per_step']['autodiff'] * 1e3:.4f} ms, ratio {res['ratio_manual_over_autodiff']:.3f}")
    return out


# --- part 4: vmap over seeds -------------------------------------------------------------------------------------
def vmapped_run(args, train):
    """(init(seeds) -> states, epoch(epoch keys, states, x, y), x, y): the trainer's run vmapped over seeds.

    plan_run gives the optimizer, schedule and checks of `fit`; the init is the one run_programs
    jits (init_state from the plan's optimizer), vmapped; run_programs' compiled epoch is fixed to
    one state and cannot be vmapped, so the epoch is the same pure make_epoch(plan) that
    run_programs jits and compiles (no run_programs here: the single-seed epoch is not needed)."""
    cfg = mnist_config(args.batch)
    plan = plan_run(cfg, train)
    epoch_fn = make_epoch(plan)
    x, y = plan.place(host_arrays(train, np.float32))

    @jax.jit
    def init(seeds):
        init_keys, train_keys = jax.vmap(run_keys)(seeds)
        return jax.vmap(lambda k: init_state(k, plan.config, plan.sizes, plan.optimizer))(init_keys), train_keys

    return init, jax.jit(jax.vmap(epoch_fn, in_axes=(0, 0, None, None)), donate_argnums=(1,)), x, y


def part_vmap(args, train) -> dict:
    init, vepoch, x, y = vmapped_run(args, train)
    out = {"batch": args.batch, "precision": args.precision, "n_train": len(train), "runs": []}
    for s in [int(v) for v in args.vmap_seeds.split(",")]:
        state, train_keys = init(jnp.arange(s))
        times, finite = [], True
        for e in range(1 + args.vmap_epochs):  # epoch 1 compiles the vmapped epoch
            keys = jax.vmap(epoch_key, in_axes=(0, None))(train_keys, e)
            t0 = time.perf_counter()
            state, stats = vepoch(keys, state, x, y)
            finite = finite and bool(np.all(jax.device_get(stats.finite)))
            times.append(time.perf_counter() - t0)
        first, raw = times[0], times[1:]
        out["runs"].append({"seeds": s, "first_epoch_s_with_compile": first, "epoch_s": raw,
                            "median_epoch_s": statistics.median(raw), "all_finite": finite})
        log(f"  vmap {s} seeds: epoch {statistics.median(raw):.4f} s (first, with compile, {first:.2f} s)")
        del state
    base = out["runs"][0]["median_epoch_s"]
    for r in out["runs"]:
        r["ratio_vs_first"] = r["median_epoch_s"] / base
    out["goal"] = "64 seeds in <= 2.6x the epoch time of 1 seed"
    return out


# --- report ------------------------------------------------------------------------------------------------------
def overhead_parts(cost: dict) -> str:
    """A one-time cost as its parts: 'init 0.4 + epoch compile 2.9 + eval compile 1.2 + first epoch 0.3'."""
    parts = [("init", cost["init_s"]), ("epoch compile", cost["epoch_compile_s"]),
             ("eval compile", cost["eval_compile_s"]), ("first epoch", cost["first_epoch_s"])]
    return " + ".join(f"{name} {s:.2f}" for name, s in parts)


def mnist_rows(m: dict) -> list[list]:
    rows = []
    for name, c in m["contenders"].items():
        with_compile = "-" if c["median_with_compile_s"] is None else (
            f"{c['median_with_compile_s']:.2f} s = steady {c['median_steady_s']:.2f} + {overhead_parts(c['overhead'])}")
        rows.append([f"MNIST time to {100 * m['target']:.1f}%", name,
                     "-" if c["median_steady_s"] is None else f"{c['median_steady_s']:.2f} s", with_compile,
                     f"reached {c['reached']} seeds; epoch {c['median_epoch_s']:.3f} s; one-time cost "
                     f"{c['overhead']['overhead_s']:.2f} s"])
    return rows


def wide_rows(w: dict) -> list[list]:
    return [[f"wide MLP {p['precision']}", f"W={p['width']} B={p['batch']}", f"{p['step']['tflops_per_s']:.2f} TFLOP/s",
             f"GEMM {p['gemm']['tflops_per_s']:.2f} TFLOP/s", f"fraction of bare GEMM {p['fraction_of_bare_gemm']:.2f}"]
            if "step" in p else
            [f"wide MLP {p['precision']}", f"W={p['width']} B={p['batch']}", "-", "-", p.get("skipped") or p.get("error")]
            for p in w["points"]]


def grad_rows(g: dict) -> list[list]:
    return [["manual / autodiff", "-".join(map(str, s["sizes"])) + f" @ {s['batch']}",
             f"{s['s_per_step']['manual'] * 1e3:.4f} ms", f"{s['s_per_step']['autodiff'] * 1e3:.4f} ms",
             f"ratio {s['ratio_manual_over_autodiff']:.3f}"] for s in g["sizes"]]


def vmap_rows(v: dict) -> list[list]:
    return [["vmap over seeds", f"{r['seeds']} seeds", f"{r['median_epoch_s']:.4f} s/epoch",
             f"{r['first_epoch_s_with_compile']:.2f} s first (compile)",
             f"{r['ratio_vs_first']:.2f}x of {v['runs'][0]['seeds']} seed(s)"] for r in v["runs"]]


PARTS = {1: ("mnist", mnist_rows), 2: ("wide", wide_rows), 3: ("grad", grad_rows), 4: ("vmap", vmap_rows)}


def table(record: dict, parts=(1, 2, 3, 4)) -> list[list]:
    """The table rows of `parts` (those the record holds)."""
    return [row for p in parts if PARTS[p][0] in record for row in PARTS[p][1](record[PARTS[p][0]])]


def write(args, record: dict) -> None:
    """results/<name>.{json,md} of every part the record holds so far (prints nothing)."""
    notes = [f"Part 2 bf16: {record['wide']['bf16_mode']}. "] if "wide" in record else []
    notes.append(f"Matmul precision of parts 1, 3 and 4: {args.precision} (jax.default_matmul_precision / "
                 "torch.set_float32_matmul_precision). Time to accuracy: training seconds only (test evaluation "
                 "after each epoch is untimed), median over seeds; 'with compile' adds the one-time cost, measured on "
                 "a throwaway run and shown in its parts: init (first init call minus a later one), epoch compile "
                 "(jaxmlp: run_programs' AOT compile; torch.compile compiles in its first epoch), eval compile (first "
                 "evaluation minus a later one) and first epoch (epoch 1 minus epoch 2). Goal of part 4: 64 seeds in "
                 "<= 2.6x the epoch time of 1 seed. Raw timings in the JSON."
                 + (" SMOKE RUN (tiny sizes, not a benchmark)." if args.smoke else ""))
    write_results(args.name, record, HEADER, table(record), notes="\n".join(notes))


def print_rows(rows: list[list]) -> None:
    print("\n".join(" | ".join(map(str, r)) for r in rows), flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch_device(args)
    record = start_record(args, device)
    train = test = None
    if {1, 4} & set(args.part_list):
        splits = load_dataset("mnist", data_dir=str(repo_path(args.data_dir)), n_samples=args.n_train)
        train, test = splits.train, splits.test
    for part in args.part_list:
        log(f"part {part}")
        # parts 1 and 4 train under --precision (jaxmlp's compiled-program caches key on it)
        with jax.default_matmul_precision(JAX_PRECISION[args.precision] if part in (1, 4) else None):
            if part == 1:
                record["mnist"] = part_mnist(args, train, test, device)
            elif part == 2:
                record["wide"] = part_wide(args)
            elif part == 3:
                record["grad"] = part_grad(args)
            elif part == 4:
                record["vmap"] = part_vmap(args, train)
        write(args, record)  # after every part: a run cut short keeps what it finished
        print_rows(table(record, (part,)))
    log(f"wrote {args.name}.json/.md; all parts:")
    print_rows(table(record))


if __name__ == "__main__":
    main()
