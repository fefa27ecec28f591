"""What a sharded data set's rows look like on disk: formats, dtypes, file names, the row record.

Shared by the writer (`jaxmlp.data.manifest`), the manifest reader (`manifestfile`) and the
per-format shard readers (`shardnpy`, `shardrecord`), so each states the layout once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

FORMATS = ("npy", "arrayrecord")
SPLITS = ("train", "val", "test")
X_DTYPES = ("float32", "float16", "uint8")  # uint8 is scaled to [0, 1] on read, as features_from_array does
LABEL_DTYPES = ("int32", "int64", "uint8")
TARGET_DTYPES = ("float32",)
FILES_PER_SHARD = {"npy": 2, "arrayrecord": 1}


class Layout(NamedTuple):
    """The fixed shape and dtypes of every row of a data set."""

    feature_shape: tuple[int, ...]
    x_dtype: np.dtype  # one of X_DTYPES
    y_dtype: np.dtype  # one of LABEL_DTYPES (classification) or TARGET_DTYPES (regression)
    target_shape: tuple[int, ...]  # () for class labels, (k,) for regression targets
    num_classes: int | None  # None for regression

    @property
    def num_features(self) -> int:
        """D, the width of a flattened row."""
        return math.prod(self.feature_shape)

    @property
    def record_dtype(self) -> np.dtype:
        """One row as a packed little-endian record: x (D values, C order of feature_shape), then y."""
        return np.dtype([
            ("x", self.x_dtype.newbyteorder("<"), (self.num_features,)),
            ("y", self.y_dtype.newbyteorder("<"), self.target_shape),
        ])

    @property
    def y_out_dtype(self) -> np.dtype:
        """What y is read as: int32 labels or float32 targets (as in a Dataset)."""
        return np.dtype(np.int32 if self.num_classes is not None else np.float32)


class ShardFile(NamedTuple):
    """One file of a shard, as the manifest records it."""

    name: str  # a plain file name inside the data set directory
    bytes: int


class ShardEntry(NamedTuple):
    """One shard: its rows and its files (npy: x then y; arrayrecord: the one record file)."""

    rows: int
    files: tuple[ShardFile, ...]


def shard_names(fmt: str, split: str, index: int) -> tuple[str, ...]:
    """The file names of shard `index` of `split`, in the order ShardEntry.files lists them."""
    stem = f"{split}-{index:05d}"
    if fmt == "npy":
        return (f"{stem}.x.npy", f"{stem}.y.npy")
    return (f"{stem}.array_record",)


def finished_file(path: Path) -> ShardFile:
    """The ShardFile of a file just written, after fsync: the manifest must only name data on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    return ShardFile(path.name, size)
