"""Activation functions, each with its local derivative written beside its forward rule.

An activation maps pre-activations ``z`` to activations ``a = f(z)``. The hand-written
backprop (``backprop.py``) needs the local derivative, so each activation carries a
``backward`` that turns the upstream gradient ``da`` into ``dz`` (and, for PReLU, the
gradient of its learnable slope).

Shapes: for elementwise activations ``z``, ``a`` and ``da`` are ``(B, d)``. Maxout works
on ``z`` of shape ``(B, k, d)`` (k pieces per unit) and returns ``a`` of shape ``(B, d)``.

Tie-breaking follows ``jax.grad`` exactly, so manual and automatic gradients agree even at
kinks: relu'(0) = 0, leaky_relu'(0) = prelu'(0) = 1, elu'(0) = alpha, and maxout splits the
gradient evenly among tied pieces.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from jaxmlp.names import ACTIVATIONS, ACTIVATION_OPTIONS as OPTIONS
from jaxmlp.types import Array


class Activation(NamedTuple):
    """An activation and its derivative.

    forward(z, slope) -> a        slope is the PReLU per-unit slope (d,), else None
    backward(da, z, a, slope) -> (dz, dslope)   dslope is None unless the activation learns it
    """

    name: str
    forward: Callable[[Array, Array | None], Array]
    backward: Callable[[Array, Array, Array, Array | None], tuple[Array, Array | None]]
    default_init: str  # init scheme used by init_mlp when none is given
    learnable_slope: bool = False  # PReLU: the layer has a per-unit `alpha` parameter
    pieces: int = 1  # maxout: k weight sets per layer


# --- identity: a = z;  da/dz = 1 ------------------------------------------------------------
def _identity(z, slope=None):
    return z


def _identity_backward(da, z, a, slope=None):
    return da, None


# --- sigmoid: a = 1 / (1 + e^-z);  da/dz = a (1 - a) ---------------------------------------
def _sigmoid(z, slope=None):
    return jax.nn.sigmoid(z)


def _sigmoid_backward(da, z, a, slope=None):
    return da * a * (1 - a), None


# --- tanh: a = tanh(z);  da/dz = 1 - a^2 -----------------------------------------------------
def _tanh(z, slope=None):
    return jnp.tanh(z)


def _tanh_backward(da, z, a, slope=None):
    return da * (1 - a * a), None


# --- relu: a = max(0, z);  da/dz = [z > 0] ---------------------------------------------------
def _relu(z, slope=None):
    return jax.nn.relu(z)  # its custom JVP gives relu'(0) = 0, like the mask below


def _relu_backward(da, z, a, slope=None):
    return jnp.where(z > 0, da, jnp.zeros_like(da)), None


# --- leaky relu: a = z if z >= 0 else alpha z;  da/dz = 1 or alpha ---------------------------
def _make_leaky_relu(alpha: float):
    def forward(z, slope=None):
        return jnp.where(z >= 0, z, alpha * z)

    def backward(da, z, a, slope=None):
        return jnp.where(z >= 0, da, alpha * da), None

    return forward, backward


# --- prelu: a = z if z >= 0 else slope z (slope learned, one per unit) -----------------------
#     da/dz = 1 or slope;  da/dslope = 0 or z (summed over the batch)
def _prelu(z, slope):
    return jnp.where(z >= 0, z, slope * z)


def _prelu_backward(da, z, a, slope):
    dz = jnp.where(z >= 0, da, slope * da)  # (B, d)
    dslope = jnp.sum(jnp.where(z >= 0, jnp.zeros_like(z), z) * da, axis=0)  # (d,)
    return dz, dslope


# --- elu: a = z if z > 0 else alpha (e^z - 1);  da/dz = 1 or a + alpha -----------------------
def _make_elu(alpha: float):
    def forward(z, slope=None):
        # expm1 of where(z > 0, 0, z) keeps the unused branch finite (its gradient is never
        # 0 * inf) and, unlike minimum(z, 0), gives elu'(0) = alpha with no tie-splitting.
        return jnp.where(z > 0, z, alpha * jnp.expm1(jnp.where(z > 0, jnp.zeros_like(z), z)))

    def backward(da, z, a, slope=None):
        return jnp.where(z > 0, da, da * (a + alpha)), None

    return forward, backward


# --- gelu (exact): a = z Phi(z);  da/dz = Phi(z) + z phi(z) ----------------------------------
#     gelu (tanh approximation): a = z/2 (1 + t), t = tanh(c (z + 0.044715 z^3)), c = sqrt(2/pi)
#     da/dz = (1 + t)/2 + z/2 (1 - t^2) c (1 + 3 * 0.044715 z^2)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _make_gelu(approximate: bool):
    if approximate:

        def forward(z, slope=None):
            t = jnp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3))
            return 0.5 * z * (1 + t)

        def backward(da, z, a, slope=None):
            t = jnp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3))
            dt = (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * z * z)
            return da * (0.5 * (1 + t) + 0.5 * z * dt), None

    else:

        def forward(z, slope=None):
            return 0.5 * z * (1 + erf(z * _INV_SQRT_2))

        def backward(da, z, a, slope=None):
            cdf = 0.5 * (1 + erf(z * _INV_SQRT_2))
            pdf = _INV_SQRT_2PI * jnp.exp(-0.5 * z * z)
            return da * (cdf + z * pdf), None

    return forward, backward


# --- maxout: a = max_j z_j over k pieces;  da/dz_j = [z_j == a] / (number of ties) ----------
def _maxout(z, slope=None):
    return jnp.max(z, axis=-2)  # (B, k, d) -> (B, d)


def _maxout_backward(da, z, a, slope=None):
    winners = (z == a[..., None, :]).astype(da.dtype)  # (B, k, d), 1 at the max piece(s)
    share = winners / jnp.sum(winners, axis=-2, keepdims=True)
    return share * da[..., None, :], None  # (B, k, d)


# --- registry --------------------------------------------------------------------------------
def resolve_options(name: str, **options) -> dict[str, object]:
    """The full option dict for `name`: defaults overridden by `options`; bad ones raise."""
    if name not in OPTIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    unknown = set(options) - set(OPTIONS[name])
    if unknown:
        allowed = ", ".join(OPTIONS[name]) or "none"
        raise ValueError(
            f"activation {name!r} takes no option(s) {', '.join(sorted(unknown))} (allowed: {allowed})"
        )
    resolved = {**OPTIONS[name], **options}
    if name == "maxout" and (not isinstance(resolved["k"], int) or resolved["k"] < 2):
        raise ValueError(f"maxout needs an integer k >= 2 pieces, got k={resolved['k']!r}")
    if name in ("leaky_relu", "prelu", "elu") and not isinstance(resolved["alpha"], (int, float)):
        raise ValueError(f"{name} alpha must be a number, got {resolved['alpha']!r}")
    return resolved


def get_activation(name: str | Activation, **options) -> Activation:
    """Look up an activation by name; `options` as listed in `OPTIONS` (e.g. alpha=0.1)."""
    if isinstance(name, Activation):
        if options:
            raise ValueError("options cannot be given together with an Activation object")
        return name
    opts = resolve_options(name, **options)
    if name == "identity":
        return Activation(name, _identity, _identity_backward, "xavier_normal")
    if name == "sigmoid":
        return Activation(name, _sigmoid, _sigmoid_backward, "xavier_normal")
    if name == "tanh":
        return Activation(name, _tanh, _tanh_backward, "xavier_normal")
    if name == "relu":
        return Activation(name, _relu, _relu_backward, "he_normal")
    if name == "leaky_relu":
        return Activation(name, *_make_leaky_relu(float(opts["alpha"])), "he_normal")
    if name == "prelu":
        return Activation(name, _prelu, _prelu_backward, "he_normal", learnable_slope=True)
    if name == "elu":
        return Activation(name, *_make_elu(float(opts["alpha"])), "he_normal")
    if name == "gelu":
        return Activation(name, *_make_gelu(bool(opts["approximate"])), "he_normal")
    return Activation(name, _maxout, _maxout_backward, "he_normal", pieces=int(opts["k"]))
