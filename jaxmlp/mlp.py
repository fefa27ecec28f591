"""The multi-layer perceptron as pure functions over a params pytree.

Params are a list with one `Layer` per layer (d_in -> h1 -> ... -> d_out). Every hidden layer
is affine then activation (then dropout while training); the last layer is affine only and
outputs scores. `mlp_apply` is what `jax.grad` differentiates; `backprop.py` is its
hand-written twin. Each rule here has its derivative beside it (`affine` / `affine_backward`,
`dropout_mask` / `dropout_backward`; the activations' are in activations.py), and backprop.py
reuses `prepare_input` too, so both passes see the same randomness.

One function per concept: `activation` is a name (with its options as keywords) or an
`Activation` already looked up, which is how the trainer passes it, so a traced step resolves
nothing. `ForwardOptions` is only the bundle `prepare_input` reads.

    params = init_mlp(key, (784, 512, 10))          # [Layer(W (784, 512), b (512,)), Layer(W (512, 10), b (10,))]
    scores = mlp_apply(params, x)                     # x (B, 784) -> scores (B, 10)
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxmlp.activations import Activation, get_activation, resolve_options
from jaxmlp.names import INITS
from jaxmlp.types import Array


class Layer(NamedTuple):
    """One layer's parameters.

    W: (d_in, d_out), or (k, d_in, d_out) for a maxout layer with k pieces
    b: (d_out,), or (k, d_out) for maxout
    alpha: (d_out,) the learnable negative slope of a PReLU layer; None otherwise
    """

    W: Array
    b: Array
    alpha: Array | None = None


Params = list  # list[Layer]

_INITIALIZERS = {
    "he_normal": jax.nn.initializers.he_normal,
    "he_uniform": jax.nn.initializers.he_uniform,
    "xavier_normal": jax.nn.initializers.glorot_normal,
    "xavier_uniform": jax.nn.initializers.glorot_uniform,
    "lecun_normal": jax.nn.initializers.lecun_normal,
    "lecun_uniform": jax.nn.initializers.lecun_uniform,
}


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Validate layer sizes (d_in, h1, ..., d_out): at least 2 entries, each a positive int."""
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least 2 entries (d_in, d_out), got {sizes}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"every entry of sizes must be a positive integer, got {sizes}")
    return sizes


def init_mlp(key: Array, sizes: Sequence[int], *, activation: str = "relu", init: str | None = None,
             dtype=jnp.float32, **activation_options) -> Params:
    """Random params for an MLP with layer sizes (d_in, h1, ..., d_out).

    Weights follow `init` (one of INITS; default: he_normal for the relu family, maxout and
    gelu, xavier_normal for sigmoid, tanh and identity). Biases start at 0; PReLU slopes at
    `alpha` (default 0.25). Maxout hidden layers get `k` weight sets (default 2).
    """
    sizes = check_sizes(sizes)
    act = get_activation(activation, **activation_options)
    opts = resolve_options(act.name, **activation_options)
    init = init or act.default_init
    if init not in _INITIALIZERS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    n_layers = len(sizes) - 1
    keys = jax.random.split(key, n_layers)
    params = []
    for i, (layer_key, d_in, d_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        hidden = i < n_layers - 1
        if hidden and act.pieces > 1:  # maxout: k weight sets (k, d_in, d_out)
            w_init = _INITIALIZERS[init](in_axis=-2, out_axis=-1, batch_axis=(0,))
            W = w_init(layer_key, (act.pieces, d_in, d_out), dtype)
            b = jnp.zeros((act.pieces, d_out), dtype)
        else:
            W = _INITIALIZERS[init]()(layer_key, (d_in, d_out), dtype)
            b = jnp.zeros((d_out,), dtype)
        alpha = jnp.full((d_out,), opts["alpha"], dtype) if hidden and act.learnable_slope else None
        params.append(Layer(W, b, alpha))
    return params


def param_count(sizes: Sequence[int], *, activation: str = "relu", **activation_options) -> int:
    """Number of scalars in the params of an MLP with these sizes.

    (3, 4, 2) -> 26 and (3, 4, 4, 1) -> 41 for any elementwise activation without parameters.
    """
    sizes = check_sizes(sizes)
    act = get_activation(activation, **activation_options)
    total = 0
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        pieces = act.pieces if hidden else 1
        total += pieces * (d_in * d_out + d_out) + (d_out if hidden and act.learnable_slope else 0)
    return total


def sizes_of(params: Params) -> tuple[int, ...]:
    """Layer sizes (d_in, h1, ..., d_out) read back from params."""
    return (params[0].W.shape[-2],) + tuple(layer.W.shape[-1] for layer in params)


def check_params(params: Params, act: Activation) -> None:
    """Raise ValueError when params do not fit the activation (maxout pieces, PReLU slopes)."""
    if not isinstance(params, (list, tuple)) or not params or not all(isinstance(p, Layer) for p in params):
        raise ValueError("params must be a non-empty list of Layer, as returned by init_mlp")
    for i, layer in enumerate(params[:-1]):
        if act.pieces > 1 and layer.W.ndim != 3:
            raise ValueError(f"maxout needs (k, d_in, d_out) weights in hidden layer {i}, got {layer.W.shape}")
        if act.pieces == 1 and layer.W.ndim != 2:
            raise ValueError(f"activation {act.name!r} needs (d_in, d_out) weights in layer {i}, "
                             f"got {layer.W.shape} (params made for maxout?)")
        if act.learnable_slope and layer.alpha is None:
            raise ValueError(f"prelu needs a slope `alpha` in hidden layer {i}; build params with activation='prelu'")
    if params[-1].W.ndim != 2:
        raise ValueError(f"the output layer needs (d_in, d_out) weights, got {params[-1].W.shape}")


def check_input(params: Params, x: Array) -> None:
    """Raise ValueError unless x has shape (B, d_in) matching the first layer."""
    d_in = params[0].W.shape[-2]
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != d_in:
        raise ValueError(f"x must have shape (B, {d_in}) for this network, got shape {tuple(jnp.shape(x))}")


def regularizer_on(rate) -> bool:
    """Whether dropout / input noise of this rate runs: rate > 0, or a traced rate (a sweep's
    per-model value, checked before tracing), whose rate 0 changes nothing: mask 1, noise 0."""
    return isinstance(rate, jax.core.Tracer) or rate > 0


def check_regularizers(dropout: float, input_noise: float, train: bool, key) -> None:
    """Raise ValueError for a dropout rate outside [0, 1), negative noise, or a missing key
    (the values only when concrete)."""
    if not isinstance(dropout, jax.core.Tracer) and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is the probability to drop and must be in [0, 1), got {dropout}")
    if not isinstance(input_noise, jax.core.Tracer) and input_noise < 0:
        raise ValueError(f"input_noise is a standard deviation and must be >= 0, got {input_noise}")
    if train and (regularizer_on(dropout) or regularizer_on(input_noise)) and key is None:
        raise ValueError("training with dropout or input noise needs a PRNG `key`")


def affine(layer: Layer, a_prev: Array) -> Array:
    """Pre-activations z = a_prev @ W + b: (B, d_in) -> (B, d_out), or (B, k, d_out) for maxout."""
    if layer.W.ndim == 3:
        return jnp.einsum("bi,kio->bko", a_prev, layer.W) + layer.b
    return a_prev @ layer.W + layer.b


def affine_backward(layer: Layer, a_prev: Array, delta: Array) -> tuple[Array, Array, Array]:
    """Given delta = dL/dz, return (dW, db, da_prev) for z = a_prev @ W + b:

        dW = a_prev.T @ delta        db = delta.sum(0)        da_prev = delta @ W.T
    """
    if layer.W.ndim == 3:  # maxout: delta (B, k, d_out), W (k, d_in, d_out)
        dW = jnp.einsum("bi,bko->kio", a_prev, delta)  # (k, d_in, d_out)
        da_prev = jnp.einsum("bko,kio->bi", delta, layer.W)  # (B, d_in)
    else:
        dW = a_prev.T @ delta  # (d_in, d_out)
        da_prev = delta @ layer.W.T  # (B, d_in)
    return dW, jnp.sum(delta, axis=0), da_prev


class ForwardOptions(NamedTuple):
    """The randomness of one forward pass (the defaults: none, an evaluation pass).

    With train=True and a key, the input gets Gaussian noise of std `input_noise` and every
    hidden layer inverted dropout of rate `dropout` (the probability to drop a unit).
    """

    key: Array | None = None
    dropout: float = 0.0
    input_noise: float = 0.0
    train: bool = False


def prepare_input(params: Params, x: Array, act: Activation, options: ForwardOptions
                  ) -> tuple[Array, Array | None]:
    """Validate a forward call and return (network input (B, d_in), dropout keys or None).

    While training with a key, `options.key` splits into the input-noise key and one dropout
    key per hidden layer; the input gets Gaussian noise of std `options.input_noise`. Shared
    by `mlp_apply` and `backprop.forward`, so both see exactly the same randomness.
    """
    key, dropout, input_noise, train = options
    check_params(params, act)
    check_input(params, x)
    check_regularizers(dropout, input_noise, train, key)
    if not (train and key is not None):
        return x, None
    keys = jax.random.split(key, len(params))  # noise key, then one per hidden layer
    if regularizer_on(input_noise):
        x = x + input_noise * jax.random.normal(keys[0], x.shape, x.dtype)
    return x, keys[1:]


def dropout_mask(key: Array, shape: tuple[int, ...], rate: float, dtype) -> Array:
    """Inverted-dropout multiplier (forward: a * mask): 0 with probability `rate`, else 1 / (1 - rate)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return keep.astype(dtype) / (1.0 - rate)


def dropout_backward(da: Array, mask: Array | None) -> Array:
    """d(a * mask)/da = mask: the upstream gradient da (B, h) times the same mask (da when there is none)."""
    return da if mask is None else da * mask


def mlp_apply(params: Params, x: Array, *, activation: str | Activation = "relu", key: Array | None = None,
              dropout: float = 0.0, input_noise: float = 0.0, train: bool = False,
              **activation_options) -> Array:
    """Scores of the MLP: x (B, d_in) -> (B, d_out). The last layer has no activation.

    With train=True, Gaussian noise of std `input_noise` is added to x and inverted dropout
    drops each hidden unit with probability `dropout`; both need `key`. With train=False
    both are off and the output is deterministic.
    """
    act = get_activation(activation, **activation_options)
    options = ForwardOptions(key, dropout, input_noise, train)
    a, dropout_keys = prepare_input(params, x, act, options)
    for i, layer in enumerate(params[:-1]):
        a = act.forward(affine(layer, a), layer.alpha)  # (B, h_i)
        if train and regularizer_on(dropout):
            a = a * dropout_mask(dropout_keys[i], a.shape, dropout, a.dtype)
    return affine(params[-1], a)  # (B, d_out)
