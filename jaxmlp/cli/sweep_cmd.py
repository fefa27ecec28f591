"""`jaxmlp sweep`: train a grid of models as a few compiled programs; one progress bar, then the
ranked table.

    jaxmlp sweep --dataset mnist --hidden 512,512 --grid learning_rate=1e-4,3e-4,1e-3,3e-3 --grid seed=0:8 \\
        --epochs 10 --val-fraction 0.1 --out-dir runs/lr-sweep
    jaxmlp sweep --resume runs/lr-sweep            # after a kill: continues bit-identically
    jaxmlp export runs/lr-sweep/best               # the best model, like any run directory

The run directory (jaxmlp/sweeps/sweepdir.py): sweep.json, results.jsonl, summary.md, summary.json,
sweep.png, checkpoints/ and best/; it is claimed for the sweep's life (jaxmlp/rundir.py). A bad
grid, config or data set, or models that do not fit the device: one line on stderr, exit 2.
Every model diverged, or a file system error or out of memory: exit 1; Ctrl-C: 130.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from jaxmlp.cli.flags import add_config_flags, given_fields, int_at_least, load_config_file, value_parser, width
from jaxmlp.cli.grid_flags import GRID_HELP, MAX_MODELS, check_grid_size, load_grid_file, parse_grid
from jaxmlp.cli.hosts import add_host_arguments, host_settings, join
from jaxmlp.cli.interrupts import InterruptGuard
from jaxmlp.cli.outcome import ended, os_error, say_when_peer_lost
from jaxmlp.cli.run_config import dtype_scope
from jaxmlp.cli.sweep_progress import SweepConsole
from jaxmlp.cli.train_cmd import claim_dir, load_data, plan_for
from jaxmlp.cli.usage import PROG, UsageError, fail
from jaxmlp.config import TrainConfig

COMMAND = f"{PROG} sweep"
RESUMABLE_FIELDS = ("data_dir", "download")  # a resumed sweep repeats everything else


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep's flags, then one flag per TrainConfig field (the settings every model shares)."""
    run = parser.add_argument_group("sweep")
    run.add_argument("--grid", action="append", default=[], metavar="FIELD=VALUES", help=GRID_HELP)
    run.add_argument("--grid-file", metavar="FILE", help="a JSON mapping of field -> values, or a list of overrides")
    run.add_argument("--models-per-program", type=value_parser(int), metavar="N",
                     help="models one compiled program holds at a time [as many as fit the device memory]")
    run.add_argument("--width", type=width, default="auto", metavar="N|auto|all",
                     help="models vmapped together in a program, the others running one after another inside it "
                     "[auto: 1 on CPU, each model then bit-identical to its solo run; all on accelerators]")
    run.add_argument("--config", metavar="FILE", help="a .json or .toml file of the shared fields")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the sweep in RUN_DIR from its latest checkpoint")
    run.add_argument("--overwrite", action="store_true", help="start over in an out_dir that holds a previous sweep")
    run.add_argument("--quiet", action="store_true", help="print only the closing line (the best model and the run "
                     "dir): no progress bar, epoch lines or table")
    run.add_argument("--max-models", type=int_at_least(1), metavar="N",
                     help=f"train a grid of up to N models; a larger one is refused with its count [{MAX_MODELS}]")
    run.add_argument("--top", type=int_at_least(0), default=20, metavar="N", help="rows of the printed table [20]")
    run.add_argument("--no-plots", dest="plots", action="store_false", help="skip sweep.png")
    add_host_arguments(parser)
    add_config_flags(parser)


def cmd_sweep(ns: argparse.Namespace) -> int:
    hosts = host_settings(ns, "sweep")
    config, grid, run_dir, settings = sweep_setup(ns, (hosts[2], hosts[1]) if hosts else (0, 1))
    if (code := join(ns, hosts, "sweep")) is not None:  # every process has checked the run dir by now
        return code
    with dtype_scope(config.dtype):
        return _sweep(ns, config, grid, run_dir, settings)


def sweep_setup(ns: argparse.Namespace, process: tuple[int, int] = (0, 1)):
    """(config, grid, run dir or None for a fresh runs/sweep-<dataset>-<time>, settings) from the
    flags, or from the sweep being resumed; `process` (process_id, num_processes) of a multi-host
    sweep, which needs an --out-dir. Reads only."""
    from jaxmlp.rundir import RunDirError, check_new_run_dir
    from jaxmlp.runfiles import KIND_FILES, check_own_files
    from jaxmlp.sweeps.sweepdir import read_sweep_json

    given = given_fields(ns)
    try:
        if ns.resume:
            extra = [flag for flag, on in (("--config", ns.config), ("--overwrite", ns.overwrite), ("--grid", ns.grid),
                                           ("--grid-file", ns.grid_file),
                                           ("--models-per-program", ns.models_per_program is not None),
                                           ("--max-models", ns.max_models is not None)) if on]
            fixed = [f"--{name.replace('_', '-')}" for name in sorted(set(given) - set(RESUMABLE_FIELDS))]
            if extra or fixed:
                raise UsageError(f"{COMMAND}: error: {(extra + fixed)[0]} cannot change when resuming a sweep "
                                 "(allowed: --data-dir, --download)")
            check_own_files(Path(ns.resume), KIND_FILES["sweep"])  # before anything in it is read
            saved = read_sweep_json(Path(ns.resume))
            config = TrainConfig.from_dict({**saved["config"], **given})
            return config, saved["grid"], Path(ns.resume), saved["settings"]
        if ns.grid and ns.grid_file:
            raise UsageError(f"{COMMAND}: error: give --grid or --grid-file, not both")
        grid = load_grid_file(ns.grid_file, COMMAND) if ns.grid_file else parse_grid(ns.grid, COMMAND)
        if not grid:
            raise UsageError(f"{COMMAND}: error: empty grid: give --grid FIELD=VALUES (repeatable) or --grid-file FILE")
        check_grid_size(grid, ns.max_models, COMMAND)
        config = TrainConfig.from_dict({**(load_config_file(ns.config) if ns.config else {}), **given})
        if process[1] > 1 and not config.out_dir:
            raise UsageError(f"{COMMAND}: error: a multi-host sweep needs --out-dir, a directory every process sees "
                             "(orbax writes the checkpoints there together)")
        run_dir = Path(config.out_dir) if config.out_dir else None
        if run_dir is not None and not (ns.overwrite and process[0] > 0):  # only process 0 removes an old sweep
            check_new_run_dir(run_dir, config, overwrite=ns.overwrite, kind="sweep")
        return config, grid, run_dir, {"models_per_program": ns.models_per_program, "width": ns.width}
    except (ValueError, RunDirError) as exc:  # config validation, the run directory
        raise UsageError(f"{COMMAND}: error: {exc}") from None
    except OSError as exc:  # a path the system refuses (too long, ...)
        raise UsageError(f"{COMMAND}: error: {os_error(exc)}") from None


def _sweep(ns: argparse.Namespace, config: TrainConfig, grid, run_dir: Path | None, settings: dict) -> int:
    from jaxmlp import distributed
    from jaxmlp.sweeps.plan import make_plan

    primary = distributed.is_primary()  # process 0 writes the run's files and prints; every process trains
    if ns.resume and _finished(config, run_dir):
        if primary:
            print(f"nothing to resume: {run_dir} has finished its sweep, its summaries and best/ written; "
                  "no file was changed")
        return 0
    splits, stats = load_data(config, ns.quiet or not primary, command="sweep")
    plan_for(dataclasses.replace(config, devices=1), splits, command="sweep", local=True)  # one model's checks
    data = (splits.train, splits.val, splits.test)
    options = dict(models_per_program=settings["models_per_program"], width=settings["width"])
    try:
        plan = None if ns.resume else make_plan(config, grid, *data, **options)  # all checked before any write
    except ValueError as exc:  # the grid, a model against the data, the device memory
        raise UsageError(f"{COMMAND}: error: {exc}") from None
    claim, code = claim_dir(ns, config, run_dir, command="sweep") if primary else None, 2
    run_dir = claim.path if claim is not None else run_dir
    try:
        code = _run(ns, dataclasses.replace(config, out_dir=str(run_dir)), grid, run_dir, plan, splits, stats,
                    options, primary=primary)
        return code
    finally:
        if claim is not None:
            claim.release(undo=code == 2)  # bad input changes no file: not even the claim's own


def _finished(config: TrainConfig, run_dir: Path) -> bool:
    """True when the checkpoint says every chunk is done and the finish wrote its files (the summary,
    and best/ unless every model diverged): a resume would only write them again. UsageError when
    sweep.json does not describe the sweep its checkpoint holds."""
    from jaxmlp import checkpoint, rundir
    from jaxmlp.sweeps import store
    from jaxmlp.sweeps.sweepdir import read_sweep_json

    if not rundir.has_checkpoint(run_dir):  # (a Checkpointer would make the missing directory)
        return False
    ckpt = checkpoint.checkpointer_for(run_dir, config)
    try:
        layout = store.finished_layout(ckpt)
        chunks = read_sweep_json(run_dir).get("chunks")
        if layout is not None and (not isinstance(chunks, list) or layout != [
                [c.get("group"), c.get("models"), c.get("size")] for c in chunks if isinstance(c, dict)]):
            raise rundir.RunDirError(f"{run_dir / 'sweep.json'} does not describe the sweep its checkpoint holds "
                                     "(its models or chunks differ); it cannot be resumed")
    except ValueError as exc:  # RunDirError: a damaged checkpoint or sweep.json
        raise UsageError(f"{COMMAND}: error: {exc}") from None
    finally:
        ckpt.close()
    return (layout is not None and (run_dir / rundir.SUMMARY_FILE).is_file()
            and rundir.has_checkpoint(run_dir / rundir.BEST_DIR))


def _run(ns: argparse.Namespace, config: TrainConfig, grid, run_dir: Path, plan, splits, stats, options, *,
         primary: bool) -> int:
    """The sweep in its claimed directory, then its files (process 0's); every way it can end, in
    one line."""
    from jaxmlp import checkpoint
    from jaxmlp.sweeps import sweep, sweepdir

    console, ckpt = SweepConsole(quiet=ns.quiet), None
    say_when_peer_lost(run_dir, "sweep")
    try:
        with InterruptGuard() as guard:  # a Ctrl-C that lands in a GC callback still ends the sweep
            if plan is not None and primary:
                sweepdir.write_sweep_json(run_dir, config, grid, plan, {**options})
            ckpt = checkpoint.checkpointer_for(run_dir, config, cleanup_tmp=True)  # every process: orbax saves together
            writers = [sweepdir.ResultsLog(run_dir / sweepdir.RESULTS_FILE), console] if primary else []
            result = sweep(config, grid, splits.train, splits.val, splits.test, callbacks=[*writers, guard],
                           checkpointer=ckpt, resume=bool(ns.resume), **options)
        if not primary:
            return 0 if result.best is not None else 1  # process 0 says why
        return _finish(ns, run_dir, result, grid, config, splits.train, stats)
    except BaseException as exc:
        console.close()
        return ended(exc, run_dir, ckpt, command="sweep")
    finally:
        if ckpt is not None:
            ckpt.close()


def _finish(ns: argparse.Namespace, run_dir: Path, result, grid, config: TrainConfig, train, stats) -> int:
    """summary.md, summary.json, sweep.png, best/, (unless quiet) the ranked table, and the closing
    line: the best model and the run dir (--quiet too)."""
    from jaxmlp.sweeps import sweepdir
    from jaxmlp.sweeps.grid import format_overrides

    sweepdir.write_summary(run_dir, result, grid, config)
    written = [sweepdir.SWEEP_FILE, sweepdir.RESULTS_FILE, sweepdir.SUMMARY_FILE, sweepdir.SUMMARY_JSON, "checkpoints/"]
    if ns.plots:
        from jaxmlp.sweeps.plots import plot_sweep

        plot_sweep(result, run_dir / sweepdir.PLOT_FILE)
        written.append(sweepdir.PLOT_FILE)
    if result.best is not None:
        sweepdir.write_best(run_dir / sweepdir.BEST_DIR, result, train, stats)
        written.append(sweepdir.BEST_DIR + "/")
    if not ns.quiet:
        print(result.format_table(limit=ns.top))
        if len(result.models) > ns.top:
            print(f"({len(result.models) - ns.top} more rows in {run_dir / sweepdir.SUMMARY_FILE})")
    best = "every model diverged" if result.best is None else \
        f"best model {result.best.index} ({format_overrides(result.best.overrides)}, score {result.best.score:.4f})"
    print(f"done: {len(result.models)} models in {result.train_seconds:.2f}s (+{result.compile_seconds:.2f}s "
          f"compile), {best} | run dir: {run_dir} ({', '.join(written)})", flush=True)
    if result.best is None:
        return fail(f"{COMMAND}: error: every model diverged; lower the learning rates or clip gradients", 1)
    return 0
