"""The `jaxmlp` command line: `train`, `export`, and `gradcheck` / `demo` (forwarded).

    jaxmlp train                                   # relu net on the spiral, ~95%+ in seconds
    jaxmlp train --dataset mnist --hidden 512,512 --optimizer adamw --epochs 20
    jaxmlp train --config run.toml --learning-rate 3e-4   # flags override the file
    jaxmlp train --resume runs/spiral-20250101-120000 --epochs 200
    jaxmlp train --devices all --batch-size 1024 --precision bf16          # data parallel, every device
    jaxmlp train --devices all --out-dir runs/x --coordinator host0:1234 --num-processes 2 --process-id 0
    jaxmlp export runs/spiral-20250101-120000 --npz model.npz
    jaxmlp gradcheck ...                           # handled by jaxmlp.gradcheck.main
    jaxmlp demo ...                                # handled by jaxmlp.demos.main

Every `TrainConfig` field is a flag (`--batch-size 64`, `--hidden 512,512`, `--no-standardize`,
`--clip-norm none`), generated from the dataclass so flags and config never drift; its help is
the field's comment. Usage errors, bad configs and bad data end in ONE line on stderr and exit
code 2; a diverged run exits with code 1.

To add a subcommand, add an entry to `FORWARDED` (a module with `main(argv) -> int`, imported only
when used) or a parser in `build_parser` plus a `cmd_*` function in `COMMANDS`.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import re
import sys
import time
import typing
from pathlib import Path
from typing import Any, Sequence

from jaxmlp.config import FIELD_HELP, FIELD_NAMES, TrainConfig

PROG = "jaxmlp"
# Subcommands whose arguments are parsed by another module's main(argv) -> int.
FORWARDED = {"gradcheck": ("jaxmlp.gradcheck", "check manual gradients against jax.grad and finite differences"),
             "demo": ("jaxmlp.demos", "run a teaching demo (figures + JSON numbers)")}
# Fields a resumed run may change: they steer the loop, not the numbers it computes (devices,
# data_feed: only their summation order).
RESUMABLE = frozenset({"epochs", "eval_every", "eval_train", "track_activations", "eval_batch_size", "checkpoint_every", "keep_checkpoints",
                       "patience", "min_delta", "data_dir", "download", "devices", "data_feed"})
DISTRIBUTED_TIMEOUT = 120.0  # seconds; parallel.DEFAULT_TIMEOUT (not imported: the CLI imports JAX lazily)


class UsageError(Exception):
    """A one-line error for the user: printed to stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


# --- TrainConfig fields -> flags ---------------------------------------------------------------
def _named(fn, name: str):
    fn.__name__ = name  # argparse says "invalid <name> value: 'x'"
    return fn


def _parser_for(tp: Any):
    """A string parser for a field annotation (X, X | None, tuple[int, ...])."""
    args = typing.get_args(tp)
    if type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        parse = _parser_for(inner)
        return _named(lambda s: None if s.lower() in ("none", "null") else parse(s), f"{parse.__name__}-or-none")
    if typing.get_origin(tp) is tuple:
        return _named(lambda s: tuple(int(v) for v in s.replace(" ", "").split(",") if v), "comma-separated int list")
    if tp is int:
        return _named(lambda s: int(s), "int")
    if tp is float:
        return _named(lambda s: float(s), "float")
    return _named(lambda s: s, "str")


_devices_arg = _named(lambda s: 0 if s.strip().lower() == "all" else int(s), "int-or-all")  # --devices N|all


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig field; unset flags stay out of the namespace (SUPPRESS)."""
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("config (TrainConfig fields; defaults in brackets)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{FIELD_HELP.get(f.name, '')} [{shown}]".replace("%", "%%")
        if hints[f.name] is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            parse = _devices_arg if f.name == "devices" else _parser_for(hints[f.name])
            group.add_argument(flag, dest=f.name, type=parse, default=argparse.SUPPRESS,
                               metavar=f.name.upper(), help=help_text)


def _normalize_flags(argv: Sequence[str]) -> list[str]:
    """Accept --batch_size as well as --batch-size for config fields."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg:
            name, eq, value = arg[2:].partition("=")
            bare = name[3:] if name.startswith("no_") else name
            if bare in FIELD_NAMES:
                arg = "--" + name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def load_config_file(path: str) -> dict[str, Any]:
    """Field values from a .json or .toml file (a flat table of TrainConfig fields)."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10: the same parser, from its backport
                import tomli as tomllib
            with open(p, "rb") as f:
                data = tomllib.load(f)
        else:
            data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path}: file not found") from None
    except (OSError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise UsageError(f"--config {path}: cannot parse ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a table of config fields")
    return data


# --- the parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Multi-layer perceptrons on JAX: train, export, check gradients, run demos.",
                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    train = sub.add_parser("train", help="train an MLP (no arguments: a relu net on the spiral)", allow_abbrev=False,
                           description="Train an MLP. Every TrainConfig field is a flag; flags override --config.")
    run = train.add_argument_group("run")
    run.add_argument("--config", metavar="FILE", help="a .json (e.g. a run's config.json) or .toml file of fields")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint "
                     "(flags may change: " + ", ".join(sorted(RESUMABLE)) + ")")
    run.add_argument("--overwrite", action="store_true", help="start over in an out_dir that holds a previous run")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no summary lines")
    run.add_argument("--log-every", type=_parser_for(int), default=0, metavar="N",
                     help="print the epoch summary line every N epochs (and the first and last) [0 = about 20 lines]")
    run.add_argument("--no-plots", dest="plots", action="store_false", help="skip loss_curve.png / decision_boundary.png")
    hosts = train.add_argument_group("multi-host (jax.distributed; every process runs the same command with its "
                                     "own --process-id, --devices all and an --out-dir all of them see; "
                                     "or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, which listens on PORT")
    hosts.add_argument("--num-processes", type=_parser_for(int), metavar="N", help="number of processes")
    hosts.add_argument("--process-id", type=_parser_for(int), metavar="I", help="this process, 0 .. N-1")
    hosts.add_argument("--distributed-timeout", type=_parser_for(float), default=DISTRIBUTED_TIMEOUT,
                       metavar="SECONDS", help="fail when a peer has not joined (or stops answering) within "
                       f"SECONDS [{DISTRIBUTED_TIMEOUT:g}]")
    add_config_flags(train)

    export = sub.add_parser("export", help="write a run's params to a plain .npz", allow_abbrev=False)
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--npz", metavar="FILE", help="output file [RUN_DIR/params.npz]")
    export.add_argument("--epoch", type=_parser_for(int), help="checkpoint epoch [latest]")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--best", dest="best", action="store_const", const=True, default=None,
                       help="the best-val-loss params (runs with restore_best)")
    which.add_argument("--last", dest="best", action="store_const", const=False, help="the last params")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    for name, (_, help_text) in FORWARDED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:
        name = FORWARDED[argv[0]][0]
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            return _fail(f"{PROG}: error: '{argv[0]}' is not available in this installation ({name} is missing)", 2)
        return int(module.main(argv[1:]) or 0)
    try:
        parser = build_parser()
        try:
            ns = parser.parse_args(_normalize_flags(argv))
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        if ns.command is None:
            parser.print_help(sys.stderr)
            return 2
        return COMMANDS[ns.command](ns)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail(f"{PROG}: interrupted; the last checkpoint is kept (continue with --resume RUN_DIR)", 130)


def _fail(message: str, code: int) -> int:
    print(_one_line(message), file=sys.stderr)
    return code


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


# --- train -----------------------------------------------------------------------------------
def _given_fields(ns: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(ns, name) for name in FIELD_NAMES if hasattr(ns, name)}


def default_run_dir(dataset: str, root: Path | None = None) -> Path:
    """runs/<dataset>-<timestamp> under the current directory (a suffix if that exists)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset.partition(":")[2]).stem if ":" in dataset else dataset)
    base = (root or Path.cwd()) / "runs" / f"{tag.strip('-') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def _train_config(ns: argparse.Namespace, process: tuple[int, int] = (0, 1)) -> tuple[TrainConfig, Path]:
    """(config, run dir); `process` (process_id, num_processes) of a multi-host run."""
    from jaxmlp.checkpoint import check_run_dir, read_config

    given = _given_fields(ns)
    try:
        if ns.resume:
            if ns.config or ns.overwrite:
                raise UsageError(f"{PROG} train: error: --resume cannot be combined with "
                                 f"{'--config' if ns.config else '--overwrite'}")
            fixed = sorted(set(given) - RESUMABLE)
            if fixed:
                raise UsageError(f"{PROG} train: error: --{fixed[0].replace('_', '-')} cannot change when resuming "
                                 f"(allowed: {', '.join(sorted(RESUMABLE))})")
            run_dir = Path(ns.resume)
            config = TrainConfig.from_dict({**read_config(run_dir).to_dict(), **given, "out_dir": str(run_dir)})
            return config, run_dir
        base = load_config_file(ns.config) if ns.config else {}
        config = TrainConfig.from_dict({**base, **given})
        if process[1] > 1 and not config.out_dir:
            raise UsageError(f"{PROG} train: error: a multi-host run needs --out-dir, a directory every process "
                             "sees (orbax writes the checkpoints there together)")
        run_dir = Path(config.out_dir) if config.out_dir else default_run_dir(config.dataset)
        if not (ns.overwrite and process[0] > 0):  # with --overwrite, only process 0 removes the old run
            check_run_dir(run_dir, overwrite=ns.overwrite)
        return dataclasses.replace(config, out_dir=str(run_dir)), run_dir
    except ValueError as exc:  # config validation, RunDirError
        raise UsageError(f"{PROG} train: error: {exc}") from None


def _precision(dtype: str):
    """float64 runs need 64-bit JAX: scoped to the command, so in-process callers keep their setting."""
    if dtype != "float64":
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)


def cmd_train(ns: argparse.Namespace) -> int:
    from jaxmlp import parallel

    try:
        hosts = parallel.distributed_settings(ns.coordinator, ns.num_processes, ns.process_id)
    except ValueError as exc:
        raise UsageError(f"{PROG} train: error: {exc}") from None
    config, run_dir = _train_config(ns, (hosts[2], hosts[1]) if hosts else (0, 1))
    if hosts is not None:  # before anything touches a backend; returns once every process has joined,
        try:               # so every process has checked the run dir before process 0 writes to it
            parallel.initialize(*hosts, timeout=ns.distributed_timeout)
        except parallel.DistributedError as exc:
            return _fail(f"{PROG} train: error: {exc}", 1)
    with _precision(config.dtype):
        return _train(ns, config, run_dir)


def _train(ns: argparse.Namespace, config: TrainConfig, run_dir: Path) -> int:
    from jaxmlp import checkpoint, parallel, train
    from jaxmlp.data import DataError, load_dataset

    try:
        splits = load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                              seed=config.data_seed, val_fraction=config.val_fraction,
                              standardize=config.standardize, n_samples=config.n_samples,
                              label_column=config.label_column)
        train.check_data(config, splits.train, splits.val, splits.test)
    except (DataError, ValueError) as exc:
        raise UsageError(f"{PROG} train: error: {exc}") from None

    primary = parallel.is_primary()  # only process 0 writes files and prints
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_config(run_dir, config)
    ckpt = checkpoint.checkpointer_for(run_dir, config, cleanup_tmp=True)  # every process: orbax saves together
    console = ConsoleProgress(quiet=ns.quiet or not primary, log_every=ns.log_every)
    callbacks = [RunLog(run_dir / checkpoint.METRICS_FILE), console] if primary else []
    try:
        params, history = train.fit(config, splits.train, splits.val, splits.test, callbacks=callbacks,
                                    checkpointer=ckpt, resume=bool(ns.resume))
    except train.TrainingDiverged as exc:
        console.close()
        last = ckpt.latest_epoch()
        kept = f"last good checkpoint: epoch {last} in {run_dir}" if last is not None else "no checkpoint was saved"
        return _fail(f"{PROG} train: error: {exc} ({kept})", 1)
    except ValueError as exc:
        console.close()
        raise UsageError(f"{PROG} train: error: {exc}") from None
    finally:
        ckpt.close()

    if not primary:
        return 0
    written = [checkpoint.CONFIG_FILE, checkpoint.METRICS_FILE, checkpoint.CHECKPOINT_DIR + "/",
               checkpoint.SUMMARY_FILE]
    summary = {"run_dir": str(run_dir), "epochs": len(history.epoch), "best_epoch": history.best_epoch,
               "stopped_early": history.stopped_early, "compile_seconds": history.compile_seconds,
               "train_seconds": sum(history.seconds), "final": history.final}
    checkpoint.write_json(run_dir / checkpoint.SUMMARY_FILE, summary)
    if ns.plots:
        written += _plots(run_dir, history, params, config, splits.train)
    if not ns.quiet:
        final = " | ".join(f"{split} " + " ".join(f"{k} {v:.4f}" for k, v in m.items())
                           for split, m in history.final.items())
        print(f"done: {len(history.epoch)} epochs in {sum(history.seconds):.2f}s "
              f"(+{history.compile_seconds:.2f}s compile) | {final}")
        print(f"run dir: {run_dir} ({', '.join(written)})")
    return 0


def _plots(run_dir: Path, history, params, config: TrainConfig, data) -> list[str]:
    from jaxmlp import plots, train

    plots.plot_loss_curve(history, run_dir / "loss_curve.png")
    written = ["loss_curve.png"]
    if data.num_features == 2 and data.num_classes is not None:
        opts = config.activation_options()
        plots.plot_decision_boundary(lambda g: train.predict(params, g, activation=config.activation, **opts),
                                     data.x, data.y, run_dir / "decision_boundary.png")
        written.append("decision_boundary.png")
    return written


def _devices_note(info: dict[str, Any]) -> str:
    devices, processes = info.get("devices", 1), info.get("processes", 1)
    fed = ", batches fed per process" if info.get("data_feed") == "per_process" else ""
    if devices == 1:
        return fed
    return f" on {devices} devices" + (f" of {processes} processes" if processes > 1 else "") + fed


class RunLog:
    """metrics.jsonl: rewritten from the restored history on resume, then one line per epoch.
    (A `jaxmlp.train.Callback` by duck typing, so importing the CLI does not import JAX.)"""

    def __init__(self, path: Path):
        from jaxmlp.checkpoint import MetricsLog

        self.log = MetricsLog(path)

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self.log.reset(info["history"].records())

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.log.append(record)

    def on_train_end(self, history) -> None:
        pass


class ConsoleProgress:
    """A tqdm bar over epochs (TTY only) and one summary line per epoch (unless quiet)."""

    def __init__(self, *, quiet: bool = False, log_every: int = 0, stream=None):
        self.quiet, self.log_every = quiet, log_every
        self.stream = stream or sys.stdout
        self.bar = None
        self.total = 0

    def on_train_begin(self, info: dict[str, Any]) -> None:
        config, self.total = info["config"], info["config"].epochs
        self.start = info["start_epoch"]
        self.every = self.log_every if self.log_every > 0 else max(1, self.total // 20)
        if not self.quiet:
            start = info["start_epoch"]
            what = f"resuming at epoch {start + 1}" if start else "training"
            self._line(f"{what}: {config.dataset} {info['n_train']} examples, sizes {info['sizes']}, "
                       f"{info['loss']}, {config.optimizer} lr {config.learning_rate:g}, "
                       f"{info['steps_per_epoch']} steps/epoch{_devices_note(info)} "
                       f"(compiled in {info['compile_seconds']:.2f}s)")
        if not self.quiet and sys.stderr.isatty() and info["start_epoch"] < self.total:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=info["start_epoch"], unit="epoch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{record['train_loss']:.4f}", samples_s=f"{record['samples_per_sec']:,.0f}",
                                 refresh=False)
            self.bar.update(1)
        epoch = record["epoch"]
        if self.quiet or not (epoch % self.every == 0 or epoch in (self.start + 1, self.total)):
            return
        width = len(str(self.total))
        parts = [f"epoch {record['epoch']:>{width}}/{self.total}", f"loss {record['train_loss']:.4f}"]
        for key, label in (("train_accuracy", "acc"), ("train_mse", "mse"), ("val_loss", "val_loss"),
                           ("val_accuracy", "val_acc"), ("val_mse", "val_mse")):
            if record.get(key) is not None:
                parts.append(f"{label} {record[key]:.4f}")
        if record.get("dead_fraction") is not None:
            parts.append("dead " + "/".join(f"{f:.2f}" for f in record["dead_fraction"]))
        if record.get("saturation_fraction") is not None:
            parts.append("saturated " + "/".join(f"{f:.2f}" for f in record["saturation_fraction"]))
        parts += [f"lr {record['lr']:.3g}", f"{record['seconds']:.3f}s", f"{record['samples_per_sec']:,.0f} samples/s"]
        self._line("  ".join(parts))

    def on_train_end(self, history) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)


# --- export ----------------------------------------------------------------------------------
def cmd_export(ns: argparse.Namespace) -> int:
    from jaxmlp import checkpoint

    out = Path(ns.npz) if ns.npz else Path(ns.run_dir) / "params.npz"
    if out.exists() and not ns.overwrite:
        raise UsageError(f"{PROG} export: error: {out} exists; pass --overwrite to replace it")
    try:
        with _precision(checkpoint.read_config(ns.run_dir).dtype):
            params, config, meta = checkpoint.restore_params(ns.run_dir, epoch=ns.epoch, best=ns.best)
            checkpoint.export_npz(out, params, activation=config.activation,
                                  activation_options=config.activation_options())
    except ValueError as exc:  # RunDirError
        raise UsageError(f"{PROG} export: error: {exc}") from None
    print(f"wrote {out} (epoch {meta['epoch']}, sizes {tuple(meta['sizes'])}, {config.activation})")
    return 0


COMMANDS = {"train": cmd_train, "export": cmd_export}

if __name__ == "__main__":
    sys.exit(main())
