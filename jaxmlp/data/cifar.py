"""CIFAR-10 in both official forms: the binary batches and the python pickles.

Binary: each record is 1 label byte + 3072 pixel bytes stored as three 32x32 planes
(R, G, B; CHW); parsed with numpy and converted to HWC. Python: each batch is a pickled
dict with ``data`` (N, 3072) uint8 and ``labels``; it is only ever read through
`RestrictedUnpickler`, which allows nothing but numpy array reconstruction. Tar archives
are read member by member in memory, never extracted, after rejecting absolute paths,
``..`` components, links and special files.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from jaxmlp.data.dataset import DataError, Dataset, features_from_array

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SHAPE = (32, 32, 3)  # HWC
RECORD_BYTES = 1 + 3 * 32 * 32
BINARY_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
BINARY_TEST = "test_batch.bin"
PYTHON_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
PYTHON_TEST = "test_batch"
BINARY_ARCHIVE = "cifar-10-binary.tar.gz"
PYTHON_ARCHIVE = "cifar-10-python.tar.gz"


def parse_binary_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary records -> (images (N, 32, 32, 3) uint8 HWC, labels (N,) uint8)."""
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise DataError(
            f"{source}: length {len(raw)} bytes is not a positive multiple of the "
            f"{RECORD_BYTES}-byte CIFAR-10 record (truncated or not a CIFAR-10 binary batch)"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    _check_labels(labels, source)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals found in CIFAR-10 python batches.

    Allowed: numpy's ``_reconstruct`` (under ``numpy.core`` or ``numpy._core``),
    ``numpy.ndarray``, ``numpy.dtype`` and ``_codecs.encode``; anything else raises
    DataError before it can be called.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.source}: pickle refers to forbidden global {module}.{name}; only numpy "
                "array reconstruction is allowed in a CIFAR-10 batch"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise DataError(f"{self.source}: pickle uses persistent ids, which are not allowed")


def parse_python_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """A pickled python batch -> (images (N, 32, 32, 3) uint8 HWC, labels (N,) int64)."""
    try:
        batch = RestrictedUnpickler(io.BytesIO(raw), source).load()
    except DataError:
        raise
    except Exception as exc:  # any unpickling failure of untrusted bytes
        raise DataError(f"{source}: not a valid CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{source}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"shape {data.shape} dtype {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{source}: 'data' must be an (N, 3072) uint8 array, got {desc}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{source}: 'labels' is not a list of integers") from None
    if labels.shape != (data.shape[0],):
        raise DataError(
            f"{source}: count mismatch: {data.shape[0]} images but labels have shape {labels.shape}"
        )
    _check_labels(labels, source)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _check_labels(labels: np.ndarray, source: str) -> None:
    bad = (labels < 0) | (labels >= len(CIFAR10_CLASSES))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: label {int(labels[i])} at record {i} is out of range [0, 10)")


def check_tar_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Rejects absolute paths, ``..`` components, links and special files (DataError)."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DataError(f"{archive}: unsafe tar member {name!r} (absolute path or '..' component)")
    if member.issym() or member.islnk():
        raise DataError(f"{archive}: tar member {name!r} is a link; links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: tar member {name!r} is not a regular file or directory")
    if hasattr(tarfile, "data_filter"):  # the filter="data" rules, as a second opinion
        try:
            tarfile.data_filter(member, "/nonexistent-extraction-root")
        except tarfile.FilterError as exc:
            raise DataError(f"{archive}: unsafe tar member {name!r} ({exc})") from None


def read_tar_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """Bytes of the regular members whose base name is in `wanted`, checking every member."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                check_tar_member(member, archive)
                base = PurePosixPath(member.name).name
                if member.isfile() and base in wanted:
                    if base in found:
                        raise DataError(f"{archive}: more than one member named {base!r}")
                    found[base] = tar.extractfile(member).read()
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: corrupt or unreadable tar archive ({exc})") from None
    return found


def _build(images: list[np.ndarray], labels: list[np.ndarray], name: str) -> Dataset:
    x, feature_shape = features_from_array(np.concatenate(images), name)
    return Dataset(x=x, y=np.concatenate(labels).astype(np.int32), name=name,
                   num_classes=len(CIFAR10_CLASSES), feature_shape=feature_shape)


def _splits_from_members(
    members: dict[str, bytes], source: Path, binary: bool, name: str
) -> tuple[Dataset, Dataset]:
    train_names, test_name = (BINARY_TRAIN, BINARY_TEST) if binary else (PYTHON_TRAIN, PYTHON_TEST)
    missing = [n for n in (*train_names, test_name) if n not in members]
    if missing:
        raise DataError(f"{source}: missing CIFAR-10 batches: {', '.join(missing)}")
    parse = parse_binary_batch if binary else parse_python_batch
    train = [parse(members[n], f"{source}/{n}") for n in train_names]
    test = parse(members[test_name], f"{source}/{test_name}")
    return (
        _build([t[0] for t in train], [t[1] for t in train], name),
        _build([test[0]], [test[1]], name),
    )


def find_cifar10(directory: str | Path) -> Path | None:
    """The first CIFAR-10 source in `directory`: a batch directory or an official archive."""
    directory = Path(directory)
    candidates = [
        directory,
        directory / "cifar-10-batches-bin",
        directory / "cifar-10-batches-py",
    ]
    for d in candidates:
        if (d / BINARY_TRAIN[0]).is_file() or (d / PYTHON_TRAIN[0]).is_file():
            return d
    for archive in (directory / BINARY_ARCHIVE, directory / PYTHON_ARCHIVE):
        if archive.is_file():
            return archive
    return None


def load_cifar10(path: str | Path, *, name: str = "cifar10") -> tuple[Dataset, Dataset]:
    """(train, test) CIFAR-10 splits from a batch directory, a parent of one, or a .tar.gz.

    Features are (N, 3072) float32 in [0, 1] with feature_shape (32, 32, 3) (HWC);
    train has 5 batches (50000 examples in the official release), test one (10000).
    The binary form is preferred when a directory holds both.
    """
    path = Path(path)
    if path.is_dir():
        source = find_cifar10(path)
        if source is None:
            raise DataError(
                f"{path}: no CIFAR-10 data (expected {BINARY_TRAIN[0]} ... {BINARY_TEST}, "
                f"{PYTHON_TRAIN[0]} ... {PYTHON_TEST}, {BINARY_ARCHIVE} or {PYTHON_ARCHIVE})"
            )
        if source.is_dir():
            binary = (source / BINARY_TRAIN[0]).is_file()
            names = (*BINARY_TRAIN, BINARY_TEST) if binary else (*PYTHON_TRAIN, PYTHON_TEST)
            members = {}
            for n in names:
                try:
                    members[n] = (source / n).read_bytes()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise DataError(f"{source / n}: cannot read file ({exc})") from None
            return _splits_from_members(members, source, binary, name)
        path = source
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    members = read_tar_members(path, {*BINARY_TRAIN, BINARY_TEST, *PYTHON_TRAIN, PYTHON_TEST})
    binary = BINARY_TRAIN[0] in members or PYTHON_TRAIN[0] not in members
    return _splits_from_members(members, path, binary, name)
