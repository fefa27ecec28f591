"""A streamed epoch: the training rows stay on the host (a data set on disk, `data.streamed`) and
reach the devices in chunks of k steps, gathered and sent by a background worker while the
previous chunk's scan runs.

    epoch e:  rows (S, B) = epoch_order(epoch_key(train_key, e))    the resident path's permutation
              chunk [a, b): worker: x, y = read(rows[a:b]); device_put   (while chunk [.., a) runs)
                            device: carry = scan(step, carry, steps a..b-1)
              end:          epoch_end(carry) -> (TrainState, EpochStats)

The steps, their keys (fold_in(step key, i)), their minibatches and their order are those of
the resident epoch, and the step is the same function: a streamed run equals the resident run
bit for bit (tests/test_stream.py). k is `plan.chunk_steps` (memory.chunk_steps: the steps whose
minibatches fill CHUNK_BYTES); chunks are also cut at the steps where a mid-epoch checkpoint
falls (`checkpoint_every_steps`), so the carry is on the host's hands exactly there.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np

from jaxmlp.training.feed import EpochRows, epoch_rows, feed_rows, prefetched
from jaxmlp.training.plan import Plan
from jaxmlp.training.programs import StreamPrograms
from jaxmlp.training.state import EpochStats, TrainState
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


def chunk_inputs(plan: Plan, read: Callable, order: EpochRows, a: int, b: int):
    """Steps [a, b)'s (index (k,), x, y, keys (k,)) on the devices: each process reads only its
    own rows of every minibatch (parallel.DataParallel.feed)."""
    x, y = feed_rows(plan.data_parallel, read, order.rows[a:b])
    index = np.arange(a, b, dtype=np.int32)
    keys = jax.random.wrap_key_data(order.key_data[a:b])
    return (plan.place(index), x, y, plan.place(keys))


def stream_epoch(plan: Plan, programs: StreamPrograms, read: Callable, key: Array, state: TrainState,
                 resume: Resume | None = None, at_checkpoint: Callable | None = None
                 ) -> tuple[TrainState, EpochStats]:
    """One streamed epoch from `state` (its start; on a resume, the state a mid-epoch checkpoint
    saved, whose step counts the epoch's done steps). read(rows) -> (x, y) host arrays in the
    run's dtype. at_checkpoint(position, carry): called where `checkpoint_every_steps` cuts the
    epoch, after the chunk before it has run (the carry is then final for those steps)."""
    config, steps = plan.config, plan.spec.steps_per_epoch
    position = 0 if resume is None else resume.position
    start_state = state._replace(step=state.step - position)  # the epoch's first step, as epoch_end counts
    carry = programs.start(start_state)
    if resume is not None:
        carry = carry._replace(loss_sum=plan.place(np.float32(resume.loss_sum)),
                               first_loss=plan.place(np.float32(resume.first_loss)))
    order = epoch_rows(plan.spec.n_train, config.batch_size, config.accumulate, key)
    every = config.checkpoint_every_steps if at_checkpoint is not None else 0
    step0 = int(start_state.step)
    bounds = chunk_bounds(steps, plan.chunk_steps, position, every, step0)
    for (a, b), inputs in zip(bounds, prefetched(lambda a, b: chunk_inputs(plan, read, order, a, b), bounds)):
        carry = programs.chunk(carry, *inputs)
        if every and b < steps and (step0 + b) % every == 0:
            at_checkpoint(b, carry)
    return programs.end(start_state, carry)
