"""`jaxmlp train`: its flags, then data, fit, the run directory's files and the closing summary.

It prints the model summary (summary.py) first, unless --quiet. The run directory gets
config.json, preprocessing.json (run_preprocessing.py), metrics.jsonl, checkpoints/,
summary.json and (unless --no-plots) loss_curve.png and, for 2-D classification,
decision_boundary.png, and with --track-gradients gradient_stats.png. Only process 0 of a
multi-host run writes files and prints. A diverged run, or a failed gradient audit with
--audit-strict, exits with code 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path

from jaxmlp.cli.flags import add_config_flags, value_parser
from jaxmlp.cli.hosts import add_host_arguments, host_settings, join
from jaxmlp.cli.interrupts import InterruptGuard
from jaxmlp.cli.outcome import ended, nothing_to_resume, os_error, say_when_peer_lost
from jaxmlp.cli.progress import ConsoleProgress, DownloadProgress, RunLog
from jaxmlp.cli.run_config import dtype_scope, train_config
from jaxmlp.cli.usage import PROG, UsageError
from jaxmlp.config import RESUMABLE, TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run and multi-host flags, then one flag per TrainConfig field."""
    run = parser.add_argument_group("run")
    run.add_argument("--config", metavar="FILE", help="a .json (e.g. a run's config.json) or .toml file of fields")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint "
                     "(flags may change: " + ", ".join(sorted(RESUMABLE)) + ")")
    run.add_argument("--overwrite", action="store_true", help="start over in an out_dir that holds a previous run")
    run.add_argument("--quiet", action="store_true", help="print only the closing lines (the result and the run "
                     "dir): no model summary, progress bar or epoch lines")
    run.add_argument("--log-every", type=value_parser(int), default=0, metavar="N",
                     help="print the epoch line every N epochs (and the first and last) [0 = every tenth of "
                     "the epochs or every 30 s, whichever comes first]")
    run.add_argument("--no-plots", dest="plots", action="store_false", help="skip loss_curve.png / decision_boundary.png")
    cache = run.add_mutually_exclusive_group()
    cache.add_argument("--compile-cache", metavar="DIR", help="keep compiled programs in DIR, so the next run of the "
                       "same programs skips compiling [$JAXMLP_CACHE_DIR, else JAX's own setting, else "
                       "$XDG_CACHE_HOME/jaxmlp/xla or ~/.cache/jaxmlp/xla]")
    cache.add_argument("--no-compile-cache", dest="compile_cache", action="store_const", const="off",
                       help="compile everything afresh and cache nothing (also: JAXMLP_CACHE_DIR=off)")
    add_host_arguments(parser)
    add_config_flags(parser)


def cmd_train(ns: argparse.Namespace) -> int:
    from jaxmlp import compile_cache

    if ns.log_every < 0:
        raise UsageError(f"{PROG} train: error: --log-every must be >= 0 (0 = every tenth of the epochs or 30 s), "
                         f"got {ns.log_every}")
    hosts = host_settings(ns, "train")
    try:
        cache = compile_cache.configure(ns.compile_cache)
    except ValueError as exc:
        raise UsageError(f"{PROG} train: error: {exc}") from None
    config, run_dir, resumed = train_config(ns, (hosts[2], hosts[1]) if hosts else (0, 1))
    if cache is not None and run_dir is not None and Path(os.path.abspath(run_dir)) in (
            Path(os.path.abspath(cache)), *Path(os.path.abspath(cache)).parents):
        raise UsageError(f"{PROG} train: error: the compile cache {cache} is inside the run directory {run_dir}: "
                         "keep it elsewhere (--compile-cache DIR)")
    # before anything touches a backend; returns once every process has joined, so every process
    # has checked the run dir before process 0 writes to it
    if (code := join(ns, hosts, "train")) is not None:
        return code
    with dtype_scope(config.dtype):
        return _train(ns, config, run_dir, resumed)


def load_data(config: TrainConfig, quiet: bool, command: str = "train"):
    """(the config's data splits, the FeatureStats they were standardized with or None); errors
    as one line of `jaxmlp COMMAND`."""
    from jaxmlp.data import DataError, load_dataset
    from jaxmlp.run_preprocessing import fit_preprocessing

    try:
        splits = load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                              seed=config.data_seed, val_fraction=config.val_fraction,
                              n_samples=config.n_samples, label_column=config.label_column, task=config.task,
                              download_timeout=config.download_timeout,
                              download_progress=None if quiet else DownloadProgress())
        return fit_preprocessing(splits, config.standardize)
    except (DataError, ValueError) as exc:
        raise data_error(command, exc) from None


def plan_for(config: TrainConfig, splits, command: str = "train", resumed: TrainConfig | None = None,
             local: bool = False):
    """The run's Plan (training.plan_run: every pre-flight check, before anything is written;
    local: one model on one device of this process, as a sweep's); errors as one line of
    `jaxmlp COMMAND`."""
    from jaxmlp.training.plan import plan_run

    try:
        return plan_run(config, splits.train, splits.val, splits.test, resumed=resumed, local=local)
    except ValueError as exc:
        raise data_error(command, exc) from None


def data_error(command: str, exc: Exception) -> UsageError:
    """The one line of a data set or plan that does not fit; the data layer names its keywords as
    Python spells them."""
    message = re.sub(r"task='(\w+)'", r"--task \1", str(exc))
    return UsageError(f"{PROG} {command}: error: {message}")


def _train(ns: argparse.Namespace, config: TrainConfig, run_dir: Path | None,
           resumed: tuple[TrainConfig, dict] | None) -> int:
    """Train `config` into `run_dir`; resumed: (config, meta) of the checkpoint --resume continues."""
    from jaxmlp import distributed, summary

    splits, stats = load_data(config, ns.quiet)
    plan = plan_for(config, splits, resumed=resumed and resumed[0])
    if resumed and (done := nothing_to_resume(plan.config, run_dir, resumed[1])):
        print(done)
        return 0
    claim = None
    if distributed.is_primary():  # only process 0 writes files and prints
        claim = claim_dir(ns, plan.config, run_dir)
        run_dir = claim.path
        plan = plan._replace(config=dataclasses.replace(plan.config, out_dir=str(claim.path)))
        if not ns.quiet:
            print(summary.training_summary(plan, splits), flush=True)
    code = 2
    try:
        code = _fit_and_finish(ns, plan, run_dir, splits, stats, primary=claim is not None)
        return code
    finally:
        if claim is not None:
            claim.release(undo=code == 2)  # bad input changes no file: not even the claim's own


def claim_dir(ns: argparse.Namespace, config: TrainConfig, run_dir: Path | None, command: str = "train"):
    """Claim the run directory of `jaxmlp COMMAND` (train or sweep: the kind of run it holds; a
    fresh runs/<name>-<time> when none was named, <name> the data set, prefixed by a command
    other than train). Errors as one line."""
    from jaxmlp import rundir

    try:
        if run_dir is None:
            name = config.dataset if command == "train" else f"{command}-{config.dataset}"
            return rundir.claim_new_run_dir(name, kind=command)
        return rundir.claim_run_dir(run_dir, config, overwrite=ns.overwrite, resume=bool(ns.resume), kind=command)
    except rundir.RunDirError as exc:
        raise UsageError(f"{PROG} {command}: error: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{PROG} {command}: error: {os_error(exc, run_dir)}") from None


def _fit_and_finish(ns: argparse.Namespace, plan, run_dir: Path, splits, stats, *, primary: bool) -> int:
    """Train `plan` (training.plan_run's), then write summary.json and the plots; every way it
    can end, in one line."""
    from jaxmlp import checkpoint
    from jaxmlp.training.fit import fit

    config = plan.config

    console = ConsoleProgress(quiet=ns.quiet or not primary, log_every=ns.log_every)
    say_when_peer_lost(run_dir, "train")
    ckpt = None
    try:
        with InterruptGuard() as guard:  # a Ctrl-C that lands in a GC callback still ends the run
            ckpt = checkpoint.checkpointer_for(run_dir, config, cleanup_tmp=True)  # every process: orbax saves together
            callbacks = [RunLog(run_dir, stats), console] if primary else []  # RunLog: config.json once fit restored
            params, history = fit(plan, splits.train, splits.val, splits.test, callbacks=[*callbacks, guard],
                                  checkpointer=ckpt, resume=bool(ns.resume))
        if primary:
            _finish(ns, run_dir, history, params, config, splits.train)
        return 0
    except BaseException as exc:
        console.close()
        return ended(exc, run_dir, ckpt)
    finally:
        if ckpt is not None:
            ckpt.close()


def _finish(ns: argparse.Namespace, run_dir: Path, history, params, config: TrainConfig, data) -> None:
    """summary.json, the plots, and the closing lines (--quiet too: a script learns the result
    and where it is)."""
    from jaxmlp import atomic, checkpoint

    written = [checkpoint.CONFIG_FILE, checkpoint.PREPROCESSING_FILE, checkpoint.METRICS_FILE,
               checkpoint.CHECKPOINT_DIR + "/", checkpoint.SUMMARY_FILE]
    if (run_dir / checkpoint.STEP_CHECKPOINT_DIR).is_dir():  # mid-epoch checkpoints (checkpoint_every_steps)
        written.insert(4, checkpoint.STEP_CHECKPOINT_DIR + "/")
    summary = {"run_dir": str(run_dir), "epochs": len(history.epoch), "best_epoch": history.best_epoch,
               "stopped_early": history.stopped_early, "kept_epoch": history.kept_epoch,
               "kept": "best" if history.restored_best else "last",
               "compile_seconds": history.compile_seconds, "eval_compile_seconds": history.eval_compile_seconds,
               "train_seconds": sum(history.seconds), "final": history.final}
    atomic.write_json(run_dir / checkpoint.SUMMARY_FILE, summary)
    if ns.plots:
        written += _plots(run_dir, history, params, config, data)
    final = " | ".join(f"{split} " + " ".join(f"{k} {v:.4f}" for k, v in m.items())
                       for split, m in history.final.items())
    compile_seconds = history.compile_seconds + history.eval_compile_seconds
    of, stop = (f" of {config.epochs}", ", stopped early (no val-loss improvement in "
                f"{config.patience} epochs)") if history.stopped_early else ("", "")
    print(f"done: {len(history.epoch)}{of} epochs in {sum(history.seconds):.2f}s (+{compile_seconds:.2f}s compile)"
          f"{stop}; params of epoch {history.kept_epoch} "
          f"({'best val loss' if history.restored_best else 'the last'}) | {final}")
    print(f"run dir: {run_dir} ({', '.join(written)})", flush=True)


def _plots(run_dir: Path, history, params, config: TrainConfig, data) -> list[str]:
    from jaxmlp import plots
    from jaxmlp.training.predict import predict

    plots.plot_loss_curve(history, run_dir / "loss_curve.png", test_epoch=history.kept_epoch)  # the evaluated params
    written = ["loss_curve.png"]
    if data.num_features == 2 and data.num_classes is not None:
        opts = config.activation_options()
        labels = tuple(f"feature {i}" + (" (standardized)" if config.standardize else "") for i in range(2))
        plots.plot_decision_boundary(lambda g: predict(params, g, activation=config.activation, **opts),
                                     data.x, data.y, run_dir / "decision_boundary.png", axis_labels=labels)
        written.append("decision_boundary.png")
    if config.track_gradients or config.adaptive_batch:
        plots.plot_gradient_stats(history, run_dir / "gradient_stats.png")
        written.append("gradient_stats.png")
    return written
