"""The `jaxmlp` CLI: one-line errors with exit code 2, flags from TrainConfig, resume, export, dispatch."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import types

import jax
import jaxmlp
import numpy as np
import pytest

from jaxmlp import checkpoint, cli, restore, training as train
from jaxmlp.cli import flags, run_config
from jaxmlp.config import FIELD_NAMES, TrainConfig
from jaxmlp.data import load_dataset

QUIET = ["--quiet", "--no-plots"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(capsys, needle: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and needle in err, err
    return err


def leaves_equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --- errors: one line on stderr, exit code 2 -----------------------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--batch-size", "abc"], "argument --batch-size: invalid int value: 'abc'"),
    (["train", "--learning-rate", "fast"], "argument --learning-rate: invalid float value"),
    (["train", "--hidden", "64,x"], "argument --hidden: invalid comma-separated int list value"),
    (["train", "--batch-size", "0"], "batch_size must be >= 1"),
    (["train", "--batch_size", "0"], "batch_size must be >= 1"),  # underscores work too
    (["train", "--learning-rate", "-1"], "learning_rate must be > 0"),
    (["train", "--optimizer", "adagrad"], "optimizer must be one of sgd, momentum"),
    (["train", "--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["train", "--alpha", "0.1"], "alpha applies only to activation"),
    (["train", "--dataset", "nosuch"], "unknown data set 'nosuch'"),
    (["train", "--dataset", "npz:/nonexistent/x.npz"], "/nonexistent/x.npz"),
    (["train", "--batch-size", "100000"], "batch_size must be <= the number of training examples (300)"),
    (["train", "--loss", "mse"], "loss mean_squared_error needs regression targets"),
    (["train", "--patience", "3"], "patience (early stopping) needs validation data"),
    (["train", "--patience", "soon"], "argument --patience: invalid int-or-none-or-auto value: 'soon'"),
    (["train", "--config", "missing.json"], "--config missing.json: file not found"),
    (["train", "--resume", "nowhere"], "not a run directory"),
    (["export", "nowhere"], "not a run directory"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(in_tmp, capsys, argv, needle):
    assert cli.main(argv) == 2
    one_line_error(capsys, needle)
    assert not (in_tmp / "runs").exists()  # nothing written before the inputs were checked


def test_subprocess_exit_code_and_stderr(in_tmp, child_env):
    out = subprocess.run([sys.executable, "-m", "jaxmlp.cli", "train", "--learning-rate", "-1"], cwd=in_tmp,
                         env=child_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == "jaxmlp train: error: learning_rate must be > 0, got -1.0"


def test_help_and_no_command(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--batch-size" in text and "--hidden" in text and "minibatch size" in text
    assert "--compile-cache" in text and "--no-compile-cache" in text
    flat = " ".join(text.split())
    assert "else 0 [auto]" in flat and "wherever there is validation data [auto]" in flat  # val_fraction, patience
    assert cli.main([]) == 2


# --- flags <-> TrainConfig fields ---------------------------------------------------------------------
def test_every_field_has_a_flag():
    parser = cli.build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    options = {opt for action in train_parser._actions for opt in action.option_strings}
    for name in FIELD_NAMES:
        assert "--" + name.replace("_", "-") in options, name


def _config(argv):
    ns = cli.build_parser().parse_args(flags.normalize_flags(["train", *argv]))
    return run_config.train_config(ns)[:2]  # (config, run dir)


def test_auto_flags(tmp_path):
    cfg, _ = _config(["--val-fraction", "0.2", "--patience", "3", "--out-dir", str(tmp_path / "r")])
    assert (cfg.val_fraction, cfg.patience) == (0.2, 3)
    cfg, _ = _config(["--val-fraction", "auto", "--patience", "auto", "--out-dir", str(tmp_path / "r")])
    assert (cfg.val_fraction, cfg.patience) == (None, None)


def test_flags_map_onto_config(tmp_path):
    cfg, run_dir = _config(["--hidden", "512,256", "--activation", "gelu", "--approximate", "--clip-norm", "1.5",
                            "--init", "none", "--no-standardize", "--optimizer", "lamb", "--epochs", "7",
                            "--out-dir", str(tmp_path / "r")])
    assert cfg.hidden == (512, 256) and cfg.approximate is True and cfg.clip_norm == 1.5 and cfg.init is None
    assert cfg.standardize is False and cfg.optimizer == "lamb" and cfg.epochs == 7
    assert run_dir == tmp_path / "r" and cfg.out_dir == str(tmp_path / "r")
    assert _config(["--hidden", "", "--out-dir", str(tmp_path / "r")])[0].hidden == ()


def test_config_files_with_flags_overriding(tmp_path):
    (tmp_path / "run.toml").write_text('hidden = [8, 8]\noptimizer = "sgd"\nlearning_rate = 0.5\nepochs = 9\n')
    cfg, _ = _config(["--config", str(tmp_path / "run.toml"), "--epochs", "3", "--out-dir", str(tmp_path / "a")])
    assert (cfg.hidden, cfg.optimizer, cfg.learning_rate, cfg.epochs) == ((8, 8), "sgd", 0.5, 3)
    (tmp_path / "run.json").write_text(json.dumps(TrainConfig(hidden=(4,), epochs=5).to_dict()))
    cfg, _ = _config(["--config", str(tmp_path / "run.json"), "--out-dir", str(tmp_path / "b")])
    assert cfg.hidden == (4,) and cfg.epochs == 5


def test_config_file_errors(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"hiden": [3]}')
    assert cli.main(["train", "--config", str(tmp_path / "bad.json")]) == 2
    one_line_error(capsys, "unknown config field(s): hiden")
    (tmp_path / "broken.toml").write_text("hidden = [")
    assert cli.main(["train", "--config", str(tmp_path / "broken.toml")]) == 2
    one_line_error(capsys, "cannot parse")


# --- end to end --------------------------------------------------------------------------------------
def test_train_with_no_arguments(tmp_path, child_env):
    out = subprocess.run([sys.executable, "-m", "jaxmlp.cli", "train"], cwd=tmp_path, env=child_env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("spiral-")
    for name in ("config.json", "metrics.jsonl", "checkpoints", "summary.json", "loss_curve.png",
                 "decision_boundary.png"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"]["test"]["accuracy"] >= 0.95  # the README's promise for `jaxmlp train`
    assert (summary["stopped_early"], summary["kept_epoch"], summary["kept"]) == (False, 300, "last")
    saved = checkpoint.read_config(run_dir)  # the auto settings as they were decided for the spiral
    assert (saved.val_fraction, saved.patience, saved.restore_best) == (0.0, 0, False)
    assert summary["compile_seconds"] >= 0 and summary["eval_compile_seconds"] >= 0
    assert len(checkpoint.read_metrics(run_dir / "metrics.jsonl")) == 300
    assert f"run dir: {run_dir}" in out.stdout and "done: 300 epochs" in out.stdout
    assert "params of epoch 300 (the last)" in out.stdout and "compiled in" in out.stdout
    assert "epoch 300/300" in out.stdout and "samples/s" in out.stdout
    assert (run_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_extends_a_run_bit_identically_and_exports(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--epochs", "2", "--out-dir", str(run_dir), "--checkpoint-every", "1", *QUIET]) == 0
    done, where = capsys.readouterr().out.splitlines()  # --quiet: only the closing lines, the result and the run dir
    assert done.startswith("done: 2 epochs in ") and "| test loss " in done
    assert where == f"run dir: {run_dir} (config.json, preprocessing.json, metrics.jsonl, checkpoints/, summary.json)"
    # A second start in the same run dir is refused; --resume may only change loop settings.
    assert cli.main(["train", "--epochs", "2", "--out-dir", str(run_dir), *QUIET]) == 2
    one_line_error(capsys, "already holds a run")
    assert cli.main(["train", "--resume", str(run_dir), "--learning-rate", "0.1", *QUIET]) == 2
    one_line_error(capsys, "--learning-rate cannot change when resuming")

    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "4", *QUIET]) == 0
    assert checkpoint.read_config(run_dir).epochs == 4  # a later --resume continues from here
    splits = load_dataset("spiral")
    straight, _ = jaxmlp.fit(TrainConfig(epochs=4), splits.train, splits.val, splits.test)
    params, _, meta = restore.restore_params(run_dir)
    assert meta["epoch"] == 4 and leaves_equal(params, straight)

    out = tmp_path / "model.npz"
    assert cli.main(["export", str(run_dir), "--npz", str(out)]) == 0
    with np.load(out, allow_pickle=False) as f:
        assert np.array_equal(f["layer0_W"], params[0].W) and f["sizes"].tolist() == [2, 512, 3]
    assert cli.main(["export", str(run_dir), "--npz", str(out)]) == 2  # never clobber
    one_line_error(capsys, "exists; pass --overwrite")
    assert cli.main(["export", str(run_dir), "--npz", str(out), "--overwrite", "--epoch", "3"]) == 0

    assert cli.main(["train", "--epochs", "2", "--out-dir", str(run_dir), "--overwrite", *QUIET]) == 0
    assert checkpoint.read_config(run_dir).epochs == 2


def test_early_stopping_is_in_the_closing_line_and_summary(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--val-fraction", "0.2", "--patience", "5", "--min-delta", "1e9", "--epochs", "20",
            "--hidden", "8", "--out-dir", str(run_dir), "--no-plots"]  # no epoch after the first improves
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    epochs = [line for line in printed if line.startswith("epoch")]  # every tenth of 20, and the one that stopped it
    assert [line.split()[1] for line in epochs] == ["1/20", "2/20", "4/20", "6/20"]
    assert " eta " in epochs[1] and " eta " not in epochs[-1] and " elapsed " in epochs[-1]
    done = [line for line in printed if line.startswith("done:")]
    assert done and done[0].startswith("done: 6 of 20 epochs in ")
    assert "stopped early (no val-loss improvement in 5 epochs); params of epoch 1 (best val loss) |" in done[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {k: summary[k] for k in ("epochs", "stopped_early", "best_epoch", "kept_epoch", "kept")} == \
        {"epochs": 6, "stopped_early": True, "best_epoch": 1, "kept_epoch": 1, "kept": "best"}
    saved = checkpoint.read_config(run_dir)  # restore_best was auto: config.json says what ran
    assert (saved.val_fraction, saved.patience, saved.restore_best) == (0.2, 5, True)


def test_divergence_is_one_line_and_exit_1(tmp_path, capsys):
    argv = ["train", "--dataset", "sin", "--optimizer", "sgd", "--learning-rate", "1e6", "--hidden", "16",
            "--batch-size", "32", "--epochs", "3", "--checkpoint-every", "1", "--out-dir", str(tmp_path / "run"),
            *QUIET]
    assert cli.main(argv) == 1
    one_line_error(capsys, "training diverged in epoch 1")


@pytest.mark.parametrize("command,module", [("gradcheck", "jaxmlp.gradcheck"), ("demo", "jaxmlp.demos")])
def test_subcommands_are_forwarded(monkeypatch, command, module):
    seen = []
    fake = types.ModuleType(module)
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, module, fake)
    assert cli.main([command, "--sizes", "3,4,2", "--help"]) == 7  # arguments untouched, exit code passed on
    assert seen == [["--sizes", "3,4,2", "--help"]]


def test_missing_forwarded_module_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.FORWARDED, "nothing", ("jaxmlp._no_such_module", "not there"))
    assert cli.main(["nothing"]) == 2
    one_line_error(capsys, "'nothing' is not available")


# --- what the user sees -----------------------------------------------------------------------------
def _records(n):
    return [{"epoch": e, "train_loss": 1.0 / e, "lr": 0.01, "seconds": 0.5, "samples_per_sec": 120000.0,
             "val_loss": 0.5, "val_accuracy": 0.9, "val_mse": None} for e in range(1, n + 1)]


def test_epoch_summary_lines():
    stream = io.StringIO()
    console = cli.ConsoleProgress(stream=stream, log_every=2)
    info = dict(config=TrainConfig(epochs=5), sizes=(2, 100, 3), loss="softmax_cross_entropy", n_train=300,
                steps_per_epoch=9, start_epoch=0, compile_seconds=1.0, eval_compile_seconds=0.25)
    console.on_train_begin(info)
    for record in _records(5):
        console.on_epoch_end(record)
    console.on_train_end(None)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("training: spiral 300 examples")
    assert lines[0].endswith("(compiled in 1.25s: epoch 1.00s, evaluation 0.25s)")
    assert [line.split()[1] for line in lines[1:]] == ["1/5", "2/5", "4/5", "5/5"]
    assert "loss 0.5000" in lines[2] and "val_acc 0.9000" in lines[2] and "120,000 samples/s" in lines[2]

    quiet = io.StringIO()
    console = cli.ConsoleProgress(stream=quiet, quiet=True)
    console.on_train_begin(info)
    for record in _records(5):
        console.on_epoch_end(record)
    assert quiet.getvalue() == ""


def test_plots_are_written(tmp_path):
    from jaxmlp import plots

    history = train.History()
    for record in _records(4):
        history.append(record)
    plots.plot_loss_curve(history, tmp_path / "loss.png")
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    plots.plot_decision_boundary(lambda g: np.stack([-g[:, 0], g[:, 0]], axis=1), x, y, tmp_path / "db.png",
                                 resolution=50)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "db.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.png", "loss.png"]


def test_float64_run_and_export_keep_x64_scoped(tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", "--dtype", "float64", "--epochs", "2", "--hidden", "8", "--out-dir", str(run_dir), *QUIET]
    assert cli.main(argv) == 0
    assert not jax.config.jax_enable_x64  # the CLI's float64 is scoped to the command
    assert cli.main(["export", str(run_dir)]) == 0
    with np.load(run_dir / "params.npz", allow_pickle=False) as f:
        assert f["layer0_W"].dtype == np.float64 and f["sizes"].tolist() == [2, 8, 3]
    assert not jax.config.jax_enable_x64
