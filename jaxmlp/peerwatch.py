"""Each process of a multi-host run watches that its peers are still there, so a peer that is
killed, stopped or cut off ends the run in one line within the distributed timeout.

    watch = PeerWatch(process_id=0, num_processes=2, timeout=10.0)
    lost = watch.observe(beats, answered_at, now)      # None, or what happened ('another process ... is gone (...)')
    leave = start_watch(client, 0, 2, 10.0, on_lost)   # daemon threads: beat, observe, call on_lost(what)

Why jaxmlp keeps its own pulse: a collective whose peer died fails at once when the peer's
sockets close (gloo sees the reset), but a process waiting in a barrier, or in a collective
with a peer that is stopped or unreachable, waits for XLA's heartbeat monitor, which ends the
process with a fatal abort (SIGABRT, a C++ stack trace) that Python cannot catch. Each process
here increments its own counter in the coordination service's key-value store every `interval`
seconds; a peer whose counter has not moved for `timeout - 3 * interval` seconds is gone. XLA's
own heartbeat timeout is set later than that (distributed.initialize), as a backstop.

The counters live under KEY_PREFIX; a process leaving normally marks itself done (its last
work, e.g. process 0 writing plots, may outlast a peer's by more than the timeout).
"""
from __future__ import annotations

import atexit
import threading
import time
from typing import Callable, Mapping, NamedTuple

KEY_PREFIX = "jaxmlp/peers/"


def supported() -> bool:
    """Whether this jaxlib's distributed client has the key-value calls that the watch uses."""
    from jax._src.lib import _jax

    client = getattr(_jax, "DistributedRuntimeClient", None)
    return all(hasattr(client, call) for call in ("key_value_increment", "key_value_dir_get", "key_value_set"))


def interval_for(timeout: float) -> float:
    """Seconds between beats: ten per timeout, at most one a second."""
    return min(1.0, timeout / 10)


class Reading(NamedTuple):
    """What the coordination service last answered, and when; or why it no longer answers."""

    answered_at: float  # time.monotonic()
    beats: Mapping[str, str]  # its entries under KEY_PREFIX, the prefix cut off
    error: str | None = None


class PeerWatch:
    """The pure part: what ended the run, if anything, from the counters last read and when.

    beats: the key-value store's entries under KEY_PREFIX, {"alive/<id>": "<count>", "done/<id>": "1"}.
    """

    def __init__(self, process_id: int, num_processes: int, timeout: float):
        self.process_id, self.num_processes = process_id, num_processes
        self.silent_after = timeout - 3 * interval_for(timeout)  # a beat read late, judged late, and slack
        self._last: dict[int, tuple[str | None, float]] = {}  # peer -> (its count, when it last changed here)

    def observe(self, beats: Mapping[str, str], answered_at: float, now: float) -> str | None:
        """None while the service answers and every peer beats; else what happened. `beats` were
        read at `answered_at` (a stopped or unreachable coordinator answers nothing)."""
        gone = "another process of this multi-host run is gone"
        if now - answered_at > self.silent_after:
            return f"{gone} (the coordinator, process 0, has not answered for {now - answered_at:.0f}s)"
        for peer in range(self.num_processes):
            if peer == self.process_id or f"done/{peer}" in beats:
                continue
            count = beats.get(f"alive/{peer}")
            seen, since = self._last.get(peer, (None, now))
            if count != seen or peer not in self._last:
                self._last[peer] = (count, now)
            elif now - since > self.silent_after:
                return (f"{gone} (process {peer} of {self.num_processes} has not answered for {now - since:.0f}s: "
                        "killed, stopped or unreachable)")
        return None


def start_watch(client, process_id: int, num_processes: int, timeout: float,
                on_lost: Callable[[str], None]) -> Callable[[], None]:
    """Beat through `client` (jax.distributed's) on one daemon thread, and judge on another
    (a beat to a stopped coordinator never returns), calling `on_lost(what)`, which ends the
    process, when a peer or the coordinator is gone. Returns `leave()`, which stops both and
    marks this process done; it runs by itself when the interpreter exits normally."""
    watch, interval, stopping = PeerWatch(process_id, num_processes, timeout), interval_for(timeout), threading.Event()
    reading = Reading(time.monotonic(), {})  # the beater's latest, replaced whole (one assignment: atomic)

    def beat() -> None:
        nonlocal reading
        while not stopping.wait(interval):
            try:
                client.key_value_increment(f"{KEY_PREFIX}alive/{process_id}", 1)
                beats = {k.removeprefix(KEY_PREFIX): v for k, v in client.key_value_dir_get(KEY_PREFIX)}
            except Exception as exc:  # the coordination service is gone: process 0 died
                reading = reading._replace(error=" ".join(str(exc).split())[:160])
                return
            reading = Reading(time.monotonic(), beats)

    def judge() -> None:
        while not stopping.wait(interval):
            now, last = time.monotonic(), reading
            lost = (f"another process of this multi-host run is gone (the coordinator, process 0: {last.error})"
                    if last.error is not None else watch.observe(last.beats, last.answered_at, now))
            if lost is not None and not stopping.is_set():  # (not JAX's own shutdown at exit)
                on_lost(lost)
                return

    def leave() -> None:  # registered after JAX's own exit handler, so it runs before JAX shuts the client down
        stopping.set()
        for thread in threads:
            thread.join(timeout=interval + 1)  # a beat in flight to a service that is going away
        try:
            client.key_value_set(f"{KEY_PREFIX}done/{process_id}", "1", allow_overwrite=True)
        except Exception:  # the service already gone: nobody is left to watch
            pass

    threads = [threading.Thread(target=target, name=f"jaxmlp-peer-{target.__name__}", daemon=True)
               for target in (beat, judge)]
    for thread in threads:
        thread.start()
    atexit.register(leave)
    return leave
