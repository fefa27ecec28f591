"""A run's params as a plain .npz: arrays only, no pickles, readable without jaxmlp.

    export_npz("model.npz", params, activation="relu")
    params, activation, options = load_npz("model.npz")
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxmlp.atomic import atomic_file
from jaxmlp.mlp import Layer, Params, sizes_of


def export_npz(path: str | os.PathLike, params: Params, *, activation: str,
               activation_options: dict[str, Any] | None = None) -> None:
    """Plain arrays, no pickles: layer{i}_W, layer{i}_b, [layer{i}_alpha], sizes, activation,
    activation_options (a JSON string). Load with np.load(path, allow_pickle=False)."""
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(params):
        arrays[f"layer{i}_W"] = np.asarray(layer.W)
        arrays[f"layer{i}_b"] = np.asarray(layer.b)
        if layer.alpha is not None:
            arrays[f"layer{i}_alpha"] = np.asarray(layer.alpha)
    arrays["sizes"] = np.asarray(sizes_of(params), dtype=np.int64)
    arrays["activation"] = np.asarray(activation)  # a 0-d unicode array, not an object
    arrays["activation_options"] = np.asarray(json.dumps(activation_options or {}))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        np.savez(f, **arrays)


def load_npz(path: str | os.PathLike) -> tuple[Params, str, dict[str, Any]]:
    """(params, activation, activation_options) from a file written by `export_npz`."""
    with np.load(path, allow_pickle=False) as f:
        n_layers = len(f["sizes"]) - 1
        params = [Layer(f[f"layer{i}_W"], f[f"layer{i}_b"], f[f"layer{i}_alpha"] if f"layer{i}_alpha" in f else None)
                  for i in range(n_layers)]
        return params, str(f["activation"]), json.loads(str(f["activation_options"]))
