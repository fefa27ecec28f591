"""jaxmlp: pure-function multi-layer perceptrons on JAX, with a hand-written backprop twin.

    import jax, jaxmlp
    params = jaxmlp.init_mlp(jax.random.key(0), (784, 512, 10))   # [Layer(W, b), Layer(W, b)]
    scores = jaxmlp.mlp_apply(params, x)                          # (B, 784) -> (B, 10)
    loss, grads = jaxmlp.loss_and_grad(params, x, y, method="manual")
"""
from jaxmlp.activations import ACTIVATIONS, Activation, get_activation
from jaxmlp.backprop import LayerCache, backward, forward, input_grad, loss_and_grad, objective
from jaxmlp.losses import LOSSES, Loss, get_loss, l2_penalty
from jaxmlp.mlp import INITS, Layer, init_mlp, mlp_apply, param_count, sizes_of

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "LOSSES", "Loss", "get_loss", "l2_penalty",
    "INITS", "Layer", "init_mlp", "mlp_apply", "param_count", "sizes_of",
    "LayerCache", "forward", "backward", "loss_and_grad", "objective", "input_grad",
]
