"""A run's params, and the preprocessing its inputs need, as a plain .npz: arrays only, no
pickles, readable without jaxmlp.

    export_npz("model.npz", params, activation="relu", preprocessing=stats)
    params, activation, options = load_npz("model.npz")
    stats = load_preprocessing("model.npz")      # FeatureStats, or None: feed raw inputs
    scores = jaxmlp.predict(params, stats.apply(data).x if stats else data.x, activation=activation, **options)

The weights were trained on standardized inputs when the run used --standardize, so the file
carries that run's training-split statistics: x_model = (x - input_mean) / input_std.
"""
from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from jaxmlp.atomic import atomic_write_bytes
from jaxmlp.data import FeatureStats
from jaxmlp.mlp import Layer, Params, sizes_of


def export_npz(path: str | os.PathLike, params: Params, *, activation: str,
               activation_options: dict[str, Any] | None = None, preprocessing: FeatureStats | None = None) -> None:
    """Plain arrays, no pickles: layer{i}_W, layer{i}_b, [layer{i}_alpha], sizes, activation,
    activation_options (a JSON string), and with `preprocessing` input_mean and input_std
    (d_in,), which the inputs go through before the first layer. Load with
    np.load(path, allow_pickle=False)."""
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(params):
        arrays[f"layer{i}_W"] = np.asarray(layer.W)
        arrays[f"layer{i}_b"] = np.asarray(layer.b)
        if layer.alpha is not None:
            arrays[f"layer{i}_alpha"] = np.asarray(layer.alpha)
    arrays["sizes"] = np.asarray(sizes_of(params), dtype=np.int64)
    arrays["activation"] = np.asarray(activation)  # a 0-d unicode array, not an object
    arrays["activation_options"] = np.asarray(json.dumps(activation_options or {}))
    if preprocessing is not None:
        if preprocessing.mean.shape != (arrays["sizes"][0],):
            raise ValueError(f"preprocessing of {preprocessing.mean.shape} features for a net of "
                             f"{arrays['sizes'][0]} inputs")
        arrays["input_mean"], arrays["input_std"] = np.asarray(preprocessing.mean), np.asarray(preprocessing.std)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())  # (folders it makes are removed again if the write fails)


def load_npz(path: str | os.PathLike) -> tuple[Params, str, dict[str, Any]]:
    """(params, activation, activation_options) from a file written by `export_npz`."""
    with np.load(path, allow_pickle=False) as f:
        n_layers = len(f["sizes"]) - 1
        params = [Layer(f[f"layer{i}_W"], f[f"layer{i}_b"], f[f"layer{i}_alpha"] if f"layer{i}_alpha" in f else None)
                  for i in range(n_layers)]
        return params, str(f["activation"]), json.loads(str(f["activation_options"]))


def load_preprocessing(path: str | os.PathLike) -> FeatureStats | None:
    """The input statistics of a file written by `export_npz` (None: the net takes raw inputs)."""
    with np.load(path, allow_pickle=False) as f:
        return FeatureStats(f["input_mean"], f["input_std"]) if "input_mean" in f else None
