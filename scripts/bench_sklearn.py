"""GridSearchCV(cv=5) over 4 candidates on load_digits: jaxmlp.sklearn.MLPClassifier (cold and
warm compilation cache) against scikit-learn's own MLPClassifier, same model and epochs.

    python scripts/bench_sklearn.py                       # 3 rounds -> results/sklearn_gridsearch.{json,md}
    python scripts/bench_sklearn.py --repeats 1 --epochs 5 --name /tmp/gs_smoke   # smoke

The grid is alpha in {1e-4, 1e-2} x learning_rate_init in {1e-3, 1e-2} on MLPClassifier's
defaults (hidden_layer_sizes (100,), adam, batch 200), max_iter = --epochs and
n_iter_no_change = max_iter, so every fit runs all its epochs in both; 5 folds x 4 candidates
+ the refit = 21 fits, n_jobs=1. X is load_digits / 16 (1,797 x 64). Each contender runs in a
fresh `python -c` process: jaxmlp cold (an empty JAXMLP_CACHE_DIR), jaxmlp warm (the cache the
cold run filled), scikit-learn; each round runs the three in turn, and medians are reported.
Timed: GridSearchCV.fit inside the process, and the whole process from outside. jaxmlp runs
float32 (its default dtype), scikit-learn float64 (its dtype for float64 X).

The machine may be shared: the load averages before and after, and the cores other processes
kept busy during each run (from /proc/stat), are written with the results.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import cpu_snapshot, environment, foreign_cores, load_averages, log, write_results  # noqa: E402

GRID = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]}
CHILD = """
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
if sys.argv[1] == "jaxmlp":
    from jaxmlp.sklearn import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
t1 = time.perf_counter()
X, y = load_digits(return_X_y=True)
epochs, grid = int(sys.argv[2]), json.loads(sys.argv[3])
search = GridSearchCV(MLPClassifier(max_iter=epochs, n_iter_no_change=epochs, random_state=0), grid, cv=5, n_jobs=1)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ConvergenceWarning: every fit runs max_iter epochs, as asked
    search.fit(X / 16.0, y)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "search_s": t2 - t1, "best_score": search.best_score_,
                  "best_params": search.best_params_}))
"""


def child_env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION", "JAX_PERSISTENT", "JAXMLP_"))}
    return dict(env, JAX_PLATFORMS="cpu", JAXMLP_CACHE_DIR=str(cache))


def run(which: str, epochs: int, cache: Path) -> dict:
    """One process: its report, its wall seconds and the cores other processes used meanwhile."""
    before = cpu_snapshot(children=True)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, which, str(epochs), json.dumps(GRID)], env=child_env(cache),
                         capture_output=True, text=True, check=True)
    wall, after = time.perf_counter() - start, cpu_snapshot(children=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process_s": wall,
            "foreign_cores": foreign_cores(before, after)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--name", default="sklearn_gridsearch")
    args = ap.parse_args()
    load_before, rounds = load_averages(), []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "xla"
            result = {name: run(which, args.epochs, cache) for name, which in
                      (("jaxmlp_cold", "jaxmlp"), ("jaxmlp_warm", "jaxmlp"), ("sklearn", "sklearn"))}
        rounds.append(result)
        log(f"round {r + 1}: " + ", ".join(f"{k} {v['search_s']:.2f}s (foreign {v['foreign_cores']:.2f} cores)"
                                           for k, v in result.items()))
    med = {k: {m: statistics.median(rd[k][m] for rd in rounds) for m in ("search_s", "process_s", "import_s")}
           for k in rounds[0]}
    sk = med["sklearn"]["search_s"]
    record = {"title": "GridSearchCV(cv=5), 4 candidates, load_digits: jaxmlp.sklearn vs scikit-learn",
              "environment": environment(["scikit-learn"]), "grid": GRID, "epochs": args.epochs, "fits": 21,
              "load_before": load_before, "load_after": load_averages(), "medians": med, "rounds": rounds,
              "ratio_to_sklearn": {k: med[k]["search_s"] / sk for k in med},
              "goals": {"warm_no_slower": med["jaxmlp_warm"]["search_s"] <= sk,
                        "cold_within_1.5x": med["jaxmlp_cold"]["search_s"] <= 1.5 * sk}}
    rows = [[k, f"{v['search_s']:.2f} s", f"{v['process_s']:.2f} s", f"{record['ratio_to_sklearn'][k]:.2f}",
             f"{statistics.median(rd[k]['best_score'] for rd in rounds):.4f}"] for k, v in med.items()]
    foreign = [rd[k]["foreign_cores"] or 0.0 for rd in rounds for k in rd]
    notes = (f"Medians of {args.repeats} rounds, {args.epochs} epochs per fit, 21 fits. Load average before "
             f"{load_before['1min']}, after {record['load_after']['1min']} (1 min); other processes kept "
             f"{min(foreign):.2f}-{max(foreign):.2f} cores busy during the runs. Goals: warm no slower than "
             f"scikit-learn: {'met' if record['goals']['warm_no_slower'] else 'NOT met'}; cold at most 1.5x: "
             f"{'met' if record['goals']['cold_within_1.5x'] else 'NOT met'}.")
    paths = write_results(args.name, record, ["contender", "GridSearchCV.fit", "whole process", "x scikit-learn",
                                              "best CV score"], rows, notes)
    log(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    main()
