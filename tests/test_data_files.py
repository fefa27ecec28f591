"""File formats on small crafted files: IDX, CIFAR-10 (binary, pickle, tar.gz), npz, csv.

Good files must load to the right arrays; every bad file must raise one DataError whose
message names the file and the problem, and must be left byte-for-byte unchanged.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from jaxmlp.data import (
    DataError,
    load_cifar10,
    load_csv,
    load_dataset,
    load_idx_dataset,
    load_npz,
    read_idx,
)

RNG = np.random.default_rng(0)

# ---------------------------------------------------------------- writers


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """IDX encoding of `arr` (big-endian payload) with dtype `code`."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return header + np.asarray(arr).astype(dtypes[code]).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_dir(
    d: Path,
    n_train: int = 20,
    n_test: int = 10,
    *,
    gz: bool = True,
    dotted: bool = False,
    train_labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Four small MNIST-style files (8x8 uint8 images, labels 0..9) in `d`; returns the arrays."""
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images": RNG.integers(0, 256, (n_train, 8, 8), dtype=np.uint8),
        "train-labels": np.arange(n_train, dtype=np.uint8) % 10 if train_labels is None else train_labels,
        "t10k-images": RNG.integers(0, 256, (n_test, 8, 8), dtype=np.uint8),
        "t10k-labels": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for stem, arr in arrays.items():
        nd = 3 if stem.endswith("images") else 1
        fname = f"{stem}.idx{nd}-ubyte" if dotted else f"{stem}-idx{nd}-ubyte"
        write(d / (fname + (".gz" if gz else "")), idx_bytes(arr), gz)
    return arrays


def cifar_arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random HWC images (n, 32, 32, 3) uint8 and labels (n,)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def cifar_binary_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels[:, None], chw], axis=1).astype(np.uint8).tobytes()


def cifar_python_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in labels],
        b"data": np.ascontiguousarray(chw),
        b"filenames": [b"img_%d.png" % i for i in range(len(labels))],
    }
    return pickle.dumps(batch, protocol=2)


def write_cifar_dir(d: Path, binary: bool, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Six batches of `n` records in the official layout; returns (train x, test x) as HWC."""
    d.mkdir(parents=True, exist_ok=True)
    encode = cifar_binary_batch if binary else cifar_python_batch
    suffix = ".bin" if binary else ""
    train = []
    for i, stem in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images, labels = cifar_arrays(n, seed=i)
        (d / f"{stem}{suffix}").write_bytes(encode(images, labels))
        train.append(images)
    return np.concatenate(train[:5]), train[5]


def make_tar(archive: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return archive


def cifar_tar(tmp_path: Path, binary: bool, extra: dict[str, bytes] | None = None, **kw) -> Path:
    src = tmp_path / "src"
    write_cifar_dir(src, binary)
    top = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
    members = {f"{top}/{p.name}": p.read_bytes() for p in sorted(src.iterdir())}
    members.update(extra or {})
    name = "cifar-10-binary.tar.gz" if binary else "cifar-10-python.tar.gz"
    return make_tar(tmp_path / name, members, **kw)


# ---------------------------------------------------------------- good files


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("dotted", [False, True], ids=["dash", "dotted"])
def test_idx_directory_loads(tmp_path, gz, dotted):
    arrays = write_idx_dir(tmp_path, gz=gz, dotted=dotted)
    train, val, test = load_dataset(f"idx:{tmp_path}")
    assert val is None
    assert train.x.shape == (20, 64) and test.x.shape == (10, 64)
    assert train.feature_shape == (8, 8) and train.num_classes == 10
    np.testing.assert_allclose(train.x, arrays["train-images"].reshape(20, 64) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(test.y, arrays["t10k-labels"])
    assert train.x.dtype == np.float32 and train.y.dtype == np.int32


# code -> (struct format, values that tell signed from unsigned and big- from little-endian)
IDX_TYPES = {
    0x08: ("B", [0, 1, 127, 128, 200, 255]),
    0x09: ("b", [-128, -1, 0, 1, 100, 127]),
    0x0B: ("h", [-32768, -1, 0, 258, 1000, 32767]),
    0x0C: ("i", [-(2**31), -1, 0, 65538, 10**9, 2**31 - 1]),
    0x0D: ("f", [-1.5, 0.0, 0.25, 3.0, 1e30, -2.0**-20]),
    0x0E: ("d", [-1.5, 0.0, 0.1, 3.0, 1e300, -(2.0**-60)]),
}


def hand_made_idx(code: int, shape: tuple[int, ...], values: list) -> bytes:
    """An IDX file written field by field with struct (independent of numpy's byte order)."""
    fmt = IDX_TYPES[code][0]
    return (bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
            + struct.pack(f">{len(values)}{fmt}", *values))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("code", IDX_TYPES, ids=[f"0x{c:02X}" for c in IDX_TYPES])
def test_read_idx_every_element_type(tmp_path, code, gz):
    values = IDX_TYPES[code][1]
    out = read_idx(write(tmp_path / "a-idx2", hand_made_idx(code, (2, 3), values), gz))
    assert out.shape == (2, 3) and out.dtype.isnative and not out.flags.writeable
    assert out.dtype == np.dtype({0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32,
                                  0x0D: np.float32, 0x0E: np.float64}[code])
    np.testing.assert_array_equal(out.ravel(), np.array(values, dtype=out.dtype))


def _pixels(code: int) -> tuple[list, np.ndarray]:
    """(20 images of 2x2 values of type `code`, the features the loader must make of them)."""
    base = np.array(IDX_TYPES[code][1][:4] * 20).reshape(20, 4)
    if code == 0x08:
        expected = base / 255.0
    elif code == 0x09:
        expected = (base + 128) / 255.0
    else:
        expected = base
    return base.ravel().tolist(), expected.astype(np.float32)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("code", IDX_TYPES, ids=[f"0x{c:02X}" for c in IDX_TYPES])
def test_idx_images_of_every_element_type(tmp_path, code, gz):
    """uint8 and int8 pixels scale to [0, 1]; wider integer and float types keep their values."""
    values, expected = _pixels(code)
    write_idx_dir(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    for stem in ("train", "t10k"):
        write(tmp_path / f"{stem}-images-idx3-ubyte{suffix}", hand_made_idx(code, (20, 2, 2), values), gz)
    write(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", idx_bytes(np.arange(20) % 10), gz)
    train, _, test = load_idx_dataset(tmp_path)
    assert train.feature_shape == (2, 2)
    np.testing.assert_allclose(train.x, expected, rtol=1e-6)
    np.testing.assert_array_equal(test.x, train.x)
    if code in (0x08, 0x09):
        assert 0.0 <= train.x.min() and train.x.max() <= 1.0


def test_int8_pixels_stored_as_p_minus_128_load_as_the_uint8_file(tmp_path):
    uint8_dir, int8_dir = tmp_path / "u", tmp_path / "i"
    arrays = write_idx_dir(uint8_dir)
    write_idx_dir(int8_dir)
    for stem, arr in arrays.items():
        shifted = arr.astype(np.int16) - 128 if stem.endswith("images") else arr
        write(int8_dir / f"{stem}-idx{3 if stem.endswith('images') else 1}-ubyte.gz",
              idx_bytes(shifted, 0x09 if stem.endswith("images") else 0x08), gz=True)
    for a, b in zip(load_idx_dataset(uint8_dir), load_idx_dataset(int8_dir)):
        if a is not None:
            np.testing.assert_array_equal(a.x, b.x)


@pytest.mark.parametrize("code", [0x08, 0x09, 0x0B, 0x0C])
def test_idx_labels_of_every_integer_type(tmp_path, code):
    write_idx_dir(tmp_path, gz=False)
    labels = np.arange(20) % 10
    write(tmp_path / "train-labels-idx1-ubyte", hand_made_idx(code, (20,), labels.tolist()))
    train, _, _ = load_idx_dataset(tmp_path)
    np.testing.assert_array_equal(train.y, labels)
    assert train.num_classes == 10


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "python"])
@pytest.mark.parametrize("form", ["dir", "parent", "tar"])
def test_cifar10_loads(tmp_path, binary, form):
    batches = tmp_path / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py")
    train_x, test_x = write_cifar_dir(batches, binary)
    if form == "tar":
        (tmp_path / "t").mkdir()
        source = cifar_tar(tmp_path / "t", binary)
    else:
        source = batches if form == "dir" else tmp_path
    train, test = load_cifar10(source)
    assert train.x.shape == (50, 3072) and test.x.shape == (10, 3072)
    assert train.feature_shape == (32, 32, 3) and train.num_classes == 10
    # HWC order: flattening the original HWC images gives the features back
    np.testing.assert_allclose(train.x, train_x.reshape(50, -1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(test.x, test_x.reshape(10, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(train.y, np.tile(np.arange(10), 5))


def test_cifar10_python_batch_pickled_by_numpy1_loads(tmp_path):
    """Official batches name numpy.core.multiarray (numpy 1.x); that spelling is allowed too."""
    d = tmp_path / "cifar-10-batches-py"
    write_cifar_dir(d, binary=False)
    for p in d.iterdir():
        blob = p.read_bytes()
        assert b"numpy._core.multiarray" in blob
        p.write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    train, test = load_cifar10(tmp_path)
    assert train.x.shape == (50, 3072) and len(test) == 10


def test_cifar10_named_spec_uses_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXMLP_DATA", raising=False)
    write_cifar_dir(tmp_path / "cifar10" / "cifar-10-batches-bin", binary=True)
    splits = load_dataset("cifar10", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                          val_fraction=0.2)
    assert len(splits.train) == 40 and len(splits.val) == 10 and len(splits.test) == 10


def test_npz_loads_with_optional_test_split(tmp_path):
    x = RNG.integers(0, 256, (30, 4, 4), dtype=np.uint8)
    y = np.arange(30) % 3
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y, x_test=x[:5], y_test=y[:5])
    train, test = load_npz(path)
    assert train.x.shape == (30, 16) and train.feature_shape == (4, 4) and train.num_classes == 3
    assert float(train.x.max()) <= 1.0 and len(test) == 5
    np.savez(path, x=np.ones((6, 2)), y=np.linspace(0, 1, 6))
    splits = load_dataset(f"npz:{path}")
    assert splits.train.num_classes is None and splits.train.y.shape == (6, 1) and splits.test is None


@pytest.mark.parametrize(
    "label_column, expected_x_col0",
    [(None, 1.0), ("label", 1.0), (0, 2.0), ("0", 2.0), (-1, 1.0)],
)
def test_csv_label_column(tmp_path, label_column, expected_x_col0):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,2\n\n")
    ds = load_csv(path, label_column=label_column)
    assert ds.x.shape == (3, 2) and ds.x[0, 0] == expected_x_col0
    assert ds.num_classes is not None


def test_csv_without_header_and_regression(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("1,2,0.5\n3,4,1.5\n")
    ds = load_dataset(f"csv:{path}").train
    assert ds.num_classes is None and ds.y.shape == (2, 1) and ds.x.shape == (2, 2)
    assert load_dataset(f"csv:{path}", label_column=1).train.num_classes == 5


# ---------------------------------------------------------------- bad files
# each case: build(tmp_path) -> (file that must be named and stay unchanged, call, phrase)

Case = Callable[[Path], "tuple[Path, Callable[[], object], str]"]


def _idx_file(data: bytes, gz: bool = False) -> Case:
    def build(tmp):
        path = write(tmp / ("bad-idx3-ubyte" + (".gz" if gz else "")), data, gz)
        return path, lambda: read_idx(path), None

    return build


GOOD_IDX = idx_bytes(np.zeros((10, 28, 28), np.uint8))


def _corrupt_gzip(tmp):
    blob = bytearray(gzip.compress(GOOD_IDX))
    blob[len(blob) // 2 : len(blob) // 2 + 8] = b"\xff" * 8
    path = write(tmp / "train-images-idx3-ubyte.gz", bytes(blob))
    return path, lambda: read_idx(path), "corrupt gzip"


def _truncated_gzip(tmp):
    path = write(tmp / "train-images-idx3-ubyte.gz", gzip.compress(GOOD_IDX)[:-30])
    return path, lambda: read_idx(path), "corrupt gzip"


def _idx_dir_case(mutate: Callable[[Path], Path], spec: str = "idx", **kw) -> Case:
    def build(tmp):
        d = tmp / "mnist"
        write_idx_dir(d)
        path = mutate(d)
        call = (lambda: load_dataset(f"idx:{d}", **kw)) if spec == "idx" else (
            lambda: load_dataset("mnist", data_dir=str(tmp), cache_dir=str(tmp / "cache"), **kw)
        )
        return path, call, None

    return build


def _replace_idx(name: str, arr: np.ndarray, code: int = 0x08) -> Callable[[Path], Path]:
    def mutate(d):
        return write(d / name, idx_bytes(arr, code), gz=True)

    return mutate


def _cifar_dir_case(binary: bool, batch: bytes) -> Case:
    def build(tmp):
        d = tmp / "batches"
        write_cifar_dir(d, binary)
        path = d / ("data_batch_3.bin" if binary else "data_batch_3")
        path.write_bytes(batch)
        return path, lambda: load_cifar10(d), None

    return build


class _Evil:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle_case(tmp):
    d = tmp / "py"
    write_cifar_dir(d, binary=False)
    marker = tmp / "PWNED"
    path = d / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2))

    def call():
        try:
            return load_cifar10(d)
        finally:
            assert not marker.exists(), "the forbidden global was executed"

    return path, call, "forbidden global"


def _evil_pickle_in_tar_case(tmp):
    evil = pickle.dumps({b"data": _Evil(tmp / "PWNED")}, protocol=2)
    src = tmp / "src"
    write_cifar_dir(src, binary=False)
    (src / "test_batch").write_bytes(evil)
    members = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in src.iterdir()}
    path = make_tar(tmp / "cifar-10-python.tar.gz", members)
    return path, lambda: load_cifar10(path), "forbidden global"


def _tar_case(extra=None, links=None) -> Case:
    def build(tmp):
        path = cifar_tar(tmp, binary=True, extra=extra, links=links)
        return path, lambda: load_cifar10(path), None

    return build


def _text_case(name: str, text: str, **kw) -> Case:
    def build(tmp):
        path = tmp / name
        path.write_text(text)
        return path, lambda: load_dataset(f"csv:{path}", **kw), None

    return build


def _npz_case(task: str = "auto", **arrays) -> Case:
    def build(tmp):
        path = tmp / "user.npz"
        np.savez(path, **arrays)
        return path, lambda: load_dataset(f"npz:{path}", task=task), None

    return build


_IMG = np.zeros((20, 8, 8), np.uint8)
_CLASSES = np.arange(40) % 4  # 40 labels 0..3
_ONE_FRACTIONAL = np.where(np.arange(40) == 7, 1.5, _CLASSES)  # class labels with a typo at example 7
_CSV_ONE_FRACTIONAL = "a,b,label\n" + "".join(f"{i},{i % 3},{v:g}\n" for i, v in enumerate(_ONE_FRACTIONAL))
_objects = np.empty(3, dtype=object)
_objects[:] = [1, "a", None]

BAD_INPUTS = {
    # IDX reader
    "idx-wrong-magic": (_idx_file(b"\x12\x34\x08\x03" + GOOD_IDX[4:]), "bad IDX magic"),
    "idx-unknown-dtype": (_idx_file(b"\x00\x00\x07\x03" + GOOD_IDX[4:]), "unknown IDX dtype"),
    "idx-truncated": (_idx_file(GOOD_IDX[:-100], gz=True), "truncated"),
    "idx-truncated-header": (_idx_file(GOOD_IDX[:10]), "truncated"),
    "idx-too-long": (_idx_file(GOOD_IDX + b"\0" * 7), "longer than its header"),
    "idx-corrupt-gzip": (_corrupt_gzip, "corrupt gzip"),
    "idx-truncated-gzip": (_truncated_gzip, "corrupt gzip"),
    # IDX directories
    "idx-count-mismatch": (
        _idx_dir_case(_replace_idx("train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))),
        "count mismatch",
    ),
    "idx-label-too-large": (
        _idx_dir_case(_replace_idx("train-labels-idx1-ubyte.gz", np.full(20, 10, np.uint8)), "mnist"),
        "out of range",
    ),
    "idx-label-negative": (
        _idx_dir_case(_replace_idx("train-labels-idx1-ubyte.gz", np.full(20, -1, np.int8), 0x09)),
        "out of range",
    ),
    "idx-float-labels": (
        _idx_dir_case(_replace_idx("train-labels-idx1-ubyte.gz", np.arange(20) % 10, 0x0D)),
        "expected a 1-D integer labels file",
    ),
    "idx-labels-as-images": (
        _idx_dir_case(_replace_idx("train-images-idx3-ubyte.gz", np.zeros(20, np.uint8))),
        "expected an images file",
    ),
    "idx-nan-features": (
        _idx_dir_case(_replace_idx("train-images-idx3-ubyte.gz",
                                   np.where(np.eye(8) > 0, np.nan, 0.5)[None].repeat(20, 0), 0x0D)),
        "NaN or Inf",
    ),
    "idx-inf-features": (
        _idx_dir_case(_replace_idx("train-images-idx3-ubyte.gz",
                                   np.full((20, 8, 8), np.inf, np.float32), 0x0D)),
        "NaN or Inf",
    ),
    "idx-empty": (
        _idx_dir_case(lambda d: (_replace_idx("train-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))(d),
                                 _replace_idx("train-images-idx3-ubyte.gz", np.zeros((0, 8, 8), np.uint8))(d))[1]),
        "empty data set",
    ),
    "idx-huge-label": (
        _idx_dir_case(_replace_idx("train-labels-idx1-ubyte.gz", np.where(np.arange(20) == 3, 10**9, 1), 0x0C)),
        "largest label 1000000000 means 1000000001 classes, but only 11 distinct label values",
    ),
    "idx-task-regression": (_idx_dir_case(lambda d: d, task="regression"), "does not apply"),
    "idx-missing-file": (
        _idx_dir_case(lambda d: (os.remove(d / "t10k-labels-idx1-ubyte.gz"), d)[1]),
        "missing IDX files",
    ),
    # CIFAR-10
    "cifar-bin-truncated": (_cifar_dir_case(True, cifar_binary_batch(*cifar_arrays(10))[:-5]), "multiple of"),
    "cifar-bin-bad-label": (
        _cifar_dir_case(True, cifar_binary_batch(cifar_arrays(10)[0], np.full(10, 10, np.uint8))),
        "out of range",
    ),
    "cifar-pickle-garbage": (_cifar_dir_case(False, b"\x80\x02garbage"), "not a valid CIFAR-10 python batch"),
    "cifar-pickle-count-mismatch": (
        _cifar_dir_case(False, cifar_python_batch(cifar_arrays(10)[0], np.zeros(9, np.uint8))),
        "count mismatch",
    ),
    "cifar-pickle-forbidden-global": (_evil_pickle_case, "forbidden global"),
    "cifar-tar-forbidden-global": (_evil_pickle_in_tar_case, "forbidden global"),
    "tar-dotdot-member": (_tar_case(extra={"../evil.bin": b"x"}), "unsafe tar member"),
    "tar-absolute-member": (_tar_case(extra={"/etc/evil.bin": b"x"}), "unsafe tar member"),
    "tar-symlink-member": (_tar_case(links={"cifar-10-batches-bin/link": "/etc/passwd"}), "link"),
    "tar-corrupt": (lambda tmp: (lambda p: (p, lambda: load_cifar10(p), None))(
        write(tmp / "cifar-10-binary.tar.gz", gzip.compress(b"not a tar archive" * 100)[:-20])),
        "corrupt or unreadable tar"),
    # CSV
    "csv-ragged": (_text_case("ragged.csv", "a,b,c\n1,2,0\n3,4\n"), "line 3 has 2 columns"),
    "csv-non-numeric": (_text_case("words.csv", "a,b,c\n1,2,0\n3,x,1\n"), "non-numeric cell 'x' at line 3, column 2"),
    "csv-nan": (_text_case("nan.csv", "1,nan,0\n3,4,1\n"), "NaN or Inf"),
    "csv-empty": (_text_case("empty.csv", "a,b,c\n\n"), "empty data set"),
    "csv-negative-label": (_text_case("neg.csv", "1,2,0\n3,4,-1\n"), "negative class label"),
    "csv-huge-label": (_text_case("huge.csv", "1,2,0\n3,4,1\n5,6,1e9\n"), "largest label 1000000000 means"),
    "csv-fractional-label": (
        _text_case("typo.csv", _CSV_ONE_FRACTIONAL),
        "label 1.5 at line 9, column 3 is not a whole number, but 39 of the 40 labels are class labels",
    ),
    "csv-fractional-label-classification": (
        _text_case("frac.csv", "1,2,0.5\n3,4,1.5\n", task="classification"),
        "label 0.5 at line 1, column 3 is not a whole number",
    ),
    "csv-unknown-label-column": (_text_case("cols.csv", "a,b\n1,2\n", label_column="zz"), "not found"),
    # NPZ
    "npz-object-array": (_npz_case(x=_objects, y=np.arange(3)), "object array"),
    "npz-missing-y": (_npz_case(x=np.ones((3, 2))), "'x' and 'y'"),
    "npz-nan": (_npz_case(x=np.array([[1.0, np.nan]]), y=np.array([0])), "NaN or Inf"),
    "npz-inf-target": (_npz_case(x=np.ones((2, 2)), y=np.array([0.5, np.inf])), "NaN or Inf"),
    "npz-negative-label": (_npz_case(x=np.ones((2, 2)), y=np.array([0, -3])), "negative"),
    "npz-label-too-large": (
        _npz_case(x=np.ones((2, 2)), y=np.array([0, 5]), num_classes=np.array(3)), "labels must lie in [0, 3)"
    ),
    "npz-huge-label": (
        _npz_case(x=np.ones((4, 2)), y=np.array([0, 1, 1, 10**9])),
        "largest label 1000000000 means 1000000001 classes, but only 3 distinct label values",
    ),
    "npz-huge-declared-classes": (
        _npz_case(x=np.ones((4, 2)), y=np.array([0, 1, 2, 1]), num_classes=np.array(10**9)),
        "num_classes 1000000000 is declared (largest label 2), but only 3 distinct",
    ),
    "npz-huge-test-label": (
        _npz_case(x=np.ones((4, 2)), y=np.arange(4), x_test=np.ones((2, 2)), y_test=np.array([1, 10**6]),
                  num_classes=np.array(10**6 + 1)),
        "num_classes 1000001 is declared (largest label 1000000), but only 5 distinct",
    ),
    "npz-fractional-label": (
        _npz_case(x=np.ones((40, 2)), y=_ONE_FRACTIONAL), "label 1.5 at example 7 is not a whole number"
    ),
    "npz-fractional-label-classification": (
        _npz_case(x=np.ones((3, 2)), y=np.array([0.0, 2.5, 1.0]), task="classification"),
        "label 2.5 at example 1 is not a whole number",
    ),
    "npz-classes-for-regression": (
        _npz_case(x=np.ones((3, 2)), y=np.arange(3), num_classes=np.array(3), task="regression"),
        "num_classes=3 was given, but task='regression'",
    ),
    "npz-empty": (_npz_case(x=np.ones((0, 2)), y=np.zeros(0, np.int64)), "empty data set"),
    "npz-not-zip": (lambda tmp: (lambda p: (p, lambda: load_npz(p), None))(
        write(tmp / "junk.npz", b"\x93NUMPY junk")), "not an .npz"),
}


@pytest.mark.parametrize("build, phrase", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_one_clear_data_error(tmp_path, build, phrase):
    path, call, _ = build(tmp_path)
    before = _snapshot(path)
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert path.name in message, message
    assert phrase in message, message
    assert _snapshot(path) == before, "the input was modified"


def _snapshot(path: Path) -> dict[str, bytes]:
    """Bytes of the file, or of every file under the directory."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return {str(f): f.read_bytes() for f in files if f.is_file()}


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_idx_loader_checks_spelled_dir_exists(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_idx_dataset(tmp_path / "nope")
