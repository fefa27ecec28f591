"""Multi-host start-up: `jax.distributed` started before anything touches a backend, a clear
one-line failure when a peer never joins, and the check that every process holds the same
config and data.

    settings = distributed_settings(coordinator, num_processes, process_id)   # or from JAX_* env vars
    initialize(*settings)                   # returns once every process has joined
    assert_same_everywhere(config=b"...", train_x=x)   # ValueError naming what differs
    if is_primary(): ...                    # only process 0 writes files and prints

From then on `jax.devices()` lists the devices of every process, and parallel.py's mesh spans
them all. On CPU, collectives use gloo.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import threading
import typing
import zlib
from typing import Callable

import jax
import numpy as np

from jaxmlp import peerwatch
from jaxmlp.config import DISTRIBUTED_TIMEOUT, PER_HOST_FIELDS

EXIT_TIMEOUT = 1  # exit status of a process whose peers did not join in time
ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class DistributedError(RuntimeError):
    """jax.distributed could not start (a peer missing, a bad address, a timeout)."""


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
    JAX raises as exceptions become DistributedError. With `exit_on_timeout`, a peer that dies,
    stops or becomes unreachable later ends this process within `timeout` too, in one line
    (peerwatch.py; what the line says: `on_peer_lost`), before XLA's heartbeat monitor (set a few
    seconds later) would abort it; without, that monitor ends the process after `timeout`.
    """
    settings = distributed_settings(coordinator, num_processes, process_id)
    if settings is None or settings[1] == 1:
        return False
    coordinator, num_processes, process_id = settings
    if _already_running_as(num_processes, process_id):
        return True
    if timeout <= 0:
        raise ValueError(f"distributed timeout must be > 0 seconds, got {timeout}")
    _use_gloo_on_cpu()
    seconds = max(1, int(round(timeout)))
    backstop = seconds + 5 if exit_on_timeout else seconds
    watch = exit_on_timeout and peerwatch.supported()
    heartbeat = 2 * seconds if watch else seconds  # XLA's monitor: the peer watch's backstop
    wanted = dict(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
                  initialization_timeout=backstop, heartbeat_timeout_seconds=heartbeat,
                  shutdown_timeout_seconds=seconds)
    accepted = inspect.signature(jax.distributed.initialize).parameters
    problem = (f"process {process_id} of {num_processes} could not join the run at {coordinator} within "
               f"{seconds}s: are all {num_processes} processes started, with the same coordinator and "
               f"num_processes, and is the coordinator's port reachable?")
    watchdog = threading.Timer(seconds, exit_now, (f"jaxmlp: error: {problem} (distributed timeout)",))
    watchdog.daemon = True
    if exit_on_timeout:
        watchdog.start()
    try:
        jax.distributed.initialize(**{k: v for k, v in wanted.items() if k in accepted})
    except Exception as exc:  # XlaRuntimeError (DEADLINE_EXCEEDED, UNAVAILABLE, ...), RuntimeError
        abandon()
        raise DistributedError(f"{problem} ({' '.join(str(exc).split())[:300]})") from None
    finally:
        watchdog.cancel()
    if watch:
        from jax._src import distributed as _distributed

        peerwatch.start_watch(_distributed.global_state.client, process_id, num_processes, seconds,
                              lambda lost: exit_now(_last_words(lost)))
    return True


def _say_lost(lost: str) -> str:
    return f"jaxmlp: error: {lost}"


_last_words = _say_lost  # what a process prints when its peer watch finds a peer gone; see on_peer_lost


def on_peer_lost(last_words: Callable[[str], str]) -> None:
    """Set the line the peer watch prints before it ends the process: `last_words(what
    happened)`. A command sets it once it knows its run directory (which checkpoint is kept)."""
    global _last_words
    _last_words = last_words


def _already_running_as(num_processes: int, process_id: int) -> bool:
    """True when jax.distributed was started before (e.g. by the caller) as this very process of
    this many; DistributedError when it runs as another one; False when it is not running."""
    is_initialized = getattr(jax.distributed, "is_initialized", None)
    if is_initialized is None or not is_initialized():
        return False
    if (jax.process_count(), jax.process_index()) != (num_processes, process_id):
        raise DistributedError(f"jax.distributed is already running as process {jax.process_index()} of "
                               f"{jax.process_count()}, not {process_id} of {num_processes}")
    return True


def _use_gloo_on_cpu() -> None:
    """Collectives between processes on CPU go through gloo, whatever this JAX's default is."""
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):  # a JAX without the option: its default
        pass


def exit_now(message: str) -> typing.NoReturn:
    """Print `message` and end the process with EXIT_TIMEOUT (1) at once: no atexit handlers, no
    shutdown barrier (files are complete or absent, and a run's lock goes with the process)."""
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    os._exit(EXIT_TIMEOUT)  # no atexit: JAX's shutdown would wait for the peers that never came


def abandon() -> None:
    """After a failed initialize, or once a peer is gone: drop the client and service, so the
    process can exit without waiting for a shutdown barrier that the missing peers never reach."""
    try:
        from jax._src import distributed as _distributed

        state = _distributed.global_state
        state.client = state.service = state.preemption_sync_manager = None
    except Exception:  # a JAX without these internals: nothing to drop
        pass


def peer_lost(exc: BaseException) -> str | None:
    """What `exc` says when it ended a multi-process run because another process is gone (killed,
    its host down: gloo's collectives see the connection closed), else None."""
    if jax.process_count() == 1:
        return None
    for cause in (exc, exc.__cause__):
        text = " ".join(str(cause).split())
        if isinstance(cause, jax.errors.JaxRuntimeError) and ("Gloo" in text or "heartbeat" in text):
            return f"another process of this multi-host run is gone ({text[:200]})"
    return None


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


def check_same_run(config, **splits) -> None:
    """With several processes: ValueError unless all hold the same TrainConfig (but for its
    PER_HOST_FIELDS) and the same data sets `splits` (name -> Dataset or None), by CRC-32."""
    if jax.process_count() == 1:
        return
    shared = {k: v for k, v in config.to_dict().items() if k not in PER_HOST_FIELDS}
    things = {"config": json.dumps(shared, sort_keys=True).encode()}
    for name, data in splits.items():
        if data is not None:
            if hasattr(data, "rows"):  # on disk: each process reads its own rows, so the set's shape and statistics
                things[f"{name} shape"] = np.asarray([len(data), data.num_features, data.num_classes or 0])
                things[f"{name} stats"] = np.stack(data.stats)
            else:
                things[f"{name} x"], things[f"{name} y"] = np.asarray(data.x), np.asarray(data.y)
    assert_same_everywhere(**things)
