"""After a session that kept no EAs (``--no-eas``) or no ACLs (``--no-acls``), the next one that
keeps them sets them again on unchanged mirror copies: one the source dropped meanwhile does
not stay on the mirror."""

from __future__ import annotations

import os
from pathlib import Path

import posix1e
import pytest
from tests.rdb_mirror.helpers import session_time

from rdb_mirror import session as mirror

ACL_TEXT = "u::rw-,u:nobody:r--,g::r--,m::r--,o::r--"


def _backup(
    src: Path, repo: Path, n: int, *, eas: bool = True, acls: bool = True
) -> mirror.BackupResult:
    options = mirror.BackupOptions(current_time=session_time(n), eas=eas, acls=acls)
    return mirror.backup(src, repo, options)


def _tree(src: Path) -> None:
    src.mkdir()
    (src / "sub").mkdir()
    for path in (src / "file", src / "sub" / "inner", src / "kept"):
        path.write_bytes(path.name.encode())
        path.chmod(0o644)


def test_an_ea_dropped_during_a_no_eas_session_leaves_the_mirror(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    for path in (src / "file", src / "sub", src / "kept"):
        os.setxattr(path, "user.colour", b"blue")
    _backup(src, repo, 1)
    for path in (src / "file", src / "sub"):
        os.removexattr(path, "user.colour")
    _backup(src, repo, 2, eas=False)
    assert os.getxattr(repo / "file", "user.colour") == b"blue"  # not kept: left as it was

    result = _backup(src, repo, 3)

    assert "user.colour" not in os.listxattr(repo / "file")
    assert "user.colour" not in os.listxattr(repo / "sub")
    assert os.getxattr(repo / "kept", "user.colour") == b"blue"
    assert result.errors == []
    # setting EAs again changes no record: only "kept" counts as changed (session 2 recorded
    # it without its EA), with the .dir marker of its directory as the one increment
    assert (result.statistics.changed_files, result.statistics.increment_files) == (1, 1)


def test_the_session_after_sets_nothing_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    os.setxattr(src / "file", "user.colour", b"blue")
    _backup(src, repo, 1, eas=False)
    calls: list[object] = []
    real = os.setxattr

    def spy(path: object, *args: object, **kwargs: object) -> None:
        calls.append(path)
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "setxattr", spy)
    _backup(src, repo, 2)  # the EAs set again (also "file"'s, whose record changed)
    assert os.getxattr(repo / "file", "user.colour") == b"blue"
    calls.clear()
    _backup(src, repo, 3)
    assert calls == []


def test_an_acl_dropped_during_a_no_acls_session_leaves_the_mirror(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    posix1e.ACL(text=ACL_TEXT).applyto(str(src / "file"))
    posix1e.ACL(text=ACL_TEXT).applyto(str(src / "kept"))
    _backup(src, repo, 1)
    posix1e.ACL(mode=0o644).applyto(str(src / "file"))
    _backup(src, repo, 2, acls=False)
    assert posix1e.has_extended(str(repo / "file"))  # not kept: left as it was

    result = _backup(src, repo, 3)

    assert not posix1e.has_extended(str(repo / "file"))
    assert oct((repo / "file").stat().st_mode & 0o777) == oct(0o644)
    assert posix1e.has_extended(str(repo / "kept"))
    assert result.errors == []
