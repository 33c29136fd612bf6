"""``rdb-restore compare SRC REPO``: each kind of difference, by metadata, ``--hash`` and
``--full``, with its output line and exit status; and (interop) the same verdicts as
``rdiff-backup compare --method meta|hash|full`` on a repository rdiff-backup made."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.interop.conftest import run_rdiff_backup
from tests.rdb_restore.helpers import run_restore

from rdb_increment.fsextras import posix1e
from rdb_mirror.session import BackupOptions, backup
from rdb_restore.query import Method, compare
from rdb_restore.repo import open_repo

T0 = 1_700_000_000
MTIME = 1_600_000_000
IS_ROOT = os.geteuid() == 0
METHODS = {"meta": (), "hash": ("--hash",), "full": ("--full",)}


def _xattrs_work(directory: Path) -> bool:
    probe = directory / ".probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)
    os.utime(path, (MTIME, MTIME))


def build_source(src: Path) -> None:
    """A small tree with one file per kind of difference the mutation below makes."""
    (src / "dir").mkdir(parents=True)
    (src / "touched-dir").mkdir()
    for name in ("same", "data", "grown", "mode", "mtime", "owner", "became-dir", "deleted"):
        _write(src / name, f"{name} content\n".encode())
    _write(src / "dir" / "ea", b"extended attributes\n")
    _write(src / "dir" / "acl", b"access control list\n")
    _write(src / "touched-dir" / "inside", b"in a directory\n")
    (src / "link").symlink_to("same")
    for directory in (src / "dir", src / "touched-dir", src):
        os.utime(directory, (MTIME, MTIME))


# What mutate() changes: path -> what rdb-restore compare names (by metadata). "data"-only
# changes show up with --hash and --full alone.
EXPECTED_META = {
    "added": ("new", ""),
    "became-dir": ("changed", "type reg -> dir"),
    "deleted": ("deleted", ""),
    "grown": ("changed", "size"),
    "link": ("changed", "target"),
    "mode": ("changed", "permissions"),
    "mtime": ("changed", "mtime"),
    "touched-dir": ("changed", "mtime"),
}


def mutate(src: Path, *, eas: bool, acls: bool) -> dict[str, tuple[str, str]]:
    """Change ``src`` (built by :func:`build_source`); the differences compare must report."""
    expected = dict(EXPECTED_META)
    _write(src / "data", b"DATA content\n")  # same size, same mtime: only the bytes differ
    _write(src / "grown", b"grown content, and then some\n")
    os.chmod(src / "mode", 0o600)
    os.utime(src / "mtime", (MTIME + 7, MTIME + 7))
    (src / "became-dir").unlink()
    (src / "became-dir").mkdir()
    (src / "deleted").unlink()
    _write(src / "added", b"new\n")
    (src / "link").unlink()
    (src / "link").symlink_to("mode")
    os.utime(src / "touched-dir", (MTIME + 60, MTIME + 60))
    if IS_ROOT:
        os.chown(src / "owner", 4242, 4343)
        expected["owner"] = ("changed", "owner")
    if eas:
        os.setxattr(src / "dir" / "ea", "user.note", b"added after the backup")
        expected["dir/ea"] = ("changed", "extended attributes")
    if acls:
        # the mask equals the group bits, so the mode stays 0644: only the ACL differs
        posix1e.ACL(text="u::rw-,u:nobody:r--,g::r--,m::r--,o::r--").applyto(
            str(src / "dir" / "acl")
        )
        expected["dir/acl"] = ("changed", "ACL")
    for directory in (src / "dir", src / "became-dir", src):
        os.utime(directory, (MTIME, MTIME))
    return expected


@dataclass
class Case:
    src: Path
    repo: Path
    expected: dict[str, tuple[str, str]]


def make_case(workdir: Path, backup_with: Callable[[Path, Path], None]) -> Case:
    src, repo = workdir / "src", workdir / "repo"
    build_source(src)
    backup_with(src, repo)
    expected = mutate(src, eas=_xattrs_work(workdir), acls=posix1e is not None)
    return Case(src, repo, expected)


def rdb_mirror_backup(src: Path, repo: Path) -> None:
    backup(src, repo, BackupOptions(current_time=T0))


@pytest.fixture
def case(tmp_path: Path) -> Case:
    return make_case(tmp_path, rdb_mirror_backup)


def lines_of(stdout: bytes) -> dict[str, tuple[str, str]]:
    """``kind: path (what)`` lines → {path: (kind, what)}."""
    found = {}
    for line in stdout.decode().splitlines():
        match = re.fullmatch(r"(new|deleted|changed): (.*?)(?: \((.*)\))?", line)
        assert match, line
        found[match[2]] = (match[1], match[3] or "")
    return found


def with_data(expected: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The expectation of --hash / --full: files whose bytes differ also name ``data``."""
    out = dict(expected)
    out["data"] = ("changed", "data")
    out["grown"] = ("changed", "size, data")
    return out


def test_identical_tree_exits_0(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    build_source(src)
    rdb_mirror_backup(src, repo)
    for flags in METHODS.values():
        proc = run_restore("compare", *flags, src, repo)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == b""
        assert b"no differences" in proc.stderr


def test_metadata_differences(case: Case) -> None:
    proc = run_restore("compare", case.src, case.repo)
    assert proc.returncode == 1, proc.stderr
    assert lines_of(proc.stdout) == case.expected
    assert f"{len(case.expected)} differences".encode() in proc.stderr


def test_extended_attributes_and_acl_removed_since_the_backup(tmp_path: Path) -> None:
    """A file that had an EA and an ACL at the backup and has neither now (no extended
    attribute at all: the walk's scan says so without reading any) differs in both; one
    that still has them does not."""
    if not _xattrs_work(tmp_path) or posix1e is None:
        pytest.skip("needs user extended attributes and POSIX ACLs here")
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for name in ("stripped", "kept"):
        _write(src / name, b"with extras\n")
        os.setxattr(src / name, "user.note", b"an ea")
        posix1e.ACL(text="u::rw-,u:nobody:r--,g::r--,m::r--,o::r--").applyto(str(src / name))
    os.utime(src, (MTIME, MTIME))
    rdb_mirror_backup(src, repo)
    os.removexattr(src / "stripped", "user.note")
    posix1e.ACL(text="u::rw-,g::r--,o::r--").applyto(str(src / "stripped"))
    assert os.listxattr(src / "stripped") == []
    os.utime(src, (MTIME, MTIME))
    proc = run_restore("compare", src, repo)
    assert proc.returncode == 1, proc.stderr
    assert lines_of(proc.stdout) == {"stripped": ("changed", "extended attributes, ACL")}


@pytest.mark.parametrize("method", ["hash", "full"])
def test_content_differences(case: Case, method: str) -> None:
    proc = run_restore("compare", *METHODS[method], case.src, case.repo)
    assert proc.returncode == 1, proc.stderr
    assert lines_of(proc.stdout) == with_data(case.expected)


def test_full_reads_the_repository_and_hash_the_digest(case: Case) -> None:
    """--hash trusts the recorded SHA1; --full rebuilds the file: a damaged mirror copy is
    only seen by --full."""
    (case.repo / "same").write_bytes(b"SAME content\n")  # same size, bytes differ
    hashed = lines_of(run_restore("compare", "--hash", case.src, case.repo).stdout)
    full = lines_of(run_restore("compare", "--full", case.src, case.repo).stdout)
    assert "same" not in hashed
    assert full["same"] == ("changed", "data")


def test_json_output(case: Case) -> None:
    proc = run_restore("compare", "--json", "--hash", case.src, case.repo)
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    assert document["same"] is False
    assert document["method"] == "hash"
    assert document["time"] == T0
    found = {d["path"]: (d["change"], d["what"]) for d in document["differences"]}
    assert found == with_data(case.expected)


def test_older_session_and_sub_path(case: Case) -> None:
    """After a second backup the mutated tree matches the newest session by metadata (by
    hash, only the file whose change kept its size and mtime: the backup skipped it, which is
    what --hash is for), still differs from the first one (--at), and a sub-path compares
    only that sub-tree."""
    backup(case.src, case.repo, BackupOptions(current_time=T0 + 3600))
    assert run_restore("compare", case.src, case.repo).returncode == 0
    hashed = run_restore("compare", "--hash", case.src, case.repo)
    assert lines_of(hashed.stdout) == {"data": ("changed", "data")}
    older = run_restore("compare", "--hash", "--at", T0, case.src, case.repo)
    assert older.returncode == 1
    assert lines_of(older.stdout) == with_data(case.expected)
    sub = run_restore("compare", "--at", "1B", case.src / "dir", case.repo / "dir")
    inside = {p.removeprefix("dir/"): v for p, v in case.expected.items() if p.startswith("dir/")}
    assert lines_of(sub.stdout) == inside
    assert sub.returncode == (1 if inside else 0)


@pytest.mark.parametrize("inline_file", [0, 1 << 30])
@pytest.mark.parametrize("method", ["hash", "full"])
def test_files_checked_on_the_pool_or_in_the_walk(
    case: Case, monkeypatch: pytest.MonkeyPatch, inline_file: int, method: Method
) -> None:
    """Small files are checked on the walk's thread, large ones on the pool: the verdicts
    are the same when all go one way or the other, for compare and for verify."""
    from rdb_restore import query

    monkeypatch.setattr(query, "INLINE_FILE", inline_file)
    (case.repo / "same").write_bytes(b"SAME content\n")  # a damaged mirror copy
    with open_repo(case.repo) as repo:
        result = compare(case.src, repo, T0, method=method)
        verified = query.verify(repo, T0)
    expected = with_data(case.expected)
    if method == "full":
        expected["same"] = ("changed", "data")
    assert {d.path: (d.kind, d.what) for d in result.differences} == expected
    assert [line.split(":")[0] for line in verified.bad] == ["same"]


def test_library_result(case: Case) -> None:
    with open_repo(case.repo) as repo:
        result = compare(case.src, repo, T0, method="full")
    assert not result.same
    assert {d.path: (d.kind, d.what) for d in result.differences} == with_data(case.expected)
    assert result.compared == 14  # the entries present on both sides


def test_missing_source_is_an_error(case: Case) -> None:
    shutil.rmtree(case.src)
    proc = run_restore("compare", case.src, case.repo)
    assert proc.returncode == 15  # SOURCE: the tree to compare cannot be used
    message = proc.stderr.decode()
    assert message.count("\n") == 1
    assert str(case.src) in message
    assert "Traceback" not in message


# ---- interop: the same verdicts as rdiff-backup compare ----------------------------------------

RDIFF_BACKUP_LINE = re.compile(
    r"(new|deleted|changed|metadata (?:changed|the same), data (?:changed|the same)): (.*)"
)


def rdiff_backup_verdicts(stdout: bytes) -> dict[str, tuple[str, bool]]:
    """rdiff-backup's compare lines → {path: (new/deleted/changed, data differs)}."""
    found = {}
    for line in stdout.decode().splitlines():
        match = RDIFF_BACKUP_LINE.fullmatch(line)
        if match is None:
            continue
        kind = match[1]
        found[match[2]] = (
            kind if kind in ("new", "deleted") else "changed",
            kind.endswith("data changed"),
        )
    return found


def our_verdicts(stdout: bytes) -> dict[str, tuple[str, bool]]:
    return {
        path: (kind, "data" in what.split(", ")) for path, (kind, what) in lines_of(stdout).items()
    }


@pytest.mark.interop
@pytest.mark.parametrize("method", ["meta", "hash", "full"])
def test_compare_agrees_with_rdiff_backup(rdiff_backup: str, tmp_path: Path, method: str) -> None:
    def rdiff_backup_backup(src: Path, repo: Path) -> None:
        run_rdiff_backup(rdiff_backup, ["--current-time", str(T0), "backup", str(src), str(repo)])

    case = make_case(tmp_path, rdiff_backup_backup)
    theirs = run_rdiff_backup(
        rdiff_backup, ["compare", "--method", method, str(case.src), str(case.repo)], check=False
    )
    ours = run_restore("compare", *METHODS[method], case.src, case.repo)
    assert theirs.returncode == 1, theirs.stderr
    assert ours.returncode == 1, ours.stderr
    assert our_verdicts(ours.stdout) == rdiff_backup_verdicts(theirs.stdout)
    expected = case.expected if method == "meta" else with_data(case.expected)
    assert lines_of(ours.stdout) == expected
    # and both agree that the unchanged tree matches its backup
    restored = tmp_path / "restored"
    assert run_restore("--at", T0, case.repo, restored).returncode == 0
    again = run_rdiff_backup(
        rdiff_backup, ["compare", "--method", method, str(restored), str(case.repo)], check=False
    )
    assert again.returncode == 0, again.stdout
    assert run_restore("compare", *METHODS[method], restored, case.repo).returncode == 0
