"""Losses: the lecture's numbers, stability, and each gradient against jax.grad of its value."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import LOSSES, get_loss, init_mlp, loss_and_grad
from jaxmlp.gradcheck import random_problem

# CS231n's three-image example: cat, car, frog scores for images whose classes are 0, 1, 2.
SCORES = jnp.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
LABELS = jnp.array([0, 1, 2])


def test_multiclass_hinge_lecture_example():
    per_example = get_loss("multiclass_hinge").per_example(SCORES, LABELS)
    np.testing.assert_allclose(per_example, [2.9, 0.0, 12.9], rtol=1e-6)
    np.testing.assert_allclose(get_loss("svm").value(SCORES, LABELS), 15.8 / 3, rtol=1e-6)


def test_softmax_cross_entropy_lecture_example():
    loss = get_loss("softmax_cross_entropy").value(jnp.array([[-2.85, 0.86, 0.28]]), jnp.array([2]))
    np.testing.assert_allclose(loss, 1.04, atol=5e-3)


def test_softmax_cross_entropy_is_stable_for_huge_scores():
    scores = jnp.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 1000.0]])
    values = get_loss("softmax_cross_entropy").per_example(scores, jnp.array([0, 1]))
    np.testing.assert_allclose(values, [0.0, np.log(2.0)], atol=1e-4)  # float32 ulp at 1000 is 6e-5
    assert jnp.all(jnp.isfinite(values))


def test_binary_logistic_is_stable_and_correct():
    scores = jnp.array([[800.0], [-800.0], [0.0]])
    values = get_loss("binary_logistic").per_example(scores, jnp.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(values, [800.0, 0.0, np.log(2.0)], rtol=1e-6)


def test_mean_squared_error_value():
    scores, y = jnp.array([[1.0, 2.0], [3.0, 5.0]]), jnp.array([[0.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(get_loss("mse").value(scores, y), (1 + 0 + 0 + 4) / 4)


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradient_beside_each_loss_matches_autodiff(name, x64):
    scores, y = random_problem(jax.random.key(0), (5, 4), name, 7, jnp.float64)
    scores = scores[:, :4] * 3
    loss = get_loss(name)
    np.testing.assert_allclose(loss.grad(scores, y), jax.grad(loss.value)(scores, y), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["binary_logistic", "mean_squared_error"])
def test_single_output_accepts_flat_targets(name):
    scores = jnp.array([[0.3], [-1.2]])
    flat, column = jnp.array([1.0, 0.0]), jnp.array([[1.0], [0.0]])
    loss = get_loss(name)
    assert loss.value(scores, flat) == loss.value(scores, column)


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match="unknown loss 'hubber'"):
        get_loss("hubber")
    params = init_mlp(jax.random.key(0), (3, 4, 2))
    with pytest.raises(ValueError, match="unknown loss"):
        loss_and_grad(params, jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), loss="hubber")


def test_labels_of_wrong_shape_raise():
    params = init_mlp(jax.random.key(0), (3, 4, 2))
    with pytest.raises(ValueError, match=r"labels of shape \(2,\)"):
        loss_and_grad(params, jnp.zeros((2, 3)), jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"targets of shape \(2, 2\)"):
        loss_and_grad(params, jnp.zeros((2, 3)), jnp.zeros((2, 3)), loss="mean_squared_error")
