"""Progress a person can follow where no bar redraws (CI logs, nohup, a notebook): the epoch lines'
cadence (first, every tenth of the run or 30 s, the last), their elapsed time and ETA, and the
sweep's lines over all its programs. Driven by a fake clock: no test sleeps."""
from __future__ import annotations

import io
import types

import pytest

from jaxmlp.cli.pacing import Cadence, duration
from jaxmlp.cli.progress import ConsoleProgress
from jaxmlp.cli.sweep_progress import SweepConsole
from jaxmlp.config import TrainConfig


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _info(config: TrainConfig, history, start: int = 0) -> dict:
    return dict(config=config, sizes=(2, 8, 3), loss="softmax_cross_entropy", n_train=300, steps_per_epoch=2,
                start_epoch=start, compile_seconds=1.0, eval_compile_seconds=0.5, history=history)


def _record(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "lr": 1e-3, "seconds": 0.5, "samples_per_sec": 600.0,
            "val_loss": 0.5, "val_accuracy": 0.9}


def _train(config: TrainConfig, seconds, *, log_every: int = 0, best=lambda epoch: None, stop_at=None, start=0):
    """The epoch lines of a run whose epoch `e` takes seconds(e), its best epoch best(e), that
    stops early after epoch `stop_at`; as fit drives a ConsoleProgress (history first)."""
    clock, stream = FakeClock(), io.StringIO()
    history = types.SimpleNamespace(best_epoch=None, stopped_early=False)
    console = ConsoleProgress(stream=stream, log_every=log_every, clock=clock)
    console.on_train_begin(_info(config, history, start))
    for epoch in range(start + 1, (stop_at or config.epochs) + 1):
        clock.now += seconds(epoch)
        history.best_epoch, history.stopped_early = best(epoch), epoch == stop_at
        console.on_epoch_end(_record(epoch))
    console.on_train_end(history)
    return [line for line in stream.getvalue().splitlines() if line.startswith("epoch")]


def _epochs(lines) -> list[int]:
    return [int(line.split()[1].split("/")[0]) for line in lines]


def test_a_default_mnist_run_that_stops_early_prints_every_30_s_and_its_last_epoch():
    # The run: 300 epochs at most, 5 s each, early stopping ends it at 25. It used to
    # print epochs 1 and 15 (every 300 // 20), then nothing until "done".
    lines = _train(TrainConfig(epochs=300, patience=10), lambda e: 5.0, best=lambda e: min(e, 15), stop_at=25)
    assert _epochs(lines) == [1, 7, 13, 19, 25]  # the first, every 30 s, the one that stopped the run
    assert lines[0].endswith("elapsed 5s")  # no ETA from one epoch: a first epoch carries one-off costs
    # epoch 7: a pace of 5 s; best epoch 7, so 10 more epochs if it stops improving, 293 at most
    assert lines[1].endswith("elapsed 35s  eta 50s to 24m25s")
    assert lines[3].endswith("elapsed 1m35s  eta 30s to 23m25s")  # best epoch 15: patience ends at 25
    assert lines[4].endswith("elapsed 2m05s")  # the run ends here: no ETA
    assert "loss 0.0400" in lines[4] and "val_acc 0.9000" in lines[4]


def test_fast_epochs_print_every_tenth_of_the_run_and_the_last():
    lines = _train(TrainConfig(epochs=50), lambda e: 0.1)
    assert _epochs(lines) == [1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert lines[-1].endswith("elapsed 5s")


def test_slow_epochs_print_every_30_s_since_the_last_line():
    lines = _train(TrainConfig(epochs=100), lambda e: 12.0)  # 10% = 10 epochs = 120 s: the 30 s comes first
    assert _epochs(lines)[:6] == [1, 4, 7, 10, 13, 16]  # 36 s apart, then the tenth (10) restarts the count
    assert _epochs(lines)[-1] == 100


def test_the_eta_leaves_out_the_first_epoch():
    lines = _train(TrainConfig(epochs=100), lambda e: 100.0 if e == 1 else 1.0)
    tenth = next(line for line in lines if line.startswith("epoch  10/100"))
    assert tenth.endswith("elapsed 1m49s  eta 1m30s")  # 90 epochs left at 1 s, not at 109 s / 10


def test_an_eta_range_whose_ends_read_alike_is_one_value():
    lines = _train(TrainConfig(epochs=50, patience=5), lambda e: 0.01, best=lambda e: e)
    assert lines[1].endswith("elapsed 0s  eta 0s")  # not "eta 0s to 0s"


def test_log_every_prints_exactly_those_epochs_however_slow():
    lines = _train(TrainConfig(epochs=20), lambda e: 60.0, log_every=5)
    assert _epochs(lines) == [1, 5, 10, 15, 20]
    assert lines[1].endswith("elapsed 5m00s  eta 15m00s")


def test_a_resumed_run_times_only_its_own_epochs():
    lines = _train(TrainConfig(epochs=40), lambda e: 2.0, start=30)
    assert _epochs(lines) == [31, 32, 36, 40]  # its first, then every 4th epoch (the tenth of 40)
    assert lines[1].endswith("elapsed 4s  eta 16s")


def test_quiet_prints_no_epoch_line():
    stream = io.StringIO()
    console = ConsoleProgress(stream=stream, quiet=True, clock=FakeClock())
    console.on_train_begin(_info(TrainConfig(epochs=3), types.SimpleNamespace(best_epoch=None, stopped_early=False)))
    for epoch in (1, 2, 3):
        console.on_epoch_end(_record(epoch))
    assert stream.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (3599.6, "1h00m"),
                                           (7620, "2h07m")])
def test_durations(seconds, text):
    assert duration(seconds) == text


def test_cadence_adds_the_mean_one_off_cost_per_restart_to_come():
    clock = FakeClock()
    cadence = Cadence(20, clock=clock)
    cadence.start(0)
    clock.now = 21.0  # a compile, then the first epoch
    cadence.tick(1)
    assert cadence.eta(1) is None
    clock.now = 22.0
    cadence.tick(2)
    assert cadence.eta(2) == 18.0 and cadence.eta(2, restarts=2) == 18.0 + 2 * 20.0


# --- sweeps -------------------------------------------------------------------------------------------
def _plan(epochs=(10, 10), models=(2, 2)):
    chunks, first = [], 0
    for i, n in enumerate(models):
        chunks.append(types.SimpleNamespace(index=i, group=i, size=n, members=tuple(range(first, first + n))))
        first += n
    groups = [types.SimpleNamespace(program=types.SimpleNamespace(epochs=e)) for e in epochs]
    return types.SimpleNamespace(chunks=chunks, groups=groups, mesh=None, devices=1, width=1, idle_line=lambda: None,
                                 base=types.SimpleNamespace(dataset="spiral"))


def _sweep_info(plan, done_epochs=0, records=()):
    return dict(plan=plan, models=sum(c.size for c in plan.chunks), groups=len(plan.groups), chunks=len(plan.chunks),
                processes=1, total_epochs=sum(g.program.epochs for g in plan.groups), done_epochs=done_epochs, records=list(records))


def _models(chunk, score):
    return [types.SimpleNamespace(index=i, score=score + k, diverged=False) for k, i in enumerate(chunk.members)]


def test_a_sweep_prints_its_progress_over_every_program():
    plan, clock, stream = _plan(), FakeClock(), io.StringIO()
    console = SweepConsole(stream=stream, clock=clock)
    console.on_sweep_begin(_sweep_info(plan))
    for chunk, stop in zip(plan.chunks, (6, 10)):  # the first program's models all stop after epoch 6
        clock.now += 20.0  # its compile
        for epoch in range(1, stop + 1):
            clock.now += 1.0
            loss = 1.0 / (epoch + 10 * chunk.index)
            console.on_epoch_end([{"model": m, "epoch": epoch, "train_loss": 2.0, "val_loss": loss + k}
                                  for k, m in enumerate(chunk.members)])
        console.on_chunk_end(chunk, _models(chunk, 0.5))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("sweeping: 4 models of spiral in 2 group(s), 2 program(s)")
    epochs = [line for line in lines if line.startswith("epoch")]
    assert [line.split()[1] for line in epochs] == ["1/20", "2/20", "4/20", "6/20", "12/20", "14/20", "16/20",
                                                     "18/20", "20/20"]
    assert epochs[0] == "epoch  1/20 (program 1/2, epoch 1/10)  models 0 done, 2 active  best val_loss 1.0000  " \
                        "elapsed 21s"
    # the pace (1 s) times 18 epochs, and the next program's compile (the first epoch's 21 s less 1 s)
    assert epochs[1].endswith("best val_loss 0.5000  elapsed 22s  eta 38s")
    # the first program stopped at its epoch 6: the sweep went on from its epoch 10, no compile left to add
    assert epochs[4] == "epoch 12/20 (program 2/2, epoch 2/10)  models 2 done, 2 active  best val_loss 0.0833  " \
                        "elapsed 48s  eta 8s"
    assert epochs[-1].endswith("elapsed 56s")
    assert lines[-1] == "program 2/2 (group 1): 2 models, best model 2 (score 0.5000)"


def test_a_resumed_sweep_counts_the_programs_it_finished_before():
    plan, clock, stream = _plan(), FakeClock(), io.StringIO()
    console = SweepConsole(stream=stream, clock=clock)
    console.on_sweep_begin(_sweep_info(plan, 10, [{"model": 0, "epoch": 10, "train_loss": 0.3, "val_loss": None}]))
    clock.now += 5.0
    console.on_epoch_end([{"model": m, "epoch": 1, "train_loss": 0.4, "val_loss": None} for m in (2, 3)])
    assert stream.getvalue().splitlines()[1] == "epoch 11/20 (program 2/2, epoch 1/10)  models 2 done, 2 active  " \
                                                "best train_loss 0.3000  elapsed 5s"


def test_a_quiet_sweep_prints_nothing_as_it_goes():
    plan, stream = _plan(), io.StringIO()
    console = SweepConsole(stream=stream, quiet=True, clock=FakeClock())
    console.on_sweep_begin(_sweep_info(plan))
    console.on_epoch_end([{"model": 0, "epoch": 1, "train_loss": 0.4, "val_loss": 0.5}])
    console.on_chunk_end(plan.chunks[0], _models(plan.chunks[0], 0.5))
    assert stream.getvalue() == ""
