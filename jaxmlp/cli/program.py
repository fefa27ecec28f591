"""The `jaxmlp` program: the parser of every subcommand, dispatch, exit statuses.

`COMMANDS` maps a subcommand to its `cmd_*(namespace) -> int`; `FORWARDED` maps one to a module
whose `main(argv) -> int` parses its own arguments (imported only when used).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import typing
from typing import Sequence

from jaxmlp import __version__
from jaxmlp.cli import (batch_study_cmd, evaluate_cmd, export_cmd, hosts, info_cmd, noise_scale_cmd, predict_cmd,
                        sweep_cmd, train_cmd)
from jaxmlp.cli.flags import normalize_flags
from jaxmlp.cli.usage import EXIT_INTERRUPTED, PROG, CommandError, Parser, fail

FORWARDED = {"gradcheck": ("jaxmlp.gradcheck", "check manual gradients against jax.grad and finite differences"),
             "demo": ("jaxmlp.demos", "run a teaching demo (figures + JSON numbers)")}
COMMANDS = {"train": train_cmd.cmd_train, "export": export_cmd.cmd_export, "info": info_cmd.cmd_info,
            "predict": predict_cmd.cmd_predict, "evaluate": evaluate_cmd.cmd_evaluate,
            "noise-scale": noise_scale_cmd.cmd_noise_scale, "sweep": sweep_cmd.cmd_sweep,
            "batch-study": batch_study_cmd.cmd_batch_study}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, allow_abbrev=False, description="Multi-layer perceptrons on JAX: train, inspect, "
                    "predict, evaluate, export, check gradients, run demos.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    train_cmd.add_arguments(sub.add_parser(
        "train", help="train an MLP (no arguments: a relu net on the spiral)", allow_abbrev=False,
        description="Train an MLP. Every TrainConfig field is a flag; flags override --config."))
    export_cmd.add_arguments(sub.add_parser("export", help="write a run's params to a plain .npz", allow_abbrev=False))
    sweep_cmd.add_arguments(sub.add_parser(
        "sweep", help="train a grid of models (seeds, learning rates, ...) as vmapped programs", allow_abbrev=False,
        description="Train every model of a grid over a shared config, as few compiled programs. "
                    "--devices N shards the models (never a batch) over N devices."))
    info_cmd.add_arguments(sub.add_parser("info", help="a run's model summary: layers, params, FLOPs, optimizer, data",
                                          allow_abbrev=False))
    predict_cmd.add_arguments(sub.add_parser("predict", help="write a run's scores and classes for a data set "
                                             "(.npy or .csv)", allow_abbrev=False))
    evaluate_cmd.add_arguments(sub.add_parser("evaluate", help="a run's loss and accuracy (or mse) on a data set",
                                              allow_abbrev=False))
    noise_scale_cmd.add_arguments(sub.add_parser(
        "noise-scale", help="the gradient noise scale at init and after training, and a batch range", allow_abbrev=False,
        description="B_simple = tr(Sigma) / |G|^2 over the training set, of RUN_DIR or of a run the flags describe."))
    batch_study_cmd.add_arguments(sub.add_parser(
        "batch-study", help="steps to a target at each batch size (lr tuned per size): the critical batch size",
        allow_abbrev=False, description="Train a learning-rate x seed grid at each batch size until the target; "
        "fit S = S_min (1 + B_crit / B) and eps_opt(B); B_simple at the target."))
    for name, (_, help_text) in FORWARDED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    hosts.quiet_runtime_log(argv, os.environ)
    if argv and argv[0] in FORWARDED:
        return _forward(argv[0], argv[1:])
    try:
        parser = build_parser()
        try:
            ns = parser.parse_args(normalize_flags(argv))
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        if ns.command is None:
            parser.print_help(sys.stderr)
            return 2
        return COMMANDS[ns.command](ns)
    except CommandError as exc:  # a UsageError: 2
        return fail(str(exc), exc.code)
    except KeyboardInterrupt:
        return fail(f"{PROG}: interrupted", EXIT_INTERRUPTED)  # (a training run reports its own interrupt: cli/outcome.py)


def run() -> typing.NoReturn:
    """The `jaxmlp` console script: `main()`'s exit status. An interrupted command leaves at once
    (os._exit): Ctrl-C can land while JAX compiles or its runtime threads are busy, and tearing
    the interpreter down then may crash it (SIGSEGV seen). Nothing is lost: every file a run
    writes is complete when written (atomic replace, fsync'ed metrics lines, orbax checkpoints).
    A Ctrl-C after the command has ended is ignored: its status stands, and the interpreter's
    shutdown (which puts back the default SIGINT action) is not killed silently halfway."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _forward(command: str, argv: list[str]) -> int:
    """Run a FORWARDED subcommand's module main(argv)."""
    name = FORWARDED[command][0]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return fail(f"{PROG}: error: '{command}' is not available in this installation ({name} is missing)", 2)
    return int(module.main(argv) or 0)
