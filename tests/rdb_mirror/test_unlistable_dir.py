"""A directory that cannot be listed (read permission gone, an I/O error) is reported, and the
repository keeps what it held of it: its files are not taken for deleted. Simulated here (the
tests run as root, who lists anything) by failing the walk's listing of that directory."""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path

import pytest

from rdb_fastio import ScanAhead, ScanEntry
from rdb_mirror import session as mirror
from rdb_restore import RestoreOptions, restore


def test_an_unlistable_directory_keeps_its_old_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "locked" / "deep").mkdir(parents=True)
    (src / "locked" / "a.txt").write_bytes(b"a\n")
    (src / "locked" / "deep" / "b.txt").write_bytes(b"b\n")
    (src / "open.txt").write_bytes(b"one\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))

    def listing(self: ScanAhead, path: bytes) -> tuple[Iterable[ScanEntry], bool]:
        got = listed(self, path)  # (scanned ahead or now: either way it fails)
        if path.endswith(b"/locked"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return got

    listed = ScanAhead.listing
    monkeypatch.setattr(ScanAhead, "listing", listing)
    (src / "open.txt").write_bytes(b"two, longer\n")
    result = mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_003_600))
    assert [e for e in result.errors if "locked" in e and "cannot list: Permission denied" in e]
    assert (repo / "locked" / "a.txt").read_bytes() == b"a\n"
    assert (repo / "locked" / "deep" / "b.txt").read_bytes() == b"b\n"
    assert (repo / "open.txt").read_bytes() == b"two, longer\n"
    monkeypatch.undo()
    target = tmp_path / "target"
    restore(str(repo), str(target), options=RestoreOptions())
    assert (target / "locked" / "deep" / "b.txt").read_bytes() == b"b\n"
    assert (target / "open.txt").read_bytes() == b"two, longer\n"
