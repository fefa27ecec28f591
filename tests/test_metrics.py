"""metrics.py and dataset_metrics.py: dead units, saturation, gradient norms, batching, and the one-pass convenience.

Forward passes and references run under jax.jit: eager JAX compiles every op separately,
which would dominate the run time of these small tests.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp.backprop import forward, loss_and_grad
from jaxmlp.dataset_metrics import dataset_activation_stats
from jaxmlp.metrics import (activation_stats, dead_fraction, empty_tally, layer_grad_norms, loss_grad_and_stats,
                            merge_tallies, saturation_fraction, summarize, tally_activations)
from jaxmlp.mlp import Layer


@partial(jax.jit, static_argnames="activation")
def _cache(params, x, activation="relu"):
    """The manual forward pass's cache, compiled."""
    return forward(params, x, activation=activation)[1]


def _known_dead_net():
    """2 -> 4 -> 5 -> 3 relu net: hidden layer 1 has 2 dead units of 4, layer 2 has 1 of 5."""
    W1 = jnp.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    b1 = jnp.array([0.0, 0.0, -100.0, -100.0])  # units 2, 3 never fire for |x| <= 1
    W2 = jnp.ones((4, 5))
    b2 = jnp.array([0.0, 0.0, 0.0, 0.0, -100.0])  # unit 4 never fires
    W3 = jnp.ones((5, 3))
    return [Layer(W1, b1), Layer(W2, b2), Layer(W3, jnp.zeros(3))]


def _points(n=64, seed=0, d=2):
    """(n, d) float32 points uniform in [-1, 1]."""
    return jnp.asarray(np.random.default_rng(seed).uniform(-1.0, 1.0, (n, d)), jnp.float32)


def _random_net(seed, sizes, *, alpha=None, pieces=1):
    """He-scaled random params like init_mlp's (built in numpy: no compile), small random biases."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        lead = (pieces,) if hidden and pieces > 1 else ()
        W = rng.normal(size=lead + (d_in, d_out)) * np.sqrt(2.0 / d_in)
        b = 0.1 * rng.normal(size=lead + (d_out,))
        slope = jnp.full((d_out,), alpha, jnp.float32) if hidden and alpha is not None else None
        layers.append(Layer(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32), slope))
    return layers


def test_dead_fraction_is_exact_on_a_hand_built_net():
    cache = _cache(_known_dead_net(), _points())
    np.testing.assert_array_equal(np.asarray(dead_fraction(cache)), np.float32([0.5, 0.2]))
    stats = activation_stats(cache, "relu")
    assert set(stats) == {"dead_fraction"}
    np.testing.assert_array_equal(np.asarray(stats["dead_fraction"]), np.float32([0.5, 0.2]))


def test_a_unit_active_on_a_single_example_is_alive():
    x = jnp.array([[-1.0, -1.0], [-0.5, -0.2], [0.3, -1.0]])  # unit 0 fires only on the last row
    cache = _cache(_known_dead_net(), x)
    # layer 1: unit 1 (x2 > 0) never fires here either -> 3 of 4 dead; layer 2 sees h > 0 on row 3
    np.testing.assert_array_equal(np.asarray(dead_fraction(cache)), np.float32([0.75, 0.2]))


def test_saturation_fraction_is_exact():
    params = [Layer(jnp.eye(2), jnp.zeros(2)), Layer(jnp.ones((2, 2)), jnp.zeros(2))]
    x = jnp.array([[3.0, 0.0], [0.5, -5.0], [1.0, 1.0], [-2.5, 0.1]])  # |z| > 2: 3, -5, -2.5
    cache = _cache(params, x, activation="tanh")
    np.testing.assert_allclose(np.asarray(activation_stats(cache, "tanh")["saturation_fraction"]), [3 / 8])
    # sigmoid's default threshold is 3: only -5 counts; an explicit threshold overrides
    cache = _cache(params, x, activation="sigmoid")
    np.testing.assert_allclose(np.asarray(activation_stats(cache, "sigmoid")["saturation_fraction"]), [1 / 8])
    np.testing.assert_allclose(np.asarray(saturation_fraction(cache, 0.9)), [5 / 8])
    np.testing.assert_allclose(
        np.asarray(activation_stats(cache, "sigmoid", threshold=0.9)["saturation_fraction"]), [5 / 8])


def test_summary_keys_follow_the_activation():
    params = _random_net(0, (2, 3, 2))
    cache = _cache(params, _points(8))
    assert set(activation_stats(cache, "leaky_relu")) == {"dead_fraction"}
    assert set(activation_stats(cache, "tanh")) == {"saturation_fraction"}
    assert activation_stats(cache, "identity") == {}


def test_grad_norms_match_the_norms_of_the_leaves():
    params = _random_net(1, (3, 5, 4, 2), alpha=0.25)
    x = _points(16, seed=2, d=3)
    y = jnp.arange(16) % 2
    _, grads = jax.jit(lambda p: loss_and_grad(p, x, y, activation="prelu", method="manual"))(params)

    @jax.jit
    def ours_and_reference(grads):
        ours = (layer_grad_norms(grads), layer_grad_norms(grads, "W"), layer_grad_norms(grads, "b"))
        leaves = [[jnp.linalg.norm(leaf.ravel()) for leaf in g if leaf is not None] for g in grads]
        return ours, leaves, [jnp.linalg.norm(g.W) for g in grads], [jnp.linalg.norm(g.b) for g in grads]

    (norms, norms_w, norms_b), leaves, ref_w, ref_b = ours_and_reference(grads)
    assert norms.shape == (3,)
    assert [len(per_layer) for per_layer in leaves] == [3, 3, 2]  # W, b, alpha; the output layer has no alpha
    for i in range(3):
        expected = np.sqrt(sum(float(n) ** 2 for n in leaves[i]))
        np.testing.assert_allclose(norms[i], expected, rtol=1e-5)
        np.testing.assert_allclose(norms_w[i], ref_w[i], rtol=1e-5)
        np.testing.assert_allclose(norms_b[i], ref_b[i], rtol=1e-5)


def test_batched_ever_active_equals_the_full_data_result():
    params = _random_net(3, (2, 16, 16, 3))
    params[1] = params[1]._replace(b=params[1].b - jnp.asarray(np.arange(16) < 5) * 1.0)  # rare or dead units
    x = _points(103, seed=4)
    full = activation_stats(_cache(params, x), "relu")["dead_fraction"]
    # by hand: per-batch tallies merged with logical or
    tally = empty_tally(params)
    tally_batch = jax.jit(lambda t, xb: merge_tallies(t, tally_activations(_cache(params, xb), "relu")))
    for start in range(0, 103, 10):
        tally = tally_batch(tally, x[start:start + 10])
    np.testing.assert_array_equal(np.asarray(summarize(tally, "relu")["dead_fraction"]), np.asarray(full))
    assert float(tally.examples) == 103
    # the scanned helper, with a zero-padded last batch
    batched = dataset_activation_stats(params, x, batch_size=10)
    np.testing.assert_array_equal(np.asarray(batched["dead_fraction"]), np.asarray(full))
    assert 0 < float(jnp.max(full))  # the test would be vacuous without dead units


def test_batched_saturation_equals_the_full_data_result():
    params = _random_net(5, (2, 8, 8, 2))
    x = 3.0 * _points(50, seed=6)
    full = activation_stats(_cache(params, x, activation="tanh"), "tanh")["saturation_fraction"]
    batched = dataset_activation_stats(params, x, activation="tanh", batch_size=16)
    np.testing.assert_allclose(np.asarray(batched["saturation_fraction"]), np.asarray(full), rtol=1e-6)


def test_mask_excludes_padding_rows():
    x = jnp.array([[-1.0, -1.0], [0.5, 0.5]])  # the second row would revive units 0 and 1
    cache = _cache(_known_dead_net(), x)
    masked = tally_activations(cache, "relu", mask=jnp.array([True, False]))
    np.testing.assert_array_equal(np.asarray(summarize(masked, "relu")["dead_fraction"]), np.float32([1.0, 1.0]))
    assert float(masked.examples) == 1


def test_maxout_cache_is_tallied():
    params = _random_net(7, (2, 6, 2), pieces=3)
    _, cache = jax.jit(lambda p, x: forward(p, x, activation="maxout", k=3))(params, _points(20))
    tally = tally_activations(cache, "maxout")
    assert tally.ever_active[0].shape == (6,)


def test_loss_grad_and_stats_is_one_pass_of_loss_and_grad():
    params = _random_net(8, (2, 12, 12, 3))
    x = _points(40, seed=9)
    y = jnp.arange(40) % 3
    kw = dict(l2=0.01)
    step = jax.jit(lambda p: loss_grad_and_stats(p, x, y, **kw))
    value, grads, stats = step(params)
    ref_value, ref_grads = jax.jit(lambda p: loss_and_grad(p, x, y, method="autodiff", **kw))(params)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(summarize(stats.activations, "relu")["dead_fraction"]),
                                  np.asarray(jax.jit(dead_fraction)(_cache(params, x))))
    np.testing.assert_allclose(stats.grad_norms, layer_grad_norms(ref_grads), rtol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_activation_stats_is_jittable(activation):
    params = _random_net(10, (2, 4, 2))
    x = _points(8)
    stats = jax.jit(lambda p: activation_stats(forward(p, x, activation=activation)[1], activation))(params)
    _, cache = forward(params, x, activation=activation)  # eager, on purpose: the same numbers
    for k, v in activation_stats(cache, activation).items():
        np.testing.assert_allclose(stats[k], v)


def test_loss_grad_and_stats_needs_the_manual_method():
    params = _random_net(11, (2, 3, 2))
    with pytest.raises(ValueError, match="manual"):
        loss_grad_and_stats(params, _points(4), jnp.zeros(4, jnp.int32), method="autodiff")


def test_dataset_stats_equals_full_batch_gradient_and_tally(x64):
    """Batched, padded and masked: the same grad norms as one full-batch loss_and_grad."""
    import numpy as np

    from jaxmlp import init_mlp, loss_and_grad, spiral
    from jaxmlp.dataset_metrics import dataset_activation_stats, dataset_stats
    from jaxmlp.metrics import layer_grad_norms
    from jaxmlp.batching import pad_rows

    params = init_mlp(jax.random.key(0), (2, 16, 16, 3), activation="leaky_relu", dtype=jnp.float64)
    data = spiral(jax.random.key(1), n_per_class=50)  # 150 rows: 3 batches of 64, the last padded
    x, y = jnp.asarray(data.x, jnp.float64), jnp.asarray(data.y)
    rows, mask = pad_rows(len(data), 64)  # (3, 64)
    xb, yb = x[rows], y[rows]
    stats = dataset_stats(params, xb, yb, mask, len(data), l2=0.01, activation="leaky_relu")
    _, grads = loss_and_grad(params, x, y, l2=0.01, activation="leaky_relu")
    np.testing.assert_allclose(stats["grad_norm"], layer_grad_norms(grads), rtol=1e-12)
    np.testing.assert_allclose(stats["dead_fraction"],
                               dataset_activation_stats(params, x, activation="leaky_relu")["dead_fraction"])
