"""`python -m jaxmlp.demos NAME [--quick] [--out-dir DIR] [--seed N]`."""
from jaxmlp.demos import main

raise SystemExit(main())
