"""The batch-size study end to end (jaxmlp.batchsize.study, race, programs, studydir; the
`jaxmlp batch-study` command): the steps a race counts match a direct count on a closed-form
problem, a best rate on the grid's edge widens the grid, bad input is one line and exit 2 with
no file written, and a study killed with SIGKILL resumes to the uninterrupted study's table.

Closed form: linear regression s = w·x + b (no hidden layer, mean squared error) on
x ~ N(0, I_4), y = w*·x + 0.1 ε, trained with plain SGD: its training loss is computed exactly in
float64 numpy after every step of a direct loop over the same minibatches.
"""
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxmlp
from conftest import kill_when
from jaxmlp import cli
from jaxmlp.batchsize import studydir
from jaxmlp.batchsize.programs import race_programs
from jaxmlp.batchsize.race import run_race
from jaxmlp.batchsize.study import race_data, race_plan, study_settings
from jaxmlp.batchsize.target import next_check
from jaxmlp.config import TrainConfig
from jaxmlp.data import from_arrays
from jaxmlp.training.epoch import epoch_order, gather_batch
from jaxmlp.training.state import epoch_key, init_state, run_keys
from jaxmlp.training.step import make_step, start_carry

N, D, BATCH, LR = 512, 4, 16, 0.02
W_STAR = np.array([1.0, -0.5, 0.25, 2.0])


def linear_data(dtype=np.float64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(dtype)
    y = (x @ W_STAR + 0.1 * rng.standard_normal(N)).astype(dtype)[:, None]
    return from_arrays(x, y, task="regression", name="linear")


def linear_config(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(dataset="linear", hidden=(), loss="mean_squared_error", activation="identity",
                                 optimizer="sgd", learning_rate=LR, batch_size=BATCH, epochs=4, dtype="float64"), **kw})


def direct_losses(config: TrainConfig, train, seed: int, steps: int) -> np.ndarray:
    """The exact training loss after each of `steps` steps of the solo step, the minibatches drawn
    as a run of `seed` draws them: (steps,)."""
    settings = study_settings(config, [BATCH, 2 * BATCH], "train_loss=1", n_train=N)
    plan = race_plan(config, BATCH, settings, train, None, 1)
    step = jax.jit(make_step(plan))
    init_key, train_key = run_keys(seed)
    carry = start_carry(init_state(init_key, plan.config, plan.sizes, plan.optimizer))
    x, y = np.asarray(train.x), np.asarray(train.y)
    losses = []
    for t in range(steps):
        epoch, i = divmod(t, plan.spec.steps_per_epoch)
        _, rows, keys = epoch_order(epoch_key(train_key, epoch), N, BATCH)
        carry = step(carry, (np.int32(i), gather_batch(x, y, rows[i]), keys[i]))
        (layer,) = carry.params
        losses.append(np.mean((x @ np.asarray(layer.W) + np.asarray(layer.b) - y) ** 2))
    return np.array(losses)


def test_a_race_counts_the_steps_a_direct_count_finds(x64):
    train, config = linear_data(), linear_config()
    losses = direct_losses(config, train, seed=3, steps=4 * (N // BATCH))
    checks = [1]
    while checks[-1] < len(losses):
        checks.append(next_check(checks[-1]))
    for target in (2.0, 0.5, 0.05):
        first = int(np.argmax(losses <= target)) + 1  # the first step at which the loss is <= target
        want = next(c for c in checks if losses[c - 1] <= target)
        assert want - first < max(1, 0.05 * want)  # the schedule resolves it within 5%
        settings = study_settings(config, [BATCH, 2 * BATCH], f"train_loss={target}", n_train=N, seeds=[3])
        plan = race_plan(config, BATCH, settings, train, None, 1)
        result = run_race(plan, race_programs(plan, 1), [LR], [3], target=settings.target,
                          data=race_data(plan, settings.target, train, None), budget=len(losses), size=2)
        assert result.steps.tolist() == [[want]], (target, first)


def test_a_best_rate_on_the_grid_edge_widens_the_grid(x64):
    train = linear_data()
    config = linear_config(learning_rate=4e-3)  # too small: the grid's largest rate wins
    result = jaxmlp.batch_study(config, [BATCH, 2 * BATCH], "train_loss=0.5", train, seeds=[0], lr_points=3,
                                max_widen=1)
    row = result.rows[0]
    first_grid = 4e-3 * 2.0 ** np.linspace(-1, 1, 3)
    assert row.widened == 1 and len(row.lrs) == 5  # 3 rates, then 2 past the top edge (same ratio 2)
    assert np.allclose(row.lrs, 4e-3 * 2.0 ** np.arange(-1, 4)) and row.best_lr > first_grid.max()
    assert row.at_edge  # still on the (new) top edge after the one widening allowed
    steps = dict(zip(row.lrs, (s[0] for s in row.steps)))
    assert steps[row.best_lr] == min(steps.values())


def test_a_study_fits_its_points_and_draws_its_figure(x64, tmp_path):
    from jaxmlp.batchsize.plots import study_figure

    result = jaxmlp.batch_study(linear_config(learning_rate=0.01), [8, 16, 32, 64], "train_loss=0.3",
                                linear_data(), seeds=[0, 1], lr_points=4, lr_span=4.0, rule="linear")
    assert [r.batch_size for r in result.rows] == [8, 16, 32, 64]
    assert all(r.best_lr is not None and len(r.best_steps) == 2 for r in result.rows)
    est, lo, hi = result.frontier
    assert lo.s_min <= est.s_min <= hi.s_min and lo.e_min <= est.e_min <= hi.e_min
    assert result.eps is not None and all(r.b_simple > 0 for r in result.rows)
    assert "| 8 |" in result.table() and "B_crit" in result.table()
    assert len(study_figure(result).axes) == 3


SPIRAL = ["--dataset", "spiral", "--n-samples", "600", "--val-fraction", "0.2", "--hidden", "16",
          "--optimizer", "momentum", "--learning-rate", "0.1", "--batch-size", "32", "--epochs", "30",
          "--lr-points", "3", "--max-widen", "1", "--target", "val_accuracy=0.8"]


@pytest.mark.parametrize("argv, needle", [
    (["--batch-sizes", "64:32"], "the batch-size range '64:32' is empty"),
    (["--batch-sizes", "24:96"], "batch sizes must be powers of two, got '24:96'"),
    (["--batch-sizes", "32,48"], "batch sizes must be powers of two, got 48"),
    (["--batch-sizes", "256:1024"], "batch size 1024 is larger than the training set (480 examples)"),
    (["--batch-sizes", "32:64", "--target", "val_accuracy=1.5"], "is unreachable: an accuracy lies in [0, 1]"),
    (["--batch-sizes", "32:64", "--target", "val_mse=0.1"], "is for regression"),
    (["--batch-sizes", "32:64", "--target", "val_loss=0.1", "--val-fraction", "0"], "needs a validation set"),
    (["--target", "val_loss=0.1"], "--batch-sizes is required"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "study"
    assert cli.main(["batch-study", *SPIRAL, *argv, "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and err.startswith("jaxmlp batch-study: error: "), err
    assert not out.exists()


def test_sigkill_then_resume_equals_an_uninterrupted_study(tmp_path, child_env):
    run_dir = tmp_path / "study"
    cmd = [sys.executable, "-m", "jaxmlp.cli", "batch-study"]
    proc = subprocess.Popen([*cmd, *SPIRAL, "--batch-sizes", "8:64", "--out-dir", str(run_dir), "--quiet",
                             "--no-plots"], env=child_env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    results = run_dir / studydir.RESULTS_FILE
    kill_when(proc, lambda: results.is_file() and results.read_text().count("\n") >= 1,
              "measured its first batch size")
    measured = results.read_text().count("\n")
    assert 1 <= measured < 4
    done = subprocess.run([*cmd, "--resume", str(run_dir), "--quiet", "--no-plots"], env=child_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("done: 4 batch sizes in ") and f"| run dir: {run_dir} (" in line

    config, settings, _ = studydir.read_study_json(run_dir)
    splits = jaxmlp.load_dataset("spiral", n_samples=600, val_fraction=0.2)
    straight = jaxmlp.batch_study(config, settings.batch_sizes, settings.target, splits.train, splits.val,
                                  seeds=settings.seeds, lr_points=settings.lr_points, max_widen=settings.max_widen)
    resumed = json.loads((run_dir / studydir.SUMMARY_JSON).read_text())
    assert [r["steps"] for r in resumed["rows"]] == [[[None if math.isinf(s) else s for s in seeds] for seeds in r.steps]
                                                     for r in straight.rows]
    assert [r["best_lr"] for r in resumed["rows"]] == [r.best_lr for r in straight.rows]
    assert resumed["frontier"]["estimate"]["b_crit"] == pytest.approx(straight.frontier[0].b_crit, rel=1e-12)
    assert sorted(set(os.listdir(run_dir)) - {".lock"}) == sorted(  # (.lock: the run lock, runlock.py)
        [".jaxmlp-run", "study.json", "results.jsonl", "summary.md", "summary.json"])
