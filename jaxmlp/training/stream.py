"""Streamed epochs: the training rows stay on the host (a data set on disk, `data.streamed`) and
reach the devices in chunks of k steps, gathered and sent by a background worker while the
previous chunk's scan runs, across epoch ends too (`stream_chunks`).

    epoch e:  rows (S, B) = epoch_order(epoch_key(train_key, e))    the resident path's permutation
              chunk [a, b): worker: x, y = read(rows[a:b]); device_put   (while chunk [.., a) runs,
                            the last chunk of epoch e - 1 for a = 0)
                            device: carry = scan(step, carry, steps a..b-1)
              end:          epoch_end(carry) -> (TrainState, EpochStats)

The steps, their keys (fold_in(step key, i)), their minibatches and their order are those of
the resident epoch, and the step is the same function: a streamed run equals the resident run
bit for bit (tests/test_stream.py). k is `plan.chunk_steps` (memory.chunk_steps: the steps whose
minibatches fill CHUNK_BYTES); chunks are also cut at the steps where a mid-epoch checkpoint
falls (`checkpoint_every_steps`), so the carry is on the host's hands exactly there.

The worker draws each epoch's permutation on this process's own default device from an
unreplicated key: a program of its own, never one that spans the processes of a multi-host run,
whose programs must start in the same order everywhere (the main thread's alone do).
"""
from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import jax
import numpy as np

from jaxmlp.training.feed import EpochRows, epoch_rows, feed_rows, prefetched
from jaxmlp.training.plan import Plan
from jaxmlp.training.programs import StreamPrograms
from jaxmlp.training.state import EpochStats, TrainState, epoch_key
from jaxmlp.types import Array


class Resume(NamedTuple):
    """Where a streamed epoch picks up: `position` steps done, with the scan's carry scalars as a
    mid-epoch checkpoint saved them (the params and optimizer state come with the TrainState)."""

    position: int
    loss_sum: float
    first_loss: float


def chunk_bounds(steps: int, k: int, start: int = 0, every: int = 0, step0: int = 0) -> list[tuple[int, int]]:
    """The epoch's steps [start, steps) cut into chunks of at most k, and also where the global
    step step0 + b is a multiple of `every` (a mid-epoch checkpoint; 0: none)."""
    cuts = set(range(start + k, steps, k))
    if every:
        cuts |= {b for b in range(start + 1, steps) if (step0 + b) % every == 0}
    edges = [start, *sorted(c for c in cuts if start < c < steps), steps]
    return list(zip(edges[:-1], edges[1:]))


class Chunk(NamedTuple):
    """Steps [a, b) of 0-based `epoch`, their inputs (index (k,), x, y, keys (k,)) on the devices."""

    epoch: int
    a: int
    b: int
    inputs: tuple


def chunk_schedule(plan: Plan, start_epoch: int, position: int = 0) -> Iterator[tuple[int, int, int]]:
    """(epoch, a, b) of every chunk of the run from step `position` of 0-based `start_epoch` on."""
    config, steps = plan.config, plan.spec.steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        start = position if epoch == start_epoch else 0
        for a, b in chunk_bounds(steps, plan.chunk_steps, start, config.checkpoint_every_steps, epoch * steps):
            yield epoch, a, b


def stream_chunks(plan: Plan, read: Callable, train_key: Array, start_epoch: int, position: int = 0,
                  place: Callable | None = None) -> Iterator[Chunk]:
    """Every Chunk of the run from (start_epoch, position) on, read by `read(rows) -> (x, y)` and
    sent PREFETCH chunks ahead of the one running, across epoch ends; `place`: see chunk_inputs."""
    config, orders = plan.config, {}

    def make(epoch: int, a: int, b: int) -> Chunk:  # on the worker thread, one chunk after another
        if epoch not in orders:
            orders.clear()
            orders[epoch] = epoch_rows(plan.spec.n_train, config.batch_size, config.accumulate,
                                       epoch_key(train_key, epoch))
        return Chunk(epoch, a, b, chunk_inputs(plan, read, orders[epoch], a, b, place))

    return prefetched(make, chunk_schedule(plan, start_epoch, position))


def chunk_inputs(plan: Plan, read: Callable, order: EpochRows, a: int, b: int, place: Callable | None = None):
    """Steps [a, b)'s (index (k,), x, y, keys (k,)) on the devices: each process reads only its
    own rows of every minibatch (parallel.DataParallel.feed); or, given `place(tree) -> tree on
    the devices`, every row, placed by it (a sweep's models share the chunk: sweeps/stream.py)."""
    index = np.arange(a, b, dtype=np.int32)
    keys = jax.random.wrap_key_data(order.key_data[a:b])
    x, y = feed_rows(plan.data_parallel, read, order.rows[a:b], place)
    put = place or plan.place
    return (put(index), x, y, put(keys))


def stream_epoch(plan: Plan, programs: StreamPrograms, chunks: Iterator[Chunk], epoch: int, state: TrainState,
                 resume: Resume | None = None, at_checkpoint: Callable | None = None
                 ) -> tuple[TrainState, EpochStats]:
    """0-based `epoch`, streamed from `state` (its start; on a resume, the state a mid-epoch
    checkpoint saved, whose step counts the epoch's done steps), its chunks taken from `chunks`
    (stream_chunks). at_checkpoint(position, carry): called where `checkpoint_every_steps` cuts
    the epoch, after the chunk before it has run (the carry is then final for those steps)."""
    steps, every = plan.spec.steps_per_epoch, plan.config.checkpoint_every_steps
    position = 0 if resume is None else resume.position
    start_state = state._replace(step=state.step - position)  # the epoch's first step, as epoch_end counts
    carry = programs.start(start_state)
    if resume is not None:
        carry = carry._replace(loss_sum=plan.place(np.float32(resume.loss_sum)),
                               first_loss=plan.place(np.float32(resume.first_loss)))
    b = position
    while b < steps:
        chunk = next(chunks)
        assert (chunk.epoch, chunk.a) == (epoch, b), "the chunks and the epochs went out of step"
        # the last chunk done first: dispatch is asynchronous, and without this wait the host would
        # read and queue chunks as fast as it can, holding all of them (the set, on a long epoch)
        carry, b = programs.chunk(jax.block_until_ready(carry), *chunk.inputs), chunk.b
        if at_checkpoint is not None and every and b < steps and (epoch * steps + b) % every == 0:
            at_checkpoint(b, carry)
    return programs.end(start_state, carry)
