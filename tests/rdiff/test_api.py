"""Public API behaviour: file objects without fileno, unknown sizes, statistics, check_signature."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import pytest

import rdiff
from rdiff import api
from rdiff.errors import CorruptInput, ExitStatus, WrongBasis

if TYPE_CHECKING:
    from tests.rdiff.conftest import Reference


class ReadOnly:
    """A minimal binary reader: read() only, no readinto, fileno, seek."""

    def __init__(self, content: bytes) -> None:
        self._inner = io.BytesIO(content)

    def read(self, n: int = -1) -> bytes:
        return self._inner.read(min(n, 777) if n > 0 else n)  # short reads, too


def read_only(content: bytes) -> BinaryIO:
    """A ReadOnly typed as the API's parameter: the API must make do with its read() alone."""
    return cast(BinaryIO, ReadOnly(content))


def test_public_names_reexported() -> None:
    for name in ("signature", "delta", "patch", "load_signature", "check_signature"):
        assert getattr(rdiff, name) is getattr(api, name)


def test_bytesio_everywhere_equals_rdiff_pipe(
    ref: Reference, data: dict[str, bytes], files: dict[str, Path]
) -> None:
    basis, new = data["text"], data["text.mixed"]
    sig = io.BytesIO()
    api.signature(io.BytesIO(basis), sig)
    assert sig.getvalue() == ref.signature_pipe(basis)
    delta = io.BytesIO()
    api.delta(io.BytesIO(sig.getvalue()), io.BytesIO(new), delta)
    assert delta.getvalue() == ref.delta(sig.getvalue(), files["text.mixed"])
    out = io.BytesIO()
    api.patch(io.BytesIO(basis), io.BytesIO(delta.getvalue()), out)
    assert out.getvalue() == new


def test_read_only_objects(ref: Reference, data: dict[str, bytes]) -> None:
    basis, new = data["zero-runs"], data["zero-runs.move"]
    sig = io.BytesIO()
    api.signature(read_only(basis), sig)
    assert sig.getvalue() == ref.signature_pipe(basis)
    delta = io.BytesIO()
    api.delta(read_only(sig.getvalue()), read_only(new), delta)
    out = io.BytesIO()
    api.patch(io.BytesIO(basis), read_only(delta.getvalue()), out)
    assert out.getvalue() == new


@pytest.mark.parametrize("strong", [0, -1, 8])
@pytest.mark.parametrize("name", ["empty", "one", "text", "big-3m"])
def test_signature_params_match_rdiff_headers(
    ref: Reference, data: dict[str, bytes], files: dict[str, Path], name: str, strong: int
) -> None:
    """Resolved parameters equal the header rdiff writes, for a known and an unknown size."""
    for size, header in (
        (len(data[name]), ref.signature_file(files[name], f"-S{strong}")[:12]),
        (None, ref.signature_pipe(b"", f"-S{strong}")[:12]),
    ):
        params = api.signature_params(size, strong_len=strong)
        assert params.header() == header, size


@pytest.mark.parametrize(
    ("name", "jobs"),
    [("text", 1), ("empty", 1), ("one", 1), ("big-9m", 1), ("big-9m", 2)],
)
def test_signature_stats(
    data: dict[str, bytes], files: dict[str, Path], name: str, jobs: int
) -> None:
    out = io.BytesIO()
    with open(files[name], "rb") as f:
        stats = api.signature(f, out, jobs=jobs)
    block_len = int.from_bytes(out.getvalue()[4:8], "big")
    assert stats.block_len == block_len
    assert stats.sig_blocks == -(-len(data[name]) // block_len)
    assert stats.in_bytes == len(data[name])
    loaded = api.load_signature(io.BytesIO(out.getvalue()))
    assert (loaded.blocks, loaded.block_len) == (stats.sig_blocks, block_len)


@pytest.mark.parametrize("jobs", [1, 2])
def test_signature_stats_out_bytes(files: dict[str, Path], jobs: int) -> None:
    out = io.BytesIO()
    with open(files["big-9m"], "rb") as f:
        stats = api.signature(f, out, jobs=jobs)
    assert stats.out_bytes == len(out.getvalue())


def counts(commands: list[tuple[Any, ...]]) -> dict[str, int]:
    """Statistics a delta implies, computed from its decoded commands."""

    def width(n: int) -> int:
        return 1 if n < 1 << 8 else 2 if n < 1 << 16 else 4 if n < 1 << 32 else 8

    lits = [c[1] for c in commands if c[0] == "LIT"]
    copies = [c[1:] for c in commands if c[0] == "COPY"]
    return {
        "lit_cmds": len(lits),
        "lit_bytes": sum(map(len, lits)),
        "lit_cmdbytes": sum(1 if len(x) <= 64 else 1 + width(len(x)) for x in lits),
        "copy_cmds": len(copies),
        "copy_bytes": sum(n for _, n in copies),
        "copy_cmdbytes": sum(1 + width(o) + width(n) for o, n in copies),
    }


def rdiff_stats(stderr: bytes, op: str) -> dict[str, int]:
    """The counters of rdiff -s's '<op> statistics:' line."""
    line = next(x for x in stderr.decode().splitlines() if f"{op} statistics:" in x)
    found = dict.fromkeys(counts([]), 0)
    if m := re.search(r"literal\[(\d+) cmds, (\d+) bytes, (\d+) cmdbytes\]", line):
        found.update(lit_cmds=int(m[1]), lit_bytes=int(m[2]), lit_cmdbytes=int(m[3]))
    if m := re.search(r"copy\[(\d+) cmds, (\d+) bytes, (\d+) cmdbytes", line):
        found.update(copy_cmds=int(m[1]), copy_bytes=int(m[2]), copy_cmdbytes=int(m[3]))
    return found


@pytest.mark.parametrize(
    ("old", "new"),
    [("text", "text.mixed"), ("empty", "text"), ("random", "random"), ("zeros", "zero-runs")],
)
def test_delta_and_patch_stats(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    parse_delta: Callable[[bytes], list[tuple[Any, ...]]],
    old: str,
    new: str,
) -> None:
    sig = ref.signature_file(files[old])
    out = io.BytesIO()
    with open(files[new], "rb") as f:
        stats = api.delta(io.BytesIO(sig), f, out)
    delta = out.getvalue()
    implied = counts(parse_delta(delta))
    assert {k: getattr(stats, k) for k in implied} == implied
    assert implied["lit_bytes"] + implied["copy_bytes"] == len(data[new])
    assert (stats.in_bytes, stats.out_bytes) == (len(data[new]), len(delta))
    # rdiff -s reports the same counters for the same delta
    sig_path = ref.tmp(sig, "sig")
    try:
        proc = ref.run("-s", "delta", sig_path, files[new], "-")
    finally:
        sig_path.unlink()
    assert proc.stdout == delta
    assert rdiff_stats(proc.stderr, "delta") == implied
    # patch counts the same commands
    result = io.BytesIO()
    with open(files[old], "rb") as basis:
        pstats = api.patch(basis, io.BytesIO(delta), result)
    assert {k: getattr(pstats, k) for k in implied} == implied
    assert (pstats.in_bytes, pstats.out_bytes) == (len(delta), len(data[new]))


def test_parallel_delta_stats_consistent(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    parse_delta: Callable[[bytes], list[tuple[Any, ...]]],
) -> None:
    sig = ref.signature_file(files["big-9m"])
    out = io.BytesIO()
    with open(files["big-9m.mixed"], "rb") as f:
        stats = api.delta(io.BytesIO(sig), f, out, jobs=2)
    implied = counts(parse_delta(out.getvalue()))
    assert {k: getattr(stats, k) for k in implied} == implied
    assert stats.in_bytes == len(data["big-9m.mixed"])


def test_parallel_delta_stats_out_bytes(ref: Reference, files: dict[str, Path]) -> None:
    sig = ref.signature_file(files["big-9m"])
    out = io.BytesIO()
    with open(files["big-9m.mixed"], "rb") as f:
        stats = api.delta(io.BytesIO(sig), f, out, jobs=2)
    assert stats.out_bytes == len(out.getvalue())


# --- check_signature ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_sig(ref: Reference, files: dict[str, Path]) -> bytes:
    return ref.signature_file(files["text"], "-b", "1000", "-S", "-1")


def test_check_signature_accepts(
    text_sig: bytes, data: dict[str, bytes], files: dict[str, Path]
) -> None:
    api.check_signature(io.BytesIO(data["text"]), io.BytesIO(text_sig))
    with open(files["text"], "rb") as f:
        api.check_signature(f, io.BytesIO(text_sig), basis_name="t", sig_name="s")


@pytest.mark.parametrize("change", ["flip-first", "flip-last", "shorter", "longer", "empty"])
def test_check_signature_refuses(text_sig: bytes, data: dict[str, bytes], change: str) -> None:
    basis = bytearray(data["text"])
    if change == "flip-first":
        basis[0] ^= 1
    elif change == "flip-last":
        basis[-1] ^= 0x80
    elif change == "shorter":
        del basis[-1]
    elif change == "longer":
        basis += b"x"
    else:
        basis = bytearray()
    with pytest.raises(WrongBasis) as info:
        api.check_signature(io.BytesIO(bytes(basis)), io.BytesIO(text_sig), basis_name="B.bin")
    assert "B.bin" in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_status == ExitStatus.ENVIRONMENT


def test_check_signature_other_params(
    ref: Reference, files: dict[str, Path], data: dict[str, bytes]
) -> None:
    """A signature made with other parameters still checks (they come from its header)."""
    sig = ref.signature_file(files["zero-runs"], "-H", "md4", "-R", "rollsum", "-b", "333")
    api.check_signature(io.BytesIO(data["zero-runs"]), io.BytesIO(sig))
    with pytest.raises(WrongBasis):
        api.check_signature(io.BytesIO(data["zeros"]), io.BytesIO(sig))


@pytest.mark.parametrize("cut", [0, 5, 11])
def test_check_signature_corrupt_header(text_sig: bytes, data: dict[str, bytes], cut: int) -> None:
    with pytest.raises(CorruptInput) as info:
        api.check_signature(io.BytesIO(data["text"]), io.BytesIO(text_sig[:cut]))
    assert info.value.exit_status == 2


def test_check_signature_not_a_signature(text_sig: bytes, data: dict[str, bytes]) -> None:
    delta_like = b"rs\x026" + text_sig[4:]
    with pytest.raises(CorruptInput):
        api.check_signature(io.BytesIO(data["text"]), io.BytesIO(delta_like))


def test_check_signature_truncated_records(text_sig: bytes, data: dict[str, bytes]) -> None:
    """A signature missing its last record no longer describes the whole basis."""
    record = 4 + int.from_bytes(text_sig[8:12], "big")
    with pytest.raises((WrongBasis, CorruptInput)):
        api.check_signature(io.BytesIO(data["text"]), io.BytesIO(text_sig[:-record]))
    with pytest.raises((WrongBasis, CorruptInput)):
        api.check_signature(io.BytesIO(data["text"]), io.BytesIO(text_sig[:-1]))


def test_patch_output_bytesio_and_file(
    tmp_path: Path, data: dict[str, bytes], ref: Reference, files: dict[str, Path]
) -> None:
    sig = ref.signature_file(files["size-16385"])
    delta = ref.delta(sig, files["size-16384"])
    target = tmp_path / "out"
    with open(target, "wb") as out, open(files["size-16385"], "rb") as basis:
        api.patch(basis, io.BytesIO(delta), out)
    assert target.read_bytes() == data["size-16384"]


def test_parallel_delta_threads_get_their_own_signature(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """keep_raw keeps the signature's bytes; copies are independent loads of the same thing."""
    sig_bytes = io.BytesIO()
    with open(files["big-9m"], "rb") as basis:
        api.signature(basis, sig_bytes, jobs=1)
    loaded = api.load_signature(io.BytesIO(sig_bytes.getvalue()), keep_raw=True)
    assert loaded.raw == sig_bytes.getvalue()
    twin = loaded.copy()
    assert twin is not loaded and (twin.blocks, twin.block_len) == (loaded.blocks, loaded.block_len)
    assert api.load_signature(io.BytesIO(sig_bytes.getvalue())).raw is None
    outs = []
    for sig in (loaded, twin):
        out = io.BytesIO()
        with open(files["big-9m.mixed"], "rb") as new:
            api.delta(sig, new, out, jobs=2)
        outs.append(out.getvalue())
    assert outs[0] == outs[1]
    patched = io.BytesIO()
    with open(files["big-9m"], "rb") as basis:
        api.patch(basis, io.BytesIO(outs[0]), patched)
    assert patched.getvalue() == files["big-9m.mixed"].read_bytes()
