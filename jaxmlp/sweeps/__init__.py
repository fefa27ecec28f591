"""Many models in one program: `sweep` (`jaxmlp.sweep`) trains a grid of TrainConfig variants
(seeds, learning rates, weight decay, dropout, warm-up, ..., shapes too) as vmapped programs, on
one device or sharded over many, each model exactly its solo `fit`.

    result = jaxmlp.sweep(TrainConfig(hidden=(512, 512), epochs=10, val_fraction=0.1),
                          {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3], "seed": range(4)},
                          splits.train, splits.val, splits.test)
    print(result.format_table())     # ranked, pandas-free
    result.best_params

Modules, one concept each, imports pointing down this list:

    grid            the grid: overrides per model, how each field may vary, model configs
    result          ModelResult, Snapshot, SweepResult: ranking and the table
    hosts           the model axis between the hosts and the devices of every process: put, fetch
    chunk_programs  a chunk's compiled programs: init, the epoch of P models (vmap / lax.map, shard_map), metrics
    plan            groups (one program each), chunks sized to the device memory, SweepPlan
    store           SweepProgress on the host, and its checkpoints (stacked state, best model, histories)
    stream          a streamed sweep: the models of a seed share one stream of rows read from disk
    loop            sweep(): the phases, per chunk and per epoch
    sweepdir        the sweep's run directory: sweep.json, results.jsonl, summary.md, best/, the results log
    plots           sweep.png: every model's curve, and a heatmap for a 2-D grid
"""
from jaxmlp.sweeps.grid import expand_grid, field_kind, model_configs
from jaxmlp.sweeps.loop import sweep
from jaxmlp.sweeps.result import ModelResult, Snapshot, SweepResult

__all__ = ["sweep", "SweepResult", "ModelResult", "Snapshot", "expand_grid", "field_kind", "model_configs"]
