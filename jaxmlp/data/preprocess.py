"""Preprocessing: pixel scaling, flattening, train-only standardization, seeded splits.

All randomness is explicit: functions take a JAX key or an int seed and build a local
`numpy.random.Generator` from it (no global RNG).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple, Union

import jax
import numpy as np

from jaxmlp.data.dataset import DataError, Dataset

KeyOrSeed = Union[int, np.integer, jax.Array]


class FeatureStats(NamedTuple):
    """Per-feature statistics fitted on a training split."""

    mean: np.ndarray  # (D,) float32
    std: np.ndarray  # (D,) float32, constant features get std 1 so they map to 0

    def apply(self, dataset: Dataset) -> Dataset:
        """(x - mean) / std, as a new Dataset."""
        if dataset.num_features != self.mean.shape[0]:
            raise DataError(
                f"{dataset.name}: has {dataset.num_features} features, statistics were fitted on "
                f"{self.mean.shape[0]}"
            )
        if hasattr(dataset, "rows"):  # on disk (data.streamed): standardized as its rows are read
            return dataset.standardized(self)
        return dataclasses.replace(dataset, x=(dataset.x - self.mean) / self.std)


def numpy_rng(key_or_seed: KeyOrSeed) -> np.random.Generator:
    """A local numpy Generator derived from an int seed or a JAX PRNG key."""
    if isinstance(key_or_seed, (int, np.integer)) and not isinstance(key_or_seed, bool):
        return np.random.default_rng(int(key_or_seed))
    try:
        bits = jax.random.bits(key_or_seed, (4,), dtype=np.uint32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"expected an int seed or a JAX PRNG key, got {key_or_seed!r}") from exc
    return np.random.default_rng(np.asarray(bits))


def scale_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 pixels (any shape) -> float32 in [0, 1], same shape."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(f"scale_uint8 expects uint8 pixels, got dtype {images.dtype}")
    return images.astype(np.float32) / np.float32(255.0)


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, *feature_shape) -> (N, prod(feature_shape)); (N,) -> (N, 1)."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise DataError("flatten expects an array with a leading example axis, got a scalar")
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


STATS_BLOCK = 8192  # rows per block of `feature_stats`; fixed, so every reader of the same rows sums the same blocks


def fit_feature_stats(train: Dataset, eps: float = 1e-8) -> FeatureStats:
    """Per-feature mean and std of `train.x` (N, D); std < eps is replaced by 1."""
    x, n = train.x, len(train)
    return feature_stats(lambda: (x[start : start + STATS_BLOCK] for start in range(0, n, STATS_BLOCK)), n, eps)


def feature_stats(
    blocks: Callable[[], Iterable[np.ndarray]], n: int, eps: float = 1e-8
) -> FeatureStats:
    """Per-feature mean and std of `n` rows that `blocks()` yields as consecutive float32 blocks.

    Each call of `blocks()` must yield the rows in order, cut into blocks of `STATS_BLOCK`
    rows (the last one shorter): (STATS_BLOCK, D) float32 each. Two passes in float64
    (mean, then squared deviations); the float64 sums depend on how the rows are cut, so
    a data set in memory and the same rows read from shards give the same bits only
    because both are cut at the same global rows. std < eps is replaced by 1.
    """
    total = None
    for block in blocks():
        part = block.astype(np.float64).sum(axis=0)  # (D,)
        total = part if total is None else total + part
    if total is None or n < 1:
        raise DataError(f"feature statistics need at least one row, got {n}")
    mean = total / n
    sq = np.zeros_like(mean)
    for block in blocks():
        d = block.astype(np.float64) - mean  # (STATS_BLOCK, D)
        sq += np.einsum("ij,ij->j", d, d)
    std = np.sqrt(sq / n)
    std = np.where(std < eps, 1.0, std)
    return FeatureStats(mean.astype(np.float32), std.astype(np.float32))


def standardize(train: Dataset, *others: Dataset | None) -> tuple:
    """Fits mean/std on `train` only and applies them to `train` and every other split.

    Returns ``(train_std, *others_std, stats)``; a None in `others` stays None, e.g.
    ``train, val, test, stats = standardize(train, None, test)``.
    """
    # a split on disk brings its statistics in its manifest, computed when it was written as fit_feature_stats would
    stats = train.stats if hasattr(train, "rows") else fit_feature_stats(train)
    out = [stats.apply(train)]
    out += [None if d is None else stats.apply(d) for d in others]
    return (*out, stats)


def stratified_split(
    key_or_seed: KeyOrSeed, dataset: Dataset, val_fraction: float
) -> tuple[Dataset, Dataset]:
    """Seeded split into (train, val) with ``round(val_fraction * N)`` validation examples.

    For classification each class contributes in proportion to its size (largest
    remainder rounding), so class proportions match in both parts; for regression the
    split is a plain random permutation. Order inside each part follows the original order.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"{dataset.name}: val_fraction must be in (0, 1), got {val_fraction}")
    n = len(dataset)
    n_val = int(round(val_fraction * n))
    if not 1 <= n_val <= n - 1:
        raise DataError(
            f"{dataset.name}: val_fraction={val_fraction} of {n} examples leaves an empty "
            "train or validation split"
        )
    rng = numpy_rng(key_or_seed)
    if dataset.num_classes is None:
        val_idx = rng.permutation(n)[:n_val]
    else:
        val_idx = _stratified_pick(rng, dataset.y, n_val)
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    return dataset.subset(~is_val), dataset.subset(is_val)


def _stratified_pick(rng: np.random.Generator, labels: np.ndarray, n_pick: int) -> np.ndarray:
    """Indices of `n_pick` examples, each class represented in proportion to its count."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n_pick / labels.shape[0])
    take = np.floor(quota).astype(np.int64)
    short = n_pick - int(take.sum())
    if short > 0:  # largest remainder first; ties broken at random
        order = np.lexsort((rng.random(len(classes)), -(quota - take)))
        take[order[:short]] += 1
    picked = [
        rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take) if k > 0
    ]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def subsample(key_or_seed: KeyOrSeed, dataset: Dataset, n: int) -> Dataset:
    """A seeded random subset of `n` examples (stratified for classification), in original order."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"{dataset.name}: n_samples must be a positive int, got {n!r}")
    if n > len(dataset):
        raise DataError(f"{dataset.name}: n_samples={n} exceeds the {len(dataset)} available examples")
    if n == len(dataset):
        return dataset
    rng = numpy_rng(key_or_seed)
    if dataset.num_classes is None:
        idx = rng.permutation(len(dataset))[:n]
    else:
        idx = _stratified_pick(rng, dataset.y, n)
    return dataset.subset(np.sort(idx))
