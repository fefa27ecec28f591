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
    preprocess  scale_uint8, flatten, standardize, stratified_split, subsample, feature_stats
    shardlayout the on-disk row layout of a sharded set: formats, dtypes, shard file names
    shardnpy    npy shards: mmap'd reads that leave no pages resident, streamed writes
    shardrecord arrayrecord shards (grain, optional: pip install 'jaxmlp[stream]')
    shardset    the shards of one split read as one array of rows
    manifestfile  manifest.json: Manifest, read_manifest
    manifest    ShardWriter: writes a set larger than memory chunk by chunk
    streamed    open_streamed, StreamedDataset: a split read from disk by rows
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
from jaxmlp.data.manifest import Manifest, ShardWriter, read_manifest
from jaxmlp.data.named import DATA_ENV, NAMED_DATASETS, load_named, locate_dataset
from jaxmlp.data.preprocess import (
    FeatureStats,
    feature_stats,
    fit_feature_stats,
    flatten,
    scale_uint8,
    standardize,
    stratified_split,
    subsample,
)
from jaxmlp.data.sources import DATASET_FILES, DATASET_URLS, MIRROR_ENV, RemoteFile, default_cache_dir
from jaxmlp.data.streamed import StreamedDataset, open_streamed
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
    "Manifest",
    "MIRROR_ENV",
    "NAMED_DATASETS",
    "Progress",
    "RemoteFile",
    "RestrictedUnpickler",
    "SYNTHETIC_DATASETS",
    "ShardWriter",
    "StreamedDataset",
    "TASKS",
    "VALID_SPECS",
    "blobs",
    "checkerboard",
    "circles",
    "default_cache_dir",
    "download_dataset",
    "download_file",
    "feature_stats",
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
    "open_streamed",
    "read_manifest",
    "read_idx",
    "scale_uint8",
    "sin_1d",
    "spiral",
    "standardize",
    "stratified_split",
    "subsample",
    "teacher",
]
