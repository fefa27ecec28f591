"""The task rule and the class-count rule (jaxmlp.data.labels) and how the loaders apply them.

Bad files are in the table of tests/test_data_files.py; here are the rules' boundaries and
the inputs that must keep loading.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxmlp.data import DataError, from_arrays, load_csv, load_dataset, load_npz
from jaxmlp.data.labels import MAX_CLASSES, SPARE_CLASSES, class_count, class_limit, whole_numbers

X40 = np.ones((40, 2))


@pytest.mark.parametrize(
    "distinct, limit",
    [(1, 1 + SPARE_CLASSES), (3, 1003), (SPARE_CLASSES, 2000), (5000, 10_000), (60_000, MAX_CLASSES)],
)
def test_class_limit(distinct, limit):
    assert class_limit(distinct) == limit


def test_class_count_accepts_up_to_the_limit_and_names_the_largest_label_beyond():
    labels = np.array([0, 1, 2])
    assert class_count(labels, "f") == 3
    assert class_count(np.array([0, 1, 1002]), "f") == 1003  # 1000 unused ids: allowed
    with pytest.raises(DataError, match=r"f: largest label 1003 means 1004 classes, but only 3 distinct"):
        class_count(np.array([0, 1, 1003]), "f")
    assert class_count(labels, "f", declared=1003) == 1003
    with pytest.raises(DataError, match=r"num_classes 1004 is declared \(largest label 2\)"):
        class_count(labels, "f", declared=1004)
    many = np.arange(MAX_CLASSES + 1)  # every class present, but over the cap
    with pytest.raises(DataError, match="at most 100000"):
        class_count(many, "f")


def test_whole_numbers():
    values = np.array([0.0, -3.0, 1.5, np.nan, np.inf, 2.0**53, 2.0**52])
    np.testing.assert_array_equal(whole_numbers(values), [True, True, False, False, False, False, True])


def _fractional(count: int) -> np.ndarray:
    """40 class labels 0..3 with `count` of them turned fractional (+0.5), from example 5 on."""
    y = (np.arange(40) % 4).astype(np.float64)
    y[5 : 5 + count] += 0.5
    return y


@pytest.mark.parametrize("count, mixed", [(0, False), (1, True), (2, True), (3, False), (20, False)])
def test_auto_mixed_rule_boundary(count, mixed):
    """Mixed = 1 .. max(1, N // 20) fractional labels among class labels; 40 labels allow 2."""
    y = _fractional(count)
    if mixed:
        with pytest.raises(DataError, match=r"label 1\.5 at example 5 is not a whole number"):
            from_arrays(X40, y)
    else:
        ds = from_arrays(X40, y)
        assert ds.num_classes is None and ds.y.shape == (40, 1)  # floats stay regression
    ds = from_arrays(X40, y, task="regression")
    assert ds.num_classes is None
    np.testing.assert_allclose(ds.y[:, 0], y)


@pytest.mark.parametrize(
    "y",
    [
        np.where(np.arange(40) == 7, 0.5, 250_000.0),  # whole numbers too far apart to be classes
        np.where(np.arange(40) == 7, 0.5, -1.0 - np.arange(40) % 3),  # negative whole numbers
        np.array([0.0, 0.5, 1.0, 1.5]),  # two of four: more than a few
    ],
    ids=["prices", "negative", "halves"],
)
def test_auto_regression_targets_with_one_fraction_stay_regression(y):
    assert from_arrays(np.ones((len(y), 2)), y).num_classes is None


def test_one_fractional_label_in_a_tiny_set_is_still_caught():
    with pytest.raises(DataError, match=r"label 1\.5 at example 2 .* 2 of the 3 labels"):
        from_arrays(np.ones((3, 2)), [0.0, 1.0, 1.5])


def test_task_classification_and_regression(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,0\n2,1\n3,2\n4,1\n")
    assert load_csv(path).num_classes == 3
    assert load_csv(path, task="classification").num_classes == 3
    regression = load_csv(path, task="regression")
    assert regression.num_classes is None and regression.y[:, 0].tolist() == [0.0, 1.0, 2.0, 1.0]
    float_path = tmp_path / "f.npz"
    np.savez(float_path, x=np.ones((4, 2)), y=np.array([0.0, 1.0, 2.0, 1.0]))
    assert load_npz(float_path)[0].num_classes is None  # float whole numbers in an npz: regression, as before
    assert load_npz(float_path, task="classification")[0].num_classes == 3


def test_npz_test_split_follows_the_train_task(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, x=np.ones((4, 2)), y=np.array([0.5, 1.0, 2.5, 3.0]), x_test=np.ones((2, 2)),
             y_test=np.array([1, 2]))
    train, test = load_npz(path)
    assert train.num_classes is None and test.num_classes is None and test.y.dtype == np.float32
    np.savez(path, x=np.ones((4, 2)), y=np.arange(4), x_test=np.ones((2, 2)), y_test=np.array([1.0, 2.5]))
    with pytest.raises(DataError, match=r"s\.npz: label 2\.5 at example 1 is not a whole number"):
        load_npz(path)


@pytest.mark.parametrize(
    "spec, task, ok",
    [
        ("spiral", "classification", True),
        ("spiral", "regression", False),
        ("sin", "regression", True),
        ("sin", "classification", False),
        ("teacher", "classification", False),
    ],
)
def test_fixed_task_sets(spec, task, ok):
    if ok:
        assert load_dataset(spec, task=task).train.is_classification == (task == "classification")
    else:
        with pytest.raises(DataError, match=f"{spec}: task='{task}' does not apply"):
            load_dataset(spec, task=task)


@pytest.mark.parametrize("call", [
    lambda: load_dataset("spiral", task="ordinal"),
    lambda: load_csv("never-read.csv", task="ordinal"),
    lambda: load_npz("never-read.npz", task="ordinal"),
    lambda: from_arrays(np.ones((2, 1)), [0, 1], task="ordinal"),
])
def test_unknown_task_is_refused_before_reading(call):
    with pytest.raises(DataError, match="task must be one of auto, classification, regression; got 'ordinal'"):
        call()
