"""`TrainConfig`: every knob of a training run in one frozen, typed, validated dataclass.

Each field declares, in its metadata (`_field`), its `--help` text (`FIELD_HELP`, the text of
the matching `jaxmlp train --flag`, so the two never drift; one line of at most ~100 characters,
the longer explanations in README.md, "Settings in full") and its kind: PROGRAM (it changes
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
import typing
from dataclasses import dataclass
from typing import Any

from jaxmlp.config_rules import coerce, validate

# Field kinds.
PROGRAM = "program"  # changes the compiled init / epoch programs
HOST = "host"  # does not: the data enters them as arrays and the keys as arguments, the rest steers the host loop

DISTRIBUTED_TIMEOUT = 120.0  # seconds a multi-host process waits for its peers (a launch setting, not a field)

# The "auto" (None) settings (TrainConfig.with_auto_resolved): a validation split and early
# stopping for data sets large enough to spare one and to judge an epoch by it; the best epoch's
# params wherever there is validation data.
AUTO = "auto"
AUTO_VAL_FRACTION = 0.1
AUTO_VAL_MIN_EXAMPLES = 5000
AUTO_PATIENCE = 5


def auto_val_fraction(n_train: int) -> float:
    """val_fraction auto: AUTO_VAL_FRACTION of a training split of >= AUTO_VAL_MIN_EXAMPLES, else 0."""
    return AUTO_VAL_FRACTION if n_train >= AUTO_VAL_MIN_EXAMPLES else 0.0


def _field(default: Any, kind: str, *, help: str, per_host: bool = False, resumable: bool = False,
           auto: bool = False) -> Any:
    """A TrainConfig field of `kind` (PROGRAM or HOST) with its --help text; `per_host`: it may
    differ between the processes of one run; `resumable`: a resumed run may change it; `auto`:
    None means "auto", which configs and flags may also spell "auto"."""
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help, "per_host": per_host,
                                                         "resumable": resumable, "auto": auto})


@dataclass(frozen=True)
class TrainConfig:
    """One training run. The defaults train the CS231n spiral to >= 95% test accuracy in seconds
    and MNIST to >= 98% in under two minutes on a 2-core CPU (README.md, "Defaults")."""

    # --- data ---
    dataset: str = _field("spiral", HOST, help="spiral, checkerboard, circles, moons, blobs, teacher, sin, mnist, ..., idx:DIR, npz:FILE, csv:FILE")
    data_dir: str | None = _field(None, HOST, per_host=True, resumable=True, help="where named data sets (mnist, ...) are looked for; None = the loader's default search")
    download: bool = _field(False, HOST, per_host=True, resumable=True, help="allow downloading named data sets (checksummed)")
    download_timeout: float = _field(30.0, HOST, per_host=True, resumable=True, help="give up a download when the server sends nothing for this many seconds (connecting or reading)")
    n_samples: int | None = _field(None, HOST, help="synthetic sets: number of examples; real sets: stratified training subset; None = all/default")
    val_fraction: float | None = _field(None, HOST, auto=True, help=f"validation fraction, in [0, 1); auto = {AUTO_VAL_FRACTION:g} when the training split has >= {AUTO_VAL_MIN_EXAMPLES:,} examples, else 0")
    standardize: bool = _field(False, HOST, help="standardize features with mean/std fitted on the training split")
    data_seed: int = _field(0, HOST, help="seed of the data (synthetic draws, subsampling, validation split)")
    label_column: str | None = _field(None, HOST, help="csv:FILE only: target column by header name or 0-based index; None = the last")
    task: str = _field("auto", HOST, help="npz:/csv: labels: auto (ints: classification, floats: regression), classification or regression")
    # --- model ---
    hidden: tuple[int, ...] = _field((512,), PROGRAM, help="hidden layer widths, e.g. 512,512; empty = a linear model")
    activation: str = _field("relu", PROGRAM, help="hidden activation: identity, sigmoid, tanh, relu, leaky_relu, prelu, elu, gelu, maxout")
    alpha: float | None = _field(None, PROGRAM, help="leaky_relu/elu slope or PReLU initial slope; None = the activation's default")
    k: int | None = _field(None, PROGRAM, help="maxout pieces per unit (>= 2); None = 2")
    approximate: bool = _field(False, PROGRAM, help="gelu: use the tanh approximation")
    init: str | None = _field(None, PROGRAM, help="weight init: he_*, xavier_*, lecun_* (_normal or _uniform); None = the activation's default")
    dtype: str = _field("float32", PROGRAM, help="float32 or float64 (float64 turns on jax_enable_x64 in the CLI)")
    # --- objective ---
    loss: str = _field("auto", PROGRAM, help="softmax_cross_entropy, multiclass_hinge, binary_logistic, mean_squared_error; auto = by the task")
    l2: float = _field(0.0, PROGRAM, help="L2 penalty 0.5 * l2 * sum ||W||^2 added to the loss (weights only)")
    dropout: float = _field(0.2, PROGRAM, help="probability of dropping a hidden unit while training, in [0, 1)")
    input_noise: float = _field(0.0, PROGRAM, help="std of Gaussian noise added to the inputs while training")
    # --- optimizer (all optax) ---
    optimizer: str = _field("adam", PROGRAM, help="sgd, momentum, nesterov, adam, adamw, rmsprop, lars, lamb")
    learning_rate: float = _field(1e-3, PROGRAM, help="peak learning rate")
    momentum: float = _field(0.9, PROGRAM, help="momentum of momentum, nesterov and lars, in [0, 1)")
    b1: float = _field(0.9, PROGRAM, help="adam/adamw/lamb first-moment decay, in [0, 1)")
    b2: float = _field(0.999, PROGRAM, help="adam/adamw/lamb second-moment decay, in [0, 1)")
    eps: float = _field(1e-8, PROGRAM, help="adam/adamw/lamb/rmsprop denominator epsilon, > 0")
    rms_decay: float = _field(0.9, PROGRAM, help="rmsprop squared-gradient decay, in [0, 1)")
    weight_decay: float = _field(0.0, PROGRAM, help="weight decay on weights only; decoupled for adamw/lamb/lars, added to the gradient otherwise")
    clip_norm: float | None = _field(None, PROGRAM, help="clip gradients to this global norm; None = no clipping")
    # --- learning-rate schedule (optax, counted in epochs) ---
    schedule: str = _field("constant", PROGRAM, help="constant, step, exponential, cosine, warmup_cosine")
    warmup_epochs: int = _field(0, PROGRAM, help="linear warm-up from 0 to learning_rate over this many epochs (required by warmup_cosine)")
    decay_rate: float = _field(0.1, PROGRAM, help="step/exponential: multiply the lr by this every decay_epochs, in (0, 1]")
    decay_epochs: int = _field(30, PROGRAM, help="step/exponential: epochs per decay_rate factor")
    final_lr_fraction: float = _field(0.0, PROGRAM, help="cosine/warmup_cosine: final lr = learning_rate * this, in [0, 1]")
    schedule_epochs: int | None = _field(None, PROGRAM, help="cosine/warmup_cosine: epochs the schedule spans, warm-up included; None = epochs")
    lr_scaling: str = _field("none", PROGRAM, help="large batches: none, linear or sqrt in batch_size / base_batch_size; pair with warmup_epochs")
    base_batch_size: int = _field(256, PROGRAM, help="the batch size learning_rate is tuned for (read by lr_scaling)")
    # --- loop ---
    epochs: int = _field(300, PROGRAM, resumable=True, help="number of passes over the training set (at most: early stopping may end a run sooner)")
    batch_size: int = _field(128, PROGRAM, help="minibatch size; the remainder batch of each (reshuffled) epoch is dropped")
    adaptive_batch: bool = _field(False, PROGRAM, help="grow the batch from batch_size with the measured noise scale B_simple; lr by AdaScale's gain")
    max_batch_size: int | None = _field(None, PROGRAM, help="adaptive_batch: the largest batch; None = as the data and the device memory allow")
    batch_segments: int = _field(256, PROGRAM, help="adaptive_batch: decide the batch after every n_train / batch_segments examples")
    seed: int = _field(0, HOST, help="seed of init, shuffling, dropout and noise: a run is reproducible from it")
    grad_method: str = _field("autodiff", PROGRAM, help="autodiff (jax.grad) or manual (the hand-written backprop)")
    accumulate: int = _field(1, PROGRAM, help="gradient accumulation: microbatches per update (batch_size is the effective batch)")
    eval_every: int = _field(1, HOST, resumable=True, help="evaluate on the validation set every N epochs (and after the last)")
    eval_train: bool = _field(True, HOST, resumable=True, help="at those epochs also evaluate loss and accuracy on the whole training set")
    track_activations: bool = _field(False, HOST, resumable=True, help="at those epochs also record per-layer dead / saturated units and gradient norms")
    track_gradients: bool = _field(False, PROGRAM, help="per-example gradient statistics in every step: noise scale, per-layer norms and SNR")
    gradient_ema: float = _field(0.99, PROGRAM, help="track_gradients: decay of the per-step EMAs of the noise scale, in [0, 1)")
    audit_every: int = _field(0, HOST, resumable=True, help="every N epochs audit the gradients on a fixed batch (manual, jax.grad, finite differences); 0 = off")
    audit_strict: bool = _field(False, HOST, resumable=True, help="stop the run (exit 1) when a gradient audit exceeds its tolerance, instead of warning")
    eval_batch_size: int = _field(1024, HOST, resumable=True, help="batch size of evaluation and prediction (exact over all examples)")
    patience: int | None = _field(None, HOST, resumable=True, auto=True, help=f"early stopping: epochs without val-loss improvement; 0 = off; auto = {AUTO_PATIENCE} on large data, else 0")
    divergence_factor: float = _field(1e4, HOST, resumable=True, help="stop at a mean loss > this x the larger of the initial loss and the loss of all-zero scores")
    min_delta: float = _field(0.0, HOST, resumable=True, help="early stopping: smallest decrease of the val loss that counts as improvement")
    restore_best: bool | None = _field(None, HOST, auto=True, help="return (and export) the best val-loss epoch's params; auto = on wherever there is validation data")
    checkpoint_every: int = _field(50, HOST, resumable=True, help="save a checkpoint every N epochs (and always after the last); 0 = only after the last")
    checkpoint_every_steps: int = _field(0, HOST, resumable=True, help="data_feed stream: also save a checkpoint every N optimizer steps, mid-epoch; 0 = off")
    keep_checkpoints: int = _field(3, HOST, resumable=True, help="number of most recent checkpoints kept on disk")
    out_dir: str | None = _field(None, HOST, per_host=True, help="run directory; None = runs/<dataset>-<timestamp> under the current directory")
    # --- scale-out (parallel.py, precision.py) ---
    devices: int = _field(1, PROGRAM, resumable=True, help="data-parallel devices: N (<= available) or all (= 0); batch_size divisible by devices * accumulate")
    data_feed: str = _field("auto", HOST, resumable=True, help="resident, per_process (each process sends its rows) or stream (chunks from disk); auto: by processes, memory")
    precision: str = _field("fp32", PROGRAM, help="fp32 (JAX's default matmuls), highest (full-precision matmuls), bf16 (bf16 matmuls, fp32 params)")

    def __post_init__(self) -> None:
        if self.devices == "all":  # the spelling of --devices all
            object.__setattr__(self, "devices", 0)
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["auto"] and isinstance(value, str) and value.strip().lower() == AUTO:
                value = None
            object.__setattr__(self, f.name, coerce(f.name, value, hints[f.name]))
        validate(self)

    def schedule_length(self) -> int:
        """Epochs a cosine / warmup_cosine schedule spans: schedule_epochs, or epochs when None."""
        return self.epochs if self.schedule_epochs is None else self.schedule_epochs

    def with_fixed_schedule(self, resumed: TrainConfig | None = None) -> TrainConfig:
        """This config with a cosine schedule's length written down (schedule_epochs = epochs when
        None): what a run records when it starts, so that extending `epochs` later continues at
        the final learning rate instead of stretching the decay. A run resumed from a checkpoint
        trained under `resumed` keeps that checkpoint's length."""
        source = self if resumed is None else resumed
        if self.schedule_epochs is not None or source.schedule not in ("cosine", "warmup_cosine"):
            return self
        return dataclasses.replace(self, schedule_epochs=source.schedule_length())

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

    def with_auto_resolved(self, n_train: int, n_val: int | None) -> TrainConfig:
        """This config with its auto settings decided for the data of a run: n_train training and
        n_val validation examples (None: no validation data). val_fraction: `auto_val_fraction`
        of all of them; patience: AUTO_PATIENCE with validation data and >= AUTO_VAL_MIN_EXAMPLES
        examples, else 0 (a few short epochs are too little training to judge); restore_best: on
        with validation data. A run records the settled config, so its directory and a resume
        see what ran."""
        has_val, n_examples = n_val is not None, n_train + (n_val or 0)
        auto = {"val_fraction": auto_val_fraction(n_examples), "restore_best": has_val,
                "patience": AUTO_PATIENCE if has_val and n_examples >= AUTO_VAL_MIN_EXAMPLES else 0}
        return dataclasses.replace(self, **{name: value for name, value in auto.items() if getattr(self, name) is None})

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
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ValueError(f"unknown config field(s): {', '.join(unknown[:5])}{more}")
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
# Fields whose None means "auto", decided for the data when a run starts (TrainConfig.with_auto_resolved).
AUTO_FIELDS: frozenset[str] = _fields_where("auto", True)
# Fields a resumed run may change: they steer the loop, not the numbers it computes (devices,
# data_feed: only their summation order).
RESUMABLE: frozenset[str] = _fields_where("resumable", True)
