"""scikit-learn estimators on jaxmlp's trainer: `MLPClassifier` and `MLPRegressor`.

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from jaxmlp.sklearn import MLPClassifier

    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden=(64,), random_state=0))
    clf.fit(X_train, y_train).score(X_test, y_test)

Needs scikit-learn >= 1.3, the optional extra: pip install 'jaxmlp[sklearn]'. Only this module
imports scikit-learn; `import jaxmlp` never does.

The parameters are `TrainConfig` fields under the same names and meanings (hidden, not
hidden_layer_sizes; epochs, not max_iter; l2 is the L2 penalty, while alpha is the
leaky_relu/elu/prelu slope, as in TrainConfig), plus scikit-learn's random_state for the seed.
Defaults differ from TrainConfig's where small tabular data wants it: learning_rate 1e-3,
epochs 200 and batch_size "auto" = min(200, n_samples), scikit-learn's MLP defaults. Fields
about loading data, checkpoints, devices, precision and evaluation cadence are not parameters
(fit runs with TrainConfig's defaults for them, eval_train off).

`fit(X, y)` builds a TrainConfig (kept as `config_`) and calls `jaxmlp.training.fit` on the
data as given: features are not scaled (put a StandardScaler in front), regression targets not
either. Differences from scikit-learn's MLP: each epoch drops its remainder batch (reshuffled
every epoch); there is no tolerance-based stop on the training loss (early stopping is
patience on a held-out val_fraction, as in jaxmlp); no sample_weight, partial_fit or
warm_start. Each new (n_samples, n_features, model) shape compiles an epoch program once per
process (JAX's persistent compilation cache, JAX_COMPILATION_CACHE_DIR, keeps it across them).
"""
from __future__ import annotations

import functools
import inspect
import numbers
import re
import warnings

import jax
import numpy as np

try:
    import sklearn
    from scipy.special import expit, softmax
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, check_random_state
except ImportError as err:
    raise ImportError(f"jaxmlp.sklearn needs scikit-learn ({err}); install the extra: "
                      "pip install 'jaxmlp[sklearn]' (in a checkout: pip install -e '.[sklearn]')") from None

if tuple(int(v) for v in re.match(r"(\d+)\.(\d+)", sklearn.__version__).groups()) < (1, 3):
    raise ImportError(f"jaxmlp.sklearn needs scikit-learn >= 1.3, found {sklearn.__version__}; "
                      "pip install 'jaxmlp[sklearn]' upgrades it")

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # 1.3 - 1.5: the method it replaced
    def _validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)

from jaxmlp.config import FIELD_HELP, FIELD_NAMES, TrainConfig
from jaxmlp.data import from_arrays, stratified_split
from jaxmlp.losses import get_loss, predict_classes
from jaxmlp.mlp import mlp_apply
from jaxmlp.training import fit as train_mlp

__all__ = ["MLPClassifier", "MLPRegressor"]

AUTO_BATCH = 200  # batch_size "auto" = min(AUTO_BATCH, n_train), as in scikit-learn's MLP
PREDICT_CHUNK = 256  # rows per prediction call: one fixed shape, so a row's output never depends on its batch
FLOATS = (np.float64, np.float32)  # X as float32 stays float32, anything else becomes float64


class _JaxMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, fit, the forward pass."""

    def __init__(self, *, hidden=(100,), activation="relu", alpha=None, k=None, approximate=False, init=None,
                 dtype="float32", loss="auto", l2=0.0, dropout=0.0, input_noise=0.0, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, b1=0.9, b2=0.999, eps=1e-8, rms_decay=0.9, weight_decay=0.0,
                 clip_norm=None, schedule="constant", warmup_epochs=0, decay_rate=0.1, decay_epochs=30,
                 final_lr_fraction=0.0, grad_method="autodiff", epochs=200, batch_size="auto", val_fraction=0.0,
                 patience=0, min_delta=0.0, restore_best=False, random_state=None):
        given = dict(locals())  # every parameter stored as given: scikit-learn validates in fit
        del given["self"]
        vars(self).update(given)

    # --- fit ----------------------------------------------------------------------------------
    def _seed(self) -> int:
        """TrainConfig.seed: random_state itself when an int, else one draw from it (None:
        numpy's global RandomState, so unseeded fits differ, as in scikit-learn)."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _batch_size(self, n_train: int) -> int:
        bs = self.batch_size
        if isinstance(bs, str) and bs == "auto":
            return min(AUTO_BATCH, n_train)
        if not isinstance(bs, numbers.Integral) or isinstance(bs, bool) or bs < 1:
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {bs!r}")
        if bs > n_train:
            warnings.warn(f"batch_size={bs} is larger than the {n_train} training examples; clipped to {n_train}",
                          UserWarning, stacklevel=3)
        return int(min(bs, n_train))

    def _fit(self, X: np.ndarray, y: np.ndarray, num_classes: int | None) -> None:
        """Train on validated X (n, D) and y: class indices or (n, k) float targets."""
        data = from_arrays(X, y, num_classes=num_classes, name=f"{type(self).__name__}.fit data")
        seed = self._seed()
        train, val = stratified_split(seed, data, self.val_fraction) if self.val_fraction else (data, None)
        fields = {name: getattr(self, name) for name in self._get_param_names() if name in FIELD_NAMES}
        fields.update(batch_size=self._batch_size(len(train)), seed=seed, eval_train=False)
        config = TrainConfig(**fields)
        params, history = train_mlp(config, train, val)
        self.params_ = jax.device_get(params)
        self.coefs_ = [layer.W for layer in self.params_]
        self.intercepts_ = [layer.b for layer in self.params_]
        self.loss_curve_ = list(history.train_loss)
        self.n_iter_ = len(history.epoch)
        self.history_ = history
        self.config_ = config

    def __sklearn_is_fitted__(self) -> bool:  # check_is_fitted: a fit that failed midway is no fit
        return hasattr(self, "params_")

    # --- predict ------------------------------------------------------------------------------
    def _scores(self, X) -> np.ndarray:
        """Output scores (n, d_out) as float64, in fixed chunks of PREDICT_CHUNK rows."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=FLOATS)
        config = self.config_
        forward = _forward_fn(config.activation, tuple(sorted(config.activation_options().items())))
        dtype = self.params_[0].W.dtype
        params = jax.device_put(self.params_)
        chunk = np.zeros((PREDICT_CHUNK, X.shape[1]), dtype)
        out = []
        for start in range(0, X.shape[0], PREDICT_CHUNK):
            rows = X[start:start + PREDICT_CHUNK]
            chunk[:len(rows)] = rows
            out.append(np.asarray(forward(params, chunk))[:len(rows)])
        return np.concatenate(out).astype(np.float64)


@functools.lru_cache(maxsize=32)
def _forward_fn(activation: str, options: tuple):
    opts = dict(options)
    return jax.jit(lambda params, x: mlp_apply(params, x, activation=activation, **opts))


def _has_proba(est) -> bool:
    """predict_proba exists unless the loss is multiclass_hinge (margins are not probabilities)."""
    try:
        return est.loss == "auto" or get_loss(est.loss).name != "multiclass_hinge"
    except (ValueError, TypeError):  # an unknown loss: fit will say so
        return True


class MLPClassifier(ClassifierMixin, _JaxMLP):
    """Multi-layer perceptron classifier trained by `jaxmlp.training.fit`.

    loss "auto" is softmax_cross_entropy; binary_logistic (2 classes, one output score) and
    multiclass_hinge (no predict_proba) are the alternatives. y may hold any labels scikit-learn
    accepts (ints, floats, strings); they are sorted into `classes_` and trained as indices.

    {params}

    Attributes
    ----------
    classes_ : ndarray (n_classes,), the class labels.
    {attributes}
    """

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and class labels y (n_samples,); returns self."""
        X, y = _validate_data(self, X, y, dtype=FLOATS)
        check_classification_targets(y)
        classes, indices = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"MLPClassifier needs examples of at least 2 classes in y, "
                             f"got one class: {classes.tolist()[0]!r}")
        self._fit(X, indices.reshape(-1), len(classes))
        self.classes_ = classes
        return self

    def predict(self, X):
        """Class labels (n_samples,): the highest score (binary_logistic: score > 0)."""
        scores = self._scores(X)  # first: NotFittedError before fit
        return self.classes_[predict_classes(scores)]

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes): softmax of the scores (binary_logistic:
        the sigmoid of its one score, as [1 - p, p])."""
        scores = self._scores(X)
        if scores.shape[1] == 1:
            p = expit(scores[:, 0])
            return np.column_stack([1.0 - p, p])
        return softmax(scores, axis=1)

    @available_if(_has_proba)
    def predict_log_proba(self, X):
        """Logarithm of predict_proba."""
        return np.log(self.predict_proba(X))


class MLPRegressor(RegressorMixin, _JaxMLP):
    """Multi-layer perceptron regressor (mean squared error) trained by `jaxmlp.training.fit`.

    y is (n_samples,) or (n_samples, n_outputs); predictions have the same shape (a single
    column is returned flat, as in scikit-learn). Targets are not scaled: standardize them
    (e.g. sklearn.compose.TransformedTargetRegressor) when they are far from unit scale.

    {params}

    Attributes
    ----------
    n_outputs_ : int, the number of target columns.
    {attributes}
    """

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and targets y (n_samples[, n_outputs]); returns self."""
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=FLOATS)
        y = np.asarray(y, dtype=np.float64)
        self._fit(X, y.reshape(len(y), -1), None)
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        return self

    def predict(self, X):
        """Predictions (n_samples,) for one target, (n_samples, n_outputs) for several."""
        scores = self._scores(X)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}


# --- docstrings: TrainConfig's field comments are the parameters' documentation --------------
_OWN_HELP = {  # where TrainConfig's help speaks of the CLI, or the estimator differs
    "hidden": "hidden layer widths, e.g. (512, 512); () = a linear model",
    "dtype": "float32 or float64 (float64 needs 64-bit JAX: jax.config.update('jax_enable_x64', True))",
    "loss": "auto (softmax_cross_entropy for MLPClassifier, mean_squared_error for MLPRegressor), "
            "multiclass_hinge, binary_logistic (MLPClassifier) or mean_squared_error (MLPRegressor)",
    "epochs": "passes over the training set (fewer with early stopping)",
    "batch_size": f"minibatch size, clipped to the training examples (with a warning); "
                  f"'auto' = min({AUTO_BATCH}, n_train). Each epoch drops the remainder batch",
    "val_fraction": "fraction of X held out (stratified for classifiers) as validation data; "
                    "needed by patience",
    "restore_best": "early stopping: keep the params of the best val-loss epoch",
    "random_state": "int: the TrainConfig seed (init, shuffling, dropout, noise, the val split); "
                    "None or a numpy RandomState: one seed drawn from it (None: not reproducible)",
}
_ATTRIBUTES = """coefs_ : list of ndarray, layer i's weights (d_in, d_out); (k, d_in, d_out) for maxout.
    intercepts_ : list of ndarray, layer i's biases (d_out,); (k, d_out) for maxout.
    loss_curve_ : list of float, the mean training objective of each epoch run.
    n_iter_ : int, epochs run.
    n_features_in_ : int, features seen in fit (and feature_names_in_ for named columns).
    params_ : list of jaxmlp.Layer, the trained params (numpy arrays; PReLU slopes in .alpha).
    history_ : jaxmlp.training.History, per-epoch records and the final evaluation.
    config_ : jaxmlp.TrainConfig, the exact config fit ran (batch size and seed resolved)."""


def _params_doc() -> str:
    lines = ["Parameters", "    ----------"]
    for name, param in inspect.signature(_JaxMLP.__init__).parameters.items():
        if name != "self":
            lines.append(f"    {name} : default={param.default!r}")
            lines.append(f"        {_OWN_HELP.get(name) or FIELD_HELP.get(name, '')}")
    return "\n".join(lines)


for _cls in (MLPClassifier, MLPRegressor):
    if _cls.__doc__:  # None under python -OO
        _cls.__doc__ = _cls.__doc__.format(params=_params_doc(), attributes=_ATTRIBUTES)
