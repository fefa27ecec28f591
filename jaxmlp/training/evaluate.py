"""Exact evaluation over whole data sets: `host_arrays` (a split as the run's arrays), `EvalSet`
(a data set cut into batches of one fixed shape), `Evaluator` (a run's metrics and activation
statistics over EvalSets), and the public `evaluate`.

Every split of a run (train, val, test) is cut into batches of the same B rows (eval_batch_size,
or the training set's size when smaller, rounded up to the devices); the last batch is padded
with row 0 and its padding masked out
(batching.pad_rows), so means are exact. A host loop runs ONE compiled per-batch program over
the batches, carrying the sums on the device: its shapes do not depend on the split, so a run
compiles its evaluation once (and not at all when an earlier run or process compiled it). On a
data-parallel mesh every batch is split over the devices.
"""
from __future__ import annotations

import collections
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp import dataset_metrics
from jaxmlp import parallel
from jaxmlp.activations import Activation, get_activation
from jaxmlp.batching import batch_rows, pad_rows
from jaxmlp.config import TrainConfig
from jaxmlp.losses import Loss, get_loss, loss_for, predict_classes
from jaxmlp.mlp import Params, mlp_apply
from jaxmlp.training.feed import PREFETCH, array_reader, feed_rows, host_arrays, prefetched, row_reader
from jaxmlp.training.plan import Plan
from jaxmlp.training.programs import cached, compiled, program
from jaxmlp.types import Array

class EvalSet(NamedTuple):
    """A data set cut into nb batches of B rows, each with its count of real rows.

    Batched (source None): batches are (x_i (B, D), y_i (B,) or (B, k), valid_i () int32) on
    the devices, x_i and y_i split over them along B when each process fed its rows.
    Resident: the rows stay in source = (x (N, D), y (N, ...)), the training set already on the
    devices, and batches are (rows_i (B,) int32, valid_i): a batch is gathered there when it is
    evaluated, so the training set is scored without a second copy.
    The real rows of batch i come first; the rest repeat row 0.
    """

    batches: tuple[tuple[Array, ...], ...]
    source: tuple[Array, Array] | None = None


def eval_batch_rows(eval_batch_size: int, n_train: int, devices: int = 1) -> int:
    """B, the rows of every evaluation batch of a run: eval_batch_size, or the training set's size
    when smaller, rounded up to a multiple of the devices."""
    return batch_rows(n_train, eval_batch_size, devices)


def make_eval_set(x: np.ndarray, y: np.ndarray, batch_size: int, *, dp: parallel.DataParallel | None = None,
                  resident: tuple[Array, Array] | None = None) -> EvalSet:
    """The EvalSet of host arrays x (n, D), y (n, ...) in batches of B = batch_size rounded up to
    the devices (whatever n): batched and fed per process, or rows into `resident` (x, y
    already on the devices) when given."""
    rows, valid = _eval_rows(x.shape[0], batch_size, dp)
    if resident is not None:
        return EvalSet(tuple(zip((jax.device_put if dp is None else dp.replicate)(list(rows)), valid)), resident)
    read = array_reader((x, y))
    return EvalSet(tuple((*feed_rows(dp, read, r), v) for r, v in zip(rows, valid)))


def streamed_eval_set(read: Callable, n: int, batch_size: int, dp: parallel.DataParallel | None = None,
                      place: Callable | None = None) -> EvalSet:
    """The EvalSet of n rows that `read(rows) -> (x, y)` gathers from disk (feed.row_reader), in
    batches laid out as make_eval_set's, read only while they are evaluated (StreamedBatches).
    place(tree) -> the tree on the devices: every row of a batch placed by it, instead of dp's
    feed of each process's own rows (a sweep's models, on every device, share each batch)."""
    rows, valid = _eval_rows(n, batch_size, dp, place)
    return EvalSet(StreamedBatches(read, rows, valid, dp, place))


def _eval_rows(n: int, batch_size: int, dp: parallel.DataParallel | None, place: Callable | None = None
               ) -> tuple[np.ndarray, list]:
    """(rows (nb, B), each batch's count of real rows on the devices) of an EvalSet of n rows."""
    rows, mask = pad_rows(n, batch_size, dp.size if dp is not None else 1, shrink=False)  # (nb, B)
    put = place or (jax.device_put if dp is None else dp.replicate)
    return rows, [put(np.int32(v)) for v in mask.sum(axis=1)]


class StreamedBatches:
    """An EvalSet's batches read from disk as they are evaluated (data.streamed), each gathered
    and sent while the one before it runs: a data set larger than memory is scored exactly, with
    at most PREFETCH + 1 batches on the devices. Iterable any number of times."""

    def __init__(self, read: Callable, rows: np.ndarray, valid: list, dp: parallel.DataParallel | None,
                 place: Callable | None = None):
        self.read, self.rows, self.valid, self.dp, self.place = read, rows, valid, dp, place  # rows (nb, B)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return prefetched(lambda i: (*feed_rows(self.dp, self.read, self.rows[i], self.place), self.valid[i]),
                          [(i,) for i in range(len(self.rows))])


def fold_batches(program: Callable, acc, params: Params, data: EvalSet, *extra, gather: Callable | None = None):
    """Run `program(params, acc, x_i, y_i, valid_i, *extra) -> acc` over the batches of `data`
    from the host; a resident EvalSet's batches are gathered by `gather(x, y, rows_i)` first. Of
    batches read from disk (StreamedBatches) at most PREFETCH are queued on the devices: dispatch
    is asynchronous, and they would otherwise be read and queued as fast as the host can."""
    queued, streamed = collections.deque(), isinstance(data.batches, StreamedBatches)
    for batch in data.batches:
        xi, yi, valid = (*gather(*data.source, batch[0]), batch[1]) if data.source is not None else batch
        acc = program(params, acc, xi, yi, valid, *extra)
        queued.extend([acc] if streamed else [])
        if len(queued) > PREFETCH:
            jax.block_until_ready(queued.popleft())
    return acc


def _batch_jit(fn: Callable, dp: parallel.DataParallel | None, n_args: int):
    """jit of fn(params, acc, x (B, D), y (B, ...), valid, ...) -> acc: on a mesh x and y split
    over the devices along B, everything else replicated."""
    if dp is None:
        return jax.jit(fn)
    rep, split = dp.replicated, dp.batch_sharding()
    return jax.jit(fn, in_shardings=(rep, rep, split, split) + (rep,) * (n_args - 4), out_shardings=rep)


def batch_metrics_step(loss_fn: Loss, act: Activation, options: tuple, classification: bool,
                       dp: parallel.DataParallel | None = None) -> Callable:
    """Jitted (params, acc, x (B, D), y (B[, k]), valid) -> acc + (sum of per-example losses, sum
    of correct / squared errors) over the batch's first `valid` rows; `options`: the activation's
    (they name the program, whose key `act` cannot be). Built once per key (programs.cached)."""
    return cached(("metrics_step", loss_fn.name, act.name, options, classification, dp),
                  lambda: _batch_jit(metrics_step(loss_fn, act, classification), dp, 5))


def metrics_step(loss_fn: Loss, act: Activation, classification: bool) -> Callable:
    """The pure per-batch step of `batch_metrics_step` (a sweep vmaps it over its models)."""
    def eval_batch(params, acc, x, y, valid):
        real = jnp.arange(x.shape[0]) < valid  # (B,)
        scores = mlp_apply(params, x, activation=act)  # (B, d_out)
        per = loss_fn.per_example(scores, y)  # (B,)
        if classification:
            metric = (predict_classes(scores).astype(y.dtype) == y).astype(jnp.float32)
        else:
            metric = jnp.mean((scores - y.reshape(scores.shape)) ** 2, axis=1)
        return acc[0] + jnp.sum(jnp.where(real, per, 0)), acc[1] + jnp.sum(jnp.where(real, metric, 0))

    return eval_batch


def gather_rows_fn(dp: parallel.DataParallel | None = None) -> Callable:
    """Jitted (x (N, D), y (N, ...), rows (B,)) -> (x[rows], y[rows]), split over the devices along B."""
    def gather_rows(x, y, rows):
        return x[rows], y[rows]

    if dp is None:
        return jax.jit(gather_rows)
    split = dp.batch_sharding()
    return jax.jit(gather_rows, in_shardings=(dp.replicated,) * 3, out_shardings=(split, split))


@program("activation_stats")
def _activation_stats_fns(loss: str, l2: float, activation: str, options: tuple,
                          dp: parallel.DataParallel | None = None) -> tuple[Callable, Callable, Callable]:
    """Jitted `track_activations` passes (start(params), step(params, acc, x, y, valid, n),
    result(params, acc)): dead / saturation fractions (L,) and grad norms (L + 1,) from one
    manual forward and backward pass per batch (dataset_metrics.py)."""
    opts = dict(options)

    def step(params, acc, x, y, valid, n):
        real = jnp.arange(x.shape[0]) < valid
        return dataset_metrics.dataset_stats_update(acc, params, x, y, real, n, loss=loss, activation=activation, **opts)

    def result(params, acc):
        return dataset_metrics.dataset_stats_result(acc, params, l2=l2, activation=activation)

    replicated = dp.jit_kwargs(1) if dp else {}
    return (jax.jit(dataset_metrics.dataset_stats_start, **replicated), _batch_jit(step, dp, 6),
            jax.jit(result, **(dp.jit_kwargs(2) if dp else {})))


def _metrics(sums, n: int, classification: bool) -> dict[str, float]:
    """The metrics of (loss sum, metric sum) on the host over n examples."""
    loss_sum, metric_sum = sums
    return {"loss": float(loss_sum) / n, ("accuracy" if classification else "mse"): float(metric_sum) / n}


class Evaluator:
    """A run's exact evaluations: `metrics` (loss and accuracy or mse) and `activation_stats`
    (track_activations) of params over an EvalSet of n examples laid out by `eval_set`.

    `epoch_columns` gives an epoch record's evaluation columns with one transfer to the host.
    The metrics program is compiled when the Evaluator is made, the gather of a resident set
    when its EvalSet is: `compile_seconds` sums both (~0 when this process or the persistent
    compilation cache already holds them). track_activations' programs compile on first use.
    """

    def __init__(self, plan: Plan):
        self.plan, self.options = plan, tuple(sorted(plan.config.activation_options().items()))
        c, dp, spec = plan.config, plan.data_parallel, plan.spec
        self.batch_size = eval_batch_rows(c.eval_batch_size, spec.n_train, plan.devices)
        self.dtype = np.dtype(c.dtype)
        split, self._replicated = (dp.batch_sharding(), dp.replicated) if dp else (None, None)
        y_dtype = np.dtype(np.int32) if spec.classification else self.dtype
        x = jax.ShapeDtypeStruct((self.batch_size, spec.sizes[0]), self.dtype, sharding=split)
        y = jax.ShapeDtypeStruct((self.batch_size, *spec.target_shape), y_dtype, sharding=split)
        valid = jax.ShapeDtypeStruct((), np.int32, sharding=self._replicated)
        self._zero = plan.place(np.zeros((), self.dtype))
        self.compile_seconds = 0.0
        self._gather = None
        step = _batch_jit(metrics_step(plan.loss_fn, plan.activation, spec.classification), dp, 5)
        self._step = self._compile(("eval_metrics", spec.loss, c.activation, self.options, spec.classification, dp),
                                   step, plan.abstract_state().params, (self._zero, self._zero), x, y, valid)

    def _compile(self, key: tuple, jitted: Callable, *args) -> Callable:
        t0 = time.perf_counter()
        program = compiled(key, jitted, *args)
        self.compile_seconds += time.perf_counter() - t0
        return program

    def eval_set(self, data, resident: tuple[Array, Array] | None = None) -> tuple[EvalSet, int]:
        """(EvalSet, n) of a Dataset, laid out for this run's devices; rows into `resident` (the
        training set on the devices, x (N, D), y (N, ...)) when given."""
        dp = self.plan.data_parallel
        if hasattr(data, "rows"):  # on disk: read batch by batch while evaluated
            return streamed_eval_set(row_reader(data, self.dtype), len(data), self.batch_size, dp), len(data)
        x, y = host_arrays(data, self.dtype)
        if resident is not None and self._gather is None:
            rows = jax.ShapeDtypeStruct((self.batch_size,), np.int32, sharding=self._replicated)
            self._gather = self._compile(("eval_gather", dp), gather_rows_fn(dp), *resident, rows)
        return make_eval_set(x, y, self.batch_size, dp=dp, resident=resident), len(data)

    def metrics(self, params, data: EvalSet, n: int) -> dict[str, float]:
        """Loss and accuracy (or mse) of params over the n examples of `data`."""
        return _metrics(jax.device_get(parallel.to_local(self._sums(params, data))), n, self.plan.spec.classification)

    def epoch_columns(self, params, train: tuple[EvalSet, int] | None, val: tuple[EvalSet, int] | None
                      ) -> dict[str, float | list[float]]:
        """An epoch record's evaluation columns: train_ metrics but the loss (eval_train) and the
        activation statistics (track_activations) over `train`, val_ metrics over `val`; every
        number crosses to the host in one transfer."""
        c, on_device = self.plan.config, {}
        if c.eval_train:  # end-of-epoch params on the whole training set
            on_device["train"] = self._sums(params, train[0])
        if c.track_activations:  # its programs compile on first use
            start, step, result = _activation_stats_fns(self.plan.loss, c.l2, c.activation, self.options,
                                                        self.plan.data_parallel)
            count = self.plan.place(np.asarray(train[1], self.dtype))
            on_device["activations"] = result(params, fold_batches(step, start(params), params, train[0], count,
                                                                   gather=self._gather))
        if val is not None:
            on_device["val"] = self._sums(params, val[0])
        host, classification = jax.device_get(parallel.to_local(on_device)), self.plan.spec.classification
        columns: dict[str, float | list[float]] = {}
        if "train" in host:
            columns.update({"train_" + k: v for k, v in _metrics(host["train"], train[1], classification).items()
                            if k != "loss"})
        columns.update({k: np.asarray(v).tolist() for k, v in host.get("activations", {}).items()})
        if "val" in host:
            columns.update({"val_" + k: v for k, v in _metrics(host["val"], val[1], classification).items()})
        return columns

    def _sums(self, params, data: EvalSet):
        """(loss sum, metric sum) of params over `data`, on the devices."""
        return fold_batches(self._step, (self._zero, self._zero), params, data, gather=self._gather)


def evaluate(params: Params, data, *, config: TrainConfig | None = None, loss: str | None = None,
             activation: str | None = None, batch_size: int | None = None,
             **activation_options) -> dict[str, float]:
    """Exact mean loss over all examples of `data`, plus accuracy (classification) or mse
    (regression, of the raw scores). Jitted and batched; the last batch is padded and masked.
    Every data set is cut into batches of the same `batch_size` rows, so one compiled program
    serves them all.

    Settings come from `config` unless given explicitly (loss defaults to auto from the data).
    """
    config = config or TrainConfig()
    loss_fn = get_loss(loss) if loss else loss_for(config.loss, data.num_classes, data.name)
    activation = activation or config.activation
    options = activation_options or (config.activation_options() if activation == config.activation else {})
    classification = data.num_classes is not None
    step = batch_metrics_step(loss_fn, get_activation(activation, **options), tuple(sorted(options.items())),
                              classification)
    dtype, batch_size = params[0].W.dtype, batch_size or config.eval_batch_size
    eval_set = streamed_eval_set(row_reader(data, dtype), len(data), batch_size) if hasattr(data, "rows") else \
        make_eval_set(*host_arrays(data, dtype), batch_size)
    zero = jax.device_put(np.zeros((), params[0].W.dtype))
    return _metrics(fold_batches(step, (zero, zero), params, eval_set), len(data), classification)
