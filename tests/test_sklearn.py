"""jaxmlp.sklearn: scikit-learn's estimator checks, Pipeline and GridSearchCV, labels, attributes.

Fits share compiled programs through bucketed shapes (jaxmlp/sklearn/buckets.py) and the
persistent cache conftest.py turns on; the tests here share one data set shape (120, 4).
Agreement with scikit-learn's own MLP, number for number, is in test_sklearn_parity.py.
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
# The checks run ~90 fits on their tiny sets, whose sizes fall into a few buckets (buckets.py):
# a small hidden layer and 50 epochs at learning rate 1e-2 (defaults: 200 at 1e-3) learn enough
# for the accuracy and R^2 thresholds at a quarter of the epochs.
QUICK = dict(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=1e-2)
# Weights against repeated rows agree to float32 rounding (2e-7), over the checks' float64
# tolerance; with dtype="float64" they pass (test_sklearn_parity.py runs them so).
EXPECTED_FAILURES = {f"check_sample_weight_equivalence_on_{kind}_data": "float32 rounding; passes in float64"
                     for kind in ("dense", "sparse")}


@parametrize_with_checks([MLPClassifier(**QUICK), MLPRegressor(**QUICK)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --- classifier --------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [np.array(["ant", "bee", "cat"]), np.array([-7, 0, 5]), np.array([1.0, 2.0, -3.0])],
                         ids=["strings", "negative_ints", "floats"])
def test_classifier_labels_attributes_and_pipeline(blobs, labels):
    X, y_idx = blobs
    y = labels[y_idx]
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=1e-2,
                                                          random_state=0)).fit(X, y)
    clf = model[-1]
    assert model.score(X, y) > 0.9
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    pred = model.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= set(labels)
    proba = model.predict_proba(X)
    assert proba.shape == (N, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    assert [w.shape for w in clf.coefs_] == [(D, 16), (16, 3)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (3,)]
    assert clf.n_iter_ == len(clf.loss_curve_) and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.n_features_in_ == D and clf.out_activation_ == "softmax" and clf.n_outputs_ == 3


def test_classifier_binary_and_multilabel(blobs):
    X, y_idx = blobs
    y = np.where(y_idx == 0, "yes", "no")
    binary = MLPClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X, y)
    assert binary.coefs_[-1].shape == (16, 1) and binary.out_activation_ == "logistic"  # one score, as scikit-learn
    proba = binary.predict_proba(X)
    assert proba.shape == (N, 2)
    np.testing.assert_array_equal(binary.classes_[proba.argmax(axis=1)], binary.predict(X))
    assert binary.score(X, y) > 0.9
    Y = np.column_stack([y_idx == 0, y_idx == 1]).astype(int)  # a multilabel indicator matrix
    multi = MLPClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X, Y)
    assert multi.predict(X).shape == (N, 2) and multi.n_outputs_ == 2 and multi.out_activation_ == "logistic"


def test_classifier_one_class_is_trained_as_sklearn_does(blobs):
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(blobs[0], np.full(N, "only"))
    assert set(clf.predict(blobs[0])) == {"only"}


# --- regressor ---------------------------------------------------------------------------------
def test_regressor_single_and_multi_output(blobs):
    X, _ = blobs
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]])
    kw = dict(hidden_layer_sizes=(32,), learning_rate_init=1e-2, max_iter=300, random_state=0)
    single = MLPRegressor(**kw).fit(X, Y[:, 0])
    assert single.predict(X).shape == (N,) and single.n_outputs_ == 1 and single.out_activation_ == "identity"
    assert single.score(X, Y[:, 0]) > 0.9
    multi = MLPRegressor(**kw).fit(X, Y)
    assert multi.predict(X).shape == (N, 2) and multi.n_outputs_ == 2
    assert multi.coefs_[-1].shape == (32, 2)
    assert multi.score(X, Y) > 0.8


# --- scikit-learn machinery: GridSearchCV, clone, parameters --------------------------------------
def test_grid_search_over_a_pipeline(blobs):
    X, y = blobs
    search = GridSearchCV(make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), random_state=0)),
                          {"mlpclassifier__max_iter": [2, 200]}, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"mlpclassifier__max_iter": 200}
    assert search.best_score_ > 0.85
    assert search.score(X, y) > 0.9


def test_parameters_are_validated_in_fit_not_init(blobs):
    X, y = blobs
    clf = MLPClassifier(hidden_layer_sizes=[8, 0], solver="nope")
    assert clf.get_params()["solver"] == "nope"
    with pytest.raises(ValueError, match="solver"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        clf.set_params(solver="adam").fit(X, y)
    with pytest.raises(ValueError, match="batch_size"):
        MLPClassifier(batch_size=0).fit(X, y)


def test_batch_size_is_clipped_with_a_warning(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="clipped"):
        MLPClassifier(hidden_layer_sizes=(16,), batch_size=1000, max_iter=2, random_state=0).fit(X, y)


def test_random_state(blobs):
    X, y = blobs
    kw = dict(hidden_layer_sizes=(16,), max_iter=3)
    a, b = (MLPClassifier(**kw, random_state=7).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    c, d = (MLPClassifier(**kw).fit(X, y) for _ in range(2))  # None: numpy's global RandomState
    assert not np.array_equal(c.coefs_[0], d.coefs_[0])


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
