"""Precision policies for training: fp32 | bf16 | highest.

    value, grads = loss_and_grad(params, x, y, precision="bf16", method="manual")   # backprop.py

A policy says in which dtype the network runs and at which precision its matmuls run. Params,
gradients and optimizer state always stay in the params' own dtype (the fp32 "master" copy),
and the loss (softmax, cross-entropy, ...) always runs in at least float32
(`backprop.loss_precision`). Three policies:

- ``fp32``: the network runs in the params' dtype (float32, or float64 with dtype float64) at
  JAX's default matmul precision. NOTE: on NVIDIA GPUs since Ampere (A100, H100) JAX's default
  precision for float32 matmuls is TF32 (10-bit mantissa inputs, fp32 accumulation), so
  "fp32" there means TF32 matmuls with fp32 everything else. On CPU it is full fp32.
- ``highest``: like fp32, but every matmul at ``jax.default_matmul_precision("highest")``:
  true fp32 (or fp64) matmuls on every platform (slower on GPU than TF32).
- ``bf16``: mixed precision. Inside the step the fp32 params and the inputs are cast to
  bfloat16, so the matmuls and activations (and dropout, input noise) run in bf16; the scores
  go back to fp32 for the loss and its gradient; the gradient comes back in fp32 with respect
  to the fp32 params (the cast's VJP), and the optimizer updates the fp32 params. The L2
  penalty and its gradient are computed from the fp32 params. No loss scaling is needed:
  bf16 has fp32's exponent range.

The manual backward (`method="manual"`) follows the same policy: it runs on the bf16 params
and activations, its bf16 gradients are cast to fp32. For autodiff this is exactly what
differentiating through the fp32->bf16 cast gives.

Evaluation and prediction run in the params' dtype at the default matmul precision.
"""
from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.names import PRECISIONS


def ambient_settings() -> tuple[bool, str | None]:
    """(x64, the default matmul precision): the JAX settings in force that a program compiled
    ahead of time bakes in. Every cache of compiled programs keys on them, so a program compiled
    under other settings (e.g. inside `jax.default_matmul_precision(...)`) is never handed out."""
    return bool(jax.config.jax_enable_x64), jax.config.jax_default_matmul_precision


class Policy(NamedTuple):
    """name; compute_dtype: the network's dtype inside the step (None = the params' dtype);
    matmul_precision: a `jax.default_matmul_precision` value (None = the platform default)."""

    name: str
    compute_dtype: Any | None
    matmul_precision: str | None


_POLICIES = {
    "fp32": Policy("fp32", None, None),
    "highest": Policy("highest", None, "highest"),
    "bf16": Policy("bf16", jnp.bfloat16, None),
}


def get_policy(precision: str | Policy) -> Policy:
    """The Policy named fp32, bf16 or highest (a Policy passes through)."""
    if isinstance(precision, Policy):
        return precision
    try:
        return _POLICIES[precision]
    except (KeyError, TypeError):
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}") from None


def matmul_precision(precision: str | Policy):
    """A context manager setting the policy's matmul precision while tracing (a no-op for fp32/bf16).

    `jax.default_matmul_precision` is read when a dot is traced, so entering this inside a
    jitted function sets the precision of the matmuls traced under it.
    """
    policy = get_policy(precision)
    if policy.matmul_precision is None:
        return contextlib.nullcontext()
    return jax.default_matmul_precision(policy.matmul_precision)


def cast_floating(tree, dtype):
    """Every floating-point array leaf of `tree` cast to `dtype` (ints, keys and None unchanged)."""
    def cast(leaf):
        if leaf is not None and jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            return jnp.asarray(leaf).astype(dtype)
        return leaf

    return jax.tree.map(cast, tree)
