"""The pure MLP: params, init schemes, forward, dropout, input noise and input validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import ACTIVATIONS, Layer, init_mlp, mlp_apply, param_count, sizes_of
from jaxmlp.backprop import forward


@pytest.mark.parametrize("sizes,count", [((3, 4, 2), 26), ((3, 4, 4, 1), 41)])
def test_lecture_parameter_counts(sizes, count):
    assert param_count(sizes) == count
    assert sum(leaf.size for leaf in jax.tree.leaves(init_mlp(jax.random.key(0), sizes))) == count


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_param_count_matches_init_and_shapes(activation):
    sizes = (5, 7, 6, 3)
    params = init_mlp(jax.random.key(0), sizes, activation=activation)
    assert len(params) == 3 and all(isinstance(p, Layer) for p in params)
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == param_count(sizes, activation=activation)
    assert sizes_of(params) == sizes
    assert params[-1].W.shape == (6, 3) and params[-1].alpha is None  # the output layer is plain
    if activation == "maxout":
        assert params[0].W.shape == (2, 5, 7) and params[0].b.shape == (2, 7)
    else:
        assert params[0].W.shape == (5, 7) and params[0].b.shape == (7,)
    assert (params[0].alpha is not None) == (activation == "prelu")
    scores = mlp_apply(params, jnp.ones((4, 5)), activation=activation)
    assert scores.shape == (4, 3)


def test_maxout_k_and_prelu_initial_slope():
    params = init_mlp(jax.random.key(0), (4, 6, 2), activation="maxout", k=4)
    assert params[0].W.shape == (4, 4, 6)
    assert param_count((4, 6, 2), activation="maxout", k=4) == 4 * (4 * 6 + 6) + 6 * 2 + 2
    params = init_mlp(jax.random.key(0), (4, 6, 2), activation="prelu", alpha=0.1)
    np.testing.assert_allclose(params[0].alpha, 0.1)


@pytest.mark.parametrize("init,variance", [
    ("he_normal", 2 / 400), ("he_uniform", 2 / 400), ("lecun_normal", 1 / 400), ("lecun_uniform", 1 / 400),
    ("xavier_normal", 2 / (400 + 300)), ("xavier_uniform", 2 / (400 + 300)),
])
def test_init_scheme_variances(init, variance):
    W = init_mlp(jax.random.key(0), (400, 300, 2), init=init)[0].W
    assert abs(float(jnp.var(W)) / variance - 1) < 0.05
    assert abs(float(jnp.mean(W))) < 0.01 * np.sqrt(variance) * 10


def test_default_init_follows_the_activation():
    he = init_mlp(jax.random.key(0), (400, 300, 2), activation="relu")[0].W
    xavier = init_mlp(jax.random.key(0), (400, 300, 2), activation="tanh")[0].W
    assert abs(float(jnp.var(he)) * 400 / 2 - 1) < 0.05
    assert abs(float(jnp.var(xavier)) * 700 / 2 - 1) < 0.05


def test_dtype_is_respected():
    params = init_mlp(jax.random.key(0), (3, 4, 2), dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params))


def test_linear_layers_without_nonlinearity_collapse_to_one_map():
    params = init_mlp(jax.random.key(0), (5, 7, 3), activation="identity")
    x = jax.random.normal(jax.random.key(1), (4, 5))
    W = params[0].W @ params[1].W  # (5, 3)
    b = params[0].b @ params[1].W + params[1].b
    np.testing.assert_allclose(mlp_apply(params, x, activation="identity"), x @ W + b, rtol=1e-5, atol=1e-6)


def test_dropout_rate_is_the_probability_to_drop():
    params = init_mlp(jax.random.key(0), (4, 2000, 2))
    x = jnp.ones((8, 4))
    for rate in (0.1, 0.5, 0.9):
        _, cache = forward(params, x, dropout=rate, key=jax.random.key(1), train=True)
        mask = cache[0].mask  # (8, 2000)
        assert abs(float(jnp.mean(mask == 0)) - rate) < 0.02
        np.testing.assert_allclose(jnp.unique(mask[mask > 0]), 1 / (1 - rate), rtol=1e-6)  # inverted dropout


def test_dropout_is_off_at_evaluation_and_repeatable_with_a_key():
    params = init_mlp(jax.random.key(0), (4, 16, 3))
    x = jax.random.normal(jax.random.key(1), (5, 4))
    plain = mlp_apply(params, x)
    np.testing.assert_array_equal(mlp_apply(params, x, dropout=0.5, key=jax.random.key(2)), plain)
    a = mlp_apply(params, x, dropout=0.5, key=jax.random.key(2), train=True)
    b = mlp_apply(params, x, dropout=0.5, key=jax.random.key(2), train=True)
    c = mlp_apply(params, x, dropout=0.5, key=jax.random.key(3), train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, plain) and not np.array_equal(a, c)


def test_input_noise_has_the_requested_std():
    params = [Layer(W=jnp.eye(64), b=jnp.zeros(64))]  # one identity map: scores = noisy x
    x = jnp.zeros((256, 64))
    noisy = mlp_apply(params, x, input_noise=0.3, key=jax.random.key(0), train=True)
    assert abs(float(jnp.std(noisy)) - 0.3) < 0.01
    np.testing.assert_array_equal(mlp_apply(params, x, input_noise=0.3), x)


def test_mlp_apply_jits_and_vmaps():
    params = init_mlp(jax.random.key(0), (4, 8, 3), activation="gelu")
    x = jax.random.normal(jax.random.key(1), (6, 4))
    eager = mlp_apply(params, x, activation="gelu")
    jitted = jax.jit(lambda p, xx: mlp_apply(p, xx, activation="gelu"))(params, x)
    per_row = jax.vmap(lambda row: mlp_apply(params, row[None], activation="gelu")[0])(x)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(per_row, eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sizes,match", [
    ((3,), "at least 2 entries"), ((3, 0, 2), "positive integer"), ((3, 2.5, 2), "positive integer"),
    ((), "at least 2 entries"),
])
def test_bad_sizes_raise(sizes, match):
    with pytest.raises(ValueError, match=match):
        init_mlp(jax.random.key(0), sizes)
    with pytest.raises(ValueError, match=match):
        param_count(sizes)


def test_bad_arguments_raise():
    params = init_mlp(jax.random.key(0), (3, 4, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\).*\(5, 4\)"):
        mlp_apply(params, jnp.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        mlp_apply(params, jnp.zeros(3))
    for rate in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"dropout .* \[0, 1\)"):
            mlp_apply(params, jnp.zeros((5, 3)), dropout=rate, key=jax.random.key(0), train=True)
    with pytest.raises(ValueError, match="needs a PRNG `key`"):
        mlp_apply(params, jnp.zeros((5, 3)), dropout=0.5, train=True)
    with pytest.raises(ValueError, match="input_noise"):
        mlp_apply(params, jnp.zeros((5, 3)), input_noise=-1.0)
    with pytest.raises(ValueError, match="unknown activation"):
        mlp_apply(params, jnp.zeros((5, 3)), activation="softsign")
    with pytest.raises(ValueError, match="unknown init"):
        init_mlp(jax.random.key(0), (3, 4, 2), init="orthogonal")
    with pytest.raises(ValueError, match="maxout needs"):
        mlp_apply(params, jnp.zeros((5, 3)), activation="maxout")
    with pytest.raises(ValueError, match="prelu needs a slope"):
        mlp_apply(params, jnp.zeros((5, 3)), activation="prelu")
    with pytest.raises(ValueError, match="list of Layer"):
        mlp_apply({"W": 1}, jnp.zeros((5, 3)))
