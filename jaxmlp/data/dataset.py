"""The validated in-memory data set: `Dataset`, `DataSplits`, `from_arrays` (and `DataError`).

Every loader in `jaxmlp.data` ends by building a `Dataset`, so the checks in
`Dataset.__post_init__` are the last line of defence against bad input: 2-D float
features, finite values, matching lengths, labels inside ``[0, num_classes)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from jaxmlp.data.errors import DataError
from jaxmlp.data.labels import interpret_targets


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class Dataset:
    """Features and targets of one split, already flattened and validated.

    Attributes:
        x: (N, D) float32 features, all finite.
        y: (N,) int32 class labels in ``[0, num_classes)`` for classification, or
           (N, k) float32 finite targets for regression.
        name: human-readable origin (data set name or file path), used in error messages.
        num_classes: number of classes, or None for regression.
        feature_shape: original per-example shape, e.g. (28, 28), (32, 32, 3) or (2,);
           ``prod(feature_shape) == D``. Defaults to ``(D,)``.
    """

    x: np.ndarray
    y: np.ndarray
    name: str = "dataset"
    num_classes: int | None = None
    feature_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        x, y, feature_shape = _validated(self.x, self.y, self.name, self.num_classes, self.feature_shape)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "feature_shape", feature_shape)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        task = "regression" if self.num_classes is None else f"num_classes={self.num_classes}"
        return (
            f"Dataset(name={self.name!r}, x={self.x.shape} {self.x.dtype}, "
            f"y={self.y.shape} {self.y.dtype}, {task}, feature_shape={self.feature_shape})"
        )

    @property
    def num_features(self) -> int:
        """D, the width of `x`."""
        return int(self.x.shape[1])

    @property
    def target_shape(self) -> tuple[int, ...]:
        """The shape of one example's target: () for a class label, (k,) for k regression targets."""
        return tuple(int(s) for s in self.y.shape[1:])

    @property
    def is_classification(self) -> bool:
        return self.num_classes is not None

    def subset(self, indices: np.ndarray, name: str | None = None) -> Dataset:
        """The examples at `indices` (an int array or boolean mask), as a new Dataset."""
        return dataclasses.replace(
            self, x=self.x[indices], y=self.y[indices], name=self.name if name is None else name
        )


class DataSplits(NamedTuple):
    """Train split plus optional validation and test splits."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None


def _validated(
    x: object, y: object, name: str, num_classes: int | None, feature_shape: tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Checks every Dataset invariant and returns (x float32, y int32 | float32, feature_shape)."""
    if not isinstance(name, str):
        raise DataError(f"Dataset name must be a str, got {type(name).__name__}")
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise DataError(f"{name}: features must be a 2-D (N, D) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(
            f"{name}: features must be floating point, got dtype {x.dtype} "
            "(use scale_uint8 for images or from_arrays to convert)"
        )
    n, d = x.shape
    if n == 0:
        raise DataError(f"{name}: empty data set (0 examples)")
    if d == 0:
        raise DataError(f"{name}: examples have no features (D = 0)")
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise DataError(
            f"{name}: features contain NaN or Inf ({int((~finite).sum())} bad values, "
            f"first at example {row}, feature {col})"
        )

    if y.shape[:1] != (n,):
        raise DataError(f"{name}: {n} feature rows but targets have shape {y.shape}")
    if num_classes is None:
        y = _validated_regression_targets(y, name)
    else:
        y = _validated_labels(y, name, num_classes)

    if feature_shape is None:
        feature_shape = (d,)
    feature_shape = tuple(int(s) for s in feature_shape)
    if any(s <= 0 for s in feature_shape) or math.prod(feature_shape) != d:
        raise DataError(f"{name}: feature_shape {feature_shape} does not multiply out to D = {d}")
    return x, y, feature_shape


def _validated_labels(y: np.ndarray, name: str, num_classes: int) -> np.ndarray:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise DataError(f"{name}: num_classes must be a positive int or None, got {num_classes!r}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{name}: class labels must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}"
        )
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        kind = "negative" if y[i] < 0 else "too large"
        raise DataError(
            f"{name}: label {int(y[i])} at example {i} is {kind}; "
            f"labels must lie in [0, {num_classes}) ({int(bad.sum())} bad label(s))"
        )
    return y.astype(np.int32, copy=False)


def _validated_regression_targets(y: np.ndarray, name: str) -> np.ndarray:
    if y.ndim != 2 or y.shape[1] == 0 or not np.issubdtype(y.dtype, np.floating):
        raise DataError(
            f"{name}: regression targets must be a 2-D (N, k) float array, got shape {y.shape} "
            f"dtype {y.dtype} (pass num_classes for integer class labels)"
        )
    y = y.astype(np.float32, copy=False)
    finite = np.isfinite(y)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise DataError(f"{name}: targets contain NaN or Inf (first at example {row})")
    return y


def features_from_array(x: object, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Any numeric (N, ...) array -> ((N, D) float32, feature_shape); uint8 is scaled to [0, 1]."""
    x = np.asarray(x)
    if x.dtype == object or not (
        np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)
    ) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{name}: features must be a real numeric array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise DataError(f"{name}: features must have a leading example axis, got a scalar")
    if x.ndim == 1:
        x = x[:, None]
    feature_shape = tuple(int(s) for s in x.shape[1:])
    flat = x.reshape(x.shape[0], math.prod(feature_shape)).astype(np.float32)
    if x.dtype == np.uint8:
        flat /= np.float32(255.0)
    return flat, feature_shape


def from_arrays(
    x: object,
    y: object,
    *,
    name: str = "arrays",
    num_classes: int | None = None,
    task: str = "auto",
) -> Dataset:
    """Builds a validated Dataset from numpy-compatible arrays.

    Args:
        x: (N, ...) numeric features; flattened to (N, D) float32, uint8 scaled to [0, 1].
        y: (N,) integer labels (classification) or (N,) / (N, k) float targets (regression).
        name: used in error messages.
        num_classes: force classification with this many classes (taken as given).
        task: "auto", "classification" or "regression" (rules in `jaxmlp.data.labels`).
            "auto": a 1-D integer (or bool) `y` means classification, anything float
            regression, except float labels that are class labels but for a few
            fractional values (at most max(1, N // 20) of them), which raise DataError
            naming the first such example.

    An inferred class count is ``max(y) + 1``; with U distinct label values it must be
    at most ``max(2 * U, U + 1000)`` and at most 100_000, else DataError naming the
    largest label and U (see `jaxmlp.data.labels.class_count`).
    """
    x, feature_shape = features_from_array(x, name)
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_)):
        raise DataError(f"{name}: targets must be a numeric array, got dtype {y.dtype}")
    if y.shape[:1] != x.shape[:1]:
        raise DataError(f"{name}: {x.shape[0]} examples but targets have shape {y.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{name}: empty data set (0 examples)")
    if np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{name}: targets must be real numbers, got dtype {y.dtype}")
    y, num_classes = interpret_targets(y, name=name, task=task, num_classes=num_classes)
    return Dataset(x=x, y=y, name=name, num_classes=num_classes, feature_shape=feature_shape)
