"""Bucket sizes: a few padded shapes serve every data size, so a program compiles once.

A compiled program is specialized to its array shapes. The estimators pad the training set,
the minibatch and a prediction's rows up to a bucket, with masks (zero weights) for the
padding, so the folds of a cross-validation (n, n +- 1 rows) and partial_fit calls of
different sizes reuse one program. Prediction is the exception: one fixed chunk (PREDICT_ROWS). The ladder has four sizes per octave (8, 10, 12, 14, 16,
20, ...), so padding wastes at most 25% of a pass; the default batch (min(200, n) = 200) is a
bucket of its own, so default epochs waste nothing.

    rows_bucket(1437) == 2048;  bucket(150) == 160;  batch_bucket(200) == 200;  pad(x (1437, 64), 2048)
"""
from __future__ import annotations

import numpy as np

AUTO_BATCH = 200  # batch_size "auto" = min(AUTO_BATCH, n), as in scikit-learn's MLP
# Prediction runs in chunks of this many rows, always: XLA's float sums depend on the array
# shape, so one shape keeps a row's output independent of which other rows came with it.
PREDICT_ROWS = 256


def bucket(n: int) -> int:
    """The smallest size >= n on the ladder 1..8, then m * 2**k with m in {5, 6, 7, 8}."""
    if n <= 8:
        return max(int(n), 1)
    step = 1 << (int(n - 1).bit_length() - 3)  # a quarter of the octave n falls in
    return -(-int(n) // step) * step


def rows_bucket(n: int) -> int:
    """The padded training set of n rows: the next power of two. Its padding costs memory, not
    compute (an epoch gathers only real rows), and a power of two holds a cross-validation's
    folds (n * (k - 1) / k rows) and its refit on all n together, mostly."""
    return 1 << max(int(n) - 1, 0).bit_length()


def batch_bucket(b: int) -> int:
    """The padded minibatch of a real one of b rows: AUTO_BATCH itself, else bucket(b)."""
    return AUTO_BATCH if b == AUTO_BATCH else bucket(b)


def pad(a: np.ndarray, rows: int) -> np.ndarray:
    """a (n, ...) with zero rows appended to `rows` (n <= rows)."""
    out = np.zeros((rows,) + a.shape[1:], a.dtype)
    out[:len(a)] = a
    return out
