"""The MNIST batch-size study: steps to a validation-accuracy target at each batch size, the
learning rate tuned per batch size, for SGD with momentum and for Adam (jaxmlp.batch_study),
timed against its floor.

    python scripts/bench_batch_study.py --data-dir ../shared/data/mnist                  # both optimizers, CPU
    python scripts/bench_batch_study.py --data-dir ../shared/data/mnist --optimizer adam
    python scripts/bench_batch_study.py --data-dir DIR --gpu                              # the GPU run
    python scripts/bench_batch_study.py --step-cost --hidden 512,512     # the adaptive step's cost

Then an adaptive_batch run (training/adaptive_batch.py) per seed, from the smallest batch size
at its tuned learning rate, to the same target (batchsize/adaptive_run.py), against the three
goals: fewer steps than the fixed starting batch, at most 1.2x the examples of the most
example-efficient fixed batch, and its (S, E) point on or inside the fitted frontier.

Writes results/batch_study_<optimizer>[_gpu].{json,md},
results/figures/batch_study_<optimizer>[_gpu].png, and results/batch_study[_gpu].md: the
studies in results/ side by side. The floor is the study's arithmetic at the
matmul rate measured in the same run (a float32 jnp matmul of 2048 x 2048, median of 10, at the
start and at the end): 6 FLOPs per weight per training example, 2 per weight per evaluated
example (every check of every model on the validation split), plus the B_simple passes
(6 per weight per training example, one pass per batch size).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import RESULTS, environment, load_averages, log, repo_path, wait_for_idle_cpu, write_results  # noqa: E402

SETTINGS = {  # optimizer -> (learning rate tuned at batch 128, the grid's scaling rule)
    "momentum": (0.05, "linear"),
    "adam": (1e-3, "sqrt"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/mnist", help="MNIST IDX files")
    p.add_argument("--optimizer", choices=[*SETTINGS, "both"], default="both")
    p.add_argument("--hidden", default="128", help="hidden widths [128]")
    p.add_argument("--target", default="val_accuracy=0.96")
    p.add_argument("--batch-sizes", default="16:4096")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--lr-points", type=int, default=6)
    p.add_argument("--epochs", type=int, default=60, help="each batch size's budget")
    p.add_argument("--val-size", type=int, default=5000, help="validation examples held out of the 60000")
    p.add_argument("--n-train", type=int, default=None, help="use the first N training examples (smoke tests)")
    p.add_argument("--gpu", action="store_true", help="the GPU run: results named *_gpu, width all")
    p.add_argument("--tag", default="", help="a suffix of the result names")
    p.add_argument("--summary-only", action="store_true", help="only write results/batch_study.md from the JSONs")
    p.add_argument("--step-cost", action="store_true", help="only time the adaptive batch's step against a plain "
                   "and a track_gradients step (results/adaptive_step_cost.md)")
    return p.parse_args(argv)


def matmul_rate() -> float:
    """FLOP/s of a float32 2048 x 2048 jnp matmul on the default device, median of 10."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (2048, 2048), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    times = []
    for _ in range(10):
        t = time.perf_counter()
        jax.block_until_ready(f(a))
        times.append(time.perf_counter() - t)
    return 2 * 2048 ** 3 / statistics.median(times)


def study_flops(result, sizes, n_train: int, n_val: int) -> float:
    """The arithmetic the study did (the module docstring's count)."""
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return sum(6.0 * weights * r.model_steps * r.batch_size + 2.0 * weights * r.model_checks * n_val
               + (6.0 * weights * n_train if r.b_simple is not None else 0.0) for r in result.rows)


def load(args):
    from jaxmlp import load_dataset
    from jaxmlp.data.dataset import Dataset
    from jaxmlp.run_preprocessing import fit_preprocessing

    splits = load_dataset("mnist", data_dir=str(repo_path(args.data_dir)), seed=0, val_fraction=args.val_size / 60000)
    if args.n_train:
        t = splits.train
        splits = splits._replace(train=Dataset(t.x[:args.n_train], t.y[:args.n_train], name=t.name,
                                               num_classes=t.num_classes))
    return fit_preprocessing(splits, True)[0]


def run_one(args, optimizer: str, splits) -> dict:
    from jaxmlp import TrainConfig, batch_study
    from jaxmlp.cli.batch_study_cmd import batch_range

    lr, rule = SETTINGS[optimizer]
    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    config = TrainConfig(dataset="mnist", hidden=hidden, optimizer=optimizer, learning_rate=lr, batch_size=128,
                         epochs=args.epochs)
    rate_start = matmul_rate()
    load_start, idle = load_averages(), wait_for_idle_cpu() if not args.gpu else None
    log(f"{optimizer}: matmul {rate_start / 1e9:.0f} GFLOP/s; study starts")
    t0 = time.perf_counter()
    result = batch_study(config, batch_range(args.batch_sizes), args.target, splits.train, splits.val,
                         seeds=[int(s) for s in args.seeds.split(",")], lr_points=args.lr_points, rule=rule,
                         width="all" if args.gpu else "auto",
                         on_row=lambda r: log(f"  batch {r.batch_size}: best lr {r.best_lr}, steps "
                                              f"{r.best_steps.tolist()}, {r.seconds:.1f}s"))
    wall = time.perf_counter() - t0
    rate = max(rate_start, matmul_rate())
    sizes = (784, *hidden, 10)
    flops = study_flops(result, sizes, len(splits.train), len(splits.val))
    adaptive = run_adaptive(args, config, result, splits)
    return {"optimizer": optimizer, "learning_rate_at_128": lr, "rule": rule, "hidden": list(hidden),
            "config": config.to_dict(),
            "adaptive": adaptive,
            "wall_s": wall, "races_s": sum(r.seconds for r in result.rows),
            "compile_s": sum(r.compile_seconds for r in result.rows), "flops": flops,
            "matmul_flops_per_s": rate, "floor_s": flops / rate, "load_start": load_start, "idle_wait": idle,
            "load_end": load_averages(), "result": result.to_json(), "table": result.table(), "_result": result}


def run_adaptive(args, config, result, splits) -> dict | None:
    """The adaptive run per seed from the smallest batch size's tuned rate, and the goals."""
    import dataclasses

    from jaxmlp.batchsize.adaptive_run import frontier_ratio, measure_adaptive

    start = result.rows[0]
    if start.best_lr is None or result.frontier is None:
        return None
    config = dataclasses.replace(config, batch_size=start.batch_size, learning_rate=start.best_lr, adaptive_batch=True)
    points = [measure_adaptive(config, args.target, splits.train, splits.val, seed=int(s)) for s in args.seeds.split(",")]
    for p in points:
        log(f"  adaptive: S {p.steps:.0f}, E {p.examples:,.0f}, batches {sorted({b for b, _ in p.schedule})}")
    steps = statistics.median(p.steps for p in points)
    examples = statistics.median(p.examples for p in points)
    best_e = min(r.median_steps * r.batch_size for r in result.reached)
    median = points[0]._replace(steps=steps, examples=examples)
    return {"start_batch": start.batch_size, "learning_rate": start.best_lr, "batch_segments": config.batch_segments,
            "runs": [{"steps": p.steps, "examples": p.examples, "seconds": p.seconds,
                      "batches": [b for b, _ in p.schedule], "segment_steps": [n for _, n in p.schedule]}
                     for p in points],
            "steps": steps, "examples": examples, "fixed_start_steps": start.median_steps,
            "fewest_examples_fixed": best_e, "examples_ratio": examples / best_e,
            "frontier_ratio": frontier_ratio(median, result.frontier[0])}


def adaptive_notes(adaptive: dict | None) -> list[str]:
    if adaptive is None:
        return ["No adaptive run: the smallest batch size has no tuned rate, or there is no frontier."]
    a = adaptive
    seeds = "; ".join(f"S {r['steps']:.0f}, E {r['examples']:,.0f}" for r in a["runs"])
    return ["", f"**Adaptive batch** (from batch {a['start_batch']} at lr {a['learning_rate']:.4g}, "
                f"batch_segments {a['batch_segments']}; per seed: {seeds}; median S {a['steps']:.0f}, "
                f"E {a['examples']:,.0f}):", "",
            f"- fewer steps than the fixed starting batch: {a['steps']:.0f} vs {a['fixed_start_steps']:.0f} "
            f"({'met' if a['steps'] < a['fixed_start_steps'] else 'missed'});",
            f"- examples vs the most example-efficient fixed batch ({a['fewest_examples_fixed']:,.0f}): "
            f"{a['examples_ratio']:.2f}x (goal <= 1.2x: {'met' if a['examples_ratio'] <= 1.2 else 'missed'});",
            f"- S over the frontier's steps at the same E: {a['frontier_ratio']:.2f} (goal <= 1, on or inside: "
            f"{'met' if a['frontier_ratio'] <= 1 else 'missed'})."]


def write_optimizer(args, optimizer: str, run: dict, suffix: str) -> None:
    """results/batch_study_<optimizer><suffix>.{json,md} and its figure."""
    from jaxmlp.batchsize.plots import plot_study

    result = run.pop("_result")
    name = f"batch_study_{optimizer}{suffix}"
    figure = RESULTS / "figures" / f"{name}.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    plot_study(result, figure)
    record = {"title": f"Batch-size study, MNIST {'-'.join(map(str, (784, *run['hidden'], 10)))} relu, "
                       f"{optimizer}, target {args.target}", "environment": environment(), "settings": vars(args), **run}
    header, rows = result.cells()
    notes = "\n".join([*result.fit_lines(), "",
                       f"Wall time {run['wall_s']:.0f} s ({run['races_s']:.0f} s of races, {run['compile_s']:.0f} s "
                       f"compile); floor {run['floor_s']:.0f} s = {run['flops'] / 1e12:.1f} TFLOP at the "
                       f"measured matmul rate {run['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s "
                       f"(wall / floor = {run['wall_s'] / run['floor_s']:.1f}). Load average at the start "
                       f"{run['load_start']['1min']}, at the end {run['load_end']['1min']}.",
                       f"Figure: `figures/{figure.name}`.", *adaptive_notes(run["adaptive"])])
    write_results(name, record, header, rows, notes)
    log(f"{optimizer}: {run['wall_s']:.0f} s, floor {run['floor_s']:.0f} s -> results/{name}.md")


def write_summary(gpu: bool) -> None:
    """results/batch_study[_gpu].md: every study in results/ (each optimizer and model), side by
    side, from their JSON files."""
    import json

    paths = sorted(p for p in RESULTS.glob("batch_study_*.json") if p.stem.endswith("_gpu") == gpu
                   or (gpu and "_gpu_" in p.stem))
    runs = {p.stem: json.loads(p.read_text()) for p in paths}
    if not runs:
        return
    label = {k: f"784-{'-'.join(map(str, r['hidden']))}-10, {r['optimizer']}" for k, r in runs.items()}
    lines = ["# Batch-size studies, MNIST (summary)", "", "| | " + " | ".join(label.values()) + " |",
             "|---|" + "---|" * len(runs)]

    def row(name, fn):
        lines.append(f"| {name} | " + " | ".join(fn(r) for r in runs.values()) + " |")

    def fit(key):
        return lambda r: ("-" if r["result"]["frontier"] is None else "{:,.0f} [{:,.0f}, {:,.0f}]".format(
            *(r["result"]["frontier"][k][key] for k in ("estimate", "lower", "upper"))))

    def adaptive(fmt):
        return lambda r: "-" if r["adaptive"] is None else fmt(r["adaptive"])

    row("grid", lambda r: f"batch {r['settings']['batch_sizes']} x {r['settings']['lr_points']} rates x seeds "
        f"{r['settings']['seeds']}")
    row("target", lambda r: r["settings"]["target"])
    row("S_min (steps) [90% bootstrap]", fit("s_min"))
    row("E_min (examples)", fit("e_min"))
    row("**B_crit**", fit("b_crit"))
    row("B_simple at the target (median)", lambda r: f"{r['result']['b_simple']:.0f}")
    row("eps_opt(B)", lambda r: "{eps_max:.4g} / (1 + {b_noise:.0f} / B)".format(**r["result"]["eps_opt"]))
    row("wall s (floor s)", lambda r: f"{r['wall_s']:.0f} ({r['floor_s']:.0f})")
    row("adaptive S, E (median of seeds)", adaptive(lambda a: f"{a['steps']:.0f}, {a['examples']:,.0f}"))
    row("adaptive S / fixed starting batch's S", adaptive(lambda a: f"{a['steps'] / a['fixed_start_steps']:.3f}"))
    row("adaptive E / fewest fixed E (goal <= 1.2)", adaptive(lambda a: f"{a['examples_ratio']:.2f}"))
    row("adaptive S / frontier S at its E (goal <= 1)", adaptive(lambda a: f"{a['frontier_ratio']:.2f}"))
    lines += ["", *(f"![{label[k]}](figures/{k}.png)" for k in runs), "",
              *(f"- [{k}.md]({k}.md): {r['environment']['device']}, {r['environment']['date']}, "
                f"`{r['environment']['command']}`" for k, r in runs.items()), ""]
    (RESULTS / f"batch_study{'_gpu' if gpu else ''}.md").write_text("\n".join(lines))


def step_cost(args, splits) -> None:
    """results/adaptive_step_cost{_gpu}.{json,md}: the median epoch (epochs 2..4) at batch 128 of a
    plain run, a track_gradients run and an adaptive run held at 128 (max_batch_size 128), interleaved."""
    import dataclasses

    from jaxmlp import TrainConfig, fit

    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    base = TrainConfig(dataset="mnist", hidden=hidden, optimizer="momentum", learning_rate=0.05, batch_size=128,
                       epochs=4, eval_train=False)
    ways = {"plain step": base, "track_gradients": dataclasses.replace(base, track_gradients=True),
            "adaptive_batch held at 128": dataclasses.replace(base, adaptive_batch=True, max_batch_size=128),
            "adaptive_batch held at 128, batch_segments 32": dataclasses.replace(
                base, adaptive_batch=True, max_batch_size=128, batch_segments=32)}
    idle = None if args.gpu else wait_for_idle_cpu()
    epochs = {name: [] for name in ways}
    for _ in range(2):  # interleaved: drift hits every way alike
        for name, config in ways.items():
            epochs[name] += fit(config, splits.train, splits.val)[1].seconds[1:]
    median = {name: statistics.median(v) for name, v in epochs.items()}
    rows = [[name, f"{median[name]:.3f}", f"{median[name] / median['plain step']:.3f}",
             f"{median[name] / median['track_gradients']:.3f}"] for name in ways]
    record = {"title": f"The adaptive batch's step cost: MNIST 784-{'-'.join(map(str, hidden))}-10, batch 128",
              "environment": environment(), "epochs_s": epochs, "median_s": median, "idle_wait": idle,
              "load_end": load_averages()}
    write_results("adaptive_step_cost" + ("_gpu" if args.gpu else ""), record,
                  ["run", "median epoch s", "vs plain", "vs track_gradients"], rows,
                  "Epochs 2-4 of two interleaved runs each (6 epochs per way); each epoch includes its "
                  "validation pass. The adaptive runs never change their batch (max_batch_size = batch_size), so "
                  "they train the same steps as the others, in segments of n_train / batch_segments examples (at "
                  "least one step): each segment is a call and a host read of its statistics, one step long at "
                  "the default 256 segments per epoch here, about 13 steps at 32.")


def main(argv=None) -> int:
    args = parse_args(argv)
    suffix = ("_gpu" if args.gpu else "") + (f"_{args.tag}" if args.tag else "")
    if args.step_cost:
        step_cost(args, load(args))
        return 0
    if not args.summary_only:
        splits = load(args)
        for optimizer in SETTINGS if args.optimizer == "both" else [args.optimizer]:
            write_optimizer(args, optimizer, run_one(args, optimizer, splits), suffix)
    write_summary(args.gpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
