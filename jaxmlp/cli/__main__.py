"""`python -m jaxmlp.cli ...`: the `jaxmlp` command."""
from jaxmlp.cli.program import run

run()
