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

In a directory jaxmlp picks, each entry carries a digest binding it to its key (the hash JAX
computes from the lowered program, its compile options and the devices), checked before JAX
runs it: a damaged entry, or a sound one under another key (a swapped or copied file), is a
miss, compiled again and replaced. Entries are written to a temporary file and renamed, so a
full disk or a killed process never leaves a truncated one. Problems with the cache (a bad
entry, a read-only folder, a full disk) never stop a run and cost at most one line on stderr
per process. A cache JAX's own settings chose stays JAX's, unverified.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Mapping

from jaxmlp.atomic import atomic_file, read_regular

ENV = "JAXMLP_CACHE_DIR"
OFF = "off"

_configured = False  # configure() ran in this process
_warned = False  # this process has printed its one line about the cache

# An entry: MAGIC, then sha256(key NUL payload), then JAX's payload. Its own file suffix keeps it
# apart from JAX's unverified "-cache" entries, should a JAX setting ever point at the same folder.
MAGIC = b"jaxmlp-xla-entry-1\n"
SUFFIX = "-jaxmlp"


def _seal(key: str, payload: bytes) -> bytes:
    return hashlib.sha256(key.encode() + b"\0" + payload).digest()


def _warn_once(directory: Path, problem: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"jaxmlp: warning: compile cache {directory}: {problem}", file=sys.stderr, flush=True)


class VerifiedCache:
    """JAX's cache backend (the get/put of jax._src.compilation_cache_interface.CacheInterface)
    over one directory, with entries bound to their keys. Never raises: any problem is a miss
    (get) or an entry not saved (put), reported once per process."""

    def __init__(self, directory: Path):
        self._path = directory  # the attribute JAX's CacheInterface declares and logs

    def entry(self, key: str) -> Path:
        return self._path / f"{key}{SUFFIX}"

    def get(self, key: str) -> bytes | None:
        try:
            data = read_regular(self.entry(key))  # (never blocks on a FIFO put there)
        except FileNotFoundError:
            return None
        except OSError as exc:
            _warn_once(self._path, f"cannot read an entry ({exc.strerror or exc}); compiling instead")
            return None
        head = len(MAGIC) + hashlib.sha256().digest_size
        payload = data[head:]
        if data[:len(MAGIC)] != MAGIC or data[len(MAGIC):head] != _seal(key, payload):
            _warn_once(self._path, "an entry is damaged or not the program it is filed under; "
                                   "compiling it again to replace it")
            return None
        return payload

    def put(self, key: str, value: bytes) -> None:
        try:
            self._path.mkdir(parents=True, exist_ok=True)  # made with the first entry: a command that stops
            with atomic_file(self.entry(key)) as out:  # before compiling makes none; a replace heals a bad
                out.write(MAGIC)                       # entry and never writes through a link there
                out.write(_seal(key, value))
                out.write(value)
        except OSError as exc:
            _warn_once(self._path, f"cannot save compiled programs ({exc.strerror or exc}); "
                                   "this run compiles without saving them")


def _install(directory: Path) -> bool:
    """Make a VerifiedCache over `directory` the backend of JAX's persistent cache; False where
    this JAX lacks the hook."""
    from jax._src import compilation_cache as jax_cache

    jax_cache.reset_cache()  # so the settings hold even after earlier compiles
    # A private hook (jax 0.10-0.11): JAX builds its default cache only while `_cache` is None.
    # A JAX without it keeps its default backend over the same directory: unverified entries.
    if not (hasattr(jax_cache, "_cache") and hasattr(jax_cache, "_get_cache")):
        return False
    jax_cache._cache = VerifiedCache(directory)
    return True


def _unusable(directory: Path) -> str | None:
    """Why `directory` cannot hold the cache, or None. Read-only: the first entry saved makes it. (A
    read-only cache is usable: its entries are read, and the one line says why none are saved.)"""
    if directory.exists():
        return None if directory.is_dir() else "exists and is not a directory"
    if directory.is_symlink():
        return "cannot create it (a dangling link)"
    existing = directory.parent
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            return "cannot create it (a dangling link)"
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create it ({existing} is not a directory)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot create it ({existing}: permission denied)"
    return None


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
    problem = _unusable(directory)
    if problem:
        if chosen:
            raise ValueError(f"compile cache {directory}: {problem}")
        return None  # an unusable default location: run without the cache rather than fail
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if not _install(directory):  # JAX's own backend expects the directory to be there
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            jax.config.update("jax_enable_compilation_cache", False)
            if chosen:
                raise ValueError(f"compile cache {directory}: cannot create it ({exc.strerror or exc})") from None
            return None
    return directory


def ensure_configured() -> None:
    """`configure()` unless it already ran in this process (fit calls this before compiling)."""
    if not _configured:
        configure()
