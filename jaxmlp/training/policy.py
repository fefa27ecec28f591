"""The loop policy `fit` and `sweep` share: when to evaluate, what an epoch's record holds, when
a run has diverged and when patience has run out.

Every rule is a pure function of the run's `Watch` (the policy's own state, which History keeps)
and the epoch's numbers, returning its decision and a new Watch. Nothing here raises or writes:
the loop commits the new Watch into its History in one visible line, raises a divergence where
it stops the run (`fit`), or masks the model where it goes on with the others (`sweep`).

    if eval_due(epoch, config.eval_every, config.epochs): ...
    diverged, history.watch = divergence(config, history.watch, epoch, finite, bad_step, loss, first_loss, zero_score)
    record = epoch_record(epoch, loss, lr, seconds, samples, columns)
    stop, improved, history.watch = early_stop(config, history.watch, record)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jaxmlp.losses import get_loss
from jaxmlp.training.history import Watch


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient or parameter appeared, or the loss exploded (`reason`);
    `epoch` (1-based) names where."""

    def __init__(self, epoch: int, step: int | None = None, reason: str = "non-finite loss, gradient or parameter"):
        self.epoch, self.step = epoch, step
        where = f"epoch {epoch}" + (f" (step {step} of the epoch)" if step is not None else "")
        super().__init__(f"training diverged in {where}: {reason}; lower the learning rate or clip gradients "
                         "(clip_norm)")


def eval_due(epoch: int, eval_every: int, epochs: int) -> bool:
    """Whether 0-based `epoch` is evaluated: every `eval_every` epochs, and always the last."""
    return (epoch + 1) % eval_every == 0 or epoch + 1 == epochs


def epoch_record(epoch: int, loss, lr, seconds: float, samples: int, columns: dict[str, Any]) -> dict[str, Any]:
    """The record of 0-based `epoch`: its training columns (mean objective, the last step's
    learning rate, wall time and throughput over `samples` examples) and `columns` (evaluation,
    gradients, audit). History.append orders it by RECORD_KEYS and fills what is absent with None."""
    return {"epoch": epoch + 1, "train_loss": float(loss), "lr": float(lr), "seconds": seconds,
            "samples_per_sec": samples / seconds, **columns}


def zero_score_loss(loss: str, y, d_out: int, rows: int = 1024) -> float:
    """The mean loss of all-zero scores (N, d_out) on the first `rows` targets of y: log C for
    cross-entropy, C - 1 for the hinge, mean y^2 for MSE. What an untrained net scores about."""
    y = y[:rows]
    return float(get_loss(loss).value(np.zeros((len(y), d_out), np.float32), y))


def divergence(config, watch: Watch, epoch: int, finite: bool, bad_step: int | None, loss: float,
               first_loss: float, zero_score: Callable[[], float]) -> tuple[TrainingDiverged | None, Watch]:
    """(why 0-based `epoch` diverged or None, the new Watch, which records the run's initial loss).

    Diverged: a non-finite step (`bad_step` of the epoch; the on-device check), or a finite
    blow-up: the epoch's mean loss above `divergence_factor` times the larger of the run's
    initial loss (its first step's) and the loss of all-zero scores (log C for cross-entropy;
    `zero_score()`, asked for only when the initial loss alone does not settle it).
    """
    if not finite:
        return TrainingDiverged(epoch + 1, bad_step), watch
    if watch.initial_loss is None and epoch == 0:
        watch = watch._replace(initial_loss=float(first_loss))
    if not config.divergence_factor:
        return None, watch
    initial = watch.initial_loss or 0.0
    if float(loss) <= config.divergence_factor * initial:
        return None, watch  # within the bound whatever the loss of zero scores: the reference is the larger of the two
    reference = max(zero_score(), initial)
    if float(loss) <= config.divergence_factor * reference:
        return None, watch
    return TrainingDiverged(epoch + 1, reason=(
        f"the mean training loss {float(loss):.4g} exceeds divergence_factor {config.divergence_factor:g} x "
        f"{reference:.4g} (the larger of the initial loss and the loss of all-zero scores)")), watch


def early_stop(config, watch: Watch, record: dict[str, Any]) -> tuple[bool, bool, Watch]:
    """(stop: patience ran out before the last epoch, improved: this record has the new best val
    loss, whose params restore_best keeps, the new Watch). Patience running out on the last
    epoch stops nothing: the run used all its epochs, it did not stop early."""
    val_loss = record.get("val_loss")
    if val_loss is None:
        return False, False, watch
    if watch.best_val_loss is None or val_loss < watch.best_val_loss - config.min_delta:
        return False, True, watch._replace(best_val_loss=val_loss, best_epoch=record["epoch"])
    waited, last = record["epoch"] - watch.best_epoch, record["epoch"] >= config.epochs
    if config.patience and waited >= config.patience and not last:
        return True, False, watch._replace(stopped_early=True)
    return False, False, watch


__all__ = ["TrainingDiverged", "eval_due", "epoch_record", "zero_score_loss", "divergence", "early_stop"]
