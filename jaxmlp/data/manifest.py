"""Writing a sharded data set, chunk by chunk: `ShardWriter` (and, re-exported, `read_manifest`).

    with ShardWriter("data/big", format="npy", rows_per_shard=65536, num_classes=10) as w:
        for x, y in chunks():            # x (m, *feature_shape), y (m,) int labels
            w.append("train", x, y)
        w.append("test", x_test, y_test)
    # data/big/manifest.json now exists: the set is complete (its fields: `manifest_json`)

Shards are cut every `rows_per_shard` rows of a split, whatever the chunk sizes; at most one
shard's rows are held in memory, so a set larger than memory is written chunk by chunk.
`close()` reads the shards back twice to compute each split's feature statistics (the same
bits as `preprocess.fit_feature_stats` on the same rows in memory), then writes
``manifest.json`` last, atomically: a directory without one is an unfinished write.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jaxmlp.atomic import write_json
from jaxmlp.data.errors import DataError
from jaxmlp.data.manifestfile import MANIFEST, Manifest, SplitInfo, manifest_json, read_manifest
from jaxmlp.data.preprocess import feature_stats
from jaxmlp.data.shardlayout import FORMATS, SPLITS, X_DTYPES, Layout, ShardEntry, shard_names
from jaxmlp.data.shardnpy import write_npy_shard
from jaxmlp.data.shardrecord import write_record_shard
from jaxmlp.data.shardset import ShardSet

__all__ = ["Manifest", "ShardWriter", "read_manifest"]

_WRITERS = {"npy": write_npy_shard, "arrayrecord": write_record_shard}


class ShardWriter:
    """Writes the splits of a data set into `directory` as shards of `rows_per_shard` rows.

    num_classes: K for class labels y (m,) integers in [0, K); None for regression targets
    y (m,) or (m, k) floats. feature_shape: the shape of one example; default the shape of
    the first chunk's rows. x is stored as float32, float16 or uint8 as given (any other
    real dtype as float32, as `from_arrays` converts it); every chunk must match the first.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        format: str = "npy",
        rows_per_shard: int = 65536,
        num_classes: int | None = None,
        feature_shape: tuple[int, ...] | None = None,
    ):
        self.directory = Path(directory)
        if format not in FORMATS:
            raise DataError(f"{self.directory}: unknown shard format {format!r}; expected one of {', '.join(FORMATS)}")
        if not _positive_int(rows_per_shard):
            raise DataError(f"{self.directory}: rows_per_shard must be a positive int, got {rows_per_shard!r}")
        if num_classes is not None and not _positive_int(num_classes):
            raise DataError(f"{self.directory}: num_classes must be a positive int or None, got {num_classes!r}")
        self._refuse_finished()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.format = format
        self._rows_per_shard = rows_per_shard
        self._num_classes = num_classes
        self._feature_shape = None if feature_shape is None else tuple(int(s) for s in feature_shape)
        self._layout: Layout | None = None  # fixed by the first chunk
        self._pending: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {s: [] for s in SPLITS}
        self._shards: dict[str, list[ShardEntry]] = {s: [] for s in SPLITS}
        self._closed = False

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # no manifest: the directory stays an unfinished write
            self._closed = True

    def _refuse_finished(self) -> None:
        path = self.directory / MANIFEST
        if path.exists() or path.is_symlink():
            raise DataError(f"{path}: already exists; write a new data set into an empty directory")

    def append(self, split: str, x_chunk: object, y_chunk: object) -> None:
        """Adds rows x (m, *feature_shape) with targets y (m,) / (m, k) to `split`."""
        if self._closed:
            raise DataError(f"{self.directory}: the writer is closed")
        if split not in SPLITS:
            raise DataError(f"{self.directory}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        x, y = self._checked_chunk(x_chunk, y_chunk)
        pending = self._pending[split]
        start = 0
        while start < len(x):
            room = self._rows_per_shard - sum(len(p[0]) for p in pending)
            stop = min(len(x), start + room)
            if stop - start < room:  # kept past this call: copy, so the caller's chunk is not pinned
                pending.append((x[start:stop].copy(), y[start:stop].copy()))
            else:
                pending.append((x[start:stop], y[start:stop]))
                self._flush(split)
            start = stop

    def _flush(self, split: str) -> None:
        """Writes the pending rows of `split` as its next shard."""
        parts = self._pending[split]
        if not parts:
            return
        names = shard_names(self.format, split, len(self._shards[split]))
        paths = [self.directory / name for name in names]
        files = _WRITERS[self.format](paths, self._layout, [p[0] for p in parts], [p[1] for p in parts])
        self._shards[split].append(ShardEntry(sum(len(p[0]) for p in parts), files))
        parts.clear()

    def close(self) -> None:
        """Writes the last short shards, the statistics and then manifest.json; a no-op once closed."""
        if self._closed:
            return
        for split in SPLITS:
            self._flush(split)
        if not self._shards["train"]:
            raise DataError(f"{self.directory}: no rows were appended to the 'train' split")
        splits = {}
        for split, entries in self._shards.items():
            if entries:
                rows = ShardSet(self.directory, self.format, self._layout, entries)
                stats = feature_stats(rows.blocks, len(rows))
                splits[split] = SplitInfo(len(rows), tuple(entries), stats)
        self._refuse_finished()
        write_json(self.directory / MANIFEST, manifest_json(self.format, self._layout, splits))
        self._closed = True

    def _checked_chunk(self, x_chunk: object, y_chunk: object) -> tuple[np.ndarray, np.ndarray]:
        """x (m, *feature_shape) in the stored dtype and y (m,) int32 / (m, k) float32, checked."""
        x = _real_array(x_chunk, "features", self.directory)
        if x.ndim == 0:
            raise DataError(f"{self.directory}: features must have a leading example axis, got a scalar")
        if x.ndim == 1:
            x = x[:, None]
        if x.dtype.name not in X_DTYPES:
            x = x.astype(np.float32)
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise DataError(f"{self.directory}: features contain NaN or Inf")
        y = self._checked_targets(_real_array(y_chunk, "targets", self.directory), len(x))
        layout = self._layout_of(x, y)
        return x.reshape(len(x), *layout.feature_shape), y

    def _checked_targets(self, y: np.ndarray, rows: int) -> np.ndarray:
        """Labels (m,) int32 in [0, K), or targets (m, k) float32, all finite."""
        where = self.directory
        if y.shape[:1] != (rows,):
            raise DataError(f"{where}: {rows} feature rows but targets have shape {y.shape}")
        nc = self._num_classes
        if nc is not None:
            if y.ndim != 1 or y.dtype.kind not in "biu":
                raise DataError(f"{where}: class labels must be a 1-D integer array, got {y.shape} {y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= nc):
                bad = int(y.min()) if y.min() < 0 else int(y.max())
                raise DataError(f"{where}: label {bad} outside [0, {nc})")
            return y.astype(np.int32)
        if y.dtype.kind != "f" or y.ndim not in (1, 2):
            raise DataError(
                f"{where}: regression targets must be (m,) or (m, k) floats, got {y.shape} {y.dtype} "
                "(pass num_classes for class labels)"
            )
        if not np.isfinite(y).all():
            raise DataError(f"{where}: targets contain NaN or Inf")
        y = y.astype(np.float32)
        return y[:, None] if y.ndim == 1 else y

    def _layout_of(self, x: np.ndarray, y: np.ndarray) -> Layout:
        """The layout the chunk (x, y) has; the first chunk fixes it, later ones must match it."""
        shape = self._feature_shape or tuple(x.shape[1:])
        if tuple(x.shape[1:]) not in (shape, (math.prod(shape),)):
            raise DataError(f"{self.directory}: chunk rows have shape {tuple(x.shape[1:])}, the set's are {shape}")
        layout = Layout(shape, x.dtype, y.dtype, tuple(y.shape[1:]), self._num_classes)
        if self._layout is None:
            self._layout, self._feature_shape = layout, shape
        elif layout != self._layout:
            old = self._layout
            raise DataError(
                f"{self.directory}: chunk x {x.dtype} with targets {tuple(y.shape[1:])} does not match the "
                f"earlier chunks' x {old.x_dtype} with targets {old.target_shape}"
            )
        return layout


def _positive_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _real_array(value: object, what: str, where: Path) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: {what} must be a real numeric array, got dtype {array.dtype}")
    return array
