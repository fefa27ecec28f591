"""jaxmlp/peerwatch.py: the pure judgement over counters and times, then the two threads against
a fake coordination service (the real one, with stopped and killed processes, is in
test_sweep_hosts.py)."""
from __future__ import annotations

import threading
import time

import pytest

from jaxmlp.peerwatch import KEY_PREFIX, PeerWatch, interval_for, start_watch


def test_a_peer_is_gone_once_its_count_stops_for_longer_than_the_timeout_allows():
    watch = PeerWatch(process_id=0, num_processes=3, timeout=10.0)  # silent after 10 - 3 * 1 = 7 s
    assert watch.silent_after == pytest.approx(7.0)
    for t in range(8):  # both peers beat every second
        assert watch.observe({"alive/1": str(t), "alive/2": str(t)}, answered_at=t, now=t) is None
    for t in range(8, 15):  # peer 2 stops at 7; the service still answers
        assert watch.observe({"alive/1": str(t), "alive/2": "7"}, answered_at=t, now=t) is None, t
    lost = watch.observe({"alive/1": "15", "alive/2": "7"}, answered_at=15, now=15.5)
    assert lost == ("another process of this multi-host run is gone (process 2 of 3 has not answered for 8s: "
                    "killed, stopped or unreachable)")


def test_a_peer_that_never_beats_is_gone_and_one_that_left_is_not():
    watch = PeerWatch(process_id=1, num_processes=3, timeout=10.0)
    beats = {"alive/0": "1", "alive/1": "1", "done/2": "1"}  # 2 left normally before its first beat was read
    assert watch.observe(beats, 0.0, 0.0) is None
    assert watch.observe({**beats, "alive/0": "9"}, 100.0, 100.0) is None  # 2 is done: never judged
    assert watch.observe({**beats, "alive/0": "9"}, 107.0, 107.0) is None
    assert "process 0 of 3" in watch.observe({**beats, "alive/0": "9"}, 108.0, 108.0)
    never = PeerWatch(process_id=0, num_processes=2, timeout=10.0)
    assert never.observe({}, 0.0, 0.0) is None
    assert "process 1 of 2 has not answered for 8s" in never.observe({}, 8.0, 8.0)


def test_a_coordinator_that_stops_answering_is_gone_before_any_peer_is_judged():
    watch = PeerWatch(process_id=1, num_processes=2, timeout=10.0)
    assert watch.observe({"alive/0": "1"}, answered_at=0.0, now=7.0) is None
    assert watch.observe({"alive/0": "1"}, answered_at=0.0, now=7.5) == (
        "another process of this multi-host run is gone (the coordinator, process 0, has not answered for 8s)")


def test_interval_is_a_tenth_of_the_timeout_and_at_most_a_second():
    assert (interval_for(2.0), interval_for(10.0), interval_for(120.0)) == (0.2, 1.0, 1.0)


class FakeService:
    """The key-value calls of jax.distributed's client; `frozen` makes every call hang (a stopped
    coordinator), `dead` makes it raise (a killed one)."""

    def __init__(self):
        self.store: dict[str, str] = {}
        self.frozen, self.dead = threading.Event(), False
        self.lock = threading.Lock()

    def _call(self):
        if self.dead:
            raise RuntimeError("UNAVAILABLE: Socket closed")
        while self.frozen.is_set():
            time.sleep(0.01)

    def key_value_increment(self, key: str, increment: int) -> int:
        self._call()
        with self.lock:
            self.store[key] = str(int(self.store.get(key, "0")) + increment)
            return int(self.store[key])

    def key_value_dir_get(self, prefix: str) -> list[tuple[str, str]]:
        self._call()
        with self.lock:
            return [(k, v) for k, v in self.store.items() if k.startswith(prefix)]

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        self._call()
        with self.lock:
            self.store[key] = value


TIMEOUT = 2.0  # a beat every 0.2 s, silent after 1.4 s


def _watched(service: FakeService, timeout: float = TIMEOUT):
    """Process 0 of 2 watching through `service`; (leave, the lines on_lost got, an event set then)."""
    said, lost = [], threading.Event()

    def on_lost(what: str) -> None:
        said.append(what)
        lost.set()

    return start_watch(service, 0, 2, timeout, on_lost), said, lost


def test_the_threads_stay_quiet_while_the_peer_beats_and_mark_this_process_done_on_leaving():
    service = FakeService()
    leave, said, lost = _watched(service)
    deadline = time.monotonic() + 1.5 * TIMEOUT  # with peer 1 beating
    while time.monotonic() < deadline:
        service.key_value_increment(f"{KEY_PREFIX}alive/1", 1)
        time.sleep(0.05)
    leave()
    assert said == [] and service.store[f"{KEY_PREFIX}done/0"] == "1"
    assert int(service.store[f"{KEY_PREFIX}alive/0"]) >= 5  # about 15 beats, one every 0.2 s


@pytest.mark.parametrize("failure", ["peer stops", "coordinator stops", "coordinator dies"])
def test_the_threads_call_on_lost_within_the_timeout(failure):
    service = FakeService()
    leave, said, lost = _watched(service)
    if failure == "coordinator stops":
        service.frozen.set()
    elif failure == "coordinator dies":
        service.dead = True
    start = time.monotonic()  # peer 1 never beats: as if stopped when the watch began
    assert lost.wait(3 * TIMEOUT), failure
    took = time.monotonic() - start
    service.frozen.clear()
    leave()
    want = {"peer stops": "process 1 of 2 has not answered", "coordinator stops": "the coordinator, process 0, has "
            "not answered", "coordinator dies": "the coordinator, process 0: UNAVAILABLE: Socket closed"}[failure]
    assert len(said) == 1 and want in said[0], said
    assert took < TIMEOUT, took  # the promise: within --distributed-timeout
