"""`audit_every`: a live three-way gradient audit, part of the training run.

Every `audit_every` epochs, after the epoch, on a fixed audit batch (the first AUDIT_BATCH
training examples; dropout and input noise from a key fixed by the seed) the run compares

- the hand-written backprop with `jax.grad` in the run's dtype, at full matmul precision (so
  TF32 on a GPU cannot blur it): the relative error of every layer and field;
- `jax.grad` with centered finite differences at AUDIT_CHECKS random coordinates of every
  leaf, drawn anew at each audit, in float64 on a copy of the params and the batch. Of
  CANDIDATES random entries of the leaf, the well-resolved ones (|∂f/∂θ| >= WELL_RESOLVED
  times the leaf's largest) come first, in random order, then the largest: on a trained net
  many entries are tiny, and there the differences' round-off (~ 1e-16 |f| / AUDIT_STEP)
  would swamp them. A wrong derivative rule is off by a fraction of the gradient itself, far
  above either tolerance.

Errors are gradcheck.relative_error, the finite differences gradcheck.numeric_grad_at. The
record's "audit" column holds both errors per "layer.field", the worst of each, and `ok`. A
failed audit warns on the console; with `audit_strict`, `fit` raises GradientAuditFailed
before the epoch's checkpoint is written, so the last checkpoint is the last audited-good one.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp import parallel
from jaxmlp.backprop import loss_and_grad, objective
from jaxmlp.config import TrainConfig
from jaxmlp.gradcheck import numeric_grad_at, relative_error
from jaxmlp.mlp import Params
from jaxmlp.precision import matmul_precision
from jaxmlp.training.plan import Plan
from jaxmlp.types import Array

AUDIT_BATCH = 8  # examples in the audit batch
AUDIT_CHECKS = 3  # finite-difference coordinates per leaf and audit
AUDIT_STEP = 1e-5  # the float64 finite-difference step
WELL_RESOLVED = 0.1  # coordinates are drawn among entries with |gradient| >= this times the leaf's largest
CANDIDATES = 256  # random entries per leaf the coordinates are picked from
# (manual vs jax.grad in the run's dtype, jax.grad vs finite differences in float64)
TOLERANCES = {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-5)}


class GradientAuditFailed(RuntimeError):
    """An audit exceeded its tolerance in a run with audit_strict; `epoch` is 1-based."""

    def __init__(self, epoch: int, audit: dict[str, Any]):
        self.epoch, self.audit = epoch, audit
        super().__init__(f"gradient audit failed after epoch {epoch}: {audit['summary']}; the hand-written "
                         "backward pass (or jax.grad) is wrong for this model")


def leaf_names(params: Params) -> list[str]:
    """"layer.field" of every leaf of params, in `jax.tree.leaves` order (W, b, alpha per layer)."""
    return [f"{i}.{field}" for i, layer in enumerate(params) for field in ("W", "b", "alpha")
            if getattr(layer, field) is not None]


class GradientAudit:
    """The audit of one run: its fixed batch, key and compiled comparisons."""

    def __init__(self, plan: Plan, host: tuple[np.ndarray, np.ndarray]):
        """host: the training set's (x (N, D), y (N, ...)) in the run's dtype (evaluate.host_arrays)."""
        config = plan.config
        self.x, self.y = host[0][:AUDIT_BATCH], host[1][:AUDIT_BATCH]
        self.seed, self.tolerance = config.seed, TOLERANCES[config.dtype]
        loss, act = plan.loss_fn, plan.activation
        settings = dict(loss=loss, l2=config.l2, activation=act, key=jax.random.key(config.seed),
                        dropout=config.dropout, input_noise=config.input_noise, train=True)
        self._objective = functools.partial(objective, **settings)
        self._both = jax.jit(functools.partial(_manual_and_autodiff, settings=settings))
        self._numeric = jax.jit(self._autodiff_and_numeric)

    def _autodiff_and_numeric(self, params: Params, x: Array, y: Array, key: Array):
        """(jax.grad at AUDIT_CHECKS well-resolved coordinates of each leaf, centered differences
        there): two lists of (n_i,)."""
        def f(p):
            return self._objective(p, x, y)

        at, numeric = [], []
        leaves = jax.tree.leaves(jax.grad(f)(params))
        for i, (leaf, k) in enumerate(zip(leaves, jax.random.split(key, len(leaves)))):
            idx = _pick_coordinates(k, jnp.abs(leaf.ravel()))
            at.append(leaf.ravel()[idx])
            numeric.append(numeric_grad_at(f, params, i, idx, AUDIT_STEP))
        return at, numeric

    def check(self, params: Params, epoch: int) -> dict[str, Any]:
        """The "audit" column after 0-based `epoch`: errors per "layer.field", worst, ok, summary."""
        names = leaf_names(params)
        params = parallel.to_local(params)
        manual, auto = jax.device_get(self._both(params, self.x, self.y))
        vs_autodiff = dict(zip(names, map(relative_error, jax.tree.leaves(manual), jax.tree.leaves(auto))))
        key = jax.random.fold_in(jax.random.key(self.seed), epoch)  # new coordinates every audit
        with jax.enable_x64(True):  # the finite differences: float64, on a copy
            copy = jax.tree.map(lambda p: np.asarray(p, np.float64), params)
            y64 = self.y if np.issubdtype(self.y.dtype, np.integer) else np.asarray(self.y, np.float64)
            at, numeric = jax.device_get(self._numeric(copy, np.asarray(self.x, np.float64), y64, key))
        vs_numeric = dict(zip(names, map(relative_error, at, numeric)))
        return audit_record(vs_autodiff, vs_numeric, self.tolerance)


def _pick_coordinates(key: Array, magnitude: Array) -> Array:
    """(AUDIT_CHECKS,) flat indices of a leaf with gradient magnitudes (n,): of CANDIDATES random
    entries, the well-resolved ones first in random order, then the largest."""
    pick_key, order_key = jax.random.split(key)
    n = magnitude.shape[0]
    candidates = jax.random.randint(pick_key, (min(CANDIDATES, n),), 0, n)
    largest = jnp.max(magnitude)
    size = magnitude[candidates] / jnp.where(largest > 0, largest, 1)  # in [0, 1]
    order = jnp.where(size >= WELL_RESOLVED, 1 + jax.random.uniform(order_key, size.shape, size.dtype), size)
    return candidates[jax.lax.top_k(order, min(AUDIT_CHECKS, n))[1]]


def _manual_and_autodiff(params, x, y, settings: dict[str, Any]):
    """(manual grads, jax.grad grads) of the objective under `settings` (loss_and_grad's
    keywords), at full matmul precision."""
    with matmul_precision("highest"):
        manual = loss_and_grad(params, x, y, method="manual", **settings)[1]
        auto = loss_and_grad(params, x, y, method="autodiff", **settings)[1]
    return manual, auto


def audit_record(vs_autodiff: dict[str, float], vs_numeric: dict[str, float],
                 tolerance: tuple[float, float]) -> dict[str, Any]:
    """The audit column: both error dicts, the worst of each with its leaf, ok, and a summary line."""
    parts, ok = [], True
    for label, errors, tol in (("manual vs jax.grad", vs_autodiff, tolerance[0]),
                               ("jax.grad vs finite differences", vs_numeric, tolerance[1])):
        leaf = max(errors, key=errors.get)
        within = errors[leaf] <= tol
        ok &= within
        at = "" if within else f" at layer {leaf.replace('.', ' ')}"
        parts.append(f"{label} {errors[leaf]:.1e}{at} (tolerance {tol:.0e})")
    return {"manual_vs_autodiff": vs_autodiff, "autodiff_vs_numeric": vs_numeric,
            "worst_manual_vs_autodiff": max(vs_autodiff.values()), "worst_autodiff_vs_numeric": max(vs_numeric.values()),
            "checks_per_leaf": AUDIT_CHECKS, "ok": bool(ok), "summary": ", ".join(parts)}


def audit_columns(audit: GradientAudit | None, config: TrainConfig, params: Params, epoch: int) -> dict[str, Any]:
    """{"audit": ...} after 0-based `epoch` when an audit is due, else {}."""
    if audit is None or (epoch + 1) % config.audit_every:
        return {}
    return {"audit": audit.check(params, epoch)}


def audit_failure(config: TrainConfig, record: dict[str, Any]) -> GradientAuditFailed | None:
    """With audit_strict, the GradientAuditFailed that ends the run when the record's audit failed."""
    audit = record.get("audit")
    if config.audit_strict and audit is not None and not audit["ok"]:
        return GradientAuditFailed(record["epoch"], audit)
    return None


__all__ = ["GradientAudit", "GradientAuditFailed", "audit_columns", "audit_failure", "audit_record", "leaf_names",
           "AUDIT_BATCH", "AUDIT_CHECKS", "TOLERANCES"]
