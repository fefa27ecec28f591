"""IDX files (the MNIST family's format), raw or gzip-compressed.

Layout: two zero bytes, a dtype code byte, a dimension-count byte, one big-endian
uint32 per dimension, then the row-major payload. The reader checks every part of
that against the file's length and never writes to the file.

Element types (the code byte; every multi-byte type big-endian): 0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. As images (features):
    uint8          scaled to [0, 1] (v / 255), the MNIST convention;
    int8           offset into the byte range, then scaled: (v + 128) / 255, in [0, 1]
                   (so pixels stored as p - 128 give what the uint8 file gives);
    int16, int32,  taken as their values (no pixel range is implied by the type; use
    float32/64     standardize=True to rescale), NaN or Inf refused.
As labels: any integer type (values >= 0); float label files are refused.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from jaxmlp.data.dataset import DataError, Dataset, DataSplits, features_from_array
from jaxmlp.data.labels import class_count

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803  # uint8, 3 dims (MNIST's; other types and ranks are read too)
LABELS_MAGIC = 0x00000801  # uint8, 1 dim (likewise)

# role -> accepted file names (the MNIST spelling first, then the "train-images.idx3-ubyte" one)
IDX_FILE_NAMES: dict[str, tuple[str, ...]] = {
    role: (f"{stem}-{kind}-idx{nd}-ubyte", f"{stem}-{kind}.idx{nd}-ubyte")
    for role, stem, kind, nd in [
        ("train_images", "train", "images", 3),
        ("train_labels", "train", "labels", 1),
        ("test_images", "t10k", "images", 3),
        ("test_labels", "t10k", "labels", 1),
    ]
}


def read_maybe_gzip(path: str | Path) -> bytes:
    """All bytes of `path`, gunzipped when the file starts with the gzip magic 1f 8b."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip stream ({exc})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Reads one IDX file (raw or .gz) into an array of the header's shape and dtype.

    Returns a read-only native-endian array, e.g. (60000, 28, 28) uint8 for MNIST images
    or (60000,) uint8 for labels. Raises DataError on a bad magic number, an unknown
    dtype code, or a file length that does not match the header.
    """
    path = Path(path)
    data = read_maybe_gzip(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated file ({len(data)} bytes, too short for an IDX header)")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{magic:08x} (the first two bytes must be zero); "
            "not an IDX file"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x} in magic number 0x{magic:08x}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions (magic 0x{magic:08x})")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path}: truncated file ({len(data)} bytes, header needs {header_len})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated file" if len(data) < expected else "file longer than its header says"
        raise DataError(
            f"{path}: {problem}: header promises shape {shape} of {dtype.name} "
            f"({expected} bytes in all) but the file has {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
        arr.flags.writeable = False
    return arr


def find_idx_files(directory: str | Path) -> tuple[dict[str, Path], list[str]]:
    """Looks for the four MNIST-style IDX files (raw or .gz) in `directory`.

    Returns ``(found, missing)``: role -> path for each file present (roles are
    train_images, train_labels, test_images, test_labels) and the roles not found.
    """
    directory = Path(directory)
    found: dict[str, Path] = {}
    for role, names in IDX_FILE_NAMES.items():
        for name in names:
            for candidate in (directory / name, directory / f"{name}.gz"):
                if candidate.is_file():
                    found[role] = candidate
                    break
            if role in found:
                break
    return found, [role for role in IDX_FILE_NAMES if role not in found]


def load_idx_pair(
    images_path: Path, labels_path: Path, *, name: str, num_classes: int | None
) -> Dataset:
    """One split from an images file (N, ...) and a labels file (N,)."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim < 2:
        raise DataError(
            f"{images_path}: expected an images file with at least 2 dimensions "
            f"(e.g. magic 0x{IMAGES_MAGIC:08x}), got shape {images.shape}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{labels_path}: expected a 1-D integer labels file (e.g. magic 0x{LABELS_MAGIC:08x}), "
            f"got shape {labels.shape} dtype {labels.dtype}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"count mismatch: {images_path} has {images.shape[0]} images but "
            f"{labels_path} has {labels.shape[0]} labels"
        )
    if images.shape[0] == 0:
        raise DataError(f"{images_path}: empty data set (0 images)")
    _check_labels(labels, labels_path, num_classes)
    x, feature_shape = features_from_array(_as_uint8_if_int8(images), str(images_path))
    if np.issubdtype(images.dtype, np.floating):
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise DataError(f"{images_path}: image {int(np.argmax(bad))} contains NaN or Inf values")
    return Dataset(
        x=x,
        y=labels.astype(np.int32),
        name=name,
        num_classes=num_classes if num_classes is not None else int(labels.max()) + 1,
        feature_shape=feature_shape,
    )


def _as_uint8_if_int8(images: np.ndarray) -> np.ndarray:
    """int8 pixels offset by +128 into uint8 (which features_from_array scales by 1/255)."""
    if images.dtype != np.int8:
        return images
    return (images.astype(np.int16) + 128).astype(np.uint8)


def _check_labels(labels: np.ndarray, path: Path, num_classes: int | None) -> None:
    bad = labels < 0 if num_classes is None else (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        limit = "must be >= 0" if num_classes is None else f"must lie in [0, {num_classes})"
        raise DataError(f"{path}: label {int(labels[i])} at index {i} is out of range; labels {limit}")


def load_idx_dataset(
    directory: str | Path, *, name: str | None = None, num_classes: int | None = None
) -> DataSplits:
    """Train and test splits from the four MNIST-style IDX files in `directory`.

    Accepts ``train-images-idx3-ubyte[.gz]`` and ``train-images.idx3-ubyte[.gz]`` spellings
    (likewise for labels and the ``t10k-`` test files). Images become (N, D) float32
    with feature_shape e.g. (28, 28): uint8 and int8 scaled to [0, 1], wider integer and
    float types as their values (see the module docstring). `num_classes` defaults to
    ``max label + 1`` over both splits, which must be at most ``max(2 * U, U + 1000)``
    and at most 100_000 for U distinct labels (`jaxmlp.data.labels.class_count`).
    Returns ``DataSplits(train, None, test)``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    found, missing = find_idx_files(directory)
    if missing:
        wanted = ", ".join(f"{IDX_FILE_NAMES[r][0]}[.gz]" for r in missing)
        raise DataError(f"{directory}: missing IDX files: {wanted}")
    name = name or str(directory)
    if num_classes is None:
        num_classes = _infer_num_classes(found["train_labels"], found["test_labels"])
    train = load_idx_pair(found["train_images"], found["train_labels"], name=name,
                          num_classes=num_classes)
    test = load_idx_pair(found["test_images"], found["test_labels"], name=name,
                         num_classes=num_classes)
    if train.feature_shape != test.feature_shape:
        raise DataError(
            f"{directory}: train images have shape {train.feature_shape} but test images "
            f"have {test.feature_shape}"
        )
    return DataSplits(train=train, val=None, test=test)


def _infer_num_classes(train_labels: Path, test_labels: Path) -> int | None:
    """1 + the largest label over both files, under the class-count rule of `class_count`;
    None when a file is unusable (reported later)."""
    arrays = []
    for path in (train_labels, test_labels):
        labels = read_idx(path)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            return None
        _check_labels(labels, path, None)
        arrays.append(labels.astype(np.int64))
    return class_count(np.concatenate(arrays), f"{train_labels} (with {test_labels.name})")
