"""DiagGGN and KFLR factors from the backward walk equal the GGN built from jax's Jacobians:
G = (1/B) Σ_i J_iᵀ H_i J_i with J_i = jacrev of example i's scores, H_i the softmax Hessian."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxmlp import get_activation, init_mlp
from jaxmlp.curvature import diag_ggn, kflr_factors
from jaxmlp.gradcheck import random_problem, relative_error
from jaxmlp.mlp import ForwardOptions, mlp_apply


def jax_ggn(params, x, activation, options):
    """(P, P) GGN of the mean cross-entropy and the unravel of the flat params."""
    flat, unravel = ravel_pytree(params)
    act = get_activation(activation)
    scores = mlp_apply(params, x, activation=act, **options._asdict())  # (B, C)
    jac = jax.jacrev(lambda f: mlp_apply(unravel(f), x, activation=act, **options._asdict()))(flat)  # (B, C, P)
    p = jax.nn.softmax(scores, axis=1)
    hess = jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]  # (B, C, C)
    return jnp.einsum("bcp,bcd,bdq->pq", jac, hess, jac) / x.shape[0], unravel


@pytest.mark.parametrize("activation", ["tanh", "maxout", "prelu"])
def test_diag_ggn_equals_the_jacobian_ggn(activation, x64):
    sizes = (5, 6, 6, 4)
    params = init_mlp(jax.random.key(0), sizes, activation=activation, dtype=jnp.float64)
    x, y = random_problem(jax.random.key(1), sizes, "softmax_cross_entropy", 7, jnp.float64)
    options = ForwardOptions(jax.random.key(2), 0.5, 0.0, True)
    ggn, unravel = jax_ggn(params, x, activation, options)
    got = diag_ggn(params, x, y, activation=activation, key=jax.random.key(2), dropout=0.5)
    want = unravel(jnp.diag(ggn))
    assert max(jax.tree.leaves(jax.tree.map(relative_error, got, want))) <= 1e-10


def test_kflr_factors_are_the_ggn_block_for_one_example(x64):
    sizes = (4, 5, 3)
    params = init_mlp(jax.random.key(3), sizes, activation="tanh", dtype=jnp.float64)
    x, y = random_problem(jax.random.key(4), sizes, "softmax_cross_entropy", 1, jnp.float64)
    ggn, _ = jax_ggn(params, x, "tanh", ForwardOptions())
    factors = kflr_factors(params, x, y, activation="tanh", train=False)
    start = 0
    for layer, (a, g) in zip(params, factors):
        n = layer.W.size  # W comes first in each layer's flat slice, row-major (d_in, d_out)
        block = ggn[start:start + n, start:start + n]
        assert relative_error(jnp.kron(a, g), block) <= 1e-10
        start += n + layer.b.size
    # for B > 1 the factors are the means of their per-example parts
    xb, yb = random_problem(jax.random.key(5), sizes, "softmax_cross_entropy", 6, jnp.float64)
    a0, _ = kflr_factors(params, xb, yb, activation="tanh", train=False)[0]
    np.testing.assert_allclose(a0, xb.T @ xb / 6, rtol=1e-12)
