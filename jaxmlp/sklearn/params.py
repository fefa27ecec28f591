"""The estimators' parameters: scikit-learn's MLP names, defaults and rules, plus jaxmlp's extras.

`SKLEARN_DEFAULTS` is `sklearn.neural_network.MLPClassifier().get_params()` as of scikit-learn
1.9 (MLPRegressor adds `loss`); `EXTRA_DEFAULTS` are jaxmlp's own parameters, under names
scikit-learn's MLP does not use. `CONSTRAINTS` are the rules `BaseEstimator._validate_params`
checks in fit, so a bad value gets scikit-learn's own message naming the public class.
`unknown_names_error` is the one line for a misspelled or foreign name; `init_with` makes the
estimators' __init__ from a table of defaults.
"""
from __future__ import annotations

import difflib
import inspect
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, Options, StrOptions

from jaxmlp.training.optim import OPTIMIZERS

SKLEARN_DEFAULTS = dict(
    hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=0.0001, batch_size="auto",
    learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
    random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
    early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
    n_iter_no_change=10, max_fun=15000,
)
# jaxmlp's own; optimizer, weight_decay, clip_norm, schedule, warmup_epochs: extras.py's optax chain
EXTRA_DEFAULTS = dict(dropout=0.0, input_noise=0.0, activation_slope=None, dtype="float32", optimizer=None,
                      weight_decay=0.0, clip_norm=None, schedule=None, warmup_epochs=0)

SKLEARN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
EXTRA_ACTIVATIONS = {"leaky_relu": "leaky_relu", "elu": "elu", "gelu": "gelu"}  # jaxmlp's, elementwise
JAX_ACTIVATION = {**SKLEARN_ACTIVATIONS, **EXTRA_ACTIVATIONS}  # our name -> jaxmlp.activations name

CONSTRAINTS: dict = {  # scikit-learn 1.9's BaseMultilayerPerceptron._parameter_constraints, activation widened
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions(set(JAX_ACTIVATION))],
    "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "tol": [Interval(Real, 0, None, closed="left")],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "nesterovs_momentum": ["boolean"],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
    "max_fun": [Interval(Integral, 1, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "activation_slope": [None, Interval(Real, None, None, closed="neither")],
    "dtype": [StrOptions({"float32", "float64"})],
    "input_noise": [Interval(Real, 0, None, closed="left")],
    "optimizer": [None, StrOptions(set(OPTIMIZERS))],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "clip_norm": [None, Interval(Real, 0, None, closed="neither")],
    "schedule": [None, StrOptions({"cosine", "warmup_cosine"})],
    "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
}
REGRESSOR_LOSSES = {"squared_error", "poisson"}

# What each name means here, for the docstrings and the README's table.
MEANING = {
    "hidden_layer_sizes": "hidden layer widths; an int is one layer",
    "activation": "hidden activation: identity, logistic, tanh, relu; jaxmlp adds leaky_relu, elu, gelu",
    "solver": "adam, sgd (momentum, nesterovs_momentum, learning_rate schedules) or lbfgs (optax.lbfgs, full batch)",
    "alpha": "L2 penalty: 0.5 * alpha * (sum of squared weights) / (the batch's sum of sample weights); biases free",
    "batch_size": "minibatch size; 'auto' = min(200, n_samples); the last batch of an epoch is smaller",
    "learning_rate": "sgd: constant, invscaling (learning_rate_init / (t_ + 1) ** power_t), adaptive (/5 on a plateau)",
    "learning_rate_init": "adam / sgd step size",
    "power_t": "invscaling's exponent",
    "max_iter": "epochs (adam, sgd) or iterations (lbfgs)",
    "shuffle": "reshuffle the rows every epoch",
    "random_state": "init, shuffling, the validation split and dropout (numpy draws, as in scikit-learn)",
    "tol": "improvement in loss (or validation score) that counts; lbfgs: gradient tolerance",
    "verbose": "print one line per epoch",
    "warm_start": "fit continues from the previous fit's weights",
    "momentum": "sgd momentum (and optimizer momentum / nesterov / lars's)",
    "nesterovs_momentum": "sgd: Nesterov's momentum",
    "early_stopping": "hold out validation_fraction; stop when its score stalls; keep the best weights",
    "validation_fraction": "early_stopping's held-out fraction (stratified for classifiers)",
    "beta_1": "adam first-moment decay (and optimizer adam / adamw / lamb's)",
    "beta_2": "adam second-moment decay (and optimizer adam / adamw / lamb's)",
    "epsilon": "adam denominator epsilon (and optimizer adam / adamw / lamb / rmsprop's)",
    "n_iter_no_change": "epochs without tol improvement before stopping (adaptive: dividing the rate by 5)",
    "max_fun": "lbfgs: most loss evaluations",
    "loss": "MLPRegressor: squared_error or poisson",
    "dropout": "jaxmlp: probability of dropping a hidden unit while training (adam / sgd)",
    "input_noise": "jaxmlp: std of Gaussian noise added to the inputs while training (adam / sgd)",
    "activation_slope": "jaxmlp: leaky_relu / elu slope (None: 0.01 / 1.0)",
    "dtype": "jaxmlp: float32 or float64 (float64 needs jax.config.update('jax_enable_x64', True))",
    "optimizer": ("jaxmlp: an optax optimizer of jaxmlp's trainer (" + ", ".join(OPTIMIZERS) + ") in place of "
                  "solver adam / sgd's update; it reads learning_rate_init (the peak; sgd's learning_rate "
                  "rules still apply), beta_1, beta_2, epsilon, momentum; None: scikit-learn's update"),
    "weight_decay": "jaxmlp, with optimizer: weight decay on the weights, decoupled in adamw / lamb / lars, "
                    "added to the gradient in the others (the trainer's rule)",
    "clip_norm": "jaxmlp, with optimizer: clip each minibatch's gradient to this global norm; None: no clipping",
    "schedule": ("jaxmlp, with optimizer: cosine (decay to 0 over max_iter epochs) or warmup_cosine "
                 "(warmup_epochs of linear warm-up, then cosine); None: constant"),
    "warmup_epochs": "jaxmlp, with optimizer: epochs of linear warm-up from 0 in front of the schedule",
}

# jaxmlp's TrainConfig names (the estimators' names before scikit-learn's) -> scikit-learn's.
FORMER_NAMES = {
    "hidden": "hidden_layer_sizes", "epochs": "max_iter", "l2": "alpha",
    "b1": "beta_1", "b2": "beta_2", "eps": "epsilon", "val_fraction": "validation_fraction",
    "patience": "n_iter_no_change", "seed": "random_state", "min_delta": "tol", "restore_best": "early_stopping",
}


def suggestion(name: str, valid) -> str | None:
    """The closest valid name to `name` (a former jaxmlp name first), or None."""
    if name in FORMER_NAMES and FORMER_NAMES[name] in valid:
        return FORMER_NAMES[name]
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


def describe_unknown(unknown, valid) -> str:
    """"'a' (did you mean 'b'?), 'c'": each unknown name with the closest valid one, if any."""
    parts = []
    for name in sorted(unknown):
        hint = suggestion(name, valid)
        parts.append(f"{name!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
    return ", ".join(parts)


def unknown_names_error(cls_name: str, unknown, valid) -> TypeError:
    """TypeError in one line, as Python's own, with the closest valid name for each."""
    plural = "s" if len(unknown) > 1 else ""
    return TypeError(f"{cls_name}.__init__() got unexpected keyword argument{plural} {describe_unknown(unknown, valid)}")


def init_with(defaults: dict, positional: int = 2):
    """An __init__ that stores each parameter as given (scikit-learn validates in fit), takes
    the first `positional` ones positionally as scikit-learn does, and refuses an unknown name
    in one line; its signature (what get_params reads) lists `defaults`, in order."""
    names = list(defaults)

    def __init__(self, *args, **params):
        if len(args) > positional:
            raise TypeError(f"{type(self).__name__}.__init__() takes at most {positional} positional arguments "
                            f"({', '.join(names[:positional])}), got {len(args)}")
        params.update(zip(names, args))
        unknown = set(params) - set(names)
        if unknown:
            raise unknown_names_error(type(self).__name__, unknown, names)
        for name in names:
            setattr(self, name, params.get(name, defaults[name]))

    P = inspect.Parameter
    kinds = [P.POSITIONAL_OR_KEYWORD] * positional + [P.KEYWORD_ONLY] * (len(names) - positional)
    __init__.__signature__ = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD)] + [P(n, k, default=defaults[n]) for n, k in zip(names, kinds)])
    return __init__
