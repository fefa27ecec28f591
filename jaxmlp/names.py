"""The names a training run chooses from, in one JAX-free module.

`TrainConfig` validates against these tables and the CLI lists them without importing JAX; the
modules that implement a table (activations, losses, mlp, precision) import its names from
here, so each table is written once.
"""
from __future__ import annotations

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "gelu", "maxout")

# Options each activation accepts, with their defaults.
ACTIVATION_OPTIONS: dict[str, dict[str, object]] = {
    "identity": {},
    "sigmoid": {},
    "tanh": {},
    "relu": {},
    "leaky_relu": {"alpha": 0.01},  # slope for z < 0
    "prelu": {"alpha": 0.25},  # initial slope for z < 0 (learned afterwards)
    "elu": {"alpha": 1.0},  # saturation value -alpha for z -> -inf
    "gelu": {"approximate": False},  # tanh approximation instead of the exact erf form
    "maxout": {"k": 2},  # pieces per unit
}

LOSS_NAMES = ("softmax_cross_entropy", "multiclass_hinge", "binary_logistic", "mean_squared_error")
LOSS_ALIASES = {"cross_entropy": "softmax_cross_entropy", "svm": "multiclass_hinge", "hinge": "multiclass_hinge",
                "logistic": "binary_logistic", "mse": "mean_squared_error"}

INITS = ("he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "lecun_normal", "lecun_uniform")

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "lars", "lamb")
SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup_cosine")
LR_SCALINGS = ("none", "linear", "sqrt")
GRAD_METHODS = ("autodiff", "manual")
DTYPES = ("float32", "float64")
PRECISIONS = ("fp32", "bf16", "highest")
DATA_FEEDS = ("auto", "resident", "per_process", "stream")
TASKS = ("auto", "classification", "regression")

# Settings that only some choices read: field -> (the field that chooses, the choices that read it).
# Setting one of these away from its default for any other choice is an error, not silently ignored.
APPLIES_ONLY_TO: dict[str, tuple[str, tuple[str, ...]]] = {
    **{opt: ("activation", tuple(a for a in ACTIVATIONS if opt in ACTIVATION_OPTIONS[a]))
       for opt in ("alpha", "k", "approximate")},
    "momentum": ("optimizer", ("momentum", "nesterov", "lars")),
    "b1": ("optimizer", ("adam", "adamw", "lamb")),
    "b2": ("optimizer", ("adam", "adamw", "lamb")),
    "eps": ("optimizer", ("adam", "adamw", "lamb", "rmsprop")),
    "rms_decay": ("optimizer", ("rmsprop",)),
    "decay_rate": ("schedule", ("step", "exponential")),
    "decay_epochs": ("schedule", ("step", "exponential")),
    "final_lr_fraction": ("schedule", ("cosine", "warmup_cosine")),
    "schedule_epochs": ("schedule", ("cosine", "warmup_cosine")),
    "base_batch_size": ("lr_scaling", ("linear", "sqrt")),
}
