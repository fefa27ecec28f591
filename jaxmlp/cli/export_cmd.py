"""`jaxmlp export RUN_DIR`: a run's params (latest, --epoch N, --best or --last) to a plain .npz,
with the standardization its inputs need (input_mean, input_std) when the run used one."""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmlp.cli.outputs import add_overwrite_flag, output_path, writing
from jaxmlp.cli.run_config import dtype_scope
from jaxmlp.cli.saved_run import add_checkpoint_flags, add_run_dir
from jaxmlp.cli.usage import PROG, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN_DIR, the output file and which params."""
    add_run_dir(parser)
    parser.add_argument("--npz", metavar="FILE", help="output file [RUN_DIR/params.npz]")
    add_checkpoint_flags(parser)
    add_overwrite_flag(parser)


def cmd_export(ns: argparse.Namespace) -> int:
    from jaxmlp import checkpoint, export, restore
    from jaxmlp.run_preprocessing import read_preprocessing

    npz = Path(ns.run_dir) / "params.npz" if ns.npz is None else ns.npz
    out = output_path(npz, "--npz", "export", overwrite=ns.overwrite)
    try:
        with dtype_scope(checkpoint.read_config(ns.run_dir).dtype):
            params, config, meta = restore.restore_params(ns.run_dir, epoch=ns.epoch, best=ns.best)
            stats = read_preprocessing(ns.run_dir, config)  # the weights expect inputs standardized as in training
            with writing(out, "export"):
                export.export_npz(out, params, activation=config.activation,
                                  activation_options=config.activation_options(), preprocessing=stats)
    except ValueError as exc:  # RunDirError
        raise UsageError(f"{PROG} export: error: {exc}") from None
    inputs = "inputs standardized by its input_mean, input_std" if stats is not None else "raw inputs"
    print(f"wrote {out} ({meta['kept']}, sizes {tuple(meta['sizes'])}, {config.activation}, {inputs})")
    return 0
