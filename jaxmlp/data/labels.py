"""Targets to task: are the labels classes or regression targets, and how many classes?

Two rules, kept here so every loader applies the same ones (from_arrays, and through it
the npz loader; the csv loader; the IDX loader's class count).

Task. ``task`` is "auto", "classification" or "regression".
    "regression": the targets are real numbers, always (integers too).
    "classification": the labels must be 1-D whole numbers >= 0; the first one that is
        not raises DataError naming its row and value.
    "auto": a 1-D integer (or bool) array means classification; floats mean regression
        (a csv has no dtypes: its loader reads a column of whole numbers as integers),
        except for the MIXED case, which raises DataError naming the first fractional
        row: floats of which
          - at least one and at most ``max(1, N // 20)`` values (a single one, or up to
            5% of the N labels) are fractional, and
          - the whole-number rest would pass as class labels on its own (all >= 0,
            and its class count passes the class-count rule below).
        That is the signature of class labels with a stray value (a typo such as 1.5)
        that would otherwise turn a classification set silently into regression; real
        regression targets have many fractional values or do not look like classes.
        Pass task="regression" to keep such a column as regression targets.

Whole number: a finite value that equals its rounding, of magnitude below 2**53 (beyond
that float64 cannot tell integers apart).

Class count. With K classes (``max label + 1``, or a count a file declares) and U the
number of distinct label values, K must satisfy
    K <= MAX_CLASSES (100_000)  and  K <= max(2 * U, U + SPARE_CLASSES)  (SPARE_CLASSES = 1000),
i.e. at most half of the class ids, or at most 1000 of them, may be unused. A label of
1e9 among a handful of values would otherwise size the output layer at a billion units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxmlp.data.errors import DataError
from jaxmlp.names import TASKS

MAX_CLASSES = 100_000
SPARE_CLASSES = 1_000
_EXACT = 2.0**53  # float64 holds every integer below this exactly


def example_row(i: int) -> str:
    """How an error names row `i` of an array: ``example 3``."""
    return f"example {i}"


def check_task(task: object) -> str:
    """`task` itself, if it is one of TASKS; DataError otherwise."""
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    return task


def whole_numbers(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the entries that are whole numbers (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.abs(values) < _EXACT) & (values == np.round(values))


def class_limit(distinct: int) -> int:
    """The largest class count accepted for labels with `distinct` distinct values."""
    return min(MAX_CLASSES, max(2 * distinct, distinct + SPARE_CLASSES))


def class_count(labels: np.ndarray, name: str, declared: int | None = None) -> int:
    """K for non-negative integer `labels` (all splits together): `declared`, else max + 1.

    Raises DataError, naming the largest label and the number of distinct values, when K
    breaks the class-count rule of the module docstring.
    """
    top = int(np.max(labels))
    distinct = int(np.unique(labels).size)
    count = top + 1 if declared is None else int(declared)
    limit = class_limit(distinct)
    if count > limit:
        if declared is None:
            claim = f"largest label {top} means {count} classes"
        else:
            claim = f"num_classes {count} is declared (largest label {top})"
        raise DataError(
            f"{name}: {claim}, but only {distinct} distinct label values occur; at most {limit} "
            f"classes are accepted (max(2 x distinct, distinct + {SPARE_CLASSES}), at most "
            f"{MAX_CLASSES}): number the classes 0..{distinct - 1}, or pass task='regression'"
        )
    return count


def interpret_targets(
    y: np.ndarray,
    *,
    name: str,
    task: str = "auto",
    num_classes: int | None = None,
    row: Callable[[int], str] = example_row,
) -> tuple[np.ndarray, int | None]:
    """Applies the task rule to numeric (N,) or (N, k) `y`.

    Returns ``(labels (N,) int64, num_classes)`` for classification, where num_classes is
    the given one or the inferred one (class-count rule applied), or ``(targets (N, k)
    float32, None)`` for regression. `num_classes` implies classification; `row(i)` names
    row i in error messages (e.g. ``line 7`` for a csv).
    """
    check_task(task)
    if num_classes is not None:
        if task == "regression":
            raise DataError(f"{name}: num_classes={num_classes} was given, but task='regression'")
        task = "classification"
    if task == "auto":
        task = _auto_task(y, name, row)
    if task == "regression":
        targets = y.astype(np.float32)
        return (targets[:, None] if targets.ndim == 1 else targets), None
    labels = _class_labels(y, name, row)
    if num_classes is None:
        num_classes = class_count(labels, name)
    return labels.astype(np.int64), num_classes


def _integral(y: np.ndarray) -> bool:
    return np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)


def _auto_task(y: np.ndarray, name: str, row: Callable[[int], str]) -> str:
    if y.ndim != 1:
        return "regression"
    if _integral(y):
        return "classification"
    whole = whole_numbers(y)
    fractional = int(np.count_nonzero(~whole))
    if not np.isfinite(y).all() or not 1 <= fractional <= max(1, y.size // 20):
        return "regression"
    rest = y[whole]
    if rest.size == 0 or rest.min() < 0 or rest.max() + 1 > class_limit(np.unique(rest).size):
        return "regression"
    i = int(np.argmin(whole))
    raise DataError(
        f"{name}: label {y[i]:g} at {row(i)} is not a whole number, but {rest.size} of the {y.size} "
        "labels are class labels; fix that row, or pass task='regression' to read all labels as "
        "regression targets"
    )


def _class_labels(y: np.ndarray, name: str, row: Callable[[int], str]) -> np.ndarray:
    """`y` checked as 1-D non-negative whole numbers (dtype unchanged)."""
    if y.ndim != 1:
        raise DataError(f"{name}: class labels must be a 1-D array, got shape {y.shape}")
    if not _integral(y):
        whole = whole_numbers(y)
        if not whole.all():
            i = int(np.argmin(whole))
            raise DataError(
                f"{name}: label {y[i]:g} at {row(i)} is not a whole number; class labels must "
                "be integers 0, 1, 2, ... (or pass task='regression')"
            )
    if y.size and y.min() < 0:
        i = int(np.argmin(y))
        raise DataError(
            f"{name}: negative class label {y[i]:g} at {row(i)}; class labels must lie in "
            "[0, num_classes)"
        )
    return y
