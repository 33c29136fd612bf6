"""rdb_format's WRITERS reproduce what rdiff-backup 2.2.7 wrote, byte for byte.

Every ``mirror_metadata`` snapshot and diff, ``extended_attributes``, ``access_control_lists``,
``session_statistics``, ``file_statistics`` and ``error_log`` file of the repositories
rdiff-backup made (conftest.py) is read with our readers and written back with our writers;
the uncompressed bytes must be identical to rdiff-backup's (and the file compressed, or not,
as rdiff-backup's was, with the same gzip FNAME). Then a copy of each repository has all those
files replaced by our writers' output, and rdiff-backup itself must still ``verify``, ``list
files --at`` and ``restore --at`` every session exactly as it does from its own files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.interop import trees
from tests.interop.conftest import Repo, copy_repo, run_rdiff_backup

from rdb_format.eas_acls import iter_acl_records, iter_ea_records, write_acl_file, write_ea_file
from rdb_format.error_log import ErrorLogWriter, count_error_log, iter_error_log
from rdb_format.layout import (
    ACCESS_CONTROL_LISTS,
    ERROR_LOG,
    EXTENDED_ATTRIBUTES,
    FILE_STATISTICS,
    MIRROR_METADATA,
    SESSION_STATISTICS,
    open_repository,
)
from rdb_format.metadata import iter_records, write_metadata_file
from rdb_format.repository import DataEntry, read_state
from rdb_format.statistics import (
    iter_file_statistics,
    read_session_statistics,
    write_file_statistics,
    write_session_statistics,
)

pytestmark = pytest.mark.interop

KINDS = (
    MIRROR_METADATA,
    EXTENDED_ATTRIBUTES,
    ACCESS_CONTROL_LISTS,
    SESSION_STATISTICS,
    FILE_STATISTICS,
    ERROR_LOG,
)


# --------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def local_zone(tz: str) -> Iterator[None]:
    """Run with ``TZ=tz`` (session statistics carry asctime(localtime) of the writer's zone)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def data_files(path: Path) -> list[DataEntry]:
    """The per-session data files rdiff-backup wrote in ``path``'s rdiff-backup-data."""
    state = read_state(open_repository(path))
    return [e for e in state.entries if e.name.base.decode() in KINDS]


def content(path: Path) -> bytes:
    """The uncompressed bytes of a data file (gunzipped iff its name ends in .gz)."""
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


def gzip_fname(path: Path) -> bytes | None:
    """The FNAME field of a gzip header (rdiff-backup stores the uncompressed name there)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b" or not raw[3] & 0x08:
        return None
    start = 10 + (2 + int.from_bytes(raw[10:12], "little") if raw[3] & 0x04 else 0)
    return raw[start : raw.index(b"\0", start)]


def rewrite(entry: DataEntry, target_dir: Path, tz: str) -> Path:
    """Read ``entry`` with our reader and write it with our writer into ``target_dir``.

    Same on-disk name, same compression choice as rdiff-backup's file. Returns the path written.
    """
    source = entry.path
    plain_name = source.name[: -len(".gz")] if entry.name.compressed else source.name
    plain = target_dir / plain_name
    compress = entry.name.compressed
    base = entry.name.base.decode()
    if base == MIRROR_METADATA:
        return write_metadata_file(
            plain, iter_records(source), compress=compress, allow_missing=entry.name.kind == "diff"
        )
    if base == EXTENDED_ATTRIBUTES:
        return write_ea_file(plain, iter_ea_records(source), compress=compress)
    if base == ACCESS_CONTROL_LISTS:
        return write_acl_file(plain, iter_acl_records(source), compress=compress)
    if base == FILE_STATISTICS:
        null = content(source).startswith(b"# Format of each line in file statistics file:\0")
        return write_file_statistics(
            plain, iter_file_statistics(source), compress=compress, null_separator=null
        )
    if base == SESSION_STATISTICS:
        with local_zone(tz):
            write_session_statistics(plain, read_session_statistics(source))
        return plain
    assert base == ERROR_LOG
    null = b"\0" in content(source)
    with ErrorLogWriter(plain, compress=compress, null_separator=null) as log:
        for error in iter_error_log(source):
            log.write(error)
    return log.path


#: Lines whose human part rdiff-backup renders from a value more precise than the %.2f it
#: stores (docs/format.md §13): EndTime 1795307009.996 is written "1795307010.00 (… 00:23:29 …)".
ROUNDED_LINES = (b"EndTime", b"ElapsedTime")


def session_statistics_equivalent(want: bytes, got: bytes) -> bool:
    """Identical, except the parenthesised human part of EndTime / ElapsedTime lines."""
    want_lines, got_lines = want.split(b"\n"), got.split(b"\n")
    if len(want_lines) != len(got_lines):
        return False
    for a, b in zip(want_lines, got_lines, strict=True):
        if a == b:
            continue
        if a.split(b" ", 1)[0] not in ROUNDED_LINES or a.split(b" ")[:2] != b.split(b" ")[:2]:
            return False
    return True


# --------------------------------------------------------------------------------------------
# byte-identical round trips


def test_every_data_file_is_rewritten_byte_for_byte(repo: Repo, tmp_path: Path) -> None:
    """Reader then writer reproduces rdiff-backup's bytes for every per-session data file."""
    entries = data_files(repo.path)
    seen = {e.name.base.decode() for e in entries}
    # rdiff-backup writes all six kinds for every session (the EA/ACL files because pyxattr
    # and pylibacl are installed in its venv)
    assert seen == set(KINDS), seen
    for base in KINDS:
        times = sorted(e.name.time for e in entries if e.name.base.decode() == base)
        assert times == repo.times, (base, times)
    mismatches: list[str] = []
    for entry in entries:
        out_dir = tmp_path / f"{entry.name.base.decode()}-{entry.name.time}"
        out_dir.mkdir()
        written = rewrite(entry, out_dir, repo.variant.tz)
        if written.name != entry.path.name:
            mismatches.append(f"{entry.path.name}: we wrote {written.name}")
            continue
        want, got = content(entry.path), content(written)
        if want != got:
            at = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), None)
            at = min(len(want), len(got)) if at is None else at
            mismatches.append(
                f"{entry.path.name}: differs at byte {at}: "
                f"{want[max(0, at - 40) : at + 40]!r} != {got[max(0, at - 40) : at + 40]!r}"
            )
        elif entry.name.compressed and gzip_fname(written) != gzip_fname(entry.path):
            mismatches.append(
                f"{entry.path.name}: gzip FNAME {gzip_fname(written)!r} "
                f"!= {gzip_fname(entry.path)!r}"
            )
    assert not mismatches, "\n".join(mismatches)


def test_error_logs_are_counted_as_read(repo: Repo) -> None:
    """The cheap counter agrees with the parser on every error log rdiff-backup wrote."""
    for entry in data_files(repo.path):
        if entry.name.base == ERROR_LOG.encode():
            assert count_error_log(entry.path) == len(list(iter_error_log(entry.path)))


# --------------------------------------------------------------------------------------------
# rdiff-backup reads a repository whose metadata files are all ours


@pytest.fixture
def rewritten(repo: Repo, tmp_path: Path) -> Path:
    """A copy of ``repo`` in which every per-session data file was written by rdb_format."""
    copy = copy_repo(repo.path, tmp_path / "ours")
    staging = tmp_path / "staging"
    staging.mkdir()
    for entry in data_files(copy):
        written = rewrite(entry, staging, repo.variant.tz)
        assert written.name == entry.path.name
        assert session_statistics_equivalent(content(entry.path), content(written))
        written.replace(entry.path)  # rdiff-backup's file is gone; ours is in its place
    assert not any(staging.iterdir())
    return copy


def comparable(snapshot: trees.Snapshot) -> dict[trees.Index, trees.Entry]:
    """A restored tree without what differs between two restores: inode numbers (hard-link
    groups are kept), and the mtime of symlinks and devices (none is recorded; a restore
    gives them the time it ran)."""
    groups = {
        index: n for n, group in enumerate(trees.hardlink_groups(snapshot)) for index in group
    }
    return {
        index: dataclasses.replace(
            entry,
            inode=(0, groups.get(index, -1)),
            mtime=0 if entry.type in ("sym", "dev") else entry.mtime,
        )
        for index, entry in snapshot.items()
    }


def test_rdiff_backup_verifies_lists_and_restores_our_metadata(
    repo: Repo, rewritten: Path, tmp_path: Path
) -> None:
    """verify, list files --at and restore --at of every session: as from rdiff-backup's files."""
    opts = repo.variant.api_opts

    def same_run(*args: str) -> None:
        """rdiff-backup says the same on our files as on its own (exit status 0)."""
        ours = repo.run(*args, repo=rewritten)
        theirs = repo.run(*args)
        assert ours.stdout.replace(bytes(rewritten), b"REPO") == theirs.stdout.replace(
            bytes(repo.path), b"REPO"
        ), args
        assert ours.stderr.replace(bytes(rewritten), b"REPO") == theirs.stderr.replace(
            bytes(repo.path), b"REPO"
        ), args

    for when in repo.times:
        same_run("verify", "--at", str(when))
        same_run("list", "files", "--at", str(when))
    for when in (repo.times[0], repo.times[len(repo.times) // 2]):
        restored = {}
        for label, source in (("ours", rewritten), ("theirs", repo.path)):
            target = tmp_path / f"restore-{label}-{when}"
            run_rdiff_backup(
                repo.exe,
                [*opts, "restore", "--at", str(when), str(source), str(target)],
                tz=repo.variant.tz,
            )
            restored[label] = comparable(trees.scan(target))
        assert restored["ours"] == restored["theirs"], when
        assert restored["ours"].keys() == repo.sessions[repo.times.index(when)].source.keys()
