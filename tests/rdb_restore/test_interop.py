"""rdb-restore on repositories written by rdiff-backup 2.2.7 (6 variants × 5 sessions, API 201
and chars_to_quote included): every session restores exactly as rdiff-backup's own
``restore --at`` does, and ``verify`` agrees with ``rdiff-backup verify``."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from tests.interop import conftest as interop
from tests.interop import trees
from tests.interop.conftest import Repo, copy_repo, run_rdiff_backup
from tests.rdb_mirror.helpers import differences
from tests.rdb_restore.helpers import run_restore

from rdb_format.increments import parse_increment_name
from rdb_restore import restore
from rdb_restore.query import list_changed, list_sessions, verify
from rdb_restore.repo import open_repo

pytestmark = pytest.mark.interop

# the interop fixtures (built once per test session), shared with tests/interop
rdiff_backup_repos = interop.rdiff_backup_repos
repo = interop.repo


def rdiff_backup_restore(repo: Repo, location: Path, when: int, target: Path) -> trees.Snapshot:
    run_rdiff_backup(
        repo.exe,
        [*repo.variant.api_opts, "restore", "--at", str(when), str(location), str(target)],
        tz=repo.variant.tz,
    )
    return trees.scan(target)


def test_every_session_restores_as_rdiff_backup_does(repo: Repo, tmp_path: Path) -> None:
    for n, session in enumerate(repo.sessions):
        theirs = rdiff_backup_restore(repo, repo.path, session.time, tmp_path / f"theirs{n}")
        restore(str(repo.path), str(tmp_path / f"ours{n}"), at=str(session.time))
        ours = trees.scan(tmp_path / f"ours{n}")
        assert differences(theirs, ours) == [], f"{repo.variant.name} session {n}"
        assert differences(session.source, ours) == [], f"{repo.variant.name} session {n}"
        shutil.rmtree(tmp_path / f"theirs{n}")
        shutil.rmtree(tmp_path / f"ours{n}")


def test_every_session_restores_over_the_link_as_locally(repo: Repo, tmp_path: Path) -> None:
    """The same repositories through ``rdb-restore --server`` (a subprocess schema): every
    session bit-exact, as rdiff-backup recorded it."""
    command = shlex.join(["exec", str(Path(sys.executable).parent / "rdb-restore"), "--server"])
    schema = f"sh -c {shlex.quote(command)} %s"
    for n, session in enumerate(repo.sessions):
        target = tmp_path / f"remote{n}"
        proc = run_restore(
            "--remote-schema", schema, "--at", session.time, f"127.0.0.1::{repo.path}", target
        )
        assert proc.returncode == 0, proc.stderr
        assert differences(session.source, trees.scan(target)) == [], f"{repo.variant.name} {n}"
        shutil.rmtree(target)


def test_sub_paths_and_increment_files_as_rdiff_backup(
    rdiff_backup_repos: dict[str, Repo], tmp_path: Path
) -> None:
    for name in ("default", "quote-upper"):
        repo = rdiff_backup_repos[name]
        oldest = repo.sessions[0]
        top_dirs = [i for i, e in oldest.source.items() if len(i) == 1 and e.type == "dir"]
        for k, index in enumerate(top_dirs[:3]):
            location = repo.path / os.fsdecode(index[0])
            theirs = rdiff_backup_restore(repo, location, oldest.time, tmp_path / f"t-{name}{k}")
            restore(str(location), str(tmp_path / f"o-{name}{k}"), at=str(oldest.time))
            assert differences(theirs, trees.scan(tmp_path / f"o-{name}{k}")) == []
        if name != "default":
            continue
        # one increment file, restored as of its own time
        incs = repo.path / "rdiff-backup-data" / "increments"
        diff = next(p for p in sorted(incs.iterdir()) if ".diff" in p.name)
        proc = run_restore(diff, tmp_path / "inc")
        assert proc.returncode == 0, proc.stderr
        run_rdiff_backup(repo.exe, ["restore", str(diff), str(tmp_path / "rb")])
        ours_inc, theirs_inc = trees.stat_entry(tmp_path / "inc"), trees.stat_entry(tmp_path / "rb")
        assert dataclasses.replace(ours_inc, inode=theirs_inc.inode) == theirs_inc


def test_verify_agrees_with_rdiff_backup(repo: Repo) -> None:
    with open_repo(repo.path) as opened:
        for session in repo.sessions:
            ours = verify(opened, session.time)
            theirs = run_rdiff_backup(
                repo.exe,
                [*repo.variant.api_opts, "verify", "--at", str(session.time), str(repo.path)],
                tz=repo.variant.tz,
                check=False,
            )
            assert ours.ok == (theirs.returncode == 0), theirs.stderr
            assert ours.ok
            assert ours.checked > 0


def test_verify_finds_a_damaged_diff_as_rdiff_backup_does(
    rdiff_backup_repos: dict[str, Repo], tmp_path: Path
) -> None:
    healthy = rdiff_backup_repos["default"]
    path = copy_repo(healthy.path, tmp_path / "repo")
    incs = path / "rdiff-backup-data" / "increments"
    diff = next(p for p in sorted(incs.rglob("*.diff.gz")) if p.stat().st_size > 30)
    name = parse_increment_name(os.fsencode(diff.name))
    assert name is not None
    # a valid delta that makes different bytes: one literal, then END
    with gzip.open(diff, "wb") as out:
        out.write(b"rs\x026" + b"\x05wrong" + b"\x00")
    theirs = run_rdiff_backup(
        healthy.exe, ["verify", "--at", str(name.time), str(path)], check=False
    )
    proc = run_restore("verify", "--at", name.time, path)
    assert theirs.returncode != 0
    assert proc.returncode == 13, proc.stderr
    rel = os.fsdecode(diff.parent.relative_to(incs) / os.fsdecode(name.base))
    assert f"bad: {rel.removeprefix('./')}".encode() in proc.stdout
    restored = run_restore("--at", name.time, path, tmp_path / "t")
    assert restored.returncode == 13
    assert rel.encode() in restored.stderr


def test_list_files_and_changed_as_rdiff_backup(
    rdiff_backup_repos: dict[str, Repo],
) -> None:
    for name in ("default", "quote-colon"):
        repo = rdiff_backup_repos[name]
        for session in repo.sessions[:-1]:
            theirs = run_rdiff_backup(
                repo.exe,
                ["list", "files", "--at", str(session.time), str(repo.path)],
                tz=repo.variant.tz,
            )
            ours = run_restore("list", "files", "--at", session.time, repo.path)
            assert ours.returncode == 0
            # rdiff-backup prints paths decoded with replacement characters, raw newlines kept
            assert ours.stdout.decode("utf-8", "replace") == theirs.stdout.decode("utf-8")
            changed = run_rdiff_backup(
                repo.exe,
                ["list", "files", "--changed-since", str(session.time), str(repo.path)],
                tz=repo.variant.tz,
            )
            with open_repo(repo.path) as opened:
                mine = [(kind, r.path) for kind, r in list_changed(opened, session.time)]
            their_lines = changed.stdout.decode("utf-8", "replace").splitlines()
            kinds = ("new     ", "changed ", "deleted ")
            their_kinds = sorted(line[:8].strip() for line in their_lines if line[:8] in kinds)
            assert sorted(kind for kind, _ in mine) == their_kinds
            cli = run_restore("list", "changed", "--since", session.time, repo.path)
            assert cli.stdout.decode("utf-8", "replace") == changed.stdout.decode("utf-8")


def test_sessions_are_listed(rdiff_backup_repos: dict[str, Repo]) -> None:
    repo = rdiff_backup_repos["api201"]
    with open_repo(repo.path) as opened:
        sessions = list_sessions(opened)
    assert [s.time for s in sessions] == repo.times
    assert sessions[-1].current
    assert all(a.total_size >= b.total_size for a, b in itertools.pairwise(sessions))
