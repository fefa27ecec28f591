"""`jaxmlp train --track-gradients` and `--audit-every`: the tracked step, the per-epoch
columns, the plot, the live audit catching a broken derivative, and the bad-input errors."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import activations, checkpoint, cli, loss_and_grad, restore
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.gradcheck import random_problem, relative_error
from jaxmlp.gradstats import gradient_stats
from jaxmlp.mlp import init_mlp
from jaxmlp import fit
from jaxmlp.training.gradtrack import PERCENTILES, make_tracked_step, start_track, track_summary
from jaxmlp.training.plan import RunSpec, plan_of

QUIET = ["--quiet", "--no-plots"]
SPIRAL = load_dataset("spiral")


def one_line_error(capsys, needle: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    return err


def test_tracked_step_is_the_manual_step_plus_statistics():
    config = TrainConfig(hidden=(8,), activation="prelu", dropout=0.3, l2=0.01, batch_size=16, track_gradients=True)
    sizes = (2, 8, 3)
    params = init_mlp(jax.random.key(0), sizes, activation="prelu")
    x, y = random_problem(jax.random.key(1), sizes, "softmax_cross_entropy", 16, jnp.float32)
    key = jax.random.key(2)
    plan = plan_of(config, RunSpec("softmax_cross_entropy", sizes, 16, 1, (), True))
    tracked = jax.jit(make_tracked_step(plan))
    value, grads, track = tracked(start_track(config, steps=3), 1, params, x[None], y[None], key)
    want_value, want_grads = loss_and_grad(params, x, y, activation="prelu", l2=0.01, dropout=0.3, key=key,
                                           method="manual")
    assert relative_error(value, want_value) <= 1e-6
    assert max(jax.tree.leaves(jax.tree.map(relative_error, grads, want_grads))) <= 1e-5
    _, stats = gradient_stats(params, x, y, activation="prelu", dropout=0.3, key=key)
    np.testing.assert_allclose(track.example_norms[1], jnp.sqrt(stats.sq_norm), rtol=1e-5)
    assert float(jnp.max(jnp.abs(track.example_norms[0]))) == 0.0  # only step 1's row is written

    summary = track_summary(track)
    norms = np.asarray(track.example_norms)
    np.testing.assert_allclose(summary["example_grad_norm"], np.percentile(norms, PERCENTILES), rtol=1e-5)
    # one step: the bias-corrected EMAs are that step's unbiased estimates (B_small = 1, B_big = 16)
    small, big = float(jnp.mean(stats.sq_norm)), sum(float(jnp.sum(g * g)) for g in jax.tree.leaves(stats.grad))
    np.testing.assert_allclose(summary["signal"], (16 * big - small) / 15, rtol=1e-4)
    np.testing.assert_allclose(summary["noise"], (small - big) / (1 - 1 / 16), rtol=1e-4)
    np.testing.assert_allclose(summary["noise_scale"], summary["noise"] / summary["signal"], rtol=1e-6)


def test_fit_records_gradient_columns_and_follows_the_manual_trajectory():
    base = dict(hidden=(16,), epochs=2, batch_size=30, optimizer="sgd", learning_rate=0.1, checkpoint_every=0)
    params, history = fit(TrainConfig(track_gradients=True, **base), SPIRAL.train)
    plain, _ = fit(TrainConfig(grad_method="manual", **base), SPIRAL.train)
    assert max(jax.tree.leaves(jax.tree.map(relative_error, params, plain))) <= 1e-5
    columns = history.gradients[-1]
    assert set(columns) == {"noise_scale", "signal", "noise", "layer_grad_norm", "layer_snr", "example_grad_norm"}
    assert len(columns["layer_grad_norm"]) == 2 and len(columns["layer_snr"]) == 2
    pct = columns["example_grad_norm"]
    assert 0 < pct["p50"] <= pct["p90"] <= pct["p99"] <= pct["max"]
    assert columns["noise"] > 0


def test_cli_tracks_gradients_and_audits_every_epoch(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--epochs", "2", "--hidden", "16", "--track-gradients", "--audit-every", "1",
            "--out-dir", str(run_dir)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("gradient audit after epoch") == 2 and ": ok" in out
    records = checkpoint.read_metrics(run_dir / "metrics.jsonl")
    audit = records[-1]["audit"]
    assert audit["ok"] and set(audit["manual_vs_autodiff"]) == {"0.W", "0.b", "1.W", "1.b"}
    assert audit["worst_manual_vs_autodiff"] <= 1e-4 and audit["worst_autodiff_vs_numeric"] <= 1e-6
    assert records[-1]["gradients"]["layer_grad_norm"][0] > 0
    assert (run_dir / "gradient_stats.png").read_bytes()[:4] == b"\x89PNG"


def _broken_relu_backward(da, z, a, slope=None):
    return jnp.where(z > 0, 0.5 * da, jnp.zeros_like(da)), None  # half the true derivative


def test_audit_flags_a_broken_derivative_and_strict_stops_with_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(activations, "_relu_backward", _broken_relu_backward)
    run_dir = tmp_path / "warn"
    argv = ["train", "--epochs", "2", "--hidden", "16", "--audit-every", "2", "--checkpoint-every", "1", *QUIET]
    assert cli.main([*argv, "--out-dir", str(run_dir)]) == 0  # warns, trains on (jax.grad is right)
    err = capsys.readouterr().err
    assert "warning: gradient audit after epoch 2" in err and "ABOVE TOLERANCE" in err and "at layer 0" in err
    assert not checkpoint.read_metrics(run_dir / "metrics.jsonl")[-1]["audit"]["ok"]

    strict = tmp_path / "strict"
    assert cli.main([*argv, "--audit-strict", "--out-dir", str(strict)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "gradient audit failed after epoch 2" in err[-1] and "the last complete checkpoint is epoch 1" in err[-1]
    assert restore.restore_params(strict)[2]["epoch"] == 1


@pytest.mark.parametrize("argv,needle", [
    (["--track-gradients", "--accumulate", "2", "--batch-size", "32"], "accumulate must be 1 with track_gradients"),
    (["--track-gradients", "--batch-size", "1"], "batch_size must be >= 2 with track_gradients"),
    (["--track-gradients", "--precision", "bf16"], "precision must be fp32 or highest with track_gradients"),
    (["--audit-every", "-1"], "audit_every must be >= 0"),
    (["--gradient-ema", "1.0"], "gradient_ema must be in [0, 1)"),
    (["--gradient-ema", "0.9"], "gradient_ema must be 0.99 without track_gradients"),
    (["--audit-strict"], "audit_strict must be false without audit_every"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    assert cli.main(["train", *argv, "--out-dir", str(tmp_path / "run"), *QUIET]) == 2
    one_line_error(capsys, needle)
