"""rdb_format reads repositories that rdiff-backup 2.2.7 wrote, and agrees with rdiff-backup.

Every check compares what rdb_format reads with two independent truths: what rdiff-backup itself
reports (``list increments``, ``list files --at``, ``restore --at``), and the source tree each
session actually backed up (scanned just before the backup, see conftest.py).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from tests.interop import trees
from tests.interop.conftest import (
    SESSIONS,
    UNCHANGED_SESSION,
    VARIANTS,
    Interrupted,
    Repo,
    copy_repo,
    markers_in,
    run_rdiff_backup,
)

from rdb_format.eas_acls import iter_acl_records, iter_ea_records
from rdb_format.errors import UnfinishedSession
from rdb_format.exitcodes import ExitCode
from rdb_format.layout import open_repository
from rdb_format.metadata import Record, path_key
from rdb_format.metadata_diff import find_session_file, records_at
from rdb_format.repository import RepositoryState, read_state

pytestmark = pytest.mark.interop

QUOTING_VARIANTS = [v.name for v in VARIANTS if v.chars_to_quote]


# --------------------------------------------------------------------------------------------
# helpers


def state_of(path: Path) -> RepositoryState:
    return read_state(open_repository(path))


def metadata_at(state: RepositoryState, when: int) -> list[Record]:
    """The records of the tree as of session ``when``, as rdb_format rebuilds them."""
    return list(records_at(state.layout.data_dir, when, quoting=state.quoting))


def listed_increments(repo: Repo) -> tuple[list[int], int]:
    """(increment times, current mirror time) from ``rdiff-backup --parsable-output list
    increments``: ``<epoch> <type>`` lines under API 200, YAML (``time: <epoch>``) under 201.
    Both list the increments oldest first and the current mirror last."""
    out = repo.run("--parsable-output", "list", "increments").stdout.decode()
    times = [int(t) for t in re.findall(r"^\s*(?:- )?time: (-?\d+)$", out, re.M)]
    if not times:
        times = [int(t) for t in re.findall(r"^(-?\d+) \w+$", out, re.M)]
    assert times, f"cannot parse list increments output:\n{out}"
    return times[:-1], times[-1]


def listed_files(repo: Repo, when: int) -> list[str]:
    """``rdiff-backup list files --at <when>``: one path per line, newlines in names raw."""
    out = repo.run("list", "files", "--at", str(when)).stdout.decode("utf-8")
    assert out.endswith("\n")
    return out[:-1].split("\n")


def as_listed(paths: Iterable[bytes]) -> list[str]:
    """Paths as ``list files`` prints them (UTF-8 with replacement characters, raw newlines)."""
    return "\n".join(p.decode("utf-8", "replace") for p in paths).split("\n")


def record_facts(record: Record) -> dict[str, object]:
    """What a user checks about one file, from a metadata record."""
    facts: dict[str, object] = {
        "type": record.type,
        "perms": record.permissions,
        "uid": record.uid,
        "gid": record.gid,
    }
    if record.type not in ("sym", "dev"):
        facts["mtime"] = record.mod_time
    if record.type == "reg":
        facts["size"] = record.size
    if record.type == "sym":
        facts["target"] = record.sym_data
    if record.type == "dev":
        facts["devnum"] = record.device_num
    return facts


def entry_facts(entry: trees.Entry) -> dict[str, object]:
    """The same facts from a scanned file (rdiff-backup keeps no mtime for symlinks, devices)."""
    facts: dict[str, object] = {
        "type": entry.type,
        "perms": entry.perms,
        "uid": entry.uid,
        "gid": entry.gid,
    }
    if entry.type not in ("sym", "dev"):
        facts["mtime"] = entry.mtime
    if entry.type == "reg":
        facts["size"] = entry.size
    if entry.type == "sym":
        facts["target"] = entry.target
    if entry.type == "dev":
        facts["devnum"] = entry.devnum
    return facts


def record_link_groups(records: Iterable[Record]) -> list[tuple[trees.Index, ...]]:
    groups: dict[tuple[int, int], list[trees.Index]] = {}
    for r in records:
        if r.has_hard_link_triple:
            assert r.inode is not None and r.device_loc is not None
            groups.setdefault((r.device_loc, r.inode), []).append(path_key(r.path))
    return sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1)


def diff_facts(
    got: dict[trees.Index, dict[str, object]], want: dict[trees.Index, dict[str, object]]
) -> str:
    """A readable account of the first differences (assert messages)."""
    lines = []
    for index in sorted(set(got) | set(want)):
        a, b = got.get(index), want.get(index)
        if a != b:
            lines.append(f"{trees.render(index)!r}: rdb_format {a} != expected {b}")
    return "\n".join(lines[:15])


SESSION_IDS = [f"session{i}" for i in range(SESSIONS)]


# --------------------------------------------------------------------------------------------
# sessions


def test_sessions_are_the_backups_that_ran(repo: Repo) -> None:
    state = state_of(repo.path)
    assert state.current_time == repo.times[-1]
    assert list(state.sessions) == repo.times
    assert [e.name.time for e in state.metadata] == repo.times


def test_increments_match_rdiff_backup_list_increments(repo: Repo) -> None:
    """What rdb_format counts as increments is what ``list increments`` shows (reference §6.6).

    The session after which nothing changed has no root ``.dir`` marker, so rdiff-backup does
    not list it; it is still a session (restorable with ``--at``)."""
    state = state_of(repo.path)
    increments, current = listed_increments(repo)
    assert list(state.root_increment_times) == increments
    assert state.current_time == current
    # the repository really has a session that list increments does not show
    invisible = repo.times[UNCHANGED_SESSION - 1]
    assert invisible not in increments
    assert invisible in state.sessions


# --------------------------------------------------------------------------------------------
# metadata as of every session


@pytest.mark.parametrize("session", range(SESSIONS), ids=SESSION_IDS)
def test_paths_match_rdiff_backup_list_files(repo: Repo, session: int) -> None:
    state = state_of(repo.path)
    when = repo.times[session]
    records = metadata_at(state, when)
    assert as_listed(r.path for r in records) == listed_files(repo, when)


@pytest.mark.parametrize("session", range(SESSIONS), ids=SESSION_IDS)
def test_metadata_matches_the_source_of_that_session(repo: Repo, session: int) -> None:
    state = state_of(repo.path)
    source = repo.sessions[session].source
    records = metadata_at(state, repo.times[session])
    got = {path_key(r.path): record_facts(r) for r in records}
    want = {index: entry_facts(e) for index, e in source.items()}
    assert list(got) == list(want), "paths (or their order) differ"
    assert got == want, diff_facts(got, want)
    digests = {path_key(r.path): r.sha1_digest for r in records if r.sha1_digest is not None}
    assert digests, "no SHA1Digest read at all"
    assert all(digests[i] == source[i].sha1 for i in digests)
    assert record_link_groups(records) == trees.hardlink_groups(source)


@pytest.mark.parametrize("session", range(SESSIONS), ids=SESSION_IDS)
def test_metadata_matches_rdiff_backup_restore(repo: Repo, session: int, tmp_path: Path) -> None:
    """rdiff-backup's own restore of that session has the files rdb_format's metadata lists."""
    when = repo.times[session]
    target = tmp_path / "restored"
    run_rdiff_backup(
        repo.exe,
        [*repo.variant.api_opts, "restore", "--at", str(when), str(repo.path), str(target)],
        tz=repo.variant.tz,
    )
    restored = trees.scan(target)
    records = metadata_at(state_of(repo.path), when)
    got = {path_key(r.path): record_facts(r) for r in records}
    want = {index: entry_facts(e) for index, e in restored.items()}
    assert got == want, diff_facts(got, want)


# --------------------------------------------------------------------------------------------
# extended attributes and ACLs (written by rdiff-backup only when its venv has pyxattr/pylibacl)


def need_ea_acl_support(repo: Repo) -> None:
    python = Path(repo.exe).parent / "python"
    probe = subprocess.run([str(python), "-c", "import xattr, posix1e"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("rdiff-backup's venv lacks pyxattr/pylibacl: it records no EAs or ACLs")


def session_file(state: RepositoryState, base: str, when: int) -> Path:
    found = find_session_file(state.layout.data_dir, base, when, quoting=state.quoting)
    assert found is not None, f"no {base} file for session {when}"
    return found


def acl_id(tag: str, qualifier: str) -> int:
    """The numeric id of an ACL entry's qualifier (rdiff-backup writes names when known)."""
    if not qualifier:
        return -1
    if qualifier.isdigit():
        return int(qualifier)
    return pwd.getpwnam(qualifier).pw_uid if tag == "user" else grp.getgrnam(qualifier).gr_gid


@pytest.mark.parametrize("session", range(SESSIONS), ids=SESSION_IDS)
def test_extended_attributes_match_the_source(repo: Repo, session: int) -> None:
    need_ea_acl_support(repo)
    state = state_of(repo.path)
    source = repo.sessions[session].source
    path = session_file(state, "extended_attributes", repo.times[session])
    got = {}
    for rec in iter_ea_records(path):
        user = tuple(sorted((n, v) for n, v in rec.attributes if n.startswith(b"user.")))
        if user:
            got[path_key(rec.path)] = user
    want = {index: e.xattrs for index, e in source.items() if e.xattrs}
    assert want, "the tree should carry user xattrs"
    assert got == want


@pytest.mark.parametrize("session", range(SESSIONS), ids=SESSION_IDS)
def test_acls_match_the_source(repo: Repo, session: int) -> None:
    need_ea_acl_support(repo)
    if not trees.SETFACL:
        pytest.skip("no setfacl: the tree has no ACLs")
    state = state_of(repo.path)
    source = repo.sessions[session].source
    path = session_file(state, "access_control_lists", repo.times[session])
    got = {
        path_key(rec.path): sorted(
            (e.tag, acl_id(e.tag, e.qualifier), e.perms, e.default) for e in rec.entries
        )
        for rec in iter_acl_records(path)
    }
    want = {
        index: sorted(
            (tag, -1 if ident is None else ident, perms, dflt) for tag, ident, perms, dflt in acl
        )
        for index, e in source.items()
        if (acl := trees.acl_of(e))
    }
    assert want, "the tree should carry ACLs"
    assert got == want


# --------------------------------------------------------------------------------------------
# quoting


@pytest.mark.parametrize("name", QUOTING_VARIANTS)
def test_quoting_reads_back_the_real_names(rdiff_backup_repos: dict[str, Repo], name: str) -> None:
    repo = rdiff_backup_repos[name]
    state = state_of(repo.path)
    quoting = state.quoting
    assert repo.variant.chars_to_quote is not None
    assert quoting.chars_to_quote == repo.variant.chars_to_quote.encode()
    source = set(repo.sessions[-1].source)
    quoted = [i for i in source if quoting.quote_path(i) != i]
    assert len(quoted) > 3, "the tree should hold names this quoting changes"
    # Names whose quoted form is too long live in long_filename_data (AlternateMirrorName).
    too_long = {i for i in source if any(len(quoting.quote(part)) > 255 for part in i)}
    # The current mirror, unquoted by rdb_format, holds exactly the names of the last source.
    mirror = {
        quoting.unquote_path(index)
        for index in trees.walk(repo.path)
        if index[:1] != (b"rdiff-backup-data",)
    }
    assert mirror == source - too_long
    for index in quoted:
        if index not in too_long:
            on_disk = repo.path.joinpath(*map(os.fsdecode, quoting.quote_path(index)))
            assert os.path.lexists(on_disk), index


@pytest.mark.parametrize("name", QUOTING_VARIANTS)
def test_names_too_long_once_quoted_point_into_long_filename_data(
    rdiff_backup_repos: dict[str, Repo], name: str
) -> None:
    repo = rdiff_backup_repos[name]
    state = state_of(repo.path)
    for session in repo.sessions:
        for record in metadata_at(state, session.time):
            quoted_too_long = (
                len(
                    state.quoting.quote(path_key(record.path)[-1] if path_key(record.path) else b"")
                )
                > 255
            )
            if quoted_too_long:
                assert record.alternate_mirror_name is not None, record.path
            if record.alternate_mirror_name is not None and session is repo.sessions[-1]:
                stored = state.layout.long_filename_dir / str(record.alternate_mirror_name)
                assert stored.exists(), stored


# --------------------------------------------------------------------------------------------
# finished and unfinished sessions


def test_finished_repository_has_no_unfinished_session(repo: Repo) -> None:
    state = state_of(repo.path)
    assert not state.unfinished
    assert state.failed_time is None
    state.check_finished()


def _check_unfinished(case: Interrupted) -> None:
    state = state_of(case.path)
    assert state.unfinished
    assert state.current_time == case.previous_time
    assert state.failed_time == case.failed_time
    assert state.sessions[-1] == case.previous_time  # the failed session is not restorable
    assert case.failed_time not in state.sessions
    with pytest.raises(UnfinishedSession) as caught:
        state.check_finished()
    assert caught.value.exit_code == ExitCode.UNFINISHED
    message = str(caught.value)
    assert "\n" not in message
    assert "rdiff-backup-data" in message
    # the last complete session still reads as what it backed up
    records = metadata_at(state, case.previous_time)
    got = {path_key(r.path): record_facts(r) for r in records}
    want = {index: entry_facts(e) for index, e in case.previous_source.items()}
    assert got == want, diff_facts(got, want)


def test_hand_made_second_marker_is_an_unfinished_session(
    marker_pattern_repo: Interrupted, rdiff_backup: str, tmp_path: Path
) -> None:
    case = marker_pattern_repo
    refused = run_rdiff_backup(
        rdiff_backup, ["restore", str(case.path), str(tmp_path / "out")], check=False
    )
    assert refused.returncode != 0 and b"regress" in refused.stderr, refused.stderr
    _check_unfinished(case)


def test_killed_backup_is_an_unfinished_session(
    killed_repo: Interrupted, rdiff_backup: str, tmp_path: Path
) -> None:
    case = killed_repo
    refused = run_rdiff_backup(
        rdiff_backup, ["restore", str(case.path), str(tmp_path / "out")], check=False
    )
    assert refused.returncode != 0 and b"regress" in refused.stderr, refused.stderr
    _check_unfinished(case)


def test_after_rdiff_backup_regress_the_session_is_finished(
    killed_repo: Interrupted, rdiff_backup: str, tmp_path: Path
) -> None:
    regressed = copy_repo(killed_repo.path, tmp_path / "repo")
    run_rdiff_backup(rdiff_backup, ["regress", str(regressed)], check=False)
    assert len(markers_in(regressed / "rdiff-backup-data")) == 1
    state = state_of(regressed)
    assert not state.unfinished
    state.check_finished()
    assert state.current_time == killed_repo.previous_time
    assert list(state.sessions) == [killed_repo.previous_time]
