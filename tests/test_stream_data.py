"""Sharded data sets on disk: ShardWriter, read_manifest, open_streamed / StreamedDataset.

Shapes are fixed and small: 300 rows x 7 features in shards of 64 rows (four full, one of 44),
appended in chunks of 50 so chunks and shards are cut at different rows.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from jaxmlp.data.dataset import from_arrays
from jaxmlp.data.errors import DataError
from jaxmlp.data.manifest import ShardWriter, read_manifest
from jaxmlp.data.preprocess import STATS_BLOCK, fit_feature_stats
from jaxmlp.data.shardset import ShardSet
from jaxmlp.data.streamed import open_streamed

FORMATS = ["npy", "arrayrecord"]
N, D, SHARD = 300, 7, 64


def _needs(fmt: str) -> None:
    if fmt == "arrayrecord":
        pytest.importorskip("grain")


def write_set(directory: Path, x, y, *, fmt="npy", num_classes=3, rows_per_shard=SHARD, chunk=50, **kw) -> Path:
    with ShardWriter(directory, format=fmt, rows_per_shard=rows_per_shard, num_classes=num_classes, **kw) as w:
        for start in range(0, len(x), chunk):
            w.append("train", x[start : start + chunk], y[start : start + chunk])
    return directory


def arrays(seed=0, task="classification", x_dtype=np.float32, shape=(D,)):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(N, *shape)) * 3 + 5).astype(x_dtype)
    if x_dtype == np.uint8:
        x = rng.integers(0, 256, size=(N, *shape), dtype=np.uint8)
    y = rng.integers(0, 3, N) if task == "classification" else rng.normal(size=(N, 2)).astype(np.float32)
    return x, y


def resident(x, y, task="classification"):
    return from_arrays(x, y, num_classes=3 if task == "classification" else None, task=task)


def one_line_error(call, *names) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert str(name) in message, message
    return message


def edit_manifest(directory: Path, change) -> None:
    path = directory / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_rows_equal_the_arrays_in_memory(tmp_path, fmt, task):
    _needs(fmt)
    x, y = arrays(task=task)
    write_set(tmp_path, x, y, fmt=fmt, num_classes=3 if task == "classification" else None)
    assert [s.rows for s in read_manifest(tmp_path).split("train").shards] == [64, 64, 64, 64, 44]
    ds, ref = open_streamed(tmp_path), resident(x, y, task)
    assert (len(ds), ds.num_features, ds.feature_shape, ds.num_classes) == (N, D, (D,), ref.num_classes)
    assert ds.target_shape == ref.y.shape[1:] and ds.nbytes == ref.x.nbytes + ref.y.nbytes
    assert ds.name == f"{fmt}:{tmp_path}[train]" and ds.is_classification == (task == "classification")
    rng = np.random.default_rng(1)
    for idx in (rng.integers(0, N, 97), np.arange(N), np.array([5, 5, 299, 0, 5]), rng.integers(0, N, (4, 9))):
        xs, ys = ds.rows(idx)
        assert xs.dtype == np.float32 and ys.dtype == ref.y.dtype
        assert np.array_equal(xs, ref.x[idx]) and np.array_equal(ys, ref.y[idx])
        assert xs.shape == (*idx.shape, D)
    with pytest.raises(IndexError):
        ds.rows(np.array([N]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("x_dtype", [np.uint8, np.float16])
def test_uint8_and_float16_rows_read_as_from_arrays_converts_them(tmp_path, fmt, x_dtype):
    _needs(fmt)
    x, y = arrays(x_dtype=x_dtype, shape=(2, 3))
    write_set(tmp_path, x, y, fmt=fmt)
    assert read_manifest(tmp_path).layout.x_dtype == x_dtype
    ds, ref = open_streamed(tmp_path), resident(x, y)
    assert ds.feature_shape == (2, 3) and np.array_equal(ds.rows(np.arange(N))[0], ref.x)
    loaded = ds.load()
    assert np.array_equal(loaded.x, ref.x) and loaded.feature_shape == (2, 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_standardized_rows_and_load_equal_feature_stats_apply(tmp_path, fmt):
    _needs(fmt)
    x, y = arrays()
    write_set(tmp_path, x, y, fmt=fmt)
    ref = resident(x, y)
    stats = read_manifest(tmp_path).stats("train")
    assert np.array_equal(stats.mean, fit_feature_stats(ref).mean)
    ds = open_streamed(tmp_path, standardize=stats)
    expected = fit_feature_stats(ref).apply(ref)
    idx = np.random.default_rng(2).integers(0, N, 200)
    assert np.array_equal(ds.rows(idx)[0], expected.x[idx])
    loaded = ds.load()
    assert np.array_equal(loaded.x, expected.x) and np.array_equal(loaded.y, expected.y)
    assert (loaded.name, loaded.num_classes, loaded.feature_shape) == (ds.name, 3, (D,))
    assert np.array_equal(ds.stats.std, stats.std)
    one_line_error(lambda: open_streamed(tmp_path, standardize=stats._replace(mean=stats.mean[:3])), tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_statistics_equal_fit_feature_stats_bit_for_bit_across_odd_shards(tmp_path, fmt):
    _needs(fmt)
    rng = np.random.default_rng(3)
    n = 20000  # not a multiple of STATS_BLOCK, nor of the shard or chunk sizes
    x = (rng.normal(size=(n, 7)) * rng.uniform(0.01, 1e3, 7) + rng.uniform(-1e4, 1e4, 7)).astype(np.float32)
    y = rng.integers(0, 3, n)
    write_set(tmp_path, x, y, fmt=fmt, rows_per_shard=1000, chunk=777)
    with ShardWriter(tmp_path / "val", format=fmt, rows_per_shard=999, num_classes=3) as w:
        w.append("train", x, y)
        w.append("val", x[:9001], y[:9001])
    ref = fit_feature_stats(resident(x, y))
    for directory in (tmp_path, tmp_path / "val"):
        stats = read_manifest(directory).stats("train")
        assert np.array_equal(stats.mean, ref.mean) and np.array_equal(stats.std, ref.std)
    val = read_manifest(tmp_path / "val").stats("val")
    assert np.array_equal(val.std, fit_feature_stats(resident(x[:9001], y[:9001])).std)
    # the shards are read in the very blocks fit_feature_stats cuts in memory, across shard ends
    m = read_manifest(tmp_path)
    blocks = list(ShardSet(tmp_path, fmt, m.layout, m.split("train").shards).blocks())
    assert [len(b) for b in blocks] == [STATS_BLOCK, STATS_BLOCK, n - 2 * STATS_BLOCK]
    assert all(np.array_equal(b, x[i * STATS_BLOCK : (i + 1) * STATS_BLOCK]) for i, b in enumerate(blocks))


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_from_many_threads_at_once(tmp_path, fmt):
    _needs(fmt)
    x, y = arrays()
    write_set(tmp_path, x, y, fmt=fmt)
    ds, ref = open_streamed(tmp_path), resident(x, y)
    wrong = []

    def read(seed):
        rng = np.random.default_rng(seed)
        for _ in range(30):
            idx = rng.integers(0, N, 64)
            xs, ys = ds.rows(idx)
            wrong.extend([seed] if not (np.array_equal(xs, ref.x[idx]) and np.array_equal(ys, ref.y[idx])) else [])

    threads = [threading.Thread(target=read, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_the_writer_refuses_bad_chunks_and_a_finished_directory(tmp_path):
    x, y = arrays()
    write_set(tmp_path / "done", x, y)
    one_line_error(lambda: ShardWriter(tmp_path / "done"), tmp_path / "done" / "manifest.json")
    w = ShardWriter(tmp_path / "new", rows_per_shard=SHARD, num_classes=3)
    w.append("train", x[:10], y[:10])
    one_line_error(lambda: w.append("train", x[:5, :6], y[:5]), tmp_path / "new", "(6,)")
    one_line_error(lambda: w.append("train", x[:5].astype(np.float16), y[:5]), tmp_path / "new", "float16")
    one_line_error(lambda: w.append("train", x[:5], np.array([0, 1, 3, 0, 0])), tmp_path / "new", "label 3")
    one_line_error(lambda: w.append("train", np.full((2, D), np.nan), y[:2]), tmp_path / "new", "NaN")
    one_line_error(lambda: w.append("tune", x[:5], y[:5]), "'tune'")
    one_line_error(lambda: ShardWriter(tmp_path / "r").append("train", x, y), "pass num_classes")
    one_line_error(lambda: ShardWriter(tmp_path / "e", num_classes=3).close(), "'train'")
    one_line_error(lambda: ShardWriter(tmp_path / "f", format="parquet"), "parquet")
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "broken", rows_per_shard=SHARD, num_classes=3) as w:
        w.append("train", x, y)
        raise RuntimeError("the input pipeline died")
    assert (tmp_path / "broken" / "train-00000.x.npy").exists()
    assert not (tmp_path / "broken" / "manifest.json").exists()  # an unfinished write, not a data set
    one_line_error(lambda: open_streamed(tmp_path / "broken"), tmp_path / "broken", "ShardWriter")


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(format="parquet"), "unknown format 'parquet'"),
    (lambda d: d.update(version=2), "unsupported version 2"),
    (lambda d: d.update(feature_shape="7"), "'feature_shape'"),
    (lambda d: d.update(x_dtype="float64"), "x_dtype 'float64'"),
    (lambda d: d["splits"].pop("train"), "'train'"),
    (lambda d: d["splits"]["train"]["shards"][1]["files"][0].update(name="../x.npy"), "'../x.npy'"),
    (lambda d: d["splits"]["train"].update(mean=[0.0]), "splits.train.mean"),
    (lambda d: d["splits"]["train"].update(rows=301), "splits.train.rows is 301"),
])
def test_malformed_manifests_are_refused_in_one_line(tmp_path, change, words):
    x, y = arrays()
    write_set(tmp_path, x, y)
    edit_manifest(tmp_path, change)
    one_line_error(lambda: open_streamed(tmp_path), tmp_path / "manifest.json", words)
    (tmp_path / "manifest.json").write_text("{not json")
    one_line_error(lambda: read_manifest(tmp_path), tmp_path / "manifest.json", "not valid JSON")


def _resave(directory: Path, name: str, array: np.ndarray) -> None:
    """Replaces shard file `name` and makes the manifest agree on its byte size."""
    np.save(directory / name, array)
    size = (directory / name).stat().st_size
    edit_manifest(directory, lambda d: [f.update(bytes=size) for s in d["splits"]["train"]["shards"]
                                        for f in s["files"] if f["name"] == name])


def test_npy_shards_that_disagree_with_the_manifest_are_refused_in_one_line(tmp_path):
    x, y = arrays()
    sets = {}
    for case in ("gone", "short", "header", "width", "dtype", "rows", "labels"):
        sets[case] = write_set(tmp_path / case, x, y)
    (sets["gone"] / "train-00001.x.npy").unlink()
    one_line_error(lambda: open_streamed(sets["gone"]), sets["gone"] / "train-00001.x.npy", "missing")
    with open(sets["short"] / "train-00002.x.npy", "r+b") as f:
        f.truncate(200)
    one_line_error(lambda: open_streamed(sets["short"]), sets["short"] / "train-00002.x.npy", "the manifest says")
    _resave(sets["header"], "train-00002.x.npy", x[128:192])
    path = sets["header"] / "train-00002.x.npy"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 28)
    edit_manifest(sets["header"], lambda d: d["splits"]["train"]["shards"][2]["files"][0].update(bytes=path.stat().st_size))
    one_line_error(lambda: open_streamed(sets["header"]), path, "truncated", "claims 64 rows")
    _resave(sets["width"], "train-00003.x.npy", np.zeros((64, 8), np.float32))
    one_line_error(lambda: open_streamed(sets["width"]), sets["width"] / "train-00003.x.npy", "(8,)")
    _resave(sets["dtype"], "train-00003.x.npy", x[192:256].astype(np.float64))
    one_line_error(lambda: open_streamed(sets["dtype"]), sets["dtype"] / "train-00003.x.npy", "float64")
    _resave(sets["rows"], "train-00004.y.npy", y[256:].astype(np.int32)[:40])
    one_line_error(lambda: open_streamed(sets["rows"]), sets["rows"] / "train-00004.y.npy", "40 rows")
    _resave(sets["labels"], "train-00004.y.npy", y[256:].astype(np.float32))
    one_line_error(lambda: open_streamed(sets["labels"]), sets["labels"] / "train-00004.y.npy", "float32")


def test_bad_values_in_shards_are_refused_when_read(tmp_path):
    x, y = arrays()
    write_set(tmp_path, x, y)
    _resave(tmp_path, "train-00001.y.npy", np.full(64, 7, np.int32))
    ds = open_streamed(tmp_path)  # label values are not read at open: only dtypes and shapes
    ds.rows(np.arange(64))
    one_line_error(lambda: ds.rows(np.array([3, 70])), tmp_path / "train-00001.y.npy", "label 7")
    bad = x[:64].copy()
    bad[5, 2] = np.inf
    _resave(tmp_path, "train-00000.x.npy", bad)
    one_line_error(lambda: open_streamed(tmp_path).load(), tmp_path / "train-00000.x.npy", "NaN or Inf")


def test_arrayrecord_shards_that_disagree_with_the_manifest_are_refused_in_one_line(tmp_path):
    _needs("arrayrecord")
    x, y = arrays()
    a, b, c = (write_set(tmp_path / name, x, y, fmt="arrayrecord") for name in "abc")
    (a / "train-00001.array_record").unlink()
    one_line_error(lambda: open_streamed(a), a / "train-00001.array_record", "missing")
    with open(b / "train-00002.array_record", "r+b") as f:
        f.truncate(1000)
    one_line_error(lambda: open_streamed(b), b / "train-00002.array_record", "the manifest says")
    path = c / "train-00002.array_record"
    path.write_bytes(b"\0" * path.stat().st_size)
    one_line_error(lambda: open_streamed(c), path, "not a readable ArrayRecord file")
    (c / "train-00002.array_record").write_bytes((a / "train-00000.array_record").read_bytes())
    edit_manifest(c, lambda d: d["splits"]["train"]["shards"][2].update(rows=63))
    edit_manifest(c, lambda d: d["splits"]["train"].update(rows=299))
    one_line_error(lambda: open_streamed(c), path, "holds 64 records")


def test_without_grain_the_arrayrecord_format_says_how_to_install_it(tmp_path, monkeypatch):
    x, y = arrays()
    if "grain" in sys.modules or _importable("grain"):
        write_set(tmp_path / "set", x, y, fmt="arrayrecord")
    for name in ("grain", "grain.sources", "array_record", "array_record.python.array_record_module"):
        monkeypatch.setitem(sys.modules, name, None)  # import of these now raises ImportError
    one_line_error(lambda: write_set(tmp_path / "new", x, y, fmt="arrayrecord"),
                   tmp_path / "new", "pip install 'jaxmlp[stream]'")
    if (tmp_path / "set").exists():
        one_line_error(lambda: open_streamed(tmp_path / "set"), tmp_path / "set", "pip install 'jaxmlp[stream]'")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_check_unchanged_names_a_touched_resized_or_vanished_shard(tmp_path):
    x, y = arrays()
    write_set(tmp_path, x, y)
    ds = open_streamed(tmp_path)
    ds.check_unchanged()
    path = tmp_path / "train-00001.x.npy"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    one_line_error(ds.check_unchanged, path, "changed")
    ds = open_streamed(tmp_path)
    with open(tmp_path / "train-00004.y.npy", "ab") as f:
        f.write(b"\0")
    one_line_error(ds.check_unchanged, tmp_path / "train-00004.y.npy", "changed")
    (tmp_path / "train-00000.x.npy").unlink()
    one_line_error(ds.check_unchanged, tmp_path / "train-00000.x.npy", "vanished")


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc")
def test_reading_a_set_larger_than_the_allowed_rss_growth_leaves_no_pages_resident(tmp_path):
    width, rows = 256, 200_000  # 200 MB of float32 features
    chunk = (np.arange(10_000 * width, dtype=np.float32) % 97).reshape(10_000, width)
    with ShardWriter(tmp_path, rows_per_shard=50_000, num_classes=2) as w:
        for _ in range(rows // len(chunk)):
            w.append("train", chunk, np.zeros(len(chunk), np.int64))
    ds = open_streamed(tmp_path)
    before, peak, total = _rss_bytes(), 0, 0.0
    for start in range(0, rows, 8192):
        x, _ = ds.rows(np.arange(start, min(start + 8192, rows)))
        total += float(x[:, 1].sum())
        del x
        peak = max(peak, _rss_bytes() - before)
    assert total == pytest.approx(rows // len(chunk) * float(chunk[:, 1].sum()))  # every row was read
    assert peak < 100 * 2**20, f"RSS grew by {peak / 2**20:.0f} MiB while reading a 200 MB set"


def test_wide_sparse_rows_are_read_a_row_a_request_and_a_cut_file_is_named(tmp_path):
    """Rows of 16 KiB (PREAD_BYTES): a sparse gather reads each with os.preadv, not the mapping."""
    from jaxmlp.data import shardnpy

    x, y = arrays(shape=(4096,))
    assert x.shape[1] * 4 >= shardnpy.PREAD_BYTES
    write_set(tmp_path, x, y)
    ds = open_streamed(tmp_path)
    rows = np.array([200, 3, 60, 3, 131])  # a few rows of each 64-row shard: sparse
    got_x, got_y = ds.rows(rows)
    np.testing.assert_array_equal(got_x, x[rows])
    np.testing.assert_array_equal(got_y, y[rows])
    path = tmp_path / "train-00000.x.npy"
    with open(path, "r+b") as f:  # cut short after the set was opened
        f.truncate(path.stat().st_size - 4 * 4096 * 10)
    one_line_error(lambda: ds.rows(np.array([5, 60])), path, "could not be read whole")


def test_a_file_cut_short_while_mapped_is_named_not_a_sigbus(tmp_path):
    """Narrow rows gathered through the mapping (dense and sparse): a shard truncated after the
    set was opened is one DataError naming it; reading the lost pages would be SIGBUS, which
    would end this test process."""
    x, y = arrays()
    write_set(tmp_path, x, y)
    ds = open_streamed(tmp_path)
    np.testing.assert_array_equal(ds.rows(np.arange(64))[0], x[:64])
    path = tmp_path / "train-00000.x.npy"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    for rows in (np.arange(64), np.array([3, 60])):  # dense, then sparse
        one_line_error(lambda: ds.rows(rows), path, "cut short while in use")
