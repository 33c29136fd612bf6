"""The rdb-mirror command: bad inputs (one line, documented status, nothing written), JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.rdb_mirror.helpers import run_mirror, session_time
from tests.unprivileged import AS_A_USER

from rdb_format.layout import Layout
from rdb_format.locking import WriterLock


def _tree(root: Path) -> Path:
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.txt").write_bytes(b"a\n")
    (root / "src" / "sub" / "b.txt").write_bytes(b"b\n")
    return root / "src"


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_line_error(proc: object, status: int, *words: str) -> None:
    assert proc.returncode == status, (proc.returncode, proc.stderr)  # type: ignore[attr-defined]
    lines = proc.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert lines[0].startswith("rdb-mirror: ")
    for word in words:
        assert word in lines[0]


def test_source_missing(tmp_path: Path) -> None:
    proc = run_mirror(tmp_path / "nope", tmp_path / "repo")
    _one_line_error(proc, 15, "nope", "does not exist")
    assert not (tmp_path / "repo").exists()


def test_source_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    proc = run_mirror(tmp_path / "f", tmp_path / "repo")
    _one_line_error(proc, 15, "not a directory")
    assert not (tmp_path / "repo").exists()


def _mirror_as_a_user(src: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_A_USER, sys.executable, "-m", "rdb_mirror", str(src), str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_source_unreadable(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    src.chmod(0)
    try:
        proc = _mirror_as_a_user(src, tmp_path / "repo")
    finally:
        src.chmod(0o755)
    _one_line_error(proc, 15, "cannot be read")
    assert not (tmp_path / "repo").exists()


def test_destination_that_cannot_be_created(tmp_path: Path) -> None:
    """A parent the user may not write in: one line naming the destination, exit 15 (it was
    an internal error with a traceback)."""
    src = _tree(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    proc = _mirror_as_a_user(src, locked / "repo")
    _one_line_error(proc, 15, str(locked / "repo"), "cannot create", "Permission denied")
    assert os.listdir(locked) == []


def test_destination_inside_source(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    before = _listing(src)
    proc = run_mirror(src, src / "sub" / "backup")
    _one_line_error(proc, 2, "inside the source")
    assert _listing(src) == before


def test_destination_not_empty_not_a_repository(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "precious.txt").write_bytes(b"keep me\n")
    proc = run_mirror(src, dest)
    _one_line_error(proc, 10, "not empty", "not a backup repository")
    assert _listing(dest) == ["precious.txt"]


def test_destination_parent_missing(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    proc = run_mirror(src, tmp_path / "no" / "such" / "repo")
    _one_line_error(proc, 15, "parent directory does not exist")


def test_repository_being_written(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    repo = tmp_path / "repo"
    assert run_mirror("--current-time", session_time(0), src, repo).returncode == 0
    before = _listing(repo / "rdiff-backup-data")
    with WriterLock(Layout(repo), command="another-writer"):
        proc = run_mirror("--current-time", session_time(1), src, repo)
    _one_line_error(proc, 11, "another-writer", f"pid {os.getpid()}")
    assert _listing(repo / "rdiff-backup-data") == before


def test_time_not_in_the_past(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    repo = tmp_path / "repo"
    assert run_mirror("--current-time", session_time(1), src, repo).returncode == 0
    before = _listing(repo / "rdiff-backup-data")
    proc = run_mirror("--current-time", session_time(0), src, repo)
    _one_line_error(proc, 2, "not in the past")
    assert _listing(repo / "rdiff-backup-data") == before


def test_json_events_and_summary(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    proc = run_mirror("--json", "--current-time", session_time(0), src, tmp_path / "repo")
    assert proc.returncode == 0, proc.stderr
    documents = [json.loads(line) for line in proc.stdout.splitlines()]
    assert documents[0]["event"] == "start"
    summary = documents[-1]["summary"]
    assert summary["time"] == session_time(0)
    assert summary["source_files"] == 4
    assert summary["new_repository"] is True
    error = run_mirror("--json", tmp_path / "missing", tmp_path / "repo2")
    assert error.returncode == 15
    assert json.loads(error.stdout.splitlines()[-1])["error"]["exit_code"] == 15


def test_quiet_and_summary(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    proc = run_mirror("--current-time", session_time(0), src, tmp_path / "repo")
    assert proc.returncode == 0
    assert "first backup 2023-11-14T22:13:20Z" in proc.stderr
    (src / "a.txt").write_bytes(b"changed\n")
    quiet = run_mirror("-q", "--current-time", session_time(1), src, tmp_path / "repo")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    regress = run_mirror("--regress", tmp_path / "repo")
    assert regress.returncode == 0
    assert "nothing to regress" in regress.stderr
    checked = run_mirror("--check", tmp_path / "repo")
    assert checked.returncode == 0
    assert "all match" in checked.stderr
    (tmp_path / "repo" / "a.txt").write_bytes(b"tampered\n")
    assert run_mirror("--check", tmp_path / "repo").returncode == 13


def test_help_has_examples() -> None:
    proc = run_mirror("--help")
    assert proc.returncode == 0
    assert "--current-time" in proc.stdout
    assert "rdb-mirror --regress" in proc.stdout


def test_unreadable_file_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that vanishes before it is read: a warning line, error_log, exit status 3."""
    from rdb_clikit.run import run
    from rdb_mirror import source
    from rdb_mirror.cli import app
    from rdb_mirror.protocol import ContentRequest, RepositoryMessage

    src = _tree(tmp_path)
    real = source.RequestHandler.handle

    def handle(self: source.RequestHandler, message: RepositoryMessage) -> bool:
        if isinstance(message, ContentRequest) and message.index == (b"a.txt",):
            os.unlink(src / "a.txt")  # listed and stat'ed, gone before it is read
        return real(self, message)

    monkeypatch.setattr(source.RequestHandler, "handle", handle)
    argv = ["--current-time", str(session_time(0)), str(src), str(tmp_path / "repo")]
    status = run(app, prog="rdb-mirror", argv=argv)
    assert status == 3
    logs = list((tmp_path / "repo" / "rdiff-backup-data").glob("error_log.*"))
    assert len(logs) == 1
    assert (tmp_path / "repo" / "sub" / "b.txt").read_bytes() == b"b\n"
    assert not (tmp_path / "repo" / "a.txt").exists()
