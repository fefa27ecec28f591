"""The named real data sets (mnist, fashion_mnist, kmnist, cifar10): find, or fetch, then load.

Search order: ``data_dir`` and ``data_dir/<name>``, then ``$JAXMLP_DATA`` and
``$JAXMLP_DATA/<name>``, then the cache directory (default ``~/.cache/jaxmlp/<name>``).
Only with ``download=True`` is anything fetched, into the cache directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jaxmlp.data.cifar import BINARY_ARCHIVE, find_cifar10, load_cifar10
from jaxmlp.data.dataset import DataError, Dataset
from jaxmlp.data.download import DOWNLOAD_TIMEOUT, Progress, download_dataset
from jaxmlp.data.idx import IDX_FILE_NAMES, find_idx_files, load_idx_dataset
from jaxmlp.data.sources import default_cache_dir

DATA_ENV = "JAXMLP_DATA"
IDX_DATASETS = ("mnist", "fashion_mnist", "kmnist")
NAMED_DATASETS = (*IDX_DATASETS, "cifar10")


def search_dirs(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> list[Path]:
    """Directories searched for data set `name`, in order, without duplicates."""
    dirs: list[Path] = []
    for base in (data_dir, os.environ.get(DATA_ENV) or None):
        if base is not None:
            base = Path(base).expanduser()
            dirs += [base, base / name]
    dirs.append(Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(name))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _find_in(name: str, directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    if name == "cifar10":
        return find_cifar10(directory)
    return directory if not find_idx_files(directory)[1] else None


def locate_dataset(
    name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> Path | None:
    """Where data set `name` is on disk (a directory, or a CIFAR-10 archive), or None."""
    _check_name(name)
    for d in search_dirs(name, data_dir, cache_dir):
        found = _find_in(name, d)
        if found is not None:
            return found
    return None


def load_named(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    cache_dir: str | Path | None = None,
    mirrors: str | Sequence[str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: Progress | None = None,
) -> tuple[Dataset, Dataset]:
    """(train, test) of a named data set; features (N, D) float32 in [0, 1].

    mnist / fashion_mnist / kmnist: (60000, 784) and (10000, 784), feature_shape (28, 28).
    cifar10: (50000, 3072) and (10000, 3072), feature_shape (32, 32, 3).
    `timeout` and `progress` apply to a download (see `jaxmlp.data.download`).
    """
    _check_name(name)
    source = locate_dataset(name, data_dir, cache_dir)
    if source is None and download:
        cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(name)
        download_dataset(name, cache, mirrors=mirrors, timeout=timeout, progress=progress)
        source = _find_in(name, cache)
    if source is None:
        raise DataError(_not_found_message(name, data_dir, cache_dir))
    if name == "cifar10":
        return load_cifar10(source, name=name)
    train, _, test = load_idx_dataset(source, name=name, num_classes=10)
    if train.feature_shape != (28, 28):
        raise DataError(f"{source}: {name} images must be 28x28, got {train.feature_shape}")
    return train, test


def _check_name(name: str) -> None:
    if name not in NAMED_DATASETS:
        raise DataError(f"unknown named data set {name!r}; valid: {', '.join(NAMED_DATASETS)}")


def _not_found_message(name: str, data_dir: str | Path | None, cache_dir: str | Path | None) -> str:
    dirs = search_dirs(name, data_dir, cache_dir)
    cache = dirs[-1]
    if name == "cifar10":
        wanted = f"{BINARY_ARCHIVE} or the cifar-10-batches-bin/ (or -py/) directory"
    else:
        wanted = ", ".join(f"{names[0]}.gz" for names in IDX_FILE_NAMES.values())
    partial = ""
    if name != "cifar10":
        for d in dirs:
            found, missing = find_idx_files(d) if d.is_dir() else ({}, [])
            if found and missing:
                partial += f" {d} has only {', '.join(p.name for p in found.values())}."
    return (
        f"{name}: data not found (looked in {', '.join(str(d) for d in dirs)}).{partial} "
        f"To fix, either pass --data-dir DIR (data_dir=DIR) or set $JAXMLP_DATA=DIR, where DIR "
        f"(or DIR/{name}) holds {wanted}; or pass --download (download=True) to fetch the "
        f"official files into {cache} (checksums verified)."
    )
