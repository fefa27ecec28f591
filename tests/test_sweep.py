"""jaxmlp.sweep: every model of a sweep equals its solo fit, divergence stays local, early stopping
is per model, sharding over 8 devices changes nothing; grids, groups and the memory plan.

Fixed small shapes on the spiral (train 240, val 60, test 300; 16 hidden units, batch 32), so the
solo fits compile few programs. On CPU a sweep runs its models one after another inside one
program (width auto = 1): the same per-model computation as the solo run, so bit-identical; the
vmapped programs (width all) batch the matmuls, and agree to 1e-6 relative.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxmlp import sweep
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.sweeps import expand_grid, field_kind, model_configs
from jaxmlp.sweeps.plan import make_plan, models_per_program_of, plan_chunks, plan_groups
from jaxmlp import fit
from jaxmlp.training import TrainingDiverged, plan_of, run_spec

SPLITS = load_dataset("spiral", val_fraction=0.2)
BASE = TrainConfig(hidden=(16,), batch_size=32, epochs=3, checkpoint_every=0)
TOL = 1e-6


def leaves_equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def max_rel_err(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                     / (np.max(np.abs(np.asarray(y, np.float64))) + 1e-30))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


_solo_runs: dict = {}


def solo(config: TrainConfig):
    """(params, history) of the model's own fit, or the TrainingDiverged it raises (memoized)."""
    if config not in _solo_runs:
        try:
            _solo_runs[config] = fit(config, SPLITS.train, SPLITS.val, SPLITS.test)
        except TrainingDiverged as exc:
            _solo_runs[config] = exc
    return _solo_runs[config]


def run(config: TrainConfig, grid, **kwargs):
    return sweep(config, grid, SPLITS.train, SPLITS.val, SPLITS.test, keep_params=True, **kwargs)


def assert_as_solo(model, bitwise: bool) -> None:
    params, history = solo(model.config)
    if bitwise:
        assert leaves_equal(model.params, params), model.overrides
        assert model.history.train_loss == history.train_loss and model.history.val_loss == history.val_loss
        assert model.history.final == history.final
    else:
        assert max_rel_err(model.params, params) <= TOL, model.overrides
        np.testing.assert_allclose(model.history.val_loss, history.val_loss, rtol=1e-5)
    assert model.history.epoch == history.epoch and model.history.best_epoch == history.best_epoch


# --- every model equals its solo fit ---------------------------------------------------------------
@pytest.mark.parametrize("width", ["auto", "all"])
def test_seeds_learning_rates_dropout_equal_solo_fits(width):
    """2 seeds x 2 learning rates x 2 dropout rates, jax.grad: one program, 8 models."""
    result = run(BASE, {"learning_rate": [0.01, 0.05], "dropout": [0.0, 0.3], "seed": [0, 1]}, width=width)
    assert len(result.models) == 8 and result.compile_seconds > 0
    for model in result.models:
        assert_as_solo(model, bitwise=width == "auto")
    best = result.best
    assert best is not None and leaves_equal(result.best_params, best.params)
    assert [row["model"] for row in result.table()] == [m.index for m in result.ranked()]


def test_manual_backprop_and_a_shape_changing_field_vmapped():
    """hidden splits the grid into two groups, run one after another, each vmapped."""
    config = dataclasses.replace(BASE, grad_method="manual", dropout=0.2, learning_rate=0.05)
    result = run(config, {"hidden": [(16,), (8, 8)], "seed": [0, 1]}, width="all")
    assert [m.group for m in result.models] == [0, 0, 1, 1]
    for model in result.models:
        assert_as_solo(model, bitwise=False)


# Each group's models differ in every number its step reads (traced), and in init scheme and seed.
ADAMW = dict(optimizer="adamw", schedule="cosine", epochs=2)
NESTEROV = dict(optimizer="nesterov", schedule="warmup_cosine", epochs=2, learning_rate=0.05)
ADAM = dict(optimizer="adam", epochs=2)
TRACED_GRID = [
    {**ADAMW, "learning_rate": 0.02},
    {**ADAMW, "learning_rate": 0.01, "weight_decay": 1e-3, "l2": 1e-3, "eps": 1e-6, "dropout": 0.1,
     "input_noise": 0.05, "warmup_epochs": 1, "final_lr_fraction": 0.1, "init": "xavier_uniform", "seed": 3},
    {**NESTEROV, "momentum": 0.9, "warmup_epochs": 1},
    {**NESTEROV, "momentum": 0.5, "weight_decay": 1e-3, "warmup_epochs": 2, "final_lr_fraction": 0.2, "seed": 1},
    {**ADAM},
    {**ADAM, "b1": 0.8, "b2": 0.99},
]


def test_every_traced_field_and_init_in_one_sweep():
    """Within 1e-6 of the solo runs, but for traced b1 / b2: optax's 1 - b2 of a float32 b2 =
    0.999 is 0.00099998713 where the solo run's Python 1 - 0.999 gives float32 0.001, so the
    second moment drifts (measured here: 7.1e-6 relative after 2 epochs)."""
    result = run(BASE, TRACED_GRID)
    assert [m.group for m in result.models] == [0, 0, 1, 1, 2, 2]
    assert [result.models[i].config.init for i in (0, 1)] == [None, "xavier_uniform"]
    for model in result.models:
        params, history = solo(model.config)
        np.testing.assert_allclose(model.history.lr, history.lr, rtol=1e-6, atol=1e-8)  # the traced schedule
        tol = 3e-5 if model.group == 2 else TOL
        assert max_rel_err(model.params, params) <= tol, model.overrides


# --- divergence, early stopping ----------------------------------------------------------------------
def test_a_diverging_model_is_marked_and_poisons_nothing():
    config = dataclasses.replace(BASE, optimizer="sgd")
    result = run(config, {"learning_rate": [0.1, 1e30, 0.3]}, width="all")  # vmapped: one batched program
    calm, wild, calm2 = result.models
    expected = solo(wild.config)
    assert isinstance(expected, TrainingDiverged)
    assert wild.diverged and wild.diverged_epoch == expected.epoch
    assert wild.history.epoch == list(range(1, expected.epoch)) and wild.score == math.inf
    assert result.ranked()[-1] is wild and all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(wild.params))
    for model in (calm, calm2):
        assert not model.diverged
        assert_as_solo(model, bitwise=False)


def test_early_stopping_and_restore_best_per_model():
    config = dataclasses.replace(BASE, epochs=10, patience=1, min_delta=0.01, restore_best=True)
    result = run(config, {"learning_rate": [0.01, 0.05], "dropout": [0.0, 0.3], "seed": [0, 1]})
    for model in result.models:
        params, history = solo(model.config)
        assert model.history.epoch == history.epoch and model.history.stopped_early == history.stopped_early
        assert model.history.best_epoch == history.best_epoch
        assert leaves_equal(model.params, params)  # the best epoch's params, as restore_best returns them
    stops = {len(m.history.epoch) for m in result.models}
    assert len(stops) >= 3 and min(stops) < 10, stops  # they stopped at different epochs, while the others went on


# --- 8 devices ---------------------------------------------------------------------------------------
SHARDED = """
import json, jax, numpy as np
from jaxmlp import sweep
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
s = load_dataset("spiral", val_fraction=0.2)
grid = {"learning_rate": [0.01, 0.05], "dropout": [0.0, 0.3], "seed": [0, 1]}
out = {}
for width in ("auto", "all"):
    runs = [sweep(TrainConfig(hidden=(16,), batch_size=32, epochs=2, checkpoint_every=0, devices=d), grid,
                  s.train, s.val, s.test, keep_params=True, width=width) for d in (8, 1)]
    pairs = [(a.params, b.params) for a, b in zip(runs[0].models, runs[1].models)]
    out[width] = {"bitwise": all(np.array_equal(x, y) for a, b in pairs for x, y in
                                 zip(jax.tree.leaves(a), jax.tree.leaves(b))),
                  "rel": max(float(np.max(np.abs(x - y)) / np.max(np.abs(y))) for a, b in pairs
                             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))}
out["devices"] = jax.device_count()
print("RESULT " + json.dumps(out))
"""


def test_sharded_over_8_devices_equals_one_device():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env.pop("JAX_ENABLE_X64", None)
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["devices"] == 8
    assert result["auto"]["bitwise"], result  # one model after another on every device: the same program
    assert result["all"]["rel"] <= TOL, result


# --- the grid, the groups, the plan --------------------------------------------------------------------
def test_grid_expansion_and_field_kinds():
    assert expand_grid({"learning_rate": [1e-3, 1e-2], "seed": range(2)}) == [
        {"learning_rate": 1e-3, "seed": 0}, {"learning_rate": 1e-3, "seed": 1},
        {"learning_rate": 1e-2, "seed": 0}, {"learning_rate": 1e-2, "seed": 1}]
    assert expand_grid([{"hidden": (8,)}, {}]) == [{"hidden": (8,)}, {}]
    assert [field_kind(n) for n in ("seed", "dropout", "warmup_epochs", "init", "hidden", "epochs", "patience",
                                    "devices")] == ["seed", "traced", "traced", "init", "group", "group", "sweep",
                                                    "sweep"]
    for grid, needle in [({}, "empty"), ([], "empty"), ({"seed": []}, "seed has no values"),
                         ({"nope": [1]}, "unknown config field 'nope'"), ({"seed": 3}, "needs a list"),
                         ({"val_fraction": [0.1, 0.2]}, "setting of the whole sweep"), ([3], "model 0 must be")]:
        with pytest.raises(ValueError, match=needle):
            expand_grid(grid)
    with pytest.raises(ValueError, match=r"model 1 \(learning_rate=abc\): learning_rate must be a number"):
        model_configs(BASE, [{"learning_rate": 0.1}, {"learning_rate": "abc"}])


def test_groups_take_the_parts_any_member_needs():
    configs = model_configs(BASE, expand_grid({"dropout": [0.0, 0.3], "hidden": [(16,), (8,)],
                                               "init": ["he_normal", None], "seed": [0, 1]}))
    groups = plan_groups(configs)
    assert [len(g.members) for g in groups] == [8, 8]
    assert groups[0].traced == ("dropout",) and groups[0].program.dropout == 0.3
    assert groups[0].inits == ("he_normal", None)
    chunks = plan_chunks(groups, [3, 8], devices=2)  # at most 3 per program on 2 devices: 2 per program
    assert [(c.group, len(c.members), c.size) for c in chunks] == [(0, 2, 2), (0, 2, 2), (0, 2, 2), (0, 2, 2),
                                                                      (1, 8, 8)]


def test_models_per_program_from_device_memory():
    config = TrainConfig(hidden=(64,), batch_size=32)
    spec = run_spec(config, SPLITS.train)
    for limit in (None, 10 ** 9):  # no limit known, or plenty
        assert models_per_program_of(plan_of(config, spec), models=63, devices=2, width=None, limit=limit) == 64
        assert models_per_program_of(plan_of(config, spec), models=63, devices=2, width=None, limit=limit, asked=5) == 4
    some = models_per_program_of(plan_of(config, spec), models=64, devices=1, width=None, limit=300_000)
    one_at_a_time = models_per_program_of(plan_of(config, spec), models=64, devices=1, width=1, limit=300_000)
    assert 1 <= some < one_at_a_time <= 64  # stepping one model at a time keeps one's activations
    with pytest.raises(ValueError, match="lower models_per_program to"):
        models_per_program_of(plan_of(config, spec), models=64, devices=1, width=None, limit=300_000, asked=64)
    huge = TrainConfig(hidden=(10 ** 6,))
    with pytest.raises(ValueError, match="lower hidden"):
        models_per_program_of(plan_of(huge, run_spec(huge, SPLITS.train)), models=2, devices=1, width=1, limit=10 ** 6)
    plan = make_plan(BASE, {"seed": range(5)}, SPLITS.train, models_per_program=2)
    assert [len(c.members) for c in plan.chunks] == [2, 2, 1] and {c.size for c in plan.chunks} == {2}
