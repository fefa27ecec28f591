"""The config a command runs under: a run's `TrainConfig` and run directory from the flags, a
--config file or the run being resumed, and the 64-bit JAX scope its dtype needs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from jaxmlp.cli.flags import given_fields, load_config_file
from jaxmlp.cli.outcome import os_error
from jaxmlp.cli.usage import PROG, UsageError
from jaxmlp.config import RESUMABLE, TrainConfig
from jaxmlp.rundir import check_new_run_dir


def train_config(ns: argparse.Namespace, process: tuple[int, int] = (0, 1)
                 ) -> tuple[TrainConfig, Path | None, tuple[TrainConfig, dict] | None]:
    """(config, run dir, resumed) of `jaxmlp train`; `process` (process_id, num_processes) of a
    multi-host run. The run dir is None for a new run without --out-dir: it is made when the run
    starts (rundir.claim_new_run_dir). resumed: with --resume, (the config, the meta) of the
    checkpoint it continues (restore.saved_config), else None. Checks only: nothing is written here."""
    try:
        if ns.resume:
            config, resumed = _resumed_config(ns)
            return config, Path(ns.resume), resumed
        base = load_config_file(ns.config) if ns.config else {}
        config = TrainConfig.from_dict({**base, **given_fields(ns)}).with_fixed_schedule()
        if process[1] > 1 and not config.out_dir:
            raise UsageError(f"{PROG} train: error: a multi-host run needs --out-dir, a directory every process "
                             "sees (orbax writes the checkpoints there together)")
        if not config.out_dir:
            return config, None, None
        run_dir = Path(config.out_dir)
        if not (ns.overwrite and process[0] > 0):  # with --overwrite, only process 0 removes the old run
            check_new_run_dir(run_dir, config, overwrite=ns.overwrite)
        return config, run_dir, None
    except ValueError as exc:  # config validation, RunDirError
        raise UsageError(f"{PROG} train: error: {exc}") from None
    except OSError as exc:  # a path the system refuses (too long, ...)
        raise UsageError(f"{PROG} train: error: {os_error(exc)}") from None


def _resumed_config(ns: argparse.Namespace) -> tuple[TrainConfig, tuple[TrainConfig, dict]]:
    """(the config of the run in --resume RUN_DIR, (its latest checkpoint's config, meta)): the
    checkpoint's (restore.saved_config, which refuses a config.json that disagrees with it), with
    the resumable settings of config.json and then of the flags given applied."""
    from jaxmlp.checkpoint import CONFIG_FILE, read_config
    from jaxmlp.restore import saved_config

    given = given_fields(ns)
    if ns.config or ns.overwrite:
        raise UsageError(f"{PROG} train: error: --resume cannot be combined with "
                         f"{'--config' if ns.config else '--overwrite'}")
    fixed = sorted(set(given) - RESUMABLE)
    if fixed:
        raise UsageError(f"{PROG} train: error: --{fixed[0].replace('_', '-')} cannot change when resuming "
                         f"(allowed: {', '.join(sorted(RESUMABLE))})")
    run_dir = Path(ns.resume)
    if run_dir.is_dir() and not os.path.lexists(run_dir / CONFIG_FILE):  # (a link there: saved_config refuses it)
        raise UsageError(f"{PROG} train: error: {run_dir}: not a run directory (no {CONFIG_FILE}): a run stopped "
                         "before it wrote its config cannot be resumed; rerun the original command")
    saved, meta = saved_config(run_dir, mid_epoch=True)
    edited = read_config(run_dir).to_dict()
    resumable = {name: edited[name] for name in RESUMABLE}
    return TrainConfig.from_dict({**saved.to_dict(), **resumable, **given, "out_dir": str(run_dir)}), (saved, meta)


def dtype_scope(dtype: str):
    """float64 runs need 64-bit JAX: scoped to the command, so in-process callers keep their setting."""
    if dtype != "float64":
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)
