"""signature -> delta -> patch gives back the new file, over buffer sizes, parameter choices,
iterator chunkings, generated edits and parallel deltas."""

from __future__ import annotations

import io
import itertools
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdiff import api, parallel

if TYPE_CHECKING:
    from tests.rdiff.conftest import Reference

    from rdiff.params import HashName, RollsumName

IO_SIZES = (1, 2, 3, 7, 100, 10000, 200000)
HASHES: tuple[HashName, ...] = ("md4", "blake2")
ROLLSUMS: tuple[RollsumName, ...] = ("rollsum", "rabinkarp")
COMBOS = list(itertools.product(HASHES, ROLLSUMS))


def roundtrip(
    basis: bytes,
    new: bytes,
    *,
    in_size: int,
    out_size: int,
    hash_name: HashName = "blake2",
    rollsum: RollsumName = "rabinkarp",
    strong_len: int = 0,
    block_len: int = 0,
) -> bytes:
    """signature, delta and patch with these parameters (api.signature's defaults)."""
    sig = io.BytesIO()
    api.signature(
        io.BytesIO(basis),
        sig,
        in_size=in_size,
        out_size=out_size,
        hash_name=hash_name,
        rollsum=rollsum,
        strong_len=strong_len,
        block_len=block_len,
    )
    delta = io.BytesIO()
    api.delta(
        io.BytesIO(sig.getvalue()), io.BytesIO(new), delta, in_size=in_size, out_size=out_size
    )
    out = io.BytesIO()
    api.patch(
        io.BytesIO(basis),
        io.BytesIO(delta.getvalue()),
        out,
        in_size=in_size,
        out_size=out_size,
    )
    return out.getvalue()


@pytest.mark.parametrize(("hash_name", "rollsum"), COMBOS)
@pytest.mark.parametrize("io_size", IO_SIZES)
def test_roundtrip_io_sizes(
    data: dict[str, bytes],
    make_inputs: Any,
    io_size: int,
    hash_name: HashName,
    rollsum: RollsumName,
) -> None:
    # byte-sized buffers mean one librsync call per byte: keep those inputs small
    if io_size < 100:
        basis = data["text"][:6000]
        new = make_inputs.edit(basis, "mixed", random.Random(io_size))
    else:
        basis, new = data["text"], data["text.mixed"]
    for strong, block in ((0, 0), (-1, 256), (8, 1000)):
        got = roundtrip(
            basis,
            new,
            in_size=io_size,
            out_size=io_size,
            hash_name=hash_name,
            rollsum=rollsum,
            strong_len=strong,
            block_len=block,
        )
        assert got == new, (strong, block)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("empty", "empty"),
        ("empty", "text"),
        ("text", "empty"),
        ("one", "one"),
        ("size-256", "size-257"),
        ("size-2048", "size-2047"),
        ("zeros", "zero-runs"),
        ("zero-runs", "zeros"),
        ("random", "random"),
        ("big-3m", "big-3m.mixed"),
        ("big-3m", "big-3m.insert"),
    ],
)
def test_roundtrip_pairs(data: dict[str, bytes], old: str, new: str) -> None:
    assert roundtrip(data[old], data[new], in_size=0, out_size=0) == data[new]


# --- iterator APIs ------------------------------------------------------------------------


def chunked(blob: bytes, sizes: list[int]) -> list[bytes | bytearray | memoryview]:
    """Split ``blob`` cycling through ``sizes``; vary the buffer types too; include empties."""
    out: list[bytes | bytearray | memoryview] = []
    pos = 0
    for i, size in enumerate(itertools.cycle(sizes)):
        if pos >= len(blob):
            break
        piece = blob[pos : pos + size]
        pos += size
        out.append((bytes, bytearray, memoryview)[i % 3](piece))
        if i % 5 == 0:
            out.append(b"")
    return out


CHUNKINGS = {
    "1": [1],
    "odd": [1, 2, 3, 7, 13, 101],
    "4097": [4097],
    "big": [1 << 20],
    "random": [random.Random(5).randint(1, 3000) for _ in range(50)],
}


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_iterators_odd_chunkings(
    ref: Reference, files: dict[str, Path], data: dict[str, bytes], chunking: str
) -> None:
    name_old, name_new = ("size-10241", "size-10239") if chunking == "1" else ("text", "text.move")
    basis, new = data[name_old], data[name_new]
    sizes = CHUNKINGS[chunking]
    params = api.signature_params(len(basis), block_len=512, strong_len=-1)
    sig = b"".join(api.iter_signature(chunked(basis, sizes), params))
    assert sig == ref.signature_file(files[name_old], "-b", "512", "-S", "-1")
    loaded = api.load_signature(chunked(sig, sizes))
    delta = b"".join(api.iter_delta(loaded, chunked(new, sizes)))
    assert delta == ref.delta(sig, files[name_new])  # non-empty signature: chunking-free
    out = b"".join(api.iter_patch(io.BytesIO(basis), chunked(delta, sizes)))
    assert out == new


def test_iter_outputs_are_independent_bytes(data: dict[str, bytes]) -> None:
    """Yielded pieces stay valid after the generator moves on (they are not reused views)."""
    params = api.signature_params(None, block_len=256)
    pieces = list(api.iter_signature([data["random"]], params))
    assert all(isinstance(p, bytes) for p in pieces)
    assert b"".join(pieces) == b"".join(api.iter_signature([data["random"]], params))


# --- generated edits ----------------------------------------------------------------------

BASE = random.Random(11).randbytes(3000) + b"some text, some text, " * 100 + bytes(1500)


@st.composite
def edits(draw: st.DrawFn) -> bytes:
    out = bytearray(BASE)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "move", "repeat", "overwrite"]))
        n = len(out)
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, min(n, a + 3000)))
        if kind == "insert":
            out[a:a] = draw(st.binary(min_size=1, max_size=600))
        elif kind == "delete":
            del out[a:b]
        elif kind == "overwrite":
            out[a:b] = draw(st.binary(min_size=b - a, max_size=b - a))
        elif kind == "repeat":
            out[b:b] = out[a:b]
        else:
            piece = bytes(out[a:b])
            del out[a:b]
            at = draw(st.integers(0, len(out)))
            out[at:at] = piece
    return bytes(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    new=edits(),
    block=st.sampled_from([0, 64, 256, 700]),
    combo=st.sampled_from(COMBOS),
    strong=st.sampled_from([0, -1, 8]),
)
def test_generated_edits(
    ref: Reference, new: bytes, block: int, combo: tuple[HashName, RollsumName], strong: int
) -> None:
    hash_name, rollsum = combo
    sig = io.BytesIO()
    api.signature(
        io.BytesIO(BASE),
        sig,
        block_len=block,
        strong_len=strong,
        hash_name=hash_name,
        rollsum=rollsum,
    )
    delta = io.BytesIO()
    api.delta(io.BytesIO(sig.getvalue()), io.BytesIO(new), delta)
    out = io.BytesIO()
    api.patch(io.BytesIO(BASE), io.BytesIO(delta.getvalue()), out)
    assert out.getvalue() == new
    # and the delta is rdiff's (a pipe-fed signature: BytesIO has no size either)
    new_path = ref.tmp(new, "new")
    try:
        assert delta.getvalue() == ref.delta(sig.getvalue(), new_path)
    finally:
        new_path.unlink()


# --- parallel deltas ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [("big-9m", "big-9m.mixed"), ("empty", "big-9m"), ("big-9m", "big-9m"), ("text", "big-9m")],
)
def test_parallel_delta_roundtrip(
    files: dict[str, Path],
    data: dict[str, bytes],
    old: str,
    new: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = parallel.delta

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(parallel, "delta", counted)
    sig = io.BytesIO()
    with open(files[old], "rb") as f:
        api.signature(f, sig, jobs=2)
    delta = io.BytesIO()
    with open(files[new], "rb") as f:
        api.delta(io.BytesIO(sig.getvalue()), f, delta, jobs=2)
    assert calls, "the parallel delta did not run"
    out = io.BytesIO()
    with open(files[old], "rb") as f:
        api.patch(f, io.BytesIO(delta.getvalue()), out)
    assert out.getvalue() == data[new]
