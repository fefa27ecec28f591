"""What a training run reports as it goes: the console (`ConsoleProgress`: an epoch line at a
steady cadence with the elapsed time and an ETA, pacing.py; a tqdm bar on a TTY besides),
metrics.jsonl (`RunLog`), and downloads (`DownloadProgress`).

Both are `jaxmlp.training.Callback`s by duck typing, so importing the CLI does not import JAX.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from jaxmlp.cli.pacing import Cadence, duration


def _devices_note(info: dict[str, Any]) -> str:
    devices, processes = info.get("devices", 1), info.get("processes", 1)
    fed = {"per_process": ", batches fed per process",
           "stream": f", streamed from the host in chunks of {info.get('chunk_steps')} steps"}.get(info.get("data_feed"), "")
    if devices == 1:
        return fed
    return f" on {devices} devices" + (f" of {processes} processes" if processes > 1 else "") + fed


class DownloadProgress:
    """A data download's progress on stderr: its URL, then a line per tenth of the file (or per
    8 MiB when the server does not say how large it is), then its end. The `progress` callable of
    jaxmlp.data's downloads: called (url, bytes received, total bytes or None)."""

    STEP_BYTES = 8 * 2**20

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.url, self.next_report = None, 0

    def __call__(self, url: str, received: int, total: int | None) -> None:
        if url != self.url:
            self.url, self.next_report = url, 0
            size = f" ({total / 2**20:.1f} MiB)" if total else ""
            print(f"downloading {url}{size}", file=self.stream, flush=True)
        step = max(total // 10, 1) if total else self.STEP_BYTES
        if received >= self.next_report and received > 0:
            done = f"{100 * received / total:.0f}%" if total else f"{received / 2**20:.1f} MiB"
            print(f"  {done}", file=self.stream, flush=True)
            self.next_report = (received // step + 1) * step


def _compiled_note(info: dict[str, Any]) -> str:
    epoch, evaluation = info["compile_seconds"], info.get("eval_compile_seconds", 0.0)
    return f"compiled in {epoch + evaluation:.2f}s: epoch {epoch:.2f}s, evaluation {evaluation:.2f}s"


class RunLog:
    """A run's own files: config.json (the config `fit` runs), preprocessing.json (`stats`, a
    FeatureStats or None) and metrics.jsonl (rewritten from the restored history on resume, then
    one line per epoch). Written once `fit` has restored or initialized the run, so a resume that
    cannot restore its checkpoint changes no file."""

    def __init__(self, run_dir: Path, stats=None):
        from jaxmlp.checkpoint import METRICS_FILE, MetricsLog

        self.run_dir, self.stats = run_dir, stats
        self.log = MetricsLog(run_dir / METRICS_FILE)

    def on_train_begin(self, info: dict[str, Any]) -> None:
        from jaxmlp import checkpoint, run_preprocessing

        checkpoint.write_config(self.run_dir, info["config"])
        run_preprocessing.write_preprocessing(self.run_dir, self.stats)
        self.log.reset(info["history"].records())

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.log.append(record)

    def on_train_end(self, history) -> None:
        pass


class ConsoleProgress:
    """A tqdm bar over epochs (TTY only) and, unless quiet, epoch lines at pacing.py's cadence
    (every `log_every` epochs instead when > 0), each with the elapsed time and an ETA: the same
    lines whether or not the output is a terminal, so a log shows where a run is."""

    def __init__(self, *, quiet: bool = False, log_every: int = 0, stream=None, clock=time.monotonic):
        self.quiet, self.log_every, self.clock = quiet, log_every, clock
        self.stream = stream or sys.stdout
        self.bar = None
        self.total = 0

    def on_train_begin(self, info: dict[str, Any]) -> None:
        config, self.total = info["config"], info["config"].epochs
        self.patience, self.history = config.patience or 0, info.get("history")
        self.cadence = Cadence(self.total, self.log_every, self.clock)
        self.cadence.start(info["start_epoch"])
        if not self.quiet:
            start = info["start_epoch"]
            what = f"resuming at epoch {start + 1}" if start else "training"
            self._line(f"{what}: {config.dataset} {info['n_train']} examples, sizes {info['sizes']}, "
                       f"{info['loss']}, {config.optimizer} lr {info.get('peak_lr', config.learning_rate):g}, "
                       f"{info['steps_per_epoch']} steps/epoch{_devices_note(info)} ({_compiled_note(info)})")
            if config.schedule in ("cosine", "warmup_cosine") and config.epochs > config.schedule_length():
                self._line(f"note: the {config.schedule} schedule spans {config.schedule_length()} epochs "
                           "(schedule_epochs); the epochs after it run at its final learning rate")
        if not self.quiet and sys.stderr.isatty() and info["start_epoch"] < self.total:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=info["start_epoch"], unit="epoch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{record['train_loss']:.4f}", samples_s=f"{record['samples_per_sec']:,.0f}",
                                 refresh=False)
            self.bar.update(1)
        epoch = record["epoch"]
        if record.get("audit") is not None:
            self._audit_line(epoch, record["audit"])
        stopped = getattr(self.history, "stopped_early", False)  # fit sets it before the callbacks: a last line
        if self.cadence.tick(epoch, last=stopped) and not self.quiet:
            self._line("  ".join(_metric_parts(record, self.total) + self._time_parts(epoch, stopped)))

    def _time_parts(self, epoch: int, stopped: bool) -> list[str]:
        """Elapsed and ETA (from the second epoch on); with early stopping the ETA is a range: to
        the epoch at which the patience runs out if the val loss stops improving, and to the last."""
        elapsed, eta = [f"elapsed {duration(self.cadence.elapsed)}"], self.cadence.eta(epoch)
        if stopped or epoch >= self.total or eta is None:
            return elapsed
        best, until = getattr(self.history, "best_epoch", None), duration(eta)
        if self.patience and best is not None and best + self.patience < self.total:
            soonest = duration(self.cadence.eta(epoch, best + self.patience))
            until = until if soonest == until else f"{soonest} to {until}"
        return elapsed + [f"eta {until}"]

    def on_train_end(self, history) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _audit_line(self, epoch: int, audit: dict[str, Any]) -> None:
        """One line per gradient audit: on the console when it passed, a warning on stderr when not."""
        if audit["ok"]:
            if not self.quiet:
                self._line(f"gradient audit after epoch {epoch}: {audit['summary']}: ok")
            return
        text = f"warning: gradient audit after epoch {epoch}: {audit['summary']}: ABOVE TOLERANCE"
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)


def _metric_parts(record: dict[str, Any], total: int) -> list[str]:
    """An epoch line's fields before the times: the epoch, the metrics, the lr and the speed."""
    width = len(str(total))
    parts = [f"epoch {record['epoch']:>{width}}/{total}", f"loss {record['train_loss']:.4f}"]
    for key, label in (("train_accuracy", "acc"), ("train_mse", "mse"), ("val_loss", "val_loss"),
                       ("val_accuracy", "val_acc"), ("val_mse", "val_mse")):
        if record.get(key) is not None:
            parts.append(f"{label} {record[key]:.4f}")
    if record.get("dead_fraction") is not None:
        parts.append("dead " + "/".join(f"{f:.2f}" for f in record["dead_fraction"]))
    if record.get("saturation_fraction") is not None:
        parts.append("saturated " + "/".join(f"{f:.2f}" for f in record["saturation_fraction"]))
    if record.get("gradients") is not None and record["gradients"]["noise_scale"] is not None:
        parts.append(f"noise scale {record['gradients']['noise_scale']:.4g}")
    if record.get("batch") is not None:  # adaptive_batch: where the epoch's last segment left the schedule
        last = record["batch"]["segments"][-1]
        b_simple = "-" if last.get("b_simple") is None else f"{last['b_simple']:.4g}"
        parts.append(f"batch {last['batch']} (gain {last['gain']:.3g}, B_simple {b_simple})")
    parts += [f"lr {record['lr']:.3g}", f"{record['seconds']:.3f}s", f"{record['samples_per_sec']:,.0f} samples/s"]
    return parts
