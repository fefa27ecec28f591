"""A streamed sweep: the training set stays on disk and the models of a chunk train on ONE stream
of its rows (training/stream.py), each chunk of k steps read once and given to all of them.

    with shared_stream(plan, read, chunk, programs, start_epoch) as chunks:    # the chunk's seed's stream
        state, stats = streamed_epoch(programs, traced, chunks, epoch, state, active, check_data)

A model's minibatches come from its seed (epoch_order(epoch_key(train_key, e))), so models that
share a seed share their batches: a streamed sweep groups by seed (plan.py), and a chunk's stream
is its seed's, the very chunks a solo streamed fit of any of its models reads. Each model runs
the solo streamed epoch with its own numbers (chunk_programs.StreamedModels), so it equals that
fit bit for bit where the resident sweep equals the resident fit. On a mesh, over one process or
several, each process reads the whole chunk and places it on every one of its devices
(hosts.put), from the feed's worker thread: every model on every device reads it.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator

from jax.sharding import NamedSharding, PartitionSpec

from jaxmlp.sweeps import hosts
from jaxmlp.sweeps.chunk_programs import ChunkPrograms
from jaxmlp.sweeps.plan import Chunk, SweepPlan
from jaxmlp.training.evaluate import EvalSet, streamed_eval_set
from jaxmlp.training.feed import row_reader
from jaxmlp.training.programs import StreamPrograms
from jaxmlp.training.state import EpochStats, TrainState, run_keys
from jaxmlp.training.stream import stream_chunks, stream_epoch


def streamed_evals(plan: SweepPlan, splits: dict, dtype, rows: int) -> dict[str, tuple[EvalSet, int]]:
    """{name: (EvalSet, examples)} of every split given, in batches of `rows` read as they are
    evaluated (evaluate.StreamedBatches) and placed on every device: exact over all rows, none
    read whole."""
    return {name: (streamed_eval_set(row_reader(split, dtype), len(split), rows, place=_placement(plan)), len(split))
            for name, split in splits.items() if split is not None}


def _placement(plan: SweepPlan) -> Callable | None:
    """place(tree) -> the tree on every device of the plan's mesh, each process placing its own
    devices' copies (hosts.put); None on one device (the default placement)."""
    replicated = None if plan.mesh is None else NamedSharding(plan.mesh, PartitionSpec())
    return None if replicated is None else functools.partial(hosts.put, sharding=replicated)


@contextlib.contextmanager
def shared_stream(plan: SweepPlan, read: Callable, chunk: Chunk, programs: ChunkPrograms, start_epoch: int
                  ) -> Iterator:
    """The chunks of the sweep-chunk `chunk`'s run from 0-based `start_epoch` on (position 0: a
    sweep checkpoints at epoch ends), read ahead across epochs from its models' one seed's order;
    the reads ahead end when the block does."""
    seed = plan.configs[chunk.members[0]].seed  # the same for all of them: the group's
    chunks = stream_chunks(programs.stream.plan, read, run_keys(seed)[1], start_epoch, place=_placement(plan))
    try:
        yield chunks
    finally:
        chunks.close()


def streamed_epoch(programs: ChunkPrograms, traced: dict, chunks: Iterator, epoch: int, state: TrainState,
                   active, check_data: Callable[[], None]) -> tuple[TrainState, EpochStats]:
    """0-based `epoch` of the chunk's P models (state leaves (P, ...), active (P,) on the devices,
    traced {name: (P,)}), its chunks taken one after another from `chunks` (shared_stream) as
    stream_epoch takes them. check_data(): DataError when a shard changed since the sweep began."""
    check_data()
    models = programs.stream
    bound = StreamPrograms(models.start, functools.partial(models.chunk, traced),
                           lambda start, carry: models.end(traced, active, start, carry))
    return stream_epoch(models.plan, bound, chunks, epoch, state)
