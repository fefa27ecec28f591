"""Labels that say what was used: a run that used all its epochs did not stop early (fit, the
sweep, summary.json); evaluate and predict name whose params they scored.

Tiny shapes: the spiral (300 examples), 8 hidden units, a few epochs.
"""
from __future__ import annotations

import dataclasses
import json

from jaxmlp import cli, sweep
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset

SPLITS = load_dataset("spiral", val_fraction=0.2)
NO_GAIN = dict(patience=2, min_delta=1e9)  # no epoch after the first improves: patience runs out on epoch 3


def test_a_sweep_model_that_used_all_its_epochs_did_not_stop_early():
    base = TrainConfig(hidden=(8,), batch_size=32, epochs=5, checkpoint_every=0, **NO_GAIN)
    result = sweep(base, {"epochs": [3, 5]}, SPLITS.train, SPLITS.val)
    used_all, cut = result.models
    assert used_all.history.epoch == [1, 2, 3] and not used_all.history.stopped_early
    assert cut.history.epoch == [1, 2, 3] and cut.history.stopped_early  # 2 of its 5 epochs skipped


def test_summary_json_of_a_run_that_used_all_its_epochs(tmp_path, capsys):
    flags = ["--hidden", "8", "--epochs", "3", "--patience", "2", "--min-delta", "1e9", "--val-fraction", "0.2"]
    assert cli.main(["train", *flags, "--out-dir", str(tmp_path / "run"), "--quiet", "--no-plots"]) == 0
    assert "stopped early" not in capsys.readouterr().out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_early"] is False
