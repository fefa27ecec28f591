"""What the commands that use a saved run share: which checkpoint's params (--epoch,
--best/--last), and data read as the run read its own (--dataset, --split).

The data goes through `load_dataset` and then through the run's own preprocessing
(preprocessing.json: the training split's mean and std, or nothing). The run's own data set is
loaded with the run's data settings (seed, validation fraction, sample count), so its splits
are the run's splits; any other data set is loaded whole. Data of another width than the model
takes is refused with one line naming both.
"""
from __future__ import annotations

import argparse

from jaxmlp.cli.flags import value_parser
from jaxmlp.cli.usage import PROG, UsageError

SPLITS = ("train", "val", "test")


RUN_DIR_HELP = "a run directory (jaxmlp train's --out-dir, or a sweep's best/)"


def add_run_dir(parser: argparse.ArgumentParser) -> None:
    """The positional RUN_DIR, with its help."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)


def add_checkpoint_flags(parser: argparse.ArgumentParser) -> None:
    """--epoch N, --best / --last."""
    parser.add_argument("--epoch", type=value_parser(int), metavar="N",
                        help="the params of epoch N: checkpoint N's own, or the best val-loss params of epoch N "
                        "that a later checkpoint kept; refused when no checkpoint holds them [the latest checkpoint]")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--best", dest="best", action="store_const", const=True, default=None,
                       help="the best val-loss params (runs with restore_best) [the run's restore_best]")
    which.add_argument("--last", dest="best", action="store_const", const=False,
                       help="the last params of the checkpoint, not the best")


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """--dataset SPEC, --split, --data-dir, --label-column."""
    parser.add_argument("--dataset", metavar="SPEC", help="data set spec, as for jaxmlp train [the run's own]")
    parser.add_argument("--split", choices=SPLITS, help="which split of it [test when there is one, else train: "
                        "a file's x and y]")
    parser.add_argument("--data-dir", metavar="DIR", help="where named data sets are looked for [the run's]")
    parser.add_argument("--label-column", metavar="COLUMN", help="csv:FILE: the label column by name or index "
                        "[the run's for a csv, else the last]")


def error(command: str, exc: Exception | str) -> UsageError:
    return UsageError(f"{PROG} {command}: error: {exc}")


def run_config(ns: argparse.Namespace, command: str):
    """The TrainConfig in RUN_DIR/config.json."""
    from jaxmlp import checkpoint

    try:
        return checkpoint.read_config(ns.run_dir)
    except ValueError as exc:  # RunDirError
        raise error(command, exc) from None


def restore(ns: argparse.Namespace, command: str):
    """(params, config, meta) of the checkpoint --epoch / --best / --last picks (run in the dtype scope)."""
    from jaxmlp.restore import restore_params

    try:
        return restore_params(ns.run_dir, epoch=ns.epoch, best=ns.best)
    except ValueError as exc:  # RunDirError
        raise error(command, exc) from None


def load_data(ns: argparse.Namespace, command: str, config, meta: dict):
    """(Dataset, split name) of --dataset / --split, preprocessed as the run's training data was."""
    from jaxmlp.data import DataError, load_dataset
    from jaxmlp.run_preprocessing import read_preprocessing

    spec = ns.dataset or config.dataset
    own = spec == config.dataset
    label_column = ns.label_column if ns.label_column is not None else (
        config.label_column if spec.startswith("csv:") else None)
    try:
        splits = load_dataset(spec, data_dir=ns.data_dir or config.data_dir, seed=config.data_seed,
                              val_fraction=config.val_fraction if own else 0.0,
                              n_samples=config.n_samples if own else None, label_column=label_column,
                              task="regression" if meta["loss"] == "mean_squared_error" else "classification")
        split = ns.split or ("test" if splits.test is not None else "train")
        data = getattr(splits, split)
        if data is None:
            have = ", ".join(name for name, d in zip(SPLITS, splits) if d is not None)
            raise DataError(f"{spec} has no {split} split (it has: {have})")
        d_in = int(meta["sizes"][0])
        if data.num_features != d_in:
            raise DataError(f"{spec} {split} split: x has shape {data.x.shape} ({data.num_features} features per "
                            f"example), but the model in {ns.run_dir} takes {d_in} features")
        stats = read_preprocessing(ns.run_dir, config)
        return (stats.apply(data) if stats is not None else data), split
    except (DataError, ValueError) as exc:  # RunDirError too
        raise error(command, exc) from None
