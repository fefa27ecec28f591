"""Each activation's hand-written derivative equals jax.grad of its forward rule, kinks included."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import ACTIVATIONS, get_activation

ELEMENTWISE = [a for a in ACTIVATIONS if a not in ("maxout", "prelu")]
# Points on both sides of every kink, the kinks themselves, and large magnitudes.
Z = jnp.array([[-30.0, -3.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 30.0]], jnp.float32)
VARIANTS = [("leaky_relu", {"alpha": 0.1}), ("elu", {"alpha": 0.5}), ("gelu", {"approximate": True})]


@pytest.mark.parametrize("name,options", [(a, {}) for a in ELEMENTWISE] + VARIANTS)
def test_local_derivative_matches_autodiff(name, options, x64):
    act = get_activation(name, **options)
    z = Z.astype(jnp.float64)
    a = act.forward(z, None)
    manual, _ = act.backward(jnp.ones_like(z), z, a, None)
    auto = jax.vmap(jax.grad(lambda t: act.forward(t, None)))(z.ravel()).reshape(z.shape)
    np.testing.assert_allclose(manual, auto, rtol=1e-12, atol=1e-15)
    assert jnp.all(jnp.isfinite(a)) and jnp.all(jnp.isfinite(manual))


def test_prelu_slope_and_input_derivatives(x64):
    act = get_activation("prelu")
    z = jax.random.normal(jax.random.key(0), (5, 4), jnp.float64).at[0, 0].set(0.0)
    slope = jnp.array([0.1, 0.25, -0.5, 2.0])
    da = jax.random.normal(jax.random.key(1), (5, 4), jnp.float64)
    dz, dslope = act.backward(da, z, act.forward(z, slope), slope)
    _, vjp = jax.vjp(act.forward, z, slope)
    auto_dz, auto_dslope = vjp(da)
    np.testing.assert_allclose(dz, auto_dz, rtol=1e-12)
    np.testing.assert_allclose(dslope, auto_dslope, rtol=1e-12)


def test_maxout_routes_gradient_to_the_winning_piece_and_splits_ties(x64):
    act = get_activation("maxout", k=3)
    z = jax.random.normal(jax.random.key(0), (4, 3, 5), jnp.float64)
    z = z.at[0, :, 0].set(1.5)  # a three-way tie
    z = z.at[1, 0, 1].set(z[1, 1, 1])  # maybe a two-way tie, depending on the max
    da = jax.random.normal(jax.random.key(1), (4, 5), jnp.float64)
    a = act.forward(z, None)
    assert a.shape == (4, 5)
    dz, _ = act.backward(da, z, a, None)
    _, vjp = jax.vjp(lambda t: act.forward(t, None), z)
    np.testing.assert_allclose(dz, vjp(da)[0], rtol=1e-12)
    np.testing.assert_allclose(dz[0, :, 0], da[0, 0] / 3)
    np.testing.assert_allclose(dz.sum(axis=1), da, rtol=1e-12)  # no gradient lost or made


def test_known_values():
    z = jnp.array([-2.0, 0.0, 2.0])
    assert get_activation("relu").forward(z, None).tolist() == [0.0, 0.0, 2.0]
    assert get_activation("sigmoid").forward(z, None)[1] == 0.5
    np.testing.assert_allclose(get_activation("leaky_relu", alpha=0.1).forward(z, None), [-0.2, 0.0, 2.0])
    np.testing.assert_allclose(get_activation("elu").forward(z, None), [np.expm1(-2.0), 0.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(get_activation("gelu").forward(z, None), jax.nn.gelu(z, approximate=False), rtol=1e-6)
    np.testing.assert_allclose(get_activation("gelu", approximate=True).forward(z, None),
                               jax.nn.gelu(z, approximate=True), rtol=1e-6)
    assert get_activation("identity").forward(z, None) is z


@pytest.mark.parametrize("name,options,match", [
    ("swish", {}, "unknown activation 'swish'"),
    ("relu", {"alpha": 0.1}, "takes no option"),
    ("maxout", {"k": 1}, "k >= 2"),
    ("leaky_relu", {"alpha": "x"}, "must be a number"),
])
def test_bad_activation_raises(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_activation(name, **options)
