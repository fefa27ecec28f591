"""A saved run read back: the config its checkpoint was trained under (`saved_config`, the one
source of the settings that shape the model and the programs) and its params (`restore_params`),
labelled with whose params they are.

    params, config, meta = restore_params("runs/mnist", epoch=14)   # the params of epoch 14
    print(meta["kept"])        # 'the best val-loss params, of epoch 14 (checkpoint of epoch 24)'
    config, meta = saved_config("runs/mnist")                       # refuses a config.json that disagrees

The files and the Checkpointer they come from: checkpoint.py.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

import jax

from jaxmlp.checkpoint import STEP_CHECKPOINT_DIR, Checkpointer, checkpointer_for, newest_checkpoint, read_config
from jaxmlp.config import AUTO_FIELDS, FIELD_NAMES, PER_HOST_FIELDS, RESUMABLE, TrainConfig
from jaxmlp.mlp import Params
from jaxmlp.orbax_io import CheckpointRemoved, CheckpointUnreadable
from jaxmlp.runfiles import CONFIG_FILE, RUN_FILES, check_own_files
from jaxmlp.runlock import RunDirError


def restore_params(run_dir: str | os.PathLike, *, epoch: int | None = None,
                   best: bool | None = None) -> tuple[Params, TrainConfig, dict[str, Any]]:
    """(params, config, meta) of a run; the config is the checkpoint's (saved_config).

    epoch=None reads the latest checkpoint: best=None picks its best-val-loss params when the
    run used restore_best, True insists on them, False takes its last params. epoch=N means the
    params of epoch N: checkpoint N's own (unless best=True), else the best val-loss params of
    epoch N that a later checkpoint kept (unless best=False); RunDirError when no checkpoint
    holds them, rather than other params under N's name. meta["kept"] says whose params they
    are ("the params of epoch 12", "the best val-loss params, of epoch 9 (checkpoint of epoch
    12)"), meta["params_epoch"] the epoch they were trained to, meta["epoch"] the checkpoint's."""
    check_own_files(Path(run_dir), RUN_FILES)  # before anything in it is read (once: not again on a retry)
    return _newest_on_removal(functools.partial(_restore_params, run_dir, best=best), epoch)


def _restore_params(run_dir, epoch: int | None, *, best: bool | None):
    from jaxmlp.training.plan import plan_of, spec_from_meta  # the trainer never imports this module

    if epoch is not None:
        epoch, best = _holder_of_epoch(run_dir, epoch, best)
    saved, meta = _saved_config(run_dir, epoch)
    if saved.dtype == "float64" and not jax.config.jax_enable_x64:
        raise RunDirError(f"{run_dir}: a float64 run; enable 64-bit JAX first (jax.config.update('jax_enable_x64', True))")
    # onto this process's first device, whatever devices the saving run used
    one_device = dataclasses.replace(saved, devices=1)
    abstract = plan_of(one_device, spec_from_meta(meta, saved)).abstract_state()
    ckpt = checkpointer_for(run_dir, saved)
    try:
        restored = ckpt.restore(abstract, epoch, abstract_best=abstract.params)  # latest: names intact older ones
    finally:
        ckpt.close()
    meta = restored.meta  # (a newer latest than the config's, when one was written meanwhile: the same settings)
    use_best = saved.restore_best if best is None else best
    if use_best and restored.best is None:
        if best:
            raise RunDirError(f"{run_dir}: the checkpoint holds no best params (run without restore_best/validation)")
        use_best = False
    trained_to = meta["history"]["best_epoch"] if use_best else meta["epoch"]
    holder = f" (checkpoint of epoch {meta['epoch']})" if trained_to != meta["epoch"] else ""
    kept = f"the best val-loss params, of epoch {trained_to}{holder}" if use_best else f"the params of epoch {trained_to}"
    return (restored.best if use_best else restored.state.params), saved, {**meta, "kept": kept,
                                                                             "params_epoch": trained_to}


def _holder_of_epoch(run_dir, epoch: int, best: bool | None) -> tuple[int, bool]:
    """(checkpoint, best) holding the params of `epoch`: checkpoint `epoch`'s own params (not
    with best=True), or a checkpoint's best val-loss params when they are of `epoch` (not with
    best=False; the latest such checkpoint, the last a running trainer would prune)."""
    ckpt = checkpointer_for(run_dir, read_config(run_dir))
    try:
        epochs = ckpt.all_epochs()
        best_of = {e: _best_epoch(ckpt, e) for e in epochs}  # checkpoint -> the epoch of its best params, or None
    finally:
        ckpt.close()
    if best is not True and epoch in epochs:
        return epoch, False
    holders = [e for e, b in best_of.items() if b == epoch]
    if best is not False and holders:
        return holders[-1], True
    which = {True: "best val-loss ", False: "last "}.get(best, "")
    bests = sorted({b for b in best_of.values() if b is not None})
    held = f"the params of {_epochs(epochs)}" + (f" and the best val-loss params of {_epochs(bests)}" if bests else "")
    raise RunDirError(f"{run_dir}: no checkpoint holds the {which}params of epoch {epoch} (they hold {held})")


def _epochs(epochs: list[int]) -> str:
    """'epoch 14', 'epochs 20, 22, 24' or 'no epoch'."""
    return f"epoch{'s' * (len(epochs) > 1)} {', '.join(map(str, epochs))}" if epochs else "no epoch"


def _best_epoch(ckpt: Checkpointer, epoch: int) -> int | None:
    """The epoch of checkpoint `epoch`'s best params (None: it has none, or is unreadable or
    pruned meanwhile: another checkpoint's damage does not block the one asked for)."""
    try:
        meta = ckpt.read_meta(epoch)
    except RunDirError:
        return None
    history = meta.get("history")
    return history.get("best_epoch") if meta.get("has_best") and isinstance(history, dict) else None


def saved_config(run_dir: str | os.PathLike, epoch: int | None = None, *, mid_epoch: bool = False
                 ) -> tuple[TrainConfig, dict[str, Any]]:
    """(config, meta) of checkpoint `epoch` (default: the latest; mid_epoch: the newest of all,
    a streamed run's mid-epoch checkpoints included, as a resume takes it) of a run. The config is the one
    the checkpoint was trained under: the source of every setting that shapes the model and the
    programs. config.json may differ only in what a resume may change (config.RESUMABLE) and in
    per-host paths; one that differs in another field is refused, naming it."""
    check_own_files(Path(run_dir), RUN_FILES)  # before anything in it is read (once: not again on a retry)
    return _newest_on_removal(functools.partial(_saved_config, run_dir, mid_epoch=mid_epoch), epoch)


_META_KEYS = ("epoch", "sizes", "loss", "steps_per_epoch", "config", "history")


def _saved_config(run_dir, epoch: int | None, mid_epoch: bool = False) -> tuple[TrainConfig, dict[str, Any]]:
    edited = read_config(run_dir)
    ckpt = checkpointer_for(run_dir, edited)
    try:  # mid_epoch: the newest checkpoint, a streamed run's mid-epoch ones included
        meta = (mid_epoch and newest_checkpoint(ckpt, ckpt.sibling(STEP_CHECKPOINT_DIR))[1]) or ckpt.read_meta(epoch)
    finally:
        ckpt.close()
    missing = [key for key in _META_KEYS if key not in meta]
    try:
        if missing:
            raise ValueError(f"its meta has no {', '.join(missing)}: not a training run's checkpoint")
        saved = TrainConfig.from_dict(meta["config"])
    except ValueError as exc:
        raise CheckpointUnreadable(ckpt.directory, meta.get("epoch", epoch), exc) from None
    for name in FIELD_NAMES:  # an auto setting (None) is decided when a run starts: any decision agrees with it
        mine, theirs = getattr(edited, name), getattr(saved, name)
        if mine != theirs and name not in RESUMABLE | PER_HOST_FIELDS and not (mine is None and name in AUTO_FIELDS):
            raise RunDirError(f"{Path(run_dir) / CONFIG_FILE}: {name} is {_short(mine)}, but checkpoint "
                              f"{meta['epoch']} was trained with {_short(theirs)}; put that back (only the settings "
                              "listed under `jaxmlp train --help` --resume may differ)")
    return saved, meta


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _newest_on_removal(read, epoch: int | None):
    """read(epoch); when it reads the latest checkpoint (epoch None) and a run writing the
    directory pruned it meanwhile, once more, from the newer latest (else CheckpointRemoved)."""
    try:
        return read(epoch)
    except CheckpointRemoved:
        if epoch is not None:
            raise
        return read(None)
