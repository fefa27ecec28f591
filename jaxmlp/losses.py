"""Losses on output scores, each with its gradient written beside its forward rule.

Every loss is the mean over the batch of a per-example loss. `Loss.grad` returns the gradient
of that mean with respect to the scores, `dscores` of shape (B, C), which is what the
hand-written backward pass starts from.

Targets:
- softmax_cross_entropy, multiclass_hinge: integer labels y of shape (B,), scores (B, C).
- binary_logistic: labels 0/1 of shape (B,) with scores (B, 1), or of shape (B, C) for C
  independent binary outputs; the per-example loss sums over the C outputs.
- mean_squared_error: targets of shape (B, C) (or (B,) when C == 1); the mean is over the
  batch and the C outputs, like ``torch.nn.MSELoss``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.names import LOSS_ALIASES as ALIASES
from jaxmlp.types import Array


class Loss(NamedTuple):
    """A loss. per_example(scores, y) -> (B,); grad(scores, y) -> d mean / d scores, (B, C)."""

    name: str
    per_example: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    integer_labels: bool  # y holds class indices (B,)

    def value(self, scores: Array, y: Array) -> Array:
        """The batch mean of the per-example loss, a scalar."""
        return jnp.mean(self.per_example(scores, y))


# --- softmax cross-entropy: L_i = logsumexp(s_i) - s_i[y_i] ----------------------------------
#     dL_i/ds_i = softmax(s_i) - onehot(y_i)
def _softmax_ce(scores, y):
    correct = jnp.take_along_axis(scores, y[:, None], axis=1)[:, 0]  # (B,)
    return jax.nn.logsumexp(scores, axis=1) - correct


def _softmax_ce_grad(scores, y):
    onehot = jax.nn.one_hot(y, scores.shape[1], dtype=scores.dtype)  # (B, C)
    return (jax.nn.softmax(scores, axis=1) - onehot) / scores.shape[0]


# --- multiclass SVM hinge (margin 1): L_i = sum_{j != y_i} max(0, s_ij - s_iy + 1) ----------
#     dL_i/ds_ij = [margin_ij > 0] for j != y_i;  dL_i/ds_iy = -(number of positive margins)
def _hinge_margins(scores, y):
    correct = jnp.take_along_axis(scores, y[:, None], axis=1)  # (B, 1)
    not_target = jnp.arange(scores.shape[1])[None, :] != y[:, None]  # (B, C)
    return scores - correct + 1, not_target


def _hinge(scores, y):
    margins, not_target = _hinge_margins(scores, y)
    return jnp.sum(jnp.where(not_target, jax.nn.relu(margins), 0), axis=1)


def _hinge_grad(scores, y):
    margins, not_target = _hinge_margins(scores, y)
    active = (not_target & (margins > 0)).astype(scores.dtype)  # (B, C)
    onehot = jax.nn.one_hot(y, scores.shape[1], dtype=scores.dtype)
    return (active - onehot * jnp.sum(active, axis=1, keepdims=True)) / scores.shape[0]


# --- binary logistic: L_i = sum_c softplus(s_ic) - y_ic s_ic  (= -log sigmoid of the truth) --
#     dL_i/ds_ic = sigmoid(s_ic) - y_ic
def _as_binary_targets(scores, y):
    return (y.reshape(scores.shape) if y.ndim == 1 else y).astype(scores.dtype)


def _logistic(scores, y):
    t = _as_binary_targets(scores, y)
    return jnp.sum(jnp.logaddexp(0, scores) - t * scores, axis=1)


def _logistic_grad(scores, y):
    return (jax.nn.sigmoid(scores) - _as_binary_targets(scores, y)) / scores.shape[0]


# --- mean squared error: L_i = mean_c (s_ic - y_ic)^2 ----------------------------------------
#     dL/ds_ic = 2 (s_ic - y_ic) / (B C)
def _mse(scores, y):
    t = _as_binary_targets(scores, y)
    return jnp.mean((scores - t) ** 2, axis=1)


def _mse_grad(scores, y):
    t = _as_binary_targets(scores, y)
    return 2 * (scores - t) / scores.size


LOSSES: dict[str, Loss] = {
    "softmax_cross_entropy": Loss("softmax_cross_entropy", _softmax_ce, _softmax_ce_grad, True),
    "multiclass_hinge": Loss("multiclass_hinge", _hinge, _hinge_grad, True),
    "binary_logistic": Loss("binary_logistic", _logistic, _logistic_grad, False),
    "mean_squared_error": Loss("mean_squared_error", _mse, _mse_grad, False),
}


def get_loss(name: str | Loss) -> Loss:
    """Look up a loss by name (or alias: cross_entropy, svm, hinge, logistic, mse)."""
    if isinstance(name, Loss):
        return name
    key = ALIASES.get(name, name)
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[key]


def loss_for(name: str, num_classes: int | None, data_name: str) -> Loss:
    """The loss `name` (auto: softmax_cross_entropy for class labels, mean_squared_error for
    targets) for a data set with `num_classes` classes (None: regression targets); ValueError
    naming the data set when they do not fit."""
    classification = num_classes is not None
    if name == "auto":
        name = "softmax_cross_entropy" if classification else "mean_squared_error"
    loss = get_loss(name)
    if classification and loss.name == "mean_squared_error":
        raise ValueError(f"loss mean_squared_error needs regression targets, but {data_name} is a "
                         "classification set; use softmax_cross_entropy, multiclass_hinge or binary_logistic")
    if not classification and loss.name != "mean_squared_error":
        raise ValueError(f"loss {loss.name} needs class labels, but {data_name} is a regression set; "
                         "use mean_squared_error")
    if loss.name == "binary_logistic" and num_classes != 2:
        raise ValueError(f"loss binary_logistic needs 2 classes, {data_name} has {num_classes}")
    return loss


def predict_classes(scores):
    """Class indices (N,) from scores (N, C): argmax, or score > 0 for one binary score (C == 1).

    Works on jax and numpy arrays alike (evaluation on the device, plots on the host).
    """
    if scores.shape[1] == 1:  # binary_logistic: sigmoid(s) > 0.5
        return (scores[:, 0] > 0).astype(np.int32)
    return scores.argmax(axis=1)


def check_targets(loss: Loss, scores_shape: tuple[int, ...], y) -> None:
    """Raise ValueError when targets `y` do not fit scores of shape (B, C) for this loss.

    Shapes only: this runs at trace time. Label *values* are checked by the data module.
    """
    batch, classes = scores_shape
    y_shape = tuple(jnp.shape(y))
    if loss.integer_labels:
        if y_shape != (batch,):
            raise ValueError(f"{loss.name} needs integer labels of shape ({batch},), got shape {y_shape}")
        if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
            raise ValueError(f"{loss.name} needs integer class labels, got dtype {jnp.result_type(y)}")
        if classes < 2:
            raise ValueError(f"{loss.name} needs at least 2 output scores, got {classes}")
    elif y_shape != (batch, classes) and not (classes == 1 and y_shape == (batch,)):
        want = f"({batch}, {classes})" + (f" or ({batch},)" if classes == 1 else "")
        raise ValueError(f"{loss.name} needs targets of shape {want}, got shape {y_shape}")


def _no_l2(l2) -> bool:
    """True for a literal Python 0: the penalty is skipped. A traced l2 is always applied."""
    return isinstance(l2, (int, float)) and l2 == 0


# --- L2 weight penalty: P = 0.5 * l2 * sum ||W||^2;  dP/dW = l2 * W ---------------------------
#     Biases and PReLU slopes are never decayed. `l2` may be a Python number or a traced scalar.
def l2_penalty(params, l2: float | Array) -> Array | float:
    """0.5 * l2 * sum of squared weights (0.0 when l2 is a Python 0)."""
    if _no_l2(l2):
        return 0.0
    return 0.5 * l2 * sum(jnp.sum(layer.W * layer.W) for layer in params)


def l2_grad(grads, params, l2: float | Array):
    """grads with the penalty's gradient l2 * W added to each layer's dW (unchanged for l2 = 0)."""
    if _no_l2(l2):
        return grads
    return [g._replace(W=g.W + l2 * p.W) for g, p in zip(grads, params)]
