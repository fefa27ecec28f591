"""User data files: ``.npz`` archives (no pickles) and numeric ``.csv`` tables."""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path

import numpy as np

from jaxmlp.data.dataset import DataError, Dataset, from_arrays
from jaxmlp.data.labels import class_count, check_task, interpret_targets, whole_numbers


def load_npz(path: str | Path, *, task: str = "auto") -> tuple[Dataset, Dataset | None]:
    """(train, test) from an .npz holding arrays ``x`` (N, ...) and ``y`` (N,) or (N, k).

    Optional ``x_test`` / ``y_test`` arrays become the test split (else None), and an
    optional integer scalar ``num_classes`` fixes the class count. Loaded with
    ``allow_pickle=False``: object arrays are refused.

    task: "auto" (default), "classification" or "regression"; with "auto" an npz keeps
    its dtype's meaning: integer 1-D ``y`` means classification with ``max + 1``
    classes, float ``y`` regression, except float class labels with a few fractional
    values, which raise DataError naming the first (`from_arrays`, `jaxmlp.data.labels`).
    The test split takes the task and class count of ``y``. A class count, inferred from
    ``y`` or declared (then checked against ``y`` and ``y_test`` together), must be at
    most ``max(2 * U, U + 1000)`` and at most 100_000 for U distinct label values, else
    DataError naming the largest label and U.
    """
    check_task(task)
    path = Path(path)
    arrays = _read_npz(path)
    num_classes = None
    if "num_classes" in arrays:
        nc = arrays["num_classes"]
        if nc.shape != () or not np.issubdtype(nc.dtype, np.integer):
            raise DataError(f"{path}: 'num_classes' must be an integer scalar, got {nc!r}")
        num_classes = int(nc)
    train = from_arrays(arrays["x"], arrays["y"], name=str(path), num_classes=num_classes, task=task)
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: 'x_test' and 'y_test' must be given together")
    test = None
    if "x_test" in arrays:
        test = from_arrays(arrays["x_test"], arrays["y_test"], name=str(path), num_classes=train.num_classes,
                           task="classification" if train.is_classification else "regression")
        if test.feature_shape != train.feature_shape:
            raise DataError(
                f"{path}: 'x_test' examples have shape {test.feature_shape}, 'x' has {train.feature_shape}"
            )
        if train.y.shape[1:] != test.y.shape[1:]:
            raise DataError(f"{path}: 'y_test' does not match 'y' (shape or task type)")
    if num_classes is not None:
        class_count(np.concatenate([s.y for s in (train, test) if s is not None]), str(path), num_classes)
    return train, test


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays x, y and (where present) x_test, y_test, num_classes of the archive."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc})") from None
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise DataError(f"{path}: not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if not {"x", "y"} <= keys:
                raise DataError(
                    f"{path}: must contain arrays named 'x' and 'y', found {sorted(keys) or 'none'}"
                )
            return {k: npz[k] for k in ("x", "y", "x_test", "y_test", "num_classes") if k in keys}
    except DataError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc).lower():
            raise DataError(
                f"{path}: contains an object array, which would need pickle; store numeric arrays only"
            ) from None
        raise DataError(f"{path}: cannot read .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: corrupt or unreadable .npz ({type(exc).__name__}: {exc})") from None


def _parse_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load_csv(
    path: str | Path,
    *,
    label_column: str | int | None = None,
    header: bool | None = None,
    task: str = "auto",
) -> Dataset:
    """A data set from a numeric, comma-separated table.

    Args:
        path: the .csv file. Blank lines are skipped; every other row must have the
            same number of cells and every cell must parse as a number.
        label_column: the target column, by header name or by 0-based index (negative
            counts from the end); default the last column.
        header: whether the first row holds column names; None auto-detects (a first
            row with any non-numeric cell is a header).
        task: "auto", "classification" or "regression" (rules in `jaxmlp.data.labels`).

    Returns a Dataset with x (N, columns - 1) float32. With task="auto" a label column
    of whole numbers means classification (labels must be >= 0; num_classes = max + 1,
    at most ``max(2 * U, U + 1000)`` and at most 100_000 for U distinct labels, else
    DataError naming the largest label and U), any other column regression with
    y (N, 1), except a column of class labels with a few fractional values (a single
    one, or at most 5% of the rows): DataError naming the line of the first one.
    task="classification" makes any fractional label an error naming its line.
    """
    check_task(task)
    path = Path(path)
    rows = _read_rows(path)
    names, body = _header_and_body(path, rows, header)
    first_line, first = rows[0]
    width = len(first)
    if width < 2:
        raise DataError(f"{path}: line {first_line} has {width} column(s); need features and a label")
    label_idx = _label_index(label_column, names, width, path)

    values = _parse_cells(path, body, width, first_line, names)
    y, num_classes = _targets(path, values[:, label_idx], body, label_idx, task)
    return from_arrays(np.delete(values, label_idx, axis=1), y, name=str(path), num_classes=num_classes)


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The file's non-blank rows as (1-based line number, cells); DataError when there are none."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as CSV text ({exc})") from None
    if not rows:
        raise DataError(f"{path}: empty data set (no rows)")
    return rows


def _header_and_body(
    path: Path, rows: list[tuple[int, list[str]]], header: bool | None
) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """(column names, or None without a header row; the data rows) of `_read_rows`' rows.

    header None: the first row is a header when any of its cells is not a number.
    """
    first = rows[0][1]
    if header is None:
        header = any(_parse_number(c) is None for c in first)
    names = [c.strip() for c in first] if header else None
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: empty data set (a header but no data rows)")
    return names, body


def _targets(
    path: Path, labels: np.ndarray, body: list[tuple[int, list[str]]], label_idx: int, task: str
) -> tuple[np.ndarray, int | None]:
    """(y, num_classes) from the label column `labels` (rows,) float64, by `interpret_targets`'
    rules; an error names the offending row by its line in the file."""
    if whole_numbers(labels).all():  # a csv has no dtypes: a column of whole numbers is integer
        labels = labels.astype(np.int64)
    return interpret_targets(
        labels, name=str(path), task=task, row=lambda r: f"line {body[r][0]}, column {label_idx + 1}"
    )


def _parse_cells(
    path: Path, body: list[tuple[int, list[str]]], width: int, first_line: int, names: list[str] | None
) -> np.ndarray:
    """The (line, cells) rows of `body` as a (rows, width) float64 array of finite numbers."""
    values = np.empty((len(body), width), dtype=np.float64)
    for r, (line, row) in enumerate(body):
        if len(row) != width:
            raise DataError(
                f"{path}: ragged rows: line {line} has {len(row)} columns, expected {width} "
                f"(as on line {first_line})"
            )
        for c, cell in enumerate(row):
            v = _parse_number(cell)
            if v is None or not math.isfinite(v):
                col = f"column {c + 1}" + (f" ({names[c]!r})" if names else "")
                problem = "non-numeric cell" if v is None else "NaN or Inf value"
                raise DataError(f"{path}: {problem} {cell!r} at line {line}, {col}")
            values[r, c] = v
    return values


def _label_index(label_column: str | int | None, names: list[str] | None, width: int, path: Path) -> int:
    if label_column is None:
        return width - 1
    if isinstance(label_column, str) and names is not None and label_column in names:
        return names.index(label_column)
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        if names is None or label_column not in names:
            have = f"columns are {names}" if names else "the file has no header row"
            raise DataError(f"{path}: label column {label_column!r} not found; {have}")
        return names.index(label_column)
    idx = int(label_column)
    if not -width <= idx < width:
        raise DataError(f"{path}: label column index {idx} is out of range for {width} columns")
    return idx % width
