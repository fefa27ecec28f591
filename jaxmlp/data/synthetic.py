"""Synthetic data sets, each fully determined by the JAX PRNG key passed first.

Random draws use `jax.random` (flat draws in power-of-two buckets, so only a few
samplers are ever compiled); the arithmetic after that is numpy, and the result is a
validated `Dataset`. An int is accepted in place of a key (``jax.random.key(int)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.data.dataset import DataError, Dataset


def _key(key: jax.Array | int) -> jax.Array:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    return key


def _keys(key: jax.Array | int) -> list[jax.Array]:
    """Four independent subkeys (always the same split shape, so it compiles once)."""
    return list(jax.random.split(_key(key), 4))


def _bucket(size: int) -> int:
    """Draw sizes are rounded up to a power of two (>= 256) so that JAX compiles one
    sampler per bucket instead of one per requested shape."""
    return max(256, 1 << (max(size, 1) - 1).bit_length())


def _normal(key: jax.Array, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal draws of `shape` as float32 numpy (deterministic in key and shape)."""
    size = math.prod(shape)
    flat = jax.random.normal(key, (_bucket(size),), dtype=jnp.float32)
    return np.asarray(flat)[:size].reshape(shape)


def _uniform(key: jax.Array, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Uniform [low, high) draws of `shape` as float32 numpy."""
    size = math.prod(shape)
    flat = np.asarray(jax.random.uniform(key, (_bucket(size),), dtype=jnp.float32))[:size]
    return (low + (high - low) * flat).astype(np.float32).reshape(shape)


def _check_n(n: int, what: str = "n", minimum: int = 1) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise DataError(f"synthetic data: {what} must be an int >= {minimum}, got {n!r}")


def _shuffled(key: jax.Array, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    perm = np.argsort(_uniform(key, (x.shape[0],)), kind="stable")
    return x[perm], y[perm]


def spiral(
    key: jax.Array | int, n_per_class: int = 100, num_classes: int = 3, noise: float = 0.2
) -> Dataset:
    """The CS231n spiral: `num_classes` interleaved arms in 2-D.

    Arm j has radius r = linspace(0, 1) and angle theta = linspace(4j, 4(j+1)) + noise * N(0, 1);
    the point is (r sin theta, r cos theta). Returns x (K*n, 2), y (K*n,) in class order.
    """
    _check_n(n_per_class, "n_per_class")
    _check_n(num_classes, "num_classes")
    eps = _normal(_keys(key)[0], (num_classes, n_per_class))
    r = np.linspace(0.0, 1.0, n_per_class, dtype=np.float32)
    xs, ys = [], []
    for j in range(num_classes):
        theta = np.linspace(j * 4.0, (j + 1) * 4.0, n_per_class, dtype=np.float32) + noise * eps[j]
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, j, dtype=np.int32))
    return Dataset(np.concatenate(xs), np.concatenate(ys), "spiral", num_classes, (2,))


def checkerboard(
    key: jax.Array | int, n: int = 1000, tiles: int = 2, noise: float = 0.0
) -> Dataset:
    """Points uniform in [-1, 1]^2 labelled by a `tiles` x `tiles` checkerboard.

    With tiles=2 this is XOR of the quadrants: label 1 where exactly one coordinate is
    positive. Labels are computed before optional Gaussian jitter of std `noise`.
    Returns x (n, 2), y (n,) in {0, 1}.
    """
    _check_n(n)
    _check_n(tiles, "tiles")
    k_pos, k_noise, *_ = _keys(key)
    x = _uniform(k_pos, (n, 2), -1.0, 1.0)
    cell = np.clip(np.floor((x + 1.0) * tiles / 2.0), 0, tiles - 1).astype(np.int64)
    y = ((cell[:, 0] + cell[:, 1]) % 2).astype(np.int32)
    if noise:
        x = x + np.float32(noise) * _normal(k_noise, (n, 2))
    return Dataset(x, y, "checkerboard", 2, (2,))


def circles(key: jax.Array | int, n: int = 1000, noise: float = 0.1, factor: float = 0.5) -> Dataset:
    """Two concentric circles: outer radius 1 is class 0, inner radius `factor` is class 1.

    Angles are evenly spaced, Gaussian noise of std `noise` is added, order is shuffled.
    Returns x (n, 2), y (n,).
    """
    _check_n(n, minimum=2)
    if not 0.0 < factor < 1.0:
        raise DataError(f"circles: factor must be in (0, 1), got {factor}")
    k_noise, k_perm, *_ = _keys(key)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x = np.concatenate([
        np.stack([np.cos(t_out), np.sin(t_out)], 1),
        factor * np.stack([np.cos(t_in), np.sin(t_in)], 1),
    ]).astype(np.float32)
    x = x + np.float32(noise) * _normal(k_noise, x.shape)
    y = np.concatenate([np.zeros(n_out, np.int32), np.ones(n_in, np.int32)])
    x, y = _shuffled(k_perm, x, y)
    return Dataset(x, y, "circles", 2, (2,))


def moons(key: jax.Array | int, n: int = 1000, noise: float = 0.1) -> Dataset:
    """Two interleaving half circles (class 0 upper, class 1 lower), noise std `noise`, shuffled.

    Returns x (n, 2), y (n,).
    """
    _check_n(n, minimum=2)
    k_noise, k_perm, *_ = _keys(key)
    n_a = n // 2
    n_b = n - n_a
    t_a = np.linspace(0, np.pi, n_a)
    t_b = np.linspace(0, np.pi, n_b)
    x = np.concatenate([
        np.stack([np.cos(t_a), np.sin(t_a)], 1),
        np.stack([1.0 - np.cos(t_b), 0.5 - np.sin(t_b)], 1),
    ]).astype(np.float32)
    x = x + np.float32(noise) * _normal(k_noise, x.shape)
    y = np.concatenate([np.zeros(n_a, np.int32), np.ones(n_b, np.int32)])
    x, y = _shuffled(k_perm, x, y)
    return Dataset(x, y, "moons", 2, (2,))


def blobs(
    key: jax.Array | int,
    n: int = 1000,
    num_classes: int = 3,
    dim: int = 2,
    std: float = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
) -> Dataset:
    """Isotropic Gaussian blobs: class centres uniform in `center_box`^dim, spread `std`.

    Classes are balanced (sizes differ by at most one); order is shuffled.
    Returns x (n, dim), y (n,).
    """
    _check_n(n)
    _check_n(num_classes, "num_classes")
    _check_n(dim, "dim")
    k_c, k_x, k_perm, _ = _keys(key)
    centers = _uniform(k_c, (num_classes, dim), center_box[0], center_box[1])
    y = (np.arange(n) % num_classes).astype(np.int32)
    x = centers[y] + np.float32(std) * _normal(k_x, (n, dim))
    x, y = _shuffled(k_perm, x, y)
    return Dataset(x, y, "blobs", num_classes, (dim,))


def teacher_params(
    teacher_key: jax.Array | int, d_in: int, d_out: int, hidden: Sequence[int] = (32,)
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weights [(W (d_i, d_{i+1}), b (d_{i+1},)), ...] of the teacher MLP, W ~ N(0, 1/d_i), b ~ N(0, 0.1^2)."""
    sizes = [d_in, *hidden, d_out]
    key = _key(teacher_key)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, k_w, k_b, _ = _keys(key)
        w = _normal(k_w, (a, b)) / np.float32(math.sqrt(a))
        bias = np.float32(0.1) * _normal(k_b, (b,))
        params.append((w, bias))
    return params


def teacher(
    key: jax.Array | int,
    n: int = 1024,
    d_in: int = 8,
    d_out: int = 1,
    hidden: Sequence[int] = (32,),
    noise: float = 0.0,
    teacher_key: jax.Array | int = 0,
) -> Dataset:
    """Regression targets from a fixed random tanh MLP (the "teacher").

    x ~ N(0, I) of shape (n, d_in) is drawn from `key`; the teacher's weights come from
    `teacher_key` alone, so splits drawn with different `key`s share one teacher.
    y = teacher(x) + noise * N(0, 1), shape (n, d_out) float32.
    """
    _check_n(n)
    _check_n(d_in, "d_in")
    _check_n(d_out, "d_out")
    k_x, k_noise, *_ = _keys(key)
    x = _normal(k_x, (n, d_in))
    h = x
    params = teacher_params(teacher_key, d_in, d_out, hidden)
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = np.tanh(h)
    y = h + np.float32(noise) * _normal(k_noise, h.shape) if noise else h
    return Dataset(x, y.astype(np.float32), "teacher", None, (d_in,))


def sin_1d(
    key: jax.Array | int, n: int = 256, noise: float = 0.0, low: float = -math.pi, high: float = math.pi
) -> Dataset:
    """1-D regression: x uniform in [low, high] (default [-pi, pi]), y = sin(x) + noise * N(0, 1).

    Returns x (n, 1), y (n, 1).
    """
    _check_n(n)
    k_x, k_noise, *_ = _keys(key)
    x = _uniform(k_x, (n, 1), low, high)
    y = np.sin(x)
    if noise:
        y = y + np.float32(noise) * _normal(k_noise, y.shape)
    return Dataset(x, y.astype(np.float32), "sin", None, (1,))
