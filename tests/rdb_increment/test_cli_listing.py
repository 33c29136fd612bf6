"""Listing (library and text) and the rdb-increment command: output, exit codes, messages."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rdb_clikit.run import run
from rdb_format.layout import Layout
from rdb_format.quoting import NO_QUOTING
from rdb_format.repository import write_marker
from rdb_increment import (
    IncrementWriter,
    byte_summary,
    format_listing,
    format_parsable,
    format_sizes,
    increment_sizes,
    list_increments,
)
from rdb_increment.cli import app

T1, T2, T3 = 1_700_000_000, 1_700_001_000, 1_700_002_000


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture
def repo(tmp_path: Path) -> Layout:
    """Three sessions: a.txt changed twice, gone.txt deleted, sub/new.txt created."""
    root = tmp_path / "repo"
    (root / "rdiff-backup-data" / "increments").mkdir(parents=True)
    layout = Layout(root)
    (root / "sub").mkdir()
    (root / "a.txt").write_bytes(b"version 3\n")
    (root / "sub" / "new.txt").write_bytes(b"new\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    v1, v2, gone = scratch / "v1", scratch / "v2", scratch / "gone"
    v1.write_bytes(b"version 1\n")
    v2.write_bytes(b"version 2\n")
    gone.write_bytes(b"deleted later\n" * 10)
    w1 = IncrementWriter(layout, T1, utc_offset=0)
    w1.write((b"a.txt",), v1, v2)
    w1.write((), root, root)
    w2 = IncrementWriter(layout, T2, utc_offset=0)
    w2.write((b"a.txt",), v2, root / "a.txt")
    w2.write((b"gone.txt",), gone, None)
    w2.write((b"sub",), root / "sub", root / "sub")
    w2.write((b"sub", b"new.txt"), None, root / "sub" / "new.txt")
    w2.write((), root, root)
    write_marker(layout, NO_QUOTING, T3, pid=1, utc_offset=0)
    return layout


def test_list_repository(repo: Layout) -> None:
    listing = list_increments(repo.root)
    assert [(i.time, i.type) for i in listing.increments] == [(T1, "directory"), (T2, "directory")]
    assert format_listing(listing) == (
        "Found 2 increments:\n"
        "    increments.2023-11-14T22:13:20Z.dir   Tue Nov 14 22:13:20 2023\n"
        "    increments.2023-11-14T22:30:00Z.dir   Tue Nov 14 22:30:00 2023\n"
        "Current mirror: Tue Nov 14 22:46:40 2023\n"
    )
    assert format_parsable(listing) == (f"{T1} directory\n{T2} directory\n{T3} directory\n")


def test_list_path(repo: Layout) -> None:
    a = list_increments(repo.root, "a.txt")
    assert [(i.base, i.type) for i in a.increments] == [
        ("a.txt.2023-11-14T22:13:20Z.diff.gz", "regular"),
        ("a.txt.2023-11-14T22:30:00Z.diff.gz", "regular"),
    ]
    assert a.mirror.type == "regular"
    gone = list_increments(repo.root, "gone.txt")
    assert [i.type for i in gone.increments] == ["regular"]
    assert gone.mirror.type == "missing"
    new = list_increments(repo.root, b"sub/new.txt")
    assert [i.type for i in new.increments] == ["missing"]


def test_sizes_match_the_files(repo: Layout) -> None:
    sizes = increment_sizes(repo.root)
    files = [p for p in repo.data_dir.rglob("*") if p.is_file() and ".20" in p.name]
    per_time = {T1: 0, T2: 0}
    for path in files:
        if "current_mirror" in path.name:
            continue
        per_time[T1 if "22:13:20" in path.name else T2] += path.stat().st_size
    mirror = sum(
        os.lstat(p).st_size
        for p in [repo.root, *repo.root.rglob("*")]
        if "rdiff-backup-data" not in p.parts
    )
    assert [(s.time, s.size, s.total_size, s.current) for s in sizes] == [
        (T1, per_time[T1], mirror + per_time[T1] + per_time[T2], False),
        (T2, per_time[T2], mirror + per_time[T2], False),
        (T3, mirror, mirror, True),
    ]
    text = format_sizes(sizes)
    assert text.splitlines()[0] == f"{'Time':^24} {'Size':^17} {'Cumulative size':^17}"
    assert text.splitlines()[-1].endswith("  (current mirror)")


def test_byte_summary() -> None:
    assert byte_summary(1) == "1 byte"
    assert byte_summary(134) == "134 bytes"
    assert byte_summary(208341) == "203 KB"
    assert byte_summary(1536) == "1.50 KB"
    assert byte_summary(15 << 20) == "15.0 MB"


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(app, prog="rdb-increment", argv=list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_and_json(repo: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli("list", str(repo.root), capsys=capsys)
    assert code == 0 and out.startswith("Found 2 increments:\n")
    code, out, _ = cli("list", "--json", str(repo.root), "a.txt", capsys=capsys)
    doc = json.loads(out)
    assert doc["path"] == "a.txt"
    assert [i["time"] for i in doc["increments"]] == [T1, T2]
    code, out, _ = cli("list", "--size", "--json", str(repo.root), capsys=capsys)
    assert [s["current_mirror"] for s in json.loads(out)["sessions"]] == [False, False, True]


def test_cli_errors(tmp_path: Path, repo: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli("list", str(tmp_path / "nope"), capsys=capsys)
    assert code == 10
    assert err == (
        f"rdb-increment: {tmp_path / 'nope'}: does not exist; "
        "give the directory that was the backup destination\n"
    )
    code, _, err = cli("make", str(repo.root), "a.txt", capsys=capsys)
    assert code == 2 and "give exactly one of --new FILE or --deleted" in err
    code, _, err = cli("make", str(repo.root), "a.txt", "--new", "/nonexistent", capsys=capsys)
    assert code == 15 and err == "rdb-increment: /nonexistent: does not exist\n"
    code, out, _ = cli("list", "--json", str(tmp_path / "nope"), capsys=capsys)
    assert code == 10 and json.loads(out)["error"]["exit_code"] == 10


def test_cli_make_diff_then_exists(
    repo: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "a-new"
    new.write_bytes(b"version 4\n")
    code, out, err = cli("make", str(repo.root), "a.txt", "--new", str(new), capsys=capsys)
    assert code == 0, err
    path = Path(out.strip())
    assert path == repo.increments_dir / "a.txt.2023-11-14T22:46:40Z.diff.gz"
    assert gzip.decompress(path.read_bytes()).startswith(b"rs\x026")
    code, _, err = cli("make", str(repo.root), "a.txt", "--new", str(new), capsys=capsys)
    assert code == 1 and err == f"rdb-increment: {path}: increment already exists " + (
        "(an unfinished session? regress first)\n"
    )


def test_cli_make_deleted_json_no_compression(
    repo: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(
        "make",
        "--json",
        str(repo.root),
        "sub/new.txt",
        "--deleted",
        "--no-compression",
        "--time",
        str(T3 + 5),
        capsys=capsys,
    )
    assert code == 0
    inc = json.loads(out)["increment"]
    assert (
        inc["kind"] == "snapshot" and inc["compressed"] is False and inc["index"] == "sub/new.txt"
    )
    assert Path(inc["path"]).read_bytes() == b"new\n"


def test_console_script_help() -> None:
    exe = Path(sys.executable).parent / "rdb-increment"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "list" in proc.stdout and "make" in proc.stdout
    proc = subprocess.run(
        [str(exe), "make", "-h"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0 and "Examples:" in proc.stdout and "Exit status" in proc.stdout
