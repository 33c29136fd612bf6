"""Truncated, bit-flipped and malformed signatures and deltas.

Our verdict (success, or CorruptInput with exit status 2 and a one-line message) must agree
with /usr/bin/rdiff's (exit 0 or not) on the same bytes; when both succeed the outputs must be
equal. Every call runs under a timeout: a hang fails the test instead of stalling the run.
"""

from __future__ import annotations

import io
import random
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import pytest

from rdiff import api
from rdiff.errors import CorruptInput, ExitStatus

if TYPE_CHECKING:
    from tests.rdiff.conftest import NoHang, OurCli, Reference

DELTA_MAGIC = b"rs\x026"


class Small(TypedDict):
    """The ``small`` fixture: its directory (files basis and new) and their bytes."""

    dir: Path
    basis: bytes
    new: bytes
    sig: bytes
    delta: bytes


@pytest.fixture(scope="module")
def small(ref: Reference, tmp_path_factory: pytest.TempPathFactory) -> Small:
    """A 1000-byte basis, an edited new file, rdiff's signature (-b 256 -S 8) and delta."""
    rng = random.Random(7)
    basis = rng.randbytes(1000)
    new = basis[:300] + b"hello" + basis[300:700] + basis[900:] + b"tail"
    d = tmp_path_factory.mktemp("corrupt")
    (d / "basis").write_bytes(basis)
    (d / "new").write_bytes(new)
    sig = ref.signature_file(d / "basis", "-b", "256", "-S", "8")
    delta = ref.delta(sig, d / "new")
    return {"dir": d, "basis": basis, "new": new, "sig": sig, "delta": delta}


def check_error(error: BaseException) -> CorruptInput:
    assert isinstance(error, CorruptInput), f"{type(error).__name__}: {error}"
    assert error.exit_status == ExitStatus.CORRUPT == 2
    message = str(error)
    assert message and "\n" not in message
    return error


def our_delta(no_hang: NoHang, sig: bytes, new: Path) -> bytes | CorruptInput:
    def run() -> bytes:
        out = io.BytesIO()
        with open(new, "rb") as f:
            api.delta(io.BytesIO(sig), f, out)
        return out.getvalue()

    try:
        return no_hang(run)
    except Exception as error:
        return check_error(error)


def our_patch(no_hang: NoHang, basis: Path, delta: bytes) -> bytes | CorruptInput:
    def run() -> bytes:
        out = io.BytesIO()
        with open(basis, "rb") as f:
            api.patch(f, io.BytesIO(delta), out)
        return out.getvalue()

    try:
        return no_hang(run)
    except Exception as error:
        return check_error(error)


def ref_delta(ref: Reference, sig: bytes, new: Path) -> subprocess.CompletedProcess[bytes]:
    sig_path = ref.tmp(sig, "sig")
    try:
        return ref.run("delta", sig_path, new, "-", check=False)
    finally:
        sig_path.unlink()


def ref_patch(ref: Reference, basis: Path, delta: bytes) -> subprocess.CompletedProcess[bytes]:
    return ref.run("patch", basis, "-", "-", input=delta, check=False)


def agree(ours: bytes | CorruptInput, proc: subprocess.CompletedProcess[bytes], what: str) -> None:
    """Same verdict as rdiff; same bytes when both succeed. rdiff crashes are not verdicts."""
    if proc.returncode < 0:  # e.g. rdiff aborts allocating a huge block buffer
        return
    if proc.returncode == 0:
        assert not isinstance(ours, Exception), f"{what}: rdiff accepts, we say {ours}"
        assert ours == proc.stdout, f"{what}: different output"
    else:
        assert isinstance(ours, Exception), f"{what}: rdiff refuses ({proc.stderr!r}), we accept"


def compare_sig(
    ref: Reference, no_hang: NoHang, small: Small, sig: bytes, what: str
) -> bytes | CorruptInput:
    ours = our_delta(no_hang, sig, small["dir"] / "new")
    agree(ours, ref_delta(ref, sig, small["dir"] / "new"), what)
    return ours


def compare_delta(
    ref: Reference, no_hang: NoHang, small: Small, delta: bytes, what: str
) -> bytes | CorruptInput:
    ours = our_patch(no_hang, small["dir"] / "basis", delta)
    agree(ours, ref_patch(ref, small["dir"] / "basis", delta), what)
    return ours


# --- truncation ---------------------------------------------------------------------------


def test_truncated_signature_every_prefix(ref: Reference, no_hang: NoHang, small: Small) -> None:
    sig = small["sig"]
    record = 4 + 8
    for n in range(len(sig)):
        ours = compare_sig(ref, no_hang, small, sig[:n], f"prefix {n}")
        if n < 12:  # the header is incomplete: never valid
            assert isinstance(ours, CorruptInput), n
        elif (n - 12) % record == 0:  # ends exactly on a record boundary: valid, fewer blocks
            assert not isinstance(ours, Exception), n


def test_truncated_big_signature(
    ref: Reference, no_hang: NoHang, small: Small, files: dict[str, Path]
) -> None:
    sig = ref.signature_file(files["text"])  # 391 records of 36 bytes
    record = 36
    cuts = [0, 4, 11, 12, 13, 16, 17, 12 + record, 12 + record + 20, len(sig) // 2]
    cuts += [len(sig) - record, len(sig) - record + 1, len(sig) - 5, len(sig) - 1]
    for n in cuts:
        ours = our_delta(no_hang, sig[:n], files["text.mixed"])
        agree(ours, ref_delta(ref, sig[:n], files["text.mixed"]), f"prefix {n}")


def test_truncated_delta_every_prefix(ref: Reference, no_hang: NoHang, small: Small) -> None:
    delta = small["delta"]
    assert delta[-1] == 0  # END
    for n in range(len(delta)):
        ours = compare_delta(ref, no_hang, small, delta[:n], f"prefix {n}")
        # commands are parsed in order and END is the last byte: no strict prefix is complete
        assert isinstance(ours, CorruptInput), n
    assert compare_delta(ref, no_hang, small, delta, "whole") == small["new"]


def test_truncated_big_delta(
    ref: Reference, no_hang: NoHang, files: dict[str, Path], data: dict[str, bytes]
) -> None:
    sig = ref.signature_file(files["random"], "-b", "1000")
    delta = ref.delta(sig, files["random.mixed"])
    assert len(delta) > 2000
    for n in [0, 3, 4, 5, 6, 7, 100, len(delta) // 3, len(delta) // 2, len(delta) - 2]:
        ours = our_patch(no_hang, files["random"], delta[:n])
        assert isinstance(ours, CorruptInput), n
        agree(ours, ref_patch(ref, files["random"], delta[:n]), f"prefix {n}")
    assert our_patch(no_hang, files["random"], delta) == data["random.mixed"]


# --- bit flips ----------------------------------------------------------------------------


def flip(blob: bytes, bit: int) -> bytes:
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_bitflipped_signature(ref: Reference, no_hang: NoHang, small: Small) -> None:
    """Every bit of a small signature: header flips give bad magic / bogus lengths, others a
    different but valid signature (compare the resulting delta with rdiff's)."""
    sig = small["sig"]
    outcomes: set[bool] = set()
    for bit in range(len(sig) * 8):
        ours = compare_sig(ref, no_hang, small, flip(sig, bit), f"bit {bit}")
        outcomes.add(isinstance(ours, Exception))
    assert outcomes == {True, False}


def command_bytes(delta: bytes) -> list[int]:
    """Indices of the opcode and parameter bytes of a delta (not the literal data)."""
    widths = (1, 2, 4, 8)
    pos, out = 4, list(range(4))
    while True:
        op = delta[pos]
        out.append(pos)
        pos += 1
        if op == 0:
            return out
        if op <= 0x40:
            pos += op
        elif op <= 0x44:
            w = widths[op - 0x41]
            n = int.from_bytes(delta[pos : pos + w], "big")
            out.extend(range(pos, pos + w))
            pos += w + n
        else:
            i = op - 0x45
            w = widths[i // 4] + widths[i % 4]
            out.extend(range(pos, pos + w))
            pos += w


def test_bitflipped_delta(ref: Reference, no_hang: NoHang, small: Small) -> None:
    """Every bit of every command byte and a sample of literal bits."""
    delta = small["delta"]
    commands = command_bytes(delta)
    bits = [8 * i + b for i in commands for b in range(8)]
    literal = [i for i in range(len(delta)) if i not in set(commands)]
    rng = random.Random(3)
    bits += [8 * i + rng.randrange(8) for i in rng.sample(literal, min(40, len(literal)))]
    outcomes: set[bool] = set()
    for bit in bits:
        ours = compare_delta(ref, no_hang, small, flip(delta, bit), f"bit {bit}")
        outcomes.add(isinstance(ours, Exception))
    assert outcomes == {True, False}


# --- malformed inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 3, 12, 100, 5000])
def test_random_bytes(ref: Reference, no_hang: NoHang, small: Small, length: int) -> None:
    blob = random.Random(length).randbytes(length)
    assert isinstance(compare_sig(ref, no_hang, small, blob, "as signature"), CorruptInput)
    assert isinstance(compare_delta(ref, no_hang, small, blob, "as delta"), CorruptInput)
    # behind a valid delta magic the bytes are parsed as commands: compare with rdiff
    compare_delta(ref, no_hang, small, DELTA_MAGIC + blob, "as delta commands")


def test_delta_given_as_signature(ref: Reference, no_hang: NoHang, small: Small) -> None:
    ours = compare_sig(ref, no_hang, small, small["delta"], "delta as signature")
    assert isinstance(ours, CorruptInput)


def test_signature_given_as_delta(ref: Reference, no_hang: NoHang, small: Small) -> None:
    ours = compare_delta(ref, no_hang, small, small["sig"], "signature as delta")
    assert isinstance(ours, CorruptInput)


@pytest.mark.parametrize("op", [0x41, 0x42, 0x43, 0x44])
def test_zero_length_literal(ref: Reference, no_hang: NoHang, small: Small, op: int) -> None:
    width = (1, 2, 4, 8)[op - 0x41]
    delta = DELTA_MAGIC + bytes([op]) + bytes(width) + b"\x00"
    assert isinstance(compare_delta(ref, no_hang, small, delta, "LITERAL 0"), CorruptInput)


@pytest.mark.parametrize("op", range(0x45, 0x55))
def test_zero_length_copy(ref: Reference, no_hang: NoHang, small: Small, op: int) -> None:
    i = op - 0x45
    widths = (1, 2, 4, 8)
    delta = DELTA_MAGIC + bytes([op]) + bytes(widths[i // 4] + widths[i % 4]) + b"\x00"
    assert isinstance(compare_delta(ref, no_hang, small, delta, "COPY len 0"), CorruptInput)


def copy_cmd(offset: int, length: int) -> bytes:
    return b"\x54" + offset.to_bytes(8, "big") + length.to_bytes(8, "big")


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (1000, 1),  # starts at EOF
        (999, 2),  # straddles EOF
        (0, 1001),  # one byte too long
        (10**12, 10),  # far beyond EOF
        (2**62, 1),
        (0, 2**62),  # absurd length: fails at EOF rather than allocating
    ],
)
def test_copy_past_basis_end(
    ref: Reference, no_hang: NoHang, small: Small, offset: int, length: int
) -> None:
    delta = DELTA_MAGIC + copy_cmd(offset, length) + b"\x00"
    assert isinstance(compare_delta(ref, no_hang, small, delta, "COPY past EOF"), CorruptInput)


@pytest.mark.parametrize("offset", [2**63, 2**64 - 1, 2**63 + 5], ids=["2^63", "2^64-1", "2^63+5"])
def test_copy_offset_negative_as_rs_long(
    ref: Reference, no_hang: NoHang, small: Small, offset: int
) -> None:
    """An offset that is negative as librsync's signed rs_long_t cannot be inside any basis:
    corrupt input (status 2), like any other COPY past the end; rdiff fails too."""
    delta = DELTA_MAGIC + copy_cmd(offset, 10) + b"\x00"
    ours = compare_delta(ref, no_hang, small, delta, "COPY at negative offset")
    assert isinstance(ours, CorruptInput)


def test_reserved_opcodes(ref: Reference, no_hang: NoHang, small: Small) -> None:
    for op in range(0x55, 0x100):
        for delta in (
            DELTA_MAGIC + bytes([op]) + bytes(20),  # first command
            DELTA_MAGIC + b"\x03abc" + bytes([op]) + b"\x00",  # after a valid literal
        ):
            ours = compare_delta(ref, no_hang, small, delta, f"opcode {op:#x}")
            assert isinstance(ours, CorruptInput), hex(op)


def test_trailing_bytes_after_end_are_ignored(
    ref: Reference, no_hang: NoHang, small: Small
) -> None:
    """The format ends at END; rdiff ignores what follows and so must we."""
    ours = compare_delta(ref, no_hang, small, small["delta"] + b"\xff garbage", "trailing")
    assert ours == small["new"]


def test_iter_patch_truncated(no_hang: NoHang, small: Small) -> None:
    def run() -> bytes:
        cut = small["delta"][:-1]  # no END
        chunks = (cut[i : i + 5] for i in range(0, len(cut), 5))
        return b"".join(api.iter_patch(io.BytesIO(small["basis"]), chunks))

    with pytest.raises(CorruptInput) as info:
        no_hang(run)
    check_error(info.value)


def test_load_signature_chunks_truncated(no_hang: NoHang, small: Small) -> None:
    sig = small["sig"][:-3]
    with pytest.raises(CorruptInput) as info:
        no_hang(lambda: api.load_signature(sig[i : i + 1] for i in range(len(sig))))
    check_error(info.value)


# --- the command line ---------------------------------------------------------------------


def cli_blob(small: Small, what: str) -> bytes:
    return {
        "truncated signature": small["sig"][:20],
        "delta as signature": small["delta"],
        "random bytes": random.Random(1).randbytes(64),
        "truncated delta": small["delta"][:-1],
        "signature as delta": small["sig"],
        "reserved opcode": DELTA_MAGIC + b"\x99\x00",
        "zero-length copy": DELTA_MAGIC + b"\x45\x00\x00\x00",
        "copy past end": DELTA_MAGIC + copy_cmd(999, 2) + b"\x00",
        "empty delta": b"",
    }[what]


@pytest.mark.parametrize(
    ("action", "what"),
    [
        ("delta", "truncated signature"),
        ("delta", "delta as signature"),
        ("delta", "random bytes"),
        ("patch", "truncated delta"),
        ("patch", "signature as delta"),
        ("patch", "reserved opcode"),
        ("patch", "zero-length copy"),
        ("patch", "copy past end"),
        ("patch", "empty delta"),
    ],
)
def test_cli_corrupt_exit_2(
    ref: Reference, our_cli: OurCli, small: Small, tmp_path: Path, action: str, what: str
) -> None:
    path = tmp_path / "input"
    path.write_bytes(cli_blob(small, what))
    args: list[str | Path]
    if action == "delta":
        args = ["delta", path, small["dir"] / "new", "-"]
    else:
        args = ["patch", small["dir"] / "basis", path, "-"]
    theirs = ref.run(*args, check=False)
    assert theirs.returncode != 0
    ours = our_cli.run(*args, check=False)
    assert ours.returncode == 2, f"exit {ours.returncode}, {ours.stderr!r}"
    lines = ours.stderr.decode().strip().splitlines()
    assert len(lines) == 1, ours.stderr
