"""Shared test set-up.

- A persistent XLA compilation cache, shared by the pytest-xdist workers and by the CLI
  subprocesses the tests start (through the environment), so a shape compiled once is not
  compiled again. Point JAXMLP_TEST_CACHE elsewhere (or to "off") to change it; jaxmlp
  leaves a JAX cache set this way alone (compile_cache.py), and "off" turns its own off too.
- `x64`: a fixture that turns on float64 for one test only (jax.enable_x64 is scoped).
"""
from __future__ import annotations

import os
from pathlib import Path

_cache = os.environ.get("JAXMLP_TEST_CACHE", str(Path(__file__).resolve().parents[1] / ".jax_cache"))
if _cache != "off":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
else:  # nor jaxmlp's own default cache (compile_cache.py) in the user's home
    os.environ.setdefault("JAXMLP_CACHE_DIR", "off")

import jax  # noqa: E402  (after the environment is set)
import pytest  # noqa: E402


def kill_when(proc, ready, what: str, timeout: float = 240.0) -> None:
    """SIGKILL the subprocess `proc` as soon as `ready()` holds; fail when it never does within
    `timeout` seconds, or when `proc` ended before (naming `what` it never did, or its stderr)."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready():
        assert time.monotonic() < deadline, f"the run never {what}"
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run finished before the kill: {proc.stderr.read()!r}"
    proc.stderr.close()


@pytest.fixture
def x64():
    """Run the test with float64 enabled; other tests keep JAX's float32 default."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def child_env(tmp_path_factory):
    """Subprocess environment with a persistent XLA cache (conftest's, else a tmp one), so the
    children do not each compile the same programs again."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("xla")))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.pop("JAX_ENABLE_X64", None)
    return env


# ---- real MNIST (data module) -------------------------------------------------------
MNIST_ENV = "JAXMLP_MNIST_DIR"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Directory with the four MNIST .gz files: $JAXMLP_MNIST_DIR, else ../shared/data/mnist.

    Missing data fails the test when CI=true, and skips it otherwise.
    """
    env = os.environ.get(MNIST_ENV)
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    missing = [name for name in MNIST_FILES if not (path / name).is_file()]
    if missing:
        msg = (
            f"MNIST data missing in {path} ({', '.join(missing)}); provide ../shared/data/mnist "
            f"next to the repository or set ${MNIST_ENV}"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def mnist_splits(mnist_dir: Path):
    """`load_dataset("mnist")` from `mnist_dir`: DataSplits(train (60000, 784), None, test (10000, 784))."""
    from jaxmlp.data import load_dataset

    return load_dataset("mnist", data_dir=str(mnist_dir))
