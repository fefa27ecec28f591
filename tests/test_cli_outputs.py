"""Outputs a user names (`predict --out`, `export --npz` or the run's params.npz, `noise-scale
--json`) that cannot be written: a read-only folder, a full disk. Each ends in one line naming
the path and the OS error, exit 1 (a file system error, README "exit codes"), no traceback, and
no file made or changed: not the output, not a temporary file, not an older output that
--overwrite would have replaced.

A read-only folder is a real chmod where permissions bind; as root, where they do not, the
temporary file's creation in that folder fails as it would (EACCES). A full disk fails the
output's fsync (ENOSPC), as a write that does not fit would.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from jaxmlp import cli
from jaxmlp.cli.outputs import output_path

QUIET = ["--quiet", "--no-plots"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("outputs") / "FIN"
    assert cli.main(["train", "--epochs", "2", "--hidden", "8", "--out-dir", str(path), *QUIET]) == 0
    return path


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def commands(run: Path, out_dir: Path) -> dict[str, tuple[list[str], Path]]:
    """Each command with an output in `out_dir`, and that output (export's default: in the run)."""
    return {"predict": (["predict", str(run), "--out", str(out_dir / "p.csv")], out_dir / "p.csv"),
            "export": (["export", str(run), "--npz", str(out_dir / "m.npz")], out_dir / "m.npz"),
            "export-into-run": (["export", str(run)], run / "params.npz"),
            "noise-scale": (["noise-scale", str(run), "--json", str(out_dir / "n.json")], out_dir / "n.json")}


@contextlib.contextmanager
def read_only(monkeypatch, folder: Path):
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / "tmp"))
        return real(*args, dir=dir, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", mkstemp)
        yield


def full_disk_in(folder: Path):
    """os.fsync, failing with ENOSPC for files in `folder`."""
    real = os.fsync

    def fsync(fd):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == folder.resolve():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    return fsync


def _ends_in_one_line(capsys, argv, out: Path, why: str, root: Path) -> None:
    before = tree_hashes(root)
    capsys.readouterr()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot write {out}: {why} (no file was written)" in err, err
    assert tree_hashes(root) == before  # no output, no temporary file, an older output intact


@pytest.mark.parametrize("command", ["predict", "export", "export-into-run", "noise-scale"])
def test_an_output_in_a_read_only_folder_is_one_line_exit_1(run, tmp_path, monkeypatch, capsys, command):
    argv, out = commands(run, tmp_path)[command]
    with read_only(monkeypatch, out.parent):
        _ends_in_one_line(capsys, argv, out, "Permission denied", out.parent)


@pytest.mark.parametrize("command", ["predict", "export", "export-into-run", "noise-scale"])
def test_an_output_on_a_full_disk_is_one_line_exit_1_and_keeps_the_older_one(run, tmp_path, monkeypatch, capsys,
                                                                                 command):
    argv, out = commands(run, tmp_path)[command]
    out.write_bytes(b"the user's older output")
    try:
        with monkeypatch.context() as patch:
            patch.setattr(os, "fsync", full_disk_in(out.parent))
            _ends_in_one_line(capsys, [*argv, "--overwrite"], out, "No space left on device", out.parent)
    finally:
        out.unlink()  # (the run is shared by the module's tests)


def test_an_output_is_checked_before_any_work(tmp_path):
    (tmp_path / "taken.json").write_text("{}")
    (tmp_path / "adir").mkdir()
    (tmp_path / "link.json").symlink_to(tmp_path / "nowhere")  # a dangling link is a file of the user's too
    for name, needle in (("taken.json", "taken.json exists; pass --overwrite"), ("adir", "--json " + str(tmp_path / "adir")
                         + " is a directory"), ("link.json", "link.json exists; pass --overwrite")):
        with pytest.raises(cli.UsageError, match=needle):
            output_path(tmp_path / name, "--json", "noise-scale", overwrite=False)
    assert output_path(tmp_path / "taken.json", "--json", "noise-scale", overwrite=True) == tmp_path / "taken.json"
    with pytest.raises(cli.UsageError, match="must end in .npy or .csv"):
        output_path(tmp_path / "p.txt", "--out", "predict", overwrite=False, suffixes=(".npy", ".csv"))
