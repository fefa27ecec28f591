"""The bad-input corpus: every case ends in exactly one line on stderr naming the problem, exit
code 2, no traceback, and a file tree left exactly as it was (every file hashed before and after).

The cases run in-process (`cli.main`) in one prepared workspace: a finished run (FIN), data files
with bad labels, config files that do not parse, a file where a directory belongs, ...
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from jaxmlp import cli
from jaxmlp.cli.usage import MAX_LINE

QUIET = ["--quiet", "--no-plots"]


def _write_data(ws: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((50, 3), dtype=np.float32)
    np.savez(ws / "huge.npz", x=x, y=np.array([0, 1, 2, 1_000_000_001] * 12 + [0, 1]))
    y = (np.arange(50) % 3).astype(np.float64)
    y[7] = 1.5  # one fractional label among class labels
    np.savez(ws / "frac.npz", x=x, y=y)
    np.savetxt(ws / "frac.csv", np.c_[x, y], delimiter=",")
    np.savez(ws / "wide.npz", x=rng.random((20, 5), dtype=np.float32), y=np.arange(20) % 3)
    np.savez(ws / "ok.npz", x=x, y=np.arange(50) % 3)


def _write_shards(ws: Path) -> None:
    """Sharded data sets on disk (data.manifest): a good one, and one broken each way."""
    from jaxmlp.data.manifest import ShardWriter

    rng = np.random.default_rng(0)
    x, y = rng.random((50, 3), dtype=np.float32), np.arange(50) % 3
    for name in ("shards", "trunc", "gone", "wide", "f64", "rows"):
        with ShardWriter(ws / name, rows_per_shard=16, num_classes=3) as writer:
            writer.append("train", x, y)

    def resave(name: str, shard: str, array: np.ndarray) -> None:
        """Shard file `shard` replaced by `array`, the manifest agreeing on its size: only its header tells."""
        np.save(ws / name / shard, array)
        manifest = json.loads((ws / name / "manifest.json").read_text())
        for entry in manifest["splits"]["train"]["shards"]:
            for file in entry["files"]:
                file["bytes"] = (ws / name / file["name"]).stat().st_size
        (ws / name / "manifest.json").write_text(json.dumps(manifest))

    with open(ws / "trunc" / "train-00001.x.npy", "r+b") as f:
        f.truncate(100)
    (ws / "gone" / "train-00002.y.npy").unlink()
    resave("wide", "train-00001.x.npy", np.zeros((16, 5), np.float32))
    resave("f64", "train-00001.x.npy", x[16:32].astype(np.float64))
    resave("rows", "train-00003.y.npy", y[48:49])


def _write_configs(ws: Path) -> None:
    (ws / "broken.toml").write_text("epochs = = 3\n")
    (ws / "run.yaml").write_text("epochs: 3\n")
    (ws / "adir.json").mkdir()
    (ws / "list.json").write_text("[1, 2]\n")
    (ws / "unknown.json").write_text(json.dumps({"epochz": 3}))
    (ws / "afile").write_text("not a directory\n")
    (ws / "existing.npz").write_bytes(b"user data")
    (ws / "existing.npy").write_bytes(b"user data")
    (ws / "empty_run").mkdir()
    (ws / "existing.json").write_text('{"mine": 1}\n')
    deep = "[" * 5000 + "]" * 5000  # 10 KB, nested 5,000 levels: a RecursionError in Python's parsers
    (ws / "deep.json").write_text(f'{{"hidden": {deep}}}')
    (ws / "deep.toml").write_text(f"hidden = {deep}\n")
    (ws / "deep_grid.json").write_text(f'{{"seed": {deep}}}')
    (ws / "dup.json").write_text('{"epochs": 2, "epochs": 3}')
    (ws / "dup_grid.json").write_text('{"seed": [0, 1], "seed": [2]}')
    for name, text in (("deep_run", f'{{"hidden": {deep}}}'), ("dup_run", '{"hidden": [8], "hidden": [9]}')):
        (ws / name).mkdir()
        (ws / name / "config.json").write_text(text)
    (ws / "deep_sweep").mkdir()
    (ws / "deep_sweep" / "sweep.json").write_text(f'{{"grid": {deep}}}')
    (ws / "long_value.json").write_text(json.dumps({"dataset": "x" * 1_000_000}))
    (ws / "many_keys.json").write_text(json.dumps({f"k{i:05d}": 1 for i in range(20_000)}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("bad_inputs")
    old = os.getcwd()
    os.chdir(ws)
    try:
        assert cli.main(["train", "--epochs", "2", "--out-dir", "FIN", *QUIET]) == 0  # a finished run
    finally:
        os.chdir(old)
    _write_data(ws)
    _write_shards(ws)
    _write_configs(ws)
    return ws


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file and directory under root: path -> content hash ('dir' for directories)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


CASES = [
    # flags
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--hidden", "10,,10"], "argument --hidden: invalid comma-separated int list value: '10,,10'"),
    (["train", "--hidden", "64,x"], "argument --hidden: invalid comma-separated int list value"),
    (["train", "--batch-size", "abc"], "argument --batch-size: invalid int value: 'abc'"),
    (["train", "--epochs", "-1"], "error: epochs must be >= 1, got -1"),
    (["train", "--log-every", "-1"], "--log-every must be >= 0"),
    (["train", "--learning-rate", "-1"], "learning_rate must be > 0"),
    (["train", "--task", "banana"], "task must be one of auto, classification, regression"),
    (["train", "--download-timeout", "0"], "download_timeout must be > 0 seconds"),
    (["train", "--epochs", "3", "--warmup-epochs", "5"], "warmup_epochs must be in [0, epochs=3], got 5"),
    (["train", "--precision", "bf16", "--dtype", "float64"], "precision must be fp32 or highest with dtype float64"),
    (["train", "--batch-size", "7", "--accumulate", "2"], "accumulate must be a divisor of batch_size=7"),
    (["train", "--devices", "99"], "devices=99 but only"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    # settings the choice does not read: rejected, not ignored
    (["train", "--momentum", "0.5"], "momentum applies only to optimizer momentum, nesterov, lars, not 'adam'"),
    (["train", "--optimizer", "sgd", "--b1", "0.5"], "b1 applies only to optimizer adam, adamw, lamb"),
    (["train", "--alpha", "0.1"], "alpha applies only to activation leaky_relu, prelu, elu"),
    (["train", "--k", "3"], "k applies only to activation maxout"),
    (["train", "--schedule-epochs", "5"], "schedule_epochs applies only to schedule cosine, warmup_cosine"),
    (["train", "--base-batch-size", "64"], "base_batch_size applies only to lr_scaling linear, sqrt"),
    (["train", "--restore-best"], "restore_best needs validation data: set val_fraction > 0"),
    (["train", "--patience", "3"], "patience (early stopping) needs validation data"),
    # config files
    (["train", "--config", "missing.json"], "jaxmlp train: error: --config missing.json: file not found"),
    (["train", "--config", "broken.toml"], "jaxmlp train: error: --config broken.toml: cannot parse"),
    (["train", "--config", "run.yaml"], "jaxmlp train: error: --config run.yaml: not a .json or .toml file"),
    (["train", "--config", "adir.json"], "jaxmlp train: error: --config adir.json: is a directory"),
    (["train", "--config", "list.json"], "jaxmlp train: error: --config list.json: expected a table"),
    (["train", "--config", "unknown.json"], "unknown config field(s): epochz"),
    (["train", "--config", "dup.json"], "--config dup.json: cannot parse (duplicate key 'epochs')"),
    (["train", "--config", "deep.json"], "--config deep.json: cannot parse (lists and tables nested deeper than 32"),
    (["train", "--config", "deep.toml"], "--config deep.toml: cannot parse (lists and tables nested deeper than 32"),
    (["train", "--config", "long_value.json"], "characters cut ...] "),  # a 1 MB value, echoed in 1,000 characters
    (["train", "--config", "many_keys.json"], "field(s): k00000, k00001, k00002, k00003, k00004 and 19995 more"),
    # data
    (["train", "--dataset", "nosuch"], "unknown data set 'nosuch'"),
    (["train", "--dataset", "npz:/nonexistent/x.npz"], "/nonexistent/x.npz"),
    (["train", "--dataset", "idx:nowhere"], "nowhere"),
    (["train", "--dataset", "npz:huge.npz"], "largest label 1000000001 means 1000000002 classes, but only 4"),
    (["train", "--dataset", "npz:frac.npz"], "label 1.5 at example 7 is not a whole number"),
    (["train", "--dataset", "csv:frac.csv"], "label 1.5 at line 8, column 4 is not a whole number"),
    (["train", "--dataset", "npz:frac.npz", "--task", "classification"], "class labels must be integers"),
    (["train", "--dataset", "spiral", "--task", "regression"], "--task regression does not apply"),
    (["train", "--dataset", "npz:ok.npz", "--batch-size", "100"], "batch_size must be <= the number of training"),
    (["train", "--loss", "mse"], "loss mean_squared_error needs regression targets"),
    # data sets on disk (npy:DIR, arrayrecord:DIR)
    (["train", "--dataset", "npy:nowhere"], "nowhere"),
    (["train", "--dataset", "npy:afile"], "afile"),
    (["train", "--dataset", "npy:trunc"], "trunc/train-00001.x.npy"),
    (["train", "--dataset", "npy:gone"], "gone/train-00002.y.npy"),
    (["train", "--dataset", "npy:wide"], "wide/train-00001.x.npy"),
    (["train", "--dataset", "npy:f64"], "float64"),
    (["train", "--dataset", "npy:rows"], "rows/train-00003.y.npy"),
    (["train", "--dataset", "arrayrecord:shards"], "holds a npy data set: use npy:"),
    (["train", "--dataset", "npy:shards", "--batch-size", "64"], "batch_size must be <= the number of training"),
    (["train", "--dataset", "npy:shards", "--data-feed", "stream", "--batch-size", "64"],
     "batch_size must be <= the number of training"),
    (["train", "--dataset", "npy:shards", "--val-fraction", "0.2"], "val_fraction must be 0"),
    (["train", "--dataset", "npy:shards", "--n-samples", "20"], "n_samples subsamples data read into memory"),
    (["train", "--dataset", "npy:shards", "--task", "regression"], "--task regression does not apply"),
    (["train", "--dataset", "npy:shards", "--batch-size", "8", "--checkpoint-every-steps", "2"],
     "needs data_feed stream"),
    (["train", "--dataset", "npy:shards", "--batch-size", "8", "--data-feed", "stream", "--checkpoint-every-steps", "2",
      "--track-gradients"], "checkpoint_every_steps cannot save the running gradient statistics"),
    (["train", "--hidden", "10000000000"], "lower hidden (the layer widths)"),
    # run directories
    (["train", "--out-dir", "afile"], "out_dir afile exists and is not a directory"),
    (["train", "--out-dir", "afile/sub"], "afile/sub: Not a directory"),
    (["train", "--out-dir", "FIN"], "run dir FIN already holds a run; pass --resume FIN"),
    (["train", "--resume", "FIN", "--hidden", "5"], "--hidden cannot change when resuming"),
    (["train", "--resume", "FIN", "--config", "x.json"], "--resume cannot be combined with --config"),
    (["train", "--resume", "nowhere"], "not a run directory"),
    (["train", "--resume", "empty_run"], "cannot be resumed; rerun the original command"),
    # the other commands
    (["export", "nowhere"], "not a run directory"),
    (["export", "FIN", "--npz", "existing.npz"], "existing.npz exists; pass --overwrite"),
    (["export", "FIN", "--best"], "holds no best params"),
    (["predict", "FIN", "--dataset", "npz:wide.npz", "--out", "p.npy"], "5 features"),
    (["predict", "FIN", "--out", "existing.npy"], "existing.npy exists"),
    (["export", "FIN", "--npz", "adir.json", "--overwrite"], "--npz adir.json is a directory"),
    (["noise-scale", "FIN", "--json", "existing.json"], "existing.json exists; pass --overwrite"),
    (["noise-scale", "FIN", "--json", "adir.json", "--overwrite"], "--json adir.json is a directory"),
    (["info", "deep_run"], "deep_run/config.json: cannot read config (lists and tables nested deeper than 32"),
    (["info", "dup_run"], "dup_run/config.json: cannot read config (duplicate key 'hidden')"),
    # sweeps
    (["sweep", "--grid", "seed=0:2", "--top", "-1"], "argument --top: must be >= 0, got -1"),
    (["sweep", "--grid", "seed=0:1000000"], "the grid has 1000000 models, more than --max-models 10000"),
    (["sweep", "--grid", "seed=0:5", "--grid", "learning_rate=1e-3,1e-2", "--max-models", "8"],
     "the grid has 10 models, more than --max-models 8; pass --max-models 10"),
    (["sweep", "--grid", "hidden=" + "[" * 5000 + "]" * 5000], "nested deeper than 32 levels"),
    (["sweep", "--grid-file", "deep_grid.json"], "--grid-file deep_grid.json: cannot parse (lists and tables nested"),
    (["sweep", "--grid-file", "dup_grid.json"], "--grid-file dup_grid.json: cannot parse (duplicate key 'seed')"),
    (["sweep", "--config", "deep.json", "--grid", "seed=0:2"], "--config deep.json: cannot parse (lists and tables"),
    (["sweep", "--resume", "deep_sweep"], "deep_sweep/sweep.json: cannot read (lists and tables nested deeper than 32"),
    (["evaluate", "nowhere"], "not a run directory"),
    (["info", "nowhere"], "not a run directory"),
    (["demo", "capacity", "--out-dir", "afile"], "afile"),
    (["gradcheck", "--batch", "0"], "--batch must be >= 1"),
]


@pytest.mark.parametrize("argv,needle", CASES, ids=[" ".join(argv) for argv, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_no_file(workspace, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(workspace)
    before = tree_hashes(workspace)
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n") and len(err) <= MAX_LINE + 1, err[:2000]
    assert "Traceback" not in err and needle in err, err
    assert tree_hashes(workspace) == before  # no file made, changed or removed
