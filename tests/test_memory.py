"""The memory estimate: exact for params, optimizer state and data; a refusal names what to lower."""
from __future__ import annotations

import jax
import pytest

from jaxmlp.config import TrainConfig
from jaxmlp.data import load_dataset
from jaxmlp.training import plan_of, run_spec
from jaxmlp.training.memory import (USABLE_FRACTION, MemoryEstimate, check_memory, device_memory_limit,
                                    estimate_memory, format_bytes)
from jaxmlp.training.optim import build_optimizer
from jaxmlp.training.state import init_state

TRAIN = load_dataset("spiral").train  # 300 x 2, 3 classes


def _bytes(tree) -> int:
    return sum(a.nbytes for a in jax.tree.leaves(tree))


@pytest.mark.parametrize("activation,optimizer", [("relu", "adam"), ("prelu", "sgd"), ("maxout", "lamb")])
def test_params_optimizer_and_data_are_counted_exactly(activation, optimizer):
    config = TrainConfig(hidden=(16, 8), activation=activation, optimizer=optimizer)
    spec = run_spec(config, TRAIN)
    _, opt = build_optimizer(config, spec.steps_per_epoch)
    state = init_state(jax.random.key(0), config, spec.sizes, opt)
    estimate = plan_of(config, spec).memory  # the run's own: resident, one device
    assert estimate.params == _bytes(state.params)
    assert estimate.optimizer == _bytes(state.opt_state)
    assert estimate.data == TRAIN.x.nbytes + 300 * 4  # x float32 and int32 labels
    fed = estimate_memory(config, spec, jax.eval_shape(lambda: state), feed="per_process", devices=2)
    b = config.batch_size
    assert fed.data == 2 * (300 // b) * b * (2 + 1) * 4 // 2  # two epochs' batches, half per device


def test_activations_grow_with_the_batch_and_shrink_with_accumulation():
    spec = run_spec(TrainConfig(), TRAIN)
    small, big = (plan_of(TrainConfig(batch_size=b), spec).memory.activations for b in (32, 256))
    accumulated = plan_of(TrainConfig(batch_size=256, accumulate=8), spec).memory.activations
    assert small < big and accumulated == small


def test_a_run_too_large_is_refused_naming_what_to_lower():
    huge = TrainConfig(hidden=(10**10,))
    estimate = plan_of(huge, run_spec(huge, TRAIN)).memory  # shapes only: nothing is allocated
    assert estimate.params == (2 * 10**10 + 10**10 + 10**10 * 3 + 3) * 4
    with pytest.raises(ValueError, match=r"needs about .* TiB .* but the device has 20 GiB; lower hidden"):
        check_memory(estimate, 20 * 2**30)
    big_batch = MemoryEstimate(params=1, optimizer=1, data=1, activations=2**30)
    with pytest.raises(ValueError, match="lower batch_size"):
        check_memory(big_batch, 2**30)
    check_memory(big_batch, int(2**30 / USABLE_FRACTION) + 8)  # fits
    check_memory(big_batch, None)  # an unknown limit refuses nothing


def test_the_device_limit_and_sizes_read_well():
    limit = device_memory_limit()
    assert limit is None or limit > 2**20
    assert [format_bytes(n) for n in (512, 1536, 3 * 2**30, 5 * 2**40)] == ["512 B", "1.5 KiB", "3 GiB", "5 TiB"]
