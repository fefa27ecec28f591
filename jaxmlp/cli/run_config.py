"""The config a command runs under: a run's `TrainConfig` and run directory from the flags, a
--config file or the run being resumed, and the 64-bit JAX scope its dtype needs.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import time
from pathlib import Path

from jaxmlp.cli.flags import given_fields, load_config_file
from jaxmlp.cli.usage import PROG, UsageError
from jaxmlp.config import RESUMABLE, TrainConfig


def default_run_dir(dataset: str, root: Path | None = None) -> Path:
    """runs/<dataset>-<timestamp> under the current directory (a suffix if that exists)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset.partition(":")[2]).stem if ":" in dataset else dataset)
    base = (root or Path.cwd()) / "runs" / f"{tag.strip('-') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def train_config(ns: argparse.Namespace, process: tuple[int, int] = (0, 1)) -> tuple[TrainConfig, Path]:
    """(config, run dir) of `jaxmlp train`; `process` (process_id, num_processes) of a multi-host run."""
    from jaxmlp.checkpoint import check_run_dir, read_config

    given = given_fields(ns)
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


def dtype_scope(dtype: str):
    """float64 runs need 64-bit JAX: scoped to the command, so in-process callers keep their setting."""
    if dtype != "float64":
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)
