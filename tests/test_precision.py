"""Precision policies: bf16 matmuls with fp32 params / optimizer state / loss; highest; fp32."""
from __future__ import annotations

import jax
import jaxmlp
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import init_mlp, l2_penalty, loss_and_grad, training as train
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.precision import PRECISIONS, cast_floating, get_policy

SPIRAL = load_dataset("spiral").train  # 300 examples, 2 features, 3 classes
SIZES = (2, 32, 3)


def equations(jaxpr):
    """Every equation of a jaxpr, nested ones (scan, jit, cond bodies) included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns"):
                    yield from equations(inner)


def dots(fn, *args):
    """(input dtypes, precision) of every dot_general that tracing fn(*args) produces."""
    closed = jax.make_jaxpr(fn)(*args)
    return [(tuple(str(v.aval.dtype) for v in e.invars), e.params.get("precision"))
            for e in equations(closed.jaxpr) if e.primitive.name == "dot_general"], closed


def batch(n=64, seed=0):
    x = jax.random.normal(jax.random.key(seed), (n, SIZES[0]))
    y = jax.random.randint(jax.random.key(seed + 1), (n,), 0, SIZES[-1])
    return x, y


def test_policies():
    assert PRECISIONS == ("fp32", "bf16", "highest")
    assert get_policy("bf16").compute_dtype == jnp.bfloat16 and get_policy("bf16").matmul_precision is None
    assert get_policy("highest").matmul_precision == "highest" and get_policy("fp32").compute_dtype is None
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, highest, got 'tf32'"):
        get_policy("tf32")
    tree = [(jnp.ones(2), jnp.arange(2), None)]
    cast = cast_floating(tree, jnp.bfloat16)
    assert cast[0][0].dtype == jnp.bfloat16 and cast[0][1].dtype == jnp.int32 and cast[0][2] is None


@pytest.mark.parametrize("method", ["autodiff", "manual"])
def test_each_policy_traces_the_matmuls_it_promises(method):
    params, (x, y) = init_mlp(jax.random.key(0), SIZES), batch()
    for precision, dtype, prec in [("fp32", "float32", None), ("highest", "float32", "HIGHEST"),
                                   ("bf16", "bfloat16", None)]:
        found, closed = dots(lambda p: loss_and_grad(p, x, y, precision=precision, method=method), params)
        assert found and all(d == (dtype, dtype) for d, _ in found), (precision, found)
        assert all((p is None and prec is None) or (p is not None and prec in str(p)) for _, p in found), found
        value, *grads = closed.out_avals
        assert str(value.dtype) == "float32" and all(str(g.dtype) == "float32" for g in grads), precision


@pytest.mark.parametrize("method", ["autodiff", "manual"])
def test_bf16_gradients_are_fp32_and_near_the_fp32_ones(method):
    params, (x, y) = init_mlp(jax.random.key(0), SIZES), batch()
    l2 = 1e-2
    step = jax.jit(lambda p, precision, l2: loss_and_grad(p, x, y, precision=precision, l2=l2, method=method),
                   static_argnums=(1, 2))
    ref_value, ref = jax.jit(lambda p: loss_and_grad(p, x, y, l2=l2, method=method))(params)
    value, grads = step(params, "bf16", l2)
    assert value.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
    assert abs(float(value) - float(ref_value)) < 2e-2 * abs(float(ref_value))
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref)):
        assert float(jnp.max(jnp.abs(g - r))) < 3e-2 * float(jnp.max(jnp.abs(r))) + 1e-6
    # the L2 term is computed from the fp32 master weights, in fp32
    value0, grads0 = step(params, "bf16", 0.0)
    assert float(value - value0) == pytest.approx(float(l2_penalty(params, l2)), rel=1e-6)
    assert np.allclose(grads[0].W - grads0[0].W, l2 * params[0].W, rtol=1e-5, atol=1e-7)
    # highest equals fp32 on CPU (whose default fp32 matmuls are already full precision)
    if jax.default_backend() == "cpu":
        high_value, _ = step(params, "highest", l2)
        assert float(high_value) == pytest.approx(float(ref_value), rel=1e-6)


@pytest.mark.parametrize("method", ["autodiff", "manual"])
def test_the_bf16_training_step_keeps_params_and_optimizer_state_fp32(method):
    config = TrainConfig(precision="bf16", grad_method=method, hidden=(32,), batch_size=32, optimizer="adamw",
                         weight_decay=1e-4)
    plan = train.plan_of(config, train.RunSpec("softmax_cross_entropy", SIZES, 300, 300 // 32, (), True))
    state = train.abstract_state(config, SIZES, plan.optimizer)
    epoch = jax.jit(train.make_epoch(plan))
    x, y = train.host_arrays(SPIRAL, np.float32)
    found, closed = dots(epoch, jax.random.key(0), state, x, y)
    assert found and all(d == ("bfloat16", "bfloat16") for d, _ in found), found  # every matmul in bf16
    new_state, _ = jax.tree.unflatten(jax.tree.structure(jax.eval_shape(epoch, jax.random.key(0), state, x, y)),
                                      closed.out_avals)
    floats = [a for a in jax.tree.leaves(new_state) if jnp.issubdtype(a.dtype, jnp.floating)]
    assert floats and all(a.dtype == jnp.float32 for a in floats)  # params + adamw moments
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(new_state.opt_state)
               if jnp.issubdtype(a.dtype, jnp.floating))


@pytest.mark.parametrize("method", ["autodiff", "manual"])
def test_bf16_training_reaches_95_percent_on_the_spiral(method):
    params, history = jaxmlp.fit(TrainConfig(precision="bf16", grad_method=method), SPIRAL)
    assert history.final["train"]["accuracy"] >= 0.95
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
