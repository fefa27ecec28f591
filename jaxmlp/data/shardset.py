"""The shards of one split read as one array of rows: global row -> (shard, local row).

`ShardSet.rows` is called from background threads at once, so it keeps no mutable state:
every call sorts its own indices, gathers each shard's rows and scatters them into fresh
output arrays. The gathers of a call's pieces (a shard's rows, PIECE_ROWS at a time) run on a
shared pool of READERS threads: numpy's fancy indexing releases the GIL, so the page faults of
a set on disk overlap and the disk sees a queue of READERS reads, not one at a time (a random
4 KiB read waits ~60 us on a virtual disk; the pieces write disjoint rows of the output).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from jaxmlp.data.errors import DataError
from jaxmlp.data.preprocess import STATS_BLOCK
from jaxmlp.data.shardlayout import Layout, ShardEntry
from jaxmlp.data.shardnpy import NpyShard
from jaxmlp.data.shardrecord import RecordShard

_SHARD_TYPES = {"npy": NpyShard, "arrayrecord": RecordShard}
READERS = 32  # threads gathering pieces at once (the disk's queue depth)
PIECE_ROWS = 256  # at most this many rows of one shard per gather
_pool: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None  # (pid, pool): a fork's child makes its own
_pool_lock = threading.Lock()


def _reader_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool of READERS gathering threads, made on first use."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), concurrent.futures.ThreadPoolExecutor(READERS, thread_name_prefix="jaxmlp-shards"))
        return _pool[1]


class ShardSet:
    """Rows of the shards `entries` of a `fmt` data set in `directory`, opened and checked."""

    def __init__(self, directory: Path, fmt: str, layout: Layout, entries: Sequence[ShardEntry]):
        self.layout = layout
        self._stamps = {}  # path -> (size, mtime_ns) when opened
        self._shards = []
        for entry in entries:
            paths = [directory / f.name for f in entry.files]
            for path, f in zip(paths, entry.files):
                self._stamps[path] = _stamp(path, f.bytes)
            self._shards.append(_SHARD_TYPES[fmt](paths, layout, entry.rows))
        self._starts = np.cumsum([0] + [e.rows for e in entries])  # (S + 1,) first global row of each shard

    def __len__(self) -> int:
        return int(self._starts[-1])

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (..., D) float32 (uint8 scaled to [0, 1]) and y (...) int32 / (..., k) float32 at `indices` (...)."""
        indices = np.asarray(indices)
        if not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"row indices must be integers, got dtype {indices.dtype}")
        flat = indices.reshape(-1)  # (m,)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"row indices must lie in [0, {len(self)}), got {flat.min()}..{flat.max()}")
        lay = self.layout
        x = np.empty((flat.size, lay.num_features), dtype=np.float32)  # (m, D)
        y = np.empty((flat.size, *lay.target_shape), dtype=lay.y_out_dtype)  # (m,) or (m, k)
        order = np.argsort(flat, kind="stable")  # sorted rows read each shard front to back
        ordered = flat[order]
        cuts = np.searchsorted(ordered, self._starts)  # (S + 1,) where each shard's rows begin in `ordered`
        pieces = [(s, a, min(a + PIECE_ROWS, cuts[s + 1])) for s in np.flatnonzero(np.diff(cuts))
                  for a in range(cuts[s], cuts[s + 1], PIECE_ROWS)]

        def gather(piece: tuple[int, int, int]) -> None:  # shard s's rows ordered[a:b] into x, y
            s, a, b = piece
            xs, ys = self._shards[s].take(ordered[a:b] - self._starts[s])
            self._check_values(s, xs, ys)
            x[order[a:b]] = xs
            y[order[a:b]] = ys

        if len(pieces) > 1:
            list(_reader_pool().map(gather, pieces))  # raises the first failed piece's error, as in order
        elif pieces:
            gather(pieces[0])
        if lay.x_dtype == np.uint8:
            x /= np.float32(255.0)  # exactly features_from_array's scaling: float32 cast, then / 255
        return x.reshape(*indices.shape, lay.num_features), y.reshape(*indices.shape, *lay.target_shape)

    def _check_values(self, shard: int, xs: np.ndarray, ys: np.ndarray) -> None:
        """What a Dataset refuses, checked on the rows read: non-finite values, labels out of range."""
        path = self._shards[shard].paths[0]
        if self.layout.x_dtype != np.uint8 and not np.isfinite(xs).all():
            raise DataError(f"{path}: features contain NaN or Inf")
        nc = self.layout.num_classes
        if nc is None and not np.isfinite(ys).all():
            raise DataError(f"{self._shards[shard].paths[-1]}: targets contain NaN or Inf")
        if nc is not None and ys.size and (ys.min() < 0 or ys.max() >= nc):
            bad = int(ys.min()) if ys.min() < 0 else int(ys.max())
            raise DataError(f"{self._shards[shard].paths[-1]}: label {bad} outside [0, {nc})")

    def blocks(self) -> Iterator[np.ndarray]:
        """x of every row in order, as (STATS_BLOCK, D) float32 blocks cut at the same global
        rows as `preprocess.fit_feature_stats` cuts a data set in memory."""
        for start in range(0, len(self), STATS_BLOCK):
            yield self.rows(np.arange(start, min(start + STATS_BLOCK, len(self))))[0]

    def check_unchanged(self) -> None:
        """DataError naming the first shard file whose size or mtime changed since opening, or that vanished."""
        for path, (size, mtime) in self._stamps.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise DataError(f"{path}: shard file vanished since the data set was opened") from None
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                raise DataError(
                    f"{path}: shard file changed since the data set was opened "
                    f"(size {size} -> {st.st_size}, mtime_ns {mtime} -> {st.st_mtime_ns})"
                )


def _stamp(path: Path, manifest_bytes: int) -> tuple[int, int]:
    """(size, mtime_ns) of shard file `path`; DataError if it is missing or not the size the manifest says."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: missing shard file (listed in the manifest)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read shard file ({exc.strerror})") from None
    if st.st_size != manifest_bytes:
        raise DataError(f"{path}: {st.st_size} bytes, the manifest says {manifest_bytes} (truncated or rewritten?)")
    return st.st_size, st.st_mtime_ns
