"""jaxmlp.sklearn's extras beyond scikit-learn's names: optimizer (the trainer's optax table),
weight_decay, clip_norm, schedule, warmup_epochs, input_noise.

Each changes the fit, the optax path trains, the names survive get_params / set_params / clone,
bad values and combinations are one line naming the public class, and the traced ones keep a
grid search on one compiled program. optimizer=None staying scikit-learn's update number for
number is test_sklearn_parity.py's.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is the optional extra jaxmlp[sklearn]")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from jaxmlp.sklearn import MLPClassifier, MLPRegressor, engine, extras  # noqa: E402
from jaxmlp.sklearn.params import EXTRA_DEFAULTS, FORMER_NAMES, MEANING, SKLEARN_DEFAULTS  # noqa: E402
from jaxmlp.training.optim import OPTIMIZERS  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
TINY = dict(hidden_layer_sizes=(8,), random_state=0, max_iter=8, batch_size=16)


@pytest.fixture(scope="module")
def data():
    """X (60, 4) standardized, y (60,) in {0, 1, 2}: the parity tests' shape, so programs are shared."""
    X, y = make_blobs(n_samples=60, n_features=4, centers=3, cluster_std=3.0, random_state=1)
    return StandardScaler().fit_transform(X), y


def fit(X, y, **params):
    return MLPClassifier(**{**TINY, **params}).fit(X, y)


# --- each extra changes the fit ---------------------------------------------------------------
@pytest.mark.parametrize("base, extra", [
    ({}, dict(optimizer="rmsprop")),
    ({}, dict(input_noise=0.3)),
    (dict(optimizer="adamw"), dict(weight_decay=0.5)),
    (dict(optimizer="sgd", solver="sgd", learning_rate_init=0.1), dict(clip_norm=0.05)),
    (dict(optimizer="adam"), dict(schedule="cosine")),
    (dict(optimizer="adam"), dict(warmup_epochs=3)),
], ids=["optimizer", "input_noise", "weight_decay", "clip_norm", "schedule", "warmup_epochs"])
def test_each_extra_changes_the_fit(data, base, extra):
    without, with_ = fit(*data, **base), fit(*data, **base, **extra)
    assert not np.allclose(without.coefs_[0], with_.coefs_[0], rtol=1e-3, atol=1e-5)
    assert np.isfinite(with_.loss_curve_).all()


def test_optax_sgd_is_sklearns_plain_sgd(data):
    """optimizer='sgd' (optax.sgd) takes the steps scikit-learn's sgd without momentum takes:
    the learning rate, steps and minibatches reach the chain as they reach scikit-learn's update."""
    plain = dict(solver="sgd", momentum=0.0, nesterovs_momentum=False, learning_rate_init=0.05)
    ours, theirs = fit(*data, optimizer="sgd", **plain), fit(*data, **plain)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-5, atol=1e-6)


def test_weight_decay_shrinks_and_clip_norm_bounds_the_steps(data):
    norms = [np.linalg.norm(fit(*data, optimizer="adamw", weight_decay=wd, learning_rate_init=1e-2).coefs_[0])
             for wd in (0.0, 1.0)]
    assert norms[1] < 0.9 * norms[0]
    lr, clip, epochs = 0.1, 1e-3, 2  # sgd steps of norm <= lr * clip, 4 minibatches an epoch
    start = fit(*data, max_iter=1, solver="sgd", learning_rate_init=1e-12)  # all but the initial weights
    clipped = fit(*data, max_iter=epochs, solver="sgd", optimizer="sgd", learning_rate_init=lr, clip_norm=clip)
    moved = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(clipped.coefs_, start.coefs_)))
    assert 0 < moved <= epochs * 4 * lr * clip * (1 + 1e-3)


def test_input_noise_trains_only(data):
    clf = fit(*data, input_noise=0.5)
    np.testing.assert_array_equal(clf.predict_proba(data[0]), clf.predict_proba(data[0]))  # predict is noise-free


def test_partial_fit_carries_the_optax_state(data):
    X, y = data
    kw = dict(optimizer="adamw", schedule="cosine", max_iter=2, shuffle=False, weight_decay=0.1)
    whole = fit(X, y, **kw)
    steps = MLPClassifier(**{**TINY, **kw})
    for _ in range(2):
        steps.partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_allclose(steps.coefs_[0], whole.coefs_[0], rtol=1e-6)


# --- the optax path trains ----------------------------------------------------------------------
@pytest.mark.parametrize("params", [dict(optimizer="adamw", weight_decay=1e-3, schedule="warmup_cosine",
                                         warmup_epochs=2, learning_rate_init=1e-2),
                                    dict(solver="sgd", optimizer="nesterov", clip_norm=5.0, learning_rate_init=0.05)],
                         ids=["adamw_warmup_cosine", "nesterov_clipped"])
def test_optax_optimizer_trains_digits(params):
    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=40, random_state=0, **params).fit(X[:500], y[:500])
    assert clf.score(X[500:900], y[500:900]) > 0.8  # 0.87 on CPU; scikit-learn's defaults: 0.75 in 40 epochs
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]


# --- names ----------------------------------------------------------------------------------------
def test_extras_round_trip_get_set_params_and_clone():
    extras_ = dict(optimizer="lamb", weight_decay=0.01, clip_norm=1.0, schedule="warmup_cosine", warmup_epochs=3,
                   input_noise=0.1)
    assert set(extras_) <= set(EXTRA_DEFAULTS) and "optimizer" not in FORMER_NAMES
    for cls in (MLPClassifier, MLPRegressor):
        est = cls(**extras_)
        assert {k: est.get_params()[k] for k in extras_} == extras_
        assert {k: clone(est).get_params()[k] for k in extras_} == extras_
        back = cls().set_params(**extras_)
        assert {k: back.get_params()[k] for k in extras_} == extras_
        assert {k: cls().get_params()[k] for k in extras_} == {k: EXTRA_DEFAULTS[k] for k in extras_}


def test_the_readme_table_is_the_parameter_table():
    """README's "From scikit-learn" table lists every name with its default and params.MEANING's text."""
    section = (Path(__file__).resolve().parents[1] / "README.md").read_text().split("## From scikit-learn")[1]
    rows = dict((m[0], (m[1], m[2])) for m in re.findall(r"^\| `(\w+)` \| `(.+?)` \| (.+) \|$", section, re.MULTILINE))
    defaults = {**SKLEARN_DEFAULTS, "loss": "squared_error", **EXTRA_DEFAULTS}
    assert rows == {name: (repr(value), MEANING[name]) for name, value in defaults.items()}


@pytest.mark.parametrize("params, message", [
    (dict(optimizer="adagrad"), r"The 'optimizer' parameter of MLPRegressor must be None or a str among"),
    (dict(weight_decay=-1.0), r"The 'weight_decay' parameter of MLPRegressor must be a float"),
    (dict(clip_norm=0.0), r"The 'clip_norm' parameter of MLPRegressor must be None or a float"),
    (dict(schedule="step"), r"The 'schedule' parameter of MLPRegressor must be None or a str among"),
    (dict(warmup_epochs=1.5), r"The 'warmup_epochs' parameter of MLPRegressor must be an int"),
    (dict(input_noise=-0.1), r"The 'input_noise' parameter of MLPRegressor must be a float"),
    (dict(solver="lbfgs", optimizer="adamw"), r"MLPRegressor: optimizer is only available for stochastic solvers"),
    (dict(solver="lbfgs", input_noise=0.1, dropout=0.1), r"MLPRegressor: dropout, input_noise are only available"),
    (dict(weight_decay=0.1, clip_norm=1.0), r"MLPRegressor: weight_decay, clip_norm apply only with an optax "),
    (dict(schedule="cosine"), r"MLPRegressor: schedule applies only with an optax optimizer"),
    (dict(optimizer="adam", schedule="warmup_cosine"), r"MLPRegressor: schedule='warmup_cosine' needs warmup_epochs"),
    (dict(optimizer="adam", warmup_epochs=9), r"MLPRegressor: warmup_epochs must be <= max_iter=8, got 9"),
])
def test_bad_extras_are_one_line_naming_the_class(data, params, message):
    with pytest.raises(ValueError, match=message) as info:
        MLPRegressor(**{**TINY, **params}).fit(data[0], data[1].astype(float))
    assert "\n" not in str(info.value)


def test_every_optimizer_of_the_trainer_is_accepted(data):
    for name in OPTIMIZERS:  # 2 epochs each: the names map onto the trainer's factories
        assert np.isfinite(fit(*data, optimizer=name, max_iter=2).loss_curve_).all()


# --- compiling once -------------------------------------------------------------------------------
def test_traced_extras_keep_one_program_for_a_grid(data):
    X, y = data
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, batch_size=16, random_state=0, optimizer="adamw",
                        schedule="warmup_cosine", warmup_epochs=1, input_noise=0.1, clip_norm=1.0)
    spec = engine.Spec("relu", None, "softmax", "adam", 0.0, True, extras.chain_of(clf))
    program = engine.epoch_program(spec)
    before = program._cache_size()  # (6,) is this test's shape alone
    GridSearchCV(clf, {"learning_rate_init": [1e-3, 1e-2]}, cv=5).fit(X, y)  # 10 fold fits and the refit
    assert program._cache_size() == before + 1
    grid = [{"weight_decay": [0.0, 0.1]}, {"input_noise": [0.3]}, {"warmup_epochs": [2]}, {"beta_1": [0.8]}]
    GridSearchCV(clf, grid, cv=4).fit(X, y)  # the traced extras, 45-row folds (the same 64-row bucket): still one

    assert program._cache_size() == before + 1
