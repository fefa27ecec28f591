"""jaxmlp: pure-function multi-layer perceptrons on JAX, with a hand-written backprop twin.

    import jax, jaxmlp
    params = jaxmlp.init_mlp(jax.random.key(0), (784, 512, 10))   # [Layer(W, b), Layer(W, b)]
    scores = jaxmlp.mlp_apply(params, x)                          # (B, 784) -> (B, 10)
    loss, grads = jaxmlp.loss_and_grad(params, x, y, method="manual")
"""
from jaxmlp.activations import ACTIVATIONS, Activation, get_activation
from jaxmlp.backprop import LayerCache, backward, forward, loss_and_grad, objective
from jaxmlp.losses import LOSSES, Loss, get_loss, l2_penalty
from jaxmlp.mlp import INITS, Layer, init_mlp, mlp_apply, param_count, sizes_of
from jaxmlp.data import (DataError, Dataset, DataSplits, blobs, checkerboard, circles, from_arrays, load_cifar10,
                         load_csv, load_dataset, load_idx_dataset, load_npz, moons, read_idx, sin_1d, spiral,
                         standardize, stratified_split, teacher)
from jaxmlp.metrics import (activation_stats, dataset_activation_stats, dead_fraction, layer_grad_norms,
                            loss_grad_and_stats, saturation_fraction)
from jaxmlp.config import TrainConfig
from jaxmlp.train import Callback, History, TrainingDiverged, evaluate, fit, predict
from jaxmlp.parallel import DataParallel, data_parallel, make_mesh
from jaxmlp.precision import PRECISIONS, get_policy, policy_loss_and_grad

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "LOSSES", "Loss", "get_loss", "l2_penalty",
    "INITS", "Layer", "init_mlp", "mlp_apply", "param_count", "sizes_of",
    "LayerCache", "forward", "backward", "loss_and_grad", "objective",
    "DataError", "Dataset", "DataSplits", "load_dataset", "from_arrays", "read_idx", "load_idx_dataset",
    "load_cifar10", "load_npz", "load_csv", "spiral", "checkerboard", "circles", "moons", "blobs", "teacher",
    "sin_1d", "standardize", "stratified_split",
    "activation_stats", "dataset_activation_stats", "dead_fraction", "saturation_fraction", "layer_grad_norms",
    "loss_grad_and_stats",
    "TrainConfig", "fit", "evaluate", "predict", "History", "Callback", "TrainingDiverged",
    "DataParallel", "data_parallel", "make_mesh", "PRECISIONS", "get_policy", "policy_loss_and_grad",
]
