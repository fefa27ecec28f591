"""Where the named data sets come from: their files, checksums, mirrors and cache directory.

`DATASET_URLS` holds the canonical base URLs; a `mirrors=` argument or the environment
variable ``JAXMLP_MIRROR`` overrides them. ``JAXMLP_MIRROR`` may contain ``{name}``,
replaced by the data set name (e.g. ``http://host/data/{name}/``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from jaxmlp.data.errors import DataError

MIRROR_ENV = "JAXMLP_MIRROR"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One downloadable file and its known checksums.

    ``decompressed=True`` means the checksums are of the gunzipped bytes, so any gzip
    wrapping of the same content is accepted (used for MNIST, whose mirrors differ).
    """

    filename: str
    sha256: str | None = None
    md5: str | None = None
    decompressed: bool = False


DATASET_URLS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    "kmnist": ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

DATASET_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (  # checksums of the decompressed canonical IDX files
        RemoteFile(
            "train-images-idx3-ubyte.gz",
            sha256="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            md5="6bbc9ace898e44ae57da46a324031adb",
            decompressed=True,
        ),
        RemoteFile(
            "train-labels-idx1-ubyte.gz",
            sha256="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            md5="a25bea736e30d166cdddb491f175f624",
            decompressed=True,
        ),
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            md5="2646ac647ad5339dbf082846283269ea",
            decompressed=True,
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            md5="27ae3e4e09519cfbb04c329615203637",
            decompressed=True,
        ),
    ),
    "fashion_mnist": (  # checksums of the published .gz files
        RemoteFile(
            "train-images-idx3-ubyte.gz",
            sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        RemoteFile(
            "train-labels-idx1-ubyte.gz",
            sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            md5="25c81989df183df01b3e8a0aad5dffbe",
        ),
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            md5="bef4ecab320f06d8554ea6380940ec79",
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            md5="bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
    "kmnist": (  # checksums of the published .gz files
        RemoteFile(
            "train-images-idx3-ubyte.gz",
            sha256="51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            md5="bdb82020997e1d708af4cf47b453dcf7",
        ),
        RemoteFile(
            "train-labels-idx1-ubyte.gz",
            sha256="e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            md5="e144d726b3acfaa3e44228e80efcd344",
        ),
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            sha256="edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            md5="5c965bf0a639b31b8f53240b1b52f4d7",
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            sha256="20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            md5="7320c461ea6c1c855c0b718fb2a4b134",
        ),
    ),
    "cifar10": (
        RemoteFile(
            "cifar-10-binary.tar.gz",
            sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            md5="c32a1d4ab5d03f1284b67883e8d87530",
        ),
    ),
}


def default_cache_dir(name: str) -> Path:
    """``~/.cache/jaxmlp/<name>`` (honours $XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxmlp" / name


def resolve_mirrors(name: str, mirrors: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """Base URLs to try for data set `name`: `mirrors`, else $JAXMLP_MIRROR, else DATASET_URLS."""
    if mirrors is None and os.environ.get(MIRROR_ENV):
        mirrors = os.environ[MIRROR_ENV]
    if mirrors is None:
        if name not in DATASET_URLS:
            raise DataError(f"{name}: no download location known; valid: {', '.join(DATASET_URLS)}")
        return DATASET_URLS[name]
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    return tuple(m.replace("{name}", name) for m in mirrors)
