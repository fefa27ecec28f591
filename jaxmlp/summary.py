"""A model summary in the Keras / Flax style: one row per layer (input and output shapes, the
shapes of its params, their count, its forward FLOPs per example), the totals, then the loss,
the optimizer and the data.

    data = DataInfo("spiral", {"train": 300, "test": 300}, features=2, classes=3)
    print(summary_table(TrainConfig(), (2, 100, 3), data, loss="softmax_cross_entropy"))

`jaxmlp train` prints it before training and `jaxmlp info RUN` prints it for a saved run. The
param shapes are `jax.eval_shape` of the run's own `init_mlp` (nothing is computed), so every
count is that of the params the run trains; the rest is arithmetic on the config.
"""
from __future__ import annotations

import textwrap
from typing import NamedTuple, Sequence

import jax
import numpy as np

from jaxmlp.config import TrainConfig
from jaxmlp.mlp import Params, init_mlp

COUNTED = ("FLOPs: forward pass per example, 2*d_in*d_out per affine map (its multiplies and adds, bias "
           "included), times k for maxout's k pieces; activations, maxout's max and the loss are not counted. "
           "params: W and b (k copies for maxout) and one learned slope per unit of a PReLU layer.")
HEADER = ("layer", "type", "input", "output", "param shapes", "params", "FLOPs/example")


class DataInfo(NamedTuple):
    """What a model is trained on: `examples` maps split name -> count (in display order);
    `classes` for classification, else `targets` (outputs per example) for regression."""

    name: str
    examples: dict[str, int]
    features: int
    classes: int | None = None
    targets: int | None = None


class LayerRow(NamedTuple):
    """One row of the table: shapes as text, counts as ints."""

    name: str
    kind: str
    d_in: int
    d_out: int
    param_shapes: str
    params: int
    flops: int


def training_summary(plan, splits) -> str:
    """The summary of a run's training.Plan on its DataSplits (what `jaxmlp train` prints first)."""
    return summary_table(plan.config, plan.sizes, describe_splits(plan.config.dataset, splits), plan.loss)


def describe_splits(name: str, splits) -> DataInfo:
    """The DataInfo of DataSplits (train, val, test; val and test may be None)."""
    train = splits.train
    examples = {split: len(data) for split, data in zip(("train", "val", "test"), splits) if data is not None}
    targets = None if train.num_classes is not None else int(np.shape(train.y)[1])
    return DataInfo(name, examples, train.num_features, train.num_classes, targets)


def describe_run_spec(name: str, spec) -> DataInfo:
    """The DataInfo of a saved run's RunSpec (training.spec_from_meta): its training split only."""
    out = spec.sizes[-1]
    classes = (2 if spec.loss == "binary_logistic" else out) if spec.classification else None
    return DataInfo(name, {"train": spec.n_train}, spec.sizes[0], classes, None if spec.classification else out)


def layer_shapes(config: TrainConfig, sizes: Sequence[int]) -> Params:
    """The params of layer sizes (d_in, *hidden, d_out) as ShapeDtypeStructs (nothing allocated)."""
    return jax.eval_shape(lambda key: init_mlp(key, sizes, activation=config.activation,
                                               **config.activation_options()), jax.random.key(0))


def layer_rows(config: TrainConfig, sizes: Sequence[int]) -> list[LayerRow]:
    """One LayerRow per layer: hidden layers are affine + activation, the last one affine (scores)."""
    layers = layer_shapes(config, sizes)
    rows = []
    for i, layer in enumerate(layers):
        hidden = i < len(layers) - 1
        leaves = {"W": layer.W, "b": layer.b, "alpha": layer.alpha}
        shapes = ", ".join(f"{name} {tuple(leaf.shape)}" for name, leaf in leaves.items() if leaf is not None)
        count = sum(int(np.prod(leaf.shape)) for leaf in leaves.values() if leaf is not None)
        kind = f"affine + {_activation_text(config)}" if hidden else "affine (scores)"
        rows.append(LayerRow(f"{i} {'hidden' if hidden else 'output'}", kind, int(sizes[i]), int(sizes[i + 1]),
                             shapes, count, 2 * int(np.prod(layer.W.shape))))
    return rows


def summary_table(config: TrainConfig, sizes: Sequence[int], data: DataInfo, loss: str) -> str:
    """The summary as text: the layer table, the totals, what is counted, loss, optimizer, data."""
    rows = layer_rows(config, sizes)
    params, flops = sum(r.params for r in rows), sum(r.flops for r in rows)
    cells = [HEADER] + [(r.name, r.kind, f"(B, {r.d_in})", f"(B, {r.d_out})", r.param_shapes, f"{r.params:,}",
                         f"{r.flops:,}") for r in rows]
    total = ("total", "", "", "", "", f"{params:,}", f"{flops:,}")
    widths = [max(len(row[c]) for row in [*cells, total]) for c in range(len(HEADER))]
    rule = "  ".join("-" * w for w in widths)
    nbytes = params * np.dtype(config.dtype).itemsize
    lines = [f"model: {'-'.join(map(str, sizes))} MLP, {len(rows) - 1} hidden layer(s) of {_activation_text(config)}",
             _row(cells[0], widths), rule, *(_row(c, widths) for c in cells[1:]), rule, _row(total, widths),
             f"params: {params:,} ({_bytes_text(nbytes)} as {config.dtype})", textwrap.fill(COUNTED, 100),
             _loss_line(config, loss), _optimizer_line(config), _data_line(data)]
    return "\n".join(lines)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Text cells left-aligned, count cells (the last two) right-aligned."""
    return "  ".join(c.rjust(w) if i >= len(widths) - 2 else c.ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


def _activation_text(config: TrainConfig) -> str:
    options = config.activation_options()
    return config.activation + (f"({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")


def _bytes_text(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


def _loss_line(config: TrainConfig, loss: str) -> str:
    extras = [f"{name} {value:g}" for name, value in (("l2", config.l2), ("dropout", config.dropout),
                                                      ("input noise", config.input_noise)) if value]
    return "loss: " + ", ".join([loss, *extras])


def _optimizer_line(config: TrainConfig) -> str:
    from jaxmlp.training.optim import scaled_learning_rate

    lr = f"lr {config.learning_rate:g}"
    if config.lr_scaling != "none":
        lr = (f"lr {scaled_learning_rate(config):g} ({config.lr_scaling} scaling of {config.learning_rate:g} "
              f"for batch {config.batch_size} / {config.base_batch_size})")
    clip = [f"clip norm {config.clip_norm:g}"] if config.clip_norm is not None else []
    return "optimizer: " + ", ".join([config.optimizer, lr, f"{_schedule_text(config)} schedule",
                                      f"weight decay {config.weight_decay:g}", *clip,
                                      f"batch {config.batch_size}", f"{config.epochs} epochs"])


def _schedule_text(config: TrainConfig) -> str:
    """The schedule in words, e.g. 'step (x0.1 every 30 epochs)'; warm-up in front when set."""
    c = config
    text = {"constant": "constant",
            "step": f"step (x{c.decay_rate:g} every {c.decay_epochs} epochs)",
            "exponential": f"exponential (x{c.decay_rate:g} per {c.decay_epochs} epochs)",
            "cosine": f"cosine (to {c.final_lr_fraction:g} x lr)",
            "warmup_cosine": f"cosine (to {c.final_lr_fraction:g} x lr)"}[c.schedule]
    return f"{c.warmup_epochs} warm-up epochs, then {text}" if c.warmup_epochs else text


def _data_line(data: DataInfo) -> str:
    examples = " / ".join(f"{n:,} {split}" for split, n in data.examples.items())
    task = f"{data.classes} classes" if data.classes is not None else f"{data.targets} target(s)"
    return f"data: {data.name}, {examples} examples, {data.features:,} feature(s), {task}"
