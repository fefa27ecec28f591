"""A run's preprocessing on disk: RUN_DIR/preprocessing.json holds the feature statistics the
run standardized its data with (fitted on its training split), so that `jaxmlp predict` and
`jaxmlp evaluate` apply the same transform to new data.

    {"standardize": {"features": 2, "mean": [0.01, -0.02], "std": [0.51, 0.49]}}   # --standardize
    {"standardize": null}                                                          # no standardization

The values are float32 statistics written as the float64 decimals of their float32 values, so
they read back bit for bit. The trainer writes the file atomically before training starts.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaxmlp.atomic import read_regular, write_json
from jaxmlp.config import TrainConfig
from jaxmlp.data import DataSplits, FeatureStats, standardize
from jaxmlp.parsing import loads_json
from jaxmlp.runfiles import PREPROCESSING_FILE
from jaxmlp.runlock import RunDirError


def fit_preprocessing(splits: DataSplits, standardize_features: bool) -> tuple[DataSplits, FeatureStats | None]:
    """The splits as the run trains on them and the statistics behind that: with
    `standardize_features`, mean and std (D,) fitted on the training split and applied to every
    split (what load_dataset(standardize=True) does), else the splits unchanged and None."""
    if not standardize_features:
        return splits, None
    train, val, test, stats = standardize(*splits)
    return DataSplits(train, val, test), stats


def write_preprocessing(run_dir: str | os.PathLike, stats: FeatureStats | None) -> None:
    """RUN_DIR/preprocessing.json for `stats` (None: the run applies no preprocessing)."""
    record = None if stats is None else {"features": int(stats.mean.shape[0]),
                                         "mean": np.asarray(stats.mean, np.float64).tolist(),
                                         "std": np.asarray(stats.std, np.float64).tolist()}
    write_json(Path(run_dir) / PREPROCESSING_FILE, {"standardize": record})


def read_preprocessing(run_dir: str | os.PathLike, config: TrainConfig) -> FeatureStats | None:
    """The FeatureStats a run standardized with, or None when it did not; RunDirError when a run
    that standardized has no readable preprocessing.json (runs trained before it was written)."""
    path = Path(run_dir) / PREPROCESSING_FILE
    try:
        record = loads_json(read_regular(path).decode())["standardize"]
        if record is None:
            return None
        mean, std = (np.asarray(record[k], np.float32) for k in ("mean", "std"))
        if mean.shape != std.shape or mean.shape != (record["features"],):
            raise ValueError(f"mean {mean.shape} and std {std.shape} do not both have {record['features']} features")
        return FeatureStats(mean, std)
    except FileNotFoundError:
        if not config.standardize:
            return None
        raise RunDirError(f"{run_dir}: the run standardized its features but has no {PREPROCESSING_FILE} (it was "
                          "trained before the statistics were saved); train it again") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
