"""A run's files on disk: orbax checkpoints, config.json, metrics.jsonl, npz export (the
directory's layout: runfiles.py; its claim: rundir.py).

    run_dir/
      config.json          the TrainConfig (to_dict), written once the run is restored or initialized
      preprocessing.json   the feature statistics the data was standardized with (run_preprocessing.py)
      metrics.jsonl        one JSON object per epoch, appended and flushed
      checkpoints/<epoch>/ orbax: state (params, optimizer state, step, RNG key), best params, meta
      step_checkpoints/<global step>/  the same, mid-epoch (a streamed run's checkpoint_every_steps)
      summary.json         final metrics; loss_curve.png, decision_boundary.png (plots.py)

Checkpoints go through `orbax.checkpoint.CheckpointManager`: each is written into a
`*.orbax-checkpoint-tmp-*` directory and renamed when complete, so a kill mid-save leaves the
previous checkpoint loadable and the leftover tmp directory is ignored. Restores go into an
abstract target rebuilt from the checkpoint's own config (restore.py), so the exact pytree
(NamedTuples, `None` leaves of non-PReLU nets, optax states) round-trips. Every other file is written to a tmp file first and
`os.replace`d, so none is ever half-written either.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxmlp.atomic import atomic_write_bytes, read_regular, write_json
from jaxmlp.config import TrainConfig
from jaxmlp.mlp import Params
from jaxmlp.orbax_io import (CheckpointRemoved, CheckpointUnreadable, CheckpointWriteError,  # noqa: F401
                             orbax_threads_quiet, quiet_orbax_reports, sigint_deferred)
from jaxmlp.parsing import loads_json
from jaxmlp.runfiles import (CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, PREPROCESSING_FILE,  # noqa: F401
                             STEP_CHECKPOINT_DIR, SUMMARY_FILE)
from jaxmlp.runlock import RunDirError

class Restored(NamedTuple):
    """One checkpoint read back."""

    state: Any  # train.TrainState
    key_data: np.ndarray  # raw data of the run's train key, jax.random.wrap_key_data turns it back
    meta: dict[str, Any]  # epoch, sizes, loss, steps_per_epoch, config, history
    best: Params | None  # best-val-loss params, when the run tracked them


class Checkpointer:
    """Saves and restores training state under `directory` (keeps the last `max_to_keep`).

    cleanup_tmp=True removes half-written `*.orbax-checkpoint-tmp-*` directories left by a
    killed run (the trainer asks for it; readers leave the directory untouched, and never make
    it: the first save does). An old checkpoint is pruned by renaming it to such a name first,
    then deleting it: a reader sees a checkpoint whole or not at all, and a kill mid-delete
    leaves no half checkpoint behind. In a multi-host run every process saves together (each its
    devices' shards), unless `alone`: then only this process, process 0, saves (its host values:
    a sweep's best/), and waits on no other.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3, cleanup_tmp: bool = False,
                 alone: bool = False):
        quiet_orbax_reports()
        self.directory = Path(directory).absolute()
        self.max_to_keep, self.cleanup_tmp, self.alone = max_to_keep, cleanup_tmp, alone
        processes = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                                       active_processes={jax.process_index()}) if alone else \
            ocp.options.MultiprocessingOptions()
        options = ocp.CheckpointManagerOptions(max_to_keep=None, create=False, enable_async_checkpointing=False,
                                               cleanup_tmp_directories=cleanup_tmp, multiprocessing_options=processes)
        self.manager = self._listing(lambda: ocp.CheckpointManager(self.directory, options=options,
                                                                   item_names=("state", "best", "meta")))

    def sibling(self, name: str) -> Checkpointer:
        """A Checkpointer of the same settings at `name` beside this one's directory (a run's
        mid-epoch checkpoints); its directory is made by its first save."""
        return Checkpointer(self.directory.parent / name, max_to_keep=self.max_to_keep, cleanup_tmp=self.cleanup_tmp,
                            alone=self.alone)

    def latest_epoch(self) -> int | None:
        """The epoch of the newest complete checkpoint, or None."""
        epochs = self.all_epochs()
        return epochs[-1] if epochs else None

    def all_epochs(self) -> list[int]:
        self._listing(self.manager.reload)
        return sorted(self.manager.all_steps())

    def _listing(self, list_checkpoints):
        """list_checkpoints(), once more if a run writing the directory pruned one while it was listed."""
        for attempt in range(2):
            try:
                return list_checkpoints()
            except (FileNotFoundError, NotADirectoryError):
                if attempt:
                    raise CheckpointRemoved(self.directory, None) from None

    def save(self, epoch: int, state, key_data, meta: dict[str, Any], *, best: Params | None = None) -> None:
        """Write checkpoint `epoch` (blocking: it is complete on disk when this returns), then
        prune the ones beyond the newest `max_to_keep`."""
        # The key as host numpy: every process holds the same one, Orbax writes it from process 0.
        items = {"state": ocp.args.StandardSave({"train_state": state, "key": np.asarray(key_data)}),
                 "meta": ocp.args.JsonSave({**meta, "has_best": best is not None})}
        if best is not None:
            items["best"] = ocp.args.StandardSave(best)
        if self.directory.is_symlink():  # put there while the run trains: orbax would write through it
            raise CheckpointWriteError(self.directory, epoch, OSError(errno.ELOOP, "a symbolic link"))
        try:
            with sigint_deferred(), orbax_threads_quiet():
                self.manager.save(epoch, args=ocp.args.Composite(**items), force=True)
                self.manager.wait_until_finished()
                self._prune()
        except Exception as exc:  # orbax / tensorstore report a failed write in their own types
            raise CheckpointWriteError(self.directory, epoch, exc) from exc

    def _prune(self) -> None:
        if jax.process_index() != 0:  # one process deletes, as orbax's own pruning does
            return
        for epoch in self.all_epochs()[:-self.max_to_keep]:
            doomed = self.directory / f"{epoch}{_PRUNED}-{time.time_ns()}"
            os.rename(self.directory / str(epoch), doomed)
            shutil.rmtree(doomed)
        self.manager.reload()

    def read_meta(self, epoch: int | None = None) -> dict[str, Any]:
        """Only the JSON metadata of checkpoint `epoch` (default: the latest)."""
        return self._read_meta(self._epoch(epoch))

    def _read_meta(self, epoch: int) -> dict[str, Any]:
        try:
            meta = self.manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except KeyError:
            raise self._unreadable(epoch, "it has no meta item") from None
        except (ValueError, OSError) as exc:  # a truncated meta item, or pruned meanwhile
            raise self._unreadable(epoch, exc) from None
        except RecursionError:  # (meta nested thousands of levels deep)
            raise self._unreadable(epoch, "its meta is nested too deep") from None
        if not isinstance(meta, dict):
            raise CheckpointUnreadable(self.directory, epoch, f"its meta is a {type(meta).__name__}, not a mapping")
        return meta

    def restore(self, abstract_state, epoch: int | None = None, *, abstract_best=None,
                abstract_key=None) -> Restored:
        """Checkpoint `epoch` (default: the latest) restored into the structure of `abstract_state`
        (e.g. `jax.eval_shape` of a fresh train state); `abstract_best` is the params structure,
        `abstract_key` the key data's (default: one key's; a sweep saves one per model). A damaged
        latest checkpoint is refused, naming the older intact ones; none is used in its place."""
        latest, epoch = epoch is None, self._epoch(epoch)
        meta = self._read_meta(epoch)
        key_shape = abstract_key or jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
        target = {"train_state": _abstract(abstract_state), "key": key_shape}
        items = {"state": ocp.args.StandardRestore(target)}
        if meta.get("has_best") and abstract_best is not None:
            items["best"] = ocp.args.StandardRestore(_abstract(abstract_best))
        try:
            out = self.manager.restore(epoch, args=ocp.args.Composite(**items))
        except (KeyError, ValueError, OSError) as exc:  # tensorstore: CRC, truncation, missing files
            older = [e for e in self.all_epochs() if e < epoch and self._intact(e, abstract_state, abstract_best,
                                                                                abstract_key)] if latest else []
            raise self._unreadable(epoch, exc, older) from None
        best = out.best if "best" in items else None
        return Restored(out.state["train_state"], np.asarray(out.state["key"]), meta, best)

    def _intact(self, epoch: int, *abstract) -> bool:
        try:
            self.restore(abstract[0], epoch, abstract_best=abstract[1], abstract_key=abstract[2])
            return True
        except RunDirError:
            return False

    def _unreadable(self, epoch: int, exc: BaseException | str, older: list[int] = ()) -> RunDirError:
        if not (self.directory / str(epoch)).exists():
            return CheckpointRemoved(self.directory, epoch)
        return CheckpointUnreadable(self.directory, epoch, exc, older)

    def close(self) -> None:
        self.manager.close()

    def _epoch(self, epoch: int | None) -> int:
        if epoch is None:  # (a listing that raced a writer's renames can miss both old and new: look twice)
            epoch = self.latest_epoch() or self.latest_epoch()
            if epoch is None:
                raise RunDirError(f"{self.directory}: no complete checkpoint found")
        elif epoch not in self.all_epochs():
            raise RunDirError(f"{self.directory}: no checkpoint for epoch {epoch} (have {self.all_epochs()})")
        return epoch


# orbax's suffix of a checkpoint being written: readers ignore such a directory, cleanup_tmp removes it
_PRUNED = ".orbax-checkpoint-tmp-pruned"


def _abstract(tree):
    """ShapeDtypeStructs of a tree of arrays or ShapeDtypeStructs (None leaves stay None). A
    ShapeDtypeStruct's sharding is kept (a data-parallel run restores replicated global arrays);
    without one the target is this process's first device, whatever devices the saving run used."""
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def spec(a):
        sharding = a.sharding if isinstance(a, jax.ShapeDtypeStruct) and a.sharding is not None else default
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding)

    return jax.tree.map(spec, tree)


def newest_checkpoint(checkpointer: Checkpointer | None, steps_checkpointer: Checkpointer | None = None
                      ) -> tuple[Checkpointer | None, dict[str, Any] | None]:
    """(the Checkpointer holding a run's newest checkpoint, its meta), or (None, None) without
    one: an epoch's checkpoint, or a mid-epoch one (a streamed run's checkpoint_every_steps,
    `steps_checkpointer`) from later in training."""
    newest, meta, at = None, None, -1
    for source in (checkpointer, steps_checkpointer):
        if source is not None and source.latest_epoch() is not None:
            candidate = source.read_meta()
            step = candidate.get("global_step", candidate["epoch"] * candidate["steps_per_epoch"])
            if step > at:
                newest, meta, at = source, candidate, step
    return newest, meta


def checkpointer_for(run_dir: str | os.PathLike, config: TrainConfig, *, cleanup_tmp: bool = False,
                     alone: bool = False) -> Checkpointer:
    """The Checkpointer of a run directory (run_dir/checkpoints); alone: see Checkpointer."""
    return Checkpointer(Path(run_dir) / CHECKPOINT_DIR, max_to_keep=config.keep_checkpoints, cleanup_tmp=cleanup_tmp,
                        alone=alone)


# --- the run's own files ----------------------------------------------------------------------
def write_config(run_dir: str | os.PathLike, config: TrainConfig) -> None:
    write_json(Path(run_dir) / CONFIG_FILE, config.to_dict())


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig in run_dir/config.json; RunDirError if missing or unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return TrainConfig.from_dict(loads_json(read_regular(path).decode()))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: not a run directory (no {CONFIG_FILE})") from None
    except OSError as exc:  # (a link or a FIFO there too)
        raise RunDirError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise RunDirError(f"{path}: cannot read config ({exc})") from None


class MetricsLog:
    """metrics.jsonl: one JSON object per line, appended and flushed after every epoch."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def reset(self, records: list[dict[str, Any]]) -> None:
        """Rewrite the file with `records` (a resumed run's history; drops lines past it)."""
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in records).encode())

    def append(self, record: dict[str, Any]) -> None:
        # O_NOFOLLOW: a link put in its place while the run trains is refused (ELOOP), not written through
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
