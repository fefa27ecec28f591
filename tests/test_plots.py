"""Run plots: the loss/accuracy panels with train, val and the final test point, the decision
boundary with axis labels and a class legend; legends beside the axes, never over the data."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.colors import to_rgba

from jaxmlp import plots
from jaxmlp.demos.common import POINT_COLORS
from jaxmlp.training.history import History


NOISE_SCALES = (475.0, 1100.0, 1390.0, 1698.0, 1663.0)  # the README's MNIST run: two labelled ticks before #21


def history(classification: bool = True, epochs: int = 6, gradients: bool = False) -> History:
    h = History()
    for e in range(1, epochs + 1):
        metric = {"train_accuracy": 0.5 + e / 20, "val_accuracy": 0.45 + e / 20} if classification else \
            {"train_mse": 1.0 / e, "val_mse": 1.2 / e}
        if gradients:
            metric["gradients"] = {"noise_scale": NOISE_SCALES[e - 1], "layer_grad_norm": [0.05 / e, 0.02 / e],
                                   "layer_snr": [3.0 / e, 1.5 / e],
                                   "example_grad_norm": {"p50": 0.01 / e, "p90": 0.2 / e, "p99": 2 / e, "max": 9 / e}}
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
    assert loss_ax.get_yscale() == "log"
    accuracies = [0.5 + e / 20 for e in range(1, 7)] + [0.45 + e / 20 for e in range(1, 7)] + [0.75]
    low, high = acc_ax.get_ylim()  # zoomed to the data (#21: on 0-1, MNIST's train, val and test were one line)
    margin = 0.1 * (max(accuracies) - min(accuracies))
    assert min(accuracies) - margin - 1e-9 <= low < min(accuracies) and max(accuracies) < high <= max(accuracies) + margin


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


def visible_ticks(fig: Figure, axis) -> list[tuple[float, str]]:
    """(position, label) of the major ticks inside the view of `axis` (ax.xaxis / ax.yaxis), drawn."""
    fig.draw(FigureCanvasAgg(fig).get_renderer())
    low, high = sorted(axis.get_view_interval())
    return [(t.get_loc(), t.label1.get_text()) for t in axis.get_major_ticks() if low <= t.get_loc() <= high]


@pytest.mark.parametrize("epochs", [1, 3, 5])
def test_epoch_axes_have_whole_number_ticks(epochs):
    """#21: a short run showed 1.25, 2.5, ..."""
    figs = [plots.loss_curve_figure(history(epochs=epochs)), plots.gradient_stats_figure(history(epochs=5, gradients=True))]
    for fig in figs:
        for ax in fig.axes:
            ticks = visible_ticks(fig, ax.xaxis)
            assert ticks and all(float(loc).is_integer() for loc, _ in ticks), (ax.get_title(), ticks)


def test_gradient_stats_names_the_run_and_labels_readable_axes(tmp_path):
    """#21: B_simple from 475 to 1698 had two labelled ticks (6x10^2, 10^3), no y labels, no run name."""
    fig = plots.gradient_stats_figure(history(epochs=5, gradients=True), run="mnist-3")
    assert "mnist-3" in fig.get_suptitle()
    noise = fig.axes[0]
    assert noise.get_ylabel().startswith("B_simple") and all(ax.get_ylabel() for ax in fig.axes)
    labels = [label for _, label in visible_ticks(fig, noise.yaxis)]
    assert len(labels) >= 3 and all(label.replace(".", "").isdigit() for label in labels), labels
    for ax in fig.axes[1:]:  # the legends sit beside their panels, over no data
        assert outside(fig, ax)
    (tmp_path / "runs" / "mnist-3").mkdir(parents=True)
    plots.plot_gradient_stats(history(epochs=5, gradients=True), tmp_path / "runs" / "mnist-3" / "gradient_stats.png")
    assert (tmp_path / "runs" / "mnist-3" / "gradient_stats.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("values,least", [((0.073, 0.1025), 2), ((0.025, 0.21), 4), ((0.005, 0.25), 4),
                                         ((475.0, 1698.0), 3)])
def test_a_log_axis_over_a_narrow_range_has_several_plain_number_ticks(values, least):
    """#21: sweep.png's validation loss (0.073 to 0.10) had one tick."""
    from jaxmlp.demos.common import log_scale

    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([1, 2], values)
    log_scale(ax, values)
    labels = [label for _, label in visible_ticks(fig, ax.yaxis)]
    assert len(labels) >= least and not any("^" in label or "times" in label for label in labels), labels


def sweep_result(grid: dict[str, list]):
    """A stand-in SweepResult: one model per point of the grid, 3 epochs, val loss 0.073 to 0.10."""
    import itertools
    import types

    models = []
    for i, values in enumerate(itertools.product(*grid.values())):
        h = History()
        for e in range(1, 4):
            h.append({"epoch": e, "train_loss": 0.3 / e, "val_loss": 0.073 + 0.001 * i + 0.01 / e, "lr": 1e-3,
                      "seconds": 1.0, "train_accuracy": 0.95, "val_accuracy": 0.97})
        h.final = {"test": {"loss": 0.08, "accuracy": 0.97 + 0.001 * i}}
        models.append(types.SimpleNamespace(index=i, overrides=dict(zip(grid, values)), history=h, diverged=False))
    return types.SimpleNamespace(models=models)


def test_sweep_figure_reads_its_loss_axis_and_says_which_metric_each_panel_shows():
    """#21: one validation-loss tick; curves and heatmap on two metrics without saying so."""
    from jaxmlp.sweeps.plots import sweep_figure

    fig = sweep_figure(sweep_result({"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3], "seed": [0, 1]}))
    curves, heatmap = [ax for ax in fig.axes if ax.get_title()]
    assert len(visible_ticks(fig, curves.yaxis)) >= 3 and curves.get_ylabel() == "validation loss"
    assert all(float(loc).is_integer() for loc, _ in visible_ticks(fig, curves.xaxis))
    assert curves.get_title().startswith("validation loss per epoch") and heatmap.get_title() == "final test accuracy"
    assert "curves: validation loss" in fig.get_suptitle() and "heatmaps: the kept params' final test accuracy" \
        in fig.get_suptitle() and "different metric" in fig.get_suptitle()


def test_a_sweep_of_three_fields_has_a_heatmap_per_pair_and_dashes_the_second_field():
    """#21: with 3 or more fields the models could not be told apart."""
    from jaxmlp.sweeps.plots import heatmap_pairs, sweep_figure

    grid = {"learning_rate": [1e-3, 1e-2], "dropout": [0.0, 0.2], "hidden": ["64", "256"], "seed": [0, 1]}
    fig = sweep_figure(sweep_result(grid))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("final")]
    assert heatmap_pairs(list(grid)) == [("learning_rate", "dropout"), ("learning_rate", "hidden"),
                                         ("dropout", "hidden")]
    assert titles == ["final test accuracy\n(mean over hidden, seed)", "final test accuracy\n(mean over dropout, seed)",
                      "final test accuracy\n(mean over learning_rate, seed)"]
    curves = fig.axes[0]
    styles = {line.get_label(): line.get_linestyle() for line in curves.get_legend().get_lines()}
    assert styles["dropout=0.0"] != styles["dropout=0.2"]
    assert heatmap_pairs(["learning_rate", "seed"]) == [("learning_rate", "seed")] and heatmap_pairs(["seed"]) == []


def test_plot_sweep_writes_a_png(tmp_path):
    from jaxmlp.sweeps.plots import plot_sweep

    plot_sweep(sweep_result({"seed": [0, 1, 2]}), tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
