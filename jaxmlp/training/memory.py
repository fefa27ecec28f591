"""How much device memory a run needs, estimated from shapes before anything is allocated, and
how much a device has: so that a run too large for its device is refused in one line instead
of dying in an allocator traceback.

    estimate = estimate_memory(config, spec, state_shapes, feed="resident")   # plan.memory holds the run's
    check_memory(estimate, device_memory_limit())     # ValueError naming what to lower

The estimate is exact for params, optimizer state and the resident data (their shapes are
known: `jax.eval_shape`, nothing is allocated) and an upper-bound style count for the
activations of one step: every hidden layer keeps its pre-activation, activation and dropout
mask for the backward pass, plus the gradients (the size of the params). XLA may need less
(fusion) or somewhat more (scratch); the check leaves a margin.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np

from jaxmlp.config import TrainConfig
from jaxmlp.training.state import TrainState

# A run may use up to this fraction of a device's memory by the estimate (the rest: XLA scratch,
# fragmentation, and the estimate's error).
USABLE_FRACTION = 0.9
# A streamed epoch's chunk holds the minibatches of the steps that fill this many bytes: large
# enough that a chunk's dispatch and transfer are a small part of its compute, small enough that
# the first chunk (gathered before any step can run) and the chunks in flight cost little.
CHUNK_BYTES = 64 << 20
CHUNKS_IN_FLIGHT = 3  # the one running and feed.PREFETCH = 2 gathered ahead


class MemoryEstimate(NamedTuple):
    """Bytes per device, by what holds them."""

    params: int  # the params (one copy; gradients are counted under activations)
    optimizer: int  # the optimizer state
    data: int  # the training set (resident), two epochs' minibatches (per_process) or three chunks (stream)
    activations: int  # one step's activations, dropout masks and gradients, plus one evaluation batch

    @property
    def total(self) -> int:
        return self.params + self.optimizer + self.data + self.activations


def _nbytes(tree) -> int:
    return sum(int(np.prod(a.shape, dtype=object)) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree))


def estimate_memory(config: TrainConfig, spec, state_shapes: TrainState, *, feed: str = "resident",
                    devices: int = 1) -> MemoryEstimate:
    """The MemoryEstimate of training `config` on data of `spec` (a plan.RunSpec), per device of
    `devices`; `state_shapes`: the TrainState's ShapeDtypeStructs (state.abstract_state)."""
    params, opt_state = _nbytes(state_shapes.params), _nbytes(state_shapes.opt_state)
    item, row = np.dtype(config.dtype).itemsize, example_bytes(config, spec)
    if feed == "resident":
        data = spec.n_train * row
    elif feed == "stream":
        data = CHUNKS_IN_FLIGHT * chunk_steps(config, spec) * config.batch_size * row // devices
    else:
        data = 2 * spec.steps_per_epoch * config.batch_size * row // devices
    micro = -(-config.batch_size // (config.accumulate * devices))  # rows per device per step
    widths = sum(spec.sizes[1:])
    pieces = config.k or 2 if config.activation == "maxout" else 1
    per_row = (3 * pieces * widths + spec.sizes[0]) * item  # z, a, mask per unit; the input
    evaluation = min(config.eval_batch_size, spec.n_train) * (pieces * widths + spec.sizes[0]) * item
    return MemoryEstimate(params, opt_state, data, micro * per_row + params + evaluation)


def example_bytes(config: TrainConfig, spec) -> int:
    """Bytes of one training example, x and y, in the run's dtype."""
    return (spec.sizes[0] + max(1, int(np.prod(spec.target_shape, dtype=object)))) * np.dtype(config.dtype).itemsize


def chunk_steps(config: TrainConfig, spec) -> int:
    """k, the steps of a streamed epoch's chunk: as many as fill CHUNK_BYTES, at least 1, at most
    the epoch."""
    per_step = config.batch_size * example_bytes(config, spec)
    return max(1, min(spec.steps_per_epoch, CHUNK_BYTES // per_step))


def device_memory_limit(device=None) -> int | None:
    """Bytes a device may allocate: the accelerator's own limit, or for a CPU the memory the
    host has available now (MemAvailable), else its physical memory. None when unknown."""
    device = device or jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return host_memory_available()


def host_memory_available() -> int | None:
    """Bytes the host has available now (MemAvailable), else its physical memory; None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(estimate: MemoryEstimate, limit: int | None, *, what: str = "this run") -> None:
    """ValueError when the estimate exceeds USABLE_FRACTION of `limit` (nothing to do without one)."""
    if limit is None or estimate.total <= USABLE_FRACTION * limit:
        return
    parts = ", ".join(f"{name} {format_bytes(getattr(estimate, name))}" for name in estimate._fields)
    if estimate.params + estimate.optimizer > USABLE_FRACTION * limit:  # the model alone does not fit
        lower = "hidden (the layer widths)"
    else:
        lower = {"params": "hidden (the layer widths)", "optimizer": "hidden, or use an optimizer with less state",
                 "data": "n_samples, or use data_feed stream",
                 "activations": "batch_size (or raise accumulate), eval_batch_size or hidden",
                 }[max(estimate._fields, key=lambda name: getattr(estimate, name))]
    raise ValueError(f"{what} needs about {format_bytes(estimate.total)} of device memory ({parts}) but the "
                     f"device has {format_bytes(limit)}; lower {lower}")


def format_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'; three significant digits, binary units up to PiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:,.0f} PiB"
