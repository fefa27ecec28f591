"""What a sweep reports as it goes: one tqdm bar over every program's epochs (on a TTY) and a
line per finished program. A sweep callback by duck typing: importing it imports no JAX."""
from __future__ import annotations

import sys
from typing import Any

from jaxmlp.cli.progress import ConsoleProgress


class SweepConsole(ConsoleProgress):
    """The sweep's one progress bar and its lines (nothing when quiet): ConsoleProgress's bar and
    line writer, driven by a sweep's hooks."""

    def __init__(self, *, quiet: bool = False, stream=None):
        super().__init__(quiet=quiet, stream=stream)
        self.chunks = 0

    def on_sweep_begin(self, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        plan = info["plan"]
        self.chunks = info["chunks"]
        devices = 1 if plan.mesh is None else plan.mesh.devices.size
        width = "all vmapped" if plan.width is None else f"{plan.width} at a time"
        what = "resuming" if info["done_epochs"] else "sweeping"
        self._line(f"{what}: {info['models']} models of {plan.base.dataset} in {info['groups']} group(s), "
                   f"{info['chunks']} program(s) of up to {max(c.size for c in plan.chunks)} models ({width}) "
                   f"on {devices} device(s)")
        if sys.stderr.isatty() and info["done_epochs"] < info["total_epochs"]:
            from tqdm import tqdm

            self.bar = tqdm(total=info["total_epochs"], initial=info["done_epochs"], unit="epoch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def on_epoch_end(self, records: list[dict[str, Any]]) -> None:
        if self.bar is None:
            return
        scores = [r["val_loss"] if r.get("val_loss") is not None else r["train_loss"] for r in records]
        if scores:
            self.bar.set_postfix(models=len(records), best_loss=f"{min(scores):.4f}", refresh=False)
        self.bar.update(1)

    def on_chunk_end(self, chunk, models) -> None:
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
