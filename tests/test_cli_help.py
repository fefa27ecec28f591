"""Help and usage errors: a misspelled flag gets a "did you mean" on its one line, found among the
flags of the subcommand it was given to, without importing JAX or numpy; the --divergence-factor
help says what the README says."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jaxmlp import cli
from jaxmlp.config import FIELD_HELP, TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("argv,line", [
    (["train", "--epoch", "3"], "jaxmlp: error: unrecognized arguments: --epoch 3; did you mean --epochs?"),
    (["train", "--learning_rat=0.1"], "jaxmlp: error: unrecognized arguments: --learning_rat=0.1; did you mean "
                                      "--learning-rate?"),
    (["info", "runs/x", "--epochs", "3"], "jaxmlp: error: unrecognized arguments: --epochs 3; did you mean --epoch?"),
    (["sweep", "--gird", "seed=0:2"], "jaxmlp: error: unrecognized arguments: --gird seed=0:2; did you mean --grid?"),
    (["--hepl"], "jaxmlp: error: unrecognized arguments: --hepl; did you mean --help?"),
    (["train", "--bogus"], "jaxmlp: error: unrecognized arguments: --bogus"),  # nothing close: no guess
])
def test_a_misspelled_flag_gets_the_closest_flag_of_its_subcommand(capsys, argv, line):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == line + "\n"


CHILD = """
import contextlib, io, json, sys
from jaxmlp import cli
with contextlib.redirect_stderr(io.StringIO()) as err:
    code = cli.main(["train", "--epoch", "3"])
print(json.dumps([code, err.getvalue(), [m for m in ("jax", "numpy") if m in sys.modules]]))
"""


def test_the_suggestion_imports_neither_jax_nor_numpy(child_env):
    out = subprocess.run([sys.executable, "-c", CHILD], env=child_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [2, "jaxmlp: error: unrecognized arguments: --epoch 3; did you mean --epochs?\n",
                                      []]


def test_divergence_factor_help_states_the_readmes_rule(capsys):
    """The README's exit-code table is the reference: the bound is the factor times the larger of
    the initial loss and the loss of all-zero scores, 10^4 by default."""
    rule = "the larger of the initial loss and the loss of all-zero scores"
    readme = " ".join(README.read_text().split())
    assert re.search(r"`--divergence-factor` × " + rule + r", 10⁴ by default", readme)
    assert rule in FIELD_HELP["divergence_factor"] and TrainConfig().divergence_factor == 1e4
    assert cli.main(["train", "--help"]) == 0
    assert rule in " ".join(capsys.readouterr().out.split())
