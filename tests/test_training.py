"""The trainer package's seams: plan_run (a run planned once) and run_programs with the one
program cache, the optimizer table, RunSpec from data and from a checkpoint, the Feeder's two
feeds, one evaluation program."""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxmlp import checkpoint, evaluate, fit, names
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.training import Evaluator, plan_of, plan_run, run_programs, run_spec
from jaxmlp.training.epoch import epoch_order, gather_batch
from jaxmlp.training.evaluate import host_arrays
from jaxmlp.training.feed import Feeder
from jaxmlp.checkpoint import newest_checkpoint
from jaxmlp.training.optim import OPTIMIZERS
from jaxmlp.training.plan import spec_from_meta
from jaxmlp.training.state import epoch_key, run_keys

SPLITS = load_dataset("spiral", val_fraction=0.2)  # train 240, 2 features, 3 classes
SMALL = TrainConfig(epochs=3, checkpoint_every=0, hidden=(100,), batch_size=32, learning_rate=0.01, dropout=0.0)


def test_the_optimizer_table_serves_every_configurable_optimizer():
    assert set(OPTIMIZERS) == set(names.OPTIMIZERS)


def test_run_spec_reads_the_data():
    spec = run_spec(SMALL, SPLITS.train)
    assert spec == ("softmax_cross_entropy", (2, 100, 3), 240, 240 // 32, (), True)
    regression = load_dataset("sin").train
    spec = run_spec(TrainConfig(batch_size=10), regression)
    assert spec.loss == "mean_squared_error" and not spec.classification and spec.sizes[-1] == 1


def test_a_checkpoint_meta_gives_back_the_spec():
    spec = run_spec(SMALL, SPLITS.train)
    meta = {"loss": spec.loss, "sizes": list(spec.sizes), "steps_per_epoch": spec.steps_per_epoch,
            "n_train": spec.n_train, "target_shape": list(spec.target_shape)}
    assert spec_from_meta(meta, SMALL) == spec
    older = {k: meta[k] for k in ("loss", "sizes", "steps_per_epoch")}  # before n_train was saved
    assert spec_from_meta(older, SMALL)._replace(n_train=spec.n_train) == spec


def test_run_programs_are_what_fit_runs_and_compile_once():
    """Two epochs driven by hand through run_programs give fit's params bit for bit; a second
    plan of a config that differs only in host-only fields reuses the compile."""
    cfg = dataclasses.replace(SMALL, epochs=2, dropout=0.1, eval_train=False)
    plan = plan_run(cfg, SPLITS.train)
    programs = run_programs(plan)
    again = run_programs(plan_run(dataclasses.replace(cfg, seed=5, patience=0, eval_every=2), SPLITS.train))
    assert again.epoch is programs.epoch and again.compile_seconds < 0.5 * max(programs.compile_seconds, 1e-3) + 0.05
    init_key, train_key = run_keys(cfg.seed)
    state = programs.init(plan.place(init_key))
    x, y = plan.place(host_arrays(SPLITS.train, np.float32))
    for e in range(2):
        state, stats = programs.epoch(epoch_key(train_key, e), state, x, y)
        assert bool(stats.finite)
    params, _ = fit(cfg, SPLITS.train)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params)))
    planned, _ = fit(plan, SPLITS.train)  # a Plan made beforehand (as the CLI makes it) trains the same
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(planned), jax.tree.leaves(params)))
    with jax.default_matmul_precision("highest"):  # baked into the compiled epoch: not the same program
        assert run_programs(plan).epoch is not programs.epoch


def test_a_plan_resolves_the_run_once():
    """plan_run decides the auto settings, the fixed schedule length (a resume keeps its
    checkpoint's), the loss, the sizes, the feed and the memory; plan_of needs no data."""
    cfg = dataclasses.replace(SMALL, schedule="cosine", epochs=4)
    plan = plan_run(cfg, SPLITS.train, SPLITS.val)
    assert plan.config.restore_best and plan.config.schedule_epochs == 4 and plan.feed == "resident"
    assert (plan.loss, plan.sizes, plan.devices) == ("softmax_cross_entropy", (2, 100, 3), 1)
    assert plan.memory.params == 4 * (2 * 100 + 100 + 100 * 3 + 3)
    longer = plan_run(dataclasses.replace(cfg, epochs=8), SPLITS.train, SPLITS.val, resumed=plan.config)
    assert longer.config.schedule_epochs == 4  # extending a resumed run keeps the decay's length
    with pytest.raises(ValueError, match="restore_best needs validation data"):
        plan_run(dataclasses.replace(SMALL, restore_best=True), SPLITS.train)


def test_fit_refuses_a_plan_made_for_other_data_or_another_resume(tmp_path):
    """A plan made beforehand must be plan_run's for the data and the checkpoint fit is given."""
    cfg = dataclasses.replace(SMALL, epochs=2, schedule="cosine")
    plan = plan_run(cfg, SPLITS.train)
    with pytest.raises(ValueError, match="made for other training data"):
        fit(plan, SPLITS.test)
    with pytest.raises(ValueError, match="does not match the training set"):
        plan_run(cfg, SPLITS.train, load_dataset("sin").test)  # 1 feature and regression targets
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
    fit(plan, SPLITS.train, checkpointer=ckpt)  # a cosine over 2 epochs
    longer = dataclasses.replace(cfg, epochs=4)
    with pytest.raises(ValueError, match="schedule spans 4 epochs, the checkpoint it resumes 2"):
        fit(plan_run(longer, SPLITS.train), SPLITS.train, checkpointer=ckpt, resume=True)
    resumed = plan_run(longer, SPLITS.train, resumed=TrainConfig.from_dict(newest_checkpoint(ckpt)[1]["config"]))
    assert resumed.config.schedule_epochs == 2


def test_a_plan_without_data_gives_the_restore_target():
    abstract = plan_of(SMALL, run_spec(SMALL, SPLITS.train)).abstract_state()
    assert [layer.W.shape for layer in abstract.params] == [(2, 100), (100, 3)]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_the_fed_epochs_are_the_resident_epochs_minibatches(accumulate):
    """per_process hands over exactly the minibatches the resident epoch gathers on the device,
    epoch after epoch, prefetching one ahead."""
    cfg = dataclasses.replace(SMALL, accumulate=accumulate)
    host = host_arrays(SPLITS.train, np.float32)
    _, train_key = run_keys(cfg.seed)
    plan = plan_of(cfg, run_spec(cfg, SPLITS.train))
    resident = Feeder(plan._replace(feed="resident"), host, train_key)
    fed = Feeder(plan._replace(feed="per_process"), host, train_key)
    fed.start(0)
    for e in range(cfg.epochs):
        xb, yb = fed.take(e)
        fed.prefetch()
        _, rows, _ = epoch_order(epoch_key(train_key, e), len(host[0]), cfg.batch_size)  # (S, B)
        x, y = resident.take(e)
        want = jax.vmap(lambda r: gather_batch(x, y, r, accumulate))(rows)  # (S, K, B / K, ...)
        np.testing.assert_array_equal(xb, want[0])
        np.testing.assert_array_equal(yb, want[1])
    assert fed.take(cfg.epochs - 1) is None  # nothing is prefetched past the last epoch


def test_evaluation_compiles_once_for_every_split():
    """Train (rows gathered from the resident copy), val and test, of 240, 60 and 300 rows, share
    the Evaluator's programs: evaluating them compiles nothing more, and gives evaluate()'s numbers."""
    cfg = dataclasses.replace(SMALL, eval_batch_size=64)  # 4, 1 and 5 batches of 64
    plan = plan_run(cfg, SPLITS.train)
    evaluator = Evaluator(plan)
    splits = (SPLITS.train, SPLITS.val, SPLITS.test)
    sets = [evaluator.eval_set(SPLITS.train, plan.place(host_arrays(SPLITS.train, np.float32))),
            *(evaluator.eval_set(data) for data in splits[1:])]
    params = run_programs(plan).init(plan.place(run_keys(cfg.seed)[0])).params
    compiles = []

    def listener(event, seconds, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":  # a compile or a persistent-cache load
            compiles.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        got = [evaluator.metrics(params, *s) for s in sets]
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == [] and evaluator.batch_size == 64
    assert Evaluator(plan_run(SMALL, SPLITS.train)).batch_size == 240  # no larger than train
    assert Evaluator(plan)._step is evaluator._step  # compiled once per process
    with jax.default_matmul_precision("highest"):  # baked into the compiled program: another one
        assert Evaluator(plan)._step is not evaluator._step
    for data, metrics in zip(splits, got):
        assert metrics == pytest.approx(evaluate(params, data, config=cfg), rel=1e-6)
