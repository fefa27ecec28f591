"""Opt-in, checksummed, atomic downloads of the named data sets (urllib only).

A file is streamed into a temporary file in the destination directory, checked against
its known SHA-256 / MD5, fsynced and only then renamed into place with `os.replace`.
Any failure (network error, dropped connection, short body, checksum mismatch, stall,
Ctrl-C) deletes the temporary file and every directory the download created that is
still empty, so the cache never holds a partial or unverified file or an empty folder.

Stalls: `timeout` (seconds, default DOWNLOAD_TIMEOUT) bounds every wait on the network,
connecting and each read; a server silent for longer raises DataError naming the URL
and the timeout. (Name resolution is the resolver's and is not covered.)
Progress: a `progress(url, received, total)` callable, if given, is called with
``(url, 0, None)`` before connecting and after every read (up to 1 MiB each) with the
bytes received so far and the Content-Length (None if the server sends none). Library
code prints nothing; a command line passes a printer.

What to fetch, from where, and the cache directory are in `jaxmlp.data.sources`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import numbers
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from jaxmlp.data.errors import DataError
from jaxmlp.data.sources import DATASET_FILES, default_cache_dir, resolve_mirrors

DOWNLOAD_TIMEOUT = 30.0
Progress = Callable[[str, int, "int | None"], None]
_CHUNK = 1 << 20


def download_dataset(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    mirrors: str | Sequence[str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: Progress | None = None,
) -> Path:
    """Downloads every file of data set `name` missing from `cache_dir` and returns that dir.

    Each file is tried on each mirror in turn; DataError lists every failure if none works.
    `timeout` and `progress` as in `download_file`.
    """
    if name not in DATASET_FILES:
        raise DataError(f"{name}: not downloadable; valid: {', '.join(DATASET_FILES)}")
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir(name)
    bases = resolve_mirrors(name, mirrors)
    for remote in DATASET_FILES[name]:
        dest = directory / remote.filename
        if dest.is_file():
            continue
        errors = []
        for base in bases:
            url = urllib.parse.urljoin(base if base.endswith("/") else base + "/", remote.filename)
            try:
                download_file(url, dest, sha256=remote.sha256, md5=remote.md5,
                              decompressed=remote.decompressed, timeout=timeout, progress=progress)
                break
            except DataError as exc:
                errors.append(str(exc))
        else:
            raise DataError(f"{name}: could not download {remote.filename}: " + "; ".join(errors))
    return directory


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    decompressed: bool = False,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: Progress | None = None,
) -> Path:
    """Downloads `url` to `dest` atomically, verifying the given checksums.

    Raises DataError when the server cannot be reached, stalls for more than `timeout`
    seconds, sends a body shorter than its Content-Length, or a checksum differs; it
    leaves neither `dest`, nor a temporary file, nor a directory it created empty behind.
    `progress` is described in the module docstring.
    """
    dest = Path(dest)
    timeout = check_timeout(timeout)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise DataError(f"{url}: unsupported URL scheme {scheme!r}")
    created = _make_dirs(dest.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch_into(url, out, timeout, progress)
                out.flush()
                os.fsync(out.fileno())
            _verify(tmp, url, sha256=sha256, md5=md5, decompressed=decompressed)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except BaseException:
        _remove_empty(created)
        raise
    _fsync_dir(dest.parent)
    return dest


def check_timeout(timeout: object) -> float:
    """`timeout` as a float, if it is a positive finite number of seconds; DataError otherwise."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not (
        math.isfinite(timeout) and timeout > 0
    ):
        raise DataError(f"download timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _make_dirs(directory: Path) -> list[Path]:
    """Creates `directory` and its missing parents; returns the ones it created, deepest first."""
    missing = []
    d = directory
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{directory}: cannot create cache directory ({exc})") from None
    return missing


def _remove_empty(created: list[Path]) -> None:
    """Removes the directories in `created` (deepest first) while they are empty."""
    for d in created:
        try:
            d.rmdir()
        except OSError:
            return


def _fetch_into(url: str, out, timeout: float, progress: Progress | None) -> None:
    """Streams the body of `url` into the open binary file `out`, checking Content-Length."""
    request = urllib.request.Request(url, headers={"User-Agent": "jaxmlp"})
    received, length = 0, None
    if progress is not None:
        progress(url, 0, None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            header = response.headers.get("Content-Length")
            length = int(header) if header is not None and header.isdigit() else None
            while chunk := response.read1(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(url, received, length)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: download failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _stalled(url, received, timeout) from None
        raise DataError(f"{url}: download failed: {exc.reason}") from None
    except TimeoutError:
        raise _stalled(url, received, timeout) from None
    except (http.client.HTTPException, OSError) as exc:
        raise DataError(
            f"{url}: download interrupted after {received} bytes ({type(exc).__name__}: {exc})"
        ) from None
    if length is not None and received != length:
        raise DataError(f"{url}: download interrupted: received {received} of {length} bytes")


def _stalled(url: str, received: int, timeout: float) -> DataError:
    return DataError(
        f"{url}: download stalled after {received} bytes: nothing received for {timeout:g} s "
        "(the download timeout)"
    )


def _verify(path: Path, url: str, *, sha256: str | None, md5: str | None, decompressed: bool) -> None:
    digests = {}
    if sha256:
        digests["sha256"] = (hashlib.sha256(), sha256.lower())
    if md5:
        digests["md5"] = (hashlib.md5(usedforsecurity=False), md5.lower())
    if not digests:
        return
    what = "decompressed content" if decompressed else "file"
    try:
        with (gzip.open(path, "rb") if decompressed else open(path, "rb")) as f:
            while chunk := f.read(_CHUNK):
                for h, _ in digests.values():
                    h.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{url}: downloaded file is not a valid gzip stream ({exc})") from None
    for algo, (h, expected) in digests.items():
        if h.hexdigest() != expected:
            raise DataError(
                f"{url}: checksum mismatch ({algo} of the {what} is {h.hexdigest()}, "
                f"expected {expected}); the download was discarded"
            )


def _fsync_dir(directory: Path) -> None:
    """Makes the rename durable where the platform allows fsync on directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
