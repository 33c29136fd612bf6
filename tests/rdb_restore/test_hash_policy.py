"""The SHA1 policy: every restored file is checked against its recorded digest, so a damaged
mirror copy (same size, same mtime, other bytes) is an error naming it, never a quiet wrong
file; `verify` reports it too."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from tests.interop import trees
from tests.rdb_restore.conftest import MirrorRepo
from tests.rdb_restore.helpers import increments, run_restore


def _damage(path: Path, *, everywhere: bool = False) -> None:
    """Flip one byte (or every byte) in place, keeping the size and the mtime (what a backup
    would not see)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    for at in range(len(data)) if everywhere else [len(data) // 2]:
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_damaged_mirror_copy_is_reported_by_restore_and_verify(
    mirror_repo: MirrorRepo, tmp_path: Path
) -> None:
    repo = mirror_repo.path
    latest = mirror_repo.scans[-1]
    index = next(
        i
        for i, e in sorted(latest.items())
        if e.type == "reg"
        and (e.size or 0) > 100
        and (repo / b"/".join(i).decode()).stat().st_nlink == 1  # not a hard-link group
    )
    name = b"/".join(index).decode()
    _damage(repo / name)
    target = tmp_path / "t"
    proc = run_restore(repo, target)
    assert proc.returncode == 13, proc.stderr
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert "1 file(s) could not be restored" in last
    assert name in last and "SHA1" in last
    restored = trees.scan(target)
    assert index not in restored  # left out, not written wrong
    others = {i: e for i, e in latest.items() if i != index}
    assert {i: e.sha1 for i, e in restored.items()} == {i: e.sha1 for i, e in others.items()}
    checked = run_restore("verify", repo)
    assert checked.returncode == 13
    assert f"bad: {name}".encode() in checked.stdout


def _file_of(diff: Path, data_dir: Path) -> str:
    rel = diff.relative_to(data_dir)
    return str(rel.parent / rel.name.rsplit(".", 3)[0])


def test_a_damaged_basis_of_a_patched_file_is_reported(
    mirror_repo: MirrorRepo, tmp_path: Path
) -> None:
    """At the oldest session a file is patched (in memory, in C) from its mirror copy: a
    damaged mirror copy makes bytes whose SHA1 is not the recorded one; the restore says so."""
    repo = mirror_repo.path
    data_dir = repo / "rdiff-backup-data" / "increments"
    # a delta much smaller than its file: it copies from the mirror copy
    name = next(
        name
        for p in increments(repo, ".diff.gz")
        for name in [_file_of(p, data_dir)]
        if (repo / name).stat().st_size > 1000
        and len(gzip.decompress(p.read_bytes())) < (repo / name).stat().st_size // 2
        and (repo / name).stat().st_nlink == 1
    )
    _damage(repo / name, everywhere=True)
    proc = run_restore("--at", mirror_repo.times[0], repo, tmp_path / "t")
    assert proc.returncode == 13, proc.stderr
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert name in last
    assert not (tmp_path / "t" / name).exists()
