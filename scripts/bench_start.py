"""Start-up: the whole `jaxmlp train` process, cold (an empty compilation cache) and warm (the next
run, same cache), against scikit-learn's MLPClassifier with the same model, data and epochs.

    python scripts/bench_start.py                    # spiral and digits, 3 rounds -> results/start.{json,md}
    python scripts/bench_start.py --repeats 5
    python scripts/bench_start.py --repeats 1 --workloads spiral --name /tmp/start_smoke   # smoke

Workloads:
- spiral: `jaxmlp train` with no data flag (the built-in spiral: 300 training examples, 300 test).
- digits: scikit-learn's load_digits (1,797 examples, 64 features, 10 classes) scaled to [0, 1],
  split 1,437 / 360 by a seeded permutation, written to an npz in a temp dir and trained with
  `--dataset npz:FILE`.

jaxmlp runs its defaults (`jaxmlp train [--dataset npz:FILE] --out-dir DIR --no-plots`: no plots,
as scikit-learn draws none) in a fresh process, with XDG_CACHE_HOME in a temp dir, so its default
compilation cache (XDG_CACHE_HOME/jaxmlp/xla) is empty for the cold run and holds the cold run's
programs for the warm one. Neither data set is large enough for the automatic validation split,
so every run trains all the default epochs. scikit-learn runs in `python -c`: MLPClassifier with
jaxmlp's default hidden sizes, solver adam, learning_rate_init 1e-3, jaxmlp's batch size,
max_iter = jaxmlp's epochs, alpha 0, early_stopping False and n_iter_no_change = max_iter (it
never stops before max_iter); it has no dropout, jaxmlp's defaults have 0.2. Both are timed from
outside, as the whole process; scikit-learn also reports its import and fit seconds, jaxmlp its
compile seconds (summary.json). One untimed round warms the file system cache, then each round
runs jaxmlp cold, jaxmlp warm and scikit-learn per workload, in turn; medians are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (cpu_snapshot, environment, foreign_cores, load_averages, log, require,  # noqa: E402
                    wait_for_idle_cpu, write_results)

WORKLOADS = ("spiral", "digits")
CACHE_ENV = ("JAX_COMPILATION_CACHE_DIR", "JAXMLP_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
             "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")  # left out of the children's environment

SKLEARN = """
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
from sklearn.neural_network import MLPClassifier
t1 = time.perf_counter()
d = np.load(sys.argv[1])
hidden, batch, epochs = json.loads(sys.argv[2])
model = MLPClassifier(hidden_layer_sizes=hidden, solver="adam", learning_rate_init=1e-3, batch_size=batch,
                      max_iter=epochs, alpha=0.0, early_stopping=False, n_iter_no_change=epochs, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ConvergenceWarning: it ran max_iter epochs, as asked
    model.fit(d["x"], d["y"])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "fit_s": t2 - t1, "epochs": model.n_iter_,
                  "test_accuracy": float(model.score(d["x_test"], d["y_test"]))}))
"""


class Workload(NamedTuple):
    name: str
    flags: list[str]  # jaxmlp train's data flags
    npz: Path  # x, y, x_test, y_test: what scikit-learn fits and scores
    n_train: int


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (after one untimed round) [3]")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: spiral, digits [both]")
    p.add_argument("--name", default="start", help="results/NAME.json and .md (an absolute path: elsewhere)")
    p.add_argument("--max-wait", type=float, default=300.0, help="seconds each timed run waits for idle CPUs "
                   "(other processes using < 0.25 cores) before it starts [300]")
    return p.parse_args(argv)


def write_workloads(names: list[str], tmp: Path) -> list[Workload]:
    """The data of each workload as an npz in `tmp` (the spiral: the data `jaxmlp train` loads)."""
    import numpy as np

    out = []
    for name in names:
        if name == "spiral":
            from jaxmlp.data import load_dataset

            s = load_dataset("spiral")
            x, y, x_test, y_test, flags = s.train.x, s.train.y, s.test.x, s.test.y, []
        elif name == "digits":
            from sklearn.datasets import load_digits

            d = load_digits()
            order = np.random.default_rng(0).permutation(len(d.target))
            x_all, y_all = (d.data[order] / 16.0).astype(np.float32), d.target[order].astype(np.int32)
            x, y, x_test, y_test = x_all[:1437], y_all[:1437], x_all[1437:], y_all[1437:]
            flags = ["--dataset", f"npz:{tmp / 'digits.npz'}"]
        else:
            raise SystemExit(f"bench_start.py: unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
        np.savez(tmp / f"{name}.npz", x=x, y=y, x_test=x_test, y_test=y_test)
        out.append(Workload(name, flags, tmp / f"{name}.npz", len(y)))
    return out


def jaxmlp_command() -> list[str]:
    """The `jaxmlp` console script beside this Python, else `python -m jaxmlp.cli`."""
    script = Path(sys.executable).with_name("jaxmlp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jaxmlp.cli"]


def timed(argv: list[str], env: dict, max_wait: float) -> tuple[dict, str]:
    """({wall_s: the whole process, foreign_cores: what other processes used meanwhile}, its
    stdout), started once the CPUs are idle (or `max_wait` passed); a failed process ends the
    benchmark."""
    if max_wait > 0:
        wait_for_idle_cpu(max_wait_s=max_wait)
    before, start = cpu_snapshot(children=True), time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds, after = time.perf_counter() - start, cpu_snapshot(children=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_start.py: {' '.join(argv[:3])} ... failed ({proc.returncode}): "
                         f"{proc.stderr.strip().splitlines()[-1:]}")
    return {"wall_s": seconds, "foreign_cores": foreign_cores(before, after)}, proc.stdout


def run_jaxmlp(w: Workload, cache_home: Path, out_dir: Path, max_wait: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CACHE_ENV}
    env["XDG_CACHE_HOME"] = str(cache_home)
    timing, _ = timed([*jaxmlp_command(), "train", *w.flags, "--out-dir", str(out_dir), "--no-plots"], env, max_wait)
    summary = json.loads((out_dir / "summary.json").read_text())
    return {**timing, "compile_s": summary["compile_seconds"], "eval_compile_s": summary["eval_compile_seconds"],
            "train_s": summary["train_seconds"], "epochs": summary["epochs"],
            "test_accuracy": summary["final"]["test"]["accuracy"]}


def run_sklearn(w: Workload, model: tuple, max_wait: float) -> dict:
    timing, out = timed([sys.executable, "-c", SKLEARN, str(w.npz), json.dumps(model)], dict(os.environ), max_wait)
    return {**timing, **json.loads(out)}


def one_round(workloads: list[Workload], model: tuple, tmp: Path, tag: str, max_wait: float) -> dict:
    """{workload: {"jaxmlp cold": ..., "jaxmlp warm": ..., "sklearn": ...}} of one round."""
    runs = {}
    for w in workloads:
        cache_home = tmp / f"cache-{w.name}-{tag}"  # new and empty: the cold run compiles everything
        runs[w.name] = {"jaxmlp cold": run_jaxmlp(w, cache_home, tmp / f"run-{w.name}-{tag}-cold", max_wait),
                        "jaxmlp warm": run_jaxmlp(w, cache_home, tmp / f"run-{w.name}-{tag}-warm", max_wait),
                        "sklearn": run_sklearn(w, model, max_wait)}
        log(f"  {w.name}: " + ", ".join(f"{k} {v['wall_s']:.2f} s" for k, v in runs[w.name].items()))
    return runs


def medians(rounds: list[dict]) -> dict:
    """{workload: {variant: {field: median over the rounds}}} of the numeric fields."""
    out = {}
    for name, variants in rounds[0].items():
        out[name] = {v: {f: statistics.median(r[name][v][f] for r in rounds) for f in fields}
                     for v, fields in variants.items()}
    return out


def table(workloads: list[Workload], med: dict) -> list[list]:
    rows = []
    for w in workloads:
        cold, warm, sk = (med[w.name][v] for v in ("jaxmlp cold", "jaxmlp warm", "sklearn"))
        compile_s = [m["compile_s"] + m["eval_compile_s"] for m in (cold, warm)]
        rows.append([f"{w.name} ({w.n_train:,} train)", f"{cold['wall_s']:.2f} s", f"{warm['wall_s']:.2f} s",
                     f"{sk['wall_s']:.2f} s (import {sk['import_s']:.2f} + fit {sk['fit_s']:.2f})",
                     f"{compile_s[0]:.2f} s / {compile_s[1]:.2f} s",
                     f"{100 * warm['test_accuracy']:.1f}% / {100 * sk['test_accuracy']:.1f}%"])
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    require({"sklearn": ("scikit-learn", "the scikit-learn baseline and the digits data")})
    from jaxmlp.config import TrainConfig

    defaults = TrainConfig()
    model = (list(defaults.hidden), defaults.batch_size, defaults.epochs)
    with tempfile.TemporaryDirectory(prefix="bench_start-") as tmp:
        workloads = write_workloads([n for n in args.workloads.split(",") if n], Path(tmp))
        log("untimed round (file system cache)")
        one_round(workloads, model, Path(tmp), "warmup", 0.0)
        load_before, rounds = load_averages(), []
        for r in range(args.repeats):
            log(f"round {r + 1}/{args.repeats}")
            rounds.append(one_round(workloads, model, Path(tmp), str(r), args.max_wait))
        load_after = load_averages()
    med = medians(rounds)
    foreign = [run["foreign_cores"] or 0.0 for r in rounds for variants in r.values() for run in variants.values()]
    record = {"title": "Start-up: the whole jaxmlp train process, cold and warm, vs scikit-learn",
              "environment": environment(["scikit-learn"]), "model": {"hidden": model[0], "batch_size": model[1],
                                                                      "epochs": model[2]},
              "jaxmlp_command": [*jaxmlp_command(), "train", "[--dataset npz:FILE]", "--out-dir", "DIR", "--no-plots"],
              "sklearn_code": SKLEARN, "load_before": load_before, "load_after": load_after,
              "median": med, "rounds": rounds}
    header = ["data", "jaxmlp cold", "jaxmlp warm", "scikit-learn", "jaxmlp compile cold / warm",
              "test accuracy jaxmlp / scikit-learn"]
    notes = (f"Whole-process wall time, median of {args.repeats} rounds after an untimed one. Model "
             f"{'-'.join(map(str, model[0]))} hidden relu, Adam lr 1e-3, batch {model[1]}, {model[2]} epochs for both "
             "(jaxmlp's defaults, dropout 0.2 included; scikit-learn: no dropout, alpha 0, no early stopping). "
             "jaxmlp: `jaxmlp train [--dataset npz:FILE] --no-plots`, cold = empty compilation cache, warm = the next "
             "process with the same cache; compile = epoch + evaluation programs (summary.json). Each timed run "
             f"waited for idle CPUs (up to {args.max_wait:g} s); other processes then used at most "
             f"{max(foreign):.2f} cores during one (median {statistics.median(foreign):.2f}). "
             f"Load average before / after: {load_before['1min']} / {load_after['1min']}.")
    for path in write_results(args.name, record, header, table(workloads, med), notes):
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
