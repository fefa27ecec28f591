"""The result files of bench_cpu.py: the record (results/<name>.json), its table and notes
(results/<name>.md) and the throughput plot (results/<plot>). Formats as before the split:
the committed results stay comparable.
"""
from __future__ import annotations

from pathlib import Path

from _bench import environment, markdown_table, shown_path, write_results
from _contenders import LR


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


def record_of(b, res: dict) -> dict:
    """The JSON record of a run: `b` is bench_cpu's Bench, `res` what its phases measured."""
    args = b.args
    return {
        "title": "jaxmlp vs PyTorch eager vs scikit-learn on CPU: MNIST 784-512-512-10 relu, Adam 1e-3, fp32, batch "
                 f"{args.batch}",
        "environment": environment(("torch", "scikit-learn", "matplotlib")),
        "workload": {"data": "MNIST (real idx files)", "data_dir": str(b.data_dir), "n_train": len(b.train),
                     "n_test": len(b.test), "sizes": list(b.sizes), "activation": "relu", "optimizer": "adam",
                     "learning_rate": LR, "dtype": "float32", "batch": args.batch, "epochs": args.epochs,
                     "extra_timed_epochs": args.extra_epochs, "seed": args.seed},
        "method": "contenders interleaved epoch by epoch; epoch 1 = warm-up (reported separately), median over "
                  "epochs 2..N during which other processes used < idle_foreign cores (all of 2..N if fewer than 2); "
                  "jaxmlp compile (AOT lower+compile) reported separately; test accuracy after "
                  f"{args.epochs} epochs (untimed); GFLOP/s = 6*N*sum(d_in*d_out)/epoch s; ratio = peer epoch s / "
                  f"{args.ref} epoch s",
        "quiet_wait": res["quiet_wait"], "idle_foreign": args.idle_foreign, "idle_waits": b.rounds.waits,
        "load_average_start": res["load_average_start"], "load_average_end": res["load_average_end"],
        "run_s": res["run_s"], "sgemm": res["sgemm"], "reference": args.ref, "runs": res["runs"],
        "fit_check": res["fit_check"], "breakdown": res["breakdown"],
        "sweep": {n: {str(bs): v for bs, v in pts.items()} for n, pts in res["sweep"].items()},
        "goals": res["goals"], "plot": None if res["plot"] is None else shown_path(res["plot"]),
    }


def _max_foreign(values) -> str:
    vals = [v for v in values if v is not None]
    return f"{max(vals):.2f}" if vals else "?"


HEADER = ["contender", "median epoch s", "epoch 1 s", "compile s", "ratio vs jaxmlp", "test acc %", "samples/s",
          "GFLOP/s", "fraction of ceiling", "other processes, max cores (epochs in median)"]


def table_rows(runs: dict) -> list[list]:
    return [[n, f"{r['median_epoch_s']:.3f}", f"{r['first_epoch_s']:.3f}",
             "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}",
             f"{r['ratio_vs_jaxmlp']:.2f}", f"{100 * r['test_accuracy']:.2f}", f"{r['samples_per_s']:,.0f}",
             f"{r['gflops_per_s']:.1f}", f"{r['fraction_of_ceiling']:.2f}",
             f"{_max_foreign([r['foreign_cores'][e - 1] for e in r['median_over_epochs']])} "
             f"({len(r['median_over_epochs'])} epochs)"] for n, r in runs.items()]


def method_notes(args) -> list[str]:
    total = args.epochs + args.extra_epochs
    return [f"Median epoch = median over epochs 2..{total} (epoch 1 is warm-up and shown on its own) "
            f"during which other processes used < {args.idle_foreign} cores (all of 2..{total} if fewer "
            "than 2 were that clean; the epochs used are listed in the JSON), "
            "contenders interleaved epoch by epoch. Ratio = contender epoch time / "
            f"{args.ref} epoch time (> 1: jaxmlp is faster). Accuracy: MNIST test set after {args.epochs} epochs, "
            f"seed {args.seed}, one run each. GFLOP/s counts 6 * N * sum(d_in*d_out) per epoch."]


def ceiling_notes(args, gemm: dict, jr: dict) -> list[str]:
    ms = gemm["measurements"]
    rows = []
    for key, label in (("model_gemms", f"the 9 GEMMs of one training step at batch {args.batch} (x"
                        f"{ms[0]['model_gemms']['steps_per_timing']} steps per timing)"),
                       ("square", f"square {args.square}x{args.square}")):
        rows.append([label + (" **= the ceiling used**" if gemm["ceiling_used"] == key else ""),
                     " / ".join(f"{m[key]['median_s']:.4f}" for m in ms),
                     " / ".join(f"{m[key]['median_gflops_per_s']:.1f}" for m in ms), f"{gemm[key]['gflops_per_s']:.1f}"])
    return ["", "**sgemm ceiling** (numpy float32 matmul, OpenBLAS, all cores; measured at the start and at the "
            "end of this run):", "",
            *markdown_table(["GEMM set", "median s (start / end)", "GFLOP/s median (start / end)", "GFLOP/s best"],
                            rows),
            "", "The ceiling used is the best rate of the faster GEMM set (a ceiling has to bound what the "
            "workload can reach; the best of the repeats, since a busy neighbour only lowers it).", "",
            f"{args.ref} reaches {jr['fraction_of_model_gemms']:.2f}x the model-shaped GEMM rate and "
            f"{jr['fraction_of_square_sgemm']:.2f} of the square sgemm."]


def check_notes(record: dict) -> list[str]:
    """The goals, the fit() cross-check and the breakdown."""
    notes = ["", "**Goals**", "", *markdown_table(["goal", "measured", "target", "met"], [
        [g, f"{v['value']:.2f}", v["goal"], "yes" if v["met"] else "no"] for g, v in record["goals"].items()])]
    fc = record["fit_check"]
    if fc:
        reused = " (the contender's compiled program, reused)" if fc["same_program_as_contender"] else ""
        notes += ["", f"**fit() cross-check** ({fc['grad_method']}, {fc['epochs']} epochs, end to end "
                  f"through `jaxmlp.training.fit`): compile {fc['compile_s']:.2f} s{reused}, epochs "
                  f"{', '.join(f'{s:.3f}' for s in fc['epoch_s'])} s, test accuracy {100 * fc['test_accuracy']:.2f}%."]
    if record["breakdown"]:
        ceiling = record["sgemm"]["ceiling_gflops_per_s"]
        notes += ["", "**Where jaxmlp's epoch time goes** (diagnostic; same data, model and batch, interleaved, "
                  "median of the clean timed epochs after one warm-up): the trainer's epoch vs a bare jitted "
                  "lax.scan of `loss_and_grad` + optax update without the trainer's divergence guard "
                  "(a per-step flag on the loss and a finite check of the final params and optimizer state).", "",
                  *markdown_table(["variant", "median epoch s", "GFLOP/s", "fraction of ceiling"], [
                      [n, f"{v['median_epoch_s']:.3f}", f"{v['gflops_per_s']:.1f}", f"{v['gflops_per_s'] / ceiling:.2f}"]
                      for n, v in record["breakdown"].items()])]
    return notes


def sweep_notes(args, sweep: dict) -> list[str]:
    """The sweep table; `sweep` as in the record: {contender: {str(batch): point}}."""
    if not sweep:
        return []
    rows = [[n, *(f"{pts[str(b)]['samples_per_s']:,.0f}" if str(b) in pts else "-" for b in args.batches)]
            for n, pts in sweep.items()]
    return ["", "**Throughput sweep** (samples/s, median of the timed epochs after one warm-up epoch; "
            f"plot: `{args.plot}`)", "", *markdown_table(["contender", *(f"batch {b}" for b in args.batches)], rows),
            "", "Other processes during the sweep epochs (max cores): " + "; ".join(
                f"{n} @ {b}: {_max_foreign(v['foreign_cores'][1:])}"
                for n, pts in sweep.items() for b, v in sorted(pts.items(), key=lambda kv: int(kv[0]))) + "."]


def machine_notes(args, record: dict) -> list[str]:
    quiet, start, end = record["quiet_wait"], record["load_average_start"], record["load_average_end"]
    return ["", "'other processes' = cores kept busy by other processes during an epoch (/proc/stat busy time "
            "minus this process's CPU time); before every round of epochs the script waits (up to "
            f"{args.idle_wait:.0f} s) until that is < {args.idle_foreign} cores.",
            "", f"**Load average** (1/5/15 min) at start: {start['1min']}/{start['5min']}/{start['15min']}, at end: "
            f"{end['1min']}/{end['5min']}/{end['15min']}. "
            + (f"The machine was quiet (1-min load < {args.quiet_load}) when timing started "
               f"(waited {quiet['waited_s']:.0f} s)." if quiet["quiet"] else
               f"**The machine never got quiet** (1-min load stayed >= {args.quiet_load} for "
               f"{quiet['waited_s']:.0f} s of waiting); it is shared with other test runs, so these timings "
               "carry that noise."),
            "", "Settings: torch uses torch.set_num_threads(os.cpu_count()) and set_flush_denormal(True), He-normal "
            "init, default Adam (torch) and Adam(fused=True) (torch-fused); sklearn uses alpha=0 (no L2, like the "
            "others) and float32 inputs; jaxmlp drops the remainder batch (59904 samples/epoch), torch and sklearn "
            "keep it (60000). No GPU was used."]


def write_report(b, record: dict) -> None:
    """results/<name>.{json,md} of the record, and the table and goals on stdout."""
    args, runs = b.args, record["runs"]
    notes = (method_notes(args) + ceiling_notes(args, record["sgemm"], runs[args.ref]) + check_notes(record)
             + sweep_notes(args, record["sweep"]) + machine_notes(args, record))
    rows = table_rows(runs)
    write_results(args.name, record, HEADER, rows, notes="\n".join(notes))
    print("\n".join(markdown_table(HEADER, rows)[2:]))
    for g, v in record["goals"].items():
        print(f"goal {g}: {v['value']:.3f} ({v['goal']}) -> {'met' if v['met'] else 'NOT met'}")


