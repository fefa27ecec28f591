"""Manual and autodiff gradients against centered finite differences (float64), and the CLI."""
import jax
import jax.numpy as jnp
import pytest

from jaxmlp import ACTIVATIONS, LOSSES, init_mlp
from jaxmlp.gradcheck import format_table, gradcheck, main, random_problem, relative_error

SIZES = (5, 6, 6, 3)


@pytest.mark.parametrize("activation,loss,l2,dropout", (
    [(a, "softmax_cross_entropy", 0.0, 0.0) for a in ACTIVATIONS]
    + [("tanh", name, 0.1, 0.0) for name in LOSSES]
    + [("maxout", "multiclass_hinge", 0.1, 0.5), ("prelu", "mean_squared_error", 0.1, 0.5),
       ("elu", "binary_logistic", 0.0, 0.5)]))
def test_against_finite_differences(activation, loss, l2, dropout, x64):
    k_init, k_data, k_check = jax.random.split(jax.random.key(11), 3)
    params = init_mlp(k_init, SIZES, activation=activation, dtype=jnp.float64)
    x, y = random_problem(k_data, SIZES, loss, 6, jnp.float64)
    rows = gradcheck(params, x, y, key=k_check, num_checks=None, loss=loss, l2=l2, activation=activation,
                     dropout=dropout)
    assert {(r.layer, r.field) for r in rows} >= {(0, "W"), (0, "b"), (2, "W"), (2, "b")}
    assert (activation == "prelu") == any(r.field == "alpha" for r in rows)
    for r in rows:
        assert r.manual_vs_autodiff <= 1e-12, r
        assert r.autodiff_vs_numeric <= 1e-6, r


def test_relative_error_definition():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([0.0], [0.0]) == 0.0
    assert relative_error([1.0, 0.0], [1.0, 1e-3]) == pytest.approx(1e-3)
    assert relative_error([2.0], [1.0]) == pytest.approx(0.5)


def test_gradcheck_catches_a_wrong_local_derivative(x64, monkeypatch):
    """A check that could fail: break tanh's hand-written derivative and the table shows it."""
    import jaxmlp.activations as activations

    params = init_mlp(jax.random.key(0), (3, 4, 2), activation="tanh", dtype=jnp.float64)
    x, y = random_problem(jax.random.key(1), (3, 4, 2), "softmax_cross_entropy", 4, jnp.float64)
    good = gradcheck(params, x, y, activation="tanh", num_checks=None)
    monkeypatch.setattr(activations, "_tanh_backward", lambda da, z, a, slope=None: (da * (1 - a), None))
    bad = gradcheck(params, x, y, activation="tanh", num_checks=None)
    assert max(r.manual_vs_autodiff for r in good) < 1e-12
    assert max(r.manual_vs_autodiff for r in bad) > 1e-2  # the first layer's grads are wrong now
    assert max(r.autodiff_vs_numeric for r in bad) < 1e-6  # autodiff still agrees with numeric
    assert "manual-vs-autodiff" in format_table(good)


def test_cli_prints_a_table_and_passes(capsys):
    assert main(["--sizes", "6,5,3", "--activation", "prelu", "--dtype", "float64", "--num-checks", "5"]) == 0
    out = capsys.readouterr().out
    assert "manual-vs-autodiff" in out and "alpha" in out and "PASS" in out
    assert not jax.config.jax_enable_x64  # float64 stayed scoped to the check


def test_cli_fails_when_a_tolerance_is_exceeded(capsys):
    assert main(["--sizes", "6,5,3", "--dtype", "float32", "--tol-numeric", "1e-12"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--activation", "swish", "--sizes", "4,3,2"], ["--sizes", "4"],
                                  ["--batch", "0"]])
def test_cli_bad_input_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxmlp gradcheck: error:") and "Traceback" not in err


def test_cli_unparseable_sizes_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["--sizes", "a,b"])
    assert exc.value.code == 2


def test_cli_help_gives_every_flag_a_help_and_its_default(capsys):
    """#21: --activation and --loss had no help and no flag showed its default."""
    from jaxmlp.gradcheck import TOLERANCES, build_parser

    parser = build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "default" in action.help, action.dest
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in ACTIVATIONS) and all(name in text for name in LOSSES)
    assert "(default relu)" in text and "(default softmax_cross_entropy)" in text and "(default 784,100,10)" in text
    assert f"{TOLERANCES['float64'][0]:g} in float64" in text
