"""The streamed feed (training/stream.py): a run whose rows are read on the host chunk by chunk
equals the resident run bit for bit (params, every record, the final evaluation), for both
gradient methods, across chunk edges, on 8 forced devices and across a mid-epoch kill -9."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxmlp
from jaxmlp import TrainConfig
from jaxmlp.training import memory
from jaxmlp.training.plan import plan_run
from jaxmlp.training.stream import chunk_bounds

SPIRAL = jaxmlp.load_dataset("spiral", n_samples=600, val_fraction=0.2, seed=0)
# 480 training rows, batch 16: 30 steps an epoch; dropout makes every step's key matter
BASE = TrainConfig(hidden=(32,), epochs=3, batch_size=16, dropout=0.1, optimizer="adam", learning_rate=1e-2,
                   checkpoint_every=0)


def same_run(a, b) -> None:
    """Two fits' (params, history) are equal bit for bit, but for their timings."""
    (pa, ha), (pb, hb) = a, b
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_array_equal(x, y)
    untimed = [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_sec")} for r in ha.records()]
    assert untimed == [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_sec")} for r in hb.records()]
    assert ha.final == hb.final


@pytest.fixture
def seven_step_chunks(monkeypatch):
    """Chunks of 7 steps (30 = 7 + 7 + 7 + 7 + 2): edges inside the epoch, and a short last chunk."""
    monkeypatch.setattr(memory, "CHUNK_BYTES", 7 * BASE.batch_size * memory.example_bytes(BASE, plan_run(
        BASE, SPIRAL.train).spec))


@pytest.mark.parametrize("grad_method", ["autodiff", "manual"])
def test_streamed_equals_resident_bit_for_bit(grad_method, seven_step_chunks):
    config = dataclasses.replace(BASE, grad_method=grad_method)
    streamed = dataclasses.replace(config, data_feed="stream")
    assert plan_run(streamed, SPIRAL.train).chunk_steps == 7
    same_run(jaxmlp.fit(config, *SPIRAL), jaxmlp.fit(streamed, *SPIRAL))


def test_chunk_bounds_cut_at_k_and_at_every_checkpoint_step():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(10, 4, start=3) == [(3, 7), (7, 10)]
    # global steps 20..29 of epoch 2 (step0 = 20): a checkpoint every 6 steps falls at 24 -> position 4
    assert chunk_bounds(10, 4, every=6, step0=20) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(10, 5, every=3, step0=0) == [(0, 3), (3, 5), (5, 6), (6, 9), (9, 10)]
    assert chunk_bounds(10, 100) == [(0, 10)]


def test_settings_the_stream_cannot_serve_are_refused_in_one_line():
    with pytest.raises(ValueError, match="adaptive_batch"):
        plan_run(dataclasses.replace(BASE, data_feed="stream", adaptive_batch=True), SPIRAL.train)
    with pytest.raises(ValueError, match="checkpoint_every_steps .* needs data_feed stream"):
        plan_run(dataclasses.replace(BASE, checkpoint_every_steps=5), SPIRAL.train)


EIGHT_DEVICES = """
import dataclasses, json, sys
import jax, numpy as np, jaxmlp
from jaxmlp import TrainConfig
splits = jaxmlp.load_dataset("spiral", n_samples=600, val_fraction=0.2, seed=0)
config = TrainConfig(**json.loads(sys.argv[1]))
out = {}
for feed in ("resident", "stream"):
    params, history = jaxmlp.fit(dataclasses.replace(config, data_feed=feed), *splits)
    out[feed] = dict(params=[np.asarray(a).tobytes().hex() for a in jax.tree.leaves(params)],
                     loss=[r["train_loss"] for r in history.records()], final=history.final)
print("RESULT " + json.dumps(dict(devices=jax.device_count(), **out)))
"""


@pytest.mark.parametrize("grad_method", ["autodiff", "manual"])
def test_streamed_equals_resident_on_eight_devices(grad_method, child_env):
    """Each minibatch split over 8 forced host devices: the chunks are fed split as the
    resident epoch's minibatches are gathered split."""
    config = dict(hidden=[32], epochs=2, batch_size=48, dropout=0.1, optimizer="adam", learning_rate=0.01,
                  checkpoint_every=0, devices=8, grad_method=grad_method)
    env = dict(child_env, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, json.dumps(config)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["devices"] == 8
    assert result["stream"] == result["resident"]


def test_a_mid_epoch_kill_then_resume_is_bit_identical(tmp_path, child_env):
    """SIGKILL once a mid-epoch checkpoint is on disk, then --resume: the same params and the
    same metrics (but for timings) as the run never interrupted."""
    from conftest import kill_when
    from jaxmlp.checkpoint import read_metrics
    from jaxmlp.restore import restore_params

    args = ["--dataset", "spiral", "--n-samples", "600", "--batch-size", "16", "--epochs", "12", "--dropout", "0.1",
            "--data-feed", "stream", "--checkpoint-every-steps", "7", "--checkpoint-every", "0", "--quiet",
            "--no-plots"]
    cmd = [sys.executable, "-m", "jaxmlp.cli", "train", *args]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run([*cmd, "--out-dir", str(straight)], env=child_env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen([*cmd, "--out-dir", str(killed)], env=child_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    steps = killed / "step_checkpoints"
    kill_when(proc, lambda: steps.is_dir() and any(p.name.isdigit() for p in steps.iterdir()),
              "saved a mid-epoch checkpoint")
    saved = max(int(p.name) for p in steps.iterdir() if p.name.isdigit())
    assert saved % 37 and not (killed / "checkpoints").exists()  # 37 steps an epoch: it died inside one
    done = subprocess.run([sys.executable, "-m", "jaxmlp.cli", "train", "--resume", str(killed), "--quiet",
                           "--no-plots"], env=child_env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr

    def untimed(run):
        return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_sec")}
                for r in read_metrics(run / "metrics.jsonl")]

    assert untimed(killed) == untimed(straight)
    for a, b in zip(jax.tree.leaves(restore_params(killed)[0]), jax.tree.leaves(restore_params(straight)[0]), strict=True):
        np.testing.assert_array_equal(a, b)
