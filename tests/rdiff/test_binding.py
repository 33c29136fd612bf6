"""The cffi binding: constants, version, callbacks that raise, threads, non-seekable bases."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import pytest
from rdiff._librsync import ffi, lib

from rdiff import _binding, api
from rdiff.errors import RdiffIOError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from tests.rdiff.conftest import NoHang, Reference

HEADER = Path("/usr/include/librsync.h")


def header_enum_values() -> dict[str, int]:
    """NAME = value pairs of librsync.h's enums (the installed header is the authority)."""
    if not HEADER.exists():
        pytest.skip("librsync.h not installed (librsync-dev)")
    text = HEADER.read_text()
    return {
        m[1]: int(m[2], 0)
        for m in re.finditer(r"\b(RS_[A-Z0-9_]+)\s*=\s*(0x[0-9a-fA-F]+|\d+)", text)
    }


def test_result_codes_match_header() -> None:
    values = header_enum_values()
    assert lib.RS_DONE == values["RS_DONE"] == 0
    assert lib.RS_BLOCKED == values["RS_BLOCKED"] == 1
    assert lib.RS_INPUT_ENDED == values["RS_INPUT_ENDED"] == 103
    for name in (
        "RS_RUNNING",
        "RS_IO_ERROR",
        "RS_SYNTAX_ERROR",
        "RS_MEM_ERROR",
        "RS_BAD_MAGIC",
        "RS_UNIMPLEMENTED",
        "RS_CORRUPT",
        "RS_INTERNAL_ERROR",
        "RS_PARAM_ERROR",
    ):
        assert getattr(lib, name) == values[name], name
    assert _binding.RS_DONE == 0 and _binding.RS_BLOCKED == 1


def test_magics_match_header() -> None:
    values = header_enum_values()
    expected = {
        "RS_DELTA_MAGIC": 0x72730236,
        "RS_MD4_SIG_MAGIC": 0x72730136,
        "RS_BLAKE2_SIG_MAGIC": 0x72730137,
        "RS_RK_MD4_SIG_MAGIC": 0x72730146,
        "RS_RK_BLAKE2_SIG_MAGIC": 0x72730147,
    }
    for name, value in expected.items():
        assert getattr(lib, name) == values[name] == value, name
    from rdiff import params

    assert params.DELTA_MAGIC == lib.RS_DELTA_MAGIC
    assert params.magic_for("md4", "rollsum") == lib.RS_MD4_SIG_MAGIC
    assert params.magic_for("blake2", "rollsum") == lib.RS_BLAKE2_SIG_MAGIC
    assert params.magic_for("md4", "rabinkarp") == lib.RS_RK_MD4_SIG_MAGIC
    assert params.magic_for("blake2", "rabinkarp") == lib.RS_RK_BLAKE2_SIG_MAGIC


def test_log_levels_and_struct_sizes() -> None:
    values = header_enum_values()
    for name in ("RS_LOG_ERR", "RS_LOG_WARNING", "RS_LOG_INFO", "RS_LOG_DEBUG"):
        assert getattr(lib, name) == values[name]
    assert ffi.sizeof("rs_buffers_t") == 40  # x86-64 layout from the real header
    assert ffi.sizeof("rs_stats_t") == 128


def test_version_string() -> None:
    version = ffi.string(lib.rs_librsync_version).decode()
    assert version.startswith("librsync 2.3")
    assert version == _binding.LIBRSYNC_VERSION


def test_strerror() -> None:
    assert _binding.strerror(lib.RS_DONE) == "OK"
    assert _binding.strerror(lib.RS_INPUT_ENDED) == "unexpected end of input"
    assert _binding.strerror(lib.RS_CORRUPT) == "stream corrupt"


# --- exceptions inside callbacks ----------------------------------------------------------


class Boom(Exception):
    pass


class RaisingBasis(io.RawIOBase):
    """A seekable basis without fileno whose reads fail after ``good`` successful ones.
    (Raw streams are binary files; typeshed's BinaryIO is nominal, hence the casts below.)"""

    def __init__(self, content: bytes, good: int = 0) -> None:
        self._inner = io.BytesIO(content)
        self.good = good

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self.good <= 0:
            raise Boom("basis read failed")
        self.good -= 1
        return self._inner.readinto(buffer)


@pytest.fixture(scope="module")
def pair(ref: Reference, data: dict[str, bytes], files: dict[str, Path]) -> tuple[bytes, bytes]:
    sig = ref.signature_file(files["text"], "-b", "256")
    return data["text"], ref.delta(sig, files["text.move"])


@pytest.mark.parametrize("good", [0, 1, 5])
def test_copy_callback_exception_propagates(
    no_hang: NoHang, pair: tuple[bytes, bytes], good: int
) -> None:
    basis, delta = pair
    out = io.BytesIO()
    with pytest.raises(Boom, match="basis read failed"):
        no_hang(
            lambda: api.patch(cast(BinaryIO, RaisingBasis(basis, good)), io.BytesIO(delta), out)
        )


def test_copy_callback_exception_propagates_iter_patch(
    no_hang: NoHang, pair: tuple[bytes, bytes]
) -> None:
    basis, delta = pair
    with pytest.raises(Boom):
        no_hang(lambda: b"".join(api.iter_patch(cast(BinaryIO, RaisingBasis(basis, 2)), [delta])))


def raising_chunks(content: bytes, after: int) -> Iterator[bytes]:
    for i in range(0, len(content), 100):
        if i >= after:
            raise Boom("source failed")
        yield content[i : i + 100]


def test_iterator_exception_propagates(
    no_hang: NoHang, data: dict[str, bytes], pair: tuple[bytes, bytes]
) -> None:
    content = data["text"]
    _, delta = pair
    params = api.signature_params(None)
    with pytest.raises(Boom):
        no_hang(lambda: b"".join(api.iter_signature(raising_chunks(content, 5000), params)))
    sig_bytes = b"".join(api.iter_signature([content], params))
    with pytest.raises(Boom):
        no_hang(lambda: api.load_signature(raising_chunks(sig_bytes, len(sig_bytes) // 2)))
    sig = api.load_signature([sig_bytes])
    with pytest.raises(Boom):
        no_hang(lambda: b"".join(api.iter_delta(sig, raising_chunks(content, 3000))))
    with pytest.raises(Boom):
        no_hang(
            lambda: b"".join(
                api.iter_patch(io.BytesIO(content), raising_chunks(delta, len(delta) // 2))
            )
        )


class RaisingReader(io.RawIOBase):
    def __init__(self, content: bytes) -> None:
        self._inner = io.BytesIO(content)
        self.calls = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self.calls += 1
        if self.calls > 2:
            raise Boom("new file read failed")
        return self._inner.readinto(buffer)


def test_file_read_exception_propagates(no_hang: NoHang, data: dict[str, bytes]) -> None:
    sig = io.BytesIO()
    api.signature(io.BytesIO(data["text"]), sig)
    with pytest.raises(Boom):
        no_hang(
            lambda: api.delta(
                io.BytesIO(sig.getvalue()),
                cast(BinaryIO, RaisingReader(data["text.move"])),
                io.BytesIO(),
                in_size=100,
            )
        )


# --- threads ------------------------------------------------------------------------------


def test_concurrent_signatures_are_correct(data: dict[str, bytes]) -> None:
    """Fact check of GIL release: two threads hash a large buffer at once. Asserts only the
    results (equal to the sequential ones) and that both ran at the same time, and records the
    CPU time each thread used; no wall-clock ratio is asserted."""
    content = data["big-9m"]
    params = api.signature_params(len(content), block_len=2048, strong_len=32)
    expected = b"".join(api.iter_signature([content], params))
    results: dict[int, bytes] = {}
    spans: dict[int, tuple[float, float, float]] = {}
    start = threading.Barrier(2)

    def work(i: int) -> None:
        start.wait()
        t0, c0 = time.monotonic(), time.thread_time()
        # 1 MiB chunks: each rs_job_iter call runs long enough to overlap
        chunks = (content[j : j + 2**20] for j in range(0, len(content), 2**20))
        results[i] = b"".join(api.iter_signature(chunks, params))
        spans[i] = (t0, time.monotonic(), time.thread_time() - c0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {0: expected, 1: expected}
    (a0, a1, cpu_a), (b0, b1, cpu_b) = spans[0], spans[1]
    assert a0 < b1 and b0 < a1, "the two signatures did not run concurrently"
    assert cpu_a > 0 and cpu_b > 0


# --- patch needs a seekable basis ---------------------------------------------------------


def test_non_seekable_basis_names_it(pair: tuple[bytes, bytes]) -> None:
    _, delta = pair
    rfd, wfd = os.pipe()
    try:
        with os.fdopen(rfd, "rb") as r, pytest.raises(RdiffIOError) as info:
            api.patch(r, io.BytesIO(delta), io.BytesIO(), basis_name="my-basis.bin")
    finally:
        os.close(wfd)
    assert "my-basis.bin" in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_status == 1


def test_non_seekable_basis_iter_patch(pair: tuple[bytes, bytes]) -> None:
    class Stream(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    with pytest.raises(RdiffIOError, match="pipe-basis"):
        b"".join(api.iter_patch(cast(BinaryIO, Stream()), [pair[1]], basis_name="pipe-basis"))


# --- the cyclic GC and exported buffers ---------------------------------------------------

GC_REPRO = textwrap.dedent(
    """
    import gc, io, random
    from rdiff import api
    from rdiff.errors import CorruptInput
    basis = random.Random(7).randbytes(1000)
    # COPY 999..1001: past the end of the 1000-byte basis
    delta = b"rs\\x026\\x49" + (999).to_bytes(2, "big") + b"\\x02\\x00"
    for i in range(50):
        try:
            api.patch(io.BytesIO(basis), io.BytesIO(delta), io.BytesIO())
        except CorruptInput as error:
            error.cycle = error  # any reference cycle through the exception
        gc.collect()
    print("survived")
    """
)


def test_error_freed_by_cyclic_gc() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", GC_REPRO], capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.decode()[-400:]}"
    assert proc.stdout.strip() == b"survived"
