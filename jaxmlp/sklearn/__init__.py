"""scikit-learn's `MLPClassifier` and `MLPRegressor`, trained by JAX: change one import.

    from jaxmlp.sklearn import MLPClassifier      # was: from sklearn.neural_network import ...
    clf = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-4, random_state=0).fit(X, y)

Same parameter names, defaults and meanings (params.py: `alpha` is the L2 penalty, scaled as
scikit-learn scales it), the same methods (fit with sample_weight, partial_fit, predict,
predict_proba, score) and fitted attributes (coefs_ as (d_in, d_out) arrays, loss_curve_,
validation_scores_, best_loss_, n_iter_, t_, ...). With the same random_state the weights
start as scikit-learn's and the rows come in scikit-learn's order. jaxmlp's extras, under
names scikit-learn does not use: dropout, input_noise, activation_slope, the activations
leaky_relu / elu / gelu, dtype, and the trainer's optax chain (extras.py): optimizer (adamw,
lamb, lars, rmsprop, nesterov, ... in place of solver adam / sgd's own update) with
weight_decay, clip_norm, schedule (cosine, warmup_cosine) and warmup_epochs.

Differences: the default dtype is float32 (dtype='float64' with 64-bit JAX matches
scikit-learn's float64 arithmetic); solver='lbfgs' is optax's L-BFGS (its own line search, so
other iterates than scipy's); sparse X is densified on the device.

Compiling once: each epoch is one compiled call on the training set padded to a bucket size
(buckets.py), with every per-fit number (alpha, learning rate, momentum, the extras' weight
decay, input noise, warm-up length, ...) a traced argument, so the folds and candidates of a
GridSearchCV, and partial_fit calls of any size, share one program per model shape. Compiled
in: which parts exist (input noise, a warm-up, decay added to the gradient), clip_norm and a
schedule's length. JAX's persistent cache keeps the programs across processes.

Needs scikit-learn >= 1.3: pip install 'jaxmlp[sklearn]'. Only this package imports
scikit-learn; `import jaxmlp` never does.

Modules: params (the parameter table and rules), buckets (padded sizes), engine (the JAX
objective, updates, epoch and forward programs), extras (jaxmlp's optax chain), lbfgs, base
(fit, partial_fit, the epoch loop), estimators (the two public classes).
"""
from __future__ import annotations

import re

try:
    import sklearn
except ImportError as err:
    raise ImportError(f"jaxmlp.sklearn needs scikit-learn ({err}); install the extra: "
                      "pip install 'jaxmlp[sklearn]' (in a checkout: pip install -e '.[sklearn]')") from None

if tuple(int(v) for v in re.match(r"(\d+)\.(\d+)", sklearn.__version__).groups()) < (1, 3):
    raise ImportError(f"jaxmlp.sklearn needs scikit-learn >= 1.3, found {sklearn.__version__}; "
                      "pip install 'jaxmlp[sklearn]' upgrades it")

from jaxmlp.sklearn.estimators import MLPClassifier, MLPRegressor  # noqa: E402

__all__ = ["MLPClassifier", "MLPRegressor"]
