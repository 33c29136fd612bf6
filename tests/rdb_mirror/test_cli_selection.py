"""Selection options through the installed ``rdb-mirror`` script.

The options are taken out of argv before typer parses the rest, so they may come anywhere,
interleaved with rdb-mirror's own options and the positional SRC DEST, in rdiff-backup's
order semantics. Each case checks the mirror's file list against what we expect (and against
the reference walk of :class:`~rdb_mirror.selection.Selection`); the interop cases also check
that ``rdiff-backup list files --at now`` on our repository agrees, and that rdiff-backup 2.2.7
given the same options backs up the same files.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.rdb_mirror.helpers import run_rdiff_backup, session_time

from rdb_mirror.selection import Selection, extract_selection_args

SCRIPT = Path(sys.executable).parent / "rdb-mirror"


def _script() -> str:
    if not SCRIPT.exists():  # pragma: no cover - the venv always has it
        pytest.skip("the rdb-mirror script is not installed next to the interpreter")
    return str(SCRIPT)


def build(src: Path) -> None:
    for rel, size in [
        ("a/b/f.py", 10),
        ("a/b/notes.log", 3),
        ("a/x.txt", 5),
        ("a/big.bin", 5000),
        ("d/y.txt", 1),
        ("d/.nobackup", 0),
        ("d/sub/z.txt", 3),
        ("Foo/Bar.TXT", 7),
        ("keep/data.log", 100),
        ("top.txt", 12),
    ]:
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    (src / "empty").mkdir()
    os.symlink("a", src / "link")
    os.mkfifo(src / "fifo")


def mirror_listing(repo: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(repo):
        rel_dir = os.path.relpath(dirpath, repo)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != "rdiff-backup-data"]
        for name in dirnames + filenames:
            out.append(os.path.normpath(os.path.join(rel_dir, name)))
    return sorted(out)


def rdiff_backup_listing(exe: str, repo: Path) -> list[str]:
    proc = run_rdiff_backup(exe, "list", "files", "--at", "now", repo)
    assert proc.returncode == 0, proc.stderr
    return sorted(line for line in proc.stdout.splitlines() if line not in ("", "."))


def run_script(
    cwd: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [_script(), *args],
        cwd=cwd,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        check=False,
    )


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]  # SRC and DEST spelled as "src" / "repo" (relative to the work dir)
    expected: tuple[str, ...]
    stdin: bytes = b""


CASES = [
    Case(
        "globs-after-positionals",
        ("--exclude", "**/*.log", "src", "repo", "--exclude-if-present", ".nobackup"),
        (
            "Foo",
            "Foo/Bar.TXT",
            "a",
            "a/b",
            "a/b/f.py",
            "a/big.bin",
            "a/x.txt",
            "empty",
            "fifo",
            "keep",
            "link",
            "top.txt",
        ),
    ),
    Case(
        "include-scan-interleaved-with-own-options",
        ("--include", "src/a/**.py", "--quiet", "src", "--exclude", "**", "repo"),
        ("a", "a/b", "a/b/f.py"),
    ),
    Case(
        "types-sizes-regexp-ignorecase",
        (
            "--exclude-symbolic-links",
            "--exclude-fifos",
            "--max-file-size=1000",
            "--exclude",
            "ignorecase:src/foo",
            "--include-regexp",
            r"\.txt$",
            "--exclude-regexp=^src/(a|keep)",
            "src",
            "repo",
        ),
        ("d", "d/.nobackup", "d/sub", "d/sub/z.txt", "d/y.txt", "empty", "top.txt"),
    ),
    Case(
        "filelist-stdin-null-separator",
        ("src", "--exclude-filelist-stdin", "repo", "--null-separator"),
        (
            "Foo",
            "Foo/Bar.TXT",
            "a",
            "a/b",
            "a/b/f.py",
            "a/b/notes.log",
            "a/x.txt",
            "empty",
            "fifo",
            "keep",
            "keep/data.log",
            "link",
            "top.txt",
        ),
        b"src/a/big.bin\0src/d\0",
    ),
    Case(
        "globbing-filelist-and-source-spelling",
        ("--include-globbing-filelist-stdin", "--exclude", "**", "./src/", "repo"),
        ("a", "a/b", "a/b/f.py", "d", "d/sub", "d/sub/z.txt"),
        b"- src/a/b/notes.log\nsrc/a/b\nsrc/d/sub\n",
    ),
]


def _full_argv(case: Case, when: int) -> list[str]:
    return ["--current-time", str(when), *case.argv]


def _expected_by_walk(case: Case, cwd: Path) -> list[str]:
    options, rest = extract_selection_args(list(case.argv))
    positional = [arg for arg in rest if not arg.startswith("-")]
    root = positional[0]
    cwd_before = os.getcwd()
    os.chdir(cwd)
    try:
        selection = Selection.from_options(options, root=root, stdin=io.BytesIO(case.stdin))
        return sorted(os.fsdecode(path) for path in selection.walk())
    finally:
        os.chdir(cwd_before)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_selection_options_through_the_script(tmp_path: Path, case: Case) -> None:
    build(tmp_path / "src")
    proc = run_script(tmp_path, *_full_argv(case, session_time(0)), stdin=case.stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    got = mirror_listing(tmp_path / "repo")
    assert got == sorted(case.expected)
    assert got == _expected_by_walk(case, tmp_path)


def test_selection_changes_between_sessions(tmp_path: Path) -> None:
    """A file excluded by the next session's options is recorded as deleted (and kept in
    the increments), as rdiff-backup does."""
    build(tmp_path / "src")
    first = run_script(tmp_path, "--current-time", str(session_time(0)), "src", "repo")
    assert first.returncode == 0, first.stderr.decode()
    assert "a/big.bin" in mirror_listing(tmp_path / "repo")
    second = run_script(
        tmp_path,
        "--current-time",
        str(session_time(1)),
        "src",
        "repo",
        "--exclude",
        "src/a",
        "--json",
    )
    assert second.returncode == 0, second.stderr.decode()
    listing = mirror_listing(tmp_path / "repo")
    assert not any(path == "a" or path.startswith("a/") for path in listing)
    summary = json.loads(second.stdout.decode().splitlines()[-1])["summary"]
    assert summary["deleted_files"] == 6  # a, a/b, a/b/f.py, a/b/notes.log, a/x.txt, a/big.bin
    increments = tmp_path / "repo" / "rdiff-backup-data" / "increments" / "a"
    assert [p.name.split(".")[0] for p in increments.glob("big.bin.*")] == ["big"]


def test_selection_errors_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    build(tmp_path / "src")
    for argv, words in [
        (("--include", "src/a", "src", "repo"), "only includes"),
        (("--exclude", "/etc/**", "src", "repo"), "cannot match"),
        (("--exclude-regexp", "(", "src", "repo"), "regexp"),
        (("--include-fifos", "src", "repo"), "bad selection option"),
        (("--max-file-size", "1k", "src", "repo"), "max-file-size"),
        (("src", "repo", "--exclude"), "needs a value"),
        (("--exclude-fifos=yes", "src", "repo"), "takes no value"),
        (("--exclude-filelist", "missing.txt", "src", "repo"), "missing.txt"),
    ]:
        proc = run_script(tmp_path, *argv)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1, (argv, lines)
        assert lines[0].startswith("rdb-mirror: "), lines
        assert words in lines[0], (argv, lines)
        assert not (tmp_path / "repo").exists(), argv


def test_selection_error_as_json(tmp_path: Path) -> None:
    build(tmp_path / "src")
    proc = run_script(tmp_path, "--json", "--exclude", "/etc/**", "src", "repo")
    assert proc.returncode == 2
    assert b'"error"' in proc.stdout
    proc = run_script(tmp_path, "--json", "src", "repo", "--exclude")
    assert proc.returncode == 2
    assert b'"error"' in proc.stdout


def test_selection_with_regress_or_check_is_refused(tmp_path: Path) -> None:
    build(tmp_path / "src")
    assert run_script(tmp_path, "src", "repo").returncode == 0
    for flag in ("--regress", "--check"):
        proc = run_script(tmp_path, flag, "--exclude", "**", "repo")
        assert proc.returncode == 2, proc.stderr
        assert b"selection options apply to a backup" in proc.stderr


def test_help_lists_every_selection_option() -> None:
    from rdb_mirror.selection import SELECTION_FLAGS, SELECTION_OPTIONS

    proc = subprocess.run(
        [_script(), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    refused = {
        "--include-device-files",
        "--include-fifos",
        "--include-sockets",
        "--include-other-filesystems",
    }
    text = " ".join(proc.stdout.replace("│", " ").split())
    for option in sorted((SELECTION_OPTIONS | SELECTION_FLAGS) - refused):
        assert option in text, option


# ---- interop: rdiff-backup 2.2.7 reads our repository and selects the same files


@pytest.mark.interop
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_rdiff_backup_agrees(tmp_path: Path, case: Case, rdiff_backup: str) -> None:
    build(tmp_path / "src")
    proc = run_script(tmp_path, *_full_argv(case, session_time(0)), stdin=case.stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    ours = mirror_listing(tmp_path / "repo")
    assert rdiff_backup_listing(rdiff_backup, tmp_path / "repo") == ours
    # rdiff-backup itself, given the same selection options, backs up the same files
    options, rest = extract_selection_args(list(case.argv))
    positional = [arg for arg in rest if not arg.startswith("-")]
    flat = [
        f"{name}={value}" if value is not None else name
        for name, value in options
        if name != "--null-separator"
    ]
    # --null-separator is one of rdiff-backup's global options (before the action)
    front = ["--null-separator"] if ("--null-separator", None) in options else []
    theirs = subprocess.run(
        [rdiff_backup, *front, "backup", *flat, positional[0], "theirs"],
        cwd=tmp_path,
        input=case.stdin,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert theirs.returncode == 0, theirs.stderr.decode()
    assert mirror_listing(tmp_path / "theirs") == ours


@pytest.mark.interop
def test_rdiff_backup_agrees_after_a_selection_change(tmp_path: Path, rdiff_backup: str) -> None:
    build(tmp_path / "src")
    assert (
        run_script(tmp_path, "--current-time", str(session_time(0)), "src", "repo").returncode == 0
    )
    proc = run_script(
        tmp_path,
        "--exclude-if-present",
        ".nobackup",
        "--current-time",
        str(session_time(1)),
        "src",
        "repo",
        "--exclude",
        "**/*.log",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    ours = mirror_listing(tmp_path / "repo")
    assert not any(path.startswith("d") or path.endswith(".log") for path in ours)
    assert rdiff_backup_listing(rdiff_backup, tmp_path / "repo") == ours
    verify = run_rdiff_backup(rdiff_backup, "verify", tmp_path / "repo")
    assert verify.returncode == 0, verify.stderr
    restored = run_rdiff_backup(
        rdiff_backup, "restore", "--at", str(session_time(0)), tmp_path / "repo", tmp_path / "r0"
    )
    assert restored.returncode == 0, restored.stderr
    assert "d/sub/z.txt" in mirror_listing(tmp_path / "r0")
