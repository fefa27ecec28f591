"""`jaxmlp predict` and `jaxmlp evaluate`: a saved run applied to data, through the run's own
preprocessing, and every bad input a one-line error with exit code 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

import jaxmlp
from jaxmlp import checkpoint, cli, export, restore
from jaxmlp.data import load_dataset
from jaxmlp.losses import get_loss
from jaxmlp.run_preprocessing import read_preprocessing

from test_cli import QUIET, one_line_error


@pytest.fixture(scope="module")
def std_run(tmp_path_factory):
    """A standardized spiral run (train 240 / val 60 / test 300), checkpoints at epochs 3, 4, 5; it keeps
    the last params (no best ones)."""
    run_dir = tmp_path_factory.mktemp("runs") / "std"
    argv = ["train", "--standardize", "--val-fraction", "0.2", "--epochs", "5", "--checkpoint-every", "1",
            "--no-restore-best", "--out-dir", str(run_dir), *QUIET]
    assert cli.main(argv) == 0
    return run_dir


def final(run_dir) -> dict:
    return json.loads((run_dir / checkpoint.SUMMARY_FILE).read_text())["final"]


def evaluate_line(capsys, argv) -> dict[str, float]:
    assert cli.main(["evaluate", *argv]) == 0
    words = capsys.readouterr().out.split(": ")[-1].split()
    return {name: float(value) for name, value in zip(words[::2], words[1::2])}


def test_predict_on_the_runs_test_split_equals_its_final_test_evaluation(std_run, tmp_path, capsys):
    out = tmp_path / "p.npy"
    assert cli.main(["predict", str(std_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: 300 rows of spiral (test split)")
    p = np.load(out, allow_pickle=False)
    assert p.dtype.names == ("class", "scores") and p["scores"].shape == (300, 3) and p["class"].dtype == np.int32
    test = load_dataset("spiral").test  # the run's test split, before its standardization
    want = final(std_run)["test"]
    assert np.mean(p["class"] == test.y) == pytest.approx(want["accuracy"], abs=1e-9)
    loss = float(np.mean(get_loss("softmax_cross_entropy").per_example(p["scores"], test.y)))
    assert loss == pytest.approx(want["loss"], rel=1e-5)
    params, _, _ = restore.restore_params(std_run)
    stats = read_preprocessing(std_run, checkpoint.read_config(std_run))
    np.testing.assert_array_equal(p["scores"], jaxmlp.predict(params, stats.apply(test).x))
    assert not np.allclose(p["scores"], jaxmlp.predict(params, test.x), atol=1e-3)  # the stats matter


def test_evaluate_each_split_and_a_file_of_raw_data(std_run, tmp_path, capsys):
    for split in ("train", "val", "test"):
        got = evaluate_line(capsys, [str(std_run), "--split", split])
        want = final(std_run)[split]
        assert got == {k: pytest.approx(v, abs=6e-5) for k, v in want.items()}, split
    test = load_dataset("spiral").test
    np.savez(tmp_path / "new.npz", x=test.x, y=test.y)  # new data, unstandardized: the run's stats apply
    got = evaluate_line(capsys, [str(std_run), "--dataset", f"npz:{tmp_path / 'new.npz'}"])
    assert got == {k: pytest.approx(v, abs=6e-5) for k, v in final(std_run)["test"].items()}


def test_csv_output_and_checkpoint_choice(std_run, tmp_path, capsys):
    csv, npy = tmp_path / "p.csv", tmp_path / "p.npy"
    assert cli.main(["predict", str(std_run), "--out", str(csv), "--epoch", "4"]) == 0
    assert cli.main(["predict", str(std_run), "--out", str(npy), "--epoch", "4", "--last"]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == "class,score_0,score_1,score_2" and len(lines) == 301
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    p = np.load(npy, allow_pickle=False)
    assert np.array_equal(table[:, 0], p["class"]) and np.array_equal(table[:, 1:].astype(np.float32), p["scores"])
    latest = tmp_path / "latest.npy"
    assert cli.main(["predict", str(std_run), "--out", str(latest)]) == 0
    assert not np.array_equal(np.load(latest)["scores"], p["scores"])  # epoch 5, not 4


def test_export_carries_the_standardization_the_weights_expect(std_run, tmp_path, capsys):
    out = tmp_path / "model.npz"
    assert cli.main(["export", str(std_run), "--npz", str(out)]) == 0
    assert "inputs standardized by its input_mean, input_std)" in capsys.readouterr().out
    stats = read_preprocessing(std_run, checkpoint.read_config(std_run))
    with np.load(out, allow_pickle=False) as f:  # was: no input_mean / input_std in the file
        np.testing.assert_array_equal(f["input_mean"], stats.mean)
        np.testing.assert_array_equal(f["input_std"], stats.std)
        x = (load_dataset("spiral").test.x - f["input_mean"]) / f["input_std"]  # raw test data, as the README does
        for i in range(len(f["sizes"]) - 1):
            x = x @ f[f"layer{i}_W"] + f[f"layer{i}_b"]
            x = np.maximum(x, 0) if i < len(f["sizes"]) - 2 else x
    accuracy = np.mean(x.argmax(axis=1) == load_dataset("spiral").test.y)
    assert accuracy == pytest.approx(final(std_run)["test"]["accuracy"])
    params, activation, options = export.load_npz(out)
    exported = export.load_preprocessing(out)
    np.testing.assert_allclose(jaxmlp.predict(params, exported.apply(load_dataset("spiral").test).x,
                                                activation=activation, **options), x, rtol=1e-5, atol=1e-5)


def test_unstandardized_regression_run(tmp_path, capsys):
    run_dir = tmp_path / "sin"
    assert cli.main(["train", "--dataset", "sin", "--hidden", "8", "--epochs", "2", "--out-dir", str(run_dir),
                     *QUIET]) == 0
    assert json.loads((run_dir / checkpoint.PREPROCESSING_FILE).read_text()) == {"standardize": None}
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(run_dir), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "score_0"  # no class column
    params, _, _ = restore.restore_params(run_dir)
    test = load_dataset("sin").test
    np.testing.assert_allclose(np.loadtxt(out, skiprows=1, ndmin=2), jaxmlp.predict(params, test.x), rtol=1e-6)
    got = evaluate_line(capsys, [str(run_dir)])
    assert set(got) == {"loss", "mse"} and got["mse"] == pytest.approx(final(run_dir)["test"]["mse"], abs=6e-5)
    assert cli.main(["export", str(run_dir), "--npz", str(tmp_path / "m.npz")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(", raw inputs)")
    assert export.load_preprocessing(tmp_path / "m.npz") is None  # no standardization: nothing to apply


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    np.savez(d / "wide.npz", x=np.zeros((10, 3), np.float32), y=np.zeros(10, np.int64))
    np.savez(d / "empty.npz", x=np.zeros((0, 2), np.float32), y=np.zeros(0, np.int64))
    np.savez(d / "five.npz", x=np.zeros((10, 2), np.float32), y=np.arange(10) % 5)
    return d


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("args,needle", [
    (["--dataset", "npz:{data}/wide.npz"], "x has shape (10, 3) (3 features per example), but the model in"),
    (["--dataset", "npz:{data}/empty.npz"], "empty data set (0 examples)"),
    (["--dataset", "nosuch"], "unknown data set 'nosuch'"),
    (["--dataset", "npz:{data}/wide.npz", "--split", "val"], "has no val split (it has: train)"),
    (["--epoch", "1"], "no checkpoint holds the params of epoch 1 (they hold the params of epochs 3, 4, 5)"),
    (["--best"], "holds no best params"),
])
def test_bad_inputs_are_one_line_and_exit_2(std_run, bad_files, tmp_path, capsys, command, args, needle):
    out = ["--out", str(tmp_path / "p.npy")] if command == "predict" else []
    argv = [command, str(std_run), *out, *(a.format(data=bad_files) for a in args)]
    assert cli.main(argv) == 2
    err = one_line_error(capsys, needle)
    assert err.startswith(f"jaxmlp {command}: error: ")
    if "(10, 3)" in needle:  # the input's shape and both widths
        assert "takes 2 features" in err
    assert not (tmp_path / "p.npy").exists()


def test_bad_run_dir_output_and_labels(std_run, bad_files, tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.npy")]) == 2
    one_line_error(capsys, "not a run directory")
    assert cli.main(["evaluate", str(tmp_path / "nowhere")]) == 2
    one_line_error(capsys, "not a run directory")
    assert cli.main(["predict", str(std_run), "--out", str(tmp_path / "p.txt")]) == 2
    one_line_error(capsys, "the file name must end in .npy or .csv")
    kept = tmp_path / "kept.csv"
    kept.write_text("mine\n")
    assert cli.main(["predict", str(std_run), "--out", str(kept)]) == 2
    one_line_error(capsys, "exists; pass --overwrite to replace it")
    assert kept.read_text() == "mine\n"
    assert cli.main(["predict", str(std_run), "--out", str(kept), "--overwrite"]) == 0
    assert kept.read_text().startswith("class,score_0")
    assert cli.main(["evaluate", str(std_run), "--dataset", f"npz:{bad_files}/five.npz"]) == 2
    one_line_error(capsys, "labels go up to 4, but the model scores 3 classes (0 to 2)")
