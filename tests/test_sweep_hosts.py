"""A sweep's model axis over every device of every process (jaxmlp/sweeps/hosts.py, jax.distributed):
2 gloo processes x 4 forced host devices against 1 process x 8 devices; a process killed mid-sweep;
hosts started with different grids. Each run is a fresh Python process (tests/_multihost_worker.py
or `python -m jaxmlp.cli`), as in test_parallel.py; this pytest process keeps its one device.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from test_parallel import WORKER, as_layers, free_port, ok, parse_result, worker_env

from jaxmlp.restore import restore_params

# 6 models on 8 devices: 2 devices run padding, and each process holds 3 or 4 of the models
CONFIG = dict(dataset="spiral", hidden=(16,), batch_size=50, epochs=3, val_fraction=0.2, devices=0,
              checkpoint_every=0)
GRID = {"learning_rate": [0.01, 0.03], "seed": [0, 1, 2]}
SWEEP_FLAGS = ["sweep", "--dataset", "spiral", "--hidden", "16", "--batch-size", "10", "--val-fraction", "0.2",
               "--grid", "learning_rate=0.01,0.03", "--grid", "seed=0:3", "--devices", "all", "--quiet", "--no-plots"]


def start(jobs_or_argv, process: int, port: int, devices: int, cwd: Path, cli: bool = False) -> subprocess.Popen:
    """Process `process` of 2 (gloo on 127.0.0.1:port), `devices` forced host devices each."""
    hosts = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(process),
             "--distributed-timeout", "10"]
    argv = [sys.executable, "-m", "jaxmlp.cli", *jobs_or_argv, *hosts] if cli else [sys.executable, str(WORKER), json.dumps(
        {"jobs": jobs_or_argv, "distributed": {"coordinator": f"127.0.0.1:{port}", "num_processes": 2,
                                               "process_id": process, "timeout": 60}})]
    return subprocess.Popen(argv, cwd=cwd, env=worker_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each process; none is left running."""
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
        return [(p.returncode, *out) for p, out in zip(procs, outs)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_two_processes_of_four_devices_equal_one_of_eight_and_refuse_other_grids(tmp_path):
    """Every model's params and the ranking: 2 processes x 4 devices == 1 process x 8 devices, bit
    for bit; then hosts started with different grids both stop before training, in one line."""
    sweep = {"kind": "sweep", "config": CONFIG, "grid": GRID}
    port, run_dir = free_port(), tmp_path / "grids"
    procs = []
    for pid in range(2):
        seeds = "seed=0:3" if pid == 0 else "seed=0:4"  # process 1 was started with another grid
        argv = [*SWEEP_FLAGS[:SWEEP_FLAGS.index("seed=0:3")], seeds, *SWEEP_FLAGS[SWEEP_FLAGS.index("seed=0:3") + 1:],
                "--epochs", "1", "--out-dir", str(run_dir), "--coordinator", f"127.0.0.1:{port}", "--num-processes",
                "2", "--process-id", str(pid)]
        procs.append(start([sweep, {"kind": "cli", "argv": argv}], pid, port, 4, tmp_path))
    one = run_one([sweep], tmp_path)
    outs = finish(procs)
    results = []
    for code, stdout, stderr in outs:
        assert code == 0, stderr[-3000:]
        results.append(parse_result(stdout))
    assert [(r["process"], r["devices"]) for r in results] == [(0, 8), (1, 8)]
    want = ok(one["results"][0])
    for r in results:
        got = ok(r["results"][0])
        assert got["ranking"] == want["ranking"] and got["scores"] == want["scores"]
        for model_got, model_want in zip(got["params"], want["params"]):
            for a, b in zip(as_layers(model_got), as_layers(model_want)):
                assert all(np.array_equal(x, y) for x, y in zip(a, b))  # bit for bit
        cli = ok(r["results"][1])
        assert cli["code"] == 2 and cli["writes"] == []
    for _, _, stderr in outs:
        errors = [line for line in stderr.splitlines() if line.startswith("jaxmlp sweep: error:")]
        assert errors == ["jaxmlp sweep: error: not the same in every process: grid (process 1 vs process 0). Every "
                          "process of a multi-host run must run the same command on the same data"], stderr[-2000:]
    assert not run_dir.exists()  # refused before anything was written


def run_one(jobs: list, cwd: Path) -> dict:
    out = subprocess.run([sys.executable, str(WORKER), json.dumps({"jobs": jobs})], cwd=cwd, env=worker_env(8),
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return parse_result(out.stdout)


def test_a_killed_process_ends_its_peer_and_both_resume_bit_identically(tmp_path):
    """kill -9 of process 1 mid-sweep: process 0 ends within the distributed timeout, in one line,
    exit 1, its last complete checkpoint intact; --resume on both hosts ends as the uninterrupted
    sweep (here on 1 process x 8 devices: the same devices over other processes re-shard)."""
    run_dir, whole = tmp_path / "killed", tmp_path / "whole"
    reference = subprocess.Popen([sys.executable, "-m", "jaxmlp.cli", *LONG_SWEEP, "--out-dir", str(whole)],
                                 cwd=tmp_path, env=worker_env(8), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    procs = sweep_past_epoch_6(run_dir, tmp_path)
    procs[1].kill()  # kill -9
    survivor_says_the_peer_is_gone(procs, victim=1)

    port = free_port()
    resumed = [start(["sweep", "--resume", str(run_dir), "--quiet"], pid, port, 4, tmp_path, cli=True) for pid in range(2)]
    for code, stdout, stderr in finish([*resumed, reference]):
        assert code == 0, stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["table"] == json.loads(
        (whole / "summary.json").read_text())["table"]
    assert untimed(run_dir / "results.jsonl") == untimed(whole / "results.jsonl")
    got, want = restore_params(run_dir / "best")[0], restore_params(whole / "best")[0]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))


@pytest.mark.parametrize("victim", [1, 0])
def test_a_stopped_process_ends_its_peer_in_one_line_within_the_timeout(tmp_path, victim):
    """SIGSTOP of one process mid-sweep (its sockets stay open, so no collective fails): the
    other ends by the peer watch, in one line, exit 1, within --distributed-timeout, whether the
    stopped one is a peer or the coordinator (process 0), never by XLA's fatal abort."""
    procs = sweep_past_epoch_6(tmp_path / "stopped", tmp_path)
    procs[victim].send_signal(signal.SIGSTOP)
    try:
        survivor_says_the_peer_is_gone(procs, victim)
    finally:
        procs[victim].kill()
        procs[victim].wait()


LONG_SWEEP = [*SWEEP_FLAGS, "--epochs", "40", "--checkpoint-every", "2"]


def sweep_past_epoch_6(run_dir: Path, cwd: Path) -> list[subprocess.Popen]:
    """LONG_SWEEP on 2 processes x 4 devices into `run_dir`, running once its epoch-6 checkpoint is complete."""
    port = free_port()
    procs = [start([*LONG_SWEEP, "--out-dir", str(run_dir)], pid, port, 4, cwd, cli=True) for pid in range(2)]
    checkpoints = run_dir / "checkpoints"
    deadline = time.monotonic() + 180
    while not (checkpoints.is_dir() and any(p.name.isdigit() and int(p.name) >= 6 for p in checkpoints.iterdir())):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), finish(procs)
        time.sleep(0.05)
    return procs


def survivor_says_the_peer_is_gone(procs: list[subprocess.Popen], victim: int) -> None:
    """The process other than `victim` ends within the distributed timeout (10 s), in one line, exit 1,
    naming the run's last complete checkpoint."""
    gone = time.monotonic()
    (code, _, stderr), = finish(procs[1 - victim:2 - victim])
    assert time.monotonic() - gone < 10, "the survivor outlived the distributed timeout"
    assert code == 1 and stderr.count("\n") == 1, stderr[-3000:]
    assert "another process of this multi-host run is gone" in stderr and "the last complete checkpoint is epoch" \
        in stderr, stderr
    kept = int(stderr.split("the last complete checkpoint is epoch ")[1].split()[0])
    assert 6 <= kept < 40


def test_a_streamed_sweep_on_two_processes_equals_one_process_of_eight_devices(tmp_path):
    """The spiral as npy shards, streamed (--data-feed stream): each process reads every chunk
    and places it on its 4 devices; every model, the ranking and best/ equal 1 process x 8
    devices bit for bit."""
    from test_stream import SPIRAL, write_shards

    shards = write_shards(tmp_path / "shards", SPIRAL)
    flags = ["sweep", "--dataset", f"npy:{shards}", "--hidden", "16", "--batch-size", "10", "--epochs", "3",
             "--data-feed", "stream", "--grid", "learning_rate=0.01,0.03", "--grid", "seed=0:2", "--devices", "all",
             "--quiet", "--no-plots"]
    port = free_port()
    procs = [start([*flags, "--out-dir", str(tmp_path / "two")], pid, port, 4, tmp_path, cli=True) for pid in range(2)]
    one = subprocess.Popen([sys.executable, "-m", "jaxmlp.cli", *flags, "--out-dir", str(tmp_path / "one")],
                           cwd=tmp_path, env=worker_env(8), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for code, _, stderr in finish([*procs, one]):
        assert code == 0, stderr[-3000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["table"] == json.loads(
        (tmp_path / "one" / "summary.json").read_text())["table"]
    two, single = untimed(tmp_path / "two" / "results.jsonl"), untimed(tmp_path / "one" / "results.jsonl")
    assert two == single and len({r["model"] for r in two}) == 4 and {r["group"] for r in two} == {0, 1}
    got, want = restore_params(tmp_path / "two" / "best")[0], restore_params(tmp_path / "one" / "best")[0]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))


def untimed(path: Path) -> list[dict]:
    """results.jsonl's lines without their times, by model and epoch (a resume rewrites them model by model)."""
    lines = [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "samples_per_sec")}
             for line in path.read_text().splitlines()]
    return sorted(lines, key=lambda line: (line["model"], line["epoch"]))


def test_a_multi_process_command_shows_only_fatal_runtime_log_lines_unless_told():
    """XLA's coordination service logs its own error lines when a peer dies, before jaxmlp's one
    line; a multi-process command turns them off before JAX loads, unless the user set the level."""
    from jaxmlp.cli.hosts import quiet_runtime_log

    for argv, env, want in [(["sweep", "--num-processes", "2"], {}, "3"),
                            (["train", "--num-processes=2"], {}, "3"),
                            (["train"], {"JAX_NUM_PROCESSES": "2"}, "3"),
                            (["sweep", "--num-processes", "2"], {"TF_CPP_MIN_LOG_LEVEL": "0"}, "0"),
                            (["train"], {}, None), (["train"], {"JAX_NUM_PROCESSES": "1"}, None)]:
        quiet_runtime_log(argv, env)
        assert env.get("TF_CPP_MIN_LOG_LEVEL") == want, (argv, env)
