"""Per-example gradient norms three ways, and what --track-gradients and --audit-every cost.

    python scripts/bench_gradstats.py                        # the issue's shapes; results/gradstats.{json,md}
    python scripts/bench_gradstats.py --quick --name /tmp/gs # small shapes: a smoke test

1. Per-example squared gradient norms ‖g_i‖² of a relu MLP (softmax cross-entropy) at
   784-1024-1024-10 with batch 1024 and 4096, and 784-4096x4-10 (four hidden layers of 4096)
   with batch 1024, three ways:
   - cache: gradstats.gradient_stats, ghost norms from the manual forward cache and backward walk;
   - vmap_grad: jax.vmap(jax.grad) over the examples, then the norms of the B gradients;
   - vmap_manual: jax.vmap of the manual backward (loss_and_grad method="manual"), then the norms.
   Every case runs in its own process, so its peak memory is its own: on a GPU
   device.memory_stats()["peak_bytes_in_use"] over the bytes in use before the first call; on
   a CPU the process's peak RSS (VmHWM, reset through /proc/self/clear_refs just before the
   first call) over its RSS then. XLA's planned bytes (compiled.memory_analysis(): arguments
   + outputs + temporaries) are beside it. A case whose plan
   exceeds 70% of the memory available is compiled but not run. Goal at batch 1024: cache
   >= 5x faster than vmap_grad and >= 20x less peak memory.
2. Training: the median epoch of the trainer's compiled epoch with track_gradients against the
   plain epoch (jax.grad and manual), 784-512-512-10 at batch 128 on random data of MNIST's
   shape; and one gradient audit (training/audit.py) against that epoch. Goals: the tracked
   epoch <= 1.15x the plain one; an audit every epoch <= 2% of the epoch time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (environment, interleaved_medians, log, median_time, synthetic_mnist, time_call,  # noqa: E402
                    wait_for_idle_cpu, write_results)

NORM_CASES = [((784, 1024, 1024, 10), 1024), ((784, 1024, 1024, 10), 4096), ((784, 4096, 4096, 4096, 4096, 10), 1024)]
QUICK_CASES = [((784, 64, 64, 10), 128), ((784, 64, 64, 10), 512)]
METHODS = ("cache", "vmap_grad", "vmap_manual")
TRAIN_SIZES, TRAIN_BATCH, TRAIN_N = (784, 512, 512, 10), 128, 60000


# --- one case, in a child process ---------------------------------------------------------------------------
def norms_fn(method: str):
    """jit-able (params, x, y) -> (B,) ‖g_i‖² by `method`."""
    import jax

    from jaxmlp import loss_and_grad
    from jaxmlp.gradstats import gradient_stats, stats_from_batch_grads

    if method == "cache":
        return lambda p, x, y: gradient_stats(p, x, y, train=False)[1].sq_norm
    grad_method = {"vmap_grad": "autodiff", "vmap_manual": "manual"}[method]

    def norms(p, x, y):
        def one(xi, yi):  # one example's gradient: its (1, d_in) batch's mean loss is its own loss
            return loss_and_grad(p, xi[None], yi[None], train=False, method=grad_method)[1]

        return stats_from_batch_grads(p, jax.vmap(one)(x, y)).sq_norm

    return norms


def available_bytes() -> int | None:
    """The device's memory limit (GPU), else MemAvailable of /proc/meminfo (CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        return None


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def reset_peak_rss() -> int:
    """Reset this process's peak RSS to its RSS now (Linux clear_refs 5); returns that RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_bytes("VmRSS")


def run_case(spec: dict) -> dict:
    """Compile, maybe run, and time one (sizes, batch, method): a child's whole job."""
    import jax

    from jaxmlp import init_mlp

    sizes, batch, method = tuple(spec["sizes"]), spec["batch"], spec["method"]
    params = init_mlp(jax.random.key(0), sizes)
    x = jax.random.normal(jax.random.key(1), (batch, sizes[0]))
    y = jax.random.randint(jax.random.key(2), (batch,), 0, sizes[-1])
    t0 = time.perf_counter()
    compiled = jax.jit(norms_fn(method)).lower(params, x, y).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    planned = None if mem is None else int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                                           + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
    out = {**spec, "compile_s": compile_s, "xla_planned_bytes": planned}
    limit = available_bytes()
    if planned is not None and limit is not None and planned > 0.7 * limit:
        return {**out, "ran": False, "why": f"XLA plans {planned / 2**30:.1f} GiB, over 70% of {limit / 2**30:.1f} GiB"}
    device = jax.devices()[0]
    in_use = (device.memory_stats() or {}).get("bytes_in_use")
    rss_before = None if in_use is not None else reset_peak_rss()
    first = time_call(lambda: compiled(params, x, y))
    median, raw = median_time(lambda: compiled(params, x, y), spec["repeats"])
    if in_use is not None:
        peak, how = device.memory_stats()["peak_bytes_in_use"] - in_use, "device.memory_stats() peak over the inputs"
    else:
        peak, how = _status_bytes("VmHWM") - rss_before, "peak RSS (VmHWM) over the RSS before the first call"
    return {**out, "ran": True, "first_call_s": first, "median_s": median, "raw_s": raw,
            "peak_bytes": int(peak), "peak_how": how}


def child(spec: dict, timeout: float) -> dict:
    """run_case in a fresh process (its own peak memory); a crash or timeout is recorded."""
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "ran": False, "why": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {**spec, "ran": False, "why": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the training-step and audit costs -------------------------------------------------------------------------
def _ratios(timed: dict) -> dict:
    """track_gradients over the two plain variants, by median."""
    tracked = timed["track_gradients"]["median_s"]
    return {"tracked_over_plain_autodiff": tracked / timed["plain (jax.grad)"]["median_s"],
            "tracked_over_plain_manual": tracked / timed["plain (manual)"]["median_s"]}


def _variants(n_train: int):
    """(the random training set, {name: TrainConfig}) of the training costs."""
    from jaxmlp.config import TrainConfig

    train = synthetic_mnist(n_train)
    base = dict(hidden=TRAIN_SIZES[1:-1], batch_size=TRAIN_BATCH, learning_rate=1e-3, dropout=0.0, epochs=100)
    return train, {"plain (jax.grad)": TrainConfig(**base), "plain (manual)": TrainConfig(grad_method="manual", **base),
                   "track_gradients": TrainConfig(track_gradients=True, **base)}


def _step_calls(plans: dict, states: dict, x, y, key) -> dict:
    """{name: a call of the trainer's step on one minibatch, jitted alone}: short calls that
    interleave finely, so another process's load hits every variant alike."""
    import jax
    import jax.numpy as jnp

    from jaxmlp.training.gradtrack import start_track
    from jaxmlp.training.step import make_step, start_carry

    xb, yb = x[None, :TRAIN_BATCH], y[None, :TRAIN_BATCH]  # (1, B, D), (1, B)
    calls = {}
    for name, plan in plans.items():
        step = jax.jit(make_step(plan))
        track = start_track(plan.config, 1) if plan.config.track_gradients else None
        carry = start_carry(states[name], track)
        calls[name] = (lambda s=step, c=carry: s(c, (jnp.int32(0), (xb, yb), key)))
        for _ in range(3):  # compile and warm up
            time_call(calls[name])
    return calls


def training_costs(repeats: int, n_train: int) -> dict:
    """Median epoch and step: plain (autodiff, manual) vs track_gradients; one audit vs that epoch."""
    import jax
    import numpy as np

    from jaxmlp.training import plan_run, run_programs
    from jaxmlp.training.audit import GradientAudit
    from jaxmlp.training.evaluate import host_arrays
    from jaxmlp.training.state import epoch_key, run_keys

    train, variants = _variants(n_train)
    plans = {name: plan_run(config, train) for name, config in variants.items()}
    programs = {name: run_programs(plan) for name, plan in plans.items()}
    states = {name: p.init(run_keys(0)[0]) for name, p in programs.items()}
    x, y = (jax.device_put(a) for a in host_arrays(train, np.float32))
    key = epoch_key(run_keys(0)[1], 0)

    def epoch(name):
        def call():
            states[name], stats = programs[name].epoch(key, states[name], x, y)
            return stats
        return call

    for name in variants:  # warm-up
        time_call(epoch(name))
    epochs = interleaved_medians({name: epoch(name) for name in variants}, repeats)
    steps = interleaved_medians(_step_calls(plans, states, x, y, key), 20 * repeats)
    audit = GradientAudit(plans["plain (jax.grad)"], host_arrays(train, np.float32))
    params = states["plain (jax.grad)"].params
    audit_first = time_call(lambda: audit.check(params, 0))
    audit_median, audit_raw = median_time(lambda: audit.check(params, 1), repeats)
    return {"sizes": TRAIN_SIZES, "batch": TRAIN_BATCH, "n_train": n_train,
            "compile_s": {name: p.compile_seconds for name, p in programs.items()},
            "epochs": epochs, "epoch_ratios": _ratios(epochs), "steps": steps, "step_ratios": _ratios(steps),
            "audit_first_call_s": audit_first, "audit_median_s": audit_median, "audit_raw_s": audit_raw,
            "audit_fraction_of_epoch": audit_median / epochs["plain (jax.grad)"]["median_s"]}


# --- the report ------------------------------------------------------------------------------------------------
def _gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.3f}"


def norm_rows(cases: list[dict]) -> list[list]:
    rows = []
    for c in cases:
        shape = "-".join(map(str, c["sizes"]))
        if not c["ran"]:
            rows.append([shape, c["batch"], c["method"], "not run: " + c["why"], "-", _gib(c.get("xla_planned_bytes"))])
            continue
        rows.append([shape, c["batch"], c["method"], f"{c['median_s'] * 1e3:.1f}", _gib(c["peak_bytes"]),
                     _gib(c["xla_planned_bytes"])])
    return rows


def goals(cases: list[dict]) -> list[str]:
    """The cache-vs-vmap_grad ratios of every shape and batch where both ran."""
    lines = []
    for c in cases:
        if c["method"] != "cache" or not c["ran"]:
            continue
        other = next((o for o in cases if o["method"] == "vmap_grad" and o["sizes"] == c["sizes"]
                      and o["batch"] == c["batch"] and o["ran"]), None)
        if other is None:
            continue
        speed = other["median_s"] / c["median_s"]
        memory = other["peak_bytes"] / max(c["peak_bytes"], 1)
        planned = other["xla_planned_bytes"] / max(c["xla_planned_bytes"], 1)
        lines.append(f"- {'-'.join(map(str, c['sizes']))} batch {c['batch']}: cache is {speed:.1f}x faster than "
                     f"vmap_grad (goal >= 5x at batch 1024), {memory:.1f}x less peak memory and {planned:.1f}x "
                     "fewer XLA-planned bytes (goal >= 20x)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small shapes and data: a smoke test")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per norms case")
    parser.add_argument("--max-wait", type=float, default=600.0, help="seconds to wait for idle CPUs first")
    parser.add_argument("--name", default="gradstats", help="results/<name>.{json,md} (an absolute path: elsewhere)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))))
        return
    idle = wait_for_idle_cpu(max_wait_s=0 if args.quick else args.max_wait)
    cases = []
    for sizes, batch in (QUICK_CASES if args.quick else NORM_CASES):
        for method in METHODS:
            log(f"{'-'.join(map(str, sizes))} batch {batch}: {method}")
            cases.append(child({"sizes": list(sizes), "batch": batch, "method": method, "repeats": args.repeats},
                               args.timeout))
            log(json.dumps({k: v for k, v in cases[-1].items() if k != "raw_s"}))
    log("training: plain vs track_gradients epochs, and the audit")
    train = training_costs(args.repeats, 2048 if args.quick else TRAIN_N)
    log(json.dumps({k: v for k, v in train.items() if k not in ("epochs",)}))
    record = {"title": "Per-example gradient norms three ways; the cost of --track-gradients and --audit-every",
              "environment": environment(), "idle_cpu_before": idle, "norms": cases, "training": train, "quick": args.quick}
    epochs = train["epochs"]
    notes = "\n".join([
        "Peak memory: " + (cases[0].get("peak_how") or "") + "; XLA-planned: compiled.memory_analysis() "
        "(arguments + outputs + temporaries). Times are medians of "
        f"{args.repeats} calls after one warm-up call, each case in its own process.", "", *goals(cases), "",
        f"Training ({'-'.join(map(str, TRAIN_SIZES))} relu, batch {TRAIN_BATCH}, {train['n_train']} random "
        "examples of MNIST's shape, Adam; median epoch over interleaved repeats):", "",
        *[f"- {name}: epoch {v['median_s']:.3f} s (raw {', '.join(f'{t:.2f}' for t in v['raw_s'])}), one step "
          f"{train['steps'][name]['median_s'] * 1e3:.2f} ms (median of {len(train['steps'][name]['raw_s'])})"
          for name, v in epochs.items()],
        f"- one step, track_gradients / plain (jax.grad): {train['step_ratios']['tracked_over_plain_autodiff']:.3f} "
        f"(goal <= 1.15); / plain (manual): {train['step_ratios']['tracked_over_plain_manual']:.3f}",
        f"- one epoch, track_gradients / plain (jax.grad): {train['epoch_ratios']['tracked_over_plain_autodiff']:.3f}; "
        f"/ plain (manual): {train['epoch_ratios']['tracked_over_plain_manual']:.3f}",
        f"- one gradient audit: {train['audit_median_s'] * 1e3:.1f} ms after its first call "
        f"({train['audit_first_call_s']:.2f} s, compiling), {100 * train['audit_fraction_of_epoch']:.2f}% of a plain "
        "epoch: the cost of --audit-every 1, the most frequent cadence (goal <= 2%)"])
    for path in write_results(args.name, record, ["shape", "batch", "method", "median ms", "peak GiB",
                                                  "XLA-planned GiB"], norm_rows(cases), notes=notes):
        log(f"wrote {path}")


if __name__ == "__main__":
    main()
