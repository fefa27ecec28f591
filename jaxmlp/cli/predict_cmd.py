"""`jaxmlp predict RUN_DIR --out FILE.npy|FILE.csv`: a saved run's scores and classes for a data set.

FILE.npy holds one structured array: `p = np.load(FILE)` (no pickle), `p["scores"]` (N, d_out)
and, for classification, `p["class"]` (N,) int32. FILE.csv has a header row, then one row per
example: `class,score_0,...,score_{d_out-1}` (regression: no class column). Scores are the raw
outputs of the last layer (logits; the prediction itself for regression); the class is their
argmax, or score_0 > 0 for one binary_logistic score. Rows are in the data's order. An existing
FILE is refused unless --overwrite, and FILE is written atomically.
"""
from __future__ import annotations

import argparse
import io
from typing import TYPE_CHECKING

from jaxmlp.cli import saved_run
from jaxmlp.cli.outputs import add_overwrite_flag, output_path, writing
from jaxmlp.cli.run_config import dtype_scope

if TYPE_CHECKING:
    import numpy as np

FORMATS = (".npy", ".csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    saved_run.add_run_dir(parser)
    parser.add_argument("--out", metavar="FILE", required=True, help="output file, .npy or .csv")
    add_overwrite_flag(parser)
    saved_run.add_data_flags(parser)
    saved_run.add_checkpoint_flags(parser)


def cmd_predict(ns: argparse.Namespace) -> int:
    import numpy as np  # here, not at the top: `jaxmlp --help` imports this module

    from jaxmlp import atomic
    from jaxmlp.training.predict import predict
    from jaxmlp.losses import predict_classes

    out = output_path(ns.out, "--out", "predict", overwrite=ns.overwrite, suffixes=FORMATS)  # before any work
    config = saved_run.run_config(ns, "predict")
    with dtype_scope(config.dtype):
        params, config, meta = saved_run.restore(ns, "predict")
        data, split = saved_run.load_data(ns, "predict", config, meta)
        inputs = data if hasattr(data, "rows") else data.x  # a data set on disk is read as it is scored
        scores = np.asarray(predict(params, inputs, activation=config.activation,
                                             batch_size=config.eval_batch_size, **config.activation_options()))
    classes = None if meta["loss"] == "mean_squared_error" else np.asarray(predict_classes(scores), np.int32)
    writer = prediction_npy if out.suffix.lower() == ".npy" else prediction_csv
    with writing(out, "predict"):
        atomic.atomic_write_bytes(out, writer(scores, classes))
    print(f"wrote {out}: {len(scores)} rows of {data.name} ({split} split), "
          f"{'class and ' if classes is not None else ''}{scores.shape[1]} score(s) of {meta['kept']}")
    return 0


def prediction_npy(scores: np.ndarray, classes: np.ndarray | None) -> bytes:
    """The .npy bytes of a structured array: fields class (N,) int32 (when given) and scores (N, d_out)."""
    import numpy as np

    fields = ([("class", np.int32)] if classes is not None else []) + [("scores", scores.dtype, scores.shape[1:])]
    table = np.zeros(scores.shape[0], dtype=fields)
    table["scores"] = scores
    if classes is not None:
        table["class"] = classes
    buf = io.BytesIO()
    np.save(buf, table, allow_pickle=False)
    return buf.getvalue()


def prediction_csv(scores: np.ndarray, classes: np.ndarray | None) -> bytes:
    """CSV bytes: a header, then `class,score_0,...` per example; floats round-trip their dtype."""
    import numpy as np

    digits = 17 if scores.dtype == np.float64 else 9
    header = [*(["class"] if classes is not None else []), *(f"score_{j}" for j in range(scores.shape[1]))]
    lines = [",".join(header)]
    for i, row in enumerate(scores):
        cells = [*([str(classes[i])] if classes is not None else []), *(f"{v:.{digits}g}" for v in row)]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()
