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

Multi-host: `initialize(coordinator, num_processes, process_id)` starts `jax.distributed`
(gloo collectives on CPU) before anything touches a backend; from then on `jax.devices()`
lists the devices of every process and the mesh spans them all. Every process runs the same
program. `shard_batch` builds a global batch from the slice each process feeds
(`jax.make_array_from_process_local_data`), and `feed` gathers that slice from the host data
set for a whole plan of batches (the trainer's `data_feed="per_process"`: one transfer per
epoch, each device holding only its rows); `replicate` builds a replicated global array from
the copy every process holds. Only process 0 should write files (`is_primary`).
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import zlib
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxmlp.config import DISTRIBUTED_TIMEOUT

Array = jax.Array

DATA_AXIS = "data"
EXIT_TIMEOUT = 1  # exit status of a process whose peers did not join in time
ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class DistributedError(RuntimeError):
    """jax.distributed could not start (a peer missing, a bad address, a timeout)."""


# --- multi-host start-up -------------------------------------------------------------------------
def distributed_settings(coordinator: str | None = None, num_processes: int | None = None,
                         process_id: int | None = None) -> tuple[str, int, int] | None:
    """(coordinator, num_processes, process_id) from the arguments, else from the environment
    variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; None when neither asks
    for more than one process. ValueError when the settings are incomplete or inconsistent."""
    env = os.environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS") or None
    try:
        if num_processes is None and env.get("JAX_NUM_PROCESSES"):
            num_processes = int(env["JAX_NUM_PROCESSES"])
        if process_id is None and env.get("JAX_PROCESS_ID"):
            process_id = int(env["JAX_PROCESS_ID"])
    except ValueError:
        raise ValueError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers") from None
    if coordinator is None and num_processes is None and process_id is None:
        return None
    if coordinator is None or num_processes is None or process_id is None:
        raise ValueError("multi-host training needs all three of --coordinator HOST:PORT, --num-processes N and "
                         "--process-id I (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"coordinator must be HOST:PORT, got {coordinator!r}")
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, num_processes={num_processes}), got {process_id}")
    return coordinator, num_processes, process_id


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, timeout: float = DISTRIBUTED_TIMEOUT, exit_on_timeout: bool = True) -> bool:
    """Start `jax.distributed` for a multi-process run; returns False when there is nothing to do.

    Call it before any JAX computation. Every process passes the same coordinator (process 0's
    HOST:PORT) and num_processes, and its own process_id; the call returns once all have joined.
    On CPU, collectives use gloo.

    Timeouts: when not every peer has joined within `timeout` seconds, JAX itself ends the
    process with a fatal abort (SIGABRT and a C++ stack trace, which Python cannot catch). With
    `exit_on_timeout` a watchdog ends it first, with one clear line on stderr and exit status
    EXIT_TIMEOUT; JAX's own deadline (a few seconds later) stays as the backstop. Errors that
    JAX raises as exceptions become DistributedError. `timeout` is also the heartbeat timeout:
    a run whose peer dies (or stops answering) ends within about that long, never hangs.
    """
    settings = distributed_settings(coordinator, num_processes, process_id)
    if settings is None or settings[1] == 1:
        return False
    coordinator, num_processes, process_id = settings
    is_initialized = getattr(jax.distributed, "is_initialized", None)
    if is_initialized is not None and is_initialized():  # started before (e.g. by the caller)
        if (jax.process_count(), jax.process_index()) != (num_processes, process_id):
            raise DistributedError(f"jax.distributed is already running as process {jax.process_index()} of "
                                   f"{jax.process_count()}, not {process_id} of {num_processes}")
        return True
    if timeout <= 0:
        raise ValueError(f"distributed timeout must be > 0 seconds, got {timeout}")
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):  # a JAX without the option: its default
        pass
    seconds = max(1, int(round(timeout)))
    backstop = seconds + 5 if exit_on_timeout else seconds
    wanted = dict(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
                  initialization_timeout=backstop, heartbeat_timeout_seconds=seconds,
                  shutdown_timeout_seconds=seconds)
    accepted = inspect.signature(jax.distributed.initialize).parameters
    problem = (f"process {process_id} of {num_processes} could not join the run at {coordinator} within "
               f"{seconds}s: are all {num_processes} processes started, with the same coordinator and "
               f"num_processes, and is the coordinator's port reachable?")
    watchdog = threading.Timer(seconds, _exit_now, (f"jaxmlp: error: {problem} (distributed timeout)",))
    watchdog.daemon = True
    if exit_on_timeout:
        watchdog.start()
    try:
        jax.distributed.initialize(**{k: v for k, v in wanted.items() if k in accepted})
    except Exception as exc:  # XlaRuntimeError (DEADLINE_EXCEEDED, UNAVAILABLE, ...), RuntimeError
        _abandon()
        raise DistributedError(f"{problem} ({' '.join(str(exc).split())[:300]})") from None
    finally:
        watchdog.cancel()
    return True


def _exit_now(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    os._exit(EXIT_TIMEOUT)  # no atexit: JAX's shutdown would wait for the peers that never came


def _abandon() -> None:
    """After a failed initialize: drop the half-started client and service, so the process can
    exit without waiting for a shutdown barrier that the missing peers never reach."""
    try:
        from jax._src import distributed as _distributed

        state = _distributed.global_state
        state.client = state.service = state.preemption_sync_manager = None
    except Exception:  # a JAX without these internals: nothing to drop
        pass


def assert_same_everywhere(**things) -> None:
    """ValueError naming each of `things` (bytes, or numpy arrays) that is not the same in every
    process of a multi-process run; nothing to do in one process.

    Every process runs the same program on what it holds, so a data set or setting that differs
    between processes (another file, another --seed) would train inconsistent "replicated"
    params, or leave the processes waiting on each other. Each process sends one CRC-32 per
    thing (`process_allgather`), so every process sees the same verdict and all of them fail.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    names = sorted(things)
    local = np.array([_crc32(things[name]) for name in names], dtype=np.uint32)  # (k,)
    gathered = np.asarray(multihost_utils.process_allgather(local)).reshape(jax.process_count(), len(names))
    problems = []
    for j, name in enumerate(names):
        differ = [i for i in range(gathered.shape[0]) if gathered[i, j] != gathered[0, j]]
        if differ:
            problems.append(f"{name} (process {', '.join(map(str, differ))} vs process 0)")
    if problems:
        raise ValueError(f"not the same in every process: {'; '.join(problems)}. Every process of a multi-host "
                         "run must run the same command on the same data")


def _crc32(thing) -> int:
    if isinstance(thing, np.ndarray):
        header = f"{thing.dtype.str}{thing.shape}".encode()
        return zlib.crc32(memoryview(np.ascontiguousarray(thing)).cast("B"), zlib.crc32(header))
    return zlib.crc32(thing)


def is_primary() -> bool:
    """True in process 0 (the one that writes files and prints), and in single-process runs."""
    return jax.process_index() == 0


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

    def feed(self, arrays, rows: np.ndarray):
        """Global arrays (*rows.shape, ...) = `a[rows]` for every host array `a` of `arrays`, split
        over the devices along rows' last axis. Every process holds the same host arrays and the
        same global `rows` (e.g. an epoch's permutation); each gathers and transfers only its own
        block of every row of `rows` (`process_rows`), so a device receives only the examples it
        computes on."""
        mine = rows[..., self.process_rows(rows.shape[-1])]  # (..., b / num_processes)
        return self.shard_batch(jax.tree.map(lambda a: np.asarray(a)[mine], arrays), axis=rows.ndim - 1)

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
