"""`MLPClassifier` and `MLPRegressor`: scikit-learn's MLP estimators, trained by JAX.

They take scikit-learn's parameters with scikit-learn's defaults and meanings (params.py) and
have its fitted attributes; what differs is listed in the package docstring.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from jaxmlp.sklearn.base import FLOATS, SPARSE, BaseMLP, validate_data
from jaxmlp.sklearn.params import EXTRA_DEFAULTS, REGRESSOR_LOSSES, SKLEARN_DEFAULTS, init_with


def _validate(est, X, y, reset: bool, **kwargs):
    X, y = validate_data(est, X, y, accept_sparse=SPARSE, multi_output=True, dtype=FLOATS, reset=reset, **kwargs)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return X, y


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier, trained by JAX.

    Softmax outputs for multiclass y, one logistic output for binary y, one per label for a
    multilabel indicator matrix; the log-loss plus alpha's L2 penalty, as scikit-learn.
    Parameters: scikit-learn's, plus jaxmlp's extras (params.EXTRA_DEFAULTS, explained in
    params.MEANING): dropout, input_noise, activation_slope, dtype, and optimizer (an optax
    optimizer of jaxmlp's trainer) with weight_decay, clip_norm, schedule, warmup_epochs.
    Attributes: classes_, coefs_, intercepts_, loss_, best_loss_, loss_curve_,
    validation_scores_, best_validation_score_, n_iter_, t_, n_layers_, n_outputs_,
    out_activation_, n_features_in_, feature_names_in_ (scikit-learn's, same shapes).
    """

    _score_fn = staticmethod(accuracy_score)

    def _targets(self, X, y, incremental: bool, reset: bool):
        """scikit-learn's classifier _validate_input: (X, Y (n, k) binarized labels)."""
        X, y = _validate(self, X, y, reset)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and set(classes) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {self.classes_}, `y` has {classes}")
            if not self.warm_start and len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(np.float64)

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _decode(self, out: np.ndarray):
        return self._label_binarizer.inverse_transform(out.ravel() if self.n_outputs_ == 1 else out)

    def _labels(self, Y: np.ndarray):
        return self._label_binarizer.inverse_transform(Y)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y (scikit-learn's partial_fit); `classes` (all labels) is needed on
        the first call. The optimizer state carries over between calls. Returns self."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Class labels (n_samples,), or (n_samples, n_classes) indicators for multilabel y."""
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of classes_."""
        out = self._forward(X)
        if self.n_outputs_ == 1:
            return np.column_stack([1 - out[:, 0], out[:, 0]])
        return out

    def predict_log_proba(self, X):
        """log of predict_proba (n_samples, n_classes)."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multilabel": True}


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor, trained by JAX.

    loss 'squared_error' (identity output) or 'poisson' (exp output), plus alpha's L2 penalty.
    Parameters and attributes: as MLPClassifier's (without classes_), and loss.
    """

    __init__ = init_with({"loss": "squared_error", **SKLEARN_DEFAULTS, **EXTRA_DEFAULTS}, positional=3)
    _parameter_constraints = {**BaseMLP._parameter_constraints, "loss": [StrOptions(REGRESSOR_LOSSES)]}
    _score_fn = staticmethod(r2_score)

    def _targets(self, X, y, incremental: bool, reset: bool):
        X, y = _validate(self, X, y, reset, y_numeric=True)
        return X, np.asarray(y, np.float64).reshape(len(y), -1)

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _decode(self, out: np.ndarray):
        return out.ravel() if out.shape[1] == 1 else out

    def _labels(self, Y: np.ndarray):
        return self._decode(Y)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y (scikit-learn's partial_fit). Returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) for one target, (n_samples, n_outputs) for several."""
        return self._decode(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}
