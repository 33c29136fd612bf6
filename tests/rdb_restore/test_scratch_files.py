"""Intermediate versions of a file rebuilt through temporary files (a version past the
in-memory limit) are unnamed files in the TARGET directory being written, not in the
temporary directory: a hostile chain of diffs whose versions grow without end can then fill
only the disk the restore writes to anyway (it fails there, and its partial tree is removed),
never ``/tmp``."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences
from tests.rdb_restore.conftest import MirrorRepo

from rdb_restore import patching, restore, writer


def _used(file: IO[bytes]) -> bytes:
    file.write(b"intermediate version\n" * 1000)
    file.flush()
    file.seek(0)
    return file.read()


def test_a_scratch_file_in_a_directory_has_no_name_there(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with patching.scratch_file(fd) as file:
            assert _used(file) == b"intermediate version\n" * 1000
            assert os.listdir(tmp_path) == []
            assert os.fstat(file.fileno()).st_dev == os.stat(tmp_path).st_dev
    finally:
        os.close(fd)


def test_without_unnamed_files_a_scratch_file_is_named_and_removed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without O_TMPFILE (EOPNOTSUPP): a named file, unlinked at once."""
    real_open = os.open

    def no_tmpfile(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_tmpfile)
    fd = real_open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with patching.scratch_file(fd) as file:
            assert os.listdir(tmp_path) == []
            assert _used(file) == b"intermediate version\n" * 1000
    finally:
        os.close(fd)


def test_streamed_rebuilds_keep_their_intermediate_versions_in_target(
    mirror_repo_master: MirrorRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every patched file streamed (limit 0): each older session restores exactly, with its
    intermediate versions made in the TARGET directory being written, none in the temporary
    directory."""

    def refused(*args: object, **kwargs: object) -> IO[bytes]:
        raise AssertionError("an intermediate version went to the temporary directory")

    places: list[object] = []
    real = patching.scratch_file

    def counted(where: str | int | None) -> IO[bytes]:
        places.append(where)
        return real(where)

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    monkeypatch.setattr(patching, "scratch_file", counted)
    monkeypatch.setattr(patching, "IN_MEMORY_LIMIT", 0)
    monkeypatch.setattr(writer, "REBUILD_LIMIT", 0)
    for n, when in enumerate(mirror_repo_master.times[:-1]):
        target = tmp_path / f"at{n}"
        restore(str(mirror_repo_master.path), str(target), at=str(when))
        assert differences(mirror_repo_master.scans[n], trees.scan(target)) == [], f"session {n}"
    assert places, "no intermediate version was made: the test proves nothing"
    assert all(isinstance(where, int) for where in places)


def test_an_intermediate_version_that_cannot_be_written_names_its_file(
    mirror_repo_master: MirrorRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write error on an intermediate version (TARGET's disk full) is one line naming the
    file being restored, as any error writing TARGET is, and no partial tree is left."""
    real = patching.scratch_file

    def unwritable(where: str | int | None) -> IO[bytes]:
        file = real(where)
        full = os.open("/dev/full", os.O_WRONLY)  # every write there: ENOSPC
        os.dup2(full, file.fileno())
        os.close(full)
        return file

    monkeypatch.setattr(patching, "scratch_file", unwritable)
    monkeypatch.setattr(patching, "IN_MEMORY_LIMIT", 0)
    monkeypatch.setattr(writer, "REBUILD_LIMIT", 0)
    target = tmp_path / "t"
    named = r"cannot write an intermediate version of .+: No space left on device$"
    with pytest.raises(OSError, match=named) as raised:
        restore(str(mirror_repo_master.path), str(target), at=str(mirror_repo_master.times[0]))
    assert raised.value.errno == errno.ENOSPC
    assert not target.exists()
    assert os.listdir(tmp_path) == []
