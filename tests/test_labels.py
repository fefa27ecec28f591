"""Labels that say what was used: a run that used all its epochs did not stop early (fit, the
sweep, summary.json); evaluate and predict name whose params they scored.

Tiny shapes: the spiral (300 examples), 8 hidden units, a few epochs.
"""
from __future__ import annotations

import json

import pytest

from jaxmlp import checkpoint, cli, sweep
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset

from test_cli import QUIET, one_line_error

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


@pytest.fixture(scope="module")
def best_run(tmp_path_factory):
    """A spiral run that keeps the best params of epoch 1 (nothing after it improves by 1e9) and
    checkpoints 2, 3, 4: the params it scores are older than its checkpoints."""
    run_dir = tmp_path_factory.mktemp("runs") / "best"
    assert cli.main(["train", "--hidden", "8", "--val-fraction", "0.2", "--epochs", "4", "--checkpoint-every", "1",
                     "--keep-checkpoints", "3", "--min-delta", "1e9", "--restore-best", "--out-dir", str(run_dir),
                     *QUIET]) == 0
    return run_dir


def val_losses(run_dir) -> list[float]:
    """The val loss of each epoch, as metrics.jsonl logged it."""
    return [json.loads(line)["val_loss"] for line in (run_dir / checkpoint.METRICS_FILE).read_text().splitlines()]


def evaluated(capsys, *argv) -> tuple[str, float]:
    """(whose params the evaluate line names, its loss)."""
    assert cli.main(["evaluate", *map(str, argv), "--split", "val"]) == 0
    head, _, numbers = capsys.readouterr().out.rpartition(": ")
    return head.split("examples, ")[1], float(numbers.split()[1])


def test_evaluate_names_whose_params_it_scored(best_run, capsys):
    losses = val_losses(best_run)
    assert checkpoint.Checkpointer(best_run / checkpoint.CHECKPOINT_DIR).all_epochs() == [2, 3, 4]
    whose, loss = evaluated(capsys, best_run)
    assert whose == "the best val-loss params, of epoch 1 (checkpoint of epoch 4)"  # was "epoch 4"
    assert loss == pytest.approx(losses[0], abs=6e-5)
    whose, loss = evaluated(capsys, best_run, "--epoch", "3")  # was epoch 1's best params, named "epoch 3"
    assert whose == "the params of epoch 3" and loss == pytest.approx(losses[2], abs=6e-5)
    assert abs(losses[2] - losses[0]) > 1e-3  # the two are told apart
    whose, loss = evaluated(capsys, best_run, "--epoch", "1")  # checkpoint 1 is pruned; checkpoint 4 holds them
    assert whose == "the best val-loss params, of epoch 1 (checkpoint of epoch 4)"
    assert loss == pytest.approx(losses[0], abs=6e-5)


@pytest.mark.parametrize("args,needle", [
    (["--epoch", "3", "--best"], "no checkpoint holds the best val-loss params of epoch 3 (they hold the params of "
                                 "epochs 2, 3, 4 and the best val-loss params of epoch 1)"),
    (["--epoch", "1", "--last"], "no checkpoint holds the last params of epoch 1"),
    (["--epoch", "9"], "no checkpoint holds the params of epoch 9"),
])
@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_epoch_n_that_no_checkpoint_holds_is_refused(best_run, tmp_path, capsys, command, args, needle):
    out = {"predict": ["--out", str(tmp_path / "p.npy")], "export": ["--npz", str(tmp_path / "p.npz")]}
    assert cli.main([command, str(best_run), *out.get(command, []), *args]) == 2
    assert one_line_error(capsys, needle).startswith(f"jaxmlp {command}: error: ")
    assert not list(tmp_path.iterdir())


def test_predict_and_export_name_whose_params(best_run, tmp_path, capsys):
    assert cli.main(["predict", str(best_run), "--out", str(tmp_path / "p.npy")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        "3 score(s) of the best val-loss params, of epoch 1 (checkpoint of epoch 4)")
    assert cli.main(["export", str(best_run), "--npz", str(tmp_path / "p.npz"), "--epoch", "2"]) == 0
    assert "(the params of epoch 2, sizes" in capsys.readouterr().out
