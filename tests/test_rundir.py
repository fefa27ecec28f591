"""Run directories: made atomically, held by one run at a time, started over only when nothing is lost."""
from __future__ import annotations

import dataclasses
import time

import pytest

from jaxmlp import checkpoint, rundir
from jaxmlp.config import TrainConfig
from jaxmlp.rundir import RunDirError


def test_new_run_dirs_are_unique_even_within_one_second(tmp_path):
    claims = [rundir.claim_new_run_dir("npz:/data/my set.npz", tmp_path) for _ in range(3)]
    names = [c.path.name for c in claims]
    assert len(set(names)) == 3 and all(c.path.parent == tmp_path / "runs" for c in claims)
    assert names[0].startswith("my-set-") and names[1] == names[0] + "-2" and names[2] == names[0] + "-3"
    for c in claims:
        c.release()


def test_a_new_run_never_clobbers_another_runs_checkpoints(tmp_path):
    config = TrainConfig(out_dir=str(tmp_path))
    assert rundir.check_new_run_dir(tmp_path / "new", config) == []  # missing: fine
    assert rundir.check_new_run_dir(tmp_path, config) == []  # empty: fine
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match=r"not empty \(notes.txt\) and holds no run of jaxmlp's"):
        rundir.check_new_run_dir(tmp_path, config, overwrite=True)  # the user's folder: never jaxmlp's to clear
    run = tmp_path / "run"
    rundir.claim_run_dir(run, config).release()  # marked as a train run
    checkpoint.write_config(run, dataclasses.replace(config, seed=1))
    (run / rundir.CHECKPOINT_DIR / "1").mkdir(parents=True)
    (run / "gradient_stats.png").write_bytes(b"the old run's plot")  # (--track-gradients)
    (run / "notes.txt").write_text("mine")
    for same in (config, dataclasses.replace(config, seed=1)):
        with pytest.raises(RunDirError, match="already holds a run.*--resume"):
            rundir.check_new_run_dir(run, same)
    rundir.claim_run_dir(run, config, overwrite=True).release()
    assert sorted(p.name for p in run.iterdir()) == [rundir.MARKER_FILE, ".lock", "notes.txt"]  # the user's file survives


def test_the_same_command_starts_over_a_run_that_saved_no_checkpoint(tmp_path):
    config = TrainConfig(out_dir=str(tmp_path), schedule="cosine", epochs=4)
    rundir.claim_run_dir(tmp_path, config).release()  # the killed run's claim
    checkpoint.write_config(tmp_path, config.with_fixed_schedule())  # what the killed run wrote
    (tmp_path / rundir.CHECKPOINT_DIR).mkdir()
    (tmp_path / rundir.CHECKPOINT_DIR / "1.orbax-checkpoint-tmp").mkdir()  # a save it never finished
    with pytest.raises(RunDirError, match="already holds a run"):  # another command may not
        rundir.check_new_run_dir(tmp_path, dataclasses.replace(config, seed=3))
    assert rundir.check_new_run_dir(tmp_path, config) == [rundir.CONFIG_FILE, rundir.CHECKPOINT_DIR]
    rundir.claim_run_dir(tmp_path, config).release()
    assert not (tmp_path / rundir.CONFIG_FILE).exists()


def test_an_existing_file_is_not_a_run_dir(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        rundir.check_new_run_dir(tmp_path / "f", TrainConfig())
    assert rundir.run_dir_name("csv:/a/b c.csv").startswith("b-c-") and time.strftime("%Y") in rundir.run_dir_name("x")
