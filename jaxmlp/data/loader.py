"""`load_dataset`: one entry point from a spec string to validated train/val/test splits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jax

from jaxmlp.config import auto_val_fraction
from jaxmlp.data import synthetic
from jaxmlp.data.dataset import DataError, Dataset, DataSplits
from jaxmlp.data.download import DOWNLOAD_TIMEOUT, Progress, check_timeout
from jaxmlp.data.files import load_csv, load_npz
from jaxmlp.data.idx import load_idx_dataset
from jaxmlp.data.labels import check_task
from jaxmlp.data.manifestfile import read_manifest
from jaxmlp.data.named import NAMED_DATASETS, load_named
from jaxmlp.data.preprocess import standardize as standardize_splits
from jaxmlp.data.preprocess import stratified_split, subsample
from jaxmlp.data.streamed import open_streamed

# name -> (default training size, generator(key, n, seed) -> Dataset); the teacher's
# weights come from the seed alone, so its train and test splits share one teacher
SYNTHETIC_DATASETS: dict[str, tuple[int, Callable[[jax.Array, int, int], Dataset]]] = {
    "spiral": (300, lambda key, n, seed: synthetic.spiral(key, n_per_class=max(1, n // 3))),
    "checkerboard": (1000, lambda key, n, seed: synthetic.checkerboard(key, n)),
    "circles": (1000, lambda key, n, seed: synthetic.circles(key, n)),
    "moons": (1000, lambda key, n, seed: synthetic.moons(key, n)),
    "blobs": (1000, lambda key, n, seed: synthetic.blobs(key, n)),
    "teacher": (1024, lambda key, n, seed: synthetic.teacher(key, n, teacher_key=seed)),
    "sin": (256, lambda key, n, seed: synthetic.sin_1d(key, n)),
}
FILE_PREFIXES = ("idx", "npz", "csv")
STREAMED_PREFIXES = ("npy", "arrayrecord")  # a sharded data set on disk with its manifest (data.manifest)
VALID_SPECS = (*SYNTHETIC_DATASETS, *NAMED_DATASETS, *(f"{p}:PATH" for p in FILE_PREFIXES),
               *(f"{p}:DIR" for p in STREAMED_PREFIXES))

# jax.random.fold_in tags, one stream per use of the seed
_TRAIN, _TEST, _SUBSAMPLE, _VAL = 0, 1, 2, 3


def load_dataset(spec: str, *, data_dir: str | None = None, download: bool = False, cache_dir: str | None = None,
                 seed: int = 0, val_fraction: float | None = 0.0, standardize: bool = False,
                 n_samples: int | None = None, label_column: str | int | None = None, task: str = "auto",
                 download_timeout: float = DOWNLOAD_TIMEOUT, download_progress: Progress | None = None) -> DataSplits:
    """Loads a data set by spec and returns ``DataSplits(train, val, test)``.

    Args:
        spec: a synthetic set (spiral, checkerboard, circles, moons, blobs, teacher, sin),
            a named real set (mnist, fashion_mnist, kmnist, cifar10), a path spec
            ``idx:DIR``, ``npz:FILE``, ``csv:FILE``, or a sharded data set on disk ``npy:DIR``,
            ``arrayrecord:DIR`` (`streamed_splits`: its splits stay on disk and are read by rows).
        data_dir, download, cache_dir: where named sets are looked for / fetched to
            (see `jaxmlp.data.named`); download is opt-in and checksummed.
        download_timeout: seconds a download may wait on a silent server (connecting or
            reading) before it fails with DataError naming the URL and the timeout.
        download_progress: ``progress(url, received, total)``, called as a download
            starts and after every read of at most 1 MiB (`jaxmlp.data.download`);
            None prints nothing.
        seed: seeds everything random here (synthetic draws, subsampling, the val split).
            Synthetic train and test splits use different keys derived from it.
        val_fraction: if > 0, carves a stratified (for classification) validation split
            of this fraction out of the training split; None = auto: the fraction
            `jaxmlp.config.auto_val_fraction` gives for the training split's size (after
            n_samples).
        standardize: fit per-feature mean/std on the final train split only and apply
            it to all splits.
        n_samples: synthetic sets: number of training (and of test) examples; other sets:
            keep a seeded, stratified subset of this many training examples.
        label_column: csv only: target column by header name or index (default: last).
        task: "auto", "classification" or "regression". For npz:FILE and csv:FILE it
            decides how the labels are read (rules in `jaxmlp.data.labels`: "auto"
            infers, and refuses class labels with a few fractional values). Every other
            set has a fixed task (the synthetic teacher and sin are regression, the rest
            and every IDX or named set classification): a task other than "auto" or that
            one raises DataError.

    Features are (N, D) float32; images are scaled to [0, 1] and flattened.
    """
    _check_arguments(spec, val_fraction, n_samples, label_column, task, download_timeout)
    prefix, _, rest = spec.partition(":")
    if prefix in STREAMED_PREFIXES and rest:
        return streamed_splits(prefix, Path(rest).expanduser(), val_fraction, n_samples, task, standardize)
    root = jax.random.key(seed)
    if spec in SYNTHETIC_DATASETS:
        train, test = _synthetic_splits(spec, root, seed, n_samples)
    else:
        train, test = _stored_splits(spec, root, n_samples, label_column, task, data_dir=data_dir, download=download,
                                     cache_dir=cache_dir, timeout=download_timeout, progress=download_progress)
    _check_fixed_task(spec, train, task)
    return _val_and_standardized(root, train, test, val_fraction, standardize)


def _check_arguments(spec: str, val_fraction: float | None, n_samples: int | None, label_column: str | int | None,
                     task: str, download_timeout: float) -> None:
    """DataError for an argument of `load_dataset` that is out of range or does not apply to `spec`."""
    if not isinstance(spec, str):
        raise DataError(f"data set spec must be a string, got {type(spec).__name__}")
    if val_fraction is not None and not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1):
        raise DataError(f"n_samples must be a positive int or None, got {n_samples!r}")
    check_task(task)
    check_timeout(download_timeout)
    if label_column is not None and spec.partition(":")[0] != "csv":
        raise DataError(f"label_column applies only to csv:FILE data, not {spec!r}")


def streamed_splits(prefix: str, directory: Path, val_fraction: float | None, n_samples: int | None, task: str,
                    standardize: bool) -> DataSplits:
    """The splits of the sharded data set in `directory` (data.manifest) as StreamedDatasets, read
    from disk by rows: its manifest's train split, and its val and test splits where it has them.
    Its validation rows are its val split, so val_fraction must be 0 or auto (Keras refuses
    validation_split for a dataset alike); n_samples applies only to sets read into memory.
    standardize: every split by the train split's statistics, which the manifest holds."""
    spec = f"{prefix}:{directory}"
    manifest = read_manifest(directory)
    if manifest.format != prefix:
        raise DataError(f"{directory} holds a {manifest.format} data set: use {manifest.format}:{directory}")
    if val_fraction:
        raise DataError(f"{spec}: a data set on disk brings its validation rows as its manifest's val split; "
                        "val_fraction must be 0")
    if n_samples is not None:
        raise DataError(f"{spec}: n_samples subsamples data read into memory; write the subset as a data set of "
                        "its own (jaxmlp.data.ShardWriter)")
    stats = manifest.stats("train") if standardize else None
    opened = {name: open_streamed(directory, name, standardize=stats) if name in manifest.splits else None
              for name in ("train", "val", "test")}
    _check_fixed_task(spec, opened["train"], task)
    return DataSplits(**opened)


def _synthetic_splits(spec: str, root: jax.Array, seed: int, n_samples: int | None) -> tuple[Dataset, Dataset]:
    """(train, test) of a synthetic set, n_samples (else the set's default) examples each."""
    default_n, make = SYNTHETIC_DATASETS[spec]
    n = n_samples or default_n
    train = make(jax.random.fold_in(root, _TRAIN), n, seed)
    test = make(jax.random.fold_in(root, _TEST), n, seed)
    return train, test


def _stored_splits(
    spec: str, root: jax.Array, n_samples: int | None, label_column: str | int | None, task: str, **fetch
) -> tuple[Dataset, Dataset | None]:
    """(train, test) of a named set or a path spec, train cut to a stratified n_samples subset.

    fetch: `load_named`'s keyword arguments (data_dir, download, cache_dir, timeout, progress).
    """
    prefix, _, rest = spec.partition(":")
    if spec in NAMED_DATASETS:
        train, test = load_named(spec, **fetch)
    elif prefix in FILE_PREFIXES and rest:
        train, test = _load_file_spec(prefix, Path(rest).expanduser(), label_column, task)
    else:
        raise DataError(f"unknown data set {spec!r}; valid specs: {', '.join(VALID_SPECS)}")
    if n_samples is not None:
        train = subsample(jax.random.fold_in(root, _SUBSAMPLE), train, n_samples)
    return train, test


def _val_and_standardized(
    root: jax.Array, train: Dataset, test: Dataset | None, val_fraction: float | None, standardize: bool
) -> DataSplits:
    """The splits, a val split carved out of train (val_fraction None: auto, by train's size)
    and, with `standardize`, all of them scaled by train's per-feature mean and std."""
    val = None
    if val_fraction is None:
        val_fraction = auto_val_fraction(len(train))
    if val_fraction > 0:
        train, val = stratified_split(jax.random.fold_in(root, _VAL), train, val_fraction)
    if standardize:
        train, val, test, _ = standardize_splits(train, val, test)
    return DataSplits(train=train, val=val, test=test)


def _load_file_spec(
    prefix: str, path: Path, label_column: str | int | None, task: str
) -> tuple[Dataset, Dataset | None]:
    if prefix == "idx":
        train, _, test = load_idx_dataset(path)
        return train, test
    if prefix == "npz":
        return load_npz(path, task=task)
    return load_csv(path, label_column=label_column, task=task), None


def _check_fixed_task(spec: str, train: Dataset, task: str) -> None:
    """DataError when `task` names the other task than the one `train` has."""
    actual = "classification" if train.is_classification else "regression"
    if task not in ("auto", actual):
        raise DataError(f"{spec}: task={task!r} does not apply to this {actual} data set; use 'auto' or {actual!r}")
