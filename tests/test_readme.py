"""The README runs as written: its Python blocks, in order, as one session (a later block may
use what an earlier one defined, as a reader would), in a fresh directory beside ../shared."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def test_the_readme_has_python_blocks_and_its_two_set_up_commands():
    assert len(blocks("python")) >= 5
    set_up = [b for b in blocks("bash") if b.startswith("pip install -e '.[dev]' && ")]
    assert [b.splitlines()[0] for b in set_up] == ["pip install -e '.[dev]' && jaxmlp train",
                                                    "pip install -e '.[dev]' && pytest -n 2"]


# what a command writes: a flag's output path, a shell redirection (not 2> or a comment's >=), numpy's
# save in a python -c
OUTPUT = re.compile(r"(?:--npz|--out|--out-dir|--json)[ =](\S+)|[^2<>]>(?!=)\s*(\S+)|np\.savez?\('([^']+)'")


def test_the_readmes_commands_write_only_under_the_ignored_runs_folder():
    """#21: they left run.toml, model.npz, scores.csv, new.npz and new_scores.npy in the repo root."""
    written = [next(p for p in m.groups() if p) for block in blocks("bash") for m in OUTPUT.finditer(block)]
    assert {"runs/run.toml", "runs/model.npz", "runs/scores.csv", "runs/new.npz", "runs/new_scores.npy"} <= set(written)
    assert [p for p in written if not p.startswith("runs/")] == []
    assert "runs/" in (README.parent / ".gitignore").read_text().split()


@pytest.mark.slow
def test_every_python_block_runs_as_written(tmp_path, mnist_dir, monkeypatch):
    work = tmp_path / "repo"
    work.mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    os.symlink(mnist_dir, tmp_path / "shared" / "data" / "mnist")  # ../shared/data/mnist, as beside the repo
    monkeypatch.chdir(work)
    session: dict = {"__name__": "readme"}
    for i, code in enumerate(blocks("python")):
        exec(compile(code, f"README.md python block {i + 1}", "exec"), session)
    assert session["scores"].shape == (10_000, 10)  # what the comments say they are
    assert len(session["result"].models) == 8
