"""User data files: ``.npz`` archives (no pickles) and numeric ``.csv`` tables."""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path

import numpy as np

from jaxmlp.data.dataset import DataError, Dataset, from_arrays


def load_npz(path: str | Path) -> tuple[Dataset, Dataset | None]:
    """(train, test) from an .npz holding arrays ``x`` (N, ...) and ``y`` (N,) or (N, k).

    Optional ``x_test`` / ``y_test`` arrays become the test split (else None), and an
    optional integer scalar ``num_classes`` fixes the class count. Loaded with
    ``allow_pickle=False``: object arrays are refused. Integer 1-D ``y`` means
    classification, float ``y`` regression (see `from_arrays`).
    """
    path = Path(path)
    name = str(path)
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
            arrays = {k: npz[k] for k in ("x", "y", "x_test", "y_test", "num_classes") if k in keys}
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

    num_classes = None
    if "num_classes" in arrays:
        nc = arrays["num_classes"]
        if nc.shape != () or not np.issubdtype(nc.dtype, np.integer):
            raise DataError(f"{path}: 'num_classes' must be an integer scalar, got {nc!r}")
        num_classes = int(nc)
    train = from_arrays(arrays["x"], arrays["y"], name=name, num_classes=num_classes)
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: 'x_test' and 'y_test' must be given together")
    if "x_test" not in arrays:
        return train, None
    test = from_arrays(arrays["x_test"], arrays["y_test"], name=name,
                       num_classes=train.num_classes)
    if test.feature_shape != train.feature_shape:
        raise DataError(
            f"{path}: 'x_test' examples have shape {test.feature_shape}, 'x' has {train.feature_shape}"
        )
    if (train.num_classes is None) != (test.num_classes is None) or train.y.shape[1:] != test.y.shape[1:]:
        raise DataError(f"{path}: 'y_test' does not match 'y' (shape or task type)")
    return train, test


def _parse_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load_csv(
    path: str | Path, *, label_column: str | int | None = None, header: bool | None = None
) -> Dataset:
    """A data set from a numeric, comma-separated table.

    Args:
        path: the .csv file. Blank lines are skipped; every other row must have the
            same number of cells and every cell must parse as a number.
        label_column: the target column, by header name or by 0-based index (negative
            counts from the end); default the last column.
        header: whether the first row holds column names; None auto-detects (a first
            row with any non-numeric cell is a header).

    Returns a Dataset with x (N, columns - 1) float32. An all-integer label column
    means classification (labels must be >= 0; num_classes = max + 1), otherwise
    regression with y (N, 1).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as CSV text ({exc})") from None
    if not rows:
        raise DataError(f"{path}: empty data set (no rows)")

    first_line, first = rows[0]
    if header is None:
        header = any(_parse_number(c) is None for c in first)
    names = [c.strip() for c in first] if header else None
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: empty data set (a header but no data rows)")
    width = len(first)
    if width < 2:
        raise DataError(f"{path}: line {first_line} has {width} column(s); need features and a label")
    label_idx = _label_index(label_column, names, width, path)

    values = np.empty((len(body), width), dtype=np.float64)
    for r, (line, row) in enumerate(body):
        if len(row) != width:
            raise DataError(
                f"{path}: ragged rows: line {line} has {len(row)} columns, expected {width} "
                f"(as on line {first_line})"
            )
        for c, cell in enumerate(row):
            v = _parse_number(cell)
            if v is None:
                col = f"column {c + 1}" + (f" ({names[c]!r})" if names else "")
                raise DataError(f"{path}: non-numeric cell {cell!r} at line {line}, {col}")
            if not math.isfinite(v):
                col = f"column {c + 1}" + (f" ({names[c]!r})" if names else "")
                raise DataError(f"{path}: NaN or Inf value {cell!r} at line {line}, {col}")
            values[r, c] = v

    labels = values[:, label_idx]
    features = np.delete(values, label_idx, axis=1)
    if np.all(labels == np.round(labels)):
        if labels.min() < 0:
            r = int(np.argmin(labels))
            raise DataError(
                f"{path}: negative class label {labels[r]:g} at line {body[r][0]}, column "
                f"{label_idx + 1}; classification labels must lie in [0, num_classes)"
            )
        return from_arrays(features, labels.astype(np.int64), name=str(path))
    return from_arrays(features, labels[:, None], name=str(path))


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
