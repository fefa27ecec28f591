"""`jaxmlp batch-study`: steps to a target at each batch size, with the learning rate tuned per
batch size; the critical batch size fitted, B_simple at the target, the figure.

    jaxmlp batch-study --dataset mnist --hidden 256 --optimizer momentum --learning-rate 0.05 \\
        --val-fraction 0.1667 --target val_accuracy=0.96 --batch-sizes 32:8192 --epochs 80 --out-dir runs/bs
    jaxmlp batch-study --resume runs/bs          # after a kill: measures the batch sizes not yet done

The run directory (batchsize/studydir.py): study.json, results.jsonl, summary.md, summary.json,
batch_study.png. Bad input (a range that is empty or not powers of two, a batch size above the
data set, an unreachable or unmeasurable target, a config): one line, exit 2, nothing written.
Fewer than 2 batch sizes reaching the target: the table is written, then exit 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from jaxmlp.cli.flags import add_config_flags, given_fields, int_at_least, load_config_file, width
from jaxmlp.cli.interrupts import InterruptGuard
from jaxmlp.cli.outcome import os_error
from jaxmlp.cli.run_config import dtype_scope
from jaxmlp.cli.train_cmd import claim_dir, data_error, load_data
from jaxmlp.cli.usage import EXIT_INTERRUPTED, PROG, UsageError, fail
from jaxmlp.config import TrainConfig

COMMAND = f"{PROG} batch-study"
KIND = "batch-study"
RESUMABLE_FIELDS = ("data_dir", "download")


def batch_range(text: str) -> list[int]:
    """"32:4096" (every power of two from 32 to 4096) or "32,128,512"; ValueError when a bound
    or value is not an integer, or the range is empty."""
    low, sep, high = text.partition(":")
    if sep:
        lo, hi = int(low), int(high)
        if lo < 1 or hi < lo:
            raise ValueError(f"the batch-size range {text!r} is empty: give LOW:HIGH with 1 <= LOW <= HIGH")
        if lo & (lo - 1) or hi & (hi - 1):
            raise ValueError(f"batch sizes must be powers of two, got {text!r}")
        return [2 ** k for k in range(lo.bit_length() - 1, hi.bit_length())]
    return [int(v) for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    study = parser.add_argument_group("batch study")
    study.add_argument("--target", metavar="SPLIT_METRIC=VALUE",
                       help="what each model must reach: val_accuracy=0.975, val_loss=0.1, train_loss=0.05, val_mse=...")
    study.add_argument("--batch-sizes", metavar="LOW:HIGH|B,B,...",
                       help="powers of two: every one from LOW to HIGH, or a list (e.g. 32:4096)")
    study.add_argument("--seeds", default="0,1", metavar="S,S,...", help="seeds per learning rate [0,1]")
    study.add_argument("--lr-points", type=int_at_least(2), default=6, metavar="N", help="learning rates per grid [6]")
    study.add_argument("--lr-span", type=float, default=4.0, metavar="X",
                       help="largest / smallest learning rate of a grid [4]")
    study.add_argument("--lr-rule", choices=("auto", "linear", "sqrt", "none"), default="auto",
                       help="how a grid's centre follows the batch size from the previous best [auto: linear for "
                       "sgd, momentum, nesterov and lars; sqrt for the others]")
    study.add_argument("--max-widen", type=int_at_least(0), default=2, metavar="N",
                       help="widen a grid whose best rate is on its edge at most N times [2]")
    study.add_argument("--width", type=width, default="auto", metavar="N|auto|all",
                       help="models vmapped together [auto: 1 on CPU, all on accelerators]")
    study.add_argument("--config", metavar="FILE", help="a .json or .toml file of TrainConfig fields")
    study.add_argument("--resume", metavar="RUN_DIR", help="continue the study in RUN_DIR")
    study.add_argument("--overwrite", action="store_true", help="start over in an out_dir that holds a study")
    study.add_argument("--quiet", action="store_true", help="print only the closing line")
    study.add_argument("--no-plots", dest="plots", action="store_false", help="skip batch_study.png")
    add_config_flags(parser)


def cmd_batch_study(ns: argparse.Namespace) -> int:
    config, settings_args, run_dir, resumed = setup(ns)
    with dtype_scope(config.dtype):
        return _study(ns, config, settings_args, run_dir, resumed)


def setup(ns: argparse.Namespace):
    """(config, the study's settings or their arguments, run dir or None, resumed settings or
    None) from the flags or from the study being resumed. Reads only."""
    from jaxmlp.batchsize.studydir import read_study_json
    from jaxmlp.rundir import RunDirError, check_new_run_dir
    from jaxmlp.runfiles import KIND_FILES, check_own_files

    given = given_fields(ns)
    try:
        if ns.resume:
            fixed = [f"--{n.replace('_', '-')}" for n in sorted(set(given) - set(RESUMABLE_FIELDS))]
            extra = [f for f, on in (("--config", ns.config), ("--overwrite", ns.overwrite), ("--target", ns.target),
                                     ("--batch-sizes", ns.batch_sizes)) if on]
            if extra or fixed:
                raise UsageError(f"{COMMAND}: error: {(extra + fixed)[0]} cannot change when resuming a study "
                                 "(allowed: --data-dir, --download)")
            check_own_files(Path(ns.resume), KIND_FILES[KIND])
            config, settings, width = read_study_json(Path(ns.resume))
            return dataclasses.replace(config, **given), settings, Path(ns.resume), width
        missing = [f for f, v in (("--target", ns.target), ("--batch-sizes", ns.batch_sizes)) if not v]
        if missing:
            raise UsageError(f"{COMMAND}: error: {missing[0]} is required (e.g. --target val_accuracy=0.975 "
                             "--batch-sizes 32:4096)")
        config = TrainConfig.from_dict({**(load_config_file(ns.config) if ns.config else {}), **given})
        seeds = [int(s) for s in ns.seeds.split(",") if s.strip()]
        args = dict(batch_sizes=batch_range(ns.batch_sizes), target=ns.target, seeds=seeds, lr_points=ns.lr_points,
                    lr_span=ns.lr_span, rule=None if ns.lr_rule == "auto" else ns.lr_rule, max_widen=ns.max_widen)
        run_dir = Path(config.out_dir) if config.out_dir else None
        if run_dir is not None:
            check_new_run_dir(run_dir, config, overwrite=ns.overwrite, kind=KIND)
        return config, args, run_dir, None
    except (ValueError, RunDirError) as exc:
        raise UsageError(f"{COMMAND}: error: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{COMMAND}: error: {os_error(exc)}") from None


def _study(ns: argparse.Namespace, config: TrainConfig, settings, run_dir: Path | None, resumed_width) -> int:
    from jaxmlp import compile_cache
    from jaxmlp.batchsize.study import StudySettings, plan_study, study_settings
    from jaxmlp.batchsize.studydir import read_rows
    from jaxmlp.rundir import RunDirError
    from jaxmlp.sweeps.plan import resolve_width

    splits, _ = load_data(config, ns.quiet, command="batch-study")
    try:
        width = resolve_width(ns.width if resumed_width is None else resumed_width)
        if not isinstance(settings, StudySettings):
            settings = study_settings(config, n_train=len(splits.train), **settings)
        rows = read_rows(run_dir, settings) if ns.resume else []
        plans = plan_study(config, settings, splits.train, splits.val, width)  # every check, before any write
    except (ValueError, RunDirError) as exc:
        raise data_error("batch-study", exc) from None
    compile_cache.ensure_configured()
    claim, code = claim_dir(ns, config, run_dir, command=KIND), 2
    try:
        code = _run(ns, dataclasses.replace(config, out_dir=str(claim.path)), settings, plans, width, rows,
                    claim.path, splits)
        return code
    finally:
        claim.release(undo=code == 2)


def _run(ns, config: TrainConfig, settings, plans, width, rows, run_dir: Path, splits) -> int:
    """The study in its claimed directory, then its files; every way it can end, in one line."""
    from jaxmlp.batchsize import studydir
    from jaxmlp.batchsize.study import run_study

    done = list(rows)

    def on_row(row) -> None:
        done.append(row)
        studydir.write_rows(run_dir, done)
        if not ns.quiet:
            print(_row_line(row), flush=True)

    start = time.perf_counter()
    try:
        with InterruptGuard():
            if not ns.resume:
                studydir.write_study_json(run_dir, config, settings, ns.width)
            result = run_study(settings, plans, splits.train, splits.val, width=width, done=rows, on_row=on_row)
    except KeyboardInterrupt:
        return fail(f"{COMMAND}: interrupted; {len(done)} of {len(settings.batch_sizes)} batch sizes are measured in "
                    f"{run_dir}; continue with --resume {run_dir}", EXIT_INTERRUPTED)
    except OSError as exc:
        return fail(f"{COMMAND}: error: {os_error(exc, run_dir)} ({len(done)} batch sizes measured in {run_dir})", 1)
    return _finish(ns, config, result, run_dir, time.perf_counter() - start)


def _row_line(row) -> str:
    best = "no rate reached the target on every seed" if row.best_lr is None else \
        f"best lr {row.best_lr:.4g}{' (on the edge)' if row.at_edge else ''}, {row.median_steps:,.0f} steps " \
        f"(seeds {', '.join('-' if s == float('inf') else f'{s:.0f}' for s in row.best_steps)})"
    return f"batch {row.batch_size}: {best}; {len(row.lrs)} rates, {row.checks} checks, {row.seconds:.1f}s " \
           f"(+{row.compile_seconds:.1f}s compile)"


def _finish(ns, config: TrainConfig, result, run_dir: Path, seconds: float) -> int:
    from jaxmlp.batchsize import studydir

    studydir.write_summary(run_dir, result, config, sum(r.seconds for r in result.rows))
    written = [studydir.STUDY_FILE, studydir.RESULTS_FILE, studydir.SUMMARY_MD, studydir.SUMMARY_JSON]
    if ns.plots:
        from jaxmlp.batchsize.plots import plot_study

        plot_study(result, run_dir / studydir.PLOT_FILE)
        written.append(studydir.PLOT_FILE)
    if not ns.quiet:
        print(result.table())
    fit = result.fit_lines()[0]
    print(f"done: {len(result.rows)} batch sizes in {seconds:.1f}s; {fit} | run dir: {run_dir} "
          f"({', '.join(written)})", flush=True)
    if result.frontier is None:
        return fail(f"{COMMAND}: error: fewer than 2 batch sizes reached {result.settings.target} within "
                    f"{config.epochs} epochs; lower the target or raise --epochs", 1)
    return 0
