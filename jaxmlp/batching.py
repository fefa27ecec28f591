"""Cutting n examples into whole batches: row indices padded to a full last batch, with a mask.

    rows, mask = pad_rows(n=10, batch_size=4)   # rows (3, 4) int32, mask (3, 4) bool
    xb = x[rows]                                 # (3, 4, D); x[rows][mask] is x, in order

Every batched pass over a data set (evaluation, prediction, data-set statistics) takes its
layout from here. Padding repeats row 0, a valid example (no NaN risk, unlike garbage or
zeros through a loss), and the mask removes it from every sum, so batched means are exact.
NumPy only: the rows are built on the host and indexed on the device.
"""
from __future__ import annotations

import numpy as np


def batch_rows(n: int, batch_size: int, multiple: int = 1) -> int:
    """B of a pass over n examples: min(batch_size, n) rounded up to a multiple of `multiple`."""
    return -(-min(batch_size, n) // multiple) * multiple


def pad_rows(n: int, batch_size: int, multiple: int = 1, *, shrink: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(rows (nb, B) int32, mask (nb, B) bool) of a pass over n >= 1 examples in batches of B.

    B = min(batch_size, n) rounded up to a multiple of `multiple` (e.g. the data-parallel
    devices, so every batch splits evenly), nb = ceil(n / B); shrink=False keeps B =
    batch_size rounded up even when n is smaller (passes over data sets of any size then share
    one batch shape). rows.ravel()[:n] is 0 .. n-1; the positions after it repeat row 0 and
    are False in `mask`.
    """
    if n < 1 or batch_size < 1 or multiple < 1:
        raise ValueError(f"pad_rows needs n, batch_size and multiple >= 1, got {n}, {batch_size}, {multiple}")
    b = batch_rows(n if shrink else batch_size, batch_size, multiple)
    nb = -(-n // b)
    flat = np.zeros(nb * b, np.int32)  # (nb * B,) the padding repeats row 0
    flat[:n] = np.arange(n, dtype=np.int32)
    mask = np.arange(nb * b) < n  # (nb * B,)
    return flat.reshape(nb, b), mask.reshape(nb, b)
