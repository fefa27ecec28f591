"""Real MNIST from ../shared/data/mnist, data-set lookup, and downloads from a local HTTP server.

The server binds 127.0.0.1 on a free port and serves copies of the shared files made in
a temporary directory; nothing else is ever contacted.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from jaxmlp.data import (
    DataError,
    download_file,
    load_dataset,
    locate_dataset,
    read_idx,
)
from jaxmlp.data.sources import DATASET_FILES, resolve_mirrors

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_GZ = [f.filename for f in DATASET_FILES["mnist"]]


@pytest.fixture(autouse=True)
def _no_user_data_env(monkeypatch):
    """Tests here decide where data comes from; ignore the developer's own settings."""
    for var in ("JAXMLP_DATA", "JAXMLP_MIRROR"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------- real MNIST


def test_mnist_shapes_counts_and_pixel_range(mnist_splits):
    train, val, test = mnist_splits
    assert val is None
    assert train.x.shape == (60000, 784) and test.x.shape == (10000, 784)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int32
    assert train.feature_shape == (28, 28) and train.num_classes == 10
    assert np.bincount(train.y)[1] == 6742
    np.testing.assert_array_equal(np.bincount(train.y, minlength=10), MNIST_TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(test.y, minlength=10), MNIST_TEST_COUNTS)
    for split in (train, test):
        assert split.x.min() == 0.0 and split.x.max() == 1.0


def test_read_idx_on_real_file(mnist_dir):
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8 and labels[:3].tolist() == [7, 2, 1]


def test_locate_uses_data_dir_env_var_and_subdirectory(mnist_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert locate_dataset("mnist", data_dir=mnist_dir, cache_dir=cache) == mnist_dir
    assert locate_dataset("mnist", data_dir=mnist_dir.parent, cache_dir=cache) == mnist_dir
    assert locate_dataset("mnist", cache_dir=cache) is None
    monkeypatch.setenv("JAXMLP_DATA", str(mnist_dir.parent))
    assert locate_dataset("mnist", cache_dir=cache) == mnist_dir


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist", "cifar10"])
def test_missing_data_message_says_what_to_do(tmp_path, name):
    with pytest.raises(DataError) as info:
        load_dataset(name, data_dir=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    for hint in ("--data-dir DIR", "$JAXMLP_DATA", "--download", str(tmp_path / "cache")):
        assert hint in message, message


def test_mnist_subsample_and_validation_split(mnist_splits, mnist_dir):
    splits = load_dataset("mnist", data_dir=str(mnist_dir), n_samples=1000, val_fraction=0.2, seed=3)
    assert len(splits.train) == 800 and len(splits.val) == 200 and len(splits.test) == 10000
    counts = np.bincount(splits.val.y, minlength=10)
    expected = 200 * np.array(MNIST_TRAIN_COUNTS) / 60000
    assert np.abs(counts - expected).max() <= 1.5


# ---------------------------------------------------------------- downloads


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _TruncatingHandler(_QuietHandler):
    """Announces the full Content-Length, sends half the body, then drops the connection."""

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


class _StallingHandler(_QuietHandler):
    """Announces the full Content-Length, sends half the body, then goes silent (connection open)."""

    release = threading.Event()

    def do_GET(self) -> None:
        body = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.release.wait(30)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A server on 127.0.0.1 that accepts connections and never sends a byte; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        done.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


@contextlib.contextmanager
def serve(directory: Path, handler: type = _QuietHandler) -> Iterator[str]:
    """Serves `directory` on 127.0.0.1 (free port) in a thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def mirror_dir(mnist_dir, tmp_path_factory) -> Path:
    """A temporary copy of the shared MNIST .gz files (never inside the repository)."""
    d = tmp_path_factory.mktemp("mirror") / "mnist"
    d.mkdir()
    for name in MNIST_GZ:
        shutil.copyfile(mnist_dir / name, d / name)
    return d


def _files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_verifies_and_loads(mirror_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    with serve(mirror_dir.parent) as url:
        monkeypatch.setenv("JAXMLP_MIRROR", url + "{name}/")
        splits = load_dataset("mnist", download=True, cache_dir=str(cache))
    assert _files_in(cache) == sorted(MNIST_GZ)  # no temporary files left behind
    assert splits.train.x.shape == (60000, 784) and splits.test.x.shape == (10000, 784)
    np.testing.assert_array_equal(np.bincount(splits.train.y), MNIST_TRAIN_COUNTS)
    # the gzip wrapping differs from the canonical one: the checksum is of the content
    assert (cache / MNIST_GZ[0]).read_bytes() == (mirror_dir / MNIST_GZ[0]).read_bytes()
    assert locate_dataset("mnist", cache_dir=cache) == cache


@pytest.mark.parametrize(
    "content, phrase",
    [
        (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"), "checksum mismatch"),
        (b"plain bytes, not gzip", "not a valid gzip stream"),
    ],
    ids=["wrong-content", "not-gzip"],
)
def test_download_with_bad_checksum_is_refused(tmp_path, monkeypatch, content, phrase):
    served = tmp_path / "served"
    served.mkdir()
    for name in MNIST_GZ:
        (served / name).write_bytes(content)
    cache = tmp_path / "cache"
    with serve(served) as url:
        monkeypatch.setenv("JAXMLP_MIRROR", url)
        with pytest.raises(DataError) as info:
            load_dataset("mnist", download=True, cache_dir=str(cache))
    assert phrase in str(info.value) and MNIST_GZ[0] in str(info.value)
    assert _files_in(cache) == []


def test_download_file_checksum_mismatch_leaves_nothing(mirror_dir, tmp_path):
    dest = tmp_path / "cache" / "t10k-labels-idx1-ubyte.gz"
    with serve(mirror_dir) as url:
        with pytest.raises(DataError, match="checksum mismatch"):
            download_file(url + dest.name, dest, sha256="0" * 64)
        ok = download_file(url + dest.name, dest, md5="27ae3e4e09519cfbb04c329615203637",
                           decompressed=True)
    assert ok == dest and _files_in(dest.parent) == [dest.name]


def test_interrupted_download_leaves_no_partial_file(mirror_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    with serve(mirror_dir, _TruncatingHandler) as url:
        monkeypatch.setenv("JAXMLP_MIRROR", url)
        with pytest.raises(DataError, match="interrupted"):
            load_dataset("mnist", download=True, cache_dir=str(cache))
    assert _files_in(cache) == []


def test_download_http_error_is_a_data_error(tmp_path):
    with serve(tmp_path) as url:
        with pytest.raises(DataError, match="HTTP 404"):
            download_file(url + "missing.gz", tmp_path / "cache" / "missing.gz")
    assert _files_in(tmp_path / "cache") == []


def test_silent_server_fails_within_the_timeout_with_one_line(tmp_path, monkeypatch):
    cache = tmp_path / "new" / "deeper" / "cache"
    with silent_server() as url:
        monkeypatch.setenv("JAXMLP_MIRROR", url)
        start = time.monotonic()
        with pytest.raises(DataError) as info:
            load_dataset("mnist", download=True, cache_dir=str(cache), download_timeout=0.5)
        elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < 1.5, elapsed
    assert "\n" not in message
    assert f"{url}{MNIST_GZ[0]}: download stalled after 0 bytes: nothing received for 0.5 s" in message
    assert not (tmp_path / "new").exists()  # the directories it made are gone again


def test_stall_in_the_middle_of_the_body(mirror_dir, tmp_path):
    dest = tmp_path / "t10k-labels-idx1-ubyte.gz"
    half = (mirror_dir / dest.name).stat().st_size // 2
    try:
        with serve(mirror_dir, _StallingHandler) as url:
            start = time.monotonic()
            with pytest.raises(DataError, match=f"stalled after {half} bytes: nothing received for 0.4 s"):
                download_file(url + dest.name, dest, timeout=0.4)
            assert time.monotonic() - start < 1.4
            _StallingHandler.release.set()
    finally:
        _StallingHandler.release.set()
    assert _files_in(tmp_path) == []


def test_download_reports_progress(mirror_dir, tmp_path):
    calls = []
    name = MNIST_GZ[0]  # 9.9 MB: more than 9 reads of at most 1 MiB
    size = (mirror_dir / name).stat().st_size
    with serve(mirror_dir) as url:
        download_file(url + name, tmp_path / name, progress=lambda *a: calls.append(a))
    assert calls[0] == (url + name, 0, None)
    assert calls[-1] == (url + name, size, size)
    received = [c[1] for c in calls]
    assert len(calls) >= 1 + size // (1 << 20) and received == sorted(received)
    assert all(b - a <= 1 << 20 for a, b in zip(received, received[1:]))


def test_failed_download_leaves_no_directory_it_made(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    with serve(tmp_path) as url:
        for dest in (existing / "a" / "b" / "missing.gz", existing / "missing.gz"):
            with pytest.raises(DataError, match="HTTP 404"):
                download_file(url + "missing.gz", dest)
    assert _files_in(existing) == []  # "a" and "a/b" are removed, "existing" (not ours) stays
    assert existing.is_dir()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5", True])
def test_bad_download_timeout(timeout, tmp_path):
    with pytest.raises(DataError, match="download timeout must be a positive number of seconds"):
        load_dataset("spiral", download_timeout=timeout)
    with pytest.raises(DataError, match="download timeout must be a positive number of seconds"):
        download_file("http://127.0.0.1:1/x", tmp_path / "x", timeout=timeout)
    assert _files_in(tmp_path) == []


def test_mirror_resolution(monkeypatch, tmp_path):
    assert resolve_mirrors("mnist")[0].startswith("https://")
    assert resolve_mirrors("kmnist", "http://127.0.0.1:1/{name}/") == ("http://127.0.0.1:1/kmnist/",)
    monkeypatch.setenv("JAXMLP_MIRROR", "http://127.0.0.1:1/x/")
    assert resolve_mirrors("cifar10") == ("http://127.0.0.1:1/x/",)
    with pytest.raises(DataError, match="unsupported URL scheme"):
        download_file("ftp://127.0.0.1/x", tmp_path / "never")
    assert _files_in(tmp_path) == []


def test_cli_trains_mnist_to_97_percent_in_two_epochs(mnist_dir, tmp_path):
    """`jaxmlp train --dataset mnist --data-dir ...`: a 784-512-512-10 relu net, 2 epochs, >= 97% test."""
    import json

    from jaxmlp.cli import main

    run_dir = tmp_path / "mnist-run"
    code = main(["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--hidden", "512,512",
                 "--activation", "relu", "--epochs", "2", "--batch-size", "128", "--optimizer", "adam",
                 "--learning-rate", "1e-3", "--out-dir", str(run_dir), "--quiet", "--no-plots"])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["final"]["test"]["accuracy"] >= 0.97, summary["final"]
