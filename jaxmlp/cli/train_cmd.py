"""`jaxmlp train`: its flags, then data, fit, the run directory's files and the closing summary.

The run directory gets config.json, metrics.jsonl, checkpoints/, summary.json and (unless
--no-plots) loss_curve.png and, for 2-D classification, decision_boundary.png. Only process 0
of a multi-host run writes files and prints. A diverged run exits with code 1.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmlp.cli.flags import add_config_flags, value_parser
from jaxmlp.cli.progress import ConsoleProgress, RunLog
from jaxmlp.cli.run_config import dtype_scope, train_config
from jaxmlp.cli.usage import PROG, UsageError, fail
from jaxmlp.config import DISTRIBUTED_TIMEOUT, RESUMABLE, TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run and multi-host flags, then one flag per TrainConfig field."""
    run = parser.add_argument_group("run")
    run.add_argument("--config", metavar="FILE", help="a .json (e.g. a run's config.json) or .toml file of fields")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint "
                     "(flags may change: " + ", ".join(sorted(RESUMABLE)) + ")")
    run.add_argument("--overwrite", action="store_true", help="start over in an out_dir that holds a previous run")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no summary lines")
    run.add_argument("--log-every", type=value_parser(int), default=0, metavar="N",
                     help="print the epoch summary line every N epochs (and the first and last) [0 = about 20 lines]")
    run.add_argument("--no-plots", dest="plots", action="store_false", help="skip loss_curve.png / decision_boundary.png")
    hosts = parser.add_argument_group("multi-host (jax.distributed; every process runs the same command with its "
                                     "own --process-id, --devices all and an --out-dir all of them see; "
                                     "or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, which listens on PORT")
    hosts.add_argument("--num-processes", type=value_parser(int), metavar="N", help="number of processes")
    hosts.add_argument("--process-id", type=value_parser(int), metavar="I", help="this process, 0 .. N-1")
    hosts.add_argument("--distributed-timeout", type=value_parser(float), default=DISTRIBUTED_TIMEOUT,
                       metavar="SECONDS", help="fail when a peer has not joined (or stops answering) within "
                       f"SECONDS [{DISTRIBUTED_TIMEOUT:g}]")
    add_config_flags(parser)


def cmd_train(ns: argparse.Namespace) -> int:
    from jaxmlp import parallel

    try:
        hosts = parallel.distributed_settings(ns.coordinator, ns.num_processes, ns.process_id)
    except ValueError as exc:
        raise UsageError(f"{PROG} train: error: {exc}") from None
    config, run_dir = train_config(ns, (hosts[2], hosts[1]) if hosts else (0, 1))
    if hosts is not None:  # before anything touches a backend; returns once every process has joined,
        try:               # so every process has checked the run dir before process 0 writes to it
            parallel.initialize(*hosts, timeout=ns.distributed_timeout)
        except parallel.DistributedError as exc:
            return fail(f"{PROG} train: error: {exc}", 1)
    with dtype_scope(config.dtype):
        return _train(ns, config, run_dir)


def _load_data(config: TrainConfig, command: str = "train"):
    """The config's data splits, checked against the config before anything is written."""
    from jaxmlp import training
    from jaxmlp.data import DataError, load_dataset

    try:
        splits = load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                              seed=config.data_seed, val_fraction=config.val_fraction,
                              standardize=config.standardize, n_samples=config.n_samples,
                              label_column=config.label_column)
        training.check_data(config, splits.train, splits.val, splits.test)
    except (DataError, ValueError) as exc:
        raise UsageError(f"{PROG} {command}: error: {exc}") from None
    return splits


def _train(ns: argparse.Namespace, config: TrainConfig, run_dir: Path) -> int:
    from jaxmlp import checkpoint, parallel, training

    splits = _load_data(config)
    primary = parallel.is_primary()  # only process 0 writes files and prints
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_config(run_dir, config)
    ckpt = checkpoint.checkpointer_for(run_dir, config, cleanup_tmp=True)  # every process: orbax saves together
    console = ConsoleProgress(quiet=ns.quiet or not primary, log_every=ns.log_every)
    callbacks = [RunLog(run_dir / checkpoint.METRICS_FILE), console] if primary else []
    try:
        params, history = training.fit(config, splits.train, splits.val, splits.test, callbacks=callbacks,
                                    checkpointer=ckpt, resume=bool(ns.resume))
    except training.TrainingDiverged as exc:
        console.close()
        last = ckpt.latest_epoch()
        kept = f"last good checkpoint: epoch {last} in {run_dir}" if last is not None else "no checkpoint was saved"
        return fail(f"{PROG} train: error: {exc} ({kept})", 1)
    except ValueError as exc:
        console.close()
        raise UsageError(f"{PROG} train: error: {exc}") from None
    finally:
        ckpt.close()
    if primary:
        _finish(ns, run_dir, history, params, config, splits.train)
    return 0


def _finish(ns: argparse.Namespace, run_dir: Path, history, params, config: TrainConfig, data) -> None:
    """summary.json, the plots, and (unless quiet) the closing lines."""
    from jaxmlp import checkpoint

    written = [checkpoint.CONFIG_FILE, checkpoint.METRICS_FILE, checkpoint.CHECKPOINT_DIR + "/",
               checkpoint.SUMMARY_FILE]
    summary = {"run_dir": str(run_dir), "epochs": len(history.epoch), "best_epoch": history.best_epoch,
               "stopped_early": history.stopped_early, "compile_seconds": history.compile_seconds,
               "train_seconds": sum(history.seconds), "final": history.final}
    checkpoint.write_json(run_dir / checkpoint.SUMMARY_FILE, summary)
    if ns.plots:
        written += _plots(run_dir, history, params, config, data)
    if not ns.quiet:
        final = " | ".join(f"{split} " + " ".join(f"{k} {v:.4f}" for k, v in m.items())
                           for split, m in history.final.items())
        print(f"done: {len(history.epoch)} epochs in {sum(history.seconds):.2f}s "
              f"(+{history.compile_seconds:.2f}s compile) | {final}")
        print(f"run dir: {run_dir} ({', '.join(written)})")


def _plots(run_dir: Path, history, params, config: TrainConfig, data) -> list[str]:
    from jaxmlp import plots, training

    plots.plot_loss_curve(history, run_dir / "loss_curve.png")
    written = ["loss_curve.png"]
    if data.num_features == 2 and data.num_classes is not None:
        opts = config.activation_options()
        plots.plot_decision_boundary(lambda g: training.predict(params, g, activation=config.activation, **opts),
                                     data.x, data.y, run_dir / "decision_boundary.png")
        written.append("decision_boundary.png")
    return written
