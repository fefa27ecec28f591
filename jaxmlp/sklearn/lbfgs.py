"""solver='lbfgs': full-batch L-BFGS with optax (`optax.lbfgs`, zoom line search), one compiled
while-loop.

scikit-learn runs scipy's L-BFGS-B with maxiter=max_iter, maxfun=max_fun and gtol=tol. This
loop stops on the same three (max |gradient| <= tol; function evaluations counted as the line
search's steps) and on scipy's default relative decrease ftol = 2.2e-9 (factr 1e7 * eps).
The iterates differ from scipy's (another line search and initial step), the optimum does not.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from jaxmlp.sklearn.engine import Spec, objective
from jaxmlp.training.programs import program

FTOL = 2.220446049250313e-09  # scipy's L-BFGS-B default: factr 1e7 times float64 eps


@program("sklearn_lbfgs")
def lbfgs_program(spec: Spec):
    """The jitted `run(params, x (Np, D), y (Np, k), w (Np,), alpha, max_iter, max_fun, gtol)`
    -> (params, iterations). Padding rows have w = 0."""

    def run(params, x, y, w, alpha, max_iter, max_fun, gtol):
        def f(p):  # the surrogate: value and gradient agree, as a line search needs
            return objective(spec, p, x, y, w, alpha)[0]

        opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(f)

        def step(carry):
            params, state, it, nfev, _ = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
            params = optax.apply_updates(params, updates)
            new_value, new_grad = value_and_grad(params, state=state)
            gmax = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(new_grad)]))
            decrease = (value - new_value) / jnp.maximum(jnp.maximum(jnp.abs(value), jnp.abs(new_value)), 1)
            evals = otu.tree_get(state, "num_linesearch_steps")
            done = (gmax <= gtol) | (decrease <= FTOL)
            return params, state, it + 1, nfev + jnp.maximum(evals, 1), done

        def more(carry):
            _, _, it, nfev, done = carry
            return (it < max_iter) & (nfev < max_fun) & ~done

        start = (params, opt.init(params), jnp.zeros((), jnp.int32), jnp.ones((), jnp.int32), jnp.array(False))
        params, _, it, _, _ = jax.lax.while_loop(more, step, start)
        return params, it

    return jax.jit(run)
