"""Shared plumbing for the benchmark scripts: paths, logging, the peers check, environment
record, timing, quiet-machine waits and result files.

Every benchmark warms up (compiles) first, times with block_until_ready(), repeats, and
quotes medians; results go to results/<name>.json and results/<name>.md together with the
device, library versions, date and the exact command.
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
BENCH_INSTALL = "pip install -e '.[bench]'"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def repo_path(path: str | Path) -> Path:
    """`path` as given when absolute, else relative to the repository root."""
    path = Path(path)
    return path if path.is_absolute() else (REPO / path).resolve()


def shown_path(path: Path) -> str:
    """`path` relative to the repository root when inside it (as result files quote paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def require(needs: dict[str, tuple[str, str]], hint: str = "") -> None:
    """End the script with ONE line on stderr (exit status 1, no traceback) unless every module
    imports. needs: {import name: (package name, what needs it)}; `hint`: how to do without."""
    missing = []
    for module, (package, who) in needs.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(f"{package} (for {who})")
        except Exception as exc:  # noqa: BLE001 - installed but broken: say so in the same one line
            missing.append(f"{package} (for {who}; installed, but importing it fails with {type(exc).__name__}: {exc})")
    if missing:
        raise SystemExit(f"{Path(sys.argv[0]).name}: missing {'; '.join(missing)}. Install the benchmark "
                         f"peers with: {BENCH_INSTALL}" + (f", or {hint}" if hint else ""))


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def environment(extra_packages: Sequence[str] = ()) -> dict:
    """Device, host, library versions, date and the exact command of this run."""
    import jax

    versions = {}
    for name in ("jax", "jaxlib", "optax", "numpy", *extra_packages):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return {
        "device": f"{devices[0].platform}: {getattr(devices[0], 'device_kind', '?')} x{len(devices)}",
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
    }


def block(tree):
    """Wait for every array in a pytree (jax.block_until_ready on the leaves)."""
    import jax

    return jax.block_until_ready(tree)


def time_call(fn: Callable[[], object]) -> float:
    """Seconds for one call of fn, waiting for its result."""
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """(median, raw seconds) of `repeats` calls of fn, each waited for (warm fn up first)."""
    raw = [time_call(fn) for _ in range(repeats)]
    return statistics.median(raw), raw


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Time each fn `repeats` times, alternating between them so drift hits all alike.

    Returns {name: {"median_s": ..., "raw_s": [...]}}. Call each fn once before (warm-up).
    """
    raw = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            raw[name].append(time_call(fn))
    return {name: {"median_s": statistics.median(t), "raw_s": t} for name, t in raw.items()}


def write_results(name: str, record: dict, table_header: Sequence[str], table_rows: Sequence[Sequence],
                  notes: str = "") -> tuple[Path, Path]:
    """Write results/<name>.json (everything) and results/<name>.md (a short table + the environment)."""
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"  # an absolute name: elsewhere
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    env = record["environment"]
    lines = [f"# {record.get('title', name)}", "", *markdown_table(table_header, table_rows)]
    lines += ["", notes, ""] if notes else [""]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines += [f"- device: {env['device']} ({env['cpu']}, {env['cpu_count']} cores)", f"- versions: {versions}",
              f"- date: {env['date']}", f"- command: `{env['command']}`", f"- raw timings: `{json_path.name}`", ""]
    md_path.write_text("\n".join(lines))
    return json_path, md_path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    """The lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def load_averages() -> dict:
    """The 1, 5 and 15 minute load averages now (None where the OS has none)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return {"1min": None, "5min": None, "15min": None}
    return {"1min": round(one, 2), "5min": round(five, 2), "15min": round(fifteen, 2)}


def wait_for_quiet(threshold: float = 1.0, poll_s: float = 20.0, max_wait_s: float = 900.0,
                   log: Callable[[str], None] = log) -> dict:
    """Wait until the 1-minute load average is below `threshold` (poll every `poll_s`, give up
    after `max_wait_s`). Returns {"quiet": bool, "waited_s": ..., "threshold": ..., "polls": [...]}
    so the result file can say whether the machine was quiet when timing started."""
    start = time.perf_counter()
    polls = []
    while True:
        load = load_averages()
        waited = time.perf_counter() - start
        polls.append({"t_s": round(waited, 1), **load})
        if load["1min"] is None or load["1min"] < threshold:
            return {"quiet": True, "waited_s": round(waited, 1), "threshold": threshold, "polls": polls}
        if waited + poll_s > max_wait_s:
            log(f"load average never fell below {threshold} in {max_wait_s:.0f} s (now {load['1min']}); "
                "timing anyway")
            return {"quiet": False, "waited_s": round(waited, 1), "threshold": threshold, "polls": polls}
        log(f"waiting for a quiet machine: 1-min load {load['1min']} >= {threshold} ({waited:.0f} s waited)")
        time.sleep(poll_s)


def mlp_train_flops(sizes: Sequence[int], n_samples: int) -> int:
    """Conventional training FLOPs of an MLP for n_samples examples: 6 * N * sum(d_in * d_out)
    (forward 2x, backward 4x the multiply-adds of the weight matmuls; biases and activations ignored)."""
    return 6 * n_samples * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def synthetic_mnist(n: int):
    """A Dataset of random data of MNIST's shape: n examples of 784 uniform [0, 1) float32 features,
    labels uniform in 0..9 (seed 0)."""
    import numpy as np

    from jaxmlp.data.dataset import Dataset

    rng = np.random.default_rng(0)
    return Dataset(rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32),
                   name="synthetic", num_classes=10)


def cpu_snapshot(children: bool = False) -> tuple[float, float, float] | None:
    """(wall s, machine-wide busy CPU s from /proc/stat, this process's CPU s, plus that of its
    finished children with `children`); None off Linux."""
    import resource

    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / hz  # all but idle and iowait (guest is inside user)
    own = [resource.getrusage(resource.RUSAGE_SELF)] + ([resource.getrusage(resource.RUSAGE_CHILDREN)] if children else [])
    return time.perf_counter(), busy, sum(r.ru_utime + r.ru_stime for r in own)


def foreign_cores(start, end) -> float | None:
    """Mean number of cores other processes kept busy between two cpu_snapshot()s (None if unknown)."""
    if start is None or end is None or end[0] <= start[0]:
        return None
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))


def wait_for_idle_cpu(max_foreign: float = 0.25, window_s: float = 5.0, max_wait_s: float = 300.0,
                      log: Callable[[str], None] = log) -> dict:
    """Wait until other processes use < max_foreign cores over a window_s window (the load average
    lags by minutes and counts this process's own work; this does not). Returns what it saw."""
    start = time.perf_counter()
    seen = []
    while True:
        a = cpu_snapshot()
        time.sleep(window_s)
        f = foreign_cores(a, cpu_snapshot())
        waited = time.perf_counter() - start
        seen.append(None if f is None else round(f, 2))
        if f is None or f < max_foreign:
            return {"idle": True, "waited_s": round(waited, 1), "foreign_cores": seen}
        if waited > max_wait_s:
            log(f"other processes kept {f:.2f} cores busy for {waited:.0f} s; timing anyway")
            return {"idle": False, "waited_s": round(waited, 1), "foreign_cores": seen}
        log(f"waiting for idle CPUs: other processes use {f:.2f} cores ({waited:.0f} s waited)")
