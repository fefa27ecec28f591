"""preprocessing.json: the training split's feature statistics, written and read back bit for bit."""
from __future__ import annotations

import json

import numpy as np
import pytest

from jaxmlp import checkpoint, rundir
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.run_preprocessing import fit_preprocessing, read_preprocessing, write_preprocessing


def test_fit_matches_load_dataset_standardize_and_round_trips(tmp_path):
    raw = load_dataset("spiral", val_fraction=0.2)
    splits, stats = fit_preprocessing(raw, True)
    expected = load_dataset("spiral", val_fraction=0.2, standardize=True)
    for got, want in zip(splits, expected):
        assert np.array_equal(got.x, want.x) and np.array_equal(got.y, want.y)
    write_preprocessing(tmp_path, stats)
    back = read_preprocessing(tmp_path, TrainConfig(standardize=True))
    assert back.mean.dtype == np.float32 and np.array_equal(back.mean, stats.mean)
    assert np.array_equal(back.std, stats.std) and not np.allclose(stats.std, 1.0)
    assert np.array_equal(back.apply(raw.test).x, splits.test.x)


def test_no_standardization_is_recorded_and_applies_none(tmp_path):
    raw = load_dataset("spiral")
    splits, stats = fit_preprocessing(raw, False)
    assert splits is raw and stats is None
    write_preprocessing(tmp_path, None)
    assert json.loads((tmp_path / checkpoint.PREPROCESSING_FILE).read_text()) == {"standardize": None}
    assert read_preprocessing(tmp_path, TrainConfig()) is None
    assert read_preprocessing(tmp_path / "older-run", TrainConfig()) is None  # no file, no standardization


def test_missing_or_broken_file_of_a_standardized_run(tmp_path):
    with pytest.raises(checkpoint.RunDirError, match="standardized its features but has no preprocessing.json"):
        read_preprocessing(tmp_path, TrainConfig(standardize=True))
    (tmp_path / checkpoint.PREPROCESSING_FILE).write_text('{"standardize": {"features": 3, "mean": [0], "std": [1]}}')
    with pytest.raises(checkpoint.RunDirError, match="cannot read"):
        read_preprocessing(tmp_path, TrainConfig(standardize=True))


def test_overwrite_removes_it_like_every_run_file(tmp_path):
    config = TrainConfig(out_dir=str(tmp_path))
    rundir.claim_run_dir(tmp_path, config).release()  # a run's directory, marked as jaxmlp's
    write_preprocessing(tmp_path, None)
    with pytest.raises(checkpoint.RunDirError, match="already holds a run"):
        rundir.check_new_run_dir(tmp_path, config)
    rundir.claim_run_dir(tmp_path, config, overwrite=True).release()
    assert not (tmp_path / checkpoint.PREPROCESSING_FILE).exists()
