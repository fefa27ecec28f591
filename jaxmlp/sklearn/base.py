"""What MLPClassifier and MLPRegressor share: scikit-learn's parameters, fit, partial_fit, the
epoch loop and its stopping rules, the fitted attributes.

The host side follows scikit-learn's `BaseMultilayerPerceptron` step for step and draws from
the same numpy RandomState in the same order (Glorot-uniform init, `train_test_split` for
early stopping, `sklearn.utils.shuffle` each epoch), so `random_state=0` starts from
scikit-learn's weights and visits the rows in scikit-learn's order. Each epoch is one compiled
call (engine.py) on data padded to buckets (buckets.py).
"""
from __future__ import annotations

import warnings

import jax
import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle as sk_shuffle
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, check_random_state

from jaxmlp import compile_cache
from jaxmlp.sklearn import engine, extras
from jaxmlp.sklearn.buckets import AUTO_BATCH, PREDICT_ROWS, batch_bucket, pad, rows_bucket
from jaxmlp.sklearn.lbfgs import lbfgs_program
from jaxmlp.sklearn.params import (CONSTRAINTS, EXTRA_DEFAULTS, JAX_ACTIVATION, SKLEARN_DEFAULTS, describe_unknown,
                                   init_with)

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # 1.3 - 1.5: the method it replaced
    def validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)

FLOATS = (np.float64, np.float32)  # X as float32 or float64 stays so (the device casts to dtype)
SPARSE = ["csr", "csc"]
STOCHASTIC = ("sgd", "adam")


class BaseMLP(BaseEstimator):
    """The shared estimator; subclasses define `_targets`, `_out_activation`, `_decode`, `_score`."""

    _parameter_constraints = CONSTRAINTS
    __init__ = init_with({**SKLEARN_DEFAULTS, **EXTRA_DEFAULTS})

    def set_params(self, **params):
        valid = self.get_params(deep=False)
        unknown = {name for name in params if "__" not in name and name not in valid}
        if unknown:  # scikit-learn's ValueError, with the closest name
            raise ValueError(f"Invalid parameter for estimator {type(self).__name__}: "
                             f"{describe_unknown(unknown, valid)}")
        return super().set_params(**params)

    # --- fit -------------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and y; sample_weight (n_samples,) weights each
        row's loss (a weighted mean). Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self) -> bool:
        if self.solver not in STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def _fit(self, X, y, sample_weight, incremental: bool):
        compile_cache.ensure_configured()  # jaxmlp's persistent cache, as jaxmlp.fit turns it on
        self._validate_params()
        extras.check(self)
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError("dtype='float64' needs 64-bit JAX: jax.config.update('jax_enable_x64', True)")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._targets(X, y, incremental, reset=first_pass)  # X (n, D) float, Y (n, k) float
        if scipy.sparse.issparse(X):
            X = X.toarray()  # the device holds dense rows
        sw = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, [X.shape[1], *hidden, Y.shape[1]], X.dtype)
        if self.solver in STOCHASTIC:
            self._fit_stochastic(X, Y, sw, incremental)
        else:
            self._fit_lbfgs(X, Y, sw)
        if not all(np.isfinite(w).all() for w in [*self.coefs_, *self.intercepts_]):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")
        return self

    def _initialize(self, Y: np.ndarray, units: list[int], dtype) -> None:
        """scikit-learn's _initialize: attributes and Glorot-uniform weights from _random_state."""
        self.n_iter_, self.t_, self.n_outputs_, self.n_layers_ = 0, 0, Y.shape[1], len(units)
        self.out_activation_ = self._out_activation()
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(self._random_state.uniform(-bound, bound, fan_out).astype(dtype))
        self._best = (list(self.coefs_), list(self.intercepts_))
        if self.solver in STOCHASTIC:
            self.loss_curve_, self._no_improvement_count = [], 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
            else:
                self.best_loss_, self.validation_scores_, self.best_validation_score_ = np.inf, None, None

    def _spec(self, solver: str | None = None) -> engine.Spec:
        """The training program's spec for `solver`; None: the forward pass's (what predict compiles)."""
        spec = engine.Spec(JAX_ACTIVATION[self.activation], self.activation_slope, self.out_activation_)
        if solver not in STOCHASTIC:
            return spec if solver is None else spec._replace(solver=solver)
        return spec._replace(solver=solver, dropout=float(self.dropout), noise=self.input_noise > 0,
                             chain=extras.chain_of(self))

    def _device_params(self) -> list:
        return engine.to_params(self.coefs_, self.intercepts_, self.dtype)

    def _store(self, params: list) -> None:
        host = jax.device_get(params)
        self.coefs_ = [np.asarray(layer.W) for layer in host]
        self.intercepts_ = [np.asarray(layer.b) for layer in host]

    def _hyper(self, lr: float) -> engine.Hyper:
        d = np.dtype(self.dtype).type
        return engine.Hyper(d(self.alpha), d(lr), d(self.momentum), np.bool_(self.nesterovs_momentum),
                            d(self.beta_1), d(self.beta_2), d(self.epsilon), d(self.weight_decay),
                            np.int32(self.warmup_epochs), d(self.input_noise))

    def _padded(self, X, Y, sw) -> tuple:
        """Device (x (Np, D), y (Np, k), w (Np,)) padded to rows_bucket(n), padding weighted 0."""
        n, d = len(X), np.dtype(self.dtype)
        w = np.ones(n, d) if sw is None else np.asarray(sw, d)
        rows = rows_bucket(n)
        return jax.device_put((pad(X.astype(d), rows), pad(Y.astype(d), rows), pad(w, rows)))

    # --- adam / sgd ------------------------------------------------------------------------------
    def _fit_stochastic(self, X, Y, sw, incremental: bool) -> None:
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = {"state": None, "lr": float(self.learning_rate_init)}  # the state starts in the loop
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, Y, sw, val = self._split(X, Y, sw)
        n = len(X)
        batch = min(AUTO_BATCH, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))
        if self.batch_size != "auto" and self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        data, bp, params = self._padded(X, Y, sw), batch_bucket(batch), self._device_params()
        spec = self._spec(self.solver)
        state = self._optimizer["state"] or engine.init_state(spec, params, self._hyper(self._optimizer["lr"]))
        program, key = engine.epoch_program(spec), self._dropout_key()
        order, idx = np.zeros(len(data[0]) + bp, np.int32), np.arange(n)
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:
                idx = sk_shuffle(idx, random_state=self._random_state)
            order[:n] = idx
            epoch_key = None if key is None else jax.random.fold_in(key, self.t_)
            params, state, loss_sum = program(params, state, *data, order, np.int32(n), np.int32(batch),
                                              self._hyper(self._optimizer["lr"]), epoch_key, bp=bp)
            if self._end_epoch(float(loss_sum) / n, n, params, val, incremental):
                break
        self._optimizer["state"] = state
        self._store(self._best_params() if self.early_stopping else params)

    def _split(self, X, Y, sw):
        """(X, Y, sw, val) with val = (X_val, y_val, sw_val) held out for early stopping, else None."""
        if not self.early_stopping:
            return X, Y, sw, None
        stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
        arrays = (X, Y) if sw is None else (X, Y, sw)
        parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                 stratify=stratify)
        if len(parts[1]) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of your "
                             "dataset.")
        sw_train, sw_val = (None, None) if sw is None else (parts[4], parts[5])
        return parts[0], parts[2], sw_train, (parts[1], self._labels(parts[3]), sw_val)

    def _dropout_key(self):
        """A dropout / input-noise key drawn from _random_state, only with either (else no draw:
        scikit-learn's sequence)."""
        noisy = self.dropout > 0 or self.input_noise > 0
        return jax.random.key(self._random_state.randint(2 ** 31 - 1)) if noisy else None

    def _end_epoch(self, loss: float, n: int, params, val, incremental: bool) -> bool:
        """scikit-learn's end of an epoch: record the loss, judge improvement, adapt or stop.
        Returns whether to stop."""
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += n
        self.loss_curve_.append(loss)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
        self._update_no_improvement_count(params, val)
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._optimizer["lr"] = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation score did not improve" if self.early_stopping else "Training loss did not improve"
            msg = f"{what} more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
            if self._trigger_stopping(msg):
                return True
            self._no_improvement_count = 0
        if incremental:
            return True
        if self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning)
        return False

    def _trigger_stopping(self, msg: str) -> bool:
        """scikit-learn's: stop, except that sgd's adaptive rate is divided by 5 until <= 1e-6."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if self._optimizer["lr"] <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._optimizer["lr"] /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._optimizer["lr"])
        return False

    def _update_no_improvement_count(self, params, val) -> None:
        if val is not None:
            score = self._score_outputs(self._outputs(params, val[0]), val[1], val[2])
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            self._no_improvement_count = (self._no_improvement_count + 1
                                          if score < self.best_validation_score_ + self.tol else 0)
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best = params  # device arrays are immutable and never donated: no copy needed
            return
        last = self.loss_curve_[-1]
        self._no_improvement_count = self._no_improvement_count + 1 if last > self.best_loss_ - self.tol else 0
        self.best_loss_ = min(self.best_loss_, last)

    def _best_params(self) -> list:
        best = self._best
        return engine.to_params(*best, self.dtype) if isinstance(best, tuple) else best

    # --- lbfgs -----------------------------------------------------------------------------------
    def _fit_lbfgs(self, X, Y, sw) -> None:
        x, y, w = self._padded(X, Y, sw)
        spec = self._spec("lbfgs")
        d = np.dtype(self.dtype).type
        params, it = lbfgs_program(spec)(self._device_params(), x, y, w, d(self.alpha), np.int32(self.max_iter),
                                         np.int32(self.max_fun), d(self.tol))
        self.n_iter_ = int(it)
        self.loss_ = float(engine.objective(spec, params, x, y, w, d(self.alpha))[1])
        self._store(params)
        if self.n_iter_ >= self.max_iter:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status=1): STOP: TOTAL NO. "
                          "OF ITERATIONS REACHED LIMIT. Increase the number of iterations.", ConvergenceWarning)

    # --- forward ---------------------------------------------------------------------------------
    def _outputs(self, params, X) -> np.ndarray:
        """The network's output activation (n, k) as float64, in chunks of PREDICT_ROWS rows."""
        X = X.toarray() if scipy.sparse.issparse(X) else X
        program, chunk = engine.outputs_program(self._spec()), np.zeros((PREDICT_ROWS, X.shape[1]), self.dtype)
        out = []
        for start in range(0, len(X), PREDICT_ROWS):
            rows = X[start:start + PREDICT_ROWS]
            chunk[:len(rows)] = rows
            out.append(np.asarray(program(params, chunk))[:len(rows)])
        return np.concatenate(out).astype(np.float64)

    def _validate_X(self, X):
        return validate_data(self, X, reset=False, accept_sparse=SPARSE, dtype=FLOATS)

    def _forward(self, X) -> np.ndarray:
        """Validated X -> output activations (n, k), as scikit-learn's _forward_pass_fast."""
        check_is_fitted(self)
        X = self._validate_X(X)
        return self._outputs(self._device_params(), X)

    def _score_outputs(self, out: np.ndarray, y, sample_weight) -> float:
        if not np.isfinite(out).all():
            return np.nan
        return self._score_fn(y, self._decode(out), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
