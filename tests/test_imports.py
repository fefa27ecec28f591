"""What importing costs: `import jaxmlp`, `jaxmlp --help`, `jaxmlp train --help` and `jaxmlp --version`
import no JAX (the package's public names load on first use), and every public name still resolves."""
from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import jaxmlp
from jaxmlp import train

STEPS = """
import contextlib, io, json, sys
seen = {}
import jaxmlp
jaxmlp.TrainConfig, jaxmlp.ACTIVATIONS
seen["import jaxmlp"] = "jax" in sys.modules
from jaxmlp import cli
for argv in (["--help"], ["train", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = cli.main(argv)
    assert code == 0 and "usage: jaxmlp" in out.getvalue(), (argv, code)
    seen["jaxmlp " + " ".join(argv)] = "jax" in sys.modules
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert cli.main(["--version"]) == 0 and out.getvalue() == "jaxmlp " + jaxmlp.__version__ + "\\n", out.getvalue()
seen["jaxmlp --version"] = "jax" in sys.modules
jaxmlp.fit
seen["jaxmlp.fit"] = "jax" in sys.modules
print(json.dumps(seen))
"""


def test_help_imports_no_jax(child_env):
    out = subprocess.run([sys.executable, "-c", STEPS], env=child_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"import jaxmlp": False, "jaxmlp --help": False,
                                      "jaxmlp train --help": False, "jaxmlp --version": False,
                                      "jaxmlp.fit": True}


def test_public_names_resolve_lazily():
    assert jaxmlp.fit is train.fit and jaxmlp.__version__ == "0.1.0" == importlib.metadata.version("jaxmlp")
    from jaxmlp import TrainingDiverged, init_mlp  # noqa: F401  (from-imports go through __getattr__ too)

    for name in jaxmlp.__all__:
        assert getattr(jaxmlp, name) is not None, name
    assert set(jaxmlp.__all__) <= set(dir(jaxmlp))
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        jaxmlp.nosuch  # noqa: B018
