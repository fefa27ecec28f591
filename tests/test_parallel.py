"""Data parallel (8 forced host devices, 2 gloo processes), gradient accumulation, large-batch lr.

The device count and jax.distributed must be set before JAX starts, so the multi-device and
multi-process runs happen in fresh Python processes (tests/_multihost_worker.py) that report
JSON on stdout; this pytest process keeps its single CPU device and computes the references.
Optimizers here are linear in the gradient (SGD with momentum), so a summation-order difference
in the all-reduced gradient stays a 1e-7 relative difference in the params.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jaxmlp
import numpy as np
import pytest

from jaxmlp import cli, distributed, init_mlp, loss_and_grad, parallel, training as train
from jaxmlp.restore import restore_params
from jaxmlp.cli import flags
from jaxmlp.config import RESUMABLE, TrainConfig
from jaxmlp.data import load_dataset

WORKER = Path(__file__).resolve().parent / "_multihost_worker.py"
SPIRAL = load_dataset("spiral").train  # 300 examples, 2 features, 3 classes
# 300 // 56 = 5 steps in one epoch; 56 splits over 8 devices and over 2 processes x 2 devices.
FIVE_STEPS = dict(dataset="spiral", batch_size=56, epochs=1, optimizer="momentum", learning_rate=0.1,
                  hidden=(32,), dropout=0.0, checkpoint_every=0)
TOL = 1e-6


def max_rel_err(a, b) -> float:
    """max over leaves of max|a - b| / max|b| (None leaves skipped)."""
    pairs = [(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    assert len(jax.tree.leaves(a)) == len(jax.tree.leaves(b))
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                     / (np.max(np.abs(np.asarray(y, np.float64))) + 1e-30)) for x, y in pairs)


def as_layers(params_json):
    """Worker params ([[W, b, alpha|None], ...] nested lists) as a list of tuples of arrays."""
    return [tuple(np.asarray(v) for v in layer if v is not None) for layer in params_json]


def reference(config: dict, data=SPIRAL, with_final: bool = False):
    params, history = jaxmlp.fit(TrainConfig(**config), data)
    layers = [tuple(np.asarray(v) for v in layer if v is not None) for layer in params]
    return (layers, history.final) if with_final else layers


def assert_same_final(got: dict, want: dict) -> None:
    """Evaluations (data parallel in the worker) equal the single-device ones."""
    assert got.keys() == want.keys()
    for split in want:
        assert got[split]["accuracy"] == want[split]["accuracy"], split
        assert abs(got[split]["loss"] - want[split]["loss"]) <= TOL * abs(want[split]["loss"]), split


def worker_env(devices_per_process: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
    # TF_CPP_MIN_LOG_LEVEL: `import jax` in this test process set it to 1, and a child would take it as the user's
    for name in ("JAX_ENABLE_X64", "TF_CPP_MIN_LOG_LEVEL", *distributed.ENV_VARS):
        env.pop(name, None)
    return env


def parse_result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("RESULT "):])


def run_worker(spec: dict, devices: int, timeout: float = 240) -> dict:
    out = subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], env=worker_env(devices),
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return parse_result(out.stdout)


def ok(result: dict):
    assert "ok" in result, result.get("traceback", result)
    return result["ok"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- in this process: one device ----------------------------------------------------------------------
def test_one_device_is_the_plain_program_and_more_than_available_is_an_error():
    assert parallel.data_parallel(1) is None
    assert jax.device_count() == 1  # the suite's process keeps one device
    with pytest.raises(ValueError, match=r"devices=2 but only 1 device\(s\) are available"):
        parallel.resolve_devices(2)
    assert parallel.resolve_devices("all") == jax.devices() == parallel.resolve_devices(0)
    mesh = parallel.make_mesh(1)
    assert mesh.axis_names == (parallel.DATA_AXIS,)
    with pytest.raises(ValueError, match="devices=4 but only 1"):
        train.plan_run(TrainConfig(devices=4), SPIRAL)


def test_batch_must_split_over_devices_and_microbatches():
    assert parallel.check_batch(64, 8) == 8
    assert parallel.check_batch(64, 4, accumulate=2) == 8
    with pytest.raises(ValueError, match=r"batch_size=60 must be divisible by 8 device\(s\) = 8"):
        parallel.check_batch(60, 8)
    with pytest.raises(ValueError, match=r"batch_size=48 must be divisible by 8 device\(s\) x accumulate=4"):
        parallel.check_batch(48, 8, accumulate=4)


def test_distributed_settings_from_flags_or_environment(monkeypatch):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert distributed.distributed_settings() is None
    assert distributed.initialize() is False  # nothing asked: single process, nothing started
    assert distributed.distributed_settings("h:1234", 2, 1) == ("h:1234", 2, 1)
    with pytest.raises(ValueError, match="needs all three"):
        distributed.distributed_settings("h:1234", 2)
    with pytest.raises(ValueError, match="HOST:PORT"):
        distributed.distributed_settings("h", 2, 0)
    with pytest.raises(ValueError, match=r"process_id must be in \[0, num_processes=2\)"):
        distributed.distributed_settings("h:1", 2, 2)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:8476")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert distributed.distributed_settings() == ("10.0.0.1:8476", 4, 3)
    assert distributed.distributed_settings(process_id=0) == ("10.0.0.1:8476", 4, 0)  # flags win


def test_config_fields_and_flags(tmp_path, capsys):
    assert TrainConfig(devices="all").devices == 0
    assert TrainConfig.from_dict({"devices": "all"}) == TrainConfig(devices=0)
    for bad, needle in [(dict(precision="fp16"), "precision must be one of fp32, bf16, highest"),
                        (dict(precision="bf16", dtype="float64"), "precision must be fp32 or highest with dtype"),
                        (dict(accumulate=0), "accumulate must be >= 1"),
                        (dict(batch_size=32, accumulate=3), "accumulate must be a divisor of batch_size=32"),
                        (dict(devices=-1), "devices must be >= 1, or all"),
                        (dict(lr_scaling="cubic"), "lr_scaling must be one of none, linear, sqrt"),
                        (dict(base_batch_size=0), "base_batch_size must be >= 1")]:
        with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
            TrainConfig(**bad)
    ns = cli.build_parser().parse_args(["train", "--devices", "all", "--precision", "bf16", "--accumulate", "2",
                                        "--lr-scaling", "linear", "--base-batch-size", "128"])
    assert flags.given_fields(ns) == dict(devices=0, precision="bf16", accumulate=2, lr_scaling="linear",
                                          base_batch_size=128)
    assert "devices" in RESUMABLE  # the same math on another device count
    # multi-host flags: all three, and an out_dir every process sees; checked before anything runs
    for argv, needle in [(["--coordinator", "127.0.0.1:1"], "needs all three"),
                         (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "0"],
                          "a multi-host run needs --out-dir")]:
        assert cli.main(["train", "--devices", "all", *argv]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert cli.main(["train", "--devices", "2", "--out-dir", str(tmp_path / "r")]) == 2
    assert "devices=2 but only 1 device(s)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_linear_lr_scaling_with_warmup():
    base = dict(learning_rate=0.1, base_batch_size=256, warmup_epochs=2, epochs=10)
    big = TrainConfig(batch_size=1024, lr_scaling="linear", **base)
    assert train.scaled_learning_rate(big) == pytest.approx(0.4)
    assert train.scaled_learning_rate(TrainConfig(batch_size=1024, lr_scaling="sqrt", **base)) == pytest.approx(0.2)
    assert train.scaled_learning_rate(TrainConfig(batch_size=1024, **base)) == 0.1  # none
    schedule = train.make_schedule(big, steps_per_epoch=5)
    assert float(schedule(0)) == 0.0 and float(schedule(5)) == pytest.approx(0.2)  # linear warm-up over 10 steps
    assert float(schedule(10)) == pytest.approx(0.4) and float(schedule(49)) == pytest.approx(0.4)


# --- gradient accumulation: K microbatches == one batch K times as big ---------------------------------
@pytest.mark.parametrize("method", ["autodiff", "manual"])
def test_accumulation_equals_the_big_batch(method):
    config = dict(FIVE_STEPS, batch_size=64, grad_method=method, l2=1e-3, epochs=2)  # 4 steps/epoch
    big = reference(config)
    accumulated = reference(dict(config, accumulate=4))  # 4 microbatches of 16, one update each
    assert max_rel_err(accumulated, big) < TOL
    moved = max_rel_err(big, reference(dict(config, epochs=1)))
    assert moved > 1e-3  # the comparison is not vacuous


def test_accumulation_makes_one_update_per_batch():
    """One step with batch 4B and K=4 vs one step with batch 4B: state.step counts batches."""
    cfg = TrainConfig(**dict(FIVE_STEPS, batch_size=64, accumulate=4))
    plan = train.plan_of(cfg, train.RunSpec("softmax_cross_entropy", (2, 32, 3), 256, 4, (), True))
    state = train.init_state(jax.random.key(0), cfg, (2, 32, 3), plan.optimizer)
    epoch = jax.jit(train.make_epoch(plan))
    x, y = train.host_arrays(SPIRAL, np.float32)
    state, stats = epoch(jax.random.key(1), state, x[:256], y[:256])
    assert int(state.step) == 4 and bool(stats.finite)


# --- 8 devices in one process ---------------------------------------------------------------------
def test_eight_devices_match_one_device():
    """Params after 5 steps on 8 forced host devices equal the single-device run, both grad methods
    (with dropout and input noise: the random masks do not depend on the sharding); accumulation
    composes with data parallelism; the per-process feed (each device sent only its rows of every
    batch) trains the same run; the data-parallel evaluations equal single-device ones; a batch
    that does not split over 8 devices is a clear error; a global batch fed from per-process rows
    gives the single-device gradient."""
    cases = {
        "autodiff": dict(FIVE_STEPS, devices=8, grad_method="autodiff"),
        "manual": dict(FIVE_STEPS, devices=0, grad_method="manual", dropout=0.2, input_noise=0.1),
        "accumulate": dict(FIVE_STEPS, devices=8, batch_size=112, accumulate=2, grad_method="manual", epochs=2),
        "per_process": dict(FIVE_STEPS, devices=8, batch_size=112, accumulate=2, dropout=0.2, epochs=2,
                            data_feed="per_process", eval_batch_size=100),
    }
    jobs = [{"kind": "fit", "config": c} for c in cases.values()]
    jobs.append({"kind": "fit", "config": dict(FIVE_STEPS, devices=8, batch_size=60)})
    jobs.append({"kind": "feed", "batch": 16, "sizes": [3, 5, 2], "method": "manual"})
    out = run_worker({"jobs": jobs}, devices=8)
    assert out["devices"] == 8
    results = dict(zip([*cases, "bad_batch", "feed"], out["results"]))
    for name, config in cases.items():
        got = ok(results[name])
        want, want_final = reference(dict(config, devices=1, data_feed="resident"), with_final=True)
        assert max_rel_err(as_layers(got["params"]), want) < TOL, name
        assert_same_final(got["final"], want_final)
    assert "batch_size=60 must be divisible by 8 device(s) = 8" in results["bad_batch"]["error"]

    feed = ok(results["feed"])
    assert feed["x_sharding"] == "P('data',)" and feed["local_rows"] == [0, 16]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=16).astype(np.int32)
    value, grads = loss_and_grad(init_mlp(jax.random.key(0), (3, 5, 2)), x, y, method="manual")
    assert abs(feed["loss"] - float(value)) < TOL * abs(float(value))
    assert max_rel_err(as_layers(feed["grads"]), [(g.W, g.b) for g in grads]) < TOL


# --- 2 processes (gloo on 127.0.0.1) -----------------------------------------------------------------
def test_two_processes_match_one_process_and_only_process_0_writes(tmp_path):
    port, run_dir = free_port(), tmp_path / "run"
    config = dict(FIVE_STEPS, dropout=0.1)
    flags = ["train", "--devices", "all", "--batch-size", "56", "--epochs", "1", "--optimizer", "momentum",
             "--learning-rate", "0.1", "--hidden", "32", "--dropout", "0.1", "--out-dir", str(run_dir),
             "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--distributed-timeout", "90"]
    procs = []
    for pid in range(2):
        jobs = [{"kind": "cli", "argv": [*flags, "--process-id", str(pid)]},  # starts jax.distributed
                {"kind": "feed", "batch": 16, "sizes": [3, 5, 2], "method": "autodiff"},
                {"kind": "fit", "config": dict(config, devices=0, data_feed="resident", grad_method="manual")},
                {"kind": "fit", "config": dict(config, devices=0, seed=pid)},  # process 1: another --seed
                {"kind": "fit", "config": dict(config, devices=0), "load_seed": pid}]  # process 1: other data
        procs.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps({"jobs": jobs})], cwd=tmp_path,
                                      env=worker_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=240)
            assert p.returncode == 0, stderr[-3000:]
            outs.append((parse_result(stdout), stdout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    (r0, stdout0), (r1, stdout1) = outs
    assert (r0["process"], r1["process"], r0["devices"], r1["devices"]) == (0, 1, 4, 4)
    cli0, cli1 = ok(r0["results"][0]), ok(r1["results"][0])
    assert cli0["code"] == cli1["code"] == 0
    # each process sent only its half of every minibatch: an epoch is (5 steps, 1, 56 rows, 2 features)
    for fed in (cli0["fed"], cli1["fed"]):
        assert [[5, 1, 28, 2], [5, 1, 56, 2]] in fed and [[5, 1, 28], [5, 1, 56]] in fed, fed
        assert not any(local[:1] == [300] for local, _ in fed), fed  # the training set itself is never placed
    assert cli1["writes"] == []  # process 1 writes no run file, metrics line or plot...
    assert {"file:config.json", "file:summary.json", "metrics:append", "plot:plot_loss_curve"} <= set(cli0["writes"])
    # gloo's own C++ status lines ("[Gloo] Rank 2 is connected to 3 peer ranks...") may arrive split
    printed1 = [line for line in stdout1.splitlines()
                if line.strip() and not line.startswith(("RESULT ", "[Gloo]")) and "peer ranks" not in line]
    assert printed1 == []  # ...and prints nothing
    assert "epoch 1/1" in stdout0 and "on 4 devices of 2 processes, batches fed per process" in stdout0

    # the checkpoint (written through orbax by both) holds the params of 5 steps == one process
    params, saved, meta = restore_params(run_dir)
    assert meta["epoch"] == 1 and saved.devices == 0
    got = [tuple(np.asarray(v) for v in layer if v is not None) for layer in params]
    assert max_rel_err(got, reference(config)) < TOL

    # the resident feed (every device holds the whole training set) trains the same run
    want, want_final = reference(dict(config, data_feed="resident", grad_method="manual"), with_final=True)
    for r in (r0, r1):
        fit = ok(r["results"][2])
        assert max_rel_err(as_layers(fit["params"]), want) < TOL
        assert_same_final(fit["final"], want_final)

    # a setting or a data set that differs between the processes is a clear error in every process
    for r in (r0, r1):
        assert r["results"][3]["error"] == ("ValueError: not the same in every process: config (process 1 vs "
                                            "process 0). Every process of a multi-host run must run the same "
                                            "command on the same data")
        assert r["results"][4]["error"].startswith("ValueError: not the same in every process: train x (process 1 "
                                                   "vs process 0)")  # the spiral's labels come in class order

    # a global batch from the rows each process fed == the single-process gradient
    f0, f1 = ok(r0["results"][1]), ok(r1["results"][1])
    assert f0["local_rows"] == [0, 8] and f1["local_rows"] == [8, 16]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=16).astype(np.int32)
    _, grads = loss_and_grad(init_mlp(jax.random.key(0), (3, 5, 2)), x, y)
    for f in (f0, f1):
        assert max_rel_err(as_layers(f["grads"]), [(g.W, g.b) for g in grads]) < TOL


def test_missing_peer_fails_within_the_timeout(tmp_path):
    """Only process 0 of 2 starts: it ends with one clear line and exit status 1, never hangs."""
    argv = ["train", "--devices", "all", "--out-dir", str(tmp_path / "run"), "--coordinator",
            f"127.0.0.1:{free_port()}", "--num-processes", "2", "--process-id", "0", "--distributed-timeout", "5"]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "jaxmlp.cli", *argv], env=worker_env(1), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert out.returncode == distributed.EXIT_TIMEOUT, out.stderr[-3000:]
    assert "process 0 of 2 could not join the run" in out.stderr and "within 5s" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "Check failure" not in out.stderr, out.stderr
    assert elapsed < 60, elapsed
    assert not (tmp_path / "run" / "config.json").exists()  # nothing written before all joined


def test_a_stopped_peer_ends_a_multi_host_train_in_one_line(tmp_path):
    """`jaxmlp train` on 2 processes; process 1 is stopped (SIGSTOP) once epoch 2's checkpoint is
    complete: process 0 ends in one line, exit 1, within --distributed-timeout, naming it."""
    port, run_dir = free_port(), tmp_path / "run"
    argv = ["train", "--dataset", "spiral", "--hidden", "16", "--batch-size", "8", "--epochs", "200", "--devices",
            "all", "--quiet", "--no-plots", "--out-dir", str(run_dir), "--coordinator", f"127.0.0.1:{port}",
            "--num-processes", "2", "--distributed-timeout", "10"]
    procs = [subprocess.Popen([sys.executable, "-m", "jaxmlp.cli", *argv, "--process-id", str(i)], cwd=tmp_path,
                              env=worker_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        checkpoints, deadline = run_dir / "checkpoints", time.monotonic() + 180
        while not (checkpoints.is_dir() and any(p.name.isdigit() and int(p.name) >= 2 for p in checkpoints.iterdir())):
            assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].communicate()[1][-3000:]
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        _, stderr = procs[0].communicate(timeout=120)
        assert time.monotonic() - stopped < 10, "process 0 outlived the distributed timeout"
        assert procs[0].returncode == 1 and stderr.count("\n") == 1, stderr[-3000:]
        assert stderr.startswith("jaxmlp train: error: another process of this multi-host run is gone (process 1 "
                                 "of 2 has not answered for"), stderr
        assert "the last complete checkpoint is epoch" in stderr and f"--resume {run_dir} on every host" in stderr
    finally:
        for p in procs:
            p.kill()
            p.wait()
