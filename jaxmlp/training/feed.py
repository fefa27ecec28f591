"""Where an epoch's training data comes from: `Feeder`, resident or fed per process.

- resident: the whole training set is placed on every device once; each epoch gathers its
  minibatches there, so nothing crosses the host per epoch.
- per_process: each process gathers on the host only its own rows of every minibatch of the
  next epoch (the same permutation the device would draw, `epoch.epoch_order`) and sends them
  while the current epoch runs, so a device holds about 2 * N / devices training rows.

`auto` (plan.plan_of) is resident in one process and per_process with several.
"""
from __future__ import annotations

import jax
import numpy as np

from jaxmlp import parallel
from jaxmlp.training.epoch import epoch_order
from jaxmlp.training.plan import Plan
from jaxmlp.training.programs import cached
from jaxmlp.training.state import epoch_key
from jaxmlp.types import Array


def feed_rows(dp: parallel.DataParallel | None, arrays, rows: np.ndarray):
    """Device arrays `a[rows]` (*rows.shape, ...) for host arrays `a`; on a data-parallel mesh
    split along rows' last axis, each process sending only its own rows (`DataParallel.feed`)."""
    if dp is None:
        return jax.device_put(jax.tree.map(lambda a: np.asarray(a)[rows], arrays))
    return dp.feed(arrays, rows)


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
        self._rows_after: Array | None = None  # per_process: rows drawn, not yet gathered

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

    def _rows(self, epoch: int) -> Array:
        """The training-set rows (S, K, B / K) of `epoch`'s minibatches, K = accumulate: the
        permutation the resident epoch draws on the device (`epoch_order`)."""
        n, batch, k = len(self.host[0]), self.config.batch_size, self.config.accumulate
        rows = cached(("epoch_rows", n, batch, k), lambda: jax.jit(
            lambda key: epoch_order(key, n, batch)[1].reshape(n // batch, k, batch // k)))
        return rows(epoch_key(self.train_key, epoch))

    def _send(self, rows: Array) -> tuple[Array, Array]:
        """Host: this process's rows of an epoch's minibatches -> the devices."""
        return feed_rows(self.dp, self.host, jax.device_get(rows))
