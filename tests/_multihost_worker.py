"""Subprocess helper of tests/test_parallel.py and tests/test_sweep_hosts.py (not a test module): runs jobs in a fresh JAX.

    python tests/_multihost_worker.py '{"jobs": [...], "distributed": {...}}'

A fresh process is needed because the device count (XLA_FLAGS=--xla_force_host_platform_device_count)
and jax.distributed must be set before JAX initializes, and the pytest process keeps 1 device.
Prints ONE line `RESULT <json>` on stdout: {"process": i, "devices": n, "results": [...]}, one
result per job, each {"ok": ...} or {"error": "<type>: <message>"}.

Jobs:
  {"kind": "fit", "config": {...TrainConfig fields}[, "load_seed": s]}  -> {"params": [[W, b], ...], "final": ...,
      "reads": the shape of the rows of every read of a data set on disk (data.streamed)}
  {"kind": "sweep", "config": {...}, "grid": {...}}  -> {"params": per model, "ranking": model indices, "scores"}
  {"kind": "feed", "batch": B, "sizes": [...], "method": m}  -> grads of one step whose global batch
      is built from the rows each process feeds (parallel.DataParallel.shard_batch)
  {"kind": "cli", "argv": [...]}  -> {"code": exit status, "writes": [files this process wrote],
      "fed": [[local shape, global shape], ...] of the arrays built from per-process data}

"distributed": {"coordinator": "127.0.0.1:PORT", "num_processes": N, "process_id": I, "timeout": s}
starts jax.distributed first (jobs of kind "cli" pass their own flags instead).
"""
from __future__ import annotations

import json
import sys
import traceback


def _tolist(tree):
    import jax
    import numpy as np

    return [[None if leaf is None else np.asarray(leaf, np.float64).tolist() for leaf in layer] for layer in tree] \
        if isinstance(tree, list) else jax.tree.map(lambda a: np.asarray(a, np.float64).tolist(), tree)


def run_fit(job):
    import jaxmlp
    from jaxmlp.config import TrainConfig
    from jaxmlp.data import load_dataset

    config = TrainConfig.from_dict(job["config"])
    seed = job.get("load_seed", config.data_seed)  # a test may load other data than the config says
    splits = load_dataset(config.dataset, n_samples=config.n_samples, seed=seed)
    reads = _count_reads()  # the row indices' shapes of every read of a data set on disk
    params, history = jaxmlp.fit(config, splits.train)
    return {"params": _tolist(params), "final": history.final, "train_loss": history.train_loss, "reads": reads}


def _count_reads() -> list:
    """A list that gets the shape of the indices of every StreamedDataset.rows call from now on."""
    import numpy as np

    from jaxmlp.data.streamed import StreamedDataset

    reads, rows = [], StreamedDataset.rows
    StreamedDataset.rows = lambda self, indices: (reads.append(list(np.shape(indices))), rows(self, indices))[1]
    return reads


def run_sweep(job):
    """jaxmlp.sweep of `grid` over `config` on the spiral, every model's params kept."""
    import jaxmlp
    from jaxmlp.config import TrainConfig
    from jaxmlp.data import load_dataset

    config = TrainConfig.from_dict(job["config"])
    splits = load_dataset(config.dataset, seed=config.data_seed, val_fraction=config.val_fraction)
    result = jaxmlp.sweep(config, job["grid"], splits.train, splits.val, splits.test, keep_params=True)
    return {"params": [_tolist(m.params) for m in result.models], "ranking": [row["model"] for row in result.table()],
            "scores": [m.score for m in result.models]}


def run_feed(job):
    """One loss_and_grad on a global batch assembled from per-process slices."""
    import jax
    import numpy as np

    from jaxmlp import init_mlp, loss_and_grad, parallel

    dp = parallel.data_parallel("all")
    batch, sizes = job["batch"], tuple(job["sizes"])
    rng = np.random.default_rng(0)  # every process draws the same global batch...
    x = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch).astype(np.int32)
    rows = dp.process_rows(batch)  # ...and feeds only its own rows of it
    xg, yg = dp.shard_batch((x[rows], y[rows]))
    params = dp.replicate(init_mlp(jax.random.key(0), sizes))
    step = jax.jit(lambda p, xb, yb: loss_and_grad(p, xb, yb, method=job["method"]),
                   in_shardings=(dp.replicated, dp.batch_sharding(), dp.batch_sharding()),
                   out_shardings=dp.replicated)
    value, grads = step(params, xg, yg)
    return {"loss": float(value), "grads": _tolist(parallel.to_local(grads)),
            "local_rows": [rows.start, rows.stop], "x_sharding": str(xg.sharding.spec)}


def run_cli(job):
    """jaxmlp.cli.main(argv), recording which run files THIS process writes."""
    from jaxmlp import atomic, checkpoint, cli, plots

    writes = []

    def record(name, fn):
        def wrapper(*args, **kwargs):
            path = args[0] if args else next(iter(kwargs.values()))
            writes.append(f"{name}:{getattr(path, 'name', path)}")
            return fn(*args, **kwargs)
        return wrapper

    atomic.atomic_write_bytes = record("file", atomic.atomic_write_bytes)
    original_append = checkpoint.MetricsLog.append
    checkpoint.MetricsLog.append = lambda self, r: (writes.append("metrics:append"), original_append(self, r))[1]
    for name in ("plot_loss_curve", "plot_decision_boundary"):
        fn = getattr(plots, name)
        setattr(plots, name, lambda *a, _fn=fn, _name=name, **k: (writes.append(f"plot:{_name}"), _fn(*a, **k))[1])
    import jax

    fed = []  # (local shape, global shape) of every array built from per-process data
    make = jax.make_array_from_process_local_data

    def recording_make(sharding, local_data, global_shape=None):
        fed.append([list(local_data.shape), None if global_shape is None else list(global_shape)])
        return make(sharding, local_data, global_shape)

    jax.make_array_from_process_local_data = recording_make
    try:
        code = cli.main(job["argv"])
    finally:
        jax.make_array_from_process_local_data = make
    return {"code": code, "writes": writes, "fed": fed}


def main() -> None:
    spec = json.loads(sys.argv[1])
    dist = spec.get("distributed")
    if dist:
        from jaxmlp import distributed

        distributed.initialize(dist["coordinator"], dist["num_processes"], dist["process_id"],
                               timeout=dist.get("timeout", 60))
    results = []
    for job in spec["jobs"]:
        try:
            out = {"fit": run_fit, "sweep": run_sweep, "feed": run_feed, "cli": run_cli}[job["kind"]](job)
            results.append({"ok": out})
        except Exception as exc:  # report, keep going: the test decides
            results.append({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]})
    import jax

    print("RESULT " + json.dumps({"process": jax.process_index(), "devices": jax.device_count(),
                                  "results": results}), flush=True)


if __name__ == "__main__":
    main()
