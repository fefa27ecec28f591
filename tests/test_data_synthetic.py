"""Synthetic sets, Dataset validation, from_arrays, splits, standardization, load_dataset specs."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxmlp.data import (
    DataError,
    Dataset,
    DataSplits,
    blobs,
    checkerboard,
    circles,
    flatten,
    from_arrays,
    load_dataset,
    moons,
    scale_uint8,
    sin_1d,
    spiral,
    standardize,
    stratified_split,
    subsample,
    teacher,
)
from jaxmlp.data.synthetic import teacher_params

# name -> (generator(key), expected x shape, expected y shape, num_classes)
GENERATORS = {
    "spiral": (lambda k: spiral(k, n_per_class=50, num_classes=3), (150, 2), (150,), 3),
    "checkerboard": (lambda k: checkerboard(k, 200), (200, 2), (200,), 2),
    "circles": (lambda k: circles(k, 201, noise=0.05, factor=0.4), (201, 2), (201,), 2),
    "moons": (lambda k: moons(k, 200, noise=0.1), (200, 2), (200,), 2),
    "blobs": (lambda k: blobs(k, 200, num_classes=4, dim=5), (200, 5), (200,), 4),
    "teacher": (lambda k: teacher(k, 128, d_in=6, d_out=3), (128, 6), (128, 3), None),
    "sin": (lambda k: sin_1d(k, 100), (100, 1), (100, 1), None),
}


@pytest.mark.parametrize("make, x_shape, y_shape, num_classes", GENERATORS.values(), ids=GENERATORS.keys())
def test_synthetic_shapes_labels_and_determinism(make, x_shape, y_shape, num_classes):
    a = make(jax.random.key(0))
    assert isinstance(a, Dataset)
    assert a.x.shape == x_shape and a.x.dtype == np.float32
    assert a.y.shape == y_shape and a.num_classes == num_classes
    assert a.feature_shape == x_shape[1:]
    if num_classes is not None:
        assert a.y.dtype == np.int32
        assert set(np.unique(a.y)) == set(range(num_classes))
    b = make(jax.random.key(0))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    c = make(jax.random.key(1))
    assert not np.array_equal(a.x, c.x)


def test_synthetic_accepts_int_seed_and_raw_key():
    np.testing.assert_array_equal(moons(3, 50).x, moons(jax.random.key(3), 50).x)
    assert len(moons(jax.random.PRNGKey(3), 50)) == 50


def test_spiral_is_balanced_and_follows_cs231n_formula():
    ds = spiral(jax.random.key(0), n_per_class=100, num_classes=3, noise=0.0)
    np.testing.assert_array_equal(np.bincount(ds.y), [100, 100, 100])
    r = np.linalg.norm(ds.x, axis=1)
    np.testing.assert_allclose(r[:100], np.linspace(0, 1, 100), atol=1e-6)
    theta = np.arctan2(ds.x[1:100, 0], ds.x[1:100, 1])  # x = r sin t, y = r cos t
    expected = np.linspace(0, 4, 100)[1:]
    np.testing.assert_allclose(np.cos(theta), np.cos(expected), atol=1e-5)


def test_checkerboard_is_xor_of_quadrants():
    ds = checkerboard(jax.random.key(0), 500)
    np.testing.assert_array_equal(ds.y, (ds.x[:, 0] >= 0) ^ (ds.x[:, 1] >= 0))
    assert np.abs(ds.x).max() <= 1.0


def test_circles_radii_and_sin_targets():
    ds = circles(jax.random.key(0), 100, noise=0.0, factor=0.3)
    r = np.linalg.norm(ds.x, axis=1)
    np.testing.assert_allclose(r, np.where(ds.y == 0, 1.0, 0.3), atol=1e-5)
    s = sin_1d(jax.random.key(0), 64)
    assert np.abs(s.x).max() <= np.pi
    np.testing.assert_allclose(s.y, np.sin(s.x), atol=1e-6)


def test_teacher_is_fixed_random_tanh_mlp_shared_across_keys():
    a = teacher(jax.random.key(0), 64, d_in=4, d_out=2, teacher_key=7)
    b = teacher(jax.random.key(1), 64, d_in=4, d_out=2, teacher_key=7)
    (w1, b1), (w2, b2) = teacher_params(7, 4, 2)
    for ds in (a, b):
        np.testing.assert_allclose(ds.y, np.tanh(ds.x @ w1 + b1) @ w2 + b2, rtol=1e-4, atol=1e-5)
    assert ds.y.std() > 0.05


@pytest.mark.parametrize("name", ["spiral", "checkerboard", "circles", "moons", "blobs", "teacher", "sin"])
def test_load_synthetic_spec(name):
    splits = load_dataset(name, seed=1, n_samples=90)
    assert isinstance(splits, DataSplits) and splits.val is None
    assert len(splits.train) == len(splits.test) == 90
    assert not np.array_equal(splits.train.x, splits.test.x), "test must use a different key"
    again = load_dataset(name, seed=1, n_samples=90)
    np.testing.assert_array_equal(splits.train.x, again.train.x)
    other = load_dataset(name, seed=2, n_samples=90)
    assert not np.array_equal(splits.train.x, other.train.x)


def test_unknown_spec_lists_valid_ones():
    with pytest.raises(DataError) as info:
        load_dataset("mnits")
    for valid in ("spiral", "sin", "mnist", "fashion_mnist", "kmnist", "cifar10", "idx:", "npz:", "csv:"):
        assert valid in str(info.value)


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"n_samples": 0}, "n_samples"),
        ({"label_column": "y"}, "label_column"),
    ],
)
def test_load_dataset_rejects_bad_arguments(kwargs, phrase):
    with pytest.raises(DataError, match=phrase):
        load_dataset("moons", **kwargs)


# ---------------------------------------------------------------- Dataset validation

X = np.zeros((4, 3), np.float32)
Y = np.array([0, 1, 2, 1])

BAD_DATASETS = {
    "x-1d": (dict(x=np.zeros(4, np.float32), y=Y, num_classes=3), "2-D"),
    "x-int": (dict(x=np.zeros((4, 3), np.int64), y=Y, num_classes=3), "floating point"),
    "length-mismatch": (dict(x=X, y=Y[:3], num_classes=3), "targets have shape"),
    "label-too-large": (dict(x=X, y=np.array([0, 1, 3, 1]), num_classes=3), "too large"),
    "label-negative": (dict(x=X, y=np.array([0, -1, 2, 1]), num_classes=3), "negative"),
    "nan": (dict(x=np.where(np.eye(4, 3) > 0, np.nan, 0).astype(np.float32), y=Y, num_classes=3), "NaN or Inf"),
    "inf": (dict(x=np.full((4, 3), -np.inf, np.float32), y=Y, num_classes=3), "NaN or Inf"),
    "empty": (dict(x=np.zeros((0, 3), np.float32), y=np.zeros(0, int), num_classes=3), "empty data set"),
    "feature-shape": (dict(x=X, y=Y, num_classes=3, feature_shape=(2, 2)), "feature_shape"),
    "regression-1d": (dict(x=X, y=np.zeros(4, np.float32)), "(N, k)"),
    "float-labels": (dict(x=X, y=Y.astype(float), num_classes=3), "integer"),
}


@pytest.mark.parametrize("kwargs, phrase", BAD_DATASETS.values(), ids=BAD_DATASETS.keys())
def test_dataset_validation(kwargs, phrase):
    with pytest.raises(DataError, match=phrase.replace("(", r"\(").replace(")", r"\)")) as info:
        Dataset(name="my-set", **kwargs)
    assert "my-set" in str(info.value)


def test_dataset_len_repr_and_float64_coercion():
    ds = Dataset(X.astype(np.float64), Y, "d", 3)
    assert len(ds) == 4 and ds.x.dtype == np.float32 and ds.y.dtype == np.int32
    assert ds.feature_shape == (3,) and "num_classes=3" in repr(ds)


def test_from_arrays_infers_task_and_scales_uint8():
    images = np.full((5, 2, 3), 255, np.uint8)
    cls = from_arrays(images, np.array([0, 1, 2, 1, 0]))
    assert cls.num_classes == 3 and cls.feature_shape == (2, 3) and cls.x.shape == (5, 6)
    assert cls.x.max() == 1.0
    reg = from_arrays(np.ones((5, 2)), np.linspace(0, 1, 5))
    assert reg.num_classes is None and reg.y.shape == (5, 1)
    forced = from_arrays(np.ones((5, 2)), np.array([0, 1, 0, 1, 0]), num_classes=10)
    assert forced.num_classes == 10
    with pytest.raises(DataError, match="arrays"):
        from_arrays(np.ones((2, 2)), np.array([0, 4]), num_classes=3)
    with pytest.raises(DataError, match="numeric"):
        from_arrays(np.array([["a"], ["b"]]), np.array([0, 1]))


def test_scale_and_flatten():
    img = np.array([[[0, 255], [51, 102]]], np.uint8)
    np.testing.assert_allclose(scale_uint8(img), [[[0, 1], [0.2, 0.4]]], rtol=1e-6)
    assert flatten(np.zeros((3, 4, 5))).shape == (3, 20)
    assert flatten(np.zeros((0, 4, 5))).shape == (0, 20)
    with pytest.raises(DataError, match="uint8"):
        scale_uint8(np.zeros(3, np.float32))


# ---------------------------------------------------------------- splits and standardization


def _imbalanced(n_per_class=(500, 300, 200)) -> Dataset:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.arange(len(y), dtype=np.float32)[:, None]  # unique id per example
    return Dataset(x, y, "imb", len(n_per_class))


@pytest.mark.parametrize("key_or_seed", [0, 123, jax.random.key(5)], ids=["seed0", "seed123", "key"])
def test_stratified_split_keeps_class_proportions(key_or_seed):
    ds = _imbalanced()
    train, val = stratified_split(key_or_seed, ds, 0.2)
    np.testing.assert_array_equal(np.bincount(val.y), [100, 60, 40])
    np.testing.assert_array_equal(np.bincount(train.y), [400, 240, 160])
    ids = np.concatenate([train.x[:, 0], val.x[:, 0]])
    np.testing.assert_array_equal(np.sort(ids), ds.x[:, 0])  # disjoint and complete
    again = stratified_split(key_or_seed, ds, 0.2)[1]
    np.testing.assert_array_equal(val.x, again.x)


def test_stratified_split_rounding_and_regression():
    train, val = stratified_split(0, _imbalanced((7, 5, 3)), 0.3)
    assert len(val) == round(0.3 * 15) and len(train) + len(val) == 15
    assert set(np.unique(val.y)) == {0, 1, 2}
    reg = teacher(0, 100, d_in=2)
    rt, rv = stratified_split(1, reg, 0.25)
    assert len(rv) == 25 and len(rt) == 75
    assert stratified_split(1, reg, 0.25)[1].x.tobytes() == rv.x.tobytes()
    assert stratified_split(2, reg, 0.25)[1].x.tobytes() != rv.x.tobytes()
    with pytest.raises(DataError, match="empty"):
        stratified_split(0, _imbalanced((2, 1)), 0.01)


def test_subsample_is_stratified_and_seeded():
    ds = _imbalanced()
    sub = subsample(0, ds, 100)
    np.testing.assert_array_equal(np.bincount(sub.y), [50, 30, 20])
    with pytest.raises(DataError, match="exceeds"):
        subsample(0, ds, 5000)


def test_standardize_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    train = Dataset(rng.normal(3.0, 2.0, (500, 4)).astype(np.float32), np.zeros(500, int), "tr", 2)
    test = Dataset(rng.normal(-5.0, 0.5, (50, 4)).astype(np.float32), np.zeros(50, int), "te", 2)
    const = Dataset(np.ones((5, 4), np.float32), np.zeros(5, int), "c", 2)
    tr, none, te, stats = standardize(train, None, test)
    assert none is None
    np.testing.assert_allclose(tr.x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(tr.x.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(stats.mean, train.x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(te.x, (test.x - train.x.mean(0)) / train.x.std(0), rtol=1e-4, atol=1e-4)
    assert te.x.mean() < -3, "test must be shifted by the train mean, not its own"
    c, stats_c = standardize(const)
    np.testing.assert_array_equal(c.x, 0)
    np.testing.assert_array_equal(stats_c.std, 1)


def test_load_dataset_val_split_then_standardize_on_train_only():
    raw = load_dataset("blobs", seed=4, val_fraction=0.25)
    std = load_dataset("blobs", seed=4, val_fraction=0.25, standardize=True)
    assert len(raw.val) == 250 and len(raw.train) == 750
    class_counts = np.bincount(raw.train.y) + np.bincount(raw.val.y)
    assert np.abs(np.bincount(raw.val.y) - 0.25 * class_counts).max() < 1
    mean, sd = raw.train.x.mean(0), raw.train.x.std(0)
    for a, b in [(raw.val, std.val), (raw.test, std.test), (raw.train, std.train)]:
        np.testing.assert_allclose(b.x, (a.x - mean) / sd, rtol=1e-4, atol=1e-4)
