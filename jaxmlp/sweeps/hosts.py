"""The model axis between the hosts and the devices, in one process or over several.

    inputs = put(host_tree, sharding)     # every process holds the same host values; each places its devices' share
    stats = fetch(device_tree, mesh)      # every model's values on every process's host (numpy)
    state = fetch(device_tree, mesh, model=j)   # model j's slice alone, on every host

A sweep on the global mesh (jax.distributed: the "models" axis over every device of every
process) feeds each device from its own process: every process holds the training set and the
per-model inputs once on its host and places on its own devices only the models they train
(`jax.make_array_from_callback`), so nothing but the numbers below crosses between processes.
Back on the host, every process needs every model's scalars of an epoch (the loss, whether it
was finite, the evaluation sums: (P,) arrays) to apply the loop policy to each model and to keep
one history per model: `fetch` gathers them with one small all-gather per call. Each model's
decisions read only its own numbers. A model's whole state crosses only at a chunk's end, when it
leads the ranking (the best model so far, kept whole for `best/`).

In one process `put` is `jax.device_put` and `fetch` is `jax.device_get`, unchanged.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxmlp.training.programs import program


def several() -> bool:
    """True in a multi-process run: the mesh holds devices this process cannot address."""
    return jax.process_count() > 1


def put(tree, sharding: NamedSharding | None):
    """Host arrays (the same in every process) -> arrays laid out by `sharding` (None: the
    default device). With several processes each process builds only its own devices' shards
    (typed PRNG keys too); leaves already global (on devices of other processes too) stay as
    they are. No program runs: a feed's worker thread may call it."""
    if sharding is None or not several():
        return jax.device_put(tree, sharding)

    def leaf(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            return a
        if jax.dtypes.issubdtype(getattr(a, "dtype", None), jax.dtypes.prng_key):  # typed keys: their raw data placed
            return jax.random.wrap_key_data(leaf(jax.random.key_data(a)), impl=jax.random.key_impl(a))  # (no program)
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(leaf, tree)


def fetch(tree, mesh: Mesh | None, *, model: int | None = None):
    """`tree`'s arrays (leading axis: the models) as numpy on this host, all of them, or only
    model `model`'s slice (the leading axis dropped). With several processes the values come from
    the devices that hold them, in one all-gather."""
    if model is not None:
        if not several():
            return jax.device_get(jax.tree.map(lambda a: a[model], tree))
        tree = _slice_program(mesh)(tree, put(np.int32(model), NamedSharding(mesh, PartitionSpec())))
    if not several():
        return jax.device_get(tree)
    replicated = _replicate_program(mesh)(tree)
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), replicated)


@program("hosts_replicate")
def _replicate_program(mesh: Mesh):
    """Jitted identity whose result is on every device of `mesh`: XLA's all-gather."""
    return jax.jit(lambda tree: tree, out_shardings=NamedSharding(mesh, PartitionSpec()))


@program("hosts_slice")
def _slice_program(mesh: Mesh):
    """Jitted (tree (P, ...), j ()) -> tree[j] (...), on every device of `mesh`."""
    def take(tree, j):
        return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, j, keepdims=False), tree)

    return jax.jit(take, out_shardings=NamedSharding(mesh, PartitionSpec()))
