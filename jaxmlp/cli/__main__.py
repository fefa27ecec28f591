"""`python -m jaxmlp.cli ...`: the `jaxmlp` command."""
from jaxmlp.cli import main

raise SystemExit(main())
