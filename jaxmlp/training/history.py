"""A run's record: `History` (per-epoch metrics and the final evaluation) and the `Callback` hooks.

No JAX here: the CLI's progress display and metrics log import this without starting a backend.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

# The per-epoch columns of History, in the order of a metrics.jsonl line.
RECORD_KEYS = ("epoch", "train_loss", "train_accuracy", "train_mse", "val_loss", "val_accuracy", "val_mse",
               "dead_fraction", "saturation_fraction", "grad_norm", "lr", "seconds", "samples_per_sec",
               "gradients", "batch", "audit")


class Watch(NamedTuple):
    """The loop policy's own state (training/policy.py), kept in History's fields of these names."""

    initial_loss: float | None = None
    best_val_loss: float | None = None
    best_epoch: int | None = None
    stopped_early: bool = False


@dataclasses.dataclass
class History:
    """Per-epoch metrics (epochs are 1-based) plus the final evaluation; JSON-serializable.

    train_loss is the mean over the epoch's minibatches of the training objective (with dropout,
    input noise and the l2 term, as optimized); val_* and `final` are exact evaluations without
    them. lr is the learning rate of the epoch's last step. train_accuracy / train_mse (eval_train)
    and val_* entries are None on epochs without evaluation; *_accuracy is None for regression,
    *_mse None for classification. dead_fraction, saturation_fraction and grad_norm are per-layer
    lists on evaluation epochs when track_activations is on. gradients (track_gradients: the
    noise scale and per-layer statistics, training/gradtrack.py) and audit (audit_every: the
    gradient audit's errors, training/audit.py) are dicts, None on epochs without them; so is
    batch (adaptive_batch: each segment's batch size, steps, learning rate, AdaScale gain and the
    B_simple measured in it, and the scale-invariant iterations so far; training/adaptive_batch.py).
    """

    epoch: list[int] = dataclasses.field(default_factory=list)
    train_loss: list[float] = dataclasses.field(default_factory=list)
    val_loss: list[float | None] = dataclasses.field(default_factory=list)
    val_accuracy: list[float | None] = dataclasses.field(default_factory=list)
    val_mse: list[float | None] = dataclasses.field(default_factory=list)
    train_accuracy: list[float | None] = dataclasses.field(default_factory=list)  # eval_train: whole training set
    train_mse: list[float | None] = dataclasses.field(default_factory=list)
    dead_fraction: list[list[float] | None] = dataclasses.field(default_factory=list)  # track_activations: (L,)
    saturation_fraction: list[list[float] | None] = dataclasses.field(default_factory=list)  # (L,), sigmoid/tanh
    grad_norm: list[list[float] | None] = dataclasses.field(default_factory=list)  # (L + 1,) full-data gradient
    lr: list[float] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)
    samples_per_sec: list[float] = dataclasses.field(default_factory=list)
    gradients: list[dict[str, Any] | None] = dataclasses.field(default_factory=list)
    batch: list[dict[str, Any] | None] = dataclasses.field(default_factory=list)  # adaptive_batch
    audit: list[dict[str, Any] | None] = dataclasses.field(default_factory=list)
    compile_seconds: float = 0.0  # compiling the epoch function (not in `seconds`; ~0 when cached)
    eval_compile_seconds: float = 0.0  # compiling the evaluation programs (likewise)
    best_epoch: int | None = None  # epoch of the lowest val loss
    best_val_loss: float | None = None
    stopped_early: bool = False
    restored_best: bool = False  # fit returned the params of best_epoch (restore_best), not the last ones
    initial_loss: float | None = None  # the objective of the run's first step (initial params): a divergence reference
    final: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # split -> metrics

    @property
    def kept_epoch(self) -> int | None:
        """The epoch whose params fit returned: best_epoch when restored_best, else the last."""
        return self.best_epoch if self.restored_best else (self.epoch[-1] if self.epoch else None)

    @property
    def watch(self) -> Watch:
        """The loop policy's state: initial_loss, best_val_loss, best_epoch, stopped_early."""
        return Watch(*(getattr(self, name) for name in Watch._fields))

    @watch.setter
    def watch(self, watch: Watch) -> None:
        # The loop commits a policy decision here, in place: callbacks (the CLI's progress
        # line) hold this History and read best_epoch and stopped_early from it.
        for name, value in zip(Watch._fields, watch):
            setattr(self, name, value)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add one epoch's record; returns it as records() will: every column, in RECORD_KEYS order."""
        for name in RECORD_KEYS:
            getattr(self, name).append(record.get(name))
        return self._row(-1)

    def records(self) -> list[dict[str, Any]]:
        """One dict per epoch, as written to metrics.jsonl."""
        return [self._row(i) for i in range(len(self.epoch))]

    def _row(self, i: int) -> dict[str, Any]:
        return {name: getattr(self, name)[i] for name in RECORD_KEYS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        d = dict(d)
        for name in RECORD_KEYS:  # a column an older run did not record: None for its epochs
            d.setdefault(name, [None] * len(d.get("epoch", [])))
        return cls(**d)


class Callback:
    """Hooks `fit` calls on the host; subclass and override what you need. No-ops by default."""

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """info: config, sizes, loss, n_train, steps_per_epoch, start_epoch, compile_seconds (the
        epoch program), eval_compile_seconds, history, devices (data-parallel devices), processes,
        data_feed."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """record: one epoch's metrics (a row of History.records())."""

    def on_train_end(self, history: History) -> None:
        """Called once after the final evaluation (not when training diverges)."""
