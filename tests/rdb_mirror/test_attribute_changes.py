"""An attribute-only change sets on the mirror copy only what differs from the old record."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restored, session_time

from rdb_fastio.increment import set_times
from rdb_mirror import repo_side
from rdb_mirror import session as mirror


def test_only_what_changed_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for name in ("touched", "chmodded", "tagged", "owned"):
        (src / name).write_bytes(name.encode())
        (src / name).chmod(0o644)
    os.setxattr(src / "tagged", "user.colour", b"blue")
    (src / "sub").mkdir()
    (src / "sub" / "inside").write_bytes(b"one")
    (src / "newmode").mkdir()
    mirror.backup(src, repo, mirror.BackupOptions(current_time=session_time(1)))
    first = trees.scan(src)
    for name in ("touched", "chmodded", "tagged", "owned"):
        os.utime(src / name, ns=(1_650_000_000_000_000_000, 1_650_000_000_000_000_000))
    (src / "chmodded").chmod(0o600)
    os.setxattr(src / "tagged", "user.colour", b"green")
    os.lchown(src / "owned", 4321, 4321)
    (src / "sub" / "inside").write_bytes(b"two, longer")  # touches "sub": its mtime only
    os.utime(src / "sub", ns=(1_640_000_000_000_000_000, 1_640_000_000_000_000_000))
    (src / "newmode").chmod(0o700)
    (src / "owned").chmod(0o4755)  # set-ID bits, which a chown clears: set again after it
    calls: list[tuple[str, str]] = []

    def spy(kind: str, real: object) -> object:
        def call(path: object, *args: object, **kwargs: object) -> object:
            calls.append((kind, os.path.basename(os.fsdecode(path))))  # type: ignore[arg-type]
            return real(path, *args, **kwargs)  # type: ignore[operator]

        return call

    monkeypatch.setattr(os, "chmod", spy("chmod", os.chmod))
    monkeypatch.setattr(os, "lchown", spy("lchown", os.lchown))
    result = mirror.backup(src, repo, mirror.BackupOptions(current_time=session_time(2)))
    monkeypatch.undo()
    assert result.errors == []
    assert ("chmod", "touched") not in calls and ("lchown", "touched") not in calls
    assert ("chmod", "chmodded") in calls and ("lchown", "chmodded") not in calls
    assert ("lchown", "owned") in calls and ("chmod", "owned") in calls
    assert ("chmod", "sub") not in calls and ("lchown", "sub") not in calls
    assert ("chmod", "newmode") in calls
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert os.getxattr(repo / "tagged", "user.colour") == b"green"
    assert differences(first, restored(repo, session_time(1), tmp_path / "at1")) == []
    assert differences(trees.scan(src), restored(repo, session_time(2), tmp_path / "at2")) == []


#: A file capability (cap_net_raw, effective), as ``setcap cap_net_raw+ep`` writes it
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def test_a_new_owner_keeps_the_file_capability(tmp_path: Path) -> None:
    """``chown`` drops a file's ``security.capability`` (as it clears set-ID bits): a mirror
    copy given a new owner gets its unchanged capability again."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "ping").write_bytes(b"a binary")
    os.setxattr(src / "ping", "security.capability", CAPABILITY)
    mirror.backup(src, repo, mirror.BackupOptions(current_time=session_time(1)))
    os.lchown(src / "ping", 4321, 4321)  # an owner change at the source, then setcap again
    os.setxattr(src / "ping", "security.capability", CAPABILITY)
    result = mirror.backup(src, repo, mirror.BackupOptions(current_time=session_time(2)))
    assert result.errors == []
    assert os.lstat(repo / "ping").st_uid == 4321
    assert os.getxattr(repo / "ping", "security.capability") == CAPABILITY
    assert differences(trees.scan(src), trees.scan(repo)) == []


def test_times_only_changes_are_set_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files whose only change is their times (a release unpacked again) get them in C
    batches on the pool: the mirror and both sessions' restores are exact, no increment is
    written for them, and a file whose times cannot be set is a warning naming it, the
    others still set."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    names = [f"file-{n:03}" for n in range(300)]
    for name in names:
        (src / name).write_bytes(name.encode())
    mirror.backup(src, repo, mirror.BackupOptions(current_time=session_time(1)))
    first = trees.scan(src)
    for n, name in enumerate(names):
        os.utime(src / name, ns=(1_650_000_000_000_000_000 + n, 1_660_000_000_123_456_789 + n))
    real = set_times
    batches: list[int] = []

    def one_fails(files: list[tuple[bytes, int, int]]) -> list[OSError | None]:
        batches.append(len(files))
        results = real(files)
        for n, (path, _, _) in enumerate(files):
            if path.endswith(b"file-123"):
                results[n] = OSError(1, "Operation not permitted")
        return results

    monkeypatch.setattr(repo_side, "set_times", one_fails)
    result = mirror.backup(src, repo, mirror.BackupOptions(current_time=session_time(2)))
    assert sum(batches) == len(names) and len(batches) >= 3
    assert len(result.errors) == 1
    assert "file-123" in result.errors[0]
    assert "cannot set attributes: Operation not permitted" in result.errors[0]
    increments = list((repo / "rdiff-backup-data" / "increments").iterdir())
    assert [p.name for p in increments if p.name.startswith("file-")] == []
    os.utime(repo / "file-123", ns=(1_650_000_000_000_000_123, 1_660_000_000_123_456_912))
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert differences(first, restored(repo, session_time(1), tmp_path / "at1")) == []
    assert differences(trees.scan(src), restored(repo, session_time(2), tmp_path / "at2")) == []
