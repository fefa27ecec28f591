"""compile_cache: where the persistent XLA cache goes, that a user's own JAX setting wins, that an
entry runs only under its own key, and that cache problems never stop a run and cost one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from jaxmlp import cli, compile_cache
from jaxmlp.restore import restore_params

SETTINGS = ("jax_compilation_cache_dir", "jax_enable_compilation_cache", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")


@pytest.fixture
def jax_settings(monkeypatch):
    """The test may change JAX's cache settings: they are put back afterwards."""
    saved = {name: getattr(jax.config, name) for name in SETTINGS}
    monkeypatch.setattr(compile_cache, "_configured", False)
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


def test_default_dir_follows_xdg(tmp_path):
    assert compile_cache.default_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "jaxmlp" / "xla"
    assert compile_cache.default_dir({"XDG_CACHE_HOME": ""}) == Path.home() / ".cache" / "jaxmlp" / "xla"
    assert compile_cache.default_dir({}) == Path.home() / ".cache" / "jaxmlp" / "xla"


def test_unconfigured_jax_gets_the_default_dir_and_caches_every_program(jax_settings, tmp_path):
    jax.config.update("jax_compilation_cache_dir", None)
    directory = compile_cache.configure(environ={"XDG_CACHE_HOME": str(tmp_path)})
    assert directory == tmp_path / "jaxmlp" / "xla" and not directory.exists()  # made by the first entry
    assert jax.config.jax_compilation_cache_dir == str(directory)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
    jax.jit(lambda v: v * 3 + 1)(jax.numpy.arange(7.0)).block_until_ready()  # a fresh, fast program
    assert any(directory.iterdir())  # written although it compiled in far less than JAX's default 1 s


def test_a_command_refused_before_compiling_makes_no_cache_dir(jax_settings, tmp_path, capsys):
    cache = tmp_path / "new-cache"
    assert cli.main(["train", "--compile-cache", str(cache), "--epochs", "0", "--out-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not cache.exists() and not (tmp_path / "r").exists()


def test_a_users_jax_setting_is_left_alone(jax_settings, tmp_path):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
    assert compile_cache.configure(environ={"XDG_CACHE_HOME": str(tmp_path)}) is None
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "theirs")
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_enable_compilation_cache", False)  # switched off by the user: stays off
    assert compile_cache.configure(environ={"XDG_CACHE_HOME": str(tmp_path)}) is None
    assert jax.config.jax_compilation_cache_dir is None and not jax.config.jax_enable_compilation_cache


@pytest.mark.parametrize("via_env", [False, True])
def test_an_explicit_setting_wins(jax_settings, tmp_path, via_env):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
    mine = tmp_path / "mine"
    setting, environ = (None, {compile_cache.ENV: str(mine)}) if via_env else (str(mine), {})
    assert compile_cache.configure(setting, environ) == mine
    assert jax.config.jax_compilation_cache_dir == str(mine)
    off = (None, {compile_cache.ENV: "off"}) if via_env else ("off", {compile_cache.ENV: str(mine)})
    assert compile_cache.configure(*off) is None
    assert not jax.config.jax_enable_compilation_cache


def test_fit_configures_once_per_process(jax_settings, monkeypatch, tmp_path):
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "a"))
    compile_cache.ensure_configured()
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "b"))
    compile_cache.ensure_configured()  # already configured: nothing changes
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "a")


def test_fit_keeps_the_conftest_setting(jax_settings, monkeypatch):
    before = jax.config.jax_compilation_cache_dir  # conftest's JAX_COMPILATION_CACHE_DIR
    if before is None:
        pytest.skip("JAXMLP_TEST_CACHE=off: no JAX cache setting to keep")
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    compile_cache.ensure_configured()
    assert jax.config.jax_compilation_cache_dir == before


def test_a_cache_dir_that_cannot_be_made_is_one_line_and_exit_2(jax_settings, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["train", "--compile-cache", str(blocker / "xla"), "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"jaxmlp train: error: compile cache {blocker / 'xla'}: cannot create")
    assert not (tmp_path / "run").exists()


# ---- what the cache loads, and what its problems cost (issue 19, defects 7 and 17) -------------
RUN = ("train", "--hidden", "8", "--epochs", "1", "--quiet", "--no-plots")


# A fresh interpreter runs `setup`, then becomes `python -m jaxmlp.cli ARGS` (no fork of this
# multithreaded test process in between).
LAUNCH = "import os, sys\n{setup}\nos.execv(sys.executable, [sys.executable, '-m', 'jaxmlp.cli', *sys.argv[1:]])"


def _train(tmp_path, cache, name, *flags, setup=""):
    """A `jaxmlp train` subprocess with its own cache directory: (exit code, stderr lines)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(JAX_PLATFORMS="cpu", **{compile_cache.ENV: str(cache)})
    done = subprocess.run([sys.executable, "-c", LAUNCH.format(setup=setup), *RUN, "--out-dir", str(tmp_path / name),
                           *flags], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr.splitlines()


def _entries(cache: Path, program: str = "") -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.name.startswith(program) and not p.name.startswith("."))


def _params(run_dir: Path) -> list[np.ndarray]:
    params, _, _ = restore_params(run_dir)
    return [np.asarray(leaf) for leaf in jax.tree.leaves(params)]


def _swap(a: Path, b: Path) -> None:
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)


@pytest.mark.parametrize("other", [("--learning-rate", "5e-2"), ("--hidden", "16")], ids=["same-shape", "other-shape"])
def test_an_entry_filed_under_another_key_is_compiled_again(tmp_path, other):
    cache = tmp_path / "xla"
    assert _train(tmp_path, cache, "cold") == (0, [])
    assert _train(tmp_path, cache, "other", *other) == (0, [])
    _swap(*_entries(cache, "jit_epoch"))  # each run's epoch program now sits under the other's key
    code, err = _train(tmp_path, cache, "warm")
    assert code == 0 and len(err) == 1 and "compile cache" in err[0], err
    assert all(np.array_equal(a, b) for a, b in zip(_params(tmp_path / "warm"), _params(tmp_path / "cold"), strict=True))
    assert _train(tmp_path, cache, "healed") == (0, [])  # the entry was replaced by the right program


@pytest.mark.parametrize("keep", [0, 100])
def test_a_truncated_entry_is_replaced(tmp_path, keep):
    cache = tmp_path / "xla"
    assert _train(tmp_path, cache, "cold") == (0, [])
    names = [p.name for p in _entries(cache)]
    for entry in _entries(cache):
        os.truncate(entry, keep)
    code, err = _train(tmp_path, cache, "damaged")
    assert code == 0 and len(err) == 1, err
    assert [p.name for p in _entries(cache)] == names  # rewritten in place (a compile is not byte-stable)
    assert all(p.stat().st_size > 1000 for p in _entries(cache))
    assert _train(tmp_path, cache, "healed") == (0, [])


# As root, a folder's mode does not stop writes: the child drops the capabilities that override it
# (CAP_DAC_OVERRIDE 1, CAP_DAC_READ_SEARCH 2) from the set the program it becomes gets (PR_CAPBSET_DROP 24).
NO_ROOT_OVERRIDE = """
import ctypes
if os.geteuid() == 0:
    for cap in (1, 2):
        assert ctypes.CDLL(None).prctl(24, cap, 0, 0, 0) == 0, "cannot drop root's write override"
"""


def test_a_read_only_cache_folder_is_one_line(tmp_path):
    cache = tmp_path / "xla"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        code, err = _train(tmp_path, cache, "run", setup=NO_ROOT_OVERRIDE)
    finally:
        cache.chmod(0o755)
    assert code == 0 and len(err) == 1, err
    assert err[0].startswith(f"jaxmlp: warning: compile cache {cache}: cannot save compiled programs")
    assert list(cache.iterdir()) == []
    assert (tmp_path / "run" / "summary.json").is_file()


# Files may grow to 40 KiB in the child, as if the disk filled: the epoch program's entry is larger
# (a write past the limit fails with EFBIG; Python ignores SIGXFSZ).
FULL_DISK = "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (40 * 1024, 40 * 1024))"


def test_a_full_disk_leaves_no_truncated_entry(tmp_path):
    cache = tmp_path / "xla"
    code, err = _train(tmp_path, cache, "full", setup=FULL_DISK)
    assert code == 0 and len(err) == 1 and "cannot save compiled programs" in err[0], err
    assert _entries(cache, "jit_epoch") == [] and not any(p.name.startswith(".") for p in cache.iterdir())
    assert _train(tmp_path, cache, "room") == (0, [])  # the missing entry is written once there is room
    assert len(_entries(cache, "jit_epoch")) == 1
    assert _train(tmp_path, cache, "warm") == (0, [])


def test_a_dangling_link_as_cache_dir_is_one_line_and_exit_2(jax_settings, tmp_path, capsys):
    (tmp_path / "cache").symlink_to(tmp_path / "nowhere")
    assert cli.main(["train", "--compile-cache", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a dangling link" in err and not (tmp_path / "r").exists(), err
