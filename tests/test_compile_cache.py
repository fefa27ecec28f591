"""compile_cache: where the persistent XLA cache goes, and that a user's own JAX setting wins."""
from __future__ import annotations

from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from jaxmlp import cli, compile_cache

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
    assert directory == tmp_path / "jaxmlp" / "xla" and directory.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(directory)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
    jax.jit(lambda v: v * 3 + 1)(jax.numpy.arange(7.0)).block_until_ready()  # a fresh, fast program
    assert any(directory.iterdir())  # written although it compiled in far less than JAX's default 1 s


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
