"""A streamed sweep (sweeps/stream.py): the spiral read from npy shards in chunks of 7 steps, the
models of a seed sharing one stream; every model equals its solo streamed fit and the resident
sweep bit for bit (CPU, width auto = 1), the set is never read whole, and each chunk of rows is
read once per seed, not once per model; on 8 forced devices, from the CLI, and across a resume."""
from __future__ import annotations

import dataclasses
import os
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxmlp
from jaxmlp import cli, sweep
from jaxmlp.checkpoint import Checkpointer
from jaxmlp.data import DataError
from jaxmlp.data.streamed import StreamedDataset
from jaxmlp.sweeps import sweepdir
from jaxmlp.sweeps.plan import make_plan
from jaxmlp.training import plan as plan_module
from test_stream import BASE, SPIRAL, chunks_of, write_shards

GRID = {"learning_rate": [0.01, 0.03], "seed": [0, 1]}
STREAM = dataclasses.replace(BASE, data_feed="stream")  # 480 rows, batch 16: 30 steps an epoch, dropout 0.1


@pytest.fixture(scope="module")
def npy_dir(tmp_path_factory):
    """SPIRAL as npy shards of 100 rows."""
    return write_shards(tmp_path_factory.mktemp("spiral") / "npy", SPIRAL)


def untimed(history) -> list[dict]:
    """A history's records as a sweep and a fit both keep them: the numbers, not the timings."""
    keys = ("epoch", "train_loss", "lr", "val_loss", "val_accuracy")
    return [{k: r.get(k) for k in keys} for r in history.records()]


def same_model(model, params, history) -> None:
    for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=str(model.overrides))
    assert untimed(model.history) == untimed(history), model.overrides
    assert model.history.final == history.final, model.overrides


@pytest.fixture
def never_whole(monkeypatch):
    return forbid_load(monkeypatch)


def forbid_load(monkeypatch) -> list:
    """StreamedDataset.load fails; returns the index shapes of every rows() call, in order."""
    def load(self):
        raise AssertionError(f"{self.name} was read whole")

    reads, rows = [], StreamedDataset.rows

    def counted(self, indices):
        reads.append(np.shape(indices))
        return rows(self, indices)

    monkeypatch.setattr(StreamedDataset, "load", load)
    monkeypatch.setattr(StreamedDataset, "rows", counted)
    return reads


def test_streamed_sweep_equals_solo_streamed_fits_and_the_resident_sweep(npy_dir, monkeypatch, never_whole):
    chunks_of(7, BASE, SPIRAL.train, monkeypatch)  # 30 = 4 x 7 + 2: five chunks an epoch
    disk = jaxmlp.load_dataset(f"npy:{npy_dir}")
    plan = make_plan(STREAM, GRID, *disk)
    assert plan.streamed and [len(g.members) for g in plan.groups] == [2, 2]  # one group per seed
    assert plan.groups[0].program == plan.groups[1].program  # the same programs: one compile for both seeds
    never_whole.clear()
    streamed = sweep(STREAM, GRID, *disk, keep_params=True)
    chunk_reads = [shape for shape in never_whole if len(shape) == 3]  # (k, K, B / K): training chunks
    # each chunk of rows read once per seed (2) and epoch (3), not once per model (4)
    assert chunk_reads == ([(7, 1, 16)] * 4 + [(2, 1, 16)]) * 2 * 3, chunk_reads
    resident = sweep(BASE, GRID, *SPIRAL, keep_params=True)
    assert len(streamed.models) == len(resident.models) == 4
    for model, twin in zip(streamed.models, resident.models, strict=True):
        assert model.overrides == twin.overrides
        params, history = jaxmlp.fit(model.config, *disk)
        same_model(model, params, history)
        same_model(twin, params, history)
    assert streamed.models[0].history.train_loss != streamed.models[1].history.train_loss  # the seeds differ


def test_a_streamed_sweep_plans_the_chunks_in_flight_not_the_set_and_auto_streams_what_does_not_fit(
        npy_dir, monkeypatch):
    from jaxmlp.sweeps import plan as sweep_plan

    disk, feeds, estimate = jaxmlp.load_dataset(f"npy:{npy_dir}"), [], sweep_plan.estimate_memory
    monkeypatch.setattr(sweep_plan, "estimate_memory", lambda *a, **k: feeds.append(k["feed"]) or estimate(*a, **k))
    assert make_plan(STREAM, GRID, *disk).streamed and feeds == ["stream", "stream"]  # a group per seed
    feeds.clear()
    auto = make_plan(BASE, GRID, *disk)  # fits: read into memory, one group, as before
    assert not auto.streamed and len(auto.groups) == 1 and feeds == ["resident"]
    monkeypatch.setattr(plan_module, "host_memory_available", lambda: disk.train.nbytes)  # the host holds a copy too
    assert make_plan(BASE, GRID, *disk).streamed


def test_a_setting_a_streamed_sweep_cannot_serve_is_refused(npy_dir):
    disk = jaxmlp.load_dataset(f"npy:{npy_dir}")
    with pytest.raises(ValueError, match="checkpoint_every_steps is not supported in a sweep"):
        make_plan(dataclasses.replace(STREAM, checkpoint_every_steps=5), GRID, *disk)


EIGHT = """
import dataclasses, json, sys
import jax, numpy as np, jaxmlp
from jaxmlp import TrainConfig, sweep
from jaxmlp.training import memory
memory.CHUNK_BYTES = 7 * 16 * 3 * 4  # 7 steps of 16 rows of 2 features and a label: five chunks an epoch
disk = jaxmlp.load_dataset("npy:" + sys.argv[1])
config = TrainConfig(hidden=(32,), epochs=2, batch_size=16, dropout=0.1, optimizer="adam", checkpoint_every=0)
grid = {"learning_rate": [0.01, 0.03], "seed": [0, 1]}
out = {"devices": jax.device_count()}
for devices in (8, 1):
    result = sweep(dataclasses.replace(config, data_feed="stream", devices=devices), grid, *disk, keep_params=True)
    out[devices] = [dict(params=[np.asarray(a).tobytes().hex() for a in jax.tree.leaves(m.params)],
                         loss=m.history.train_loss, final=m.history.final) for m in result.models]
print("RESULT " + json.dumps(out))
"""


def test_streamed_sweep_on_eight_devices_equals_one(child_env, npy_dir):
    """The model axis over 8 forced host devices (2 models a seed, padded to 8 each): the chunk
    placed whole on every device; every model as on one device, bit for bit (width auto = 1)."""
    env = dict(child_env, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    done = subprocess.run([sys.executable, "-c", EIGHT, str(npy_dir)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert result["devices"] == 8 and len(result["8"]) == 4
    assert result["8"] == result["1"]


def results_of(out) -> list[dict]:
    rows = [json.loads(line) for line in (out / sweepdir.RESULTS_FILE).read_text().splitlines()]
    return sorted(({k: v for k, v in r.items() if k not in ("seconds", "samples_per_sec")} for r in rows),
                  key=lambda r: (r["model"], r["epoch"]))


def test_cli_streamed_sweep_writes_the_results_of_the_in_memory_sweep(tmp_path, npy_dir, monkeypatch):
    chunks_of(7, BASE, SPIRAL.train, monkeypatch)
    flags = ["--hidden", "32", "--batch-size", "16", "--epochs", "2", "--dropout", "0.1", "--optimizer", "adam",
             "--grid", "learning_rate=0.01,0.03", "--grid", "seed=0:2", "--quiet", "--no-plots"]
    disk = f"npy:{npy_dir}"
    assert cli.main(["sweep", "--dataset", disk, "--data-feed", "resident", *flags, "--out-dir",
                     str(tmp_path / "resident")]) == 0
    reads = forbid_load(monkeypatch)  # from here the set is never read whole
    assert cli.main(["sweep", "--dataset", disk, "--data-feed", "stream", *flags, "--out-dir",
                     str(tmp_path / "stream")]) == 0
    assert [shape for shape in reads if len(shape) == 3] == ([(7, 1, 16)] * 4 + [(2, 1, 16)]) * 2 * 2
    streamed, resident = results_of(tmp_path / "stream"), results_of(tmp_path / "resident")
    assert len(streamed) == 8 and all(r["val_loss"] is not None for r in streamed)
    # the groups: one per seed streamed, one for all the models resident; every number the same
    assert [r.pop("group") for r in streamed] == [r["overrides"]["seed"] for r in streamed]
    assert {r.pop("group") for r in resident} == {0}
    assert streamed == resident


@pytest.mark.parametrize("feed", ["stream", "auto"])
def test_resume_at_an_epoch_boundary_equals_the_uninterrupted_streamed_sweep(tmp_path, npy_dir, monkeypatch, feed):
    """A sweep stopped in epoch 2 of its first chunk (its checkpoint: epoch 1; the second seed's
    chunk not begun), resumed: its stream restarts at epoch 2, position 0, and every model ends
    as uninterrupted, the best model's params too. auto: it streamed because the host was short
    of memory; resumed on a host where the set would fit, it streams on."""
    chunks_of(7, BASE, SPIRAL.train, monkeypatch)
    disk = jaxmlp.load_dataset(f"npy:{npy_dir}")
    config = dataclasses.replace(STREAM, epochs=3, checkpoint_every=1, data_feed=feed)
    monkeypatch.setattr(plan_module, "host_memory_available", lambda: disk.train.nbytes)  # auto: it must stream
    straight = sweep(config, GRID, *disk)

    class Stop(Exception):
        pass

    class StopInEpoch2:
        def on_sweep_begin(self, info):
            pass

        def on_epoch_end(self, records):
            if records and records[0]["epoch"] == 2:
                raise Stop

    checkpointer = Checkpointer(tmp_path / "checkpoints")
    with pytest.raises(Stop):
        sweep(config, GRID, *disk, checkpointer=checkpointer, callbacks=[StopInEpoch2()])
    assert checkpointer.latest_epoch() == 1  # epoch 2's checkpoint would follow its callbacks
    monkeypatch.setattr(plan_module, "host_memory_available", lambda: 10 * disk.train.nbytes)
    assert plan_module.with_feed(config, disk.train).data_feed == feed  # auto: this host would hold the set now
    resumed = sweep(config, GRID, *disk, checkpointer=Checkpointer(tmp_path / "checkpoints"), resume=True)
    assert [untimed(m.history) for m in resumed.models] == [untimed(m.history) for m in straight.models]
    assert [m.history.final for m in resumed.models] == [m.history.final for m in straight.models]
    assert resumed.models[0].history.train_loss[0] != resumed.models[0].history.train_loss[1]
    for a, b in zip(jax.tree.leaves(resumed.best_params), jax.tree.leaves(straight.best_params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_shard_changed_while_a_streamed_sweep_trains_ends_it_at_the_next_epoch(tmp_path):
    directory = write_shards(tmp_path / "set", SPIRAL)
    disk = jaxmlp.load_dataset(f"npy:{directory}")

    class Touch:
        def on_sweep_begin(self, info):
            pass

        def on_epoch_end(self, records):
            os.utime(directory / "train-00002.x.npy", ns=(1, 1))

    with pytest.raises(DataError, match="train-00002.x.npy"):
        sweep(STREAM, {"seed": [0]}, *disk, callbacks=[Touch()])
