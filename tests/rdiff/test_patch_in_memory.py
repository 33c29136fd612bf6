"""rdiff.api.patch_in_memory: a whole-file patch in one C call, against rdiff's own deltas."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rdiff import api
from rdiff.errors import CorruptInput, RdiffIOError

if TYPE_CHECKING:
    from tests.rdiff.conftest import Reference

PAIRS = [
    ("text", "text.mixed"),
    ("text", "text.insert"),
    ("random", "random.move"),
    ("zero-runs", "zero-runs.repeat"),
    ("size-16385", "size-16384"),
    ("size-255", "empty"),
    ("empty", "size-2049"),
    ("big-3m", "big-3m.mixed"),
]


def _delta(ref: Reference, files: dict[str, Path], old: str, new: str) -> bytes:
    return bytes(ref.delta(ref.signature_file(files[old]), files[new]))


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_round_trips_from_a_descriptor_and_from_bytes(
    ref: Reference, files: dict[str, Path], data: dict[str, bytes], old: str, new: str
) -> None:
    """rdiff's delta applied to the basis as an fd and as bytes, with and without the size
    known in advance (the buffer then grows): exactly the new file, fd position untouched."""
    delta = _delta(ref, files, old, new)
    fd = os.open(files[old], os.O_RDONLY)
    try:
        for hint in (0, len(data[new]) + 1):
            out = api.patch_in_memory(fd, delta, size_hint=hint)
            assert out is not None and bytes(out) == data[new]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
    finally:
        os.close(fd)
    out = api.patch_in_memory(data[old], delta)
    assert out is not None and bytes(out) == data[new]
    # a chain: the result of one patch is the basis of the next
    back = _delta(ref, files, new, old)
    again = api.patch_in_memory(out, back)
    assert again is not None and bytes(again) == data[old]


def test_output_over_the_limit_is_none(
    ref: Reference, files: dict[str, Path], data: dict[str, bytes]
) -> None:
    delta = _delta(ref, files, "text", "text.insert")
    assert api.patch_in_memory(data["text"], delta, limit=len(data["text.insert"]) - 1) is None
    out = api.patch_in_memory(data["text"], delta, limit=len(data["text.insert"]))
    assert out is not None and bytes(out) == data["text.insert"]


def test_basis_shorter_than_a_copy(
    ref: Reference, files: dict[str, Path], data: dict[str, bytes], tmp_path: Path
) -> None:
    delta = _delta(ref, files, "text", "text.move")
    short = data["text"][: len(data["text"]) // 2]
    with pytest.raises(CorruptInput, match="copies past the end of its basis"):
        api.patch_in_memory(short, delta, delta_name="d")
    path = tmp_path / "short"
    path.write_bytes(short)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(CorruptInput, match="copies past the end of its basis"):
            api.patch_in_memory(fd, delta)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "unexpected end of input"),
        ("bogus", "bogus command"),
        ("magic", "magic number"),
        ("empty", "unexpected end of input"),
    ],
)
def test_corrupt_delta_is_a_clean_error(
    ref: Reference, files: dict[str, Path], data: dict[str, bytes], how: str, message: str
) -> None:
    delta = _delta(ref, files, "text", "text.mixed")
    bad = {
        "truncated": delta[: len(delta) // 2],
        "bogus": delta[:4] + b"\x55" + delta[5:],
        "magic": b"rs\x016" + delta[4:],
        "empty": b"",
    }[how]
    with pytest.raises(CorruptInput) as raised:
        api.patch_in_memory(data["text"], bad, delta_name="x.diff")
    assert "x.diff" in str(raised.value)
    assert message in str(raised.value).lower()


def test_unreadable_basis_descriptor(
    ref: Reference, files: dict[str, Path], tmp_path: Path
) -> None:
    delta = _delta(ref, files, "text", "text.mixed")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # pread on a directory: EISDIR
    try:
        with pytest.raises(RdiffIOError, match="Is a directory"):
            api.patch_in_memory(fd, delta)
    finally:
        os.close(fd)
    with pytest.raises(ValueError):
        api.patch_in_memory(-1, delta)
