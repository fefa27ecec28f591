"""Shared plumbing for the benchmark scripts: environment record, timing, result files.

Every benchmark warms up (compiles) first, times with block_until_ready(), repeats, and
quotes medians; results go to results/<name>.json and results/<name>.md together with the
device, library versions, date and the exact command.
"""
from __future__ import annotations

import datetime
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

RESULTS = Path(__file__).resolve().parents[1] / "results"


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
        "cpu": platform.processor() or platform.machine(),
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
    RESULTS.mkdir(exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    env = record["environment"]
    lines = [f"# {record.get('title', name)}", ""]
    lines += ["| " + " | ".join(table_header) + " |", "|" + "---|" * len(table_header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table_rows]
    lines += ["", notes, ""] if notes else [""]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines += [f"- device: {env['device']} ({env['cpu']}, {env['cpu_count']} cores)", f"- versions: {versions}",
              f"- date: {env['date']}", f"- command: `{env['command']}`", f"- raw timings: `{json_path.name}`", ""]
    md_path.write_text("\n".join(lines))
    return json_path, md_path
