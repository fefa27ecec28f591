"""TrainConfig: defaults, validation messages, JSON round trip (no JAX compiles here)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from jaxmlp.config import (AUTO_FIELDS, AUTO_PATIENCE, FIELD_HELP, FIELD_NAMES, HOST, HOST_ONLY_FIELDS,
                           PER_HOST_FIELDS, PROGRAM, RESUMABLE, TrainConfig, auto_val_fraction)
from jaxmlp.names import OPTIMIZERS, SCHEDULES


def test_defaults_are_valid_and_every_field_is_documented():
    cfg = TrainConfig()
    assert cfg.hidden == (512,) and cfg.loss == "auto" and cfg.dataset == "spiral"
    assert (cfg.optimizer, cfg.learning_rate, cfg.batch_size, cfg.epochs, cfg.dropout) == ("adam", 1e-3, 128, 300, 0.2)
    assert cfg.val_fraction is None and cfg.patience is None and cfg.restore_best is None  # auto: README "Defaults"
    assert set(FIELD_HELP) == set(FIELD_NAMES)  # every field has a comment (= its --help)
    assert all(FIELD_HELP.values())


def test_field_help_is_one_short_line():
    """Each field's --help fits one line of at most 110 characters; the README's "Settings in
    full" table gives the longer explanations."""
    too_long = {name: len(text) for name, text in FIELD_HELP.items() if len(text) > 110 or "\n" in text}
    assert not too_long


def test_every_field_declares_its_kind():
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("kind") in (PROGRAM, HOST), f.name
        assert isinstance(f.metadata.get("per_host"), bool) and isinstance(f.metadata.get("resumable"), bool), f.name
    assert PER_HOST_FIELDS <= HOST_ONLY_FIELDS  # processes that differ in these still run the same programs


def test_field_kinds_match_the_lists_they_replace():
    assert HOST_ONLY_FIELDS == {"dataset", "data_dir", "download", "n_samples", "val_fraction", "standardize",
                                "data_seed", "label_column", "seed", "eval_every", "eval_train", "track_activations",
                                "eval_batch_size", "patience", "min_delta", "restore_best", "checkpoint_every",
                                "checkpoint_every_steps", "keep_checkpoints", "out_dir", "data_feed", "task", "download_timeout",
                                "divergence_factor", "audit_every", "audit_strict"}
    assert PER_HOST_FIELDS == {"data_dir", "download", "out_dir", "download_timeout"}
    assert AUTO_FIELDS == {"val_fraction", "patience", "restore_best"}
    assert RESUMABLE == {"epochs", "eval_every", "eval_train", "track_activations", "eval_batch_size",
                         "checkpoint_every", "checkpoint_every_steps", "keep_checkpoints", "patience", "min_delta", "data_dir", "download",
                         "devices", "data_feed", "download_timeout", "divergence_factor", "audit_every",
                         "audit_strict"}


@pytest.mark.parametrize("kwargs,message", [
    (dict(momentum=0.5), "momentum applies only to optimizer momentum, nesterov, lars, not 'adam'"),
    (dict(optimizer="sgd", b1=0.8), "b1 applies only to optimizer adam, adamw, lamb, not 'sgd'"),
    (dict(optimizer="sgd", eps=1e-6), "eps applies only to optimizer adam, adamw, lamb, rmsprop, not 'sgd'"),
    (dict(rms_decay=0.5), "rms_decay applies only to optimizer rmsprop"),
    (dict(decay_rate=0.5), "decay_rate applies only to schedule step, exponential, not 'constant'"),
    (dict(final_lr_fraction=0.1), "final_lr_fraction applies only to schedule cosine, warmup_cosine"),
    (dict(schedule_epochs=5), "schedule_epochs applies only to schedule cosine, warmup_cosine"),
    (dict(base_batch_size=128), "base_batch_size applies only to lr_scaling linear, sqrt, not 'none'"),
    (dict(alpha=0.1), "alpha applies only to activation leaky_relu, prelu, elu, not 'relu'"),
])
def test_a_setting_the_choice_does_not_read_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        TrainConfig(**kwargs)


def test_settings_that_apply_are_accepted():
    TrainConfig(optimizer="momentum", momentum=0.5)
    TrainConfig(schedule="cosine", epochs=8, schedule_epochs=5, final_lr_fraction=0.1)
    TrainConfig(lr_scaling="linear", base_batch_size=128)
    TrainConfig(momentum=0.9)  # the default value is never an error


def test_epochs_is_checked_before_the_fields_bounded_by_it():
    with pytest.raises(ValueError, match="^epochs must be >= 1, got -1$"):
        TrainConfig(epochs=-1)
    with pytest.raises(ValueError, match=r"warmup_epochs must be in \[0, schedule_epochs=3\]"):
        TrainConfig(schedule="cosine", epochs=10, schedule_epochs=3, warmup_epochs=4)


def test_auto_validation_split_and_early_stopping():
    assert (auto_val_fraction(4999), auto_val_fraction(5000), auto_val_fraction(60000)) == (0.0, 0.1, 0.1)
    settled = lambda cfg, n_train, n_val: (lambda c: (c.val_fraction, c.patience, c.restore_best))(  # noqa: E731
        cfg.with_auto_resolved(n_train, n_val))
    assert settled(TrainConfig(), 54000, 6000) == (0.1, AUTO_PATIENCE, True) and AUTO_PATIENCE == 5  # MNIST
    assert settled(TrainConfig(), 300, None) == (0.0, 0, False)  # the spiral
    assert settled(TrainConfig(), 240, 60) == (0.0, 0, True)  # a small validation split: no early stopping
    assert settled(TrainConfig(), 9000, None) == (0.1, 0, False)  # nothing to stop on
    explicit = TrainConfig(val_fraction=0.2, patience=2, restore_best=False)
    assert explicit.with_auto_resolved(54000, 6000) == explicit
    assert TrainConfig(patience=0).with_auto_resolved(54000, 6000).patience == 0
    spelled = TrainConfig.from_dict({"val_fraction": "auto", "patience": "AUTO", "restore_best": "auto"})  # TOML
    assert spelled == TrainConfig() and spelled.val_fraction is None and spelled.patience is None
    with pytest.raises(ValueError, match="hidden must be a sequence"):
        TrainConfig(hidden="auto")  # only the auto fields take "auto"
    assert "0.1 when the training split has >= 5,000 examples" in FIELD_HELP["val_fraction"]


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("field,value,allowed", [
    ("learning_rate", -0.1, "> 0"),
    ("learning_rate", 0.0, "> 0"),
    ("batch_size", 0, ">= 1"),
    ("epochs", 0, ">= 1"),
    ("optimizer", "adagrad", "one of sgd"),
    ("schedule", "linear", "one of constant"),
    ("activation", "swish", "one of identity"),
    ("loss", "l1", "one of auto"),
    ("dropout", 1.0, "in [0, 1)"),
    ("dropout", -0.1, "in [0, 1)"),
    ("val_fraction", 1.0, "in [0, 1) (or auto)"),
    ("momentum", 1.0, "in [0, 1)"),
    ("b2", 1.5, "in [0, 1)"),
    ("eps", 0.0, "> 0"),
    ("weight_decay", -1e-4, ">= 0"),
    ("clip_norm", 0.0, "> 0"),
    ("l2", -1.0, ">= 0"),
    ("input_noise", -1.0, ">= 0"),
    ("dtype", "float16", "one of float32, float64"),
    ("grad_method", "numeric", "one of autodiff, manual"),
    ("init", "zeros", "one of he_normal"),
    ("hidden", (0, 10), "positive widths"),
    ("decay_rate", 0.0, "in (0, 1]"),
    ("final_lr_fraction", 2.0, "in [0, 1]"),
    ("eval_every", 0, ">= 1"),
    ("patience", -1, ">= 0 (0 = no early stopping, or auto)"),
    ("checkpoint_every", -1, ">= 0"),
    ("keep_checkpoints", 0, ">= 1"),
    ("seed", -1, "in [0, 2**63)"),
])
def test_bad_values_name_the_field_and_range(field, value, allowed):
    with pytest.raises(ValueError) as info:
        TrainConfig(**{field: value})
    message = str(info.value)
    assert message.startswith(field) and allowed in message, message


@pytest.mark.parametrize("kwargs,needle", [
    (dict(batch_size="32"), "batch_size must be an integer"),
    (dict(batch_size=True), "batch_size must be an integer"),
    (dict(learning_rate="fast"), "learning_rate must be a number"),
    (dict(learning_rate=float("nan")), "learning_rate must be finite"),
    (dict(download="yes"), "download must be true or false"),
    (dict(hidden="64"), "hidden must be a sequence of integers"),
    (dict(hidden=(64.5,)), "hidden must be a sequence of integers"),
    (dict(alpha=0.1), "alpha applies only to activation leaky_relu, prelu, elu"),
    (dict(k=3), "k applies only to activation maxout"),
    (dict(approximate=True, activation="relu"), "approximate applies only to activation gelu"),
    (dict(activation="maxout", k=1), "k must be an integer >= 2"),
    (dict(schedule="warmup_cosine"), "warmup_epochs must be >= 1 for schedule warmup_cosine"),
    (dict(warmup_epochs=5, epochs=3), "warmup_epochs must be in [0, epochs=3]"),
])
def test_type_and_cross_field_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TrainConfig(**kwargs)


def test_coercion_lists_to_tuples_ints_to_floats():
    cfg = TrainConfig(hidden=[64, 32], learning_rate=1, activation="leaky_relu", alpha=0)
    assert cfg.hidden == (64, 32) and isinstance(cfg.learning_rate, float) and cfg.alpha == 0.0
    assert TrainConfig(hidden=[]).hidden == ()  # a linear model


def test_activation_options_only_what_is_set():
    assert TrainConfig().activation_options() == {}
    assert TrainConfig(activation="maxout", k=3).activation_options() == {"k": 3}
    assert TrainConfig(activation="gelu", approximate=True).activation_options() == {"approximate": True}
    assert TrainConfig(activation="prelu", alpha=0.1).activation_options() == {"alpha": 0.1}


def test_json_round_trip():
    cfg = TrainConfig(hidden=(512, 512), optimizer="adamw", weight_decay=1e-4, schedule="warmup_cosine",
                      warmup_epochs=2, clip_norm=1.0, dataset="npz:/tmp/x.npz", out_dir="runs/x")
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["hidden"] == [512, 512]
    assert TrainConfig.from_dict(d) == cfg
    assert TrainConfig.from_dict({}) == TrainConfig()
    auto = TrainConfig().to_dict()
    assert auto["val_fraction"] is None and auto["patience"] is None and auto["restore_best"] is None  # JSON null
    assert TrainConfig.from_dict(json.loads(json.dumps(auto))) == TrainConfig()


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config field.*hiden"):
        TrainConfig.from_dict({"hiden": [10]})
    with pytest.raises(ValueError, match="mapping"):
        TrainConfig.from_dict([("epochs", 3)])  # type: ignore[arg-type]


def test_all_optimizers_and_schedules_construct():
    for opt in OPTIMIZERS:
        TrainConfig(optimizer=opt)
    for sched in SCHEDULES:
        TrainConfig(schedule=sched, warmup_epochs=1)
