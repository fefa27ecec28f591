"""A batch-size study's run directory:

    run_dir/
      study.json       the config and the study's settings: what a resumed study repeats
      results.jsonl    one line per batch size measured (result.BatchRow.to_json), ascending
      summary.md       the table and the fits (result.StudyResult.table)
      summary.json     the same as JSON
      batch_study.png  steps against examples with the fitted hyperbola, steps against the batch
                       size, the best learning rate against the batch size (plots.py)

Every file is written whole and atomically (atomic.py): results.jsonl is rewritten with each new
row, so a study killed at any moment leaves complete rows, and `--resume` measures only the
batch sizes after them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jaxmlp import atomic
from jaxmlp.batchsize.result import BatchRow, StudyResult
from jaxmlp.batchsize.study import StudySettings
from jaxmlp.batchsize.target import parse_target
from jaxmlp.config import TrainConfig
from jaxmlp.parsing import loads_json
from jaxmlp.runfiles import (RESULTS_FILE, STUDY_FILE, STUDY_PLOT_FILE, SUMMARY_FILE,  # the layout: runfiles.KIND_FILES
                             SWEEP_SUMMARY_FILE)
from jaxmlp.runlock import RunDirError

SUMMARY_MD, SUMMARY_JSON, PLOT_FILE = SWEEP_SUMMARY_FILE, SUMMARY_FILE, STUDY_PLOT_FILE


def write_study_json(run_dir: Path, config: TrainConfig, settings: StudySettings, width) -> None:
    """study.json: the config, the settings and the width, as a resume reads them back."""
    atomic.write_json(run_dir / STUDY_FILE, {"config": config.to_dict(), "width": width,
                                             "settings": {**settings._asdict(), "target": str(settings.target)}})


def read_study_json(run_dir: Path) -> tuple[TrainConfig, StudySettings, Any]:
    """(config, settings, width) of study.json; RunDirError when it is missing or not as written."""
    path = Path(run_dir) / STUDY_FILE
    try:
        saved = loads_json(atomic.read_regular(path).decode())
        fields = dict(saved["settings"])
        settings = StudySettings(**{**fields, "target": parse_target(fields["target"]),
                                    "batch_sizes": tuple(fields["batch_sizes"]), "seeds": tuple(fields["seeds"])})
        return TrainConfig.from_dict(saved["config"]), settings, saved["width"]
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: not a batch-study directory (no {STUDY_FILE})") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: not a batch study's record as jaxmlp writes it ({exc}); it cannot be "
                          "resumed") from None


def write_rows(run_dir: Path, rows: list[BatchRow]) -> None:
    """results.jsonl, rewritten whole: one line per row."""
    atomic.atomic_write_bytes(run_dir / RESULTS_FILE, "".join(json.dumps(r.to_json()) + "\n" for r in rows).encode())


def read_rows(run_dir: Path, settings: StudySettings) -> list[BatchRow]:
    """The rows of results.jsonl (none before the first); RunDirError when a line is not a row,
    or the rows are not the settings' first batch sizes in order."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        lines = atomic.read_regular(path).decode().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: cannot read ({exc})") from None
    try:
        rows = [BatchRow.from_json(loads_json(line)) for line in lines if line.strip()]
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: a line is not a batch-size row as jaxmlp writes it ({exc})") from None
    if [r.batch_size for r in rows] != list(settings.batch_sizes[:len(rows)]):
        raise RunDirError(f"{path}: its batch sizes {[r.batch_size for r in rows]} are not the study's "
                          f"{list(settings.batch_sizes)} in order; it cannot be resumed")
    return rows


def write_summary(run_dir: Path, result: StudyResult, config: TrainConfig, seconds: float) -> None:
    """summary.md and summary.json."""
    s = result.settings
    lines = [f"# Batch-size study: {config.dataset}, hidden {','.join(map(str, config.hidden)) or '-'}, "
             f"{config.optimizer}, target {s.target}", "",
             f"Batch sizes {', '.join(map(str, s.batch_sizes))}; {s.lr_points} learning rates per grid over a factor "
             f"{s.lr_span:g}, centred by the {s.rule} rule; seeds {', '.join(map(str, s.seeds))}; at most "
             f"{config.epochs} epochs per batch size. Steps are resolved within 5%.", "",
             result.table(), "", f"Wall time of the races: {seconds:.1f} s (compile excluded).", ""]
    atomic.atomic_write_bytes(run_dir / SUMMARY_MD, "\n".join(lines).encode())
    atomic.write_json(run_dir / SUMMARY_JSON, {**result.to_json(), "seconds": seconds})
