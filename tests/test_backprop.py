"""The hand-written backprop twin equals jax.grad, everywhere.

Every activation x every loss x {l2 = 0, l2 > 0} x {dropout 0, 0.5 with a fixed key} x depths
{0, 1, 3 hidden layers}, in float64 (relative error <= 1e-12) and float32 (<= 1e-5), the input
gradient dx included. Then under jit, per example under vmap, and with random shapes.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmlp import ACTIVATIONS, LOSSES, Layer, backward, forward, get_loss, init_mlp, loss_and_grad, objective
from jaxmlp.gradcheck import random_problem, relative_error

BATCH = 8
# One width throughout, so every depth reuses the same (8, 8) and (8, 3) shapes: each new
# shape is a new XLA compile, and compiles dominate this file's run time.
SIZES_BY_DEPTH = {0: (8, 3), 1: (8, 8, 3), 3: (8, 8, 8, 8, 3)}
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def max_tree_error(a, b) -> float:
    """Largest leaf-wise relative error between two pytrees of the same structure."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(jax.tree.leaves(jax.tree.map(relative_error, a, b)))


def both_gradients(params, x, y, **kw):
    """((loss, grads, dx) by autodiff, (loss, grads, dx) by the manual forward/backward)."""
    loss_fn = get_loss(kw["loss"])
    l2 = kw.pop("l2")
    act_kw = {k: v for k, v in kw.items() if k in ("activation",)}
    fwd_kw = {k: v for k, v in kw.items() if k != "loss"}
    auto_loss, (auto_grads, auto_dx) = jax.value_and_grad(
        lambda p, xx: objective(p, xx, y, l2=l2, **kw), argnums=(0, 1))(params, x)
    scores, cache = forward(params, x, **fwd_kw)
    manual_grads, manual_dx = backward(params, cache, loss_fn.grad(scores, y), **act_kw)
    manual_grads = [g._replace(W=g.W + l2 * p.W) for g, p in zip(manual_grads, params)]
    manual_loss = objective(params, x, y, l2=l2, **kw)
    return (auto_loss, auto_grads, auto_dx), (manual_loss, manual_grads, manual_dx)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_manual_equals_autodiff(activation, loss, depth, dtype):
    sizes = SIZES_BY_DEPTH[depth]
    with jax.enable_x64(dtype == "float64"):
        k_init, k_data, k_drop = jax.random.split(jax.random.key(hash((activation, loss, depth)) % 2**31), 3)
        params = init_mlp(k_init, sizes, activation=activation, dtype=jnp.dtype(dtype))
        x, y = random_problem(k_data, sizes, loss, BATCH, jnp.dtype(dtype))
        for l2 in (0.0, 0.1):
            for dropout in (0.0, 0.5):
                kw = dict(loss=loss, l2=l2, activation=activation, dropout=dropout, key=k_drop, train=True)
                auto, manual = both_gradients(params, x, y, **kw)
                case = f"l2={l2} dropout={dropout}"
                assert manual[1][0].W.dtype == jnp.dtype(dtype)
                assert relative_error(auto[0], manual[0]) <= TOLERANCE[dtype], f"loss value, {case}"
                assert max_tree_error(auto[1], manual[1]) <= TOLERANCE[dtype], f"grads, {case}"
                assert relative_error(auto[2], manual[2]) <= TOLERANCE[dtype], f"dx, {case}"


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_loss_and_grad_methods_agree_under_jit(activation, x64):
    sizes, loss = SIZES_BY_DEPTH[3], "softmax_cross_entropy"
    params = init_mlp(jax.random.key(1), sizes, activation=activation, dtype=jnp.float64)
    x, y = random_problem(jax.random.key(2), sizes, loss, BATCH, jnp.float64)

    @jax.jit
    def both(p, xx, yy, key):
        kw = dict(loss=loss, l2=0.01, activation=activation, dropout=0.3, input_noise=0.1, key=key)
        return (loss_and_grad(p, xx, yy, method="autodiff", **kw),
                loss_and_grad(p, xx, yy, method="manual", **kw))

    (la, ga), (lm, gm) = both(params, x, y, jax.random.key(3))
    assert relative_error(la, lm) <= 1e-12
    assert max_tree_error(ga, gm) <= 1e-12
    assert jax.tree.structure(gm) == jax.tree.structure(params)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", list(LOSSES))
def test_per_example_grads_under_vmap(activation, loss, x64):
    """Per-example gradients by vmap agree between methods and average to the batch gradient."""
    sizes = SIZES_BY_DEPTH[1]
    params = init_mlp(jax.random.key(4), sizes, activation=activation, dtype=jnp.float64)
    x, y = random_problem(jax.random.key(5), sizes, loss, BATCH, jnp.float64)

    def per_example(method):
        one = lambda xi, yi: loss_and_grad(params, xi[None], yi[None], loss=loss, activation=activation,
                                           method=method)[1]
        return jax.vmap(one)(x, y)  # every leaf gains a leading (B,) axis

    manual, auto = per_example("manual"), per_example("autodiff")
    assert max_tree_error(manual, auto) <= 1e-12
    assert jax.tree.leaves(manual)[0].shape[0] == BATCH
    _, batch_grads = loss_and_grad(params, x, y, loss=loss, activation=activation, method="manual")
    mean_of_examples = jax.tree.map(lambda g: g.mean(0), manual)
    assert max_tree_error(mean_of_examples, batch_grads) <= 1e-12


@settings(max_examples=12, deadline=None, derandomize=True)
@given(hidden=st.lists(st.sampled_from([1, 3, 8]), min_size=0, max_size=3),
       activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(list(LOSSES)),
       d_out=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_property_random_shapes(hidden, activation, loss, d_out, seed):
    sizes = (8, *hidden, d_out)
    with jax.enable_x64(True):
        k_init, k_data, k_drop = jax.random.split(jax.random.key(seed), 3)
        params = init_mlp(k_init, sizes, activation=activation, dtype=jnp.float64)
        x, y = random_problem(k_data, sizes, loss, 4, jnp.float64)
        kw = dict(loss=loss, l2=0.05, activation=activation, dropout=0.25, key=k_drop)
        la, ga = loss_and_grad(params, x, y, method="autodiff", **kw)
        lm, gm = loss_and_grad(params, x, y, method="manual", **kw)
        assert relative_error(la, lm) <= 1e-12
        assert max_tree_error(ga, gm) <= 1e-12


def test_backward_takes_any_upstream_gradient(x64):
    """backward(dscores) is the vector-Jacobian product of the network for any dscores."""
    sizes = SIZES_BY_DEPTH[3]
    params = init_mlp(jax.random.key(6), sizes, activation="tanh", dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(7), (BATCH, 8), jnp.float64)
    dscores = jax.random.normal(jax.random.key(8), (BATCH, 3), jnp.float64)
    scores, cache = forward(params, x, activation="tanh")
    grads, dx = backward(params, cache, dscores, activation="tanh")
    from jaxmlp import mlp_apply
    _, vjp = jax.vjp(lambda p, xx: mlp_apply(p, xx, activation="tanh"), params, x)
    auto_grads, auto_dx = vjp(dscores)
    assert max_tree_error(grads, auto_grads) <= 1e-12
    assert relative_error(dx, auto_dx) <= 1e-12


def test_grads_mirror_params_structure_with_prelu_and_maxout():
    for activation in ("prelu", "maxout", "relu"):
        params = init_mlp(jax.random.key(0), (4, 5, 5, 2), activation=activation)
        x, y = random_problem(jax.random.key(1), (4, 5, 5, 2), "softmax_cross_entropy", 3, jnp.float32)
        _, grads = loss_and_grad(params, x, y, activation=activation, method="manual")
        assert jax.tree.structure(grads) == jax.tree.structure(params)
        for g, p in zip(jax.tree.leaves(grads), jax.tree.leaves(params)):
            assert g.shape == p.shape and g.dtype == p.dtype


def test_l2_never_decays_biases_or_prelu_slopes(x64):
    params = init_mlp(jax.random.key(0), (4, 5, 3), activation="prelu", dtype=jnp.float64)
    x, y = random_problem(jax.random.key(1), (4, 5, 3), "softmax_cross_entropy", 6, jnp.float64)
    for method in ("manual", "autodiff"):
        _, g0 = loss_and_grad(params, x, y, activation="prelu", method=method)
        _, g1 = loss_and_grad(params, x, y, activation="prelu", l2=0.5, method=method)
        for a, b, p in zip(g0, g1, params):
            np.testing.assert_allclose(b.W - a.W, 0.5 * p.W, rtol=1e-12, atol=1e-15)
            np.testing.assert_array_equal(a.b, b.b)
        np.testing.assert_array_equal(g0[0].alpha, g1[0].alpha)


# --- the lecture's worked numbers ------------------------------------------------------------

def test_lecture_circuit_f_equals_x_plus_y_times_z():
    df = jax.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(-2.0, 5.0, -4.0)
    assert [float(d) for d in df] == [-4.0, -4.0, 3.0]


def test_lecture_sigmoid_neuron_via_backward():
    """w = [2, -3, -3] (two weights and a bias), x = [-1, -2]: a 2->1 sigmoid layer feeding an
    identity unit; backward with dscores = 1 gives the lecture's dx and dw."""
    params = [Layer(W=jnp.array([[2.0], [-3.0]]), b=jnp.array([-3.0])),
              Layer(W=jnp.array([[1.0]]), b=jnp.array([0.0]))]
    x = jnp.array([[-1.0, -2.0]])
    scores, cache = forward(params, x, activation="sigmoid")
    np.testing.assert_allclose(scores, [[1 / (1 + np.exp(-1.0))]], rtol=1e-6)
    grads, dx = backward(params, cache, jnp.ones((1, 1)), activation="sigmoid")
    np.testing.assert_allclose(dx[0], [0.3932, -0.5898], atol=1e-4)
    dw = [grads[0].W[0, 0], grads[0].W[1, 0], grads[0].b[0]]
    np.testing.assert_allclose(dw, [-0.1966, -0.3932, 0.1966], atol=1e-4)


def test_bad_method_and_labels_raise():
    params = init_mlp(jax.random.key(0), (4, 5, 3))
    x = jnp.zeros((6, 4))
    with pytest.raises(ValueError, match="method"):
        loss_and_grad(params, x, jnp.zeros(6, jnp.int32), method="numeric")
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        loss_and_grad(params, x, jnp.zeros((6, 1), jnp.int32), method="manual")
    with pytest.raises(ValueError, match="integer"):
        loss_and_grad(params, x, jnp.zeros(6), method="autodiff")
    with pytest.raises(ValueError, match=r"shape \(6, 3\)"):
        loss_and_grad(params, x, jnp.zeros((6, 2)), loss="mean_squared_error")
    with pytest.raises(ValueError, match="needs a PRNG `key`"):
        loss_and_grad(params, x, jnp.zeros(6, jnp.int32), dropout=0.5, method="manual")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 4\)"):
        forward(params, jnp.zeros((6, 5)))
