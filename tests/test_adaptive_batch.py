"""adaptive_batch (training/adaptive_batch.py): the AdaScale gain is its formula (and McCandlish's
eps_opt ratio), the schedule switches batch where the statistics say, a batch that never changes
is the fixed-batch run bit for bit, a resume across a switch is bit-identical, each batch size
compiles once, the run's files show the schedule, and the settings it cannot honour are refused.
"""
import dataclasses
import math

import jax
import numpy as np
import pytest

import jaxmlp
from jaxmlp import cli
from jaxmlp.checkpoint import Checkpointer
from jaxmlp.config import TrainConfig
from jaxmlp.training import programs
from jaxmlp.training.adaptive_batch import (BatchState, adascale_gain, nearest_power_of_two, next_state,
                                            start_batch_state)

SPLITS = jaxmlp.load_dataset("spiral", n_samples=2048, val_fraction=0.25, seed=0)  # 1536 training examples
ADAPTIVE = TrainConfig(hidden=(32,), optimizer="momentum", learning_rate=0.02, batch_size=16, epochs=3,
                       dropout=0.0, adaptive_batch=True, batch_segments=8, checkpoint_every=1)


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("signal, noise, base, batch", [(2.0, 600.0, 16, 256), (0.5, 10.0, 8, 1024),
                                                         (1.0, 1e6, 32, 64)])
def test_the_gain_is_adascales_formula_and_mcCandlishs_eps_opt_ratio(signal, noise, base, batch):
    r = adascale_gain(signal, noise, base, batch)
    assert r == pytest.approx((noise / base + signal) / (noise / batch + signal), rel=1e-12)
    b_simple = noise / signal
    assert r == pytest.approx((1 + b_simple / base) / (1 + b_simple / batch), rel=1e-12)
    assert 1 <= r <= batch / base


def test_the_gain_at_its_bounds():
    assert adascale_gain(1.0, 0.0, 16, 256) == 1.0           # no noise: a big step is worth one small one
    assert adascale_gain(-1.0, 5.0, 16, 256) == 16.0          # signal below the noise floor: the full scale
    assert adascale_gain(1.0, 1e12, 16, 256) == pytest.approx(16.0)


def test_the_schedule_switches_where_the_statistics_say():
    config = dataclasses.replace(ADAPTIVE, gradient_ema=0.5)
    state = start_batch_state(config)
    assert state == BatchState(16, 0.02, 1.0, None, 0.0, 0.0, 0.0, 0.0)
    after = next_state(config, state, signal=1.0, noise=300.0, steps=40, cap=4096)  # B_simple 300 -> 256
    assert (after.batch, after.b_simple) == (256, pytest.approx(300.0))
    assert after.gain == pytest.approx(adascale_gain(1.0, 300.0, 16, 256)) and after.lr == pytest.approx(0.02 * after.gain)
    assert after.scaled_steps == 40.0  # the segment ran at gain 1
    assert next_state(config, state, 1.0, 400.0, 40, 4096).batch == 512    # log2 400 = 8.64: 512
    assert next_state(config, state, 1.0, 400.0, 40, 128).batch == 128     # the cap
    assert next_state(config, state, 1.0, 3.0, 40, 4096).batch == 16       # never below batch_size
    # one step weighs 1 - 0.5 = half: B_simple of the EMAs is (0.5 * 300 + 0.5 * 3000) / 1
    again = next_state(config, after, signal=1.0, noise=3000.0, steps=1, cap=4096)
    assert again.b_simple == pytest.approx(1650.0) and again.batch == 2048
    assert again.scaled_steps == pytest.approx(40.0 + after.gain)
    assert [nearest_power_of_two(x) for x in (0.3, 1.0, 1.4, 1.5, 3.0, 1000.0)] == [1, 1, 1, 2, 4, 1024]


def test_a_batch_that_never_changes_is_the_fixed_run_bit_for_bit():
    fixed = TrainConfig(hidden=(32,), optimizer="momentum", learning_rate=0.02, batch_size=16, epochs=2,
                        dropout=0.0, track_gradients=True)
    held = dataclasses.replace(fixed, track_gradients=False, adaptive_batch=True, max_batch_size=16)
    want, h_want = jaxmlp.fit(fixed, SPLITS.train, SPLITS.val)
    got, h_got = jaxmlp.fit(held, SPLITS.train, SPLITS.val)
    assert leaves_equal(got, want)
    assert h_got.val_loss == h_want.val_loss
    assert all(s["batch"] == 16 for b in h_got.batch for s in b["segments"])
    assert sum(s["steps"] for s in h_got.batch[0]["segments"]) == len(SPLITS.train) // 16


def test_resume_across_a_switch_is_bit_identical_and_each_batch_compiles_once(tmp_path):
    before = {k for k in programs._PROGRAMS if k[0] == "adaptive_segment"}
    straight, h_straight = jaxmlp.fit(ADAPTIVE, SPLITS.train, SPLITS.val)
    compiled = {k for k in programs._PROGRAMS if k[0] == "adaptive_segment"} - before
    batches = [[s["batch"] for s in b["segments"]] for b in h_straight.batch]
    used = {b for epoch in batches for b in epoch}
    assert len(used) >= 3 and batches[0][0] == 16 and batches[1] != batches[0]  # it switched, more than once
    assert len(compiled) == len(used)  # one program per batch size, whatever the number of segments at it

    ckpt = Checkpointer(tmp_path / "checkpoints")
    jaxmlp.fit(dataclasses.replace(ADAPTIVE, epochs=1), SPLITS.train, SPLITS.val, checkpointer=ckpt)
    ckpt.close()
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.read_meta()["batch"]["batch"] == batches[1][0]  # the schedule where the checkpoint left it
    resumed, h_resumed = jaxmlp.fit(ADAPTIVE, SPLITS.train, SPLITS.val, checkpointer=ckpt, resume=True)
    ckpt.close()
    assert leaves_equal(resumed, straight)
    assert h_resumed.batch == h_straight.batch and h_resumed.val_loss == h_straight.val_loss
    assert {k for k in programs._PROGRAMS if k[0] == "adaptive_segment"} - before == compiled  # nothing new


def test_the_cli_run_shows_the_schedule(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--hidden", "32", "--optimizer", "momentum", "--learning-rate", "0.02",
                     "--batch-size", "16", "--epochs", "2", "--dropout", "0", "--adaptive-batch",
                     "--batch-segments", "8", "--n-samples", "2048", "--out-dir", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("batch " in line and "(gain " in line and "B_simple " in line for line in lines), lines
    assert (out / "gradient_stats.png").is_file()
    import json
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["batch"]["segments"][0]["batch"] >= 16 and math.isfinite(record["batch"]["scaled_steps"])


@pytest.mark.parametrize("flags, needle", [
    (["--batch-size", "24"], "batch_size must be a power of two >= 2 with adaptive_batch"),
    (["--schedule", "cosine"], "schedule must be 'constant' with adaptive_batch"),
    (["--track-gradients"], "track_gradients must be false with adaptive_batch"),
    (["--max-batch-size", "8"], "max_batch_size must be >= batch_size=16"),
])
def test_settings_it_cannot_honour_are_refused(tmp_path, capsys, flags, needle):
    argv = ["train", "--adaptive-batch", "--batch-size", "16", *flags, "--out-dir", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_adaptive_settings_need_adaptive_batch():
    with pytest.raises(ValueError, match="max_batch_size must be None without adaptive_batch"):
        TrainConfig(max_batch_size=64)
