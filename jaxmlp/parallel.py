"""Data parallelism over every device of every process, with JAX's own machinery only.

    dp = data_parallel(8)                   # a 1-D Mesh over 8 devices on the axis "data"
    x = dp.replicate(x)                     # params, optimizer state, the data set: replicated
    xb = dp.constrain_batch(x[idx])         # inside jit: this batch is split over "data"

The trainer jits its scan-fused epoch with replicated in/out shardings and puts a sharding
constraint on every (micro)batch it gathers, so each device computes the forward and
backward pass of its 1/n slice of the batch and XLA's SPMD partitioner inserts the one
all-reduce of the gradients. The loss is the mean over the global batch, so a step equals
the single-device step up to float summation order, for jax.grad and for the hand-written
backprop alike (no shard_map, no pmean to get wrong).

Multi-host (distributed.py starts `jax.distributed`): `jax.devices()` lists the devices of every
process and the mesh spans them all. Every process runs the same program. `shard_batch` builds a global batch from the slice each process feeds
(`jax.make_array_from_process_local_data`), and `feed` gathers that slice from the host data
set for a whole plan of batches (the trainer's `data_feed="per_process"`: one transfer per
epoch, each device holding only its rows); `replicate` builds a replicated global array from
the copy every process holds.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxmlp.types import Array

DATA_AXIS = "data"


# --- the mesh ------------------------------------------------------------------------------------
def resolve_devices(devices: int | str = 1) -> list:
    """The devices a run uses: `devices` N >= 1 (the first N), or 0 / "all" (every device of
    every process). With several processes only "all" is possible."""
    available = jax.devices()
    if devices in (0, "all"):
        return list(available)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 0:
        raise ValueError(f"devices must be a positive integer or 'all', got {devices!r}")
    if devices > len(available):
        raise ValueError(f"devices={devices} but only {len(available)} device(s) are available "
                         f"({available[0].platform}); use devices <= {len(available)} or 'all'")
    if jax.process_count() > 1 and devices != len(available):
        raise ValueError(f"a multi-process run uses every device of every process: pass devices all "
                         f"(= {len(available)} over {jax.process_count()} processes), got {devices}")
    return list(available[:devices])


def make_mesh(devices: Sequence | int | str = "all") -> Mesh:
    """A 1-D Mesh on the axis "data" (Auto axis type: jit/GSPMD decides the collectives)."""
    devs = devices if isinstance(devices, (list, tuple)) else resolve_devices(devices)
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is not None:
        return Mesh(np.array(devs), (DATA_AXIS,), axis_types=(axis_type.Auto,))
    return Mesh(np.array(devs), (DATA_AXIS,))


def check_batch(batch_size: int, n_devices: int, accumulate: int = 1) -> int:
    """The per-device microbatch size; ValueError when batch_size does not split evenly."""
    parts = n_devices * accumulate
    if batch_size % parts:
        what = f"{n_devices} device(s)" + (f" x accumulate={accumulate} microbatches" if accumulate > 1 else "")
        raise ValueError(f"batch_size={batch_size} must be divisible by {what} = {parts}: the global batch is "
                         f"split evenly over the data-parallel devices; use a batch_size that is a multiple of "
                         f"{parts}")
    return batch_size // parts


class DataParallel(NamedTuple):
    """A data-parallel layout: batches split over `mesh`'s "data" axis, everything else replicated."""

    mesh: Mesh

    @property
    def size(self) -> int:
        """Number of devices (over all processes)."""
        return self.mesh.devices.size

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def batch_sharding(self, axis: int = 0) -> NamedSharding:
        """Split dimension `axis` over the devices, replicate the others."""
        return NamedSharding(self.mesh, P(*([None] * axis), DATA_AXIS))

    def constrain_batch(self, x: Array, axis: int = 0) -> Array:
        """Inside jit: lay `x` out split over the devices along `axis`."""
        return jax.lax.with_sharding_constraint(x, self.batch_sharding(axis))

    def replicate(self, tree):
        """A global array replicated on every device from each process's identical copy (numpy
        or jax arrays; typed PRNG keys too)."""
        return jax.tree.map(self._replicate_leaf, tree)

    def _replicate_leaf(self, leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(leaf)
            data = self._replicate_leaf(np.asarray(jax.random.key_data(leaf)))
            return jax.random.wrap_key_data(data, impl=impl)
        if jax.process_count() == 1:
            return jax.device_put(leaf, self.replicated)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return jax.device_put(leaf, self.replicated)  # already global
        return jax.make_array_from_process_local_data(self.replicated, np.asarray(leaf))

    def shard_batch(self, local, axis: int = 0):
        """A global batch split over the devices along `axis`, built from the slice that THIS
        process feeds (`process_rows`): local arrays (..., B / num_processes, ...) -> global
        (..., B, ...). In a single process `local` is the whole batch."""
        def leaf(a):
            a = np.asarray(a)
            shape = list(a.shape)
            shape[axis] *= jax.process_count()
            return jax.make_array_from_process_local_data(self.batch_sharding(axis), a, tuple(shape))

        return jax.tree.map(leaf, local)

    def feed(self, read, rows: np.ndarray):
        """Global arrays (*rows.shape, ...) of `read(rows)`, the host's gather of those rows (a
        tree of arrays), split over the devices along rows' last axis. Every process holds the
        same global `rows` (e.g. an epoch's permutation); each reads and transfers only its own
        block of every row of `rows` (`process_rows`), so a device receives only the examples it
        computes on, and a process reads from disk only those (a streamed data set)."""
        mine = rows[..., self.process_rows(rows.shape[-1])]  # (..., b / num_processes)
        return self.shard_batch(read(mine), axis=rows.ndim - 1)

    def process_rows(self, global_batch: int) -> slice:
        """The rows of every global batch of `global_batch` examples that this process feeds."""
        per = check_batch(global_batch, jax.process_count())
        return slice(jax.process_index() * per, (jax.process_index() + 1) * per)

    def abstract(self, tree):
        """ShapeDtypeStructs of `tree` with the replicated sharding (an Orbax restore target)."""
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), tree)

    def jit_kwargs(self, n_args: int, n_out: int = 1) -> dict[str, Any]:
        """in/out_shardings for a jitted function whose arguments and results are all replicated."""
        rep = self.replicated
        return dict(in_shardings=(rep,) * n_args, out_shardings=rep if n_out == 1 else (rep,) * n_out)


def to_local(tree):
    """This process's copy of replicated global arrays, as single-device arrays (no transfer):
    for evaluation, prediction and plots, which run on one device per process."""
    def leaf(a):
        if isinstance(a, jax.Array) and len(a.sharding.device_set) > 1:
            if not a.is_fully_replicated:
                raise ValueError(f"to_local needs replicated arrays, got sharding {a.sharding}")
            return a.addressable_data(0)
        return a

    return jax.tree.map(leaf, tree)


@functools.lru_cache(maxsize=8)
def data_parallel(devices: int | str = 1) -> DataParallel | None:
    """The DataParallel layout of `devices` (N or 0/"all"); None for a single device in a
    single process (the plain, unsharded program)."""
    devs = resolve_devices(devices)
    if len(devs) == 1 and jax.process_count() == 1:
        return None
    return DataParallel(make_mesh(devs))
