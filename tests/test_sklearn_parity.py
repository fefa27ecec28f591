"""jaxmlp.sklearn against scikit-learn's own MLP: the parameter table, the fitted attributes, and
the numbers (alpha's scaling, sample_weight, partial_fit, warm_start, early_stopping, the sgd
schedules), number for number on tiny fixed problems.

With the same random_state both draw the same initial weights, split and shuffles (numpy), so
their loss curves agree to float32 rounding (jaxmlp's default dtype; scikit-learn runs float64).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is the optional extra jaxmlp[sklearn]")

import sklearn.neural_network as sk  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from jaxmlp.sklearn import MLPClassifier, MLPRegressor, engine  # noqa: E402
from jaxmlp.sklearn.params import EXTRA_DEFAULTS  # noqa: E402

RTOL = 2e-5  # float32 against float64 over a few epochs
TINY = dict(hidden_layer_sizes=(8,), random_state=0, max_iter=8, batch_size=16)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    """X (60, 4) standardized, y (60,) in {0, 1, 2}, sample weights w (60,) in [0.5, 2)."""
    X, y = make_blobs(n_samples=60, n_features=4, centers=3, cluster_std=3.0, random_state=1)
    w = np.random.RandomState(2).uniform(0.5, 2.0, 60)
    return StandardScaler().fit_transform(X), y, w


def both(cls_pair, fit=lambda est: est, **params):
    """(ours, scikit-learn's), each built with `params` and passed through `fit`."""
    ours, theirs = cls_pair
    return fit(ours(**params)), fit(theirs(**params))


CLASSIFIERS = (MLPClassifier, sk.MLPClassifier)
REGRESSORS = (MLPRegressor, sk.MLPRegressor)


# --- the tables ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pair", [CLASSIFIERS, REGRESSORS], ids=["classifier", "regressor"])
def test_every_sklearn_parameter_with_its_default(pair):
    ours, theirs = pair[0]().get_params(), pair[1]().get_params()
    assert {name: ours[name] for name in theirs} == theirs
    assert set(ours) - set(theirs) == set(EXTRA_DEFAULTS)  # our extras, under names scikit-learn does not use


def documented_attributes(cls) -> list[str]:
    """The `name_ :` entries of the Attributes section of scikit-learn's docstring."""
    section = cls.__doc__.split("Attributes\n    ----------")[1].split("See Also")[0]
    return re.findall(r"^    (\w+_) :", section, re.MULTILINE)


@pytest.mark.parametrize("pair", [CLASSIFIERS, REGRESSORS], ids=["classifier", "regressor"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_fitted_attributes_as_sklearn_documents_them(pair, solver, data):
    X, y, _ = data
    names = documented_attributes(pair[1])
    assert {"coefs_", "loss_curve_", "best_loss_", "t_", "n_iter_", "out_activation_"} <= set(names)
    ours, theirs = both(pair, lambda est: est.fit(X, y), solver=solver, **TINY)
    for name in names:
        if name == "feature_names_in_":  # only for named columns (a DataFrame), as in scikit-learn
            assert not hasattr(ours, name) and not hasattr(theirs, name)
            continue
        assert hasattr(ours, name) == hasattr(theirs, name), name
        a, b = getattr(ours, name, None), getattr(theirs, name, None)
        if isinstance(b, list) and b and isinstance(b[0], np.ndarray):
            assert [v.shape for v in a] == [v.shape for v in b], name
        else:
            assert type(a) is type(b) or isinstance(b, (float, np.floating)), name


# --- the numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 1.0, 10.0])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_alpha_is_sklearns_l2_penalty(data, alpha, solver):
    X, y, _ = data
    ours, theirs = both(CLASSIFIERS, lambda est: est.fit(X, y), alpha=alpha, solver=solver, **TINY)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("pair", [CLASSIFIERS, REGRESSORS], ids=["classifier", "regressor"])
def test_sample_weight_is_a_weighted_mean(pair, data):
    X, y, w = data
    ours, theirs = both(pair, lambda est: est.fit(X, y, sample_weight=w), alpha=1.0, **TINY)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
    unweighted = pair[0](alpha=1.0, **TINY).fit(X, y)
    assert not np.allclose(unweighted.loss_curve_, ours.loss_curve_)


def test_sample_weight_equals_repeated_rows_in_float64(x64):
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data as check
    for est in (MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=1e-2, dtype="float64"),
                MLPRegressor(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=1e-2, dtype="float64")):
        check(type(est).__name__, est)


def test_partial_fit_is_one_epoch_and_keeps_the_optimizer(data):
    X, y, _ = data
    ours, theirs = both(CLASSIFIERS, **TINY)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(X, y)
    for part in np.array_split(np.arange(60), [23, 40]):  # 23, 17 and 20 rows: one bucket, one program
        for est in (ours, theirs):
            est.partial_fit(X[part], y[part], classes=[0, 1, 2])
        assert ours.loss_ == pytest.approx(theirs.loss_, rel=RTOL)
    assert ours.t_ == theirs.t_ == 60 and ours.n_iter_ == theirs.n_iter_ == 1


def test_warm_start_continues(data):
    X, y, _ = data
    ours, theirs = both(CLASSIFIERS, warm_start=True, **TINY)
    for _ in range(2):
        ours.fit(X, y)
        theirs.fit(X, y)
    assert len(ours.loss_curve_) == 16
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same classes"):
        ours.fit(X, np.where(y == 2, 1, y))


@pytest.mark.parametrize("pair", [CLASSIFIERS, REGRESSORS], ids=["classifier", "regressor"])
def test_early_stopping_as_sklearn(pair, data):
    X, y, _ = data
    kw = {**TINY, "max_iter": 60, "early_stopping": True, "validation_fraction": 0.25, "n_iter_no_change": 3,
          "tol": 1e-2}
    ours, theirs = both(pair, lambda est: est.fit(X, y), **kw)
    assert ours.n_iter_ == theirs.n_iter_ and ours.best_loss_ is None
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-4)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-4)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        pair[0](**kw).partial_fit(X, y, **({"classes": [0, 1, 2]} if pair is CLASSIFIERS else {}))


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_sgd_learning_rate_schedules(data, schedule):
    X, y, _ = data
    kw = {**TINY, "solver": "sgd", "learning_rate": schedule, "learning_rate_init": 0.1, "max_iter": 30,
          "n_iter_no_change": 2, "tol": 0.05}  # a large tol: the adaptive rate is divided, the others stop
    ours, theirs = both(CLASSIFIERS, lambda est: est.fit(X, y), **kw)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    assert ours._optimizer["lr"] == pytest.approx(theirs._optimizer.learning_rate)


def test_lbfgs_with_optax(data):
    X, y, _ = data
    ours, theirs = both(CLASSIFIERS, lambda est: est.fit(X, y), solver="lbfgs", alpha=1.0,
                        hidden_layer_sizes=(8,), random_state=0)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.05)  # the same optimum, other iterates
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.05)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 2 iteration"):
        MLPClassifier(solver="lbfgs", max_iter=2, random_state=0).fit(X, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_verbose_prints_one_line_per_epoch(data, capsys):
    X, y, _ = data
    MLPClassifier(verbose=True, **TINY).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and lines[0].startswith("Iteration 1, loss = ")


# --- names --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, hint", [("hiden_layer_sizes", "hidden_layer_sizes"), ("hidden", "hidden_layer_sizes"),
                                        ("epochs", "max_iter"), ("l2", "alpha"), ("learning_rate_int", "learning_rate_init")])
def test_unknown_name_is_one_line_with_the_closest(name, hint):
    with pytest.raises(TypeError) as info:
        MLPClassifier(**{name: 1})
    message = str(info.value)
    assert "\n" not in message and message.startswith("MLPClassifier.__init__() got unexpected keyword argument")
    assert f"{name!r} (did you mean {hint!r}?)" in message
    with pytest.raises(ValueError, match=f"Invalid parameter for estimator MLPRegressor: '{name}'"):
        MLPRegressor().set_params(**{name: 1})


# --- compiling once ----------------------------------------------------------------------------
def test_one_epoch_program_serves_every_fold_and_candidate(data):
    X, y, _ = data
    program = engine.epoch_program(engine.Spec("relu", None, "softmax", "adam", 0.0))
    before = program._cache_size()  # programs of other tests' shapes; (5,) is this test's alone
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, batch_size=16, random_state=0)
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]}
    GridSearchCV(clf, grid, cv=5).fit(X, y)  # 20 fits on 48 rows and the refit on 60: 64 rows
    assert program._cache_size() == before + 1
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, batch_size=13).fit(X[:57], y[:57])
    assert program._cache_size() == before + 2  # another padded minibatch (14 rows)
