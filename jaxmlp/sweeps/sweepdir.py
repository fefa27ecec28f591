"""A sweep's run directory:

    run_dir/
      sweep.json      the grid, the base config, the models (overrides, group) and the plan's settings
      results.jsonl   one line per model per epoch: {"model", "group", "overrides", "epoch", "train_loss", ...};
                      "seconds" is the program's epoch (all its models), "samples_per_sec" one model's
      summary.md      the ranked table (SweepResult.format_table), the grid and the times
      summary.json    the same table as JSON, with the best model and the times
      sweep.png       every model's curve, and a heatmap for a 2-D grid (plots.py)
      checkpoints/    the stacked state of the running chunk and the best model so far (store.py)
      best/           the best model as a run directory of its own: config.json, preprocessing.json,
                      metrics.jsonl and checkpoints/ as `jaxmlp train` writes them, so `jaxmlp export`
                      (info, predict, evaluate) reads it

Every file is written atomically (atomic.py); results.jsonl is
rewritten from the checkpointed histories on resume, so it never holds an epoch twice.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jaxmlp import atomic, checkpoint
from jaxmlp.config import TrainConfig
from jaxmlp.parsing import loads_json
from jaxmlp.runfiles import BEST_DIR, RESULTS_FILE, SWEEP_FILE  # the layout, beside train's: runfiles.KIND_FILES
from jaxmlp.runfiles import SUMMARY_FILE as SUMMARY_JSON
from jaxmlp.runfiles import SWEEP_PLOT_FILE as PLOT_FILE
from jaxmlp.runfiles import SWEEP_SUMMARY_FILE as SUMMARY_FILE
from jaxmlp.sweeps.grid import format_overrides, varying_fields


def json_grid(grid) -> Any:
    """The grid as JSON values (ranges and tuples as lists)."""
    if isinstance(grid, dict):
        return {name: [list(v) if isinstance(v, tuple) else v for v in values] for name, values in grid.items()}
    return [{k: list(v) if isinstance(v, tuple) else v for k, v in o.items()} for o in grid]


def write_sweep_json(run_dir: Path, config: TrainConfig, grid, plan, settings: dict[str, Any]) -> None:
    """sweep.json: what a resumed sweep rebuilds itself from, and what a reader needs to know."""
    atomic.write_json(run_dir / SWEEP_FILE, {
        "grid": json_grid(grid), "config": config.to_dict(), "settings": settings,
        "models": [{"model": i, "group": g.index, "overrides": json_grid([plan.overrides[i]])[0]}
                   for g in plan.groups for i in g.members],
        "groups": [{"group": g.index, "models": list(g.members), "traced": list(g.traced)} for g in plan.groups],
        "chunks": [{"chunk": c.index, "group": c.group, "models": list(c.members), "size": c.size} for c in plan.chunks]})


def read_sweep_json(run_dir: Path) -> dict[str, Any]:
    """sweep.json as written; RunDirError when it is missing, unreadable or not of that shape."""
    path = Path(run_dir) / SWEEP_FILE
    try:
        saved = loads_json(atomic.read_regular(path).decode())
    except FileNotFoundError:
        raise checkpoint.RunDirError(f"{run_dir}: not a sweep directory (no {SWEEP_FILE})") from None
    except (OSError, ValueError) as exc:
        raise checkpoint.RunDirError(f"{path}: cannot read ({exc})") from None
    shape = {"grid": (dict, list), "config": dict, "settings": dict}
    bad = [key for key, kind in shape.items() if not isinstance(saved, dict) or not isinstance(saved.get(key), kind)]
    if bad or not {"models_per_program", "width"} <= set(saved["settings"]):
        raise checkpoint.RunDirError(f"{path}: not a sweep's record as jaxmlp writes it (no valid "
                                     f"{(bad or ['settings'])[0]!r}); it cannot be resumed")
    return saved


class ResultsLog:
    """results.jsonl, a sweep callback: rewritten from the restored histories, then one line per
    model per epoch, appended and flushed."""

    def __init__(self, path: Path):
        self.log = checkpoint.MetricsLog(path)
        self.groups: dict[int, tuple[int, dict]] = {}

    def on_sweep_begin(self, info: dict[str, Any]) -> None:
        plan = info["plan"]
        self.groups = {i: (g.index, plan.overrides[i]) for g in plan.groups for i in g.members}
        self.log.reset([self._line(r) for r in info["records"]])

    def on_epoch_end(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.log.append(self._line(record))

    def on_chunk_end(self, chunk, models) -> None:
        pass

    def on_sweep_end(self, result) -> None:
        pass

    def _line(self, record: dict[str, Any]) -> dict[str, Any]:
        group, overrides = self.groups[record["model"]]
        return {"model": record["model"], "group": group, "overrides": json_grid([overrides])[0],
                **{k: v for k, v in record.items() if k != "model"}}


def write_summary(run_dir: Path, result, grid, config: TrainConfig) -> None:
    """summary.md (the ranked table, the grid, the times) and summary.json (the table as JSON)."""
    best = result.best
    varying = varying_fields([m.overrides for m in result.models])
    lines = [f"# Sweep: {config.dataset}, {len(result.models)} models", "",
             f"Grid: `{json.dumps(json_grid(grid))}` (varying: {', '.join(varying) or 'none'}).", "",
             "Ranked by best validation loss (by the final training loss without validation data); "
             "diverged models last. val_* and test_* are the kept params' (the best ones with restore_best).", "",
             result.format_table(), "",
             f"Best model: {best.index} ({format_overrides(best.overrides)}), in {BEST_DIR}/." if best else
             "Every model diverged: there is no best model.",
             f"Compile {result.compile_seconds:.2f} s, training {result.train_seconds:.2f} s (the epochs of every "
             "chunk, evaluation excluded).", ""]
    atomic.atomic_write_bytes(run_dir / SUMMARY_FILE, "\n".join(lines).encode())
    atomic.write_json(run_dir / SUMMARY_JSON, {"best": best.index if best else None, "table": result.table(),
                                                   "compile_seconds": result.compile_seconds,
                                                   "train_seconds": result.train_seconds})


def write_best(best_dir: Path, result, train, stats=None) -> None:
    """best/: the best model's run directory (config.json, preprocessing.json, metrics.jsonl, its
    checkpoint with params, optimizer state, key and history), as `jaxmlp train` writes one;
    `stats`: the FeatureStats the data was standardized with (None: none)."""
    import jax

    from jaxmlp import rundir
    from jaxmlp.run_preprocessing import write_preprocessing
    from jaxmlp.training.fit import Progress, save
    from jaxmlp.training.plan import plan_of, run_spec

    best, snapshot = result.best, result.best_snapshot
    config = dataclasses.replace(best.config, out_dir=str(best_dir))
    claim = rundir.claim_run_dir(best_dir, config, overwrite=True, nested=True)  # ours: a finish interrupted before
    try:
        checkpoint.write_config(best_dir, config)
        write_preprocessing(best_dir, stats)
        checkpoint.MetricsLog(best_dir / checkpoint.METRICS_FILE).reset(best.history.records())
        run_plan = plan_of(config, run_spec(config, train), local=True)
        progress = Progress(snapshot.state, jax.random.wrap_key_data(snapshot.key_data), best.history, 0,
                            snapshot.best)
        ckpt = checkpoint.checkpointer_for(best_dir, config, alone=True)  # process 0's, on its own
        try:
            save(run_plan, progress, ckpt, len(best.history.epoch))
        finally:
            ckpt.close()
    finally:
        claim.release()
