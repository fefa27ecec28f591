"""batching.pad_rows: whole batches of row indices, the padding masked out."""
import numpy as np
import pytest

from jaxmlp.batching import pad_rows


@pytest.mark.parametrize("n,batch_size,multiple,shape", [
    (10, 4, 1, (3, 4)),  # 10 rows: two full batches and one of 2 real rows
    (8, 4, 1, (2, 4)),  # no padding
    (3, 64, 1, (1, 3)),  # a batch no larger than the data
    (10, 4, 3, (2, 6)),  # B = 4 rounded up to a multiple of 3
    (5, 64, 4, (1, 8)),  # B = min(64, 5) = 5 rounded up to 8
    (1, 1, 1, (1, 1)),
])
def test_shapes_and_mask(n, batch_size, multiple, shape):
    rows, mask = pad_rows(n, batch_size, multiple)
    assert rows.shape == mask.shape == shape
    assert rows.dtype == np.int32 and mask.dtype == np.bool_
    assert shape[1] % multiple == 0
    assert int(mask.sum()) == n
    np.testing.assert_array_equal(rows[mask], np.arange(n))  # every real row once, in order
    np.testing.assert_array_equal(rows[~mask], 0)  # the padding repeats row 0
    assert mask.ravel()[:n].all() and not mask.ravel()[n:].any()  # the padding is the tail


def test_gathered_batches_give_back_the_data():
    x = np.arange(30.0).reshape(10, 3)
    rows, mask = pad_rows(len(x), 4)
    xb = x[rows]  # (3, 4, 3)
    assert xb.shape == (3, 4, 3)
    np.testing.assert_array_equal(xb[mask], x)
    assert np.mean(xb[mask]) == np.mean(x)  # a masked mean is exact


@pytest.mark.parametrize("n,batch_size,multiple", [(0, 4, 1), (10, 0, 1), (10, 4, 0), (-1, 4, 1)])
def test_bad_input_raises(n, batch_size, multiple):
    with pytest.raises(ValueError, match="pad_rows needs n, batch_size and multiple >= 1"):
        pad_rows(n, batch_size, multiple)
