"""jaxmlp.sklearn: scikit-learn's estimator checks, Pipeline and GridSearchCV, labels, attributes.

Every fit compiles an epoch program per data shape (cached in-process and in the persistent
cache conftest.py turns on), so the tests here share one data set shape (120, 4) where they can.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is the optional extra jaxmlp[sklearn]")

from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from jaxmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

N, D = 120, 4  # the shared data shape


@pytest.fixture(scope="module")
def blobs():
    """(X (120, 4) standardized, y (120,) in {0, 1, 2}): three separable blobs."""
    X, y = make_blobs(n_samples=N, n_features=D, centers=3, cluster_std=2.0, random_state=0)
    return StandardScaler().fit_transform(X), y


# --- scikit-learn's estimator checks -------------------------------------------------------------
# The checks run ~90 fits on ~30 data shapes (each a compile) with 1 step per epoch on their tiny
# sets: a small hidden layer and 50 epochs at learning rate 1e-2 (defaults: 200 at 1e-3) learn
# enough for the accuracy and R^2 thresholds at a quarter of the epochs. The regressor uses
# leaky_relu because check_regressors_train sets `alpha = 0.01`, scikit-learn's name for a
# regularization strength; in jaxmlp (TrainConfig) alpha is the slope of leaky_relu / elu /
# prelu, which relu rejects, and 0.01 is leaky_relu's default slope anyway.
# No check is expected to fail.
QUICK = dict(hidden=(16,), epochs=50, learning_rate=1e-2)


@parametrize_with_checks([MLPClassifier(**QUICK), MLPRegressor(**QUICK, activation="leaky_relu")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --- classifier --------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [np.array(["ant", "bee", "cat"]), np.array([-7, 0, 5]), np.array([1.0, 2.0, -3.0])],
                         ids=["strings", "negative_ints", "floats"])
def test_classifier_labels_attributes_and_pipeline(blobs, labels):
    X, y_idx = blobs
    y = labels[y_idx]
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden=(16,), random_state=0)).fit(X, y)
    clf = model[-1]
    assert model.score(X, y) > 0.9
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    pred = model.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= set(labels)
    proba = model.predict_proba(X)
    assert proba.shape == (N, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    assert [w.shape for w in clf.coefs_] == [(D, 16), (16, 3)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (3,)]
    assert clf.n_iter_ == len(clf.loss_curve_) == 200 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.n_features_in_ == D
    assert clf.config_.batch_size == N and clf.config_.seed == 0  # "auto" = min(200, n)
    assert clf.history_.final["train"]["accuracy"] > 0.9


def test_classifier_binary_logistic_and_hinge(blobs):
    X, y_idx = blobs
    y = np.where(y_idx == 0, "yes", "no")
    logistic = MLPClassifier(hidden=(16,), loss="binary_logistic", random_state=0).fit(X, y)
    assert logistic.coefs_[-1].shape == (16, 1)  # one score
    proba = logistic.predict_proba(X)
    assert proba.shape == (N, 2)
    np.testing.assert_array_equal(logistic.classes_[proba.argmax(axis=1)], logistic.predict(X))
    assert logistic.score(X, y) > 0.9
    hinge = MLPClassifier(hidden=(16,), loss="multiclass_hinge", random_state=0).fit(X, y)
    assert not hasattr(hinge, "predict_proba")  # margins are not probabilities
    assert hinge.score(X, y) > 0.9


def test_classifier_one_class_is_an_error(blobs):
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier().fit(blobs[0], np.full(N, "only"))


# --- regressor ---------------------------------------------------------------------------------
def test_regressor_single_and_multi_output(blobs):
    X, _ = blobs
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]])
    single = MLPRegressor(hidden=(32,), learning_rate=1e-2, random_state=0).fit(X, Y[:, 0])
    assert single.predict(X).shape == (N,) and single.n_outputs_ == 1
    assert single.score(X, Y[:, 0]) > 0.9
    multi = MLPRegressor(hidden=(32,), learning_rate=1e-2, random_state=0).fit(X, Y)
    assert multi.predict(X).shape == (N, 2) and multi.n_outputs_ == 2
    assert multi.coefs_[-1].shape == (32, 2)
    assert multi.score(X, Y) > 0.8


# --- scikit-learn machinery: GridSearchCV, clone, parameters --------------------------------------
def test_grid_search_over_a_pipeline(blobs):
    X, y = blobs
    # epochs does not change the compiled epoch program: every candidate shares one compile
    search = GridSearchCV(make_pipeline(StandardScaler(), MLPClassifier(hidden=(16,), random_state=0)),
                          {"mlpclassifier__epochs": [2, 200]}, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"mlpclassifier__epochs": 200}
    assert search.best_score_ > 0.85
    assert search.best_estimator_[-1].n_iter_ == 200
    assert search.score(X, y) > 0.9


def test_parameters_are_validated_in_fit_not_init(blobs):
    X, y = blobs
    clf = MLPClassifier(hidden=[8, "x"], optimizer="nope")
    assert clf.get_params()["optimizer"] == "nope"
    with pytest.raises(ValueError, match="hidden"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="optimizer"):
        clf.set_params(hidden=(8,)).fit(X, y)
    with pytest.raises(ValueError, match="alpha applies only to"):  # scikit-learn's alpha is l2 here
        MLPClassifier(alpha=1e-4).fit(X, y)
    with pytest.raises(ValueError, match="batch_size"):
        MLPClassifier(batch_size=0).fit(X, y)


def test_batch_size_is_clipped_with_a_warning(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="clipped to 120"):
        clf = MLPClassifier(hidden=(16,), batch_size=1000, epochs=2, random_state=0).fit(X, y)
    assert clf.config_.batch_size == N


def test_random_state(blobs):
    X, y = blobs
    kw = dict(hidden=(16,), epochs=3)
    a, b = (MLPClassifier(**kw, random_state=7).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert a.config_.seed == 7
    seeds = {MLPClassifier(**kw).fit(X, y).config_.seed for _ in range(3)}  # None: a fresh draw
    assert len(seeds) == 3
    c, d = (MLPClassifier(**kw, random_state=np.random.RandomState(1)).fit(X, y) for _ in range(2))
    assert c.config_.seed == d.config_.seed  # one draw from equal RandomStates


def test_early_stopping_on_a_validation_split(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="val_fraction"):
        MLPClassifier(patience=2).fit(X, y)
    clf = MLPClassifier(hidden=(16,), learning_rate=0.05, epochs=300, val_fraction=0.25, patience=5,
                        restore_best=True, random_state=0).fit(X, y)
    history = clf.history_
    assert history.stopped_early and clf.n_iter_ == len(clf.loss_curve_) < 300
    assert clf.config_.batch_size == 90  # the 90 training examples left after the split
    assert history.best_val_loss is not None and history.final["val"]["loss"] == pytest.approx(history.best_val_loss)


# --- the optional dependency -----------------------------------------------------------------------
def test_import_jaxmlp_does_not_import_sklearn():
    code = "import sys, jaxmlp; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_sklearn_is_one_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "jaxmlp.sklearn")
    with pytest.raises(ImportError, match=r"pip install 'jaxmlp\[sklearn\]'") as info:
        importlib.import_module("jaxmlp.sklearn")
    assert info.value.__cause__ is None and info.value.__suppress_context__
