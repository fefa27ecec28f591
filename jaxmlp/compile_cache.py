"""JAX's persistent compilation cache, on by default: a run whose programs an earlier process
compiled loads them from disk instead of compiling them again.

    compile_cache.configure()                  # fit does this on first use, the CLI before any work
    compile_cache.configure("/scratch/xla")    # jaxmlp train --compile-cache DIR
    compile_cache.configure("off")             # jaxmlp train --no-compile-cache

Where the cache goes, first match wins:
1. the `setting` given (the CLI's --compile-cache DIR or --no-compile-cache), then $JAXMLP_CACHE_DIR
   (a directory, or "off");
2. JAX's own settings when the user made them ($JAX_COMPILATION_CACHE_DIR,
   `jax.config.update("jax_compilation_cache_dir", ...)`, or the cache switched off with
   jax_enable_compilation_cache): left exactly as they are;
3. $XDG_CACHE_HOME/jaxmlp/xla, by default ~/.cache/jaxmlp/xla.

When jaxmlp picks the directory (1 or 3) it caches every program, however fast it compiled
(min compile time 0 s, no minimum entry size): most of a small run's programs compile in
well under JAX's default threshold of 1 s. The cache is code JAX will run: keep it private to
you. It is never pruned; deleting the directory is always safe.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

ENV = "JAXMLP_CACHE_DIR"
OFF = "off"

_configured = False  # configure() ran in this process


def default_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CACHE_HOME/jaxmlp/xla, or ~/.cache/jaxmlp/xla when XDG_CACHE_HOME is unset or empty."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "jaxmlp" / "xla"


def jax_configured_by_user() -> bool:
    """True when JAX's cache directory is set, or its cache switched off, outside jaxmlp."""
    import jax

    return jax.config.jax_compilation_cache_dir is not None or not jax.config.jax_enable_compilation_cache


def configure(setting: str | None = None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Set this process's compilation cache by the rules above; returns the directory jaxmlp
    turned on, or None (turned off, left to the user's JAX settings, or the default directory
    cannot be created).

    `setting`: a directory or "off"; None falls back to $JAXMLP_CACHE_DIR, then the rest.
    Raises ValueError when a directory given explicitly cannot be created.
    """
    global _configured
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    _configured = True
    chosen = setting if setting is not None else environ.get(ENV)
    if chosen is None and jax_configured_by_user():
        return None
    if chosen is not None and chosen.strip().lower() == OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        compilation_cache.reset_cache()
        return None
    directory = Path(chosen).expanduser() if chosen else default_dir(environ)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if chosen:
            raise ValueError(f"compile cache {directory}: cannot create it ({exc.strerror or exc})") from None
        return None  # an unwritable default location: run without the cache rather than fail
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    compilation_cache.reset_cache()  # so the settings hold even after earlier compiles
    return directory


def ensure_configured() -> None:
    """`configure()` unless it already ran in this process (fit calls this before compiling)."""
    if not _configured:
        configure()
