"""A rebuilt file that comes out bigger than its record stops being written soon after.

A damaged or forged diff can expand to any size; the restore must not fill the disk before
it finds out that the size is wrong. rebuild_into then returns a size over the record, which
check_content reports as "restored more than the N bytes the metadata records".
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from rdb_restore import patching
from rdb_restore.content import Source, rebuild_into
from rdiff.api import delta, load_signature, signature

RECORDED = 1000


def _diff(tmp_path: Path, basis: bytes, new: bytes) -> Path:
    sig = io.BytesIO()
    signature(io.BytesIO(basis), sig)
    sig.seek(0)
    out = tmp_path / "x.diff"
    with out.open("wb") as stream:
        delta(load_signature(sig), io.BytesIO(new), stream)
    return out


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_diff_that_expands_past_the_record_is_not_written_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    if not in_memory:
        monkeypatch.setattr(patching, "PATCH_IN_MEMORY", False)
    basis = os.urandom(RECORDED)
    new = basis + os.urandom(4 << 20)  # what the damaged diff rebuilds: 4 MiB too many
    (tmp_path / "basis").write_bytes(basis)
    diff = _diff(tmp_path, basis, new)
    basis_fd = os.open(tmp_path / "basis", os.O_RDONLY)
    diff_fd = os.open(diff, os.O_RDONLY)
    out_fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size, _ = rebuild_into(
            Source(basis_fd, False, tmp_path, "basis", RECORDED),
            [Source(diff_fd, False, tmp_path, "x.diff", diff.stat().st_size)],
            out_fd,
            "out",
            RECORDED,
        )
    finally:
        for fd in (basis_fd, diff_fd, out_fd):
            os.close(fd)
    assert size > RECORDED
    assert (tmp_path / "out").stat().st_size <= RECORDED


def test_a_diff_that_rebuilds_the_recorded_size_is_written_whole(tmp_path: Path) -> None:
    basis = os.urandom(RECORDED)
    new = basis[:500] + os.urandom(RECORDED - 500)
    (tmp_path / "basis").write_bytes(basis)
    diff = _diff(tmp_path, basis, new)
    with (
        open(tmp_path / "basis", "rb") as basis_file,
        open(diff, "rb") as diff_file,
        open(tmp_path / "out", "wb") as out,
    ):
        size, _ = rebuild_into(
            Source(basis_file.fileno(), False, tmp_path, "basis", RECORDED),
            [Source(diff_file.fileno(), False, tmp_path, "x.diff")],
            out.fileno(),
            "out",
            RECORDED,
        )
    assert size == RECORDED
    assert (tmp_path / "out").read_bytes() == new
