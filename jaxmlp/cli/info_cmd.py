"""`jaxmlp info RUN_DIR`: a saved run's model summary (layers, params, FLOPs, optimizer, data),
read from its config.json and its checkpoint's metadata; nothing is trained or restored."""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmlp.cli.flags import value_parser
from jaxmlp.cli.saved_run import add_run_dir
from jaxmlp.cli.usage import PROG, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_dir(parser)
    parser.add_argument("--epoch", type=value_parser(int), help="checkpoint epoch [latest]")


def cmd_info(ns: argparse.Namespace) -> int:
    from jaxmlp import checkpoint, restore, summary
    from jaxmlp.training.plan import spec_from_meta

    try:
        config, meta = restore.saved_config(ns.run_dir, ns.epoch)  # as saved with this checkpoint
    except ValueError as exc:  # RunDirError
        raise UsageError(f"{PROG} info: error: {exc}") from None
    spec = spec_from_meta(meta, config)
    print(summary.summary_table(config, spec.sizes, summary.describe_run_spec(config.dataset, spec), spec.loss))
    where = Path(ns.run_dir).absolute() / checkpoint.CHECKPOINT_DIR
    print(f"checkpoint: epoch {meta['epoch']} of {config.epochs} in {where}")
    return 0
