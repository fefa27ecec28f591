"""Where an epoch's training data comes from: `Feeder`, resident or fed per process.

- resident: the whole training set is placed on every device once; each epoch gathers its
  minibatches there, so nothing crosses the host per epoch.
- per_process: each process gathers on the host only its own rows of every minibatch of the
  next epoch (the same permutation the device would draw, `epoch.epoch_order`) and sends them
  while the current epoch runs, so a device holds about 2 * N / devices training rows.

`auto` (plan.plan_of) is resident in one process and per_process with several.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
from typing import Callable, Iterable, Iterator, NamedTuple

import jax
import numpy as np

from jaxmlp import parallel
from jaxmlp.training.epoch import epoch_order
from jaxmlp.training.plan import Plan
from jaxmlp.training.programs import cached
from jaxmlp.training.state import epoch_key
from jaxmlp.types import Array

PREFETCH = 2  # what `prefetched` gathers ahead of the one in use: one being sent, one ready


def feed_rows(dp: parallel.DataParallel | None, read: Callable, rows: np.ndarray, place: Callable | None = None):
    """Device arrays of `read(rows)` (a tree of host arrays (*rows.shape, ...)); on a
    data-parallel mesh split along rows' last axis, each process reading and sending only its
    own rows (`DataParallel.feed`). Given `place(tree) -> the tree on the devices`, every row is
    read and placed by it instead (a sweep's models, on every device, share each batch)."""
    if place is not None:
        return place(read(rows))
    if dp is None:
        return jax.device_put(read(rows))
    return dp.feed(read, rows)


def prefetched(make: Callable[..., tuple], calls: Iterable[tuple]) -> Iterator[tuple]:
    """make(*args) for every args of `calls` (an iterable, drawn as it goes), in order, PREFETCH
    calls ahead on a worker thread: numpy's gather and the transfer release the GIL, so the host
    reads and sends the next chunk or batch while the devices run the last."""
    calls = iter(calls)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxmlp-feed") as pool:
        pending = collections.deque(pool.submit(make, *args) for args in itertools.islice(calls, PREFETCH))
        while pending:
            ready = pending.popleft().result()
            pending.extend(pool.submit(make, *args) for args in itertools.islice(calls, 1))
            yield ready


def read_blocks(read: Callable, n: int, rows: int) -> Iterator[tuple[int, tuple]]:
    """(start, read(start .. start + rows - 1)) of n rows in consecutive blocks of `rows` (the
    last one shorter), each read on a worker while the one before it is used (`prefetched`)."""
    starts = range(0, n, rows)
    return zip(starts, prefetched(lambda a: read(np.arange(a, min(a + rows, n))), [(a,) for a in starts]))


class EpochRows(NamedTuple):
    """An epoch's order on the host: rows (S, K, B / K) of the training set, its step keys' data (S, ...)."""

    rows: np.ndarray
    key_data: np.ndarray


def epoch_rows(n: int, batch: int, accumulate: int, key: Array) -> EpochRows:
    """The permutation and step keys the resident epoch draws from `key` (`epoch_order`) for
    n training rows, brought to the host: what a feed from the host gathers."""
    def order(key):
        _, rows, keys = epoch_order(key, n, batch)
        return rows.reshape(n // batch, accumulate, batch // accumulate), jax.random.key_data(keys)

    rows, key_data = jax.device_get(cached(("epoch_rows", n, batch, accumulate), lambda: jax.jit(order))(key))
    return EpochRows(np.asarray(rows), np.asarray(key_data))


def array_reader(arrays) -> Callable:
    """read(rows) -> a[rows] for every host array a of the tree `arrays`."""
    return lambda rows: jax.tree.map(lambda a: np.asarray(a)[rows], arrays)


def row_reader(data, dtype) -> Callable:
    """read(rows) -> (x (*rows.shape, D), y (*rows.shape, ...)) of a Dataset in memory or a
    StreamedDataset on disk (data.streamed), in the run's dtype as `evaluate.host_arrays`
    makes them: x in `dtype`, y int32 labels or targets in `dtype`."""
    if not hasattr(data, "rows"):
        return array_reader(host_arrays(data, dtype))
    classification = data.num_classes is not None

    def read(rows):
        x, y = data.rows(rows)
        return np.asarray(x, dtype), y.astype(np.int32 if classification else dtype, copy=False)

    return read


def in_memory(data):
    """A Dataset: `data` itself, or a data set on disk (data.streamed) read whole into memory."""
    return data.load() if hasattr(data, "rows") else data


def host_arrays(data, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A split's arrays on the host, for training, validation or test alike:
    (x (N, D) in `dtype`, y (N,) int32 labels or (N, k) targets in `dtype`); a split on disk
    (data.streamed) is read whole into memory."""
    data = in_memory(data)
    x = np.asarray(data.x, dtype=dtype)
    y = np.asarray(data.y)
    y = y.astype(np.int32) if data.num_classes is not None else y.astype(dtype)
    return x, y


class Feeder:
    """The training data of each epoch, as the compiled epoch takes it: `x, y = feeder.take(e)`.

    resident: the same device arrays x (N, D), y (N, ...) every epoch (`resident` holds them,
    so evaluation can score the training set without a second copy). per_process: epoch e's
    minibatches (S, K, B / K, ...); `take(e)` hands over the prefetched epoch and draws the
    next epoch's rows, and `prefetch()`, called once epoch e is queued, gathers and sends them
    while it runs. The feeder keeps no reference to a handed-over epoch, so at most two
    epochs' batches are on the devices.
    """

    def __init__(self, plan: Plan, host: tuple[np.ndarray, np.ndarray], train_key: Array):
        self.feed, self.host, self.config, self.train_key, self.dp = plan.feed, host, plan.config, train_key, plan.data_parallel
        self.resident = plan.place(host) if self.feed == "resident" else None
        self._next: tuple[Array, Array] | None = None  # per_process: the prefetched epoch
        self._rows_after: np.ndarray | None = None  # per_process: rows drawn, not yet gathered

    def start(self, epoch: int) -> None:
        """Before the first epoch run (0-based `epoch`): prefetch it when feeding per process."""
        if self.feed == "per_process" and epoch < self.config.epochs:
            self._next = self._send(self._rows(epoch))

    def take(self, epoch: int) -> tuple[Array, Array]:
        """The (x, y) of 0-based `epoch` for the compiled epoch call."""
        if self.feed == "resident":
            return self.resident
        data, self._next = self._next, None
        # the next epoch's rows are drawn before this epoch is queued, so they are ready at once
        self._rows_after = self._rows(epoch + 1) if epoch + 1 < self.config.epochs else None
        return data

    def prefetch(self) -> None:
        """After queueing an epoch: gather and send the next one while it runs (per_process)."""
        if self._rows_after is not None:
            self._next, self._rows_after = self._send(self._rows_after), None

    def _rows(self, epoch: int) -> np.ndarray:
        """The training-set rows (S, K, B / K) of `epoch`'s minibatches, K = accumulate: the
        permutation the resident epoch draws on the device (`epoch_order`)."""
        config = self.config
        return epoch_rows(len(self.host[0]), config.batch_size, config.accumulate,
                          epoch_key(self.train_key, epoch)).rows

    def _send(self, rows: np.ndarray) -> tuple[Array, Array]:
        """Host: this process's rows of an epoch's minibatches -> the devices."""
        return feed_rows(self.dp, array_reader(self.host), rows)
