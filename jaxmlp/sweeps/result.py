"""What a sweep returns: `ModelResult` per model and `SweepResult`, ranked, with a pandas-free
table. Host values only (numbers, host arrays): nothing here computes on a device.

A model's score is its best validation loss when the sweep had validation data, else its final
training loss (the kept params on the whole training set); lower is better, diverged models rank
last. The best model is the first of the ranking.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

from jaxmlp.config import TrainConfig
from jaxmlp.sweeps.grid import format_overrides
from jaxmlp.training.history import History


@dataclasses.dataclass
class ModelResult:
    """One model of a sweep: its overrides and config, its History (every epoch's metrics and, in
    `history.final`, the kept params' metrics per split), and whether it diverged."""

    index: int
    group: int
    overrides: dict[str, Any]
    config: TrainConfig
    history: History = dataclasses.field(default_factory=History)
    # the 1-based epoch that went non-finite (its state is the one before) or whose loss exploded
    # past divergence_factor (fit's rule; its state is that epoch's)
    diverged_epoch: int | None = None
    params: Any = None  # the kept params as host arrays, when the sweep was asked to keep them

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None

    @property
    def score(self) -> float:
        """Best val loss, else the final training loss; inf for a diverged or unscored model."""
        h = self.history
        value = h.best_val_loss if h.best_val_loss is not None else h.final.get("train", {}).get("loss")
        return math.inf if self.diverged or value is None or not math.isfinite(value) else float(value)

    def row(self) -> dict[str, Any]:
        """This model's line of the table (the rank is added by SweepResult.table)."""
        h = self.history
        row: dict[str, Any] = {"model": self.index, "overrides": format_overrides(self.overrides),
                               "best_val_loss": h.best_val_loss}
        for split in ("val", "test"):
            for metric, value in h.final.get(split, {}).items():
                if metric != "loss" or split == "test":
                    row[f"{split}_{metric}"] = value
        row.update(epochs=len(h.epoch), diverged=self.diverged)
        return row

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, without params (a checkpoint's meta)."""
        return {"index": self.index, "group": self.group, "overrides": self.overrides, "config": self.config.to_dict(),
                "history": self.history.to_dict(), "diverged_epoch": self.diverged_epoch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelResult:
        return cls(d["index"], d["group"], d["overrides"], TrainConfig.from_dict(d["config"]),
                   History.from_dict(d["history"]), d["diverged_epoch"])


class Snapshot(NamedTuple):
    """All a run directory needs of one model, as host arrays: its final TrainState (in the solo
    run's structure), its best-val-loss params (restore_best; else None) and its train key's data."""

    state: Any
    best: Any
    key_data: Any

    @property
    def kept_params(self) -> Any:
        """The params a solo fit returns: the best ones with restore_best, else the last."""
        return self.state.params if self.best is None else self.best


@dataclasses.dataclass
class SweepResult:
    """Every model's result, the best model's snapshot, and the time spent."""

    models: list[ModelResult]
    best_snapshot: Snapshot | None  # of `best`; None when every model diverged
    compile_seconds: float = 0.0
    train_seconds: float = 0.0  # the epochs' wall time, all chunks

    @property
    def best_params(self) -> Any:
        """The best model's kept params (host arrays), as its solo fit would return them."""
        return None if self.best_snapshot is None else self.best_snapshot.kept_params

    def ranked(self) -> list[ModelResult]:
        """Models by score, lowest first (diverged last), ties by index."""
        return sorted(self.models, key=lambda m: (m.score, m.index))

    @property
    def best(self) -> ModelResult | None:
        """The best model, or None when every model diverged."""
        first = self.ranked()[0]
        return None if first.score == math.inf else first

    def table(self) -> list[dict[str, Any]]:
        """One dict per model, ranked: rank, model, overrides, best_val_loss, val_* and test_*
        metrics of the kept params, epochs, diverged."""
        return [{"rank": rank, **m.row()} for rank, m in enumerate(self.ranked(), 1)]

    def format_table(self, limit: int | None = None) -> str:
        """The table as Markdown (the first `limit` rows; all when None)."""
        rows = self.table()[:limit]
        columns = list(dict.fromkeys(k for row in rows for k in row))
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
