"""A sweep's progress: on the host while it runs (`SweepProgress`), and in its checkpoints.

    progress = SweepProgress()                                     # a fresh sweep
    save(checkpointer, plan, chunk, carry, train_keys, progress)   # after an epoch, or at a chunk's end
    saved = read_plan(checkpointer); progress = restore(checkpointer, plan)

Checkpoints go through the trainer's Checkpointer (atomic, kill -9 safe), numbered by epochs
over the whole sweep, chunk after chunk. A checkpoint's state is the running chunk's stacked
TrainState, its key the models' train key data (P, 2), its best item the models' stacked best
params (restore_best) and the best finished model so far whole (`Snapshot`), and its meta every
model's ModelResult, the chunk's active mask and the plan's chunk layout, so that a resumed
sweep runs the very same programs.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.sweeps import hosts
from jaxmlp.sweeps.plan import Chunk, SweepPlan
from jaxmlp.sweeps.chunk_programs import KEY_SHAPE, chunk_abstract_state
from jaxmlp.sweeps.result import ModelResult, Snapshot
from jaxmlp.training.plan import plan_of


class ChunkCarry(NamedTuple):
    """A running chunk's state: on the devices, leading axis P, and its host mask."""

    state: Any  # TrainState, leaves (P, ...)
    best: Any  # restore_best: each model's best-val-loss params (P, ...); None before any
    active: np.ndarray  # (P,) bool: still training (not stopped early, not diverged, not padding)


class Leader(NamedTuple):
    """The best model of the finished chunks, whole."""

    index: int
    snapshot: Snapshot


@dataclasses.dataclass
class SweepProgress:
    """What the sweep carries on the host from epoch to epoch and chunk to chunk."""

    models: dict[int, ModelResult] = dataclasses.field(default_factory=dict)  # those started so far
    chunk: int = 0  # the chunk running (or next)
    epoch: int = 0  # epochs it has run
    carry: ChunkCarry | None = None  # a chunk resumed mid-way
    leader: Leader | None = None
    compile_seconds: float = 0.0
    train_seconds: float = 0.0


def update_leader(plan: SweepPlan, chunk: Chunk, carry: ChunkCarry, train_keys, use_best: np.ndarray,
                  progress: SweepProgress) -> None:
    """Make the chunk's best model the leader when it ranks before the current one."""
    score, index, j = min((progress.models[i].score, i, j) for j, i in enumerate(chunk.members))
    leader = progress.leader
    if score == math.inf or (leader is not None and (progress.models[leader.index].score, leader.index) <= (score, index)):
        return
    solo = jax.tree.structure(plan_of(plan.configs[index], plan.specs[chunk.group], local=True).abstract_state())
    state = hosts.fetch(carry.state, plan.mesh, model=j)  # from the devices (and process) that trained it
    best = hosts.fetch(carry.best, plan.mesh, model=j) if use_best[j] else None
    # The group's optimizer may hold empty states (a weight-decay term for its other members) the
    # model's own run lacks: the same leaves, in the same order, in the solo structure.
    progress.leader = Leader(index, Snapshot(jax.tree.unflatten(solo, jax.tree.leaves(state)), best,
                                             hosts.fetch(train_keys, plan.mesh, model=j)))


def plan_meta(plan: SweepPlan) -> dict[str, Any]:
    """The plan's layout as a resumed sweep must repeat it (a streamed one streams again)."""
    chunks = [[c.group, list(c.members), c.size] for c in plan.chunks]
    return {"width": plan.width, "devices": plan.devices, "chunks": chunks, **({"streamed": True} if plan.streamed else {})}


def save(checkpointer, plan: SweepPlan, chunk: Chunk, carry: ChunkCarry, train_keys, progress: SweepProgress,
         *, complete: bool) -> None:
    """Checkpoint the chunk after `progress.epoch` epochs (complete: after its final evaluation)."""
    leader = progress.leader
    best: dict[str, Any] = {}
    if carry.best is not None:
        best["stacked"] = carry.best
    if leader is not None:
        best["leader"] = {k: v for k, v in leader.snapshot._asdict().items() if v is not None}
    meta = {"chunk": chunk.index, "epoch": progress.epoch, "complete": complete, "active": carry.active.tolist(),
            "stacked_best": carry.best is not None, "leader": None if leader is None else leader.index,
            "leader_best": leader is not None and leader.snapshot.best is not None, "plan": plan_meta(plan),
            "models": [m.to_dict() for m in progress.models.values()],
            "compile_seconds": progress.compile_seconds, "train_seconds": progress.train_seconds,
            "processes": jax.process_count()}
    offset = sum(plan.groups[c.group].program.epochs for c in plan.chunks[:chunk.index])
    # every process writes its devices' shards of the stacked state (orbax); host values from process 0
    checkpointer.save(offset + progress.epoch, carry.state, hosts.fetch(train_keys, plan.mesh), {"sweep": meta},
                      best=best or None)


def read_plan(checkpointer) -> dict[str, Any] | None:
    """The plan layout of the latest checkpoint (None without one: the sweep starts afresh)."""
    if checkpointer.latest_epoch() is None:
        return None
    return checkpointer.read_meta()["sweep"]["plan"]


def finished_layout(checkpointer) -> list | None:
    """The chunk layout ([group, members, size] per chunk, as sweep.json records it) when the
    latest checkpoint is the last chunk's, complete (the sweep has nothing left to train), else None."""
    if checkpointer.latest_epoch() is None:
        return None
    meta = checkpointer.read_meta().get("sweep")
    try:
        chunks = meta["plan"]["chunks"]
        done = bool(meta["complete"]) and meta["chunk"] == len(chunks) - 1
    except (TypeError, KeyError):
        raise ValueError(f"{checkpointer.directory}: the latest checkpoint is not a sweep's") from None
    return chunks if done else None


def restore(checkpointer, plan: SweepPlan) -> SweepProgress:
    """The progress of the latest checkpoint, its chunk's state on the plan's devices."""
    meta = checkpointer.read_meta()["sweep"]
    devices, processes = meta["plan"].get("devices"), meta.get("processes", 1)
    if devices != plan.devices:  # the same devices over other processes: orbax re-shards, below
        raise ValueError(f"the checkpoint's sweep ran on {devices} devices ({processes} process(es)), this one on "
                         f"{plan.devices} ({jax.process_count()} process(es)): resume it on {devices} devices, "
                         "over any number of processes")
    if meta["plan"] != plan_meta(plan):
        raise ValueError("the checkpoint was written by another sweep: its models, groups, devices or width differ")
    chunk = plan.chunks[meta["chunk"]]
    group = plan.groups[chunk.group]
    abstract = chunk_abstract_state(group.program, plan.specs[chunk.group], group.inits, size=chunk.size,
                                    mesh=plan.mesh)
    best: dict[str, Any] = {}
    if meta["stacked_best"]:
        best["stacked"] = abstract.params
    if meta["leader"] is not None:
        best["leader"] = _snapshot_target(plan, meta["leader"], meta["leader_best"])
    keys = jax.ShapeDtypeStruct((chunk.size, *KEY_SHAPE), jnp.uint32)
    restored = checkpointer.restore(abstract, abstract_best=best or None, abstract_key=keys)
    progress = SweepProgress({d["index"]: ModelResult.from_dict(d) for d in meta["models"]},
                             compile_seconds=meta["compile_seconds"], train_seconds=meta["train_seconds"])
    if meta["leader"] is not None:
        saved = jax.device_get(restored.best["leader"])
        progress.leader = Leader(meta["leader"], Snapshot(saved["state"], saved.get("best"), saved["key_data"]))
    if meta["complete"]:
        progress.chunk = chunk.index + 1
    else:
        progress.chunk, progress.epoch = chunk.index, meta["epoch"]
        progress.carry = ChunkCarry(restored.state, (restored.best or {}).get("stacked"), np.array(meta["active"]))
    return progress


def _snapshot_target(plan: SweepPlan, index: int, has_best: bool) -> dict[str, Any]:
    """The restore target of model `index`'s Snapshot: its solo run's structure."""
    group = next(g for g in plan.groups if index in g.members)
    state = plan_of(plan.configs[index], plan.specs[group.index], local=True).abstract_state()
    target = {"state": state, "key_data": jax.ShapeDtypeStruct(KEY_SHAPE, jnp.uint32)}
    if has_best:
        target["best"] = state.params
    return target
