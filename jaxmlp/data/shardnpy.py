"""The npy shard format: ``{split}-{i:05d}.x.npy`` (n, *feature_shape) and ``.y.npy`` (n,) / (n, k).

Reading maps each file read-only and gathers rows by numpy fancy indexing. A data set may be
larger than memory, so after every gather the touched pages are dropped from the process
(madvise MADV_DONTNEED): they stay in the kernel's page cache but leave this process's RSS.
Each file is mapped twice: a sparse gather (a training chunk's random rows, a few per 4 KiB
page) reads through a MADV_RANDOM mapping, so a page fault reads that page alone and not the
kernel's readahead window around it (which read the whole file for a few hundred rows), or, for
rows of PREAD_BYTES and more, with one os.preadv a row; a dense one (statistics blocks, `load`,
evaluation) through the default mapping, with readahead.
The writer pads the header to a page (still a version 1.0 .npy that np.load reads), so row 0
starts on a page and a row of 4 KiB (D = 1024 float32) is one page read, not two.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxmlp.data.errors import DataError
from jaxmlp.data.shardlayout import Layout, ShardFile, finished_file

NPY_ALIGN = 4096  # the written header's length is a multiple of this: rows start on a page
SPARSE = 8  # a gather is sparse when its rows fill less than 1/SPARSE of the bytes they span
# Sparse rows this wide are read one request a row (os.preadv): through the mapping each of their
# pages would be a request of its own. Narrower rows fault in through a MADV_RANDOM mapping, inside
# numpy's gather, which holds no GIL between the rows (a Python call a row would, for 4 KiB each).
PREAD_BYTES = 4 * mmap.PAGESIZE

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class MappedNpy:
    """One C-ordered .npy file mapped read-only, checked against what the manifest expects."""

    def __init__(self, path: Path, dtype: np.dtype, rows: int, row_shapes: Sequence[tuple[int, ...]]):
        """row_shapes: the per-row shapes accepted, e.g. (28, 28) and (784,); the first is canonical."""
        self.path = path
        with open(path, "rb") as f:
            shape, offset = _checked_header(f, path, dtype, rows, row_shapes)
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self._sparse_map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._sparse_map.madvise(mmap.MADV_RANDOM)
        self._offset, self._size = offset, offset + math.prod(shape) * dtype.itemsize
        self._row_bytes = math.prod(shape[1:]) * dtype.itemsize
        flat = np.frombuffer(self._map, dtype=dtype, count=math.prod(shape), offset=offset)
        self.array = flat.reshape((rows, *row_shapes[0]))  # (n, *row_shape), read-only view of the file
        sparse = np.frombuffer(self._sparse_map, dtype=dtype, count=math.prod(shape), offset=offset)
        self._sparse_array = sparse.reshape(self.array.shape)  # the same bytes, read without readahead

    def take(self, local: np.ndarray) -> np.ndarray:
        """Rows `local` (k,) sorted ascending, copied out; the pages they were read through then
        leave this process. Sparse rows of PREAD_BYTES or more are read row by row (`_read_rows`)."""
        start = self._offset + int(local[0]) * self._row_bytes
        start -= start % mmap.PAGESIZE  # madvise wants a page-aligned start
        stop = self._offset + (int(local[-1]) + 1) * self._row_bytes
        sparse = SPARSE * len(local) * self._row_bytes < stop - start
        if sparse and self._row_bytes >= PREAD_BYTES:
            return self._read_rows(local)
        self._check_whole()
        out = (self._sparse_array if sparse else self.array)[local]  # (k, *row_shape)
        (self._sparse_map if sparse else self._map).madvise(mmap.MADV_DONTNEED, start, stop - start)
        return out

    def _check_whole(self) -> None:
        """DataError when the file was cut short since it was mapped: a read through the mapping
        past its new end would end the process with SIGBUS, not a line. (A cut that lands between
        this check and the gather still would; the check shrinks that window to one gather.)"""
        try:
            size = os.stat(self.path).st_size
        except OSError as exc:
            raise DataError(f"{self.path}: can no longer be read ({exc.strerror or exc})") from None
        if size < self._size:
            raise DataError(f"{self.path}: cut short while in use ({size} bytes, {self._size} when it was opened)")

    def _read_rows(self, local: np.ndarray) -> np.ndarray:
        """Rows `local` (k,), one os.preadv of a row's bytes each into the output: the disk is
        asked for exactly those bytes in one request a row (a page fault asks for 4 KiB at a
        time, so a 32 KiB row took 8 requests), and no page of the file enters this process."""
        out = np.empty((len(local), *self.array.shape[1:]), self.array.dtype)  # (k, *row_shape)
        view, size = memoryview(out.reshape(-1).view(np.uint8)), self._row_bytes
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)  # per call: a set of many shards holds no descriptors
        try:
            for i, row in enumerate(local.tolist()):
                if os.preadv(fd, [view[i * size:(i + 1) * size]], self._offset + row * size) != size:
                    raise DataError(f"{self.path}: row {row} could not be read whole (the file was cut short?)")
        finally:
            os.close(fd)
        return out


def _checked_header(
    f, path: Path, dtype: np.dtype, rows: int, row_shapes: Sequence[tuple[int, ...]]
) -> tuple[tuple[int, ...], int]:
    """(shape, data offset) of the open .npy `f`; DataError unless it matches the manifest."""
    try:
        version = np.lib.format.read_magic(f)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise DataError(f"{path}: unsupported .npy format version {version[0]}.{version[1]}")
        shape, fortran, found = reader(f)
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
    offset = f.tell()
    if fortran and len(shape) > 1:
        raise DataError(f"{path}: stored in Fortran order; save the array C-ordered")
    if found != dtype:
        raise DataError(f"{path}: dtype {found}, the manifest says {dtype}")
    if not shape or tuple(shape[1:]) not in row_shapes:
        raise DataError(f"{path}: rows of shape {tuple(shape[1:])}, the manifest says {row_shapes[0]}")
    if shape[0] != rows:
        raise DataError(f"{path}: holds {shape[0]} rows, the manifest says {rows}")
    need = offset + math.prod(shape) * dtype.itemsize
    size = os.fstat(f.fileno()).st_size
    if size < need:
        raise DataError(
            f"{path}: truncated: the header claims {shape[0]} rows ({need} bytes), the file has {size} bytes"
        )
    if size > need:
        raise DataError(f"{path}: {size - need} bytes of unexpected data after the {shape[0]} rows")
    return tuple(shape), offset


class NpyShard:
    """A shard of two .npy files, x and y, read by local row."""

    def __init__(self, paths: Sequence[Path], layout: Layout, rows: int):
        x_shapes = (layout.feature_shape, (layout.num_features,))
        self.paths = tuple(paths)
        self.rows = rows
        self._x = MappedNpy(paths[0], layout.x_dtype, rows, x_shapes)
        self._y = MappedNpy(paths[1], layout.y_dtype, rows, (layout.target_shape,))
        self._width = layout.num_features

    def take(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (k, D) and y (k,) / (k, K) at sorted local rows `local` (k,), in the files' dtypes."""
        x = self._x.take(local)
        return x.reshape(x.shape[0], self._width), self._y.take(local)


def write_npy_shard(
    paths: Sequence[Path], layout: Layout, x_parts: Sequence[np.ndarray], y_parts: Sequence[np.ndarray]
) -> tuple[ShardFile, ...]:
    """Writes one shard from consecutive parts (x (m, *feature_shape), y (m,) / (m, k)), part by part."""
    rows = sum(len(p) for p in x_parts)
    return (
        _write_npy(paths[0], layout.x_dtype, (rows, *layout.feature_shape), x_parts),
        _write_npy(paths[1], layout.y_dtype, (rows, *layout.target_shape), y_parts),
    )


def _write_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...], parts: Sequence[np.ndarray]) -> ShardFile:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        f.write(_npy_header(header))
        for part in parts:  # streamed part by part, so the shard is never concatenated in memory
            f.write(np.ascontiguousarray(part, dtype=dtype).data)
    return finished_file(path)


def _npy_header(header: dict) -> bytes:
    """A version 1.0 .npy header of `header` (descr, fortran_order, shape), padded with spaces to a
    multiple of NPY_ALIGN bytes (np.load and read_array_header_1_0 read any padding)."""
    magic, text = np.lib.format.magic(1, 0), repr(header)
    length = -(-(len(magic) + 2 + len(text) + 1) // NPY_ALIGN) * NPY_ALIGN - len(magic) - 2
    return magic + struct.pack("<H", length) + (text.ljust(length - 1) + "\n").encode("latin1")
