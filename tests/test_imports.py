"""What importing costs: `import jaxmlp`, `jaxmlp --help`, `jaxmlp train --help` and `jaxmlp --version`
import neither JAX nor numpy (the package's public names load on first use, and each command's
heavy imports wait until it runs), and every public name still resolves."""
from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import jaxmlp
from jaxmlp.training.fit import fit

STEPS = """
import contextlib, io, json, sys
seen = {}
def heavy():
    return [m for m in ("jax", "numpy") if m in sys.modules]
import jaxmlp
jaxmlp.TrainConfig, jaxmlp.ACTIVATIONS
seen["import jaxmlp"] = heavy()
from jaxmlp import cli
for argv in (["--help"], ["train", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = cli.main(argv)
    assert code == 0 and "usage: jaxmlp" in out.getvalue(), (argv, code)
    seen["jaxmlp " + " ".join(argv)] = heavy()
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert cli.main(["--version"]) == 0 and out.getvalue() == "jaxmlp " + jaxmlp.__version__ + "\\n", out.getvalue()
seen["jaxmlp --version"] = heavy()
jaxmlp.fit
seen["jaxmlp.fit"] = heavy()
print(json.dumps(seen))
"""


def test_help_imports_neither_jax_nor_numpy(child_env):
    out = subprocess.run([sys.executable, "-c", STEPS], env=child_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"import jaxmlp": [], "jaxmlp --help": [], "jaxmlp train --help": [],
                                      "jaxmlp --version": [], "jaxmlp.fit": ["jax", "numpy"]}


def test_public_names_resolve_lazily():
    assert jaxmlp.fit is fit and jaxmlp.__version__ == "0.1.0" == importlib.metadata.version("jaxmlp")
    from jaxmlp import TrainingDiverged, init_mlp  # noqa: F401  (from-imports go through __getattr__ too)

    for name in jaxmlp.__all__:
        assert getattr(jaxmlp, name) is not None, name
    assert set(jaxmlp.__all__) <= set(dir(jaxmlp))
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        jaxmlp.nosuch  # noqa: B018
