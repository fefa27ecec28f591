"""When a progress line is due, and the elapsed time and ETA it shows.

Written for output that is not a terminal (CI logs, nohup, a notebook), where no bar redraws
itself: a run prints a line on its first step, then every tenth of its steps or every 30 s since
the last line, whichever comes first, and on its last step (the last of `total`, or one that
ends the run early). `every` > 0 (--log-every N) prints every N steps (and the first and last)
instead. The clock is injectable, so tests drive it without sleeping.
"""
from __future__ import annotations

import time
from typing import Callable

FRACTION = 0.1  # of the run's steps between two lines
SECONDS = 30.0  # at most between two lines, when steps are slow


class Cadence:
    """Decides which steps (epochs) get a line and times them. `total`: the run's last step;
    `start(done)` at the first step of this process, then `tick(step)` after each step.

    The ETA's pace leaves out the first step after `start` and after each `restart` (a sweep's
    next program): those carry one-off costs (a first dispatch; a compile) that would otherwise
    be multiplied by every step still to come. Their mean excess over the pace is added once per
    restart still to come."""

    def __init__(self, total: int, every: int = 0, clock: Callable[[], float] = time.monotonic):
        self.total, self.every, self.clock = total, every, clock
        self.step = max(1, round(total * FRACTION))
        self.first = self.previous = 0
        self.begun = self.last = self.now = 0.0
        self.warm, self.paced_seconds, self.paced_steps = False, 0.0, 0
        self.cold: list[tuple[float, int]] = []  # (seconds, steps) of each first step after a (re)start

    def start(self, done: int) -> None:
        """`done` steps were run before (a resume); the clock starts now."""
        self.first, self.begun = done, self.clock()
        self.last = self.now = self.begun
        self.restart(done)

    def restart(self, done: int) -> None:
        """The next step starts after one-off work (or `done` jumped past skipped steps): its
        time is not a step's pace."""
        self.previous, self.warm = done, False

    def tick(self, done: int, last: bool = False) -> bool:
        """Step `done` ended (`last`: and the run ends with it): is its line due? A due line
        restarts the 30 s."""
        before, self.now = self.now, self.clock()
        if self.warm:
            self.paced_seconds += self.now - before
            self.paced_steps += done - self.previous
        else:
            self.cold.append((self.now - before, done - self.previous))
        self.previous, self.warm = done, True
        if self.every:
            due = done % self.every == 0
        else:
            due = done % self.step == 0 or self.now - self.last >= SECONDS
        due = due or last or done == self.first + 1 or done >= self.total
        if due:
            self.last = self.now
        return due

    @property
    def elapsed(self) -> float:
        """Seconds from `start` to the latest tick (this process's steps only)."""
        return self.now - self.begun

    def eta(self, done: int, until: int | None = None, restarts: int = 0) -> float | None:
        """Seconds until step `until` (default: the last), `restarts` restarts included, at the
        pace of the steps so far; None until a step after the first is timed (the first alone,
        a compile in it, can overstate the rest a hundredfold)."""
        if not self.paced_steps:
            return None
        pace = self.paced_seconds / self.paced_steps
        overhead = sum(max(seconds - steps * pace, 0.0) for seconds, steps in self.cold) / max(len(self.cold), 1)
        return pace * max((self.total if until is None else until) - done, 0) + overhead * restarts


def duration(seconds: float) -> str:
    """42s, 3m05s, 2h07m: short enough for a log line, exact enough for an ETA."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
