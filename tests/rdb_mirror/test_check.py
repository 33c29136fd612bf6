"""``rdb-mirror --check``: one session marker, metadata for every session, every increment and
data file readable, the mirror matching its metadata; each problem one line naming the file."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.interop import conftest as interop
from tests.interop import trees
from tests.interop.conftest import Repo, copy_repo
from tests.rdb_mirror.helpers import run_mirror, session_time

from rdb_format.layout import Layout
from rdb_increment import RetentionPolicy, remove_sessions
from rdb_mirror import BackupOptions, backup
from rdb_mirror.check import check

# the interop fixtures (built once per test session), shared with tests/interop
rdiff_backup_repos = interop.rdiff_backup_repos
repo_variant = interop.repo

SESSIONS = 4


def stamp(n: int) -> str:
    return f"2023-11-1{4 + (22 + n) // 24}T{(22 + n) % 24:02d}:13:20Z"


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four sessions of a tree with every file type, some changes each time."""
    work = tmp_path_factory.mktemp("check")
    src, repo = work / "src", work / "repo"
    trees.build_tree(src, seed=61)
    for n in range(SESSIONS):
        if n:
            trees.mutate_tree(src, seed=610 + n)
            (src / "grows.bin").write_bytes(os.urandom(1000) * (n + 20))
        backup(src, repo, BackupOptions(current_time=session_time(n)))
    return repo


@pytest.fixture
def repo(master: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    subprocess.run(["cp", "-a", str(master), str(copy)], check=True)
    return copy


def data(repo: Path) -> Path:
    return Layout(repo).data_dir


def one(repo: Path, pattern: str) -> Path:
    found = sorted(data(repo).rglob(pattern))
    assert found, pattern
    return found[0]


def only_problem(repo: Path, *words: str) -> str:
    problems = check(repo).problems
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], (word, problems[0])
    assert "\n" not in problems[0]
    return problems[0]


def test_a_healthy_repository_is_consistent(repo: Path) -> None:
    result = check(repo)
    assert result.problems == []
    assert result.sessions == SESSIONS and not result.unfinished
    assert result.files > 50 and result.entries > 50
    proc = run_mirror("--check", repo)
    assert proc.returncode == 0, proc.stderr
    assert f"checked {SESSIONS} sessions" in proc.stderr and "all match" in proc.stderr


def test_two_markers_mean_an_unfinished_session(repo: Path) -> None:
    (data(repo) / f"current_mirror.{stamp(SESSIONS)}.data").write_bytes(b"PID 999999\n")
    result = check(repo)
    assert result.unfinished
    assert any(f"rdb-mirror --regress {repo}" in p for p in result.problems)
    proc = run_mirror("--check", repo)
    assert proc.returncode == 14
    assert "did not finish" in proc.stderr


def test_no_marker_or_three_markers(repo: Path) -> None:
    marker = one(repo, "current_mirror.*")
    marker.unlink()
    only_problem(repo, "rdiff-backup-data: no current_mirror marker")
    for n in (SESSIONS, SESSIONS + 1, SESSIONS + 2):
        (data(repo) / f"current_mirror.{stamp(n)}.data").write_bytes(b"PID 1\n")
    assert any("3 current_mirror markers" in p for p in check(repo).problems)


def test_a_session_without_metadata(repo: Path) -> None:
    one(repo, f"mirror_metadata.{stamp(1)}.*").unlink()
    only_problem(repo, f"no mirror_metadata file for the session {stamp(1)}")


def test_the_current_metadata_must_be_a_snapshot(repo: Path) -> None:
    snapshot = one(repo, f"mirror_metadata.{stamp(SESSIONS - 1)}.snapshot.gz")
    snapshot.rename(snapshot.with_name(f"mirror_metadata.{stamp(SESSIONS - 1)}.diff.gz"))
    problems = check(repo).problems
    assert any("current session's metadata must be a snapshot" in p for p in problems)
    assert any("contains no snapshots" in p for p in problems)


def test_duplicate_metadata_timestamps(repo: Path) -> None:
    diff = one(repo, f"mirror_metadata.{stamp(1)}.diff.gz")
    shutil.copy(diff, diff.with_name(f"mirror_metadata.{stamp(1)}.snapshot.gz"))
    assert any("duplicate timestamp" in p for p in check(repo).problems)


def test_garbled_metadata_names_the_file(repo: Path) -> None:
    diff = one(repo, f"mirror_metadata.{stamp(0)}.diff.gz")
    with gzip.open(diff, "wb") as out:
        out.write(b"File a\n  Type reg\n  Size not-a-number\n")
    problem = only_problem(repo, str(diff))
    assert problem.startswith(str(diff))


def test_a_flipped_byte_in_a_compressed_increment(repo: Path) -> None:
    victim = max(data(repo).rglob("*.diff.gz"), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    problem = only_problem(repo, str(victim))
    assert "CRC" in problem or "gzip" in problem or "delta" in problem


def test_a_truncated_snapshot(repo: Path) -> None:
    victim = one(repo, "*.snapshot.gz")
    victim.write_bytes(victim.read_bytes()[:15])
    only_problem(repo, str(victim), "truncated")


def test_a_diff_that_is_no_delta_or_is_cut(repo: Path) -> None:
    diffs = sorted(p for p in data(repo).rglob("*.diff.gz") if "increments" in p.parts)
    first, second = diffs[0], diffs[1]
    with gzip.open(first, "wb") as out:
        out.write(b"this is not a delta")
    delta = gzip.decompress(second.read_bytes())
    with gzip.open(second, "wb") as out:
        out.write(delta[: max(5, len(delta) - 3)])
    problems = check(repo).problems
    assert len(problems) == 2, problems
    assert any(str(first) in p and "bad magic" in p for p in problems)
    assert any(str(second) in p and ("ends early" in p or "bad delta" in p) for p in problems)


def test_a_diff_with_nothing_to_apply_it_to(repo: Path) -> None:
    """The newest increment of a file is a diff, and its mirror copy is gone."""
    layout = Layout(repo)
    newest = stamp(SESSIONS - 2)
    diff = next(
        p
        for p in layout.increments_dir.glob(f"*.{newest}.diff.gz")
        if (repo / p.name.split(f".{newest}")[0]).is_file()
    )
    (repo / diff.name.split(f".{newest}")[0]).unlink()
    problems = check(repo).problems
    assert any(str(diff) in p and "no regular file after it" in p for p in problems)
    assert any("missing from the mirror" in p for p in problems)


def test_an_increment_of_no_session(repo: Path) -> None:
    diff = one(repo, f"increments/*.{stamp(1)}.diff.gz")
    orphan = diff.with_name(diff.name.replace(stamp(1), "2023-11-14T23:30:00Z"))
    diff.rename(orphan)
    problems = check(repo).problems
    assert any(str(orphan) in p and "is no session" in p for p in problems)


def test_garbled_session_files(repo: Path) -> None:
    stats = one(repo, f"session_statistics.{stamp(1)}.data")
    stats.write_text("SourceFiles lots\n")
    acl = one(repo, f"access_control_lists.{stamp(2)}.snapshot*")
    acl.unlink()
    with gzip.open(acl.with_name(f"access_control_lists.{stamp(2)}.snapshot.gz"), "wb") as out:
        out.write(b"# file: x\nuser:nobody:rwz\n")
    problems = check(repo).problems
    assert len(problems) == 2, problems
    assert any(p.startswith(str(stats)) for p in problems)
    assert any("access_control_lists" in p for p in problems)


def test_the_mirror_against_its_metadata_and_json(repo: Path) -> None:
    target = next(p for p in repo.iterdir() if p.is_file() and p.stat().st_size > 0)
    target.write_bytes(b"tampered")
    proc = run_mirror("--check", "--json", repo)
    assert proc.returncode == 13
    summary = json.loads(proc.stdout.splitlines()[-1])["summary"]
    assert summary["sessions"] == SESSIONS and summary["unfinished"] is False
    assert len(summary["problems"]) == 1 and target.name in summary["problems"][0]


def test_thinned_and_trimmed_repositories_are_consistent(repo: Path) -> None:
    times = [session_time(n) for n in range(SESSIONS)]
    remove_sessions(repo, RetentionPolicy(sessions=(str(times[1]),)))
    assert check(repo).problems == []
    remove_sessions(repo, RetentionPolicy(older_than=times[2]))
    assert check(repo).problems == []


@pytest.mark.interop
def test_repositories_written_by_rdiff_backup_are_consistent(
    repo_variant: Repo, tmp_path: Path
) -> None:
    copy = copy_repo(repo_variant.path, tmp_path / "repo")
    result = check(copy)
    assert result.problems == [], result.problems
    assert result.sessions == len(repo_variant.sessions)
