"""cli/interrupts.py: a Ctrl-C that lands in a garbage-collector callback (JAX runs one on every
collection) is dropped by the interpreter; the guard raises it again at the next epoch end, so
`jaxmlp train` and `jaxmlp sweep` still end with one line and exit 130."""
from __future__ import annotations

import gc
import json
import sys

import pytest

from jaxmlp import cli
from jaxmlp.checkpoint import METRICS_FILE, SUMMARY_FILE
from jaxmlp.cli.interrupts import InterruptGuard
from jaxmlp.cli.progress import RunLog
from jaxmlp.sweeps import sweepdir

from test_cli import QUIET, one_line_error
from test_sweep_cli import FLAGS, GRID


def interrupt_inside_gc() -> None:
    """What SIGINT does when its handler runs inside a GC callback: KeyboardInterrupt there is
    reported as unraisable and dropped, and gc.collect() returns normally."""
    def raiser(phase, info):
        if phase == "start":
            raise KeyboardInterrupt

    gc.callbacks.append(raiser)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(raiser)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_without_the_guard_the_interpreter_drops_the_interrupt():
    interrupt_inside_gc()  # no exception: this is the defect the guard exists for


def test_the_guard_raises_a_dropped_interrupt_once_at_its_next_check():
    seen = []
    previous, sys.unraisablehook = sys.unraisablehook, (outer := seen.append)
    try:
        with InterruptGuard() as guard:
            guard.check()  # nothing dropped yet
            interrupt_inside_gc()
            with pytest.raises(KeyboardInterrupt):
                guard.on_epoch_end({})
            guard.check()  # raised once, not again
            interrupt_inside_gc()
            with pytest.raises(KeyboardInterrupt):
                guard.on_train_end(None)
            gc.callbacks.append(other := lambda phase, info: phase == "start" and 1 / 0)  # other unraisables go on as before
            try:
                gc.collect()
            finally:
                gc.callbacks.remove(other)
        assert sys.unraisablehook is outer  # restored on exit
    finally:
        sys.unraisablehook = previous
    assert [u.exc_type for u in seen] == [ZeroDivisionError]


def test_train_ends_with_exit_130_when_the_interrupt_landed_in_a_gc_callback(tmp_path, capsys, monkeypatch):
    log_epoch = RunLog.on_epoch_end

    def on_epoch_end(self, record):
        log_epoch(self, record)
        if record["epoch"] == 2:
            interrupt_inside_gc()

    monkeypatch.setattr(RunLog, "on_epoch_end", on_epoch_end)
    run = tmp_path / "run"
    assert cli.main(["train", "--epochs", "50", "--checkpoint-every", "0", "--out-dir", str(run), *QUIET]) == 130
    one_line_error(capsys, f"jaxmlp train: interrupted; no checkpoint was saved in {run}")
    assert len((run / METRICS_FILE).read_text().splitlines()) == 2  # it stopped at the epoch it was interrupted in
    assert not (run / SUMMARY_FILE).exists()  # and did not report a finished run


def test_sweep_ends_with_exit_130_when_the_interrupt_landed_in_a_gc_callback(tmp_path, capsys, monkeypatch):
    log_epoch = sweepdir.ResultsLog.on_epoch_end

    def on_epoch_end(self, records):
        log_epoch(self, records)
        interrupt_inside_gc()

    monkeypatch.setattr(sweepdir.ResultsLog, "on_epoch_end", on_epoch_end)
    out = tmp_path / "sweep"
    assert cli.main(["sweep", *FLAGS, *GRID, "--epochs", "3", "--out-dir", str(out), *QUIET]) == 130
    one_line_error(capsys, "jaxmlp sweep: interrupted")
    assert not (out / sweepdir.SUMMARY_JSON).exists()
    assert all(json.loads(line)["epoch"] == 1 for line in (out / sweepdir.RESULTS_FILE).read_text().splitlines())


def test_a_hook_set_on_top_of_the_guard_outlives_it():
    """orbax_io installs its filter of orbax's reports while a run's guard holds sys.unraisablehook:
    the guard's exit must not take it away (it did, and a full disk then printed dozens of lines)."""
    import sys

    from jaxmlp.cli.interrupts import InterruptGuard

    before, seen = sys.unraisablehook, []
    try:
        with InterruptGuard():
            under = sys.unraisablehook
            sys.unraisablehook = lambda unraisable: seen.append(unraisable) or under(unraisable)
            on_top = sys.unraisablehook
        assert sys.unraisablehook is on_top
    finally:
        sys.unraisablehook = before
    with InterruptGuard() as guard:
        pass
    assert sys.unraisablehook is before and not guard.active
