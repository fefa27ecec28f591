"""The one `Array` alias the JAX-importing modules share (the JAX-free modules, `names.py` and
`config.py`, do not import it)."""
from __future__ import annotations

import jax

Array = jax.Array
