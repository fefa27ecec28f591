"""The streamed feed (training/stream.py): a run whose rows are read on the host chunk by chunk
equals the resident run bit for bit (params, every record, the final evaluation), for both
gradient methods, across chunk edges, on 8 forced devices and across a mid-epoch kill -9."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxmlp
from jaxmlp import TrainConfig
from jaxmlp.data import DataError
from jaxmlp.data.manifest import ShardWriter
from jaxmlp.training import memory
from jaxmlp.training import plan as plan_module
from jaxmlp.training.plan import plan_run
from jaxmlp.training.stream import chunk_bounds

SPIRAL = jaxmlp.load_dataset("spiral", n_samples=600, val_fraction=0.2, seed=0)
# 480 training rows, batch 16: 30 steps an epoch; dropout makes every step's key matter
BASE = TrainConfig(hidden=(32,), epochs=3, batch_size=16, dropout=0.1, optimizer="adam", learning_rate=1e-2,
                   checkpoint_every=0)


def write_shards(directory, splits, fmt: str = "npy", rows_per_shard: int = 100):
    """`splits` (a DataSplits in memory) as a sharded data set on disk; its directory."""
    with ShardWriter(directory, format=fmt, rows_per_shard=rows_per_shard, num_classes=splits.train.num_classes) as w:
        for name in ("train", "val", "test"):
            if getattr(splits, name) is not None:
                w.append(name, getattr(splits, name).x, getattr(splits, name).y)
    return directory


@pytest.fixture(scope="module")
def spiral_on_disk(tmp_path_factory):
    """SPIRAL as npy and arrayrecord shards of 100 rows (the last of each split shorter)."""
    root = tmp_path_factory.mktemp("spiral")
    return {fmt: write_shards(root / fmt, SPIRAL, fmt) for fmt in ("npy", "arrayrecord")}


def same_run(a, b) -> None:
    """Two fits' (params, history) are equal bit for bit, but for their timings."""
    (pa, ha), (pb, hb) = a, b
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_array_equal(x, y)
    untimed = [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_sec")} for r in ha.records()]
    assert untimed == [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_sec")} for r in hb.records()]
    assert ha.final == hb.final


def chunks_of(steps: int, config: TrainConfig, data, monkeypatch) -> None:
    """Streamed epochs of `config` on `data` cut into chunks of `steps` steps."""
    spec = plan_run(config, data).spec
    monkeypatch.setattr(memory, "CHUNK_BYTES", steps * config.batch_size * memory.example_bytes(config, spec))


@pytest.mark.parametrize("grad_method", ["autodiff", "manual"])
@pytest.mark.parametrize("fmt", ["npy", "arrayrecord"])
def test_streamed_from_disk_equals_resident_bit_for_bit(fmt, grad_method, spiral_on_disk, monkeypatch):
    """Chunks of 7 steps (30 = 4 x 7 + 2: edges inside the epoch and a short last chunk), read
    from shards of 100 rows; standardized by the manifest's statistics as in memory."""
    config = dataclasses.replace(BASE, grad_method=grad_method)
    streamed = dataclasses.replace(config, data_feed="stream")
    chunks_of(7, config, SPIRAL.train, monkeypatch)
    assert plan_run(streamed, SPIRAL.train).chunk_steps == 7
    disk = jaxmlp.load_dataset(f"{fmt}:{spiral_on_disk[fmt]}", standardize=True)
    assert type(disk.train).__name__ == "StreamedDataset"
    in_memory = jaxmlp.load_dataset("spiral", n_samples=600, val_fraction=0.2, seed=0, standardize=True)
    same_run(jaxmlp.fit(config, *in_memory), jaxmlp.fit(streamed, *disk))


def test_a_set_on_disk_that_fits_trains_resident_and_one_that_does_not_streams(spiral_on_disk, monkeypatch):
    """data_feed auto: the rows of a set on disk are read into memory when they fit, and
    streamed when the device (or the host) could not hold them; the same run either way."""
    disk = jaxmlp.load_dataset(f"npy:{spiral_on_disk['npy']}")
    assert plan_run(BASE, disk.train).feed == "resident"
    resident = jaxmlp.fit(BASE, *disk)
    monkeypatch.setattr(plan_module, "host_memory_available", lambda: disk.train.nbytes)  # the host holds a copy too
    assert plan_run(BASE, disk.train).config.data_feed == "stream"
    same_run(resident, jaxmlp.fit(BASE, *disk))


def test_a_shard_changed_while_training_ends_the_run_at_the_next_epoch(tmp_path):
    """Every streamed epoch first checks each shard's size and mtime against the start."""
    directory = write_shards(tmp_path / "set", SPIRAL)
    disk = jaxmlp.load_dataset(f"npy:{directory}")

    class Touch(jaxmlp.training.Callback):
        def on_epoch_end(self, record):
            os.utime(directory / "train-00002.x.npy", ns=(1, 1))

    with pytest.raises(DataError, match="train-00002.x.npy") as raised:
        jaxmlp.fit(dataclasses.replace(BASE, data_feed="stream"), *disk, callbacks=[Touch()])
    assert "\n" not in str(raised.value)


def test_mnist_subset_streamed_from_npy_shards_equals_resident(mnist_splits, tmp_path, monkeypatch):
    """784-64-10 on 2,048 MNIST images, 1 epoch at batch 64 with dropout, chunks of 5 steps."""
    subset = jaxmlp.data.DataSplits(mnist_splits.train.subset(np.arange(2048)), None,
                                    mnist_splits.test.subset(np.arange(1000)))
    disk = jaxmlp.load_dataset(f"npy:{write_shards(tmp_path / 'mnist', subset, rows_per_shard=500)}")
    for grad_method in ("autodiff", "manual"):
        config = TrainConfig(hidden=(64,), epochs=1, batch_size=64, dropout=0.2, grad_method=grad_method,
                             checkpoint_every=0)
        chunks_of(5, config, subset.train, monkeypatch)
        same_run(jaxmlp.fit(config, *subset), jaxmlp.fit(dataclasses.replace(config, data_feed="stream"), *disk))


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
disk = jaxmlp.load_dataset("npy:" + sys.argv[2])
config = TrainConfig(**json.loads(sys.argv[1]))
out = {}
for feed, data in (("resident", splits), ("stream", disk)):
    params, history = jaxmlp.fit(dataclasses.replace(config, data_feed=feed), *data)
    out[feed] = dict(params=[np.asarray(a).tobytes().hex() for a in jax.tree.leaves(params)],
                     loss=[r["train_loss"] for r in history.records()], final=history.final)
print("RESULT " + json.dumps(dict(devices=jax.device_count(), **out)))
"""


@pytest.mark.parametrize("grad_method", ["autodiff", "manual"])
def test_streamed_equals_resident_on_eight_devices(grad_method, child_env, spiral_on_disk):
    """Each minibatch split over 8 forced host devices: the chunks read from disk are fed
    split as the resident epoch's minibatches are gathered split."""
    config = dict(hidden=[32], epochs=2, batch_size=48, dropout=0.1, optimizer="adam", learning_rate=0.01,
                  checkpoint_every=0, devices=8, grad_method=grad_method)
    env = dict(child_env, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, json.dumps(config), str(spiral_on_disk["npy"])],
                          env=env, capture_output=True,
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


def test_two_processes_streaming_equal_one_and_each_reads_only_its_rows(tmp_path, spiral_on_disk):
    """2 gloo processes x 4 devices stream the spiral from npy shards: each process reads only
    its half of every minibatch from disk; the run equals their resident run bit for bit and
    the 1-process run to the all-reduce's summation order."""
    from test_parallel import TOL, WORKER, as_layers, free_port, max_rel_err, ok, parse_result, reference, worker_env

    port = free_port()
    config = dict(dataset=f"npy:{spiral_on_disk['npy']}", batch_size=48, epochs=2, optimizer="momentum",
                  learning_rate=0.1, hidden=(32,), dropout=0.1, checkpoint_every=0, eval_train=False, devices=0)
    dist = dict(coordinator=f"127.0.0.1:{port}", num_processes=2, timeout=90)
    procs = [subprocess.Popen([sys.executable, str(WORKER), json.dumps(
        {"jobs": [{"kind": "fit", "config": dict(config, data_feed=feed)} for feed in ("stream", "resident")],
         "distributed": dict(dist, process_id=pid)})], cwd=tmp_path, env=worker_env(4), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for pid in range(2)]
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=240)
            assert p.returncode == 0, stderr[-3000:]
            outs.append(parse_result(stdout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    steps = len(SPIRAL.train) // 48  # 10 steps an epoch, one chunk each
    single = reference(dict(config, devices=1, data_feed="stream"), data=jaxmlp.load_dataset(config["dataset"]).train)
    for result in outs:
        streamed, resident = ok(result["results"][0]), ok(result["results"][1])
        assert streamed["params"] == resident["params"] and streamed["final"] == resident["final"]
        assert max_rel_err(as_layers(streamed["params"]), single) < TOL
        chunks = [shape for shape in streamed["reads"] if len(shape) == 3]  # (k, K, rows of each minibatch)
        assert chunks == [[steps, 1, 24]] * 2  # its 24 of every 48 rows, one chunk an epoch


def test_predict_and_evaluate_read_a_set_on_disk_block_by_block(spiral_on_disk, monkeypatch):
    """Blocks of 64 rows (600 = 9 x 64 + 24): the scores and the metrics of the rows in memory."""
    from jaxmlp.training import predict as predict_module

    monkeypatch.setattr(predict_module, "PREDICT_ROWS", 64)
    params, _ = jaxmlp.fit(dataclasses.replace(BASE, epochs=1), SPIRAL.train)
    disk = jaxmlp.load_dataset(f"npy:{spiral_on_disk['npy']}")
    np.testing.assert_array_equal(jaxmlp.predict(params, disk.test, batch_size=50),
                                  jaxmlp.predict(params, SPIRAL.test.x, batch_size=50))
    assert jaxmlp.evaluate(params, disk.test, batch_size=50) == jaxmlp.evaluate(params, SPIRAL.test, batch_size=50)


def test_the_cli_ends_a_run_whose_data_changed_in_one_line_exit_2_keeping_its_checkpoint(tmp_path, monkeypatch,
                                                                                           capsys):
    """The shard is touched once epoch 1 has run; epoch 2's check ends the run: one line naming
    the file and the checkpoint of epoch 1, which stays resumable."""
    from jaxmlp import cli
    from jaxmlp.training import fit as fit_module

    directory = write_shards(tmp_path / "set", SPIRAL)
    streamed_epoch = fit_module.stream_epoch

    def then_touch(*args, **kwargs):
        out = streamed_epoch(*args, **kwargs)
        os.utime(directory / "train-00001.x.npy", ns=(1, 1))
        return out

    monkeypatch.setattr(fit_module, "stream_epoch", then_touch)
    run_dir = tmp_path / "run"
    code = cli.main(["train", "--dataset", f"npy:{directory}", "--data-feed", "stream", "--epochs", "3",
                     "--checkpoint-every", "1", "--out-dir", str(run_dir), "--quiet", "--no-plots"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "train-00001.x.npy: shard file changed since the data set was opened" in err
    assert "the last complete checkpoint is epoch 1" in err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["1"]
