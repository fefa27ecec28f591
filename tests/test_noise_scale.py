"""The gradient noise scale: the estimator is unbiased on a problem solved in closed form, the
EMA is bias-corrected, and the suggested batch range follows B_simple.

Closed form: a linear model s = w·x + b on x ~ N(0, I_d), y = w*·x + ε with ε ~ N(0, σ²), the
per-example loss ℓ = (s − y)² (jaxmlp's mean_squared_error with one output), at b = 0 and
e = w − w*. Then g_w = 2 r x and g_b = 2 r with r = e·x − ε, and (Isserlis for E[(e·x)² ‖x‖²])

    |G|² = 4 ‖e‖²        tr(Σ) = 4 ((d + 2) ‖e‖² + (d + 1) σ²)
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import cli, get_activation, get_loss, init_mlp
from jaxmlp.gradcheck import random_problem
from jaxmlp.gradstats import gradient_stats
from jaxmlp.metrics import layer_grad_norms
from jaxmlp.mlp import Layer
from jaxmlp.noise_scale import (NoiseEstimate, dataset_estimate, dataset_sums, ema_estimate, ema_start, ema_update,
                                noise_scale, per_example_estimate, suggested_batch_range, sums_estimate,
                                two_batch_estimate)

D, SIGMA = 4, 0.5
W_STAR = jnp.array([1.0, -0.5, 0.25, 0.0])
E = jnp.array([0.6, 0.0, -0.8, 0.0])  # ‖e‖ = 1
TRUE = NoiseEstimate(4.0, 4.0 * ((D + 2) + (D + 1) * SIGMA ** 2))
BATCHES = {8: 20000, 64: 5000}  # batch size -> batches averaged


def batch_estimates(key, batch: int, count: int) -> tuple[NoiseEstimate, jax.Array]:
    """The per-batch estimates of `count` random batches, and the naive ‖ḡ‖² of each."""
    params = [Layer((W_STAR + E)[:, None], jnp.zeros(1))]

    def one(k):
        kx, ke = jax.random.split(k)
        x = jax.random.normal(kx, (batch, D))
        y = x @ W_STAR + SIGMA * jax.random.normal(ke, (batch,))
        _, stats = gradient_stats(params, x, y[:, None], loss="mean_squared_error", activation="identity")
        batch_sq = jnp.sum(layer_grad_norms(stats.grad) ** 2)
        return per_example_estimate(jnp.mean(stats.sq_norm), batch_sq, batch), batch_sq

    return jax.jit(jax.vmap(one))(jax.random.split(key, count))


@pytest.mark.parametrize("batch", list(BATCHES))
def test_the_estimator_is_unbiased_on_a_closed_form_problem(batch):
    count = BATCHES[batch]
    estimates, naive = batch_estimates(jax.random.key(batch), batch, count)
    for got, want in zip(estimates, TRUE):
        got = np.asarray(got, np.float64)
        assert got.std() / np.sqrt(count) < 0.015 * want  # the average is precise enough to judge
        assert abs(got.mean() / want - 1) < 0.05
    b_simple = float(noise_scale(NoiseEstimate(*(np.mean(np.asarray(v, np.float64)) for v in estimates))))
    assert abs(b_simple / (TRUE.noise / TRUE.signal) - 1) < 0.05
    # ‖ḡ‖² alone is biased by tr(Σ) / B: the test tells the two apart
    assert np.mean(np.asarray(naive, np.float64)) / TRUE.signal - 1 > 0.05 * 64 / batch


def test_two_batch_formula_and_its_bad_input():
    # E‖G_B‖² = |G|² + tr(Σ) / B exactly: the formula inverts it for any pair of batch sizes
    signal, noise = 3.0, 40.0
    est = two_batch_estimate(signal + noise / 4, signal + noise / 32, 4, 32)
    np.testing.assert_allclose([est.signal, est.noise], [signal, noise], rtol=1e-6)
    with pytest.raises(ValueError, match="b_small < b_big"):
        two_batch_estimate(1.0, 1.0, 8, 8)
    assert float(noise_scale(NoiseEstimate(jnp.array(-1.0), jnp.array(2.0)))) == np.inf


def test_ema_is_bias_corrected_and_separate():
    ema = ema_start((2,))
    for _ in range(3):  # three steps of a constant estimate: the corrected EMA is that constant
        ema = ema_update(ema, NoiseEstimate(jnp.array([1.0, 2.0]), jnp.array([10.0, 30.0])), beta=0.9)
    got = ema_estimate(ema)
    np.testing.assert_allclose(got.signal, [1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(got.noise, [10.0, 30.0], rtol=1e-6)
    ema = ema_update(ema, NoiseEstimate(jnp.array([0.0, 0.0]), jnp.array([0.0, 0.0])), beta=0.9)
    assert float(ema_estimate(ema).signal[0]) < 1.0  # a new estimate moves it


def test_suggested_batch_range():
    assert suggested_batch_range(300.0) == (128, 1024)
    assert suggested_batch_range(1.5) == (1, 4)
    assert suggested_batch_range(float("inf")) is None
    assert suggested_batch_range(-3.0) is None
    assert suggested_batch_range(300.0, limit=300) == (128, 256)


def _reference_estimate(params, x, y) -> tuple[np.ndarray, np.ndarray]:
    """(|G|², tr(Σ)) per layer, in float64, outside jaxmlp's code: per-example gradients of a
    hand-written tanh MLP with a multiclass hinge, from jax.vmap(jax.grad), reduced in numpy."""
    def example_loss(layers, xi, yi):
        h = xi
        for i, (W, b) in enumerate(layers):
            h = h @ W + b if i == len(layers) - 1 else jnp.tanh(h @ W + b)
        return jnp.sum(jnp.where(jnp.arange(h.shape[0]) != yi, jnp.maximum(h - h[yi] + 1, 0), 0))

    layers = [(layer.W, layer.b) for layer in params]
    grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(layers, x, y)  # leaves (n, *shape)
    per_layer = [[np.asarray(g, np.float64).reshape(len(x), -1) for g in layer] for layer in grads]
    signal = np.array([sum(np.sum(g.mean(axis=0) ** 2) for g in layer) for layer in per_layer])
    mean_sq = np.array([sum(np.mean(np.sum(g ** 2, axis=1)) for g in layer) for layer in per_layer])
    return signal, mean_sq - signal


def test_dataset_estimate_is_exact_over_padded_batches(x64):
    sizes = (3, 5, 4)
    params = init_mlp(jax.random.key(0), sizes, activation="tanh", dtype=jnp.float64)
    x, y = random_problem(jax.random.key(1), sizes, "multiclass_hinge", 23, jnp.float64)
    got = dataset_estimate(params, x, y, None, loss=get_loss("multiclass_hinge"), act=get_activation("tanh"),
                           batch_size=7)  # 4 batches, the last padded
    signal, noise = _reference_estimate(params, x, y)
    assert got.signal.dtype == jnp.float64 and got.noise.dtype == jnp.float64
    np.testing.assert_allclose(got.signal, signal, rtol=1e-12)  # float32 anywhere on the way: ~1e-7
    np.testing.assert_allclose(got.noise, noise, rtol=1e-12)


def test_a_pass_in_blocks_of_whole_batches_equals_one_pass_bit_for_bit():
    """23 rows in blocks of 10, 10 and 3 (batches of 5, each block's first batch counted on, so
    dropout draws the same keys): the sums and the estimate of one pass over all 23."""
    sizes = (3, 5, 4)
    params = init_mlp(jax.random.key(0), sizes, activation="tanh")
    x, y = random_problem(jax.random.key(1), sizes, "softmax_cross_entropy", 23, jnp.float32)
    options = dict(loss=get_loss("softmax_cross_entropy"), act=get_activation("tanh"), dropout=0.3, batch_size=5)
    key = jax.random.key(2)
    whole = dataset_sums(params, x, y, key, **options)
    sums = None
    for start in (0, 10, 20):
        sums = dataset_sums(params, x[start:start + 10], y[start:start + 10], key, sums, start // 5, **options)
    for a, b in zip(jax.tree.leaves(sums), jax.tree.leaves(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(sums.n) == 23
    want = dataset_estimate(params, x, y, key, **options)
    for a, b in zip(sums_estimate(sums), want, strict=True):
        np.testing.assert_array_equal(a, b)
    shifted = dataset_sums(params, x[10:20], y[10:20], key, None, 0, **options)  # batches 0, 1: other dropout keys
    assert not np.array_equal(shifted.sq_sum, dataset_sums(params, x[10:20], y[10:20], key, None, 2, **options).sq_sum)


def test_noise_scale_of_a_set_on_disk_streams_it_and_equals_the_set_in_memory(tmp_path, monkeypatch):
    """The spiral's training rows as npy shards and as an npz: the same numbers, bit for bit,
    the shards read in blocks of 2 batches of 32 and never whole (load() refused), and trained
    streaming (--data-feed stream)."""
    from jaxmlp.data import load_dataset
    from jaxmlp.data.manifest import ShardWriter
    from jaxmlp.data.streamed import StreamedDataset
    from jaxmlp.training import memory

    train = load_dataset("spiral").train  # 300 rows, 2 features
    np.savez(tmp_path / "spiral.npz", x=train.x, y=train.y)
    with ShardWriter(tmp_path / "shards", format="npy", rows_per_shard=64, num_classes=3) as writer:
        writer.append("train", train.x, train.y)
    flags = ["--hidden", "16", "--epochs", "2", "--batch-size", "30", "--dropout", "0.1", "--eval-batch-size", "32",
             "--val-fraction", "0"]
    assert cli.main(["noise-scale", "--dataset", f"npz:{tmp_path / 'spiral.npz'}", *flags,
                     "--json", str(tmp_path / "memory.json")]) == 0
    monkeypatch.setattr(memory, "CHUNK_BYTES", 2 * 32 * 3 * 4)  # 2 batches of 32 rows: 2 float32 features, a label
    monkeypatch.setattr(StreamedDataset, "load", lambda self: pytest.fail("the set on disk was read whole"))
    assert cli.main(["noise-scale", "--dataset", f"npy:{tmp_path / 'shards'}", *flags, "--data-feed", "stream",
                     "--json", str(tmp_path / "disk.json")]) == 0
    in_memory, on_disk = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("memory", "disk"))
    assert in_memory.pop("dataset") != on_disk.pop("dataset")
    assert in_memory == on_disk and on_disk["n_train"] == 300


def test_noise_scale_command_on_flags_and_on_a_run_dir(tmp_path, capsys):
    flags = ["--hidden", "16", "--epochs", "2", "--batch-size", "30"]
    assert cli.main(["noise-scale", *flags, "--json", str(tmp_path / "ns.json")]) == 0
    out = capsys.readouterr().out
    assert "at init" in out and "after 2 epochs" in out and "suggested batch sizes:" in out
    numbers = json.loads((tmp_path / "ns.json").read_text())
    assert numbers["n_train"] == 300 and len(numbers["init"]["layer_b_simple"]) == 2
    assert tuple(numbers["suggested_batch_range"]) == suggested_batch_range(numbers["trained"]["b_simple"], 300)
    run_dir = tmp_path / "run"
    assert cli.main(["train", *flags, "--out-dir", str(run_dir), "--quiet", "--no-plots"]) == 0
    assert cli.main(["noise-scale", str(run_dir), "--json", str(tmp_path / "run.json")]) == 0
    from_run = json.loads((tmp_path / "run.json").read_text())
    assert from_run["init"] == numbers["init"]  # the same seed: the same init
    np.testing.assert_allclose(from_run["trained"]["b_simple"], numbers["trained"]["b_simple"], rtol=1e-6)
    capsys.readouterr()
    assert cli.main(["noise-scale", str(run_dir), "--hidden", "8"]) == 2
    assert "--hidden cannot be combined with RUN_DIR" in capsys.readouterr().err


def _suggestion_line(b_simple: float, n_train: int) -> str:
    from jaxmlp.cli.noise_scale_cmd import _report

    measured = {"b_simple": b_simple, "signal": 1.0, "noise": b_simple, "layer_b_simple": [b_simple]}
    numbers = {"dataset": "spiral", "n_train": n_train, "sizes": [2, 3], "loss": "softmax_cross_entropy",
               "epochs": 1, "init": measured, "trained": measured,
               "suggested_batch_range": suggested_batch_range(b_simple, n_train)}
    return _report(numbers).splitlines()[-1]


def test_a_range_capped_at_the_training_set_says_so():
    assert _suggestion_line(622.0, 300) == (  # was "suggested batch sizes: 256 to 256 (...)", capped silently
        "suggested batch size: 256 (B_simple / 2 to 2 B_simple after training would be 256 to 2048: capped at 256, "
        "the largest power of two within the 300 training examples)")
    assert "capped" not in _suggestion_line(40.0, 300)  # 16 to 128: within the training set
    assert _suggestion_line(40.0, 300).startswith("suggested batch sizes: 16 to 128 (")


@pytest.mark.parametrize("flag", ["--out-dir=x", "--checkpoint-every=2", "--keep-checkpoints=1", "--eval-train",
                                  "--track-gradients", "--audit-every=1"])
def test_run_flags_that_do_not_apply_are_refused_and_not_listed(flag, capsys):
    assert cli.main(["noise-scale", "--epochs", "1", flag]) == 2  # was: accepted and ignored
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag.split('=')[0]} does not apply: noise-scale" in err
    assert cli.main(["noise-scale", "--help"]) == 0
    listed = capsys.readouterr().out
    assert flag.split("=")[0] + " " not in listed and "--hidden HIDDEN" in listed and "--patience" in listed
