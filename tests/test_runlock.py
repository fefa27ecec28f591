"""The run directory's lock: refused while another run holds it, naming that run's pid, and freed
when its run ends, even by kill -9."""
from __future__ import annotations

import multiprocessing
import os

import pytest

from jaxmlp import rundir, runlock
from jaxmlp.config import TrainConfig
from jaxmlp.rundir import RunDirError


def _hold(path, started, stop):
    claim = rundir.claim_run_dir(path, TrainConfig(out_dir=str(path)))
    started.set()
    stop.wait(30)
    claim.release()


def test_a_run_dir_in_use_is_refused_and_freed_when_its_run_ends(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path / "run", started, stop))
    holder.start()
    try:
        assert started.wait(60)
        config = TrainConfig(out_dir=str(tmp_path / "run"))
        with pytest.raises(RunDirError, match=rf"in use by another jaxmlp run \(pid {holder.pid}\)"):
            rundir.check_new_run_dir(tmp_path / "run", config)
        with pytest.raises(RunDirError, match="in use by another jaxmlp run"):
            rundir.claim_run_dir(tmp_path / "run", config)
    finally:
        stop.set()
        holder.join(60)
    rundir.claim_run_dir(tmp_path / "run", config).release()  # free once the holder is gone


def _claim_and_die(path):
    runlock.RunDirClaim(path)
    os._exit(0)  # no release, no cleanup: as kill -9 would end it


def test_a_killed_holder_frees_the_dir(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    child = multiprocessing.get_context("spawn").Process(target=_claim_and_die, args=(path,))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and (path / runlock.LOCK_FILE).read_text() == ""  # the lock file is never written
    runlock.RunDirClaim(path).release()
