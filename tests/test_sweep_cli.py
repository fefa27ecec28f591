"""`jaxmlp sweep`: the run directory end to end on the spiral (2x2 grid), one-line errors with
exit 2 for bad grids, and kill -9 mid-sweep then --resume == an uninterrupted sweep."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import kill_when
from jaxmlp import checkpoint, cli, restore, sweep
from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.sweeps import sweepdir
from jaxmlp.sweeps.plan import make_plan
from jaxmlp.sweeps.chunk_programs import KEY_SHAPE, chunk_abstract_state

FLAGS = ["--dataset", "spiral", "--hidden", "16", "--batch-size", "32", "--val-fraction", "0.2"]
GRID = ["--grid", "learning_rate=0.01,0.05", "--grid", "seed=0:2"]


def leaves_equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_cli_sweep_writes_its_run_directory(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert cli.main(["sweep", *FLAGS, *GRID, "--epochs", "3", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("| ") >= 5 and "run dir:" in printed  # the ranked table: a header and 4 rows
    epochs = [line for line in printed.splitlines() if line.startswith("epoch")]  # lines where no bar shows
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("models 0 done, 4 active  best val_loss " in line and "  elapsed " in line for line in epochs)
    assert "  eta " in epochs[1] and "  eta " not in epochs[2]
    saved = json.loads((out / sweepdir.SWEEP_FILE).read_text())
    assert saved["grid"] == {"learning_rate": [0.01, 0.05], "seed": [0, 1]} and len(saved["models"]) == 4
    lines = [json.loads(line) for line in (out / sweepdir.RESULTS_FILE).read_text().splitlines()]
    assert sorted((r["model"], r["epoch"]) for r in lines) == [(m, e) for m in range(4) for e in (1, 2, 3)]
    assert all(r["val_loss"] is not None and r["overrides"] for r in lines)
    table = [line for line in (out / sweepdir.SUMMARY_FILE).read_text().splitlines() if line.startswith("| ")]
    assert len(table) == 5 and "best_val_loss" in table[0]
    summary = json.loads((out / sweepdir.SUMMARY_JSON).read_text())
    assert [row["rank"] for row in summary["table"]] == [1, 2, 3, 4] and summary["best"] == summary["table"][0]["model"]
    assert (out / sweepdir.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # best/ is a run directory: jaxmlp export reads it, and it holds the best model's run
    assert cli.main(["export", str(out / sweepdir.BEST_DIR)]) == 0
    params, config, meta = restore.restore_params(out / sweepdir.BEST_DIR)
    best = summary["table"][0]
    assert config.learning_rate == saved["models"][best["model"]]["overrides"]["learning_rate"] and meta["epoch"] == 3
    with np.load(out / sweepdir.BEST_DIR / "params.npz", allow_pickle=False) as f:
        assert np.array_equal(f["layer0_W"], params[0].W)
    # the directory is now taken
    assert cli.main(["sweep", *FLAGS, *GRID, "--epochs", "3", "--out-dir", str(out)]) == 2
    assert "already holds a sweep" in capsys.readouterr().err


@pytest.mark.parametrize("argv,needle", [
    (["--grid", "nope=1,2"], "unknown config field 'nope'"),
    (["--grid", "learning_rate=1e-3,abc"], "learning_rate takes float values, got 'abc'"),
    (["--grid", "seed=3:3"], "seed has no values"),
    ([], "empty grid"),
    (["--grid", "patience=1,2"], "setting of the whole sweep"),
    (["--grid", "dropout=0.5,1.5"], "dropout must be in [0, 1)"),
    (["--grid", "hidden=16/10000000000"], "lower hidden"),
    (["--grid", "seed=0:4", "--models-per-program", "0"], "models_per_program must be >= 1"),
    (["--grid", "seed=0:2", "--track-gradients"], "track_gradients is not supported in a sweep"),
])
def test_bad_grids_are_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    out = tmp_path / "sweep"
    assert cli.main(["sweep", *FLAGS, "--epochs", "1", "--out-dir", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and err.startswith("jaxmlp sweep: error:"), err
    assert not out.exists()  # nothing written


def test_resume_takes_its_settings_from_the_run_directory(tmp_path, capsys):
    assert cli.main(["sweep", "--resume", str(tmp_path), "--epochs", "5"]) == 2
    assert "--epochs cannot change when resuming a sweep" in capsys.readouterr().err
    assert cli.main(["sweep", "--resume", str(tmp_path)]) == 2
    assert "not a sweep directory (no sweep.json)" in capsys.readouterr().err


# --- kill -9 mid-sweep, then --resume -----------------------------------------------------------------
EPOCHS = 12


def test_sigkill_then_resume_equals_an_uninterrupted_sweep(tmp_path, child_env):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "jaxmlp.cli", "sweep"]
    args = [*FLAGS, *GRID, "--epochs", str(EPOCHS), "--checkpoint-every", "1", "--keep-checkpoints", "2",
            "--restore-best", "--quiet", "--no-plots"]
    proc = subprocess.Popen([*cmd, *args, "--out-dir", str(run_dir)], env=child_env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt_dir = run_dir / checkpoint.CHECKPOINT_DIR
    kill_when(proc, lambda: (ckpt_dir / "3").is_dir(), "reached its third checkpoint")
    killed_at = max(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())
    assert killed_at < EPOCHS

    done = subprocess.run([*cmd, "--resume", str(run_dir), "--quiet", "--no-plots"], env=child_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()  # --quiet: only the closing line, the best model and the run dir
    assert line.startswith("done: 4 models in ") and ", best model " in line and f"| run dir: {run_dir} (" in line

    # The uninterrupted sweep, in this process, from the run directory's own config and grid.
    saved = sweepdir.read_sweep_json(run_dir)
    config = TrainConfig.from_dict(saved["config"])
    splits = load_dataset("spiral", val_fraction=0.2)
    data = (splits.train, splits.val, splits.test)
    straight = sweep(config, saved["grid"], *data)
    plan = make_plan(config, saved["grid"], *data)
    group, (chunk,) = plan.groups[0], plan.chunks
    abstract = chunk_abstract_state(group.program, plan.specs[0], group.inits, size=chunk.size, mesh=None)
    ckpt = checkpoint.Checkpointer(ckpt_dir)
    assert ckpt.latest_epoch() == EPOCHS
    final = ckpt.restore(abstract, abstract_key=jax.ShapeDtypeStruct((chunk.size, *KEY_SHAPE), jnp.uint32))
    ckpt.close()
    # every model's last params, bit for bit (restore_best changes only which params are kept)
    last = sweep(dataclasses.replace(config, restore_best=False), saved["grid"], *data, keep_params=True)
    for j, model in enumerate(last.models):
        assert leaves_equal(jax.tree.map(lambda a: np.asarray(a[j]), final.state.params), model.params)
    lines = [json.loads(line) for line in (run_dir / sweepdir.RESULTS_FILE).read_text().splitlines()]
    assert sorted((r["model"], r["epoch"]) for r in lines) == sorted(
        (m.index, e) for m in straight.models for e in m.history.epoch)  # no epoch twice, none missing
    for r in lines:
        record = straight.models[r["model"]].history.records()[r["epoch"] - 1]
        assert (r["train_loss"], r["val_loss"]) == (record["train_loss"], record["val_loss"])
    best_params, _, _ = restore.restore_params(run_dir / sweepdir.BEST_DIR)
    assert leaves_equal(best_params, straight.best_params)
