"""File integrity of a run (issue #19): the checkpoint is the one source of the settings that
shape the model, a damaged or half-written run directory is refused in one line that changes
nothing, readers of a run being written read a whole checkpoint or say so, and metrics.jsonl
holds exactly the epochs that were saved, in one form. Each test: the exit code, exactly one
stderr line, no traceback, and (exit 2) every file's hash unchanged."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxmlp import checkpoint, cli

from test_cli import QUIET, one_line_error

SMALL = ["--hidden", "8", "--checkpoint-every", "1", *QUIET]


def hashes(root: Path) -> dict[str, str]:
    """Every file under root (the lock file holds the pid of whoever claimed the directory last)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A 3-epoch spiral run with a checkpoint after every epoch."""
    run = tmp_path_factory.mktemp("base") / "run"
    assert cli.main(["train", "--epochs", "3", "--out-dir", str(run), *SMALL]) == 0
    return run


@pytest.fixture
def run(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def refused(capsys, argv, root: Path, needle: str, code: int = 2) -> str:
    before = hashes(root)
    assert cli.main(argv) == code
    err = one_line_error(capsys, needle)
    assert hashes(root) == before
    return err


def damage_latest_data(run: Path) -> None:
    for f in (run / "checkpoints" / "3" / "state" / "d").iterdir():
        f.write_bytes(f.read_bytes()[:20])


def command(argv, env, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxmlp.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_6_the_checkpoint_not_config_json_decides_the_model(run, tmp_path, capsys):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "activation": "tanh"}))
    refused(capsys, ["train", "--resume", str(run), "--epochs", "6", *QUIET], tmp_path,
            "activation is 'tanh', but checkpoint 3 was trained with 'relu'")
    refused(capsys, ["noise-scale", str(run)], tmp_path, "activation is 'tanh'")
    (run / "config.json").write_text(json.dumps({**config, "dtype": "float64"}))
    refused(capsys, ["train", "--resume", str(run), "--epochs", "6", *QUIET], tmp_path, "dtype is 'float64'")
    # loop settings still come from the flags, and from config.json
    (run / "config.json").write_text(json.dumps({**config, "eval_every": 2}))
    assert cli.main(["train", "--resume", str(run), "--epochs", "4", *QUIET]) == 0
    saved = checkpoint.read_config(run)
    assert (saved.epochs, saved.eval_every, saved.activation) == (4, 2, "relu")


def test_9a_a_resume_that_cannot_restore_changes_no_file(run, tmp_path, capsys):
    damage_latest_data(run)
    refused(capsys, ["train", "--resume", str(run), "--epochs", "5", *QUIET], tmp_path, "checkpoint 3")
    meta_file = run / "checkpoints" / "2" / "meta" / "metadata"  # layer sizes that do not fit the data
    shutil.rmtree(run / "checkpoints" / "3")
    meta_file.write_text(meta_file.read_text().replace('"sizes": [2, 8, 3]', '"sizes": [2, 9, 3]'))
    refused(capsys, ["train", "--resume", str(run), "--epochs", "5", *QUIET], tmp_path, "layer sizes (2, 9, 3)")


def test_9c_a_damaged_latest_checkpoint_is_refused_never_replaced(run, tmp_path, capsys):
    damage_latest_data(run)
    err = refused(capsys, ["train", "--resume", str(run), "--epochs", "5", *QUIET], tmp_path,
                  "the older checkpoints 1, 2 are intact and never used in its place")
    assert f"move {run.absolute()}/checkpoints/3 out of" in err and len(err) < 800
    shutil.move(run / "checkpoints" / "3", tmp_path / "damaged")  # as the line says
    assert cli.main(["train", "--resume", str(run), "--epochs", "5", *QUIET]) == 0
    assert [r["epoch"] for r in checkpoint.read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5]


def test_14_damaged_run_and_sweep_records_are_one_line(run, tmp_path, capsys):
    shutil.rmtree(run / "checkpoints" / "3" / "meta")
    for argv in (["info", str(run)], ["evaluate", str(run)], ["export", str(run), "--npz", str(tmp_path / "p.npz")],
                 ["train", "--resume", str(run), "--epochs", "5", *QUIET]):
        refused(capsys, argv, tmp_path, "checkpoint 3 in")
    shutil.rmtree(run / "checkpoints" / "3")
    (run / "checkpoints" / "2" / "meta" / "metadata").write_text('{"epoch": 2, "siz')  # truncated
    refused(capsys, ["train", "--resume", str(run), "--epochs", "5", *QUIET], tmp_path, "checkpoint 2 in")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for record in ([1, 2], {"config": {}, "settings": {"models_per_program": None, "width": None}}):
        (sweep / "sweep.json").write_text(json.dumps(record))
        refused(capsys, ["sweep", "--resume", str(sweep)], tmp_path, "sweep.json: not a sweep's record")


def test_15_corrupt_checkpoint_data_is_one_short_line(run, child_env):
    for f in (run / "checkpoints" / "3" / "state" / "d").iterdir():
        data = bytearray(f.read_bytes())
        data[30:34] = b"XXXX"  # caught by tensorstore's checks
        f.write_bytes(bytes(data))
    before = hashes(run)
    for _ in range(2):  # the event loop noise came at random
        proc = command(["evaluate", str(run)], child_env)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr and "Event loop" not in proc.stderr, proc.stderr
        assert "checkpoint 3 in" in proc.stderr and len(proc.stderr) < 800, proc.stderr
    assert hashes(run) == before


READER = """
import contextlib, io, json, sys, time, traceback
from jaxmlp import cli
run, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
results, end, i = [], time.monotonic() + seconds, 0
while time.monotonic() < end:
    argv = [["evaluate", run], ["info", run], ["predict", run, "--out", f"{out}/p{i}.npy"],
            ["export", run, "--npz", f"{out}/e{i}.npz"]][i % 4]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except BaseException:
            code, _ = -1, traceback.print_exc()
    results.append([argv[0], code, err.getvalue()])
    i += 1
print(json.dumps(results))
"""


def test_16_readers_of_a_run_being_written_read_a_whole_checkpoint_or_say_so(tmp_path, child_env):
    run = tmp_path / "run"
    writer = subprocess.Popen([sys.executable, "-m", "jaxmlp.cli", "train", "--epochs", "100000", "--out-dir",
                               str(run), "--keep-checkpoints", "1", *SMALL], env=child_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.read_metrics(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else True:
            assert writer.poll() is None and time.monotonic() < deadline, writer.stderr.read()
            time.sleep(0.2)
        outs = [tmp_path / f"reader{k}" for k in range(2)]
        readers = [subprocess.Popen([sys.executable, "-c", READER, str(run), str(out), "8"], env=child_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for out in outs if not out.mkdir()]
        outputs = [reader.communicate(timeout=180) for reader in readers]
        assert writer.poll() is None  # still writing all along
    finally:
        writer.kill()
        writer.communicate()
    calls = []
    for (out, err), reader in zip(outputs, readers):
        assert reader.returncode == 0 and "Traceback" not in err and "Metadata file" not in err, err
        calls += json.loads(out.splitlines()[-1])
    for name, code, err in calls:
        assert code == 0 and err == "" or code == 2 and err.count("\n") == 1 and "a run is writing there" in err, (
            name, code, err)
    assert len(calls) >= 2 and any(code == 0 for _, code, _ in calls), calls  # (how many read whole: the load's)


def test_18_a_half_deleted_old_checkpoint_reads_quietly(run, tmp_path, child_env):
    old = run / "checkpoints" / "1"  # as a kill -9 in the middle of an older jaxmlp's pruning left it
    (old / "_CHECKPOINT_METADATA").unlink()
    shutil.rmtree(old / "state")
    leftover = run / "checkpoints" / "0.orbax-checkpoint-tmp-pruned-1"  # as one in the middle of this one's
    shutil.copytree(run / "checkpoints" / "2", leftover)
    for argv in (["info", str(run)], ["export", str(run), "--npz", str(tmp_path / "p.npz")]):
        proc = command(argv, child_env)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    proc = command(["evaluate", str(run), "--epoch", "1"], child_env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "checkpoint 1 in" in proc.stderr, proc.stderr
    proc = command(["train", "--resume", str(run), "--epochs", "5", *QUIET], child_env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["3", "4", "5"]  # pruned whole, debris gone


def test_21d_an_epoch_whose_checkpoint_fails_leaves_no_metrics_line(tmp_path, capsys, monkeypatch):
    save = checkpoint.Checkpointer.save

    def full_at_epoch_3(self, epoch, *args, **kwargs):
        if epoch == 3:
            raise checkpoint.CheckpointWriteError(self.directory, epoch, OSError(28, "No space left on device"))
        save(self, epoch, *args, **kwargs)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", full_at_epoch_3)
    run = tmp_path / "run"
    assert cli.main(["train", "--epochs", "4", "--out-dir", str(run), *SMALL]) == 1
    one_line_error(capsys, "cannot write checkpoint 3: No space left on device")
    assert [r["epoch"] for r in checkpoint.read_metrics(run / "metrics.jsonl")] == [1, 2]


def test_21f_metrics_lines_have_one_form_live_and_after_a_resume(run):
    live = (run / "metrics.jsonl").read_text().splitlines()
    assert cli.main(["train", "--resume", str(run), "--epochs", "5", *QUIET]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    keys = [list(json.loads(line)) for line in lines]
    assert keys == [keys[-1]] * 5 and lines[:3] == live  # the rewritten lines are the live ones, byte for byte
