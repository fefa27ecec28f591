"""Run plots: the loss/accuracy panels with train, val and the final test point, the decision
boundary with axis labels and a class legend; legends beside the axes, never over the data."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba

from jaxmlp import plots
from jaxmlp.demos.common import POINT_COLORS
from jaxmlp.training.history import History


def history(classification: bool = True, epochs: int = 6) -> History:
    h = History()
    for e in range(1, epochs + 1):
        metric = {"train_accuracy": 0.5 + e / 20, "val_accuracy": 0.45 + e / 20} if classification else \
            {"train_mse": 1.0 / e, "val_mse": 1.2 / e}
        h.append({"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "lr": 0.01, "seconds": 0.1, **metric})
    h.best_epoch = epochs - 1
    name = "accuracy" if classification else "mse"
    h.final = {"train": {"loss": 0.2, name: 0.8}, "test": {"loss": 0.25, name: 0.75}}
    return h


def outside(fig, ax) -> bool:
    """Whether the axes' legend lies wholly outside its plotting area (drawn on an Agg canvas)."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box, legend = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
    return not box.overlaps(legend)


def test_loss_curve_panels_have_train_val_and_test():
    fig = plots.loss_curve_figure(history(), test_epoch=5)
    loss_ax, acc_ax = fig.axes
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[:2] in (["train (minibatch objective)", "val"], ["train (whole set)", "val"])
        test_value = 0.25 if name == "loss" else 0.75
        assert "best val epoch 5" in labels and f"test (epoch 5 params): {test_value:.4g}" in labels
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel().startswith(name) and outside(fig, ax)
    test_point = [line for line in acc_ax.get_lines() if line.get_label().startswith("test")][0]
    assert list(test_point.get_xdata()) == [5] and list(test_point.get_ydata()) == [0.75]
    assert loss_ax.get_yscale() == "log" and acc_ax.get_ylim() == (0, 1.02)


def test_loss_curve_of_regression_shows_mse_and_the_last_epoch():
    fig = plots.loss_curve_figure(history(classification=False))
    assert fig.axes[1].get_title() == "mse" and fig.axes[1].get_yscale() == "log"
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "test (epoch 6 params): 0.75" in labels


@pytest.mark.parametrize("n_classes", [3, 7])  # colours repeat past the palette
def test_decision_boundary_has_labels_and_a_class_legend_outside(n_classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 2)).astype(np.float32) * np.array([1.0, 100.0], np.float32)  # other units
    y = np.arange(70) % n_classes
    fig = plots.decision_boundary_figure(lambda g: np.stack([g[:, 0] * c for c in range(n_classes)], axis=1),
                                         x, y, resolution=40, axis_labels=("a", "b"))
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"class {c}" for c in range(n_classes)]
    assert outside(fig, ax)
    points = ax.collections[1:]  # after the region mesh: one scatter per class, dark with white edges
    assert [tuple(p.get_facecolor()[0]) for p in points[:3]] == [to_rgba(c) for c in POINT_COLORS[:3]]
    assert tuple(points[0].get_edgecolor()[0]) == to_rgba("white")
    assert ax.get_ylim()[1] - ax.get_ylim()[0] > 100  # the grid spans each feature's own range


def test_files_are_written_whole(tmp_path):
    plots.plot_loss_curve(history(), tmp_path / "loss.png")
    plots.plot_decision_boundary(lambda g: g, np.eye(2, dtype=np.float32), np.array([0, 1]), tmp_path / "db.png",
                                 resolution=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.png", "loss.png"]  # no tmp files left
    assert all((tmp_path / n).read_bytes()[:4] == b"\x89PNG" for n in ("db.png", "loss.png"))
    with pytest.raises(ValueError, match=r"2-D inputs \(N, 2\), got \(3, 3\)"):
        plots.decision_boundary_figure(lambda g: g, np.zeros((3, 3)), np.zeros(3, int))
