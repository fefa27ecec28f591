"""`TrainConfig`: every knob of a training run in one frozen, typed, validated dataclass.

Each field declares, in its metadata (`_field`), its `--help` text (`FIELD_HELP`, the text of
the matching `jaxmlp train --flag`, so the two never drift) and its kind: PROGRAM (it changes
the compiled init / epoch programs) or HOST (it does not: it steers the host loop or the
data), and whether it is per-host (it may differ between the processes of one multi-host run)
and resumable (a resumed run may change it). `HOST_ONLY_FIELDS`, `PER_HOST_FIELDS` and
`RESUMABLE` are derived from those. Input and output sizes are not configured: they come from
the data.

    cfg = TrainConfig(hidden=(512, 512), optimizer="adamw", weight_decay=1e-4)
    cfg.to_dict()                      # JSON-safe dict; TrainConfig.from_dict(d) == cfg
    dataclasses.replace(cfg, epochs=20)
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from jaxmlp.names import (ACTIVATIONS, APPLIES_ONLY_TO, DATA_FEEDS, DTYPES, GRAD_METHODS, INITS, LOSS_ALIASES,
                          LOSS_NAMES, LR_SCALINGS, OPTIMIZERS, PRECISIONS, SCHEDULES, TASKS)

# Field kinds.
PROGRAM = "program"  # changes the compiled init / epoch programs
HOST = "host"  # does not: the data enters them as arrays and the keys as arguments, the rest steers the host loop

DISTRIBUTED_TIMEOUT = 120.0  # seconds a multi-host process waits for its peers (a launch setting, not a field)


def _field(default: Any, kind: str, *, help: str, per_host: bool = False, resumable: bool = False) -> Any:
    """A TrainConfig field of `kind` (PROGRAM or HOST) with its --help text; `per_host`: it may
    differ between the processes of one run; `resumable`: a resumed run may change it."""
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help, "per_host": per_host,
                                                         "resumable": resumable})


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults train the CS231n spiral to >= 95% in a few seconds on CPU."""

    # --- data ---
    dataset: str = _field("spiral", HOST, help="data set spec: spiral, checkerboard, circles, moons, blobs, teacher, sin, mnist, fashion_mnist, kmnist, cifar10, idx:DIR, npz:FILE, csv:FILE")
    data_dir: str | None = _field(None, HOST, per_host=True, resumable=True, help="where named data sets (mnist, ...) are looked for; None = the loader's default search")
    download: bool = _field(False, HOST, per_host=True, resumable=True, help="allow downloading named data sets (checksummed)")
    download_timeout: float = _field(30.0, HOST, per_host=True, resumable=True, help="give up a download when the server sends nothing for this many seconds (connecting or reading)")
    n_samples: int | None = _field(None, HOST, help="synthetic sets: number of examples; real sets: stratified training subset; None = all/default")
    val_fraction: float = _field(0.0, HOST, help="fraction of the training split held out for validation, in [0, 1)")
    standardize: bool = _field(False, HOST, help="standardize features with mean/std fitted on the training split")
    data_seed: int = _field(0, HOST, help="seed of the data (synthetic draws, subsampling, validation split)")
    label_column: str | None = _field(None, HOST, help="csv:FILE only: target column by header name or 0-based index; None = the last")
    task: str = _field("auto", HOST, help="how to read the labels of npz:/csv: data: auto infers (integer labels: classification, floats: regression) and refuses class labels with a few fractional values; classification or regression forces it; other data sets have a fixed task")
    # --- model ---
    hidden: tuple[int, ...] = _field((100,), PROGRAM, help="hidden layer widths, e.g. 512,512; empty = a linear model")
    activation: str = _field("relu", PROGRAM, help="hidden activation: identity, sigmoid, tanh, relu, leaky_relu, prelu, elu, gelu, maxout")
    alpha: float | None = _field(None, PROGRAM, help="leaky_relu/elu slope or PReLU initial slope; None = the activation's default")
    k: int | None = _field(None, PROGRAM, help="maxout pieces per unit (>= 2); None = 2")
    approximate: bool = _field(False, PROGRAM, help="gelu: use the tanh approximation")
    init: str | None = _field(None, PROGRAM, help="weight init (he_normal, he_uniform, xavier_normal, xavier_uniform, lecun_normal, lecun_uniform); None = the activation's default")
    dtype: str = _field("float32", PROGRAM, help="float32 or float64 (float64 turns on jax_enable_x64 in the CLI)")
    # --- objective ---
    loss: str = _field("auto", PROGRAM, help="softmax_cross_entropy, multiclass_hinge, binary_logistic, mean_squared_error; auto = cross-entropy for classification, MSE for regression")
    l2: float = _field(0.0, PROGRAM, help="L2 penalty 0.5 * l2 * sum ||W||^2 added to the loss (weights only)")
    dropout: float = _field(0.0, PROGRAM, help="probability of dropping a hidden unit while training, in [0, 1)")
    input_noise: float = _field(0.0, PROGRAM, help="std of Gaussian noise added to the inputs while training")
    # --- optimizer (all optax) ---
    optimizer: str = _field("adam", PROGRAM, help="sgd, momentum, nesterov, adam, adamw, rmsprop, lars, lamb")
    learning_rate: float = _field(0.01, PROGRAM, help="peak learning rate")
    momentum: float = _field(0.9, PROGRAM, help="momentum of momentum, nesterov and lars, in [0, 1)")
    b1: float = _field(0.9, PROGRAM, help="adam/adamw/lamb first-moment decay, in [0, 1)")
    b2: float = _field(0.999, PROGRAM, help="adam/adamw/lamb second-moment decay, in [0, 1)")
    eps: float = _field(1e-8, PROGRAM, help="adam/adamw/lamb/rmsprop denominator epsilon, > 0")
    rms_decay: float = _field(0.9, PROGRAM, help="rmsprop squared-gradient decay, in [0, 1)")
    weight_decay: float = _field(0.0, PROGRAM, help="weight decay on weights only (biases and PReLU slopes are masked out); decoupled for adamw/lamb/lars, added to the gradient otherwise")
    clip_norm: float | None = _field(None, PROGRAM, help="clip gradients to this global norm; None = no clipping")
    # --- learning-rate schedule (optax, counted in epochs) ---
    schedule: str = _field("constant", PROGRAM, help="constant, step, exponential, cosine, warmup_cosine")
    warmup_epochs: int = _field(0, PROGRAM, help="linear warm-up from 0 to learning_rate over this many epochs (required by warmup_cosine)")
    decay_rate: float = _field(0.1, PROGRAM, help="step/exponential: multiply the lr by this every decay_epochs, in (0, 1]")
    decay_epochs: int = _field(30, PROGRAM, help="step/exponential: epochs per decay_rate factor")
    final_lr_fraction: float = _field(0.0, PROGRAM, help="cosine/warmup_cosine: final lr = learning_rate * this, in [0, 1]")
    schedule_epochs: int | None = _field(None, PROGRAM, help="cosine/warmup_cosine: epochs the schedule spans, warm-up included; None = epochs. A run records it when it starts, so resuming with more --epochs continues at the final lr instead of restarting the decay")
    lr_scaling: str = _field("none", PROGRAM, help="large batches: none, linear (peak lr = learning_rate * batch_size / base_batch_size) or sqrt (learning_rate * sqrt(batch_size / base_batch_size)); pair with warmup_epochs")
    base_batch_size: int = _field(256, PROGRAM, help="the batch size learning_rate is tuned for (read by lr_scaling)")
    # --- loop ---
    epochs: int = _field(100, PROGRAM, resumable=True, help="number of passes over the training set")
    batch_size: int = _field(32, PROGRAM, help="minibatch size; the remainder batch of each (reshuffled) epoch is dropped")
    seed: int = _field(0, HOST, help="seed of init, shuffling, dropout and noise: a run is reproducible from it")
    grad_method: str = _field("autodiff", PROGRAM, help="autodiff (jax.grad) or manual (the hand-written backprop)")
    accumulate: int = _field(1, PROGRAM, help="gradient accumulation: run each batch as this many microbatches, then make one update (batch_size is the effective batch)")
    eval_every: int = _field(1, HOST, resumable=True, help="evaluate on the validation set every N epochs (and after the last)")
    eval_train: bool = _field(True, HOST, resumable=True, help="at those epochs also evaluate loss and accuracy on the whole training set (one extra batched forward pass)")
    track_activations: bool = _field(False, HOST, resumable=True, help="at those epochs also record per-layer dead-unit / saturation fractions and gradient norms over the whole training set (one extra manual forward + backward pass)")
    track_gradients: bool = _field(False, PROGRAM, help="per-example gradient statistics inside every step (the step's gradient then comes from the manual backward pass): per epoch the gradient noise scale, per-layer gradient norms and signal-to-noise ratios and per-example norm percentiles go to metrics.jsonl, and gradient_stats.png to the run directory")
    gradient_ema: float = _field(0.99, PROGRAM, help="track_gradients: decay of the per-step EMAs of the noise scale's numerator and denominator (restarted every epoch, bias-corrected), in [0, 1)")
    audit_every: int = _field(0, HOST, resumable=True, help="every N epochs audit the gradients on a fixed batch: manual backprop vs jax.grad per layer and field, jax.grad vs centered finite differences in float64; 0 = off")
    audit_strict: bool = _field(False, HOST, resumable=True, help="stop the run (exit status 1, the last good checkpoint kept) when a gradient audit exceeds its tolerance, instead of warning")
    eval_batch_size: int = _field(1024, HOST, resumable=True, help="batch size of evaluation and prediction (exact over all examples)")
    patience: int = _field(0, HOST, resumable=True, help="early stopping: stop after this many epochs without val-loss improvement; 0 = off")
    divergence_factor: float = _field(1e4, HOST, resumable=True, help="stop as diverged when an epoch's mean training loss exceeds this multiple of the loss of all-zero scores (log C for cross-entropy); 0 = stop only on non-finite values")
    min_delta: float = _field(0.0, HOST, resumable=True, help="early stopping: smallest decrease of the val loss that counts as improvement")
    restore_best: bool = _field(False, HOST, help="early stopping: return (and export) the params of the best val-loss epoch")
    checkpoint_every: int = _field(10, HOST, resumable=True, help="save a checkpoint every N epochs (and always after the last); 0 = only after the last")
    keep_checkpoints: int = _field(3, HOST, resumable=True, help="number of most recent checkpoints kept on disk")
    out_dir: str | None = _field(None, HOST, per_host=True, help="run directory; None = runs/<dataset>-<timestamp> under the current directory")
    # --- scale-out (parallel.py, precision.py) ---
    devices: int = _field(1, PROGRAM, resumable=True, help="data-parallel devices: N (<= available) or all (= 0: every device of every process); batch_size must be divisible by devices * accumulate")
    data_feed: str = _field("auto", HOST, resumable=True, help="resident (the whole training set on every device, batches gathered there: nothing crosses the host per epoch), per_process (each process gathers its rows of every batch of an epoch on the host and sends only those: a device holds ~2 * N / devices training rows plus its share of the evaluation sets), auto = resident in one process, per_process with several")
    precision: str = _field("fp32", PROGRAM, help="fp32 (params dtype, JAX's default matmuls: TF32 on Ampere+ GPUs), highest (full-precision matmuls), bf16 (bf16 matmuls and activations; fp32 params, optimizer state and loss)")

    def __post_init__(self) -> None:
        if self.devices == "all":  # the spelling of --devices all
            object.__setattr__(self, "devices", 0)
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        _validate(self)

    def schedule_length(self) -> int:
        """Epochs a cosine / warmup_cosine schedule spans: schedule_epochs, or epochs when None."""
        return self.epochs if self.schedule_epochs is None else self.schedule_epochs

    def with_fixed_schedule(self) -> TrainConfig:
        """This config with a cosine schedule's length written down (schedule_epochs = epochs when
        None): what a run records when it starts, so that extending `epochs` later continues at
        the final learning rate instead of stretching the decay."""
        if self.schedule_epochs is not None or self.schedule not in ("cosine", "warmup_cosine"):
            return self
        return dataclasses.replace(self, schedule_epochs=self.epochs)

    def activation_options(self) -> dict[str, Any]:
        """The keyword options for `get_activation`/`init_mlp` that this config sets."""
        opts: dict[str, Any] = {}
        if self.alpha is not None:
            opts["alpha"] = self.alpha
        if self.k is not None:
            opts["k"] = self.k
        if self.approximate:
            opts["approximate"] = True
        return opts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; missing keys take defaults, unknown keys raise ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a mapping of field names to values, got {type(d).__name__}")
        unknown = sorted(set(d) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**d)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
FIELD_HELP: dict[str, str] = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainConfig)}


def _fields_where(key: str, value: Any) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get(key) == value)


# Fields that do not change the compiled programs: fits that differ only in these share compiles.
HOST_ONLY_FIELDS: frozenset[str] = _fields_where("kind", HOST)
# Fields that may differ between the processes of one run: where each host finds its data and the
# path by which it reaches the shared run directory.
PER_HOST_FIELDS: frozenset[str] = _fields_where("per_host", True)
# Fields a resumed run may change: they steer the loop, not the numbers it computes (devices,
# data_feed: only their summation order).
RESUMABLE: frozenset[str] = _fields_where("resumable", True)


# --- coercion: JSON/TOML/CLI values -> the annotated types ------------------------------------
def _coerce(name: str, value: Any, tp: Any) -> Any:
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


def _validate(c: TrainConfig) -> None:
    """Raise ValueError naming the first bad field and its allowed range."""
    _validate_data(c)
    _validate_model(c)
    _validate_optimizer(c)
    _validate_loop(c)
    _validate_gradients(c)
    _check_applies(c)


def _validate_data(c: TrainConfig) -> None:
    _check(bool(c.dataset.strip()), "dataset", "a non-empty data set spec", c.dataset)
    _check(c.download_timeout > 0, "download_timeout", "> 0 seconds", c.download_timeout)
    _check(c.n_samples is None or c.n_samples >= 1, "n_samples", ">= 1 (or none)", c.n_samples)
    _check(0.0 <= c.val_fraction < 1.0, "val_fraction", "in [0, 1)", c.val_fraction)
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
    _check(c.patience >= 0, "patience", ">= 0 (0 = no early stopping)", c.patience)
    _check(c.min_delta >= 0, "min_delta", ">= 0", c.min_delta)
    _check(c.divergence_factor >= 0, "divergence_factor", ">= 0 (0 = only non-finite values)", c.divergence_factor)
    _check(c.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0 = only after the last epoch)", c.checkpoint_every)
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
    else:
        _check(c.gradient_ema == TrainConfig.gradient_ema, "gradient_ema",
               f"{TrainConfig.gradient_ema} without track_gradients (only a tracked run reads it)", c.gradient_ema)
    _check(c.audit_every > 0 or not c.audit_strict, "audit_strict", "false without audit_every (no audit runs)",
           c.audit_strict)


def _check_applies(c: TrainConfig) -> None:
    """A setting that the chosen activation, optimizer, schedule or lr scaling does not read must
    keep its default: ValueError naming the setting and the choices that read it."""
    defaults = TrainConfig.__dataclass_fields__
    for name, (chooser, users) in APPLIES_ONLY_TO.items():
        value, chosen = getattr(c, name), getattr(c, chooser)
        if value != defaults[name].default and chosen not in users:
            raise ValueError(f"{name} applies only to {chooser} {', '.join(users)}, not {chosen!r} "
                             f"(got {name}={value!r})")
