"""The loop policy fit and sweep share: pure decisions, a new Watch, nothing raised or written."""
from __future__ import annotations

from jaxmlp.config import TrainConfig
from jaxmlp.training.history import History, Watch
from jaxmlp.training.policy import divergence, early_stop, epoch_record, eval_due
from jaxmlp.training.policy import TrainingDiverged


def test_eval_due_every_n_epochs_and_the_last():
    assert [e + 1 for e in range(7) if eval_due(e, 3, 7)] == [3, 6, 7]


def test_epoch_record_is_what_history_appends():
    record = epoch_record(0, 1.5, 0.1, 2.0, 100, {"val_loss": 1.0})
    row = History().append(record)
    assert row["epoch"] == 1 and row["samples_per_sec"] == 50.0 and row["val_loss"] == 1.0
    assert row["train_accuracy"] is None  # absent columns are None, as History.append fills them


def test_divergence_returns_its_verdict_and_a_new_watch():
    config, watch = TrainConfig(divergence_factor=2.0), Watch()
    diverged, after = divergence(config, watch, 0, True, None, 1.0, 1.0, lambda: 1.0)
    assert diverged is None and after.initial_loss == 1.0 and watch.initial_loss is None
    diverged, _ = divergence(config, after, 1, True, None, 5.0, 9.0, lambda: 1.0)
    assert isinstance(diverged, TrainingDiverged) and diverged.epoch == 2  # returned, not raised
    diverged, same = divergence(config, after, 1, False, 3, 1.0, 1.0, lambda: 1.0)
    assert (diverged.epoch, diverged.step, same) == (2, 3, after)


def test_early_stop_after_patience_but_not_on_the_last_epoch():
    config, watch = TrainConfig(patience=2, epochs=5), Watch()
    verdicts = []
    for epoch, val in enumerate([1.0, 0.5, 0.6, 0.7, 0.8], start=1):
        stop, improved, watch = early_stop(config, watch, {"epoch": epoch, "val_loss": val})
        verdicts.append((stop, improved))
    assert verdicts[:4] == [(False, True), (False, True), (False, False), (True, False)]
    assert (watch.best_epoch, watch.best_val_loss, watch.stopped_early) == (2, 0.5, True)
    _, _, last = early_stop(config, Watch(best_val_loss=0.5, best_epoch=2), {"epoch": 5, "val_loss": 0.9})
    assert not last.stopped_early


def test_history_keeps_the_watch_in_its_own_fields():
    history = History()
    history.watch = Watch(1.0, 0.5, 2, True)
    assert (history.initial_loss, history.best_val_loss, history.best_epoch, history.stopped_early) == (1.0, 0.5, 2, True)
    assert History.from_dict(history.to_dict()).watch == history.watch
