"""`jaxmlp info RUN_DIR`: a saved run's model summary (layers, params, FLOPs, optimizer, data),
read from its config.json and its checkpoint's metadata; nothing is trained or restored."""
from __future__ import annotations

import argparse

from jaxmlp.cli.flags import value_parser
from jaxmlp.cli.usage import PROG, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--epoch", type=value_parser(int), help="checkpoint epoch [latest]")


def cmd_info(ns: argparse.Namespace) -> int:
    from jaxmlp import checkpoint, summary
    from jaxmlp.config import TrainConfig
    from jaxmlp.training.spec import spec_from_meta

    try:
        ckpt = checkpoint.checkpointer_for(ns.run_dir, checkpoint.read_config(ns.run_dir))
        try:
            meta = ckpt.read_meta(ns.epoch)
        finally:
            ckpt.close()
    except ValueError as exc:  # RunDirError
        raise UsageError(f"{PROG} info: error: {exc}") from None
    config = TrainConfig.from_dict(meta["config"])  # as saved with this checkpoint
    spec = spec_from_meta(meta, config)
    print(summary.summary_table(config, spec.sizes, summary.describe_run_spec(config.dataset, spec), spec.loss))
    print(f"checkpoint: epoch {meta['epoch']} of {config.epochs} in {ckpt.directory}")
    return 0
