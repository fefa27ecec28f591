"""Checkpoints: exact tree round trip, bit-identical resume, kill -9 safety, npz export, run dirs."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jaxmlp
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp import checkpoint, export, restore, training as train
from jaxmlp.checkpoint import Checkpointer, RunDirError
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.mlp import Layer, init_mlp

SPLITS = load_dataset("spiral", val_fraction=0.2)


def leaves_equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _state(config: TrainConfig, sizes, seed=0):
    _, optimizer = train.build_optimizer(config, 7)
    state = train.init_state(jax.random.key(seed), config, sizes, optimizer)
    return state, train.abstract_state(config, sizes, optimizer)


@pytest.mark.parametrize("activation", ["relu", "prelu", "maxout"])
def test_round_trip_keeps_the_exact_tree(tmp_path, activation):
    cfg = TrainConfig(activation=activation, optimizer="adamw", weight_decay=1e-3, clip_norm=1.0)
    sizes = (2, 5, 4, 3)
    state, abstract = _state(cfg, sizes)
    best = jax.tree.map(lambda a: a + 1, state.params)
    key_data = jax.random.key_data(jax.random.key(42))
    ckpt = Checkpointer(tmp_path)
    ckpt.save(3, state, key_data, {"epoch": 3, "note": [1.5, None]}, best=best)
    restored = Checkpointer(tmp_path).restore(abstract, abstract_best=abstract.params)
    assert leaves_equal(restored.state, state)  # params (None leaves included), optax state, step
    assert leaves_equal(restored.best, best)
    assert np.array_equal(restored.key_data, key_data)
    assert restored.meta["note"] == [1.5, None] and restored.meta["has_best"]
    if activation != "prelu":
        assert all(layer.alpha is None for layer in restored.state.params)
    ckpt.close()


def test_keeps_the_last_n_and_ignores_leftover_tmp_dirs(tmp_path):
    cfg = TrainConfig()
    state, abstract = _state(cfg, (2, 3, 3))
    ckpt = Checkpointer(tmp_path, max_to_keep=2)
    key_data = jax.random.key_data(jax.random.key(0))
    for epoch in (1, 2, 3):
        ckpt.save(epoch, state._replace(step=jnp.int32(epoch)), key_data, {"epoch": epoch})
    assert ckpt.all_epochs() == [2, 3]
    # What a kill mid-save leaves behind: a half-written tmp directory for a newer step.
    junk = tmp_path / "4.orbax-checkpoint-tmp-1234567890"
    (junk / "state").mkdir(parents=True)
    (junk / "state" / "garbage").write_bytes(b"\x00" * 10)
    fresh = Checkpointer(tmp_path, max_to_keep=2)
    assert fresh.latest_epoch() == 3
    assert int(fresh.restore(abstract).state.step) == 3
    assert fresh.read_meta()["epoch"] == 3
    with pytest.raises(RunDirError, match="no checkpoint for epoch 4"):
        fresh.restore(abstract, 4)
    ckpt.close()
    fresh.close()


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="no complete checkpoint"):
        Checkpointer(tmp_path / "empty").read_meta()


def test_resume_is_bit_identical_to_a_straight_run(tmp_path):
    """4 epochs straight == 2 epochs, checkpoint, restore in a fresh fit, 2 more epochs."""
    cfg = TrainConfig(epochs=4, dropout=0.1, activation="prelu", optimizer="adamw", weight_decay=1e-3,
                      checkpoint_every=1, restore_best=True)
    straight, h_straight = jaxmlp.fit(cfg, SPLITS.train, SPLITS.val)

    ckpt = Checkpointer(tmp_path / "checkpoints")
    jaxmlp.fit(dataclasses.replace(cfg, epochs=2), SPLITS.train, SPLITS.val, checkpointer=ckpt)
    assert ckpt.latest_epoch() == 2
    ckpt.close()
    ckpt = Checkpointer(tmp_path / "checkpoints")
    resumed, h_resumed = jaxmlp.fit(cfg, SPLITS.train, SPLITS.val, checkpointer=ckpt, resume=True)
    assert leaves_equal(resumed, straight)
    assert h_resumed.epoch == [1, 2, 3, 4]
    assert h_resumed.train_loss == h_straight.train_loss and h_resumed.val_loss == h_straight.val_loss
    assert h_resumed.best_epoch == h_straight.best_epoch
    ckpt.close()

    # The run dir API reads the same params back (the best ones, since restore_best=True).
    checkpoint.write_config(tmp_path, cfg)
    params, saved, meta = restore.restore_params(tmp_path)
    assert leaves_equal(params, resumed) and meta["epoch"] == 4
    assert saved == cfg.with_auto_resolved(len(SPLITS.train), len(SPLITS.val))  # the auto settings as the run decided them
    last, _, _ = restore.restore_params(tmp_path, best=False)
    assert jax.tree.structure(last) == jax.tree.structure(resumed)


# --- kill -9 at several points, then resume ----------------------------------------------------------
EPOCHS = 12
KILL_ARGS = ["--epochs", str(EPOCHS), "--checkpoint-every", "1", "--keep-checkpoints", "3", "--quiet", "--no-plots"]


@pytest.fixture(scope="module")
def reference_params():
    """What an uninterrupted `jaxmlp train <KILL_ARGS>` ends with (fit is the CLI's numeric core)."""
    splits = load_dataset("spiral")
    params, _ = jaxmlp.fit(TrainConfig(epochs=EPOCHS), splits.train, splits.val, splits.test)
    return params


def _complete(ckpt_dir: Path) -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())
    except FileNotFoundError:
        return []


def _saving(ckpt_dir: Path, after: int) -> bool:
    try:
        return any(".orbax-checkpoint-tmp" in n and int(n.split(".")[0]) > after for n in os.listdir(ckpt_dir))
    except (FileNotFoundError, ValueError):
        return False


@pytest.mark.parametrize("when", ["checkpoint-1", "checkpoint-2", "checkpoint-3", "during-save"])
def test_sigkill_then_resume_gives_identical_params(tmp_path, when, reference_params, child_env):
    run_dir = tmp_path / "run"
    ckpt_dir = run_dir / checkpoint.CHECKPOINT_DIR
    cmd = [sys.executable, "-m", "jaxmlp.cli", "train"]
    proc = subprocess.Popen([*cmd, "--out-dir", str(run_dir), *KILL_ARGS], cwd=tmp_path, env=child_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rng = random.Random(f"jaxmlp-{when}")
    if when == "during-save":
        condition = lambda: _saving(ckpt_dir, after=3)  # noqa: E731
    else:
        n = int(when.split("-")[1])
        condition = lambda: n in _complete(ckpt_dir)  # noqa: E731
    deadline = time.monotonic() + 240
    while proc.poll() is None and not condition():
        assert time.monotonic() < deadline, "the child never reached the kill point"
        time.sleep(0.001)
    if when == "during-save":
        time.sleep(rng.uniform(0.0, 0.03))  # a random moment inside the save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the child finished before the kill: {proc.stderr.read()!r}"
    proc.stderr.close()

    # Whatever the kill left behind, the latest complete checkpoint loads.
    complete = _complete(ckpt_dir)
    assert complete and complete[-1] < EPOCHS
    leftovers = [int(n.split(".")[0]) for n in os.listdir(ckpt_dir) if ".orbax-checkpoint-tmp" in n]
    assert all(step > complete[-1] for step in leftovers)  # a half-written save is never "complete"
    print(f"killed at {when}: complete {complete}, half-written {leftovers}")
    params, _, meta = restore.restore_params(run_dir)
    assert meta["epoch"] == complete[-1]
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(params))

    done = subprocess.run([*cmd, "--resume", str(run_dir), "--quiet", "--no-plots"], cwd=tmp_path, env=child_env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    final, _, meta = restore.restore_params(run_dir)
    assert meta["epoch"] == EPOCHS
    assert not [n for n in os.listdir(ckpt_dir) if ".orbax-checkpoint-tmp" in n]  # the trainer cleaned up
    assert leaves_equal(final, reference_params)
    epochs = [r["epoch"] for r in checkpoint.read_metrics(run_dir / checkpoint.METRICS_FILE)]
    assert epochs == list(range(1, EPOCHS + 1))  # no duplicated or missing lines after the resume


# --- npz export -------------------------------------------------------------------------------
def test_export_npz_plain_arrays_round_trip(tmp_path):
    params = init_mlp(jax.random.key(0), (3, 5, 5, 2), activation="prelu", alpha=0.1)
    out = tmp_path / "model.npz"
    export.export_npz(out, params, activation="prelu", activation_options={"alpha": 0.1})
    with np.load(out, allow_pickle=False) as f:
        assert set(f.files) == {"layer0_W", "layer0_b", "layer0_alpha", "layer1_W", "layer1_b", "layer1_alpha",
                                "layer2_W", "layer2_b", "sizes", "activation", "activation_options"}
        assert all(f[k].dtype != object for k in f.files)
        assert f["sizes"].tolist() == [3, 5, 5, 2] and str(f["activation"]) == "prelu"
    loaded, activation, options = export.load_npz(out)
    assert activation == "prelu" and options == {"alpha": 0.1}
    assert leaves_equal(loaded, [Layer(*map(lambda a: None if a is None else np.asarray(a), p)) for p in params])
    assert not [p for p in tmp_path.iterdir() if p.name != "model.npz"]  # no tmp file left


# --- run directories ------------------------------------------------------------------------------
def test_read_config_errors(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        checkpoint.read_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 0}))
    with pytest.raises(RunDirError, match="epochs must be >= 1"):
        checkpoint.read_config(tmp_path)


def test_metrics_log_reset_and_append(tmp_path):
    log = checkpoint.MetricsLog(tmp_path / "metrics.jsonl")
    for e in (1, 2, 3):
        log.append({"epoch": e})
    log.reset([{"epoch": 1}])  # a resume from epoch 1 drops the lines after it
    log.append({"epoch": 2})
    assert checkpoint.read_metrics(tmp_path / "metrics.jsonl") == [{"epoch": 1}, {"epoch": 2}]
