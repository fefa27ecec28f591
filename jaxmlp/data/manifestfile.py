"""``manifest.json``, the index of a sharded data set: `Manifest`, `read_manifest`, `manifest_json`.

A data set directory holds shard files and ``manifest.json``, which the writer puts there
last (`jaxmlp.data.manifest.ShardWriter`): a directory without one is an unfinished write.
Its fields (version 1):

    format          "npy" or "arrayrecord" (see `shardnpy`, `shardrecord`)
    version         1
    feature_shape   [d1, ...]: the shape of one example, D = d1 * ...
    x_dtype         "float32", "float16" or "uint8" (uint8 is scaled to [0, 1] on read)
    y_dtype         "int32", "int64" or "uint8" for class labels; "float32" for regression targets
    num_classes     K for classification, null for regression
    target_shape    [] for class labels, [k] for regression targets
    splits          {"train": ..., "val": ..., "test": ...}: train is required, each split
                    {"rows": N,
                     "shards": [{"rows": n, "files": [{"name": "train-00000.x.npy", "bytes": b}, ...]}, ...],
                     "mean": [D floats], "std": [D floats]}
                    files lists x then y for npy, the one record file for arrayrecord; mean and
                    std are the split's float32 feature statistics (`preprocess.feature_stats`
                    over its rows, uint8 already scaled), exact in JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxmlp.data.errors import DataError
from jaxmlp.data.preprocess import FeatureStats
from jaxmlp.data.shardlayout import (
    FILES_PER_SHARD,
    FORMATS,
    LABEL_DTYPES,
    SPLITS,
    TARGET_DTYPES,
    X_DTYPES,
    Layout,
    ShardEntry,
    ShardFile,
)

MANIFEST = "manifest.json"
VERSION = 1


class SplitInfo(NamedTuple):
    """One split of the manifest."""

    rows: int
    shards: tuple[ShardEntry, ...]
    stats: FeatureStats  # of this split's rows, (D,) float32 each


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.json`` of the data set in `directory`."""

    directory: Path
    format: str
    version: int
    layout: Layout
    splits: dict[str, SplitInfo]

    @property
    def num_classes(self) -> int | None:
        return self.layout.num_classes

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self.layout.feature_shape

    @property
    def target_shape(self) -> tuple[int, ...]:
        return self.layout.target_shape

    def stats(self, split: str = "train") -> FeatureStats:
        """The feature statistics of `split` (the loader standardizes every split by train's)."""
        return self.split(split).stats

    def split(self, split: str) -> SplitInfo:
        if split not in self.splits:
            raise DataError(f"{self.directory / MANIFEST}: no split {split!r}; it has {', '.join(self.splits)}")
        return self.splits[split]


def manifest_json(fmt: str, layout: Layout, splits: dict[str, SplitInfo]) -> dict[str, Any]:
    """The JSON object of a manifest (what read_manifest parses back to the same values)."""
    return {
        "format": fmt,
        "version": VERSION,
        "feature_shape": list(layout.feature_shape),
        "x_dtype": layout.x_dtype.name,
        "y_dtype": layout.y_dtype.name,
        "num_classes": layout.num_classes,
        "target_shape": list(layout.target_shape),
        "splits": {name: _split_json(info) for name, info in splits.items()},
    }


def _split_json(info: SplitInfo) -> dict[str, Any]:
    return {
        "rows": info.rows,
        "shards": [
            {"rows": e.rows, "files": [{"name": f.name, "bytes": f.bytes} for f in e.files]} for e in info.shards
        ],
        # float32 -> Python float is exact, and so is JSON's shortest repr of that float
        "mean": [float(v) for v in info.stats.mean],
        "std": [float(v) for v in info.stats.std],
    }


def read_manifest(directory: str | Path) -> Manifest:
    """The validated manifest of the data set in `directory`; DataError naming the problem."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{directory}: no {MANIFEST}: not a sharded data set, or its write did not finish; "
            "write one with jaxmlp.data.manifest.ShardWriter"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return _parse(doc, path)


def _parse(doc: Any, path: Path) -> Manifest:
    if not isinstance(doc, dict):
        raise DataError(f"{path}: must hold a JSON object, got {type(doc).__name__}")
    fmt = _field(doc, "format", str, path)
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise DataError(f"{path}: unsupported version {version!r}; this jaxmlp reads version {VERSION}")
    layout = _layout(doc, path)
    splits = _field(doc, "splits", dict, path)
    if "train" not in splits or not set(splits) <= set(SPLITS):
        raise DataError(f"{path}: 'splits' must hold 'train' and optionally 'val', 'test'; got {sorted(splits)}")
    parsed = {
        name: _split(splits[name], f"splits.{name}", fmt, layout.num_features, path)
        for name in SPLITS
        if name in splits
    }
    return Manifest(path.parent, fmt, version, layout, parsed)


def _field(doc: dict, key: str, kind: type | tuple, path: Path, where: str = "") -> Any:
    value = doc.get(key)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if (kind is int and not is_int) or (kind is not int and not isinstance(value, kind)):
        raise DataError(f"{path}: field {where}{key!r} is missing or malformed (got {value!r})")
    return value


def _shape(doc: dict, key: str, path: Path) -> tuple[int, ...]:
    value = _field(doc, key, list, path)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise DataError(f"{path}: field {key!r} must be a list of positive ints, got {value!r}")
    return tuple(value)


def _layout(doc: dict, path: Path) -> Layout:
    feature_shape = _shape(doc, "feature_shape", path)
    if not feature_shape:
        raise DataError(f"{path}: field 'feature_shape' must not be empty")
    num_classes = doc.get("num_classes")
    if num_classes is not None and (_field(doc, "num_classes", int, path) < 1):
        raise DataError(f"{path}: field 'num_classes' must be a positive int or null, got {num_classes!r}")
    x_dtype, y_dtype = _field(doc, "x_dtype", str, path), _field(doc, "y_dtype", str, path)
    y_allowed = LABEL_DTYPES if num_classes is not None else TARGET_DTYPES
    if x_dtype not in X_DTYPES:
        raise DataError(f"{path}: x_dtype {x_dtype!r} is not one of {', '.join(X_DTYPES)}")
    if y_dtype not in y_allowed:
        task = "class labels" if num_classes is not None else "regression targets (num_classes null)"
        raise DataError(f"{path}: y_dtype {y_dtype!r} is not one of {', '.join(y_allowed)} for {task}")
    target_shape = _shape(doc, "target_shape", path)
    if len(target_shape) != (0 if num_classes is not None else 1):
        want = "[] for class labels" if num_classes is not None else "[k] for regression targets"
        raise DataError(f"{path}: target_shape {list(target_shape)} must be {want}")
    return Layout(feature_shape, np.dtype(x_dtype), np.dtype(y_dtype), target_shape, num_classes)


def _split(doc: Any, where: str, fmt: str, width: int, path: Path) -> SplitInfo:
    if not isinstance(doc, dict):
        raise DataError(f"{path}: {where} must be an object, got {doc!r}")
    shards = _field(doc, "shards", list, path, f"{where}.")
    if not shards:
        raise DataError(f"{path}: {where} lists no shards")
    entries = tuple(_shard(s, f"{where}.shards[{i}]", fmt, path) for i, s in enumerate(shards))
    rows = _field(doc, "rows", int, path, f"{where}.")
    if rows != sum(e.rows for e in entries):
        raise DataError(f"{path}: {where}.rows is {rows}, its shards hold {sum(e.rows for e in entries)}")
    stats = FeatureStats(*(_floats(doc, key, where, width, path) for key in ("mean", "std")))
    if not (stats.std > 0).all():
        raise DataError(f"{path}: {where}.std must be positive")
    return SplitInfo(rows, entries, stats)


def _shard(doc: Any, where: str, fmt: str, path: Path) -> ShardEntry:
    if not isinstance(doc, dict):
        raise DataError(f"{path}: {where} must be an object, got {doc!r}")
    rows = _field(doc, "rows", int, path, f"{where}.")
    files = _field(doc, "files", list, path, f"{where}.")
    if rows < 1 or len(files) != FILES_PER_SHARD[fmt]:
        raise DataError(f"{path}: {where} needs rows >= 1 and {FILES_PER_SHARD[fmt]} file(s) for {fmt}")
    parsed = []
    for f in files:
        name = f.get("name") if isinstance(f, dict) else None
        size = f.get("bytes") if isinstance(f, dict) else None
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
            raise DataError(f"{path}: {where} names {name!r}; shard files must be plain names in the directory")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise DataError(f"{path}: {where} gives {name} a malformed byte size {size!r}")
        parsed.append(ShardFile(name, size))
    return ShardEntry(rows, tuple(parsed))


def _floats(doc: dict, key: str, where: str, width: int, path: Path) -> np.ndarray:
    """(width,) float32 from a JSON list of finite numbers."""
    value = _field(doc, key, list, path, f"{where}.")
    ok = len(value) == width and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise DataError(f"{path}: {where}.{key} must be {width} finite numbers")
    return np.array(value, dtype=np.float32)
