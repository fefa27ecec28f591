"""How a `jaxmlp train` run ends when it does not simply finish (cli/outcome.py): resumes with
nothing to do, loss explosions, file system errors, out of memory, interrupts and early kills,
and two runs started at once. Each ends in one line, with the documented exit status, and a
run directory that can be resumed or started over."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import jaxmlp
import jaxmlp.training.fit as fit_module
from jaxmlp import checkpoint, cli, restore
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset

from test_cli import QUIET, one_line_error


def hashes(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def train(*argv) -> int:
    return cli.main(["train", *argv, *QUIET])


# --- resume ------------------------------------------------------------------------------------------
def test_resuming_a_finished_run_without_new_epochs_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert train("--epochs", "2", "--out-dir", str(run)) == 0
    before = hashes(run)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert capsys.readouterr().out.strip() == (f"nothing to resume: {run} has finished its 2 epochs; pass --epochs > 2 "
                                               "to train further; no file was changed")
    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--patience", "0"]) == 0
    assert hashes(run) == before  # not even config.json or summary.json is rewritten


def test_an_early_stopped_run_continues_when_a_larger_patience_lets_it(tmp_path, capsys):
    run = tmp_path / "es"
    assert train("--val-fraction", "0.2", "--patience", "2", "--min-delta", "10", "--epochs", "20",
                 "--out-dir", str(run)) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_early"] and summary["epochs"] == 3  # epoch 1 is the best; 2 epochs without a better one
    before = hashes(run)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "30"]) == 0  # the same patience stops it again
    out = capsys.readouterr().out
    assert "stopped early at epoch 3" in out and "pass --patience > 2 (or 0)" in out and hashes(run) == before
    assert train("--resume", str(run), "--patience", "5") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_early"] and summary["epochs"] == 6  # continued: epochs 4, 5, 6, then patience 5 ran out
    assert [r["epoch"] for r in checkpoint.read_metrics(run / "metrics.jsonl")] == list(range(1, 7))


def test_extending_a_cosine_run_continues_at_its_final_learning_rate(tmp_path):
    run = tmp_path / "cos"
    assert train("--schedule", "cosine", "--learning-rate", "0.01", "--batch-size", "32", "--final-lr-fraction", "0.1",
                 "--epochs", "4", "--out-dir", str(run)) == 0
    assert checkpoint.read_config(run).schedule_epochs == 4  # the length is recorded when the run starts
    assert train("--resume", str(run), "--epochs", "6") == 0
    lrs = [r["lr"] for r in checkpoint.read_metrics(run / "metrics.jsonl")]
    assert lrs[3] == pytest.approx(0.001, rel=0.05) and lrs[4:] == pytest.approx([0.001, 0.001], rel=1e-5)
    assert lrs[:4] == sorted(lrs[:4], reverse=True) and lrs[0] > 0.005  # the decay itself is unchanged
    # fit() follows the same rule: its checkpoint keeps the schedule's length
    splits = load_dataset("spiral")
    ckpt = checkpoint.Checkpointer(tmp_path / "fit_ckpt")
    cfg = TrainConfig(schedule="cosine", learning_rate=0.01, batch_size=32, final_lr_fraction=0.1, epochs=4,
                      checkpoint_every=0)
    jaxmlp.fit(cfg, splits.train, checkpointer=ckpt)
    _, history = jaxmlp.fit(dataclasses.replace(cfg, epochs=6), splits.train, checkpointer=ckpt, resume=True)
    assert history.lr == pytest.approx(lrs, rel=1e-6)


# --- runs that fail ------------------------------------------------------------------------------------
def test_a_finite_loss_explosion_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "boom"
    argv = ["--optimizer", "sgd", "--learning-rate", "1e6", "--epochs", "5", "--checkpoint-every", "1",
            "--out-dir", str(run)]
    assert train(*argv) == 1
    err = one_line_error(capsys, "training diverged in epoch 1")
    assert "exceeds divergence_factor 10000" in err and "no checkpoint was saved" in err
    assert not (run / "checkpoints" / "1").exists()  # nothing is saved for the diverged epoch
    # a run that exploded later keeps its earlier, good checkpoints
    splits = load_dataset("spiral")
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
    good = TrainConfig(epochs=2, checkpoint_every=1, optimizer="sgd", learning_rate=0.1)
    jaxmlp.fit(good, splits.train, checkpointer=ckpt)
    with pytest.raises(jaxmlp.TrainingDiverged, match="epoch 3: the mean training loss .* exceeds divergence_factor 0.001 x"):
        jaxmlp.fit(TrainConfig(epochs=5, checkpoint_every=1, optimizer="sgd", learning_rate=0.1,
                                 divergence_factor=1e-3), splits.train, checkpointer=ckpt, resume=True)
    assert ckpt.latest_epoch() == 2


def test_a_full_disk_is_one_line_exit_1_and_the_run_resumes_once_freed(tmp_path, capsys, monkeypatch):
    run = tmp_path / "disk"
    save = checkpoint.Checkpointer.save

    def full_after_epoch_2(self, epoch, *args, **kwargs):
        if epoch > 2:
            raise checkpoint.CheckpointWriteError(self.directory, epoch, OSError(28, "No space left on device"))
        return save(self, epoch, *args, **kwargs)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", full_after_epoch_2)
    assert train("--epochs", "4", "--checkpoint-every", "1", "--out-dir", str(run)) == 1
    err = one_line_error(capsys, "cannot write checkpoint 3: No space left on device")
    assert "the last complete checkpoint is epoch 2" in err and f"--resume {run}" in err
    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)  # space freed
    assert train("--resume", str(run)) == 0
    assert checkpoint.Checkpointer(run / "checkpoints").latest_epoch() == 4


def test_out_of_memory_during_training_is_one_line_and_the_same_command_starts_over(tmp_path, capsys, monkeypatch):
    import jax

    run = tmp_path / "oom"
    argv = ["--epochs", "2", "--out-dir", str(run)]

    def oom(*args, **kwargs):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 123 bytes")

    with monkeypatch.context() as m:
        m.setattr(fit_module, "fit", oom)
        assert train(*argv) == 1
    one_line_error(capsys, "out of device memory (RESOURCE_EXHAUSTED")
    assert train(*argv) == 0  # the run dir holds no checkpoint: the same command starts over


# --- interrupts and kills ------------------------------------------------------------------------------
# `jaxmlp train` as a terminal starts it. Python leaves SIGINT ignored in a process that inherits it
# ignored, as every process under a `cmd &` of a non-interactive shell does (a test suite started
# in the background), so the child first takes the default Ctrl-C handling back.
FOREGROUND = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "from jaxmlp.cli.program import run; run()")


def _start(argv, cwd, env):
    return subprocess.Popen([sys.executable, "-c", FOREGROUND, "train", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_before_the_first_checkpoint_says_to_rerun_and_exits_130(tmp_path, child_env):
    argv = ["--epochs", "100000", "--hidden", "64", "--checkpoint-every", "100000", "--out-dir", "run", "--quiet"]
    proc = _start(argv, tmp_path, child_env)
    while not (tmp_path / "run" / "metrics.jsonl").exists():  # training has started
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running 120 s after Ctrl-C; its stderr: {proc.communicate()[1][-3000:]}")
    assert proc.returncode == 130
    assert err.strip() == "jaxmlp train: interrupted; no checkpoint was saved in run: rerun the command to start over"


def test_a_kill_in_the_first_second_leaves_nothing_to_resume_and_the_command_reruns(tmp_path, child_env, capsys):
    argv = ["--epochs", "2", "--out-dir", "run", "--quiet", "--no-plots"]
    proc = _start(argv, tmp_path, child_env)
    time.sleep(0.5)
    proc.kill()
    proc.communicate(timeout=60)
    (tmp_path / "run").mkdir(exist_ok=True)  # (whether or not it got as far as making it)
    assert cli.main(["train", "--resume", str(tmp_path / "run")]) == 2
    one_line_error(capsys, "a run stopped before it wrote its config cannot be resumed; rerun the original command")
    rerun = subprocess.run([sys.executable, "-m", "jaxmlp.cli", "train", *argv], cwd=tmp_path, env=child_env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 2


def test_two_runs_started_at_once_get_two_complete_run_dirs(tmp_path, child_env):
    procs = [_start(["--epochs", "3", "--seed", str(seed), "--quiet", "--no-plots"], tmp_path, child_env)
             for seed in (0, 1)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    dirs = sorted((tmp_path / "runs").iterdir())
    assert len(dirs) == 2
    seeds = set()
    for run in dirs:
        config = json.loads((run / "config.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        assert config["out_dir"] == str(run) == summary["run_dir"]  # each run wrote only its own directory
        assert [r["epoch"] for r in checkpoint.read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
        params, saved, _ = restore.restore_params(run)
        assert saved.seed == config["seed"] and np.isfinite(np.asarray(params[0].W)).all()
        seeds.add(config["seed"])
    assert seeds == {0, 1}
