"""What a sweep reports as it goes: one tqdm bar over every program's epochs (on a TTY), a line
at pacing.py's cadence over the whole sweep's epochs (the models done and active, the best loss
so far, the elapsed time and an ETA), and a line per finished program. A sweep callback by duck
typing: importing it imports no JAX."""
from __future__ import annotations

import bisect
import itertools
import math
import sys
import time
from typing import Any

from jaxmlp.cli.pacing import Cadence, duration
from jaxmlp.cli.progress import ConsoleProgress


class SweepConsole(ConsoleProgress):
    """The sweep's one progress bar and its lines (nothing when quiet): ConsoleProgress's bar and
    line writer, driven by a sweep's hooks. A sweep's step is one epoch of one program; programs
    run one after another, so the sweep's steps are the sum of its programs' epochs."""

    def __init__(self, *, quiet: bool = False, stream=None, clock=time.monotonic):
        super().__init__(quiet=quiet, stream=stream, clock=clock)
        self.chunks, self.ends, self.sizes = 0, [], []
        self.done = self.models_done = 0
        self.best, self.scored = math.inf, "val_loss"

    def on_sweep_begin(self, info: dict[str, Any]) -> None:
        plan = info["plan"]
        self.chunks, self.done = info["chunks"], info["done_epochs"]
        self.ends = list(itertools.accumulate(plan.groups[c.group].program.epochs for c in plan.chunks))
        self.sizes = [len(c.members) for c in plan.chunks]
        self.models_done = sum(self.sizes[:bisect.bisect_right(self.ends, self.done)])  # chunks before a resume's
        self._score(info["records"])
        self.cadence = Cadence(info["total_epochs"], clock=self.clock)
        self.cadence.start(self.done)
        if self.quiet:
            return
        width = "all vmapped" if plan.width is None else f"{plan.width} at a time"
        what = "resuming" if info["done_epochs"] else "sweeping"
        processes = f" of {info['processes']} processes" if info["processes"] > 1 else ""
        self._line(f"{what}: {info['models']} models of {plan.base.dataset} in {info['groups']} group(s), "
                   f"{info['chunks']} program(s) of up to {max(c.size for c in plan.chunks)} models ({width}) "
                   f"on {plan.devices} device(s){processes}")
        if plan.idle_line():
            self._line(plan.idle_line())
        if sys.stderr.isatty() and info["done_epochs"] < info["total_epochs"]:
            from tqdm import tqdm

            self.bar = tqdm(total=info["total_epochs"], initial=info["done_epochs"], unit="epoch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def on_epoch_end(self, records: list[dict[str, Any]]) -> None:
        self.done += 1
        self._score(records)
        if self.bar is not None:
            if math.isfinite(self.best):
                self.bar.set_postfix(models=len(records), best_loss=f"{self.best:.4f}", refresh=False)
            self.bar.update(1)
        if self.cadence.tick(self.done) and not self.quiet:
            self._line(self._epoch_line(len(records)))

    def _score(self, records: list[dict[str, Any]]) -> None:
        """The lowest finite loss so far: the val loss, or the training loss of a sweep without
        validation data (a sweep's score, sweeps/result.py)."""
        for r in records:
            key = "val_loss" if r.get("val_loss") is not None else "train_loss"
            if r.get(key) is not None and math.isfinite(r[key]) and r[key] < self.best:
                self.best, self.scored = r[key], key

    def _epoch_line(self, active: int) -> str:
        total, chunk = self.cadence.total, bisect.bisect_left(self.ends, self.done)
        where = f"epoch {self.done:>{len(str(total))}}/{total}"
        if self.chunks > 1:
            start = self.ends[chunk - 1] if chunk else 0
            where += f" (program {chunk + 1}/{self.chunks}, epoch {self.done - start}/{self.ends[chunk] - start})"
        best = f"best {self.scored} {self.best:.4f}" if math.isfinite(self.best) else "no finite loss yet"
        parts = [where, f"models {self.models_done} done, {active} active", best,
                 f"elapsed {duration(self.cadence.elapsed)}"]
        eta = self.cadence.eta(self.done, restarts=self.chunks - 1 - chunk)
        if self.done < total and eta is not None:
            parts.append(f"eta {duration(eta)}")
        return "  ".join(parts)

    def on_chunk_end(self, chunk, models) -> None:
        # a program whose models all stopped early skips its last epochs: the sweep is past them
        skipped = self.ends[chunk.index] - self.done
        self.done, self.models_done = self.ends[chunk.index], self.models_done + len(models)
        self.cadence.restart(self.done)  # the next program compiles before its first epoch
        if self.bar is not None and skipped > 0:
            self.bar.update(skipped)
        if self.quiet:
            return
        ranked = sorted(models, key=lambda m: (m.score, m.index))
        diverged = sum(m.diverged for m in models)
        best = ranked[0]
        lead = "every model diverged" if best.diverged else f"best model {best.index} (score {best.score:.4f})"
        self._line(f"program {chunk.index + 1}/{self.chunks} (group {chunk.group}): {len(models)} models, {lead}"
                   + (f", {diverged} diverged" if diverged and not best.diverged else ""))

    def on_sweep_end(self, result) -> None:
        self.close()
