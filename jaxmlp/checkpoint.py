"""A run's files on disk: orbax checkpoints, config.json, metrics.jsonl, npz export (the
directory's layout and its claiming: rundir.py).

    run_dir/
      config.json          the TrainConfig (to_dict), written before training starts
      preprocessing.json   the feature statistics the data was standardized with (run_preprocessing.py)
      metrics.jsonl        one JSON object per epoch, appended and flushed
      checkpoints/<epoch>/ orbax: state (params, optimizer state, step, RNG key), best params, meta
      summary.json         final metrics; loss_curve.png, decision_boundary.png (plots.py)

Checkpoints go through `orbax.checkpoint.CheckpointManager`: each is written into a
`*.orbax-checkpoint-tmp-*` directory and renamed when complete, so a kill mid-save leaves the
previous checkpoint loadable and the leftover tmp directory is ignored. Restores go into an
abstract target rebuilt from the config, so the exact pytree (NamedTuples, `None` leaves of
non-PReLU nets, optax states) round-trips. Every other file is written to a tmp file first and
`os.replace`d, so none is ever half-written either.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxmlp.atomic import atomic_write_bytes, write_json
from jaxmlp.config import TrainConfig
from jaxmlp.mlp import Params
from jaxmlp.parsing import loads_json
from jaxmlp.rundir import (CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, PREPROCESSING_FILE,  # noqa: F401
                           SUMMARY_FILE, RunDirError)

class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only or vanished directory); the
    previous complete checkpoint stays loadable."""

    def __init__(self, directory: Path, epoch: int, cause: BaseException):
        code = re.search(r"os_error_code='?(\d+)", str(cause))
        errno_ = int(code.group(1)) if code else getattr(cause, "errno", None)
        reason = os.strerror(errno_) if errno_ else " ".join(str(cause).split())[:200]
        super().__init__(errno_, f"cannot write checkpoint {epoch}: {reason}", str(directory))


@contextlib.contextmanager
def _orbax_threads_quiet():
    """Orbax's writer threads log a failed write's traceback through absl before the save raises
    it; the raised error is reported once, by the caller."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _sigint_deferred():
    """Ctrl-C during a save is held until the save is complete (in the main thread), so an
    interrupt never tears down orbax's event loop halfway through a write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list = []
    previous = signal.signal(signal.SIGINT, lambda *args: pending.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending and callable(previous):
            previous(*pending[0])


class Restored(NamedTuple):
    """One checkpoint read back."""

    state: Any  # train.TrainState
    key_data: np.ndarray  # raw data of the run's train key, jax.random.wrap_key_data turns it back
    meta: dict[str, Any]  # epoch, sizes, loss, steps_per_epoch, config, history
    best: Params | None  # best-val-loss params, when the run tracked them


class Checkpointer:
    """Saves and restores training state under `directory` (keeps the last `max_to_keep`).

    cleanup_tmp=True removes half-written `*.orbax-checkpoint-tmp-*` directories left by a
    killed run (the trainer asks for it; readers leave the directory untouched).
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3, cleanup_tmp: bool = False):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False,
                                               cleanup_tmp_directories=cleanup_tmp)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "best", "meta"))

    def latest_epoch(self) -> int | None:
        """The epoch of the newest complete checkpoint, or None."""
        self.manager.reload()
        return self.manager.latest_step()

    def all_epochs(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def save(self, epoch: int, state, key_data, meta: dict[str, Any], *, best: Params | None = None) -> None:
        """Write checkpoint `epoch` (blocking: it is complete on disk when this returns)."""
        # The key as host numpy: every process holds the same one, Orbax writes it from process 0.
        items = {"state": ocp.args.StandardSave({"train_state": state, "key": np.asarray(key_data)}),
                 "meta": ocp.args.JsonSave({**meta, "has_best": best is not None})}
        if best is not None:
            items["best"] = ocp.args.StandardSave(best)
        try:
            with _sigint_deferred(), _orbax_threads_quiet():
                self.manager.save(epoch, args=ocp.args.Composite(**items), force=True)
                self.manager.wait_until_finished()
        except Exception as exc:  # orbax / tensorstore report a failed write in their own types
            raise CheckpointWriteError(self.directory, epoch, exc) from exc

    def read_meta(self, epoch: int | None = None) -> dict[str, Any]:
        """Only the JSON metadata of checkpoint `epoch` (default: the latest)."""
        epoch = self._epoch(epoch)
        return self.manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def restore(self, abstract_state, epoch: int | None = None, *, abstract_best=None,
                abstract_key=None) -> Restored:
        """Checkpoint `epoch` (default: the latest) restored into the structure of `abstract_state`
        (e.g. `jax.eval_shape` of a fresh train state); `abstract_best` is the params structure,
        `abstract_key` the key data's (default: one key's; a sweep saves one per model)."""
        epoch = self._epoch(epoch)
        meta = self.read_meta(epoch)
        key_shape = abstract_key or jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
        target = {"train_state": _abstract(abstract_state), "key": key_shape}
        items = {"state": ocp.args.StandardRestore(target)}
        if meta.get("has_best") and abstract_best is not None:
            items["best"] = ocp.args.StandardRestore(_abstract(abstract_best))
        out = self.manager.restore(epoch, args=ocp.args.Composite(**items))
        best = out.best if "best" in items else None
        return Restored(out.state["train_state"], np.asarray(out.state["key"]), meta, best)

    def close(self) -> None:
        self.manager.close()

    def _epoch(self, epoch: int | None) -> int:
        if epoch is None:
            epoch = self.latest_epoch()
            if epoch is None:
                raise RunDirError(f"{self.directory}: no complete checkpoint found")
        elif epoch not in self.all_epochs():
            raise RunDirError(f"{self.directory}: no checkpoint for epoch {epoch} (have {self.all_epochs()})")
        return epoch


def _abstract(tree):
    """ShapeDtypeStructs of a tree of arrays or ShapeDtypeStructs (None leaves stay None). A
    ShapeDtypeStruct's sharding is kept (a data-parallel run restores replicated global arrays);
    without one the target is this process's first device, whatever devices the saving run used."""
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def spec(a):
        sharding = a.sharding if isinstance(a, jax.ShapeDtypeStruct) and a.sharding is not None else default
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding)

    return jax.tree.map(spec, tree)


def checkpointer_for(run_dir: str | os.PathLike, config: TrainConfig, *, cleanup_tmp: bool = False) -> Checkpointer:
    """The Checkpointer of a run directory (run_dir/checkpoints)."""
    return Checkpointer(Path(run_dir) / CHECKPOINT_DIR, max_to_keep=config.keep_checkpoints, cleanup_tmp=cleanup_tmp)


def restore_params(run_dir: str | os.PathLike, *, epoch: int | None = None,
                   best: bool | None = None) -> tuple[Params, TrainConfig, dict[str, Any]]:
    """(params, config, meta) of a run's checkpoint. best=None picks the best-val-loss params
    when the run used restore_best, True insists on them, False takes the last params; meta
    ["kept"] says which ("the params of epoch 12", "the best val-loss params, of epoch 9 (...)")."""
    from jaxmlp.training.run import build_run  # the trainer never imports this module
    from jaxmlp.training.spec import spec_from_meta

    config = read_config(run_dir)
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise RunDirError(f"{run_dir}: a float64 run; enable 64-bit JAX first (jax.config.update('jax_enable_x64', True))")
    ckpt = checkpointer_for(run_dir, config)
    try:
        meta = ckpt.read_meta(epoch)
        saved = TrainConfig.from_dict(meta["config"])
        # onto this process's first device, whatever devices the saving run used
        one_device = dataclasses.replace(saved, devices=1)
        abstract = build_run(one_device, spec_from_meta(meta, saved), compile=False).abstract_state()
        restored = ckpt.restore(abstract, meta["epoch"], abstract_best=abstract.params)
    finally:
        ckpt.close()
    use_best = saved.restore_best if best is None else best
    if use_best and restored.best is None:
        if best:
            raise RunDirError(f"{run_dir}: the checkpoint holds no best params (run without restore_best/validation)")
        use_best = False
    kept = (f"the best val-loss params, of epoch {meta['history']['best_epoch']} (checkpoint of epoch {meta['epoch']})"
            if use_best else f"the params of epoch {meta['epoch']}")
    return (restored.best if use_best else restored.state.params), saved, {**meta, "kept": kept}


# --- the run's own files ----------------------------------------------------------------------
def write_config(run_dir: str | os.PathLike, config: TrainConfig) -> None:
    write_json(Path(run_dir) / CONFIG_FILE, config.to_dict())


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig in run_dir/config.json; RunDirError if missing or unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return TrainConfig.from_dict(loads_json(path.read_text()))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: not a run directory (no {CONFIG_FILE})") from None
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise RunDirError(f"{path}: cannot read config ({exc})") from None


class MetricsLog:
    """metrics.jsonl: one JSON object per line, appended and flushed after every epoch."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def reset(self, records: list[dict[str, Any]]) -> None:
        """Rewrite the file with `records` (a resumed run's history; drops lines past it)."""
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in records).encode())

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
