"""Per-example gradient statistics from the manual backward pass equal their definitions.

The reference is `jax.vmap(jax.grad(...))` of each example's own loss, taken through the
SAME batch forward pass (so dropout masks and input noise are the batch's): the gradient of
ℓ·e_i for every basis vector e_i. Every activation × every loss × {dropout 0, 0.5 with a key}
× depths {0, 1, 3}, in float64 (1e-10 relative) and float32 (1e-4); then under jit, vmap and
on 8 forced host devices. Small fixed shapes, run eagerly, so the many cases share compiles.
"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import ACTIVATIONS, LOSSES, get_activation, get_loss, init_mlp, loss_and_grad
from jaxmlp.gradcheck import random_problem, relative_error
from jaxmlp.gradstats import GradStats, gradient_stats, stats_from_batch_grads
from jaxmlp.mlp import ForwardOptions, Layer, mlp_apply

BATCH = 8
SIZES_BY_DEPTH = {0: (8, 3), 1: (8, 8, 3), 3: (8, 8, 8, 8, 3)}  # the shapes of test_backprop: shared compiles
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def max_error(a: GradStats, b: GradStats) -> float:
    """Largest leaf-wise relative error between two GradStats (the same tree structure)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(jax.tree.leaves(jax.tree.map(relative_error, a, b)))


def reference_stats(params, x, y, loss, act, options) -> GradStats:
    """The definitions from jax.vmap(jax.grad) of every example's loss, in the batch's forward pass."""
    def example_grad(e):  # e (B,): a basis vector picks one example's loss
        return jax.grad(lambda p: loss.per_example(mlp_apply(p, x, activation=act, **options._asdict()), y) @ e)(params)

    return stats_from_batch_grads(params, jax.vmap(example_grad)(jnp.eye(x.shape[0], dtype=x.dtype)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_stats_equal_the_definitions_from_vmap_grad(activation, dtype):
    act = get_activation(activation)
    with jax.enable_x64(dtype == "float64"):
        for depth, sizes in SIZES_BY_DEPTH.items():
            k_init, k_data, k_drop = jax.random.split(jax.random.key(depth), 3)
            params = init_mlp(k_init, sizes, activation=activation, dtype=jnp.dtype(dtype))
            for name in LOSSES:
                loss = get_loss(name)
                x, y = random_problem(k_data, sizes, name, BATCH, jnp.dtype(dtype))
                for dropout in (0.0, 0.5):
                    options = ForwardOptions(k_drop, dropout, 0.0, True)
                    losses, stats = gradient_stats(params, x, y, loss=loss, activation=act, batch_grad=True,
                                                   **options._asdict())
                    err = max_error(stats, reference_stats(params, x, y, loss, act, options))
                    assert err <= TOLERANCE[dtype], f"depth {depth}, {name}, dropout {dropout}: {err:.2e}"
                    assert stats.sum_grad_squared[0].W.dtype == jnp.dtype(dtype)
                    np.testing.assert_allclose(losses, loss.per_example(mlp_apply(params, x, activation=act, **options._asdict()), y),
                                               rtol=TOLERANCE[dtype])


def test_the_definitions_on_a_hand_computed_case():
    """stats_from_batch_grads against numpy on two examples of a 1-layer maxout-free model."""
    g = np.array([[[1.0, 2.0]], [[3.0, -1.0]]])  # (B=2, d_in=1, d_out=2) per-example dW
    gb = np.array([[0.5, 0.0], [-0.5, 2.0]])  # (2, 2) per-example db
    params = [Layer(jnp.zeros((1, 2)), jnp.zeros(2))]
    s = stats_from_batch_grads(params, [Layer(jnp.asarray(g), jnp.asarray(gb))])
    np.testing.assert_allclose(s.batch_l2[0].W, [5.0, 10.0])
    np.testing.assert_allclose(s.batch_l2[0].b, [0.25, 4.25])
    np.testing.assert_allclose(s.sq_norm, [5.25, 14.25])
    np.testing.assert_allclose(s.grad[0].W, [[2.0, 0.5]])
    np.testing.assert_allclose(s.sum_grad_squared[0].W, [[10.0, 5.0]])
    np.testing.assert_allclose(s.variance[0].W, [[1.0, 2.25]])  # the population variance of each entry


def test_maxout_keeps_one_norm_per_piece_and_only_winners_get_gradient(x64):
    sizes = (5, 4, 3)
    params = init_mlp(jax.random.key(0), sizes, activation="maxout", k=3, dtype=jnp.float64)
    x, y = random_problem(jax.random.key(1), sizes, "softmax_cross_entropy", 6, jnp.float64)
    _, stats = gradient_stats(params, x, y, activation="maxout", k=3, batch_grad=True)
    assert stats.batch_l2[0].W.shape == (6, 3) and stats.batch_l2[0].b.shape == (6, 3)
    z = jnp.einsum("bi,kio->bko", x, params[0].W) + params[0].b  # (B, k, h)
    losers = z < jnp.max(z, axis=1, keepdims=True)
    assert bool(jnp.all(jnp.where(losers, stats.batch_grad[0].b, 0.0) == 0.0))
    np.testing.assert_allclose(jnp.sum(stats.batch_l2[0].W, axis=1),
                               jnp.sum(stats.batch_grad[0].W ** 2, axis=(1, 2, 3)), rtol=1e-12)


def test_prelu_slope_gradient_per_example(x64):
    sizes = (4, 6, 2)
    params = init_mlp(jax.random.key(2), sizes, activation="prelu", dtype=jnp.float64)
    x, y = random_problem(jax.random.key(3), sizes, "mean_squared_error", 5, jnp.float64)
    _, stats = gradient_stats(params, x, y, loss="mean_squared_error", activation="prelu", batch_grad=True)
    assert stats.batch_grad[0].alpha.shape == (5, 6) and stats.batch_l2[0].alpha.shape == (5,)
    assert stats.batch_l2[1].alpha is None  # the output layer has no slope
    # the mean of the per-example slope gradients is the batch gradient of the mean loss
    _, grads = loss_and_grad(params, x, y, loss="mean_squared_error", activation="prelu", method="autodiff")
    np.testing.assert_allclose(stats.grad[0].alpha, grads[0].alpha, rtol=1e-12)


def test_input_noise_with_dropout_and_the_keyword_door(x64):
    sizes = SIZES_BY_DEPTH[1]
    params = init_mlp(jax.random.key(4), sizes, activation="tanh", dtype=jnp.float64)
    x, y = random_problem(jax.random.key(5), sizes, "softmax_cross_entropy", BATCH, jnp.float64)
    act, loss = get_activation("tanh"), get_loss("softmax_cross_entropy")
    options = ForwardOptions(jax.random.key(6), 0.5, 0.3, True)
    _, stats = gradient_stats(params, x, y, loss=loss, activation=act, **options._asdict())
    assert max_error(stats, reference_stats(params, x, y, loss, act, options)._replace(batch_grad=None)) <= 1e-10
    _, same = gradient_stats(params, x, y, activation="tanh", key=jax.random.key(6), dropout=0.5, input_noise=0.3)
    assert max_error(stats, same) == 0.0


def _stats_case():
    sizes = SIZES_BY_DEPTH[3]
    params = init_mlp(jax.random.key(7), sizes, activation="prelu", dtype=jnp.float32)
    x, y = random_problem(jax.random.key(8), sizes, "softmax_cross_entropy", BATCH, jnp.float32)
    return params, x, y


def test_under_jit_equal_to_eager():
    params, x, y = _stats_case()
    kw = dict(activation="prelu", key=jax.random.key(9), dropout=0.5)
    eager = gradient_stats(params, x, y, **kw)
    jitted = jax.jit(lambda p, xx, yy: gradient_stats(p, xx, yy, **kw))(params, x, y)
    assert max_error(eager[1], jitted[1]) <= 1e-6


def test_under_vmap_over_batches_equal_to_one_batch_at_a_time():
    params, x, y = _stats_case()
    xs, ys = jnp.stack([x, x[::-1], 2 * x]), jnp.stack([y, y[::-1], y])  # (3, B, d_in), (3, B)
    batched = jax.vmap(lambda xx, yy: gradient_stats(params, xx, yy, activation="prelu")[1])(xs, ys)
    for i in range(3):
        one = gradient_stats(params, xs[i], ys[i], activation="prelu")[1]
        assert max_error(jax.tree.map(lambda leaf: leaf[i], batched), one) <= 1e-6


SHARDED = r"""
import json, jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxmlp import init_mlp
from jaxmlp.gradcheck import random_problem, relative_error
from jaxmlp.gradstats import gradient_stats
assert len(jax.devices()) == 8
sizes = (8, 8, 8, 3)
params = init_mlp(jax.random.key(0), sizes, activation="maxout")
x, y = random_problem(jax.random.key(1), sizes, "softmax_cross_entropy", 32, jnp.float32)
fn = jax.jit(lambda p, xx, yy: gradient_stats(p, xx, yy, activation="maxout", key=jax.random.key(2), dropout=0.5))
one = fn(params, x, y)
rows = NamedSharding(Mesh(jax.devices(), ("data",)), P("data"))
sharded = fn(params, jax.device_put(x, rows), jax.device_put(y, rows))
assert len(sharded[1].sq_norm.sharding.device_set) == 8
err = max(jax.tree.leaves(jax.tree.map(relative_error, one, sharded)))
print(json.dumps({"error": err}))
"""


def test_sharded_on_8_host_devices_equal_to_one_device(child_env):
    env = dict(child_env, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(__file__))
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["error"] <= 1e-6
