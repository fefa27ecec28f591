"""Data for jaxmlp: real sets (MNIST family, CIFAR-10), user files, synthetic sets.

Everything ends in a validated `Dataset` (x (N, D) float32, y (N,) int32 labels or
(N, k) float32 targets); every bad input raises `DataError` naming the file and the
problem. Modules, one concept each:

    errors      DataError
    dataset     Dataset, DataSplits, from_arrays
    labels      the task rule (TASKS: auto, classification, regression) and the class-count rule
    idx         IDX reader (read_idx) and MNIST-style directories (load_idx_dataset)
    cifar       CIFAR-10 binary and (restricted) pickle batches, safe tar reading
    files       user .npz and .csv files
    synthetic   spiral, checkerboard, circles, moons, blobs, teacher, sin_1d
    preprocess  scale_uint8, flatten, standardize, stratified_split, subsample
    sources     what the named sets are fetched from (DATASET_URLS, DATASET_FILES, mirrors, cache dir)
    download    checksummed atomic downloads with a stall timeout and a progress callback
    named       finding / fetching mnist, fashion_mnist, kmnist, cifar10
    loader      load_dataset(spec, ...)
"""

from jaxmlp.data.cifar import CIFAR10_CLASSES, RestrictedUnpickler, load_cifar10
from jaxmlp.data.dataset import DataError, Dataset, DataSplits, from_arrays
from jaxmlp.data.download import DOWNLOAD_TIMEOUT, Progress, download_dataset, download_file
from jaxmlp.data.files import load_csv, load_npz
from jaxmlp.data.idx import load_idx_dataset, read_idx
from jaxmlp.data.labels import TASKS
from jaxmlp.data.loader import SYNTHETIC_DATASETS, VALID_SPECS, load_dataset
from jaxmlp.data.named import DATA_ENV, NAMED_DATASETS, load_named, locate_dataset
from jaxmlp.data.preprocess import (
    FeatureStats,
    fit_feature_stats,
    flatten,
    scale_uint8,
    standardize,
    stratified_split,
    subsample,
)
from jaxmlp.data.sources import DATASET_FILES, DATASET_URLS, MIRROR_ENV, RemoteFile, default_cache_dir
from jaxmlp.data.synthetic import blobs, checkerboard, circles, moons, sin_1d, spiral, teacher

__all__ = [
    "CIFAR10_CLASSES",
    "DATASET_FILES",
    "DATASET_URLS",
    "DATA_ENV",
    "DOWNLOAD_TIMEOUT",
    "DataError",
    "DataSplits",
    "Dataset",
    "FeatureStats",
    "MIRROR_ENV",
    "NAMED_DATASETS",
    "Progress",
    "RemoteFile",
    "RestrictedUnpickler",
    "SYNTHETIC_DATASETS",
    "TASKS",
    "VALID_SPECS",
    "blobs",
    "checkerboard",
    "circles",
    "default_cache_dir",
    "download_dataset",
    "download_file",
    "fit_feature_stats",
    "flatten",
    "from_arrays",
    "load_cifar10",
    "load_csv",
    "load_dataset",
    "load_idx_dataset",
    "load_named",
    "load_npz",
    "locate_dataset",
    "moons",
    "read_idx",
    "scale_uint8",
    "sin_1d",
    "spiral",
    "standardize",
    "stratified_split",
    "subsample",
    "teacher",
]
