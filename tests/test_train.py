"""The trainer: learning, manual == autodiff, schedules, weight-decay mask, divergence, early stopping.

Most fits reuse one small spiral problem and one program config (SMALL), so XLA compiles are
shared (train.fit caches compiled programs by `program_key`); `default_run` trains what
`jaxmlp train` trains with no flags.
"""
from __future__ import annotations

import collections
import dataclasses
import json

import jax
import jaxmlp
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmlp import training as train
from jaxmlp.backprop import loss_and_grad
from jaxmlp.checkpoint import Checkpointer
from jaxmlp.config import AUTO_PATIENCE, TrainConfig
from jaxmlp.data import Dataset, load_dataset
from jaxmlp.losses import get_loss
from jaxmlp.mlp import Layer, init_mlp, mlp_apply

SPLITS = load_dataset("spiral", val_fraction=0.2)  # train 240, val 60, test 300; 2 features, 3 classes
# 7 steps of 32 per epoch on those 240 examples, 2-100-3 relu, Adam lr 0.01, no dropout
SMALL = TrainConfig(epochs=3, checkpoint_every=0, hidden=(100,), batch_size=32, learning_rate=0.01, dropout=0.0)


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return jax.tree.structure(a) == jax.tree.structure(b) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def max_rel_err(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                     / (np.max(np.abs(np.asarray(y, np.float64))) + 1e-30))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


DEFAULT = load_dataset("spiral", val_fraction=None)  # what `jaxmlp train` trains: 300 examples, too few for auto val


@pytest.fixture(scope="module")
def default_run():
    """The default config (up to 300 epochs of 2-512-3 relu, dropout 0.2, Adam lr 1e-3, batch 128)
    on the default data: no validation split, so no early stopping."""
    return jaxmlp.fit(TrainConfig(), DEFAULT.train, DEFAULT.val, DEFAULT.test)


def test_the_defaults_learn_the_spiral(default_run):
    params, history = default_run
    assert DEFAULT.val is None and [layer.W.shape for layer in params] == [(2, 512), (512, 3)]
    assert history.final["test"]["accuracy"] >= 0.95  # the README's promise
    assert history.train_loss[-1] < 0.3 * history.train_loss[0]


def test_history_is_complete_and_json_serializable(default_run):
    _, history = default_run
    assert history.epoch == list(range(1, 301)) and not history.stopped_early
    assert history.kept_epoch == 300 and not history.restored_best  # no validation data: the last params
    for column in ("train_loss", "train_accuracy", "lr", "seconds", "samples_per_sec"):
        values = getattr(history, column)
        assert len(values) == 300 and all(v is not None and np.isfinite(v) for v in values), column
    assert all(v is None for v in history.val_loss + history.val_mse)  # no validation data; classification
    assert history.samples_per_sec[-1] > 0 and history.compile_seconds >= 0 and history.eval_compile_seconds >= 0
    assert set(history.final) == {"train", "test"}
    d = json.loads(json.dumps(history.to_dict()))
    assert train.History.from_dict(d) == history
    assert history.records()[0]["epoch"] == 1 and set(history.records()[0]) >= {"train_loss", "val_loss", "lr"}


def test_reproducible_from_seed_alone():
    cfg = dataclasses.replace(SMALL, dropout=0.1)
    p1, _ = jaxmlp.fit(cfg, SPLITS.train)
    p2, _ = jaxmlp.fit(cfg, SPLITS.train)
    p3, _ = jaxmlp.fit(dataclasses.replace(cfg, seed=1), SPLITS.train)
    assert leaves_equal(p1, p2)
    assert not leaves_equal(p1, p3)


# --- manual backprop == autodiff, through whole training trajectories --------------------------------
def _both_methods(**kwargs):
    out = {}
    for method in ("autodiff", "manual"):
        cfg = TrainConfig(epochs=3, checkpoint_every=0, grad_method=method, hidden=(16, 16), dropout=0.1, **kwargs)
        out[method], _ = jaxmlp.fit(cfg, SPLITS.train)
    return out["autodiff"], out["manual"]


def test_manual_matches_autodiff_float32():
    auto, manual = _both_methods(activation="prelu", optimizer="adam")
    assert jax.tree.structure(auto) == jax.tree.structure(manual)
    assert max_rel_err(manual, auto) < 1e-4


def test_manual_matches_autodiff_float64():
    assert not jax.config.jax_enable_x64
    with jax.enable_x64(True):
        auto, manual = _both_methods(activation="tanh", optimizer="momentum", learning_rate=0.1, dtype="float64")
        assert auto[0].W.dtype == jnp.float64
        assert max_rel_err(manual, auto) < 1e-10
    assert not jax.config.jax_enable_x64  # nothing leaks into other tests


def test_float64_needs_x64():
    with pytest.raises(ValueError, match="float64"):
        jaxmlp.fit(TrainConfig(dtype="float64"), SPLITS.train)


# --- learning-rate schedules ----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,reference", [
    (dict(schedule="constant"), lambda lr, spe, e: optax.constant_schedule(lr)),
    (dict(schedule="step", decay_rate=0.5, decay_epochs=2),
     lambda lr, spe, e: optax.exponential_decay(lr, 2 * spe, 0.5, staircase=True)),
    (dict(schedule="exponential", decay_rate=0.5, decay_epochs=2),
     lambda lr, spe, e: optax.exponential_decay(lr, 2 * spe, 0.5)),
    (dict(schedule="cosine", final_lr_fraction=0.1), lambda lr, spe, e: optax.cosine_decay_schedule(lr, e * spe, 0.1)),
    (dict(schedule="warmup_cosine", warmup_epochs=2),
     lambda lr, spe, e: optax.warmup_cosine_decay_schedule(0.0, lr, 2 * spe, e * spe)),
    (dict(schedule="constant", warmup_epochs=2),
     lambda lr, spe, e: optax.join_schedules([optax.linear_schedule(0.0, lr, 2 * spe), optax.constant_schedule(lr)],
                                             [2 * spe])),
])
def test_make_schedule_matches_optax(kwargs, reference):
    cfg = TrainConfig(epochs=10, learning_rate=0.3, **kwargs)
    spe = 7
    ours, ref = train.make_schedule(cfg, spe), reference(0.3, spe, 10)
    steps = jnp.arange(0, 10 * spe + 1)
    np.testing.assert_allclose(jax.vmap(ours)(steps), jax.vmap(ref)(steps), rtol=1e-6, atol=1e-9)


def test_fit_applies_the_scheduled_learning_rate():
    """Full-batch SGD with lr halving every epoch: history.lr is the schedule's value, and the
    params are exactly what p <- p - lr_t * grad(p) gives (replayed here with loss_and_grad)."""
    n = len(SPLITS.train)
    cfg = TrainConfig(epochs=3, batch_size=n, optimizer="sgd", learning_rate=0.5, schedule="exponential",
                      decay_rate=0.5, decay_epochs=1, hidden=(8,), dropout=0.0, checkpoint_every=0)
    params, history = jaxmlp.fit(cfg, SPLITS.train)
    sched = optax.exponential_decay(0.5, 1, 0.5)  # one step per epoch
    np.testing.assert_allclose(history.lr, [float(sched(e)) for e in range(3)], rtol=1e-6)

    p = init_mlp(train.run_keys(cfg.seed)[0], (2, 8, 3))
    for e in range(3):
        _, g = loss_and_grad(p, jnp.asarray(SPLITS.train.x), jnp.asarray(SPLITS.train.y))
        p = jax.tree.map(lambda w, dw: w - sched(e) * dw, p, g)
    assert max_rel_err(params, p) < 1e-5


# --- weight decay skips biases and PReLU slopes ----------------------------------------------------
def test_decay_mask_tree():
    relu = init_mlp(jax.random.key(0), (3, 4, 2))
    prelu = init_mlp(jax.random.key(0), (3, 4, 4, 2), activation="prelu")
    assert train.decay_mask(relu) == [Layer(True, False, None), Layer(True, False, None)]
    assert train.decay_mask(prelu) == [Layer(True, False, False), Layer(True, False, False), Layer(True, False, None)]
    assert jax.tree.structure(train.decay_mask(prelu)) == jax.tree.structure(prelu)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw", "rmsprop", "lars", "lamb"])
def test_weight_decay_touches_weights_only(optimizer):
    params = init_mlp(jax.random.key(0), (3, 4, 2), activation="prelu")
    params = [Layer(p.W, p.b + 1.0, None if p.alpha is None else p.alpha + 1.0) for p in params]  # nonzero b, alpha
    cfg = TrainConfig(optimizer=optimizer, weight_decay=0.1, activation="prelu", learning_rate=0.1)
    opt = train.make_optimizer(cfg, optax.constant_schedule(0.1))
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zero_grads, opt.init(params), params)
    for layer in updates:
        assert float(jnp.max(jnp.abs(layer.W))) > 0, "weights must decay"
        assert float(jnp.max(jnp.abs(layer.b))) == 0, "biases must not decay"
        assert layer.alpha is None or float(jnp.max(jnp.abs(layer.alpha))) == 0, "slopes must not decay"


def test_gradient_clipping_is_first_in_the_chain():
    params = init_mlp(jax.random.key(0), (3, 4, 2))
    cfg = TrainConfig(optimizer="sgd", learning_rate=1.0, clip_norm=0.5)
    opt = train.make_optimizer(cfg, optax.constant_schedule(1.0))
    big = jax.tree.map(lambda p: jnp.full_like(p, 100.0), params)
    updates, _ = opt.update(big, opt.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(0.5, rel=1e-5)


# --- divergence -------------------------------------------------------------------------------
def poisoned(data: Dataset, row: int) -> Dataset:
    """`data` with a NaN feature in one row, bypassing Dataset validation."""
    x = np.array(data.x)
    x[row, 0] = np.nan
    bad = dataclasses.replace(data)
    object.__setattr__(bad, "x", x)
    return bad


def test_nan_batch_stops_the_run_and_the_last_good_checkpoint_loads(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    cfg = dataclasses.replace(SMALL, epochs=2, checkpoint_every=1)
    good_params, _ = jaxmlp.fit(cfg, SPLITS.train, checkpointer=ckpt)
    assert ckpt.latest_epoch() == 2

    with pytest.raises(train.TrainingDiverged, match="epoch 3") as info:
        jaxmlp.fit(dataclasses.replace(cfg, epochs=4), poisoned(SPLITS.train, 5), checkpointer=ckpt, resume=True)
    assert info.value.epoch == 3 and 0 <= info.value.step < 7
    assert isinstance(info.value, RuntimeError)

    assert ckpt.latest_epoch() == 2  # nothing was written for the diverged epoch
    sizes = (2, 100, 3)
    _, optimizer = train.build_optimizer(cfg, 7)
    restored = ckpt.restore(train.abstract_state(cfg, sizes, optimizer))
    assert leaves_equal(restored.state.params, good_params)
    assert restored.meta["epoch"] == 2
    ckpt.close()


def test_huge_learning_rate_diverges_in_the_first_epoch():
    cfg = dataclasses.replace(SMALL, optimizer="sgd", learning_rate=1e6, hidden=(16,))
    with pytest.raises(train.TrainingDiverged, match="epoch 1"):
        jaxmlp.fit(cfg, load_dataset("sin").train)  # MSE regression: the loss explodes


# --- early stopping -----------------------------------------------------------------------------
def test_early_stopping_restores_the_best_epoch():
    # min_delta so large that no epoch after the first counts as an improvement
    cfg = dataclasses.replace(SMALL, epochs=20, patience=2, min_delta=1e9, restore_best=True)
    params, history = jaxmlp.fit(cfg, SPLITS.train, SPLITS.val)
    assert history.stopped_early and history.epoch == [1, 2, 3]
    assert history.best_epoch == 1 and history.best_val_loss == history.val_loss[0]
    assert history.val_loss[-1] != history.val_loss[0]
    assert jaxmlp.evaluate(params, SPLITS.val, config=cfg)["loss"] == pytest.approx(history.val_loss[0], rel=1e-6)
    assert history.final["val"]["loss"] == pytest.approx(history.val_loss[0], rel=1e-6)


def test_patience_running_out_on_the_last_epoch_is_not_stopping_early():
    cfg = dataclasses.replace(SMALL, epochs=3, patience=2, min_delta=1e9)  # epoch 3 is the 2nd without improvement
    _, history = jaxmlp.fit(cfg, SPLITS.train, SPLITS.val)
    assert history.epoch == [1, 2, 3] and not history.stopped_early  # every epoch ran: none was skipped


def test_by_default_a_large_data_set_stops_early_and_keeps_the_best_epoch():
    large = load_dataset("spiral", n_samples=5001, val_fraction=None)  # >= 5,000 examples: auto split
    assert (len(large.train), len(large.val)) == (4501, 500)
    cfg = dataclasses.replace(SMALL, epochs=20, min_delta=1e9)  # patience and restore_best: auto
    _, history = jaxmlp.fit(cfg, large.train, large.val)
    assert history.stopped_early and history.epoch == list(range(1, AUTO_PATIENCE + 2))
    assert history.restored_best and history.kept_epoch == history.best_epoch == 1
    assert all(v is not None and np.isfinite(v) for v in history.val_loss + history.val_accuracy)
    assert history.final["val"]["loss"] == pytest.approx(history.val_loss[0], rel=1e-6)


def test_by_default_a_small_data_set_trains_every_epoch_and_keeps_the_best_epoch():
    cfg = dataclasses.replace(SMALL, epochs=8, min_delta=1e9)  # 300 examples: no auto early stopping
    _, history = jaxmlp.fit(cfg, SPLITS.train, SPLITS.val)
    assert not history.stopped_early and history.epoch == list(range(1, 9))
    assert history.restored_best and history.kept_epoch == history.best_epoch == 1


def test_patience_needs_validation_data():
    with pytest.raises(ValueError, match="patience"):
        jaxmlp.fit(dataclasses.replace(SMALL, patience=3), SPLITS.train)


# --- checks, evaluation, prediction ----------------------------------------------------------------
def test_batch_size_larger_than_the_data_names_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        jaxmlp.fit(dataclasses.replace(SMALL, batch_size=1000), SPLITS.train)


@pytest.mark.parametrize("loss,data", [("mean_squared_error", "spiral"), ("softmax_cross_entropy", "sin"),
                                       ("binary_logistic", "spiral")])
def test_loss_that_does_not_fit_the_data(loss, data):
    splits = SPLITS if data == "spiral" else load_dataset(data)
    with pytest.raises(ValueError, match=loss):
        jaxmlp.fit(dataclasses.replace(SMALL, loss=loss), splits.train)


def test_evaluate_is_exact_over_all_examples_with_a_padded_last_batch():
    params = init_mlp(jax.random.key(3), (2, 100, 3))
    data = SPLITS.test  # 300 examples: batches of 7 leave a remainder of 6
    got = jaxmlp.evaluate(params, data, batch_size=7)
    scores = mlp_apply(params, jnp.asarray(data.x))
    want_loss = float(jnp.mean(get_loss("softmax_cross_entropy").per_example(scores, jnp.asarray(data.y))))
    want_acc = float(np.mean(np.argmax(np.asarray(scores), axis=1) == data.y))
    assert got["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert got["accuracy"] == pytest.approx(want_acc, abs=1e-7)
    np.testing.assert_allclose(jaxmlp.predict(params, data.x, batch_size=7), scores, rtol=1e-5, atol=1e-6)
    assert jaxmlp.predict(params, data.x[:5]).shape == (5, 3)


def test_predict_on_zero_rows_and_on_the_wrong_width():
    params = init_mlp(jax.random.key(3), (2, 100, 3))
    empty = jaxmlp.predict(params, np.zeros((0, 2), np.float32))
    assert empty.shape == (0, 3) and empty.dtype == jnp.float32
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\) for these params, got shape \(5, 3\)"):
        jaxmlp.predict(params, np.zeros((5, 3), np.float32), batch_size=2)  # the input's shape, not a batch's


def test_regression_reports_mse():
    sin = load_dataset("sin", val_fraction=0.25)
    params, history = jaxmlp.fit(TrainConfig(epochs=2, hidden=(16,), checkpoint_every=0), sin.train, sin.val)
    assert params[-1].W.shape == (16, 1)
    assert history.val_accuracy == [None, None] and all(v is not None for v in history.val_mse)
    assert history.final["val"]["mse"] == pytest.approx(history.final["val"]["loss"], rel=1e-5)


def test_callbacks_see_every_epoch_in_order():
    events = []

    class Recorder(train.Callback):
        def on_train_begin(self, info):
            events.append(("begin", info["start_epoch"], info["steps_per_epoch"]))

        def on_epoch_end(self, record):
            events.append(("epoch", record["epoch"]))

        def on_train_end(self, history):
            events.append(("end", len(history.epoch)))

    jaxmlp.fit(SMALL, SPLITS.train, callbacks=[Recorder()])
    assert events == [("begin", 0, 240 // 32), ("epoch", 1), ("epoch", 2), ("epoch", 3), ("end", 3)]


def test_epoch_function_drops_the_remainder_and_counts_steps():
    cfg = TrainConfig(batch_size=50, hidden=(4,))
    sizes = (2, 4, 3)
    plan = train.plan_of(cfg, train.RunSpec("softmax_cross_entropy", sizes, 240, 240 // 50, (), True))
    epoch = jax.jit(train.make_epoch(plan))
    state = train.init_state(jax.random.key(0), cfg, sizes, plan.optimizer)
    x, y = jax.device_put(train.host_arrays(SPLITS.train, np.float32))
    state, stats = epoch(jax.random.key(1), state, x, y)
    assert int(state.step) == 4 and bool(stats.finite) and int(stats.bad_step) == -1


def test_train_accuracy_is_recorded_each_eval_epoch(default_run):
    params, history = default_run
    records = history.records()
    assert all(r["train_accuracy"] is not None for r in records)
    # the last epoch's record is the end-of-training accuracy on the whole training set
    assert records[-1]["train_accuracy"] == pytest.approx(jaxmlp.evaluate(params, DEFAULT.train, config=TrainConfig())
                                                          ["accuracy"])
    _, quiet = jaxmlp.fit(dataclasses.replace(SMALL, eval_train=False), SPLITS.train)
    assert all(r["train_accuracy"] is None for r in quiet.records())


def test_track_activations_records_exact_dead_fractions_and_grad_norms():
    from jaxmlp import metrics

    config = dataclasses.replace(SMALL, track_activations=True, eval_every=2, hidden=(100, 100))
    params, history = jaxmlp.fit(config, SPLITS.train)
    records = history.records()
    assert records[0].get("dead_fraction") is None and records[1]["dead_fraction"] is not None  # eval epochs 2, 3
    expected = jaxmlp.dataset_activation_stats(params, jnp.asarray(SPLITS.train.x), activation="relu")
    np.testing.assert_allclose(records[-1]["dead_fraction"], expected["dead_fraction"])
    _, grads = loss_and_grad(params, jnp.asarray(SPLITS.train.x), jnp.asarray(SPLITS.train.y))
    np.testing.assert_allclose(records[-1]["grad_norm"], metrics.layer_grad_norms(grads), rtol=1e-4)
    assert len(records[-1]["grad_norm"]) == 3


@pytest.mark.parametrize("accumulate", [1, 2])
def test_per_process_feed_trains_the_same_run_and_the_training_set_is_placed_once(accumulate):
    """data_feed per_process (each epoch's minibatches gathered on the host and sent) trains the
    same run as the resident feed, evaluations and activation stats included. The resident run
    evaluates the training set from its one device copy; the fed run never places it whole."""
    n, d = SPLITS.train.x.shape
    # evaluation batches of 64 rows hold fewer values than the training set: not counted below
    config = dataclasses.replace(SMALL, accumulate=accumulate, dropout=0.1, track_activations=True, eval_batch_size=64)
    runs, census = {}, {}
    for feed in ("resident", "per_process"):
        alive = jax.live_arrays()  # held, so that no new array can take one of their ids
        before = {id(a) for a in alive}

        class Census(train.Callback):
            def on_epoch_end(self, record, feed=feed):  # (shape, count) of device arrays holding data rows, made by this fit
                census.setdefault(feed, set()).update(collections.Counter(
                    a.shape for a in jax.live_arrays()
                    if id(a) not in before and a.shape[-1:] == (d,) and a.size >= n).items())

        runs[feed] = jaxmlp.fit(dataclasses.replace(config, data_feed=feed), SPLITS.train, SPLITS.val,
                               callbacks=[Census()])
    (p_res, h_res), (p_fed, h_fed) = runs["resident"], runs["per_process"]
    for a, b in zip(jax.tree.leaves(p_res), jax.tree.leaves(p_fed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for split in ("train", "val"):
        assert h_fed.final[split] == pytest.approx(h_res.final[split], rel=1e-6)
    assert h_fed.train_accuracy == h_res.train_accuracy and h_fed.dead_fraction == h_res.dead_fraction
    steps, b = n // SMALL.batch_size, SMALL.batch_size // accumulate
    assert census["resident"] == {((n, d), 1)}  # the training set once: no second copy for evaluation
    fed = dict(census["per_process"])
    assert (steps, accumulate, b, d) in fed and (n, d) not in fed


def test_a_non_finite_last_update_is_caught_at_the_epoch_end():
    """Every loss of the epoch is finite, but its last update poisons the params."""
    cfg = TrainConfig(batch_size=50, hidden=(4,))
    sizes, steps = (2, 4, 3), 240 // 50

    def poison_last_step(updates, count, params=None):
        bad = count == steps - 1
        return jax.tree.map(lambda u: jnp.where(bad, jnp.nan, u), updates), count + 1

    optimizer = optax.chain(optax.sgd(0.01),
                            optax.GradientTransformation(lambda params: jnp.zeros((), jnp.int32), poison_last_step))
    plan = train.plan_of(cfg, train.RunSpec("softmax_cross_entropy", sizes, 240, steps, (), True))
    epoch = jax.jit(train.make_epoch(plan._replace(optimizer=optimizer, schedule=optax.constant_schedule(0.01))))
    state = train.init_state(jax.random.key(0), cfg, sizes, optimizer)
    x, y = jax.device_put(train.host_arrays(SPLITS.train, np.float32))
    _, stats = epoch(jax.random.key(1), state, x, y)
    assert not bool(stats.finite) and int(stats.bad_step) == steps - 1
    assert np.isfinite(float(stats.loss))  # the losses themselves never went bad
