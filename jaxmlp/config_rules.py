"""The rules a `TrainConfig` obeys: values from JSON, TOML or the command line coerced to the
field's annotated type, every field's allowed range, and settings that apply only to some
choices of activation, optimizer, schedule or lr scaling. Each rule raises one ValueError
naming the field, the allowed values and the value given.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import TYPE_CHECKING, Any

from jaxmlp.names import (ACTIVATIONS, APPLIES_ONLY_TO, DATA_FEEDS, DTYPES, GRAD_METHODS, INITS,
                          LOSS_ALIASES, LOSS_NAMES, LR_SCALINGS, OPTIMIZERS, PRECISIONS, SCHEDULES, TASKS)

if TYPE_CHECKING:  # config.py calls this module: no import back at run time
    from jaxmlp.config import TrainConfig


def _default(c: TrainConfig, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(c) if f.name == name)


# --- coercion: JSON/TOML/CLI values -> the annotated types ------------------------------------
def coerce(name: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp` (X, X | None, tuple[int, ...]); convert lists
    to tuples and ints to floats. Raises ValueError naming the field."""
    args = typing.get_args(tp)
    if type(None) in args:  # X | None
        if value is None:
            return None
        (tp,) = [a for a in args if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
            raise ValueError(f"{name} must be a sequence of integers, got {value!r}")
        return tuple(int(v) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if not _is_int(value):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for field {name}")  # a bug in this module


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# --- validation --------------------------------------------------------------------------------
def _check(ok: bool, field: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{field} must be {allowed}, got {value!r}")


def _one_of(field: str, value: Any, choices) -> None:
    _check(value in choices, field, "one of " + ", ".join(choices), value)


def validate(c: TrainConfig) -> None:
    """Raise ValueError naming the first bad field and its allowed range."""
    _validate_data(c)
    _validate_model(c)
    _validate_optimizer(c)
    _validate_loop(c)
    _validate_gradients(c)
    _validate_adaptive_batch(c)
    _check_applies(c)


def _validate_data(c: TrainConfig) -> None:
    _check(bool(c.dataset.strip()), "dataset", "a non-empty data set spec", c.dataset)
    _check(c.download_timeout > 0, "download_timeout", "> 0 seconds", c.download_timeout)
    _check(c.n_samples is None or c.n_samples >= 1, "n_samples", ">= 1 (or none)", c.n_samples)
    _check(c.val_fraction is None or 0.0 <= c.val_fraction < 1.0, "val_fraction", "in [0, 1) (or auto)",
           c.val_fraction)
    _check(c.data_seed >= 0, "data_seed", ">= 0", c.data_seed)
    _check(c.label_column is None or bool(c.label_column.strip()), "label_column", "a column name or index (or none)",
           c.label_column)
    _one_of("task", c.task, TASKS)


def _validate_model(c: TrainConfig) -> None:
    _check(all(h >= 1 for h in c.hidden), "hidden", "a list of positive widths (e.g. 512,512)", c.hidden)
    _one_of("activation", c.activation, ACTIVATIONS)
    _check(c.k is None or c.k >= 2, "k", "an integer >= 2 (or none)", c.k)
    _check(c.init is None or c.init in INITS, "init", "one of " + ", ".join(INITS) + " (or none)", c.init)
    _one_of("dtype", c.dtype, DTYPES)
    _one_of("loss", c.loss, ("auto", *LOSS_NAMES, *LOSS_ALIASES))
    _check(c.l2 >= 0, "l2", ">= 0", c.l2)
    _check(0.0 <= c.dropout < 1.0, "dropout", "in [0, 1)", c.dropout)
    _check(c.input_noise >= 0, "input_noise", ">= 0", c.input_noise)


def _validate_optimizer(c: TrainConfig) -> None:
    _one_of("optimizer", c.optimizer, OPTIMIZERS)
    _check(c.learning_rate > 0, "learning_rate", "> 0", c.learning_rate)
    for name in ("momentum", "b1", "b2", "rms_decay"):
        _check(0.0 <= getattr(c, name) < 1.0, name, "in [0, 1)", getattr(c, name))
    _check(c.eps > 0, "eps", "> 0", c.eps)
    _check(c.weight_decay >= 0, "weight_decay", ">= 0", c.weight_decay)
    _check(c.clip_norm is None or c.clip_norm > 0, "clip_norm", "> 0 (or none)", c.clip_norm)
    _one_of("schedule", c.schedule, SCHEDULES)
    _check(c.epochs >= 1, "epochs", ">= 1", c.epochs)
    _check(c.schedule_epochs is None or c.schedule_epochs >= 1, "schedule_epochs", ">= 1 (or none)",
           c.schedule_epochs)
    length = c.schedule_length()
    span = f"schedule_epochs={length}" if c.schedule_epochs is not None else f"epochs={length}"
    _check(0 <= c.warmup_epochs <= length, "warmup_epochs", f"in [0, {span}]", c.warmup_epochs)
    if c.schedule == "warmup_cosine":
        _check(c.warmup_epochs >= 1, "warmup_epochs", ">= 1 for schedule warmup_cosine", c.warmup_epochs)
    _check(0.0 < c.decay_rate <= 1.0, "decay_rate", "in (0, 1]", c.decay_rate)
    _check(c.decay_epochs >= 1, "decay_epochs", ">= 1", c.decay_epochs)
    _check(0.0 <= c.final_lr_fraction <= 1.0, "final_lr_fraction", "in [0, 1]", c.final_lr_fraction)
    _one_of("lr_scaling", c.lr_scaling, LR_SCALINGS)
    _check(c.base_batch_size >= 1, "base_batch_size", ">= 1", c.base_batch_size)


def _validate_loop(c: TrainConfig) -> None:
    _check(c.batch_size >= 1, "batch_size", ">= 1", c.batch_size)
    _check(0 <= c.seed < 2**63, "seed", "in [0, 2**63)", c.seed)
    _one_of("grad_method", c.grad_method, GRAD_METHODS)
    _check(c.accumulate >= 1, "accumulate", ">= 1", c.accumulate)
    _check(c.batch_size % c.accumulate == 0, "accumulate",
           f"a divisor of batch_size={c.batch_size} (batch_size is the effective batch)", c.accumulate)
    _check(c.devices >= 0, "devices", ">= 1, or all (0)", c.devices)
    _one_of("data_feed", c.data_feed, DATA_FEEDS)
    _one_of("precision", c.precision, PRECISIONS)
    _check(c.precision != "bf16" or c.dtype == "float32", "precision",
           "fp32 or highest with dtype float64 (bf16 keeps float32 master params)", c.precision)
    _check(c.eval_every >= 1, "eval_every", ">= 1", c.eval_every)
    _check(c.eval_batch_size >= 1, "eval_batch_size", ">= 1", c.eval_batch_size)
    _check(c.patience is None or c.patience >= 0, "patience", ">= 0 (0 = no early stopping, or auto)", c.patience)
    _check(c.min_delta >= 0, "min_delta", ">= 0", c.min_delta)
    _check(c.divergence_factor >= 0, "divergence_factor", ">= 0 (0 = only non-finite values)", c.divergence_factor)
    _check(c.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0 = only after the last epoch)", c.checkpoint_every)
    _check(c.checkpoint_every_steps >= 0, "checkpoint_every_steps", ">= 0 (0 = no mid-epoch checkpoints)",
           c.checkpoint_every_steps)
    _check(c.keep_checkpoints >= 1, "keep_checkpoints", ">= 1", c.keep_checkpoints)
    _check(c.out_dir is None or bool(c.out_dir.strip()), "out_dir", "a non-empty path (or none)", c.out_dir)


def _validate_gradients(c: TrainConfig) -> None:
    _check(0.0 <= c.gradient_ema < 1.0, "gradient_ema", "in [0, 1)", c.gradient_ema)
    _check(c.audit_every >= 0, "audit_every", ">= 0 (0 = no gradient audit)", c.audit_every)
    if c.track_gradients:
        _check(c.accumulate == 1, "accumulate", "1 with track_gradients (the per-example statistics need the "
               "whole batch in one pass)", c.accumulate)
        _check(c.batch_size >= 2, "batch_size", ">= 2 with track_gradients (the noise scale compares batches of 1 "
               "and batch_size)", c.batch_size)
        _check(c.precision != "bf16", "precision", "fp32 or highest with track_gradients", c.precision)
    elif not c.adaptive_batch:
        _check(c.gradient_ema == _default(c, "gradient_ema"), "gradient_ema",
               f"{_default(c, 'gradient_ema')} without track_gradients or adaptive_batch (only they read it)",
               c.gradient_ema)
    _check(c.audit_every > 0 or not c.audit_strict, "audit_strict", "false without audit_every (no audit runs)",
           c.audit_strict)


def _validate_adaptive_batch(c: TrainConfig) -> None:
    if not c.adaptive_batch:
        for name in ("max_batch_size", "batch_segments"):
            _check(getattr(c, name) == _default(c, name), name, f"{_default(c, name)!r} without adaptive_batch "
                   "(only an adaptive run reads it)", getattr(c, name))
        return
    _check(c.batch_segments >= 1, "batch_segments", ">= 1", c.batch_segments)
    _check(c.batch_size >= 2 and c.batch_size & (c.batch_size - 1) == 0, "batch_size",
           "a power of two >= 2 with adaptive_batch (the batch moves between powers of two)", c.batch_size)
    _check(c.max_batch_size is None or c.max_batch_size >= c.batch_size, "max_batch_size",
           f">= batch_size={c.batch_size} (or none)", c.max_batch_size)
    for name, want in (("schedule", "constant"), ("lr_scaling", "none"), ("accumulate", 1), ("devices", 1),
                       ("data_feed", "auto")):
        _check(getattr(c, name) == want, name, f"{want!r} with adaptive_batch (the batch size and the learning "
               "rate follow the measured noise scale on one device)", getattr(c, name))
    _check(c.precision != "bf16", "precision", "fp32 or highest with adaptive_batch", c.precision)
    _check(not c.track_gradients, "track_gradients", "false with adaptive_batch (its batch column records the "
           "noise scale it measures)", c.track_gradients)


def _check_applies(c: TrainConfig) -> None:
    """A setting that the chosen activation, optimizer, schedule or lr scaling does not read must
    keep its default: ValueError naming the setting and the choices that read it."""
    defaults = {f.name: f for f in dataclasses.fields(c)}
    for name, (chooser, users) in APPLIES_ONLY_TO.items():
        value, chosen = getattr(c, name), getattr(c, chooser)
        if value != defaults[name].default and chosen not in users:
            raise ValueError(f"{name} applies only to {chooser} {', '.join(users)}, not {chosen!r} "
                             f"(got {name}={value!r})")
