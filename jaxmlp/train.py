"""The trainer: data on the device once, one compiled call per epoch, divergence caught on device.

    params, history = fit(TrainConfig(hidden=(100,)), splits.train, splits.val, splits.test)
    evaluate(params, splits.test, config=cfg)     # {"loss": ..., "accuracy": ...}
    predict(params, x, activation="relu")         # (N, d_out) scores

An epoch is ONE jitted call (`make_epoch_fn`): a `lax.scan` over the minibatches of a fresh
permutation, with params and optimizer state donated. Randomness is threaded explicitly from
`config.seed`:

    run key --split--> init key (params), train key
    train key --fold_in(epoch)--> epoch key --split--> permutation key, step key
    step key --fold_in(step index)--> the dropout / input-noise key of that step

so epoch e of a run is the same computation whether or not the run was resumed before it.

Scale-out: with `devices` > 1 the training set, params and optimizer state are replicated on a
1-D mesh and every minibatch is split over it (parallel.py), so XLA adds the gradient
all-reduce; the random keys do not depend on the device count. Each gradient follows the
`precision` policy (precision.py); `accumulate` K runs K microbatches per optimizer update.

The numeric core is pure: `fit` writes nothing and prints nothing by itself. The CLI passes a
`Checkpointer` (checkpoint.py) and `Callback`s (progress bar, metrics.jsonl) explicitly.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmlp import metrics as metrics_lib
from jaxmlp import parallel
from jaxmlp.activations import get_activation
from jaxmlp.config import TrainConfig
from jaxmlp.losses import get_loss
from jaxmlp.mlp import Layer, Params, init_mlp, mlp_apply
from jaxmlp.precision import policy_loss_and_grad

Array = jax.Array


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient or parameter appeared; `epoch` (1-based) names where."""

    def __init__(self, epoch: int, step: int | None = None):
        self.epoch, self.step = epoch, step
        where = f"epoch {epoch}" + (f" (step {step} of the epoch)" if step is not None else "")
        super().__init__(f"training diverged in {where}: non-finite loss, gradient or parameter; "
                         "lower the learning rate or clip gradients (clip_norm)")


class TrainState(NamedTuple):
    """Everything an epoch updates: params, optimizer state, optimizer steps taken (() int32)."""

    params: Params
    opt_state: optax.OptState
    step: Array


class EpochStats(NamedTuple):
    """What one epoch call returns besides the new state (all device scalars)."""

    loss: Array  # mean minibatch objective over the epoch's good steps
    finite: Array  # bool: no non-finite loss / gradient / parameter appeared
    bad_step: Array  # int32: first step of the epoch with a non-finite loss (or its last step, when only the final params are non-finite), -1 if none
    lr: Array  # learning rate of the epoch's last step


@dataclasses.dataclass
class History:
    """Per-epoch metrics (epochs are 1-based) plus the final evaluation; JSON-serializable.

    train_loss is the mean over the epoch's minibatches of the training objective (with dropout,
    input noise and the l2 term, as optimized); val_* and `final` are exact evaluations without
    them. lr is the learning rate of the epoch's last step. train_accuracy / train_mse (eval_train)
    and val_* entries are None on epochs without evaluation; *_accuracy is None for regression,
    *_mse None for classification. dead_fraction, saturation_fraction and grad_norm are per-layer
    lists on evaluation epochs when track_activations is on.
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
    compile_seconds: float = 0.0  # compiling the epoch function (not in `seconds`; ~0 when cached)
    best_epoch: int | None = None  # epoch of the lowest val loss
    best_val_loss: float | None = None
    stopped_early: bool = False
    final: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # split -> metrics

    def append(self, record: dict[str, Any]) -> None:
        for name in _RECORD_KEYS:
            getattr(self, name).append(record.get(name))

    def records(self) -> list[dict[str, Any]]:
        """One dict per epoch, as written to metrics.jsonl."""
        return [{name: getattr(self, name)[i] for name in _RECORD_KEYS} for i in range(len(self.epoch))]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        d = dict(d)
        for name in _RECORD_KEYS:  # a column an older run did not record: None for its epochs
            d.setdefault(name, [None] * len(d.get("epoch", [])))
        return cls(**d)


_RECORD_KEYS = ("epoch", "train_loss", "train_accuracy", "train_mse", "val_loss", "val_accuracy", "val_mse",
                "dead_fraction", "saturation_fraction", "grad_norm", "lr", "seconds", "samples_per_sec")


class Callback:
    """Hooks `fit` calls on the host; subclass and override what you need. No-ops by default."""

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """info: config, sizes, loss, n_train, steps_per_epoch, start_epoch, compile_seconds, history,
        devices (data-parallel devices), processes."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """record: one epoch's metrics (a row of History.records())."""

    def on_train_end(self, history: History) -> None:
        """Called once after the final evaluation (not when training diverges)."""


# --- model, objective and optimizer from the config ------------------------------------------
def resolve_loss(config: TrainConfig, data) -> str:
    """The canonical loss name for this config and data set; ValueError when they do not fit."""
    classification = data.num_classes is not None
    name = config.loss
    if name == "auto":
        name = "softmax_cross_entropy" if classification else "mean_squared_error"
    loss = get_loss(name)
    if classification and loss.name == "mean_squared_error":
        raise ValueError(f"loss mean_squared_error needs regression targets, but {data.name} is a "
                         "classification set; use softmax_cross_entropy, multiclass_hinge or binary_logistic")
    if not classification and loss.name != "mean_squared_error":
        raise ValueError(f"loss {loss.name} needs class labels, but {data.name} is a regression set; "
                         "use mean_squared_error")
    if loss.name == "binary_logistic" and data.num_classes != 2:
        raise ValueError(f"loss binary_logistic needs 2 classes, {data.name} has {data.num_classes}")
    return loss.name


def model_sizes(config: TrainConfig, data, loss: str) -> tuple[int, ...]:
    """(d_in, *hidden, d_out): d_out is the class count, 1 for binary_logistic, k for (N, k) targets."""
    if data.num_classes is None:
        d_out = int(data.y.shape[1]) if data.y.ndim == 2 else 1
    else:
        d_out = 1 if loss == "binary_logistic" else int(data.num_classes)
    return (int(data.x.shape[1]), *config.hidden, d_out)


def decay_mask(params: Params) -> Params:
    """True for weights W, False for biases b and PReLU slopes alpha (None stays None)."""
    return [Layer(True, False, None if layer.alpha is None else False) for layer in params]


def scaled_learning_rate(config: TrainConfig) -> float:
    """The peak learning rate after `lr_scaling`: learning_rate * batch_size / base_batch_size
    (linear, Goyal et al. 2017), its square root (sqrt), or learning_rate itself (none)."""
    ratio = config.batch_size / config.base_batch_size
    return config.learning_rate * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[config.lr_scaling]


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """The optax learning-rate schedule, with epochs converted to optimizer steps.

    step: lr * decay_rate ** floor(epoch / decay_epochs); exponential: the same without the
    floor; cosine: cosine decay to lr * final_lr_fraction over all epochs; warmup_cosine:
    linear warm-up over warmup_epochs then cosine. warmup_epochs > 0 puts the same linear
    warm-up in front of any other schedule.
    """
    lr, spe = scaled_learning_rate(config), steps_per_epoch  # the peak lr, after lr_scaling
    total, warmup = config.epochs * spe, config.warmup_epochs * spe
    if config.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total, warmup + 1),
                                                  end_value=lr * config.final_lr_fraction)
    if config.schedule == "constant":
        base = optax.constant_schedule(lr)
    elif config.schedule in ("step", "exponential"):
        base = optax.exponential_decay(lr, config.decay_epochs * spe, config.decay_rate,
                                       staircase=config.schedule == "step")
    else:  # cosine
        base = optax.cosine_decay_schedule(lr, max(total - warmup, 1), alpha=config.final_lr_fraction)
    if warmup == 0:
        return base
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), base], [warmup])


def make_optimizer(config: TrainConfig, schedule: optax.Schedule, params: Params) -> optax.GradientTransformation:
    """clip_by_global_norm (optional) -> [masked weight decay] -> the optax optimizer.

    adamw, lamb and lars decay decoupled inside the optimizer; the others get
    `add_decayed_weights` before them (decay added to the gradient, like torch's
    weight_decay). Either way the mask skips biases and PReLU slopes.
    """
    c, mask, wd = config, decay_mask(params), config.weight_decay
    parts: list[optax.GradientTransformation] = []
    if c.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(c.clip_norm))
    if wd and c.optimizer not in ("adamw", "lamb", "lars"):
        parts.append(optax.add_decayed_weights(wd, mask))
    if c.optimizer == "sgd":
        parts.append(optax.sgd(schedule))
    elif c.optimizer in ("momentum", "nesterov"):
        parts.append(optax.sgd(schedule, momentum=c.momentum, nesterov=c.optimizer == "nesterov"))
    elif c.optimizer == "adam":
        parts.append(optax.adam(schedule, b1=c.b1, b2=c.b2, eps=c.eps))
    elif c.optimizer == "adamw":
        parts.append(optax.adamw(schedule, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=wd, mask=mask))
    elif c.optimizer == "rmsprop":
        parts.append(optax.rmsprop(schedule, decay=c.rms_decay, eps=c.eps))
    elif c.optimizer == "lars":
        parts.append(optax.lars(schedule, weight_decay=wd, weight_decay_mask=mask, trust_ratio_mask=mask,
                                momentum=c.momentum))
    else:  # lamb
        parts.append(optax.lamb(schedule, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=wd, mask=mask))
    return optax.chain(*parts)


def build_optimizer(config: TrainConfig, sizes: Sequence[int],
                    steps_per_epoch: int) -> tuple[optax.Schedule, optax.GradientTransformation]:
    """(schedule, optimizer) of a run; the weight-decay mask is built from the params' shapes."""
    schedule = make_schedule(config, steps_per_epoch)
    template = jax.eval_shape(lambda k: _init_params(k, config, sizes), jax.random.key(0))
    return schedule, make_optimizer(config, schedule, template)


def _init_params(key: Array, config: TrainConfig, sizes: Sequence[int]) -> Params:
    return init_mlp(key, sizes, activation=config.activation, init=config.init,
                    dtype=jnp.dtype(config.dtype), **config.activation_options())


def abstract_state(config: TrainConfig, sizes: Sequence[int], optimizer) -> TrainState:
    """The TrainState's structure, shapes and dtypes (ShapeDtypeStructs): a restore target."""
    return jax.eval_shape(lambda k: init_state(k, config, sizes, optimizer), jax.random.key(0))


def init_state(key: Array, config: TrainConfig, sizes: Sequence[int], optimizer) -> TrainState:
    """Fresh params (from `key`) and optimizer state, step 0."""
    params = _init_params(key, config, sizes)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def run_keys(seed: int) -> tuple[Array, Array]:
    """(init key, train key) of a run, both from `seed` alone."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    return init_key, train_key


def epoch_key(train_key: Array, epoch: int) -> Array:
    """The key of 0-based epoch `epoch`."""
    return jax.random.fold_in(train_key, epoch)


# --- data placement ------------------------------------------------------------------------
def place(tree, sharding=None):
    """Put arrays on the device once (the one place a data-parallel module passes a sharding)."""
    return jax.device_put(tree, sharding)


def train_arrays(data, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Host (x (N, D) in `dtype`, y (N,) int32 labels or (N, k) targets in `dtype`)."""
    x = np.asarray(data.x, dtype=dtype)
    y = np.asarray(data.y)
    y = y.astype(np.int32) if data.num_classes is not None else y.astype(dtype)
    return x, y


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad to whole batches and stack: x (nb, B, D), y (nb, B, ...), mask (nb, B) bool.

    Padding repeats row 0 (valid values, no NaN risk) and is masked out, so means are exact.
    """
    n = x.shape[0]
    b = min(batch_size, n)
    nb = -(-n // b)
    pad = nb * b - n
    idx = np.concatenate([np.arange(n), np.zeros(pad, dtype=np.int64)])
    mask = np.arange(nb * b) < n
    return (x[idx].reshape(nb, b, *x.shape[1:]), y[idx].reshape(nb, b, *y.shape[1:]), mask.reshape(nb, b))


# --- the epoch: one compiled call ------------------------------------------------------------
def _all_finite(tree) -> Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


class StepCarry(NamedTuple):
    """What the scan carries from minibatch to minibatch."""

    params: Params
    opt_state: optax.OptState
    ok: Array  # () bool: every step so far was finite
    loss_sum: Array  # () float32: sum of the good steps' objective values
    bad_step: Array  # () int32: index of the first non-finite step, -1 if none


def start_carry(state: TrainState) -> StepCarry:
    return StepCarry(state.params, state.opt_state, jnp.array(True), jnp.zeros((), jnp.float32),
                     jnp.array(-1, jnp.int32))


def make_step_fn(config: TrainConfig, optimizer: optax.GradientTransformation, *, loss: str,
                 data_parallel: parallel.DataParallel | None = None) -> Callable:
    """The pure minibatch update `step(carry, (i, (xb, yb), key)) -> carry`, the scan body.

    xb (K, B / K, D), yb (K, B / K) or (K, B / K, k): one minibatch of B rows as K = `accumulate`
    microbatches (`gather_batch` cuts it from a resident training set); i: the step's index in
    the epoch; key: its dropout / noise key. A non-finite loss clears `carry.ok` and records
    the step in `carry.bad_step`.

    The gradient is computed under the `config.precision` policy (precision.py). With K > 1
    the microbatches run in an inner scan that sums their gradients into one buffer; their
    mean makes ONE optimizer update, the same update as the whole minibatch at once
    (microbatch j draws dropout / noise from fold_in(key, j)). With `data_parallel` every
    microbatch is split over its devices.
    """
    grad_kwargs = dict(loss=loss, l2=config.l2, activation=config.activation, dropout=config.dropout,
                       input_noise=config.input_noise, train=True, method=config.grad_method,
                       precision=config.precision, **config.activation_options())
    dp = data_parallel

    def grads_of(params: Params, xb: Array, yb: Array, key: Array):  # one (micro)batch (b, D)
        if dp is not None:
            xb, yb = dp.constrain_batch(xb), dp.constrain_batch(yb)
        return policy_loss_and_grad(params, xb, yb, key=key, **grad_kwargs)

    def batch_grads(params: Params, xb: Array, yb: Array, key: Array):  # xb (K, b, D)
        if xb.shape[0] == 1:
            return grads_of(params, xb[0], yb[0], key)

        def micro(acc, inputs):
            j, xm, ym = inputs
            value, grads = grads_of(params, xm, ym, jax.random.fold_in(key, j))
            return (acc[0] + value, jax.tree.map(jnp.add, acc[1], grads)), None

        k = xb.shape[0]
        zero = (jnp.zeros((), jnp.promote_types(params[0].W.dtype, jnp.float32)), jax.tree.map(jnp.zeros_like, params))
        (value, grads), _ = jax.lax.scan(micro, zero, (jnp.arange(k, dtype=jnp.int32), xb, yb))
        return value / k, jax.tree.map(lambda g: g / k, grads)

    def step(carry: StepCarry, inputs) -> StepCarry:
        i, (xb, yb), key = inputs  # (), ((K, b, D), (K, b[, k])), key
        value, grads = batch_grads(carry.params, xb, yb, key)
        updates, new_opt_state = optimizer.update(grads, carry.opt_state, carry.params)
        new_params = optax.apply_updates(carry.params, updates)
        # Only the scalar loss is checked per step (passes over every gradient and param each
        # step cost ~12% of a CPU epoch). A non-finite gradient makes the updated params, and so
        # the next step's loss, non-finite; the epoch's end checks the final params and state.
        good = carry.ok & jnp.isfinite(value)
        return StepCarry(new_params, new_opt_state, good,
                         carry.loss_sum + jnp.where(good, value, 0).astype(jnp.float32),
                         jnp.where(carry.ok & ~good, i, carry.bad_step))

    return step


def gather_batch(x: Array, y: Array, rows: Array, accumulate: int = 1) -> tuple[Array, Array]:
    """Minibatch rows (B,) of a resident training set x (N, D), y (N, ...) as `make_step_fn`'s
    (xb (K, B / K, D), yb (K, B / K, ...)), K = accumulate."""
    rows = rows.reshape(accumulate, rows.shape[0] // accumulate)  # (K, B / K)
    return x[rows], y[rows]


def epoch_plan(key: Array, n_train: int, batch_size: int) -> tuple[Array, Array, Array]:
    """(step index (S,), minibatch rows (S, B), step keys (S,)) of one epoch, S = n_train // batch_size.

    The permutation drops the last n_train mod batch_size rows: the remainder batch.
    """
    steps = n_train // batch_size
    perm_key, step_key = jax.random.split(key)
    perm = jax.random.permutation(perm_key, n_train)[: steps * batch_size].reshape(steps, batch_size)  # (S, B)
    index = jnp.arange(steps, dtype=jnp.int32)  # (S,)
    keys = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(index)  # (S,) one key per step
    return index, perm, keys


def make_epoch_fn(config: TrainConfig, optimizer: optax.GradientTransformation, schedule: optax.Schedule, *,
                  loss: str, n_train: int, feed: str = "resident", jit_kwargs: dict[str, Any] | None = None,
                  data_parallel: parallel.DataParallel | None = None) -> Callable:
    """The jitted `epoch(key, state, x, y) -> (state, EpochStats)`; `state` is donated.

    feed "resident": x (N, D) and y (N,) or (N, k) are the whole training set, already on the
    device; the epoch draws a permutation from `key` and gathers every minibatch there.
    feed "per_process": x (S, K, B / K, D), y (S, K, B / K[, k]) are this epoch's minibatches,
    gathered on the host by `epoch_rows(key, ...)` and sent (`fit` sends each device only its
    rows). Both see the same minibatches in the same order: the permutation drops the remainder
    batch (N mod batch_size examples; every epoch reshuffles, so each example is still used).

    The epoch scans `make_step_fn`'s step over the S = N // batch_size minibatches. Divergence
    is found on the device: a non-finite loss trips a flag carried through the scan (a
    non-finite gradient makes the params, and so the next loss, non-finite), and the final
    params and optimizer state are checked once at the end. The host sees `finite == False`
    once, after the epoch; `fit` then raises TrainingDiverged and saves nothing from that
    epoch, so the last checkpoint stays the last good one.

    `jit_kwargs` go to `jax.jit` (e.g. in_shardings / out_shardings for a data-parallel mesh);
    `data_parallel` splits every minibatch over its mesh (parallel.py).
    """
    batch, accumulate = config.batch_size, config.accumulate
    steps = n_train // batch
    if steps < 1:
        raise ValueError(f"batch_size={batch} is larger than the training set ({n_train} examples)")
    if feed not in ("resident", "per_process"):
        raise ValueError(f"feed must be resident or per_process, got {feed!r}")
    step = make_step_fn(config, optimizer, loss=loss, data_parallel=data_parallel)

    def epoch(key: Array, state: TrainState, x: Array, y: Array) -> tuple[TrainState, EpochStats]:
        index, rows, keys = epoch_plan(key, n_train, batch)  # (S,), (S, B), (S,)

        def resident_step(carry, inputs):  # gather the minibatch from the resident training set
            i, rows_i, key_i = inputs
            return step(carry, (i, gather_batch(x, y, rows_i, accumulate), key_i)), None

        if feed == "resident":
            carry, _ = jax.lax.scan(resident_step, start_carry(state), (index, rows, keys))
        else:  # the host gathered the minibatches; `rows` is unused (and compiled away)
            carry, _ = jax.lax.scan(lambda c, inputs: (step(c, inputs), None), start_carry(state),
                                    (index, (x, y), keys))
        end_finite = _all_finite(carry.params) & _all_finite(carry.opt_state)  # the last update, too
        carry = carry._replace(ok=carry.ok & end_finite,
                               bad_step=jnp.where(carry.ok & ~end_finite, steps - 1, carry.bad_step))
        n_good = jnp.where(carry.ok, steps, carry.bad_step)  # steps with a finite loss this epoch
        new_step = state.step + n_good
        stats = EpochStats(carry.loss_sum / jnp.maximum(n_good, 1), carry.ok, carry.bad_step,
                           jnp.asarray(schedule(new_step - 1), jnp.float32))
        return TrainState(carry.params, carry.opt_state, new_step), stats

    return jax.jit(epoch, donate_argnums=(1,), **(jit_kwargs or {}))


@functools.lru_cache(maxsize=16)
def _epoch_rows_fn(n_train: int, batch_size: int, accumulate: int) -> Callable:
    return jax.jit(lambda key: epoch_plan(key, n_train, batch_size)[1].reshape(
        n_train // batch_size, accumulate, batch_size // accumulate))


def epoch_rows(key: Array, n_train: int, batch_size: int, accumulate: int = 1) -> Array:
    """The training-set rows (S, K, B / K) of an epoch's minibatches, K = accumulate: the same
    permutation the resident epoch draws on the device (`epoch_plan`), for a host that feeds."""
    return _epoch_rows_fn(n_train, batch_size, accumulate)(key)


def resolve_feed(config: TrainConfig) -> str:
    """`config.data_feed` with auto resolved: resident in one process, per_process with several."""
    if config.data_feed != "auto":
        return config.data_feed
    return "per_process" if jax.process_count() > 1 else "resident"


# --- compiled programs, cached across fits -----------------------------------------------------
# Fields that do not change the compiled init / epoch programs: the data enters as arrays and
# the keys as arguments, the rest steers the host loop.
_HOST_ONLY_FIELDS = ("dataset", "data_dir", "download", "n_samples", "val_fraction", "standardize", "data_seed",
                     "label_column", "seed", "eval_every", "eval_train", "track_activations", "eval_batch_size", "patience", "min_delta", "restore_best",
                     "checkpoint_every", "keep_checkpoints", "out_dir", "data_feed")


def program_config(config: TrainConfig) -> TrainConfig:
    """`config` with every field that does not change the compiled programs set to its default,
    so fits that differ only in those (seed sweeps, a resume with more epochs) share compiles."""
    fields = TrainConfig.__dataclass_fields__
    reset: dict[str, Any] = {name: fields[name].default for name in _HOST_ONLY_FIELDS}
    if config.schedule not in ("cosine", "warmup_cosine"):  # the only schedules that read `epochs`
        reset["epochs"] = max(1, config.warmup_epochs)
    return dataclasses.replace(config, **reset)


@functools.lru_cache(maxsize=16)
def _programs(config: TrainConfig, loss: str, n_train: int, sizes: tuple[int, ...], x_spec, y_spec,
              x64: bool, feed: str) -> tuple[Callable, Callable, float]:
    """(jitted init(key) -> TrainState, compiled epoch, its compile seconds) for a program config.

    On several devices (`config.devices`) both take and return replicated global arrays; the
    epoch's data is replicated (feed resident) or split over the devices (per_process)."""
    steps_per_epoch = n_train // config.batch_size
    schedule, optimizer = build_optimizer(config, sizes, steps_per_epoch)
    dp = parallel.data_parallel(config.devices)
    jit_kwargs = None
    if dp is not None:
        data = dp.replicated if feed == "resident" else dp.batch_sharding(axis=2)  # (S, K, B / K, ...)
        jit_kwargs = dict(in_shardings=(dp.replicated, dp.replicated, data, data), out_shardings=dp.replicated)
    init = jax.jit(lambda key: init_state(key, config, sizes, optimizer), **(dp.jit_kwargs(1) if dp else {}))
    epoch_fn = make_epoch_fn(config, optimizer, schedule, loss=loss, n_train=n_train, feed=feed, data_parallel=dp,
                             jit_kwargs=jit_kwargs)
    key_spec = jax.eval_shape(lambda: jax.random.key(0))
    t0 = time.perf_counter()
    compiled = epoch_fn.lower(key_spec, abstract_state(config, sizes, optimizer), x_spec, y_spec).compile()
    return init, compiled, time.perf_counter() - t0


# --- evaluation and prediction ----------------------------------------------------------------
class EvalSet(NamedTuple):
    """A data set of n examples laid out for evaluation in nb = ceil(n / B) batches of B rows.

    Resident rows: x (N, D), y (N,) or (N, k) on the device and rows (nb, B) int32; batch i is
    x[rows[i]], so the training set already on the device is evaluated without a second copy.
    Batched (rows None): x (nb, B, D), y (nb, B[, k]), split over the devices along B when each
    process fed its rows. Either way the positions >= n of the last batch repeat row 0 (valid
    values, no NaN risk) and are masked out, so means are exact.
    """

    x: Array
    y: Array
    rows: Array | None


def eval_rows(n: int, batch_size: int, multiple: int = 1) -> np.ndarray:
    """Rows (nb, B) of an evaluation pass over n examples: B = min(batch_size, n) rounded up to
    a multiple of `multiple` (the data-parallel devices), the last batch padded with row 0."""
    b = -(-min(batch_size, n) // multiple) * multiple
    nb = -(-n // b)
    return np.concatenate([np.arange(n), np.zeros(nb * b - n, np.int64)]).astype(np.int32).reshape(nb, b)


def feed_rows(dp: parallel.DataParallel | None, arrays, rows: np.ndarray):
    """Device arrays `a[rows]` (*rows.shape, ...) for host arrays `a`; on a data-parallel mesh
    split along rows' last axis, each process sending only its own rows (`DataParallel.feed`)."""
    if dp is None:
        return place(jax.tree.map(lambda a: np.asarray(a)[rows], arrays))
    return dp.feed(arrays, rows)


def make_eval_set(x: np.ndarray, y: np.ndarray, batch_size: int, *, dp: parallel.DataParallel | None = None,
                  feed: str = "resident", resident: tuple[Array, Array] | None = None) -> EvalSet:
    """The EvalSet of host arrays x (n, D), y (n, ...): batched and fed per process (feed
    per_process), else resident rows, reusing `resident` (x, y already on the device) if given."""
    rows = eval_rows(x.shape[0], batch_size, dp.size if dp is not None else 1)
    if feed == "per_process":
        return EvalSet(*feed_rows(dp, (x, y), rows), None)
    put = place if dp is None else dp.replicate
    xd, yd = resident if resident is not None else put((x, y))
    return EvalSet(xd, yd, put(rows))


def scan_eval_set(body: Callable, init, data: EvalSet, n: int, dp: parallel.DataParallel | None = None):
    """Fold `body(acc, x_i (B, D), y_i (B, ...), mask_i (B,) bool) -> acc` over the batches of
    `data` (inside jit); with `dp` every batch is split over its devices."""
    batches = data.rows if data.rows is not None else (data.x, data.y)
    nb, b = jax.tree.leaves(batches)[0].shape[:2]

    def fold(acc, inputs):
        i, batch = inputs
        xi, yi = (data.x[batch], data.y[batch]) if data.rows is not None else batch
        if dp is not None:
            xi, yi = dp.constrain_batch(xi), dp.constrain_batch(yi)
        return body(acc, xi, yi, i * b + jnp.arange(b) < n), None

    return jax.lax.scan(fold, init, (jnp.arange(nb), batches))[0]


@functools.lru_cache(maxsize=64)
def _eval_fn(loss: str, activation: str, options: tuple, classification: bool,
             dp: parallel.DataParallel | None = None) -> Callable:
    loss_fn = get_loss(loss)
    opts = dict(options)

    def sums(params, data: EvalSet, n: int):
        def body(acc, x, y, m):  # x (B, D), y (B[, k]), m (B,)
            scores = mlp_apply(params, x, activation=activation, **opts)  # (B, d_out)
            per = loss_fn.per_example(scores, y)  # (B,)
            if classification:
                pred = (scores[:, 0] > 0).astype(y.dtype) if scores.shape[1] == 1 else jnp.argmax(scores, axis=1)
                metric = (pred == y).astype(jnp.float32)
            else:
                metric = jnp.mean((scores - y.reshape(scores.shape)) ** 2, axis=1)
            return acc[0] + jnp.sum(jnp.where(m, per, 0)), acc[1] + jnp.sum(jnp.where(m, metric, 0))

        zero = jnp.zeros((), params[0].W.dtype)
        return scan_eval_set(body, (zero, zero), data, n, dp)

    return jax.jit(sums, static_argnums=(2,))


def evaluate(params: Params, data, *, config: TrainConfig | None = None, loss: str | None = None,
             activation: str | None = None, batch_size: int | None = None,
             **activation_options) -> dict[str, float]:
    """Exact mean loss over all examples of `data`, plus accuracy (classification) or mse
    (regression, of the raw scores). Jitted and batched; the last batch is padded and masked.

    Settings come from `config` unless given explicitly (loss defaults to auto from the data).
    """
    config = config or TrainConfig()
    loss = loss or resolve_loss(config, data)
    activation = activation or config.activation
    options = activation_options or (config.activation_options() if activation == config.activation else {})
    eval_set = make_eval_set(*train_arrays(data, params[0].W.dtype), batch_size or config.eval_batch_size)
    return _evaluate(params, eval_set, len(data), loss, activation, options, data.num_classes is not None)


def _evaluate(params, data: EvalSet, n, loss, activation, options, classification, dp=None) -> dict[str, float]:
    fn = _eval_fn(get_loss(loss).name, activation, tuple(sorted(options.items())), classification, dp)
    loss_sum, metric_sum = jax.device_get(parallel.to_local(fn(params, data, n)))
    return {"loss": float(loss_sum) / n, ("accuracy" if classification else "mse"): float(metric_sum) / n}


@functools.lru_cache(maxsize=16)
def _stats_fn(loss: str, l2: float, activation: str, options: tuple,
              dp: parallel.DataParallel | None = None) -> Callable:
    """Jitted `track_activations` stats over an EvalSet: dead / saturation fractions (L,) and
    grad norms (L + 1,), one manual forward and backward pass per batch (metrics.py)."""
    opts = dict(options)

    def stats(params, data: EvalSet, n: int):
        def body(acc, x, y, m):
            return metrics_lib.dataset_stats_update(acc, params, x, y, m, n, loss=loss, activation=activation, **opts)

        acc = scan_eval_set(body, metrics_lib.dataset_stats_start(params), data, n, dp)
        return metrics_lib.dataset_stats_result(acc, params, l2=l2, activation=activation)

    return jax.jit(stats, static_argnums=(2,))


@functools.lru_cache(maxsize=64)
def _predict_fn(activation: str, options: tuple) -> Callable:
    opts = dict(options)

    @jax.jit
    def scores(params, xb):  # (nb, B, D) -> (nb, B, d_out)
        return jax.lax.map(lambda x: mlp_apply(params, x, activation=activation, **opts), xb)

    return scores


def predict(params: Params, x, *, activation: str = "relu", batch_size: int = 1024,
            **activation_options) -> Array:
    """Scores (N, d_out) for inputs x (N, d_in), batched and jitted (train=False: no dropout)."""
    get_activation(activation, **activation_options)  # fail early on bad options
    x = np.asarray(x, dtype=params[0].W.dtype)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, d_in), got shape {x.shape}")
    n = x.shape[0]
    xb, _, _ = eval_batches(x, np.zeros(n, np.int32), batch_size)
    out = _predict_fn(activation, tuple(sorted(activation_options.items())))(params, place(xb))
    return out.reshape(-1, out.shape[-1])[:n]  # (N, d_out)


# --- the loop -------------------------------------------------------------------------------------
def _copy(tree):
    """A device copy that survives donation of the original."""
    return jax.tree.map(jnp.copy, tree)


# Settings that may differ between the processes of one run: where each host finds its data and
# the path by which it reaches the shared run directory.
_PER_HOST_FIELDS = ("data_dir", "download", "out_dir")


def _check_processes_agree(config: TrainConfig, **splits) -> None:
    """With several processes: ValueError unless all hold the same config and data sets."""
    if jax.process_count() == 1:
        return
    shared = {k: v for k, v in config.to_dict().items() if k not in _PER_HOST_FIELDS}
    things = {"config": json.dumps(shared, sort_keys=True).encode()}
    for name, data in splits.items():
        if data is not None:
            things[f"{name} x"], things[f"{name} y"] = np.asarray(data.x), np.asarray(data.y)
    parallel.assert_same_everywhere(**things)


def check_data(config: TrainConfig, train, val=None, test=None) -> str:
    """The checks `fit` makes before training (the CLI runs them before writing a run dir).

    Returns the resolved loss name; raises ValueError naming the setting that does not fit, or,
    with several processes, what differs between them (the config and every data set given,
    compared by CRC-32, first, so that no process fails a check its peers pass and leaves them
    waiting).
    """
    _check_processes_agree(config, train=train, val=val, test=test)
    loss = resolve_loss(config, train)
    if config.batch_size > len(train):
        raise ValueError(f"batch_size must be <= the number of training examples ({len(train)}), "
                         f"got {config.batch_size}")
    if config.patience and val is None:
        raise ValueError("patience (early stopping) needs validation data: set val_fraction > 0")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs 64-bit JAX: set JAX_ENABLE_X64=1 or use jax.enable_x64()")
    dp = parallel.data_parallel(config.devices)  # ValueError: more devices than there are
    parallel.check_batch(config.batch_size, dp.size if dp else 1, config.accumulate)
    return loss


def fit(config: TrainConfig, train, val=None, test=None, *, callbacks: Sequence[Callback] = (),
        checkpointer=None, resume: bool = False) -> tuple[Params, History]:
    """Train an MLP on `train` (a jaxmlp.data.Dataset); returns (params, history).

    val: evaluated every `eval_every` epochs (and after the last); drives early stopping.
    test: evaluated once at the end (history.final["test"]).
    checkpointer: a `jaxmlp.checkpoint.Checkpointer`; when given, a checkpoint is saved every
        `checkpoint_every` epochs and after the last, and `resume=True` continues from its
        latest checkpoint (bit-identical to an uninterrupted run on the same machine).
    callbacks: `Callback`s for progress display and logging; fit itself never prints.

    Raises ValueError for a batch size larger than the training set or settings that do not fit
    the data, and TrainingDiverged (nothing is saved for the diverged epoch).
    """
    loss = check_data(config, train, val, test)
    n_train = len(train)
    classification = train.num_classes is not None
    sizes = model_sizes(config, train, loss)
    steps_per_epoch = n_train // config.batch_size
    dtype = np.dtype(config.dtype)
    dp = parallel.data_parallel(config.devices)  # None: one device, the plain program
    feed = resolve_feed(config)
    put = place if dp is None else dp.replicate  # params, keys (and a resident training set): on every device
    x_host, y_host = train_arrays(train, dtype)
    if feed == "resident":  # the whole training set on every device, once
        resident = put((x_host, y_host))
        x_spec, y_spec = (jax.ShapeDtypeStruct(a.shape, a.dtype) for a in resident)
    else:  # an epoch's minibatches (S, K, B / K, ...), fed by every process each epoch
        resident = None
        lead = (steps_per_epoch, config.accumulate, config.batch_size // config.accumulate)
        x_spec, y_spec = (jax.ShapeDtypeStruct(lead + a.shape[1:], a.dtype) for a in (x_host, y_host))

    def eval_set(x, y, resident=None) -> EvalSet:
        return make_eval_set(x, y, config.eval_batch_size, dp=dp, feed=feed, resident=resident)

    wants_train_eval = config.eval_train or config.track_activations
    train_eval = eval_set(x_host, y_host, resident) if wants_train_eval else None
    val_eval = None if val is None else eval_set(*train_arrays(val, dtype))
    t0 = time.perf_counter()
    init, compiled, _ = _programs(program_config(config), loss, n_train, sizes, x_spec, y_spec,
                                  bool(jax.config.jax_enable_x64), feed)
    compile_seconds = time.perf_counter() - t0  # ~0 when an earlier fit compiled the same programs
    init_key, train_key = run_keys(config.seed)

    history, start_epoch, best_params = History(), 0, None
    if resume and checkpointer is not None and checkpointer.latest_epoch() is not None:
        saved_sizes = tuple(checkpointer.read_meta()["sizes"])
        if saved_sizes != sizes:
            raise ValueError(f"the checkpoint's layer sizes {saved_sizes} do not fit this data and config {sizes}")
        _, optimizer = build_optimizer(config, sizes, steps_per_epoch)
        abstract = abstract_state(config, sizes, optimizer)
        abstract = abstract if dp is None else dp.abstract(abstract)  # restore replicated
        restored = checkpointer.restore(abstract, abstract_best=abstract.params)
        state, meta = restored.state, restored.meta
        train_key = jax.random.wrap_key_data(restored.key_data)
        history = History.from_dict(meta["history"])
        start_epoch = int(meta["epoch"])
        best_params = restored.best
    else:
        state = init(put(init_key))
    if history.stopped_early:
        start_epoch = config.epochs  # an early-stopped run is complete
    history.compile_seconds = compile_seconds

    def save(epoch: int) -> None:
        if checkpointer is None:
            return
        meta = {"epoch": epoch, "sizes": list(sizes), "loss": loss, "steps_per_epoch": steps_per_epoch,
                "config": config.to_dict(), "history": history.to_dict()}
        checkpointer.save(epoch, state, jax.random.key_data(train_key), meta, best=best_params)

    info = dict(config=config, sizes=sizes, loss=loss, n_train=n_train, steps_per_epoch=steps_per_epoch,
                start_epoch=start_epoch, compile_seconds=history.compile_seconds, history=history,
                devices=dp.size if dp else 1, processes=jax.process_count(), data_feed=feed)
    for cb in callbacks:
        cb.on_train_begin(info)

    def fed_epoch(rows) -> tuple[Array, Array]:  # host: this process's rows of an epoch's minibatches -> devices
        return feed_rows(dp, (x_host, y_host), jax.device_get(rows))

    def next_rows(epoch: int):
        return epoch_rows(epoch_key(train_key, epoch), n_train, config.batch_size, config.accumulate)

    upcoming = fed_epoch(next_rows(start_epoch)) if feed == "per_process" and start_epoch < config.epochs else None
    opts = config.activation_options()
    for epoch in range(start_epoch, config.epochs):
        t = time.perf_counter()
        last = epoch + 1 == config.epochs
        if feed == "resident":
            data = resident
        else:  # the next epoch's rows are drawn before this epoch is queued, so they are ready at once...
            data, rows_after = upcoming, None if last else next_rows(epoch + 1)
        state, stats = compiled(put(epoch_key(train_key, epoch)), state, *data)
        if feed == "per_process":  # ...and gathered and sent while this epoch runs (2 epochs on the devices)
            del data
            upcoming = None if last else fed_epoch(rows_after)
        stats = jax.device_get(stats)
        seconds = time.perf_counter() - t
        if not stats.finite:
            raise TrainingDiverged(epoch + 1, int(stats.bad_step))
        record = {"epoch": epoch + 1, "train_loss": float(stats.loss), "lr": float(stats.lr),
                  "seconds": seconds, "samples_per_sec": steps_per_epoch * config.batch_size / seconds,
                  "train_accuracy": None, "train_mse": None, "val_loss": None, "val_accuracy": None, "val_mse": None}
        eval_due = (epoch + 1) % config.eval_every == 0 or last
        stop = False
        if config.eval_train and eval_due:  # end-of-epoch params on the whole training set
            metrics = _evaluate(state.params, train_eval, n_train, loss, config.activation, opts, classification, dp)
            record.update({"train_" + k: v for k, v in metrics.items() if k != "loss"})
        if config.track_activations and eval_due:
            stats_fn = _stats_fn(loss, config.l2, config.activation, tuple(sorted(opts.items())), dp)
            record.update({k: np.asarray(v).tolist() for k, v in
                           jax.device_get(parallel.to_local(stats_fn(state.params, train_eval, n_train))).items()})
        if val_eval is not None and eval_due:
            metrics = _evaluate(state.params, val_eval, len(val), loss, config.activation, opts, classification, dp)
            record.update({"val_" + k: v for k, v in metrics.items()})
            if history.best_val_loss is None or metrics["loss"] < history.best_val_loss - config.min_delta:
                history.best_val_loss, history.best_epoch = metrics["loss"], epoch + 1
                if config.restore_best:
                    best_params = _copy(state.params)
            elif config.patience and epoch + 1 - history.best_epoch >= config.patience:
                stop = history.stopped_early = True
        history.append(record)
        for cb in callbacks:
            cb.on_epoch_end(record)
        if stop or last or (config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0):
            save(epoch + 1)
        if stop:
            break

    final_params = best_params if (config.restore_best and best_params is not None) else state.params
    history.final = {}
    eval_sets = {"train": (train, train_eval), "val": (val, val_eval), "test": (test, None)}
    for name, (data, prepared) in eval_sets.items():
        if data is not None:
            prepared = eval_set(*train_arrays(data, dtype)) if prepared is None else prepared
            history.final[name] = _evaluate(final_params, prepared, len(data), loss, config.activation, opts,
                                            classification, dp)
    for cb in callbacks:
        cb.on_train_end(history)
    return parallel.to_local(final_params), history
