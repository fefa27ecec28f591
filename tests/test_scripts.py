"""The benchmark scripts (scripts/): they say what they need, and their small pure helpers.

The benchmarks themselves are not run here (they time things for minutes); their smoke settings
are in each script's docstring.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
INSTALL = "pip install -e '.[bench]'"


class NotInstalled:
    """An import finder that finds nothing for `names`: imports of them fail as if they were not
    installed (sys.modules[name] = None would not do: scipy looks torch up there)."""

    def __init__(self, *names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


# python -c RUN_WITHOUT torch,sklearn script.py args...: the script, run without those packages
RUN_WITHOUT = f"""
import runpy, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from test_scripts import NotInstalled
sys.meta_path.insert(0, NotInstalled(*sys.argv[1].split(",")))
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture
def scripts(monkeypatch):
    """Import a script by name (scripts/ on sys.path)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module


@pytest.fixture
def without(monkeypatch):
    """without("torch", "sklearn"): those imports fail in this test, as if not installed."""
    def block(*names):
        for name in list(sys.modules):
            if name.split(".")[0] in names:
                monkeypatch.delitem(sys.modules, name)
        monkeypatch.setattr(sys, "meta_path", [NotInstalled(*names), *sys.meta_path])

    return block


@pytest.mark.parametrize("script, args, blocked, named, not_named", [
    ("bench_cpu.py", [], ("torch", "sklearn"), ("torch (for the contenders torch, torch-fused)",
                                                "scikit-learn (for the contender sklearn)"), ()),
    ("bench_cpu.py", ["--contenders", "jaxmlp-autodiff,sklearn", "--sweep", ""], ("sklearn",),
     ("scikit-learn (for the contender sklearn)",), ("torch",)),  # (whether or not torch is installed)
    ("bench_cpu.py", ["--contenders", "jaxmlp-autodiff,torch", "--sweep", ""], ("torch", "sklearn"),
     ("torch (for the contender torch)",), ("scikit-learn",)),
    ("bench_gpu.py", ["--smoke"], ("torch",), ("torch (for part 1", "--parts 2,3,4"), ()),
    ("bench_start.py", [], ("sklearn",), ("scikit-learn (for the scikit-learn baseline and the digits data)",), ()),
])
def test_missing_peers_end_the_script_with_one_line(child_env, script, args, blocked, named, not_named):
    r = subprocess.run([sys.executable, "-c", RUN_WITHOUT, ",".join(blocked), str(SCRIPTS / script), *args,
                        "--name", "/tmp/jaxmlp_never_written"],
                       capture_output=True, text=True, cwd=REPO, env=child_env, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"{script}: missing ") and INSTALL in line
    assert all(s in line for s in named) and not any(s in line for s in not_named), line


def test_bench_cpu_needs_no_peer_for_jaxmlp_alone(scripts, without):
    bench_cpu = scripts("bench_cpu")
    without("torch", "sklearn")
    args = bench_cpu.parse_args(["--contenders", "jaxmlp-autodiff,jaxmlp-manual", "--sweep-contenders",
                                 "jaxmlp-autodiff", "--sweep-sklearn", ""])
    bench_cpu.require_peers(args)  # no SystemExit
    args = bench_cpu.parse_args(["--contenders", "jaxmlp-autodiff", "--sweep", ""])  # no sweep: its peers do not count
    bench_cpu.require_peers(args)
    with pytest.raises(SystemExit, match="scikit-learn"):
        bench_cpu.require_peers(bench_cpu.parse_args(["--contenders", "jaxmlp-autodiff", "--sweep-contenders", ""]))


def test_peers_of(scripts):
    peers_of = scripts("_contenders").peers_of
    assert peers_of(["jaxmlp-autodiff", "jaxmlp-manual"]) == {}
    assert peers_of(["torch-fused", "jaxmlp-autodiff", "torch", "sklearn", "torch"]) == {
        "torch": ("torch", "the contenders torch, torch-fused"), "sklearn": ("scikit-learn", "the contender sklearn")}


def test_steady_uses_the_clean_epochs_after_the_first(scripts):
    steady = scripts("bench_cpu").steady
    assert steady([9.0, 1.0, 2.0, 3.0], [0.0, 0.1, 0.9, 0.1], 0.25) == ([1.0, 3.0], [2, 4], True)
    assert steady([9.0, 1.0, 2.0], [0.0, 0.9, 0.1], 0.25) == ([1.0, 2.0], [2, 3], False)  # < 2 clean: all of 2..N
    assert steady([9.0], [0.0], 0.25) == ([9.0], [1], False)


def test_bench_gradstats_three_ways_give_the_same_norms(scripts):
    import jax
    import numpy as np

    from jaxmlp import init_mlp

    bench = scripts("bench_gradstats")
    params = init_mlp(jax.random.key(0), (6, 5, 3))
    x = jax.random.normal(jax.random.key(1), (4, 6))
    y = jax.random.randint(jax.random.key(2), (4,), 0, 3)
    norms = {m: np.asarray(jax.jit(bench.norms_fn(m))(params, x, y)) for m in bench.METHODS}
    for method in ("vmap_grad", "vmap_manual"):
        np.testing.assert_allclose(norms[method], norms["cache"], rtol=1e-5)


def test_bench_stream_helpers(scripts, tmp_path):
    import numpy as np

    bench = scripts("bench_stream")
    assert bench.verdict(0.95, 0.9, True) == "met (by 0.050)"
    assert bench.verdict(0.12, 0.10, False, "{:.1%}") == "missed (by 2.0%)"
    args = bench.parse_args(["--smoke", "--work-dir", str(tmp_path), "--big-gb", "1e6"])
    with pytest.raises(SystemExit, match="needs .* GB free"):
        bench.checked_disk(args, int(1e15))
    with pytest.raises(KeyboardInterrupt), bench.temporary_dir(tmp_path, "t_") as d:
        (d / "f").write_bytes(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # removed on the interrupt too
    (x, y), (x2, y2) = bench.big_chunks(300, 16, 200)
    assert x.shape == (200, 16) and x2.shape == (100, 16) and x.dtype == np.float32 and y.dtype == np.int32
    assert np.array_equal(next(bench.big_chunks(300, 16, 200))[0], x)  # deterministic
    (tmp_path / "a.bin").write_bytes(b"\0" * 100_000)
    read = bench.sequential_read([tmp_path / "a.bin"], 60_000, block_bytes=4096)
    assert read["bytes"] == 61_440 and read["bytes_per_s"] > 0


@pytest.mark.slow
def test_bench_stream_smoke_runs_every_part(child_env, tmp_path):
    import json

    r = subprocess.run([sys.executable, str(SCRIPTS / "bench_stream.py"), "--smoke", "--work-dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, env=child_env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads(Path("/tmp/jaxmlp_stream_smoke.json").read_text())
    assert {"page_cache", "big", "wide", "gpu"} <= set(record)
    assert record["page_cache"]["bit_identical_params"] and record["gpu"]["page_cache"]["bit_identical_params"]
    assert [big["width"] for big in record["big"]] == [256, 512]
    assert all(big["streamed"]["examples"] > 0 and big["streamed"]["vm_hwm_bytes"] > 0 for big in record["big"])
    assert "| 1 page cache |" in r.stdout and list(tmp_path.iterdir()) == []  # the shards are gone
