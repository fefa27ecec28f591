"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt in whatever bytecode the main thread runs when SIGINT arrives.
When that is a garbage-collector callback, a `__del__` or a weakref callback, the interpreter
reports the exception as "Exception ignored in ..." and drops it. JAX runs a Python callback on
every collection (`jax._src.lib._xla_gc_callback`), so without this guard an interrupt that
lands during a collection would leave the run training on.

`InterruptGuard` takes over `sys.unraisablehook` while a command runs. It notes a swallowed
KeyboardInterrupt and keeps its traceback quiet. At the next epoch end, and at the end of
training, it raises KeyboardInterrupt again, so the command ends the way an interrupt always
ends: one line and exit 130.

    with InterruptGuard() as guard:
        fit(..., callbacks=[..., guard])    # or sweep(...): the same hooks
"""
from __future__ import annotations

import sys
from typing import Any


class InterruptGuard:
    """A context manager and a fit/sweep callback: re-raises a KeyboardInterrupt that a
    finalizer or GC callback swallowed, at the next point where the loop calls its callbacks."""

    def __init__(self):
        self.swallowed = False
        self.active = False
        self._previous_hook = None

    def __enter__(self) -> InterruptGuard:
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._hook
        self.active = True
        return self

    def __exit__(self, *exc_info) -> None:
        self.active = False
        # A hook put on top of ours meanwhile (orbax_io's, set up with the first checkpointer) stays,
        # still chained through ours, which now only passes reports on.
        if sys.unraisablehook == self._hook:
            sys.unraisablehook = self._previous_hook

    def _hook(self, unraisable) -> None:
        if self.active and issubclass(unraisable.exc_type, KeyboardInterrupt):
            self.swallowed = True  # raised again by check(); its traceback would be noise
            return
        self._previous_hook(unraisable)

    def check(self) -> None:
        """Raise KeyboardInterrupt if one was swallowed since the last check."""
        if self.swallowed:
            self.swallowed = False
            raise KeyboardInterrupt

    # the hooks of training.Callback and of a sweep's callbacks: each is a point to check at
    def on_epoch_end(self, record: Any) -> None:
        self.check()

    def on_train_end(self, history: Any) -> None:
        self.check()

    def on_sweep_end(self, result: Any) -> None:
        self.check()

    def on_train_begin(self, info: Any) -> None:
        self.check()

    def on_sweep_begin(self, info: Any) -> None:
        self.check()

    def on_chunk_end(self, chunk: Any, models: Any) -> None:
        self.check()
