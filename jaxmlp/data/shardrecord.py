"""The arrayrecord shard format: one ``{split}-{i:05d}.array_record`` file per shard.

Each record is one row, `Layout.record_dtype`: x's bytes then y's, packed little-endian.
Written with array_record's ArrayRecordWriter (group_size 1, so any record is read without
decoding its neighbours), read with grain's ArrayRecordDataSource. Both come with grain, an
optional dependency, imported only when such a shard is opened or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxmlp.data.errors import DataError
from jaxmlp.data.shardlayout import Layout, ShardFile, finished_file


def _grain(path: Path):
    """(ArrayRecordWriter, ArrayRecordDataSource), or DataError saying how to install them."""
    try:
        from array_record.python.array_record_module import ArrayRecordWriter
        from grain.sources import ArrayRecordDataSource
    except ImportError:
        raise DataError(
            f"{path}: the arrayrecord format needs grain; install it with pip install 'jaxmlp[stream]'"
        ) from None
    return ArrayRecordWriter, ArrayRecordDataSource


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class RecordShard:
    """A shard in one ArrayRecord file, read by local row."""

    def __init__(self, paths: Sequence[Path], layout: Layout, rows: int):
        (path,) = paths
        _, source_type = _grain(path)
        self.paths = (path,)
        self.rows = rows
        self._record = layout.record_dtype
        try:
            self._source = source_type(str(path))  # counts the records: opens and checks the file
            count = len(self._source)
            first = self._source[0] if count else b""
        except (RuntimeError, ValueError, OSError) as exc:
            raise DataError(f"{path}: not a readable ArrayRecord file ({_first_line(exc)})") from None
        if count != rows:
            raise DataError(f"{path}: holds {count} records, the manifest says {rows} rows")
        if len(first) != self._record.itemsize:
            raise DataError(
                f"{path}: records of {len(first)} bytes, the manifest's row layout needs {self._record.itemsize}"
            )

    def take(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (k, D) and y (k,) / (k, K) at sorted local rows `local` (k,), in the file's dtypes."""
        try:
            records = self._source.__getitems__(local.tolist())
        except (RuntimeError, ValueError, OSError) as exc:
            raise DataError(f"{self.paths[0]}: cannot read records ({_first_line(exc)})") from None
        raw = b"".join(records)
        if len(raw) != len(records) * self._record.itemsize:
            raise DataError(f"{self.paths[0]}: a record is not {self._record.itemsize} bytes long")
        rows = np.frombuffer(raw, dtype=self._record)  # (k,) packed records
        return rows["x"], rows["y"]


def write_record_shard(
    paths: Sequence[Path], layout: Layout, x_parts: Sequence[np.ndarray], y_parts: Sequence[np.ndarray]
) -> tuple[ShardFile, ...]:
    """Writes one shard from consecutive parts (x (m, *feature_shape), y (m,) / (m, k)), a record a row."""
    (path,) = paths
    writer_type, _ = _grain(path)
    record = layout.record_dtype
    writer = writer_type(str(path), "group_size:1")
    try:
        for x, y in zip(x_parts, y_parts):
            rows = np.empty(len(x), dtype=record)  # (m,) packed records
            rows["x"] = x.reshape(len(x), layout.num_features)
            rows["y"] = y
            raw = rows.tobytes()
            for start in range(0, len(raw), record.itemsize):
                writer.write(raw[start : start + record.itemsize])
    finally:
        writer.close()
    return (finished_file(path),)
