"""A split of a sharded data set read from disk by rows: `open_streamed`, `StreamedDataset`.

For data larger than memory: the trainer asks for the rows of each batch (`rows`), from
background threads, and never holds the split. `rows` returns exactly what the resident
path holds for those rows (a `Dataset` standardized by `FeatureStats.apply`), bit for bit;
`load` is the whole split as that `Dataset`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from jaxmlp.data.dataset import Dataset
from jaxmlp.data.errors import DataError
from jaxmlp.data.manifestfile import read_manifest
from jaxmlp.data.preprocess import FeatureStats
from jaxmlp.data.shardset import ShardSet


class StreamedDataset:
    """One split of the data set in a directory, opened (every shard checked against the manifest)."""

    def __init__(self, directory: Path, split: str, standardize: FeatureStats | None):
        manifest = read_manifest(directory)
        info = manifest.split(split)
        self.name = f"{manifest.format}:{directory}[{split}]"
        self.num_classes = manifest.num_classes
        self.feature_shape = manifest.feature_shape
        self.target_shape = manifest.target_shape
        self.stats = info.stats  # of this split, from the manifest
        self._rows = ShardSet(directory, manifest.format, manifest.layout, info.shards)
        self._standardize = None if standardize is None else _checked_stats(standardize, self)

    @property
    def num_features(self) -> int:
        """D, the width of a row of `rows`' x."""
        return self._rows.layout.num_features

    @property
    def is_classification(self) -> bool:
        return self.num_classes is not None

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"StreamedDataset({self.name!r}, rows={len(self)}, feature_shape={self.feature_shape})"

    @property
    def nbytes(self) -> int:
        """Bytes of x (float32) and y (int32 or float32) in memory: what `load` would take."""
        per_row = 4 * (self.num_features + int(np.prod(self.target_shape)))
        return len(self) * per_row

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (..., D) float32 and y (...) int32 / (..., k) float32 at global rows `indices` (...).

        Any order, repeats allowed; standardized as `FeatureStats.apply` does when opened with
        statistics. Safe to call from several threads at once.
        """
        x, y = self._rows.rows(indices)
        if self._standardize is not None:
            mean, std = self._standardize
            x -= mean  # in place, but the same float32 operations as (x - mean) / std
            x /= std
        return x, y

    def standardized(self, stats: FeatureStats) -> StreamedDataset:
        """This split read standardized by `stats` ((x - mean) / std per row, as FeatureStats.apply)."""
        view = copy.copy(self)
        view._standardize = _checked_stats(stats, self)
        return view

    def load(self) -> Dataset:
        """The whole split in memory, as `rows(arange(len))` gives it."""
        x, y = self.rows(np.arange(len(self)))
        return Dataset(x=x, y=y, name=self.name, num_classes=self.num_classes, feature_shape=self.feature_shape)

    def check_unchanged(self) -> None:
        """DataError naming the first shard file whose size or mtime changed since opening, or that vanished."""
        self._rows.check_unchanged()


def _checked_stats(stats: FeatureStats, dataset: StreamedDataset) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as the (D,) float32 arrays the rows are standardized by."""
    mean, std = (np.asarray(a, dtype=np.float32) for a in stats)
    if mean.shape != (dataset.num_features,) or std.shape != (dataset.num_features,):
        raise DataError(
            f"{dataset.name}: has {dataset.num_features} features, statistics were fitted on {mean.size}"
        )
    return mean, std


def open_streamed(directory: str | Path, split: str = "train", *, standardize: FeatureStats | None = None) -> StreamedDataset:
    """Opens `split` of the sharded data set in `directory` (see `jaxmlp.data.manifest`).

    standardize: statistics to standardize every row by (the loader passes the train split's,
    `read_manifest(directory).stats("train")`), or None for the raw features.
    """
    return StreamedDataset(Path(directory), split, standardize)
