"""The model summary table: per-layer shapes, params (== mlp.param_count) and FLOPs, the footer."""
from __future__ import annotations

import pytest

from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.mlp import param_count
from jaxmlp.summary import DataInfo, describe_run_spec, describe_splits, layer_rows, summary_table
from jaxmlp.training.plan import RunSpec

SPIRAL = DataInfo("spiral", {"train": 300, "test": 300}, features=2, classes=3)


@pytest.mark.parametrize("config,sizes,params,flops", [
    (TrainConfig(), (3, 4, 2), [16, 10], [24, 16]),  # the lecture notes' 26
    (TrainConfig(), (3, 4, 4, 1), [16, 20, 5], [24, 32, 8]),  # and their 41
    (TrainConfig(activation="maxout", k=3), (3, 4, 2), [3 * (12 + 4), 10], [3 * 24, 16]),  # k pieces
    (TrainConfig(activation="prelu"), (3, 4, 4, 1), [16 + 4, 20 + 4, 5], [24, 32, 8]),  # one slope per unit
])
def test_layer_counts(config, sizes, params, flops):
    rows = layer_rows(config, sizes)
    assert [r.params for r in rows] == params and [r.flops for r in rows] == flops
    assert sum(params) == param_count(sizes, activation=config.activation, **config.activation_options())
    assert [(r.d_in, r.d_out) for r in rows] == list(zip(sizes[:-1], sizes[1:]))


def test_table_text_for_a_small_net():
    text = summary_table(TrainConfig(), (3, 4, 2), SPIRAL._replace(features=3, classes=2), "softmax_cross_entropy")
    lines = text.splitlines()
    assert lines[0] == "model: 3-4-2 MLP, 1 hidden layer(s) of relu"
    assert lines[1].split() == ["layer", "type", "input", "output", "param", "shapes", "params", "FLOPs/example"]
    assert lines[3].split() == ["0", "hidden", "affine", "+", "relu", "(B,", "3)", "(B,", "4)",
                                "W", "(3,", "4),", "b", "(4,)", "16", "24"]
    assert lines[4].split()[-2:] == ["10", "16"] and "affine (scores)" in lines[4]
    assert lines[6].split() == ["total", "26", "40"]
    assert "params: 26 (104 B as float32)" in text and "2*d_in*d_out per affine" in text
    assert "loss: softmax_cross_entropy, dropout 0.2\n" in text  # the defaults
    assert "optimizer: adam, lr 0.001, constant schedule, weight decay 0, batch 128, 300 epochs" in text
    assert text.endswith("data: spiral, 300 train / 300 test examples, 3 feature(s), 2 classes")


def test_maxout_and_prelu_rows_show_their_param_shapes():
    maxout = summary_table(TrainConfig(activation="maxout", k=3), (3, 4, 2), SPIRAL, "softmax_cross_entropy")
    assert "affine + maxout(k=3)" in maxout and "W (3, 3, 4), b (3, 4)" in maxout
    prelu = summary_table(TrainConfig(activation="prelu"), (3, 4, 2), SPIRAL, "softmax_cross_entropy")
    assert "W (3, 4), b (4,), alpha (4,)" in prelu and "params: 30 " in prelu


def test_optimizer_and_loss_lines_spell_out_the_settings():
    config = TrainConfig(optimizer="adamw", weight_decay=1e-4, schedule="warmup_cosine", warmup_epochs=2,
                         lr_scaling="linear", batch_size=1024, learning_rate=1e-3, l2=1e-4, dropout=0.5,
                         clip_norm=1.0, dtype="float64")
    text = summary_table(config, (3, 4, 2), SPIRAL, "softmax_cross_entropy")
    assert ("optimizer: adamw, lr 0.004 (linear scaling of 0.001 for batch 1024 / 256), 2 warm-up epochs, "
            "then cosine (to 0 x lr) schedule, weight decay 0.0001, clip norm 1, batch 1024, 300 epochs") in text
    assert "loss: softmax_cross_entropy, l2 0.0001, dropout 0.5\n" in text
    assert "params: 26 (208 B as float64)" in text
    step = summary_table(TrainConfig(schedule="step", decay_rate=0.5, decay_epochs=10), (3, 4, 2), SPIRAL, "x")
    assert "step (x0.5 every 10 epochs) schedule" in step


def test_data_descriptions():
    splits = load_dataset("spiral", val_fraction=0.2)
    assert describe_splits("spiral", splits) == DataInfo("spiral", {"train": 240, "val": 60, "test": 300}, 2, 3)
    teacher = describe_splits("teacher", load_dataset("teacher", n_samples=64))
    assert (teacher.classes, teacher.targets, teacher.examples) == (None, teacher.targets, {"train": 64, "test": 64})
    assert teacher.targets >= 1
    binary = describe_run_spec("moons", RunSpec("binary_logistic", (2, 8, 1), 100, 3, (), True))
    assert binary == DataInfo("moons", {"train": 100}, 2, classes=2)
    regression = describe_run_spec("sin", RunSpec("mean_squared_error", (1, 8, 1), 50, 1, (1,), False))
    assert regression == DataInfo("sin", {"train": 50}, 1, targets=1)
    assert summary_table(TrainConfig(), (1, 8, 1), regression, "mean_squared_error").endswith(
        "data: sin, 50 train examples, 1 feature(s), 1 target(s)")
