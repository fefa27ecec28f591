"""`jaxmlp --version`, `jaxmlp info RUN_DIR`, and the model summary `jaxmlp train` prints first."""
from __future__ import annotations

import importlib.metadata

from jaxmlp import cli

from test_cli import QUIET, one_line_error


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"jaxmlp {importlib.metadata.version('jaxmlp')}\n"


def test_train_prints_the_summary_then_info_shows_it_again(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--hidden", "4", "--activation", "prelu", "--epochs", "2", "--val-fraction", "0.2",
            "--out-dir", str(run_dir), "--no-plots"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("model: 2-4-3 MLP, 1 hidden layer(s) of prelu\n")
    data_line = out.index("data: spiral, 240 train / 60 val / 300 test examples")
    assert "\ntotal " in out and data_line < out.index("epoch 1/2")

    assert cli.main(["info", str(run_dir)]) == 0
    info = capsys.readouterr().out
    total = next(line for line in info.splitlines() if line.startswith("total"))
    assert total.split() == ["total", "31", "40"]  # 2*4+4+4 slopes, 4*3+3; FLOPs 2*(8+12)
    assert "data: spiral, 240 train examples, 2 feature(s), 3 classes" in info
    assert info.endswith(f"checkpoint: epoch 2 of 2 in {run_dir / 'checkpoints'}\n")

    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "3", *QUIET]) == 0
    assert capsys.readouterr().out.startswith("done: ")  # --quiet: no summary, only the closing lines
    assert cli.main(["info", str(run_dir), "--epoch", "2"]) == 0
    assert "checkpoint: epoch 2 of 2" in capsys.readouterr().out


def test_info_errors(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "nowhere")]) == 2
    one_line_error(capsys, "not a run directory")
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--epochs", "1", "--hidden", "4", "--out-dir", str(run_dir), *QUIET]) == 0
    assert cli.main(["info", str(run_dir), "--epoch", "7"]) == 2
    one_line_error(capsys, "no checkpoint for epoch 7")


def test_every_command_that_reads_a_run_says_what_run_dir_is(capsys):
    for command in ("info", "evaluate", "predict", "export"):
        assert cli.main([command, "--help"]) == 0
        lines = capsys.readouterr().out.splitlines()
        row = lines[lines.index("positional arguments:") + 1].split()
        assert row[0] == "RUN_DIR" and row[1:3] == ["a", "run"], (command, row)  # was "RUN_DIR" alone
