"""names.py: every table names exactly what its implementing module provides."""
from __future__ import annotations

import jax

from jaxmlp.activations import get_activation, resolve_options
from jaxmlp.losses import LOSSES, get_loss
from jaxmlp.mlp import init_mlp
from jaxmlp.names import ACTIVATION_OPTIONS, ACTIVATIONS, INITS, LOSS_ALIASES, LOSS_NAMES, PRECISIONS
from jaxmlp.precision import get_policy


def test_activations_and_their_options():
    assert tuple(ACTIVATION_OPTIONS) == ACTIVATIONS
    for name in ACTIVATIONS:
        assert get_activation(name).name == name
        assert resolve_options(name) == ACTIVATION_OPTIONS[name]


def test_losses_and_aliases():
    assert tuple(LOSSES) == LOSS_NAMES
    for alias, name in LOSS_ALIASES.items():
        assert get_loss(alias) is LOSSES[name]


def test_inits_and_precisions():
    for init in INITS:
        (layer,) = init_mlp(jax.random.key(0), (3, 2), init=init)
        assert layer.W.shape == (3, 2)
    assert [get_policy(p).name for p in PRECISIONS] == list(PRECISIONS)
