"""The lecture demos: each runs in --quick mode, writes valid PNGs and its JSON, and its
numeric claim holds. Plus the full-batch GD loop they all train with."""
import json
import re
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from jaxmlp.backprop import loss_and_grad
from jaxmlp.demos import DEMOS, build_parser, main
from jaxmlp.demos.derivatives import CASES, derivatives, z_grid
from jaxmlp.demos.gd import train_full_batch
from jaxmlp.mlp import Layer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(np.std(image)) > 0.01, f"{path.name} is blank"


def _claim_activations(n):
    assert n["max_gap_overall"] < 1e-5
    assert len(n["max_abs_derivative_gap"]) == len(CASES)


def _claim_capacity(n):
    h = n["hidden"]
    assert h["20"]["train_accuracy"] > h["3"]["train_accuracy"] + 0.15


def _claim_regularization(n):
    m = n["models"]
    assert len(m) == 5
    # strong L2 fits the training set less well than no L2 (smoother regions)
    assert m["20 hidden, L2 0.1"]["train_accuracy"] < m["20 hidden, no L2"]["train_accuracy"]
    assert all(0.5 <= v["val_accuracy"] <= 1.0 for v in m.values())


def _claim_features(n):
    m = n["models"]
    assert m["logistic regression on (x1, x2)"]["val_accuracy"] < 0.7
    assert m["logistic regression on (x1, x2, x1*x2)"]["val_accuracy"] > 0.95
    assert m["1 hidden layer (8 ReLU) on (x1, x2)"]["val_accuracy"] > 0.9


def _claim_dead_relu(n):
    lrs = n["learning_rates"]
    sensible, too_large = sum(lrs["0.5"]["dead_fraction_final"]), sum(lrs["3.0"]["dead_fraction_final"])
    assert too_large > sensible + 0.2
    assert max(lrs["3.0"]["dead_fraction_max"]) > max(lrs["0.5"]["dead_fraction_max"])


def _claim_universal(n):
    err = n["max_abs_error"]
    assert err["16"] < 0.75 * err["2"]


def _claim_linear_collapse(n):
    assert n["max_abs_output_difference"] <= 1e-5 * max(1.0, n["max_abs_output"])
    assert n["trained_deep_linear"]["max_abs_output_difference"] < 1e-4
    assert np.asarray(n["product_matrix"]).shape == (n["sizes"][0], n["sizes"][-1])


def _claim_example_gradients(n):
    # the digits with the largest gradient norm are mostly ones the net gets wrong
    assert n["top_misclassified_fraction"] > 3 * n["train_misclassified_fraction"]
    assert n["noise_scale"]["exact_after_training"] > n["noise_scale"]["exact_at_init"]
    norms = [e["grad_norm"] for e in n["top_examples"]]
    assert norms == sorted(norms, reverse=True) and norms[-1] >= n["grad_norm_percentiles"]["p99"]


CLAIMS = {
    "activations": _claim_activations,
    "capacity": _claim_capacity,
    "regularization": _claim_regularization,
    "features": _claim_features,
    "dead-relu": _claim_dead_relu,
    "universal-approximation": _claim_universal,
    "linear-collapse": _claim_linear_collapse,
    "example-gradients": _claim_example_gradients,
}
NEEDS_MNIST = {"example-gradients"}


def test_every_demo_has_a_claim():
    assert set(CLAIMS) == set(DEMOS)


@pytest.mark.parametrize("name", list(CLAIMS))
def test_demo_quick_writes_pngs_json_and_its_claim_holds(name, tmp_path, request, monkeypatch):
    data = []
    if name in NEEDS_MNIST:  # found through --data-dir alone (#21: only $JAXMLP_DATA worked)
        monkeypatch.setenv("JAXMLP_DATA", str(tmp_path / "empty"))
        data = ["--data-dir", str(request.getfixturevalue("mnist_dir"))]
    assert main([name, "--quick", "--out-dir", str(tmp_path), "--seed", "0", *data]) == 0
    numbers = json.loads((tmp_path / f"{name}.json").read_text())
    assert numbers["demo"] == name and numbers["quick"] is True and numbers["seed"] == 0
    assert numbers["figures"], "a demo writes at least one figure"
    for figure in numbers["figures"]:
        _check_png(tmp_path / figure)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*numbers["figures"], f"{name}.json"])
    CLAIMS[name](numbers)


def test_default_out_dir_is_the_ignored_runs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert build_parser().parse_args(["capacity"]).out_dir == "runs/demos"
    assert main(["linear-collapse", "--quick"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert (tmp_path / "runs" / "demos" / "linear-collapse.json").is_file()


def test_out_dir_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    assert main(["capacity", "--quick", "--out-dir", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err == f"jaxmlp demo: error: --out-dir {tmp_path / 'taken'} exists and is not a directory\n"
    assert main(["capacity", "--quick", "--out-dir", str(tmp_path / "taken" / "sub")]) == 2
    assert "cannot be created" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "mine"


def test_unknown_demo_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["no-such-demo"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("label,name,opts", CASES)
def test_manual_derivative_equals_jax_grad(label, name, opts):
    z = jnp.asarray(z_grid(401, limit=6.0))
    assert float(z[200]) == 0.0  # the kink is on the grid
    _, manual, auto = jax.jit(lambda zz: derivatives(name, zz, **opts))(z)
    np.testing.assert_allclose(np.asarray(manual), np.asarray(auto), rtol=1e-6, atol=1e-6)


def test_gd_step_equals_loss_and_grad_with_l2():
    """One plain-GD step of the demo loop (traced L2) equals params - lr * loss_and_grad(l2)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(30, 2)), jnp.float32)
    y = jnp.arange(30) % 3
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    params = [Layer(f32(rng.normal(size=(2, 5))), f32(rng.normal(size=5))),
              Layer(f32(rng.normal(size=(5, 3))), jnp.zeros(3))]
    fit = train_full_batch(None, x, y, sizes=(2, 5, 3), params=params, steps=1, learning_rate=0.1,
                           optimizer="sgd", l2=0.05)
    value, grads = jax.jit(lambda p: loss_and_grad(p, x, y, l2=0.05, method="autodiff"))(params)
    np.testing.assert_allclose(fit.losses[0], value, rtol=1e-5)
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    for a, b in zip(jax.tree.leaves(fit.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gd_tracks_activations_per_step():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(40, 2)), jnp.float32)
    y = jnp.arange(40) % 2
    fit = train_full_batch(jax.random.key(3), x, y, sizes=(2, 8, 8, 2), steps=5, learning_rate=0.05,
                           track_activations=True)
    assert fit.losses.shape == (5,)
    assert fit.stats["dead_fraction"].shape == (5, 2)
    assert fit.stats["grad_norms"].shape == (5, 3)
    assert fit.params[0].W.shape == (2, 8)


def test_example_gradients_without_mnist_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAXMLP_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["example-gradients", "--quick", "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jaxmlp demo: error: example-gradients:") and "mnist" in err


def test_data_flags_reach_the_demos_that_read_data(tmp_path, monkeypatch, capsys):
    """--data-dir and --download go to load_dataset; the error's advice names flags demo accepts."""
    from jaxmlp.data import DataError
    from jaxmlp.demos import DATA_DEMOS, example_gradients

    assert set(DATA_DEMOS) == NEEDS_MNIST
    seen = {}

    def load(spec, **kw):
        seen.update(kw, spec=spec)
        raise DataError("mnist: data not found; pass --data-dir DIR or --download")

    monkeypatch.setattr(example_gradients, "load_dataset", load)
    out = str(tmp_path / "out")
    assert main(["example-gradients", "--quick", "--out-dir", out, "--data-dir", "/data/x", "--download"]) == 2
    assert seen["spec"] == "mnist" and seen["data_dir"] == "/data/x" and seen["download"] is True
    assert capsys.readouterr().err.count("\n") == 1
    ns = build_parser().parse_args(["example-gradients"])
    assert ns.data_dir is None and ns.download is False  # by default: $JAXMLP_DATA, then the cache


@pytest.mark.parametrize("flags", [["--data-dir", "d"], ["--download"]])
def test_data_flags_on_a_demo_that_reads_no_data_are_refused(tmp_path, capsys, flags):
    assert main(["capacity", "--quick", "--out-dir", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err
    assert err == (f"jaxmlp demo: error: {flags[0]} applies only to the demos that read data (example-gradients), "
                   "not to capacity\n")
    assert not (tmp_path / "out").exists()


def test_readme_names_the_optimizer_each_committed_demo_trained_with():
    """#21: the README said "full-batch gradient descent" where capacity.json says adam."""
    root = Path(__file__).resolve().parents[1]
    text = " ".join((root / "README.md").read_text().split())
    said = re.search(r"on the hand-written backprop: with Adam for ([^.]*?), and with plain gradient descent "
                     r"for ([\w-]+)\.", text)
    assert said, "the README's demo paragraph names the optimizers"
    adam, gd = set(re.split(r", | and ", said.group(1))), {said.group(2)}
    checked = 0
    for path in (root / "results" / "figures").glob("*.json"):
        optimizer = json.loads(path.read_text()).get("training", {}).get("optimizer", "")
        if path.stem != "example-gradients" and optimizer:  # it trains minibatches with the trainer
            assert path.stem in (adam if optimizer.startswith("adam") else gd if optimizer.startswith("sgd")
                                 else ()), (path.stem, optimizer)
            checked += 1
    assert checked >= 5


def test_capacity_titles_give_accuracies_to_a_tenth_of_a_percent(tmp_path, monkeypatch):
    """#21: 99.5% train accuracy was titled "100%"."""
    from jaxmlp.demos import capacity, common

    assert common.percent(0.995238) == "99.5%" and common.percent(0.003) == "0.3%" and common.percent(1.0) == "100.0%"
    figures = []
    monkeypatch.setattr(capacity, "save_figure", lambda fig, *a: figures.append(fig) or common.save_figure(fig, *a))
    numbers = capacity.run(jax.random.key(0), tmp_path, quick=True)
    titles = [ax.get_title() for ax in figures[0].axes]
    for title, (h, n) in zip(titles, numbers["hidden"].items()):
        assert title == f"{h} hidden neurons\ntrain {n['train_accuracy']:.1%}, val {n['val_accuracy']:.1%}"


def test_dead_relu_draws_the_sensible_rate_on_top_and_in_its_own_style(tmp_path, monkeypatch):
    """#21: the lr 0.5 curve was hidden behind lr 2.0."""
    from jaxmlp.demos import common, dead_relu

    figures = []
    monkeypatch.setattr(dead_relu, "save_figure", lambda fig, *a: figures.append(fig) or common.save_figure(fig, *a))
    dead_relu.run(jax.random.key(0), tmp_path, quick=True)
    for ax in figures[0].axes:
        lines = {line.get_label().split(" (")[0]: line for line in ax.get_lines()}
        sensible, too_large = lines["lr 0.5"], lines["lr 2.0"]
        assert sensible.get_zorder() > too_large.get_zorder() and sensible.get_linestyle() != too_large.get_linestyle()
        assert all(float(t).is_integer() for t in ax.get_xticks())


def test_noise_scale_legend_covers_no_curve_and_epochs_are_whole():
    """#21: the legend sat over the end of the loss line."""
    import types

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from jaxmlp.demos.example_gradients import noise_curve_figure

    history = types.SimpleNamespace(epoch=[1, 2, 3], train_loss=[0.31, 0.13, 0.04],
                                    gradients=[{"noise_scale": v} for v in (699.0, 1216.0, 1519.0)])
    fig = noise_curve_figure(history, 45.6, 1312.0, "MNIST")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["B_simple, EMA over the epoch's minibatches",
                                                          "exact, whole training set", "training loss"]
    assert not any(ax.get_legend() for ax in fig.axes)
    assert not any(ax.get_window_extent(renderer).overlaps(legend.get_window_extent(renderer)) for ax in fig.axes)
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
