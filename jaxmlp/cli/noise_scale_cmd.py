"""`jaxmlp noise-scale`: the gradient noise scale B_simple at init and after training, and a
suggested batch range (noise_scale.py, McCandlish et al. 2018).

    jaxmlp noise-scale RUN_DIR                              # the run's init and its latest checkpoint
    jaxmlp noise-scale --dataset mnist --hidden 512,512 --epochs 3   # trains these flags (writes no run)

Each B_simple = tr(Σ) / |G|² is exact over the whole training set: one pass of per-example
gradient statistics (noise_scale.dataset_sums), with the config's dropout and input noise
from a key fixed by its seed. A training set on disk (npy:DIR, arrayrecord:DIR) is trained
and measured streaming, block by block, never whole in memory. The range printed is
[B_simple / 2, 2 B_simple] after training, in powers of two, capped at the training set (and
the line says so when it is).
"""
from __future__ import annotations

import argparse
from typing import Any

from jaxmlp.cli.flags import add_config_flags, given_fields
from jaxmlp.cli.outputs import add_overwrite_flag, output_path, writing
from jaxmlp.cli.run_config import dtype_scope
from jaxmlp.cli.train_cmd import load_data, plan_for
from jaxmlp.cli.usage import PROG, UsageError

FROM_RUN_FLAGS = {"data_dir"}  # the config flags that may go with RUN_DIR
_NO_RUN = "noise-scale writes no run directory (train one with jaxmlp train and pass it as RUN_DIR)"
_NO_HISTORY = "noise-scale keeps no training history, only the params training ends with"
NOT_APPLICABLE = {  # config fields that change nothing noise-scale trains, measures or prints: refused, not listed
    **dict.fromkeys(("out_dir", "checkpoint_every", "keep_checkpoints"), _NO_RUN),
    **dict.fromkeys(("eval_train", "track_activations", "track_gradients", "gradient_ema", "audit_every",
                     "audit_strict"), _NO_HISTORY),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN_DIR or the config flags, and --json (with --overwrite)."""
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="a run directory: its init (from the seed) and latest checkpoint [train the flags instead]")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    add_overwrite_flag(parser)
    add_config_flags(parser, unlisted=NOT_APPLICABLE)


def _config(ns: argparse.Namespace):
    """(config, trained params from RUN_DIR or None) of the command line."""
    from jaxmlp import restore
    from jaxmlp.config import TrainConfig

    given = given_fields(ns)
    refused = sorted(set(given) & set(NOT_APPLICABLE))
    if refused:
        raise UsageError(f"{PROG} noise-scale: error: --{refused[0].replace('_', '-')} does not apply: "
                         f"{NOT_APPLICABLE[refused[0]]}")
    try:
        if ns.run_dir is None:
            return TrainConfig.from_dict(given), None
        extra = sorted(set(given) - FROM_RUN_FLAGS)
        if extra:
            raise UsageError(f"{PROG} noise-scale: error: --{extra[0].replace('_', '-')} cannot be combined with "
                             "RUN_DIR (the run's config is used; only --data-dir may change)")
        saved, _ = restore.saved_config(ns.run_dir)  # the settings the checkpoint was trained under
        config = TrainConfig.from_dict({**saved.to_dict(), **given})
        return config, ns.run_dir
    except ValueError as exc:
        raise UsageError(f"{PROG} noise-scale: error: {exc}") from None


def cmd_noise_scale(ns: argparse.Namespace) -> int:
    out = None if ns.json is None else output_path(ns.json, "--json", "noise-scale", overwrite=ns.overwrite)  # before any work
    config, run_dir = _config(ns)
    with dtype_scope(config.dtype):
        splits, _ = load_data(config, quiet=False, command="noise-scale")  # standardized as the run was
        spec = plan_for(config, splits, command="noise-scale").spec
        try:
            numbers = _measure(config, spec, splits.train, run_dir)
        except ValueError as exc:  # RunDirError, a checkpoint that does not fit
            raise UsageError(f"{PROG} noise-scale: error: {exc}") from None
    print(_report(numbers))
    if out is not None:
        from jaxmlp.atomic import write_json

        with writing(out, "noise-scale"):
            write_json(out, numbers)
    return 0


def _measure(config, spec, train, run_dir: str | None) -> dict[str, Any]:
    """B_simple at init and after training `config` on `train` alone (no validation), per layer
    and in total, and the suggested range; `spec`: the run's training.RunSpec."""
    import jax
    import numpy as np

    from jaxmlp import noise_scale, restore
    from jaxmlp.training.fit import fit
    from jaxmlp.training.state import init_params, run_keys

    loss = spec.loss
    if run_dir is None:
        trained, _ = fit(config, train)
        epochs = config.epochs
    else:
        trained, _, meta = restore.restore_params(run_dir, best=False)
        epochs = int(meta["epoch"])

    def measure(params) -> dict[str, Any]:
        est = jax.device_get(_dataset_estimate(config, spec, params, train))
        total = noise_scale.NoiseEstimate(float(np.sum(est.signal)), float(np.sum(est.noise)))
        return {"b_simple": float(noise_scale.noise_scale(total)), "signal": total.signal, "noise": total.noise,
                "layer_b_simple": [float(v) for v in noise_scale.noise_scale(est)]}

    init = measure(init_params(run_keys(config.seed)[0], config, spec.sizes))
    after = measure(trained)
    return {"dataset": config.dataset, "n_train": spec.n_train, "sizes": list(spec.sizes), "loss": loss,
            "epochs": epochs, "init": init, "trained": after,
            "suggested_batch_range": noise_scale.suggested_batch_range(after["b_simple"], spec.n_train)}


def _dataset_estimate(config, spec, params, train):
    """noise_scale.dataset_estimate of `params` over `train`, in memory or on disk (data.streamed),
    read in blocks of whole batches of about CHUNK_BYTES, the next read while the last is summed."""
    import jax
    import numpy as np

    from jaxmlp import noise_scale
    from jaxmlp.activations import get_activation
    from jaxmlp.losses import get_loss
    from jaxmlp.training.feed import read_blocks, row_reader
    from jaxmlp.training.memory import CHUNK_BYTES, example_bytes

    n = len(train)
    batch = min(config.eval_batch_size, n)  # as dataset_estimate batches a set in memory
    block = batch * max(1, CHUNK_BYTES // (batch * example_bytes(config, spec)))
    options = dict(loss=get_loss(spec.loss), act=get_activation(config.activation, **config.activation_options()),
                   dropout=config.dropout, input_noise=config.input_noise, batch_size=batch)
    key, sums = jax.random.key(config.seed), None
    for start, (x, y) in read_blocks(row_reader(train, np.dtype(config.dtype)), n, block):
        sums = noise_scale.dataset_sums(params, x, y, key, sums, start // batch, **options)
    return noise_scale.sums_estimate(sums)


def _report(n: dict[str, Any]) -> str:
    """The printed table."""
    lines = [f"gradient noise scale B_simple = tr(Sigma) / |G|^2 of {n['dataset']} ({n['n_train']} training "
             f"examples, exact), sizes {'-'.join(map(str, n['sizes']))}, {n['loss']}:",
             f"  {'':<22}{'B_simple':>10}  {'|G|^2':>10}  {'tr(Sigma)':>10}  per layer"]
    for label, m in (("at init", n["init"]), (f"after {n['epochs']} epochs", n["trained"])):
        layers = " ".join(f"{v:.3g}" for v in m["layer_b_simple"])
        lines.append(f"  {label:<22}{m['b_simple']:>10.4g}  {m['signal']:>10.3e}  {m['noise']:>10.3e}  {layers}")
    lines.append(_suggestion(n["suggested_batch_range"], n["trained"]["b_simple"], n["n_train"]))
    return "\n".join(lines)


def _suggestion(batch_range: list[int] | None, b_simple: float, n_train: int) -> str:
    """The suggested batch sizes, saying so when the training set capped them."""
    from jaxmlp.noise_scale import suggested_batch_range

    if batch_range is None:
        return "no suggested batch size: the gradient signal is zero"
    low, high = batch_range
    wanted = "B_simple / 2 to 2 B_simple after training"
    uncapped = suggested_batch_range(b_simple)
    if tuple(batch_range) == uncapped:
        return f"suggested batch sizes: {low} to {high} ({wanted})"
    cap = f"capped at {high}, the largest power of two within the {n_train} training examples"
    sizes = f"suggested batch size: {high}" if low == high else f"suggested batch sizes: {low} to {high}"
    return f"{sizes} ({wanted} would be {uncapped[0]} to {uncapped[1]}: {cap})"
