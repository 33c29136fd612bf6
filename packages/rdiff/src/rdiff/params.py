"""Signature parameters and file headers, in pure Python (no C extension needed).

Formats (librsync 2.3): a signature starts with three big-endian u32 -- magic, block length,
strong-sum length -- then one record per block: weak sum (u32 BE) + strong sum. A delta starts
with the u32 magic 0x72730236 and ends with the END command (a single 0x00 byte).
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, TypeAlias

    HashName: TypeAlias = Literal["blake2", "md4"]
    RollsumName: TypeAlias = Literal["rabinkarp", "rollsum"]

DELTA_MAGIC = 0x72730236
MD4_SIG_MAGIC = 0x72730136
BLAKE2_SIG_MAGIC = 0x72730137
RK_MD4_SIG_MAGIC = 0x72730146
RK_BLAKE2_SIG_MAGIC = 0x72730147
SIGNATURE_MAGICS = (MD4_SIG_MAGIC, BLAKE2_SIG_MAGIC, RK_MD4_SIG_MAGIC, RK_BLAKE2_SIG_MAGIC)
HEADER = struct.Struct(">III")
MAX_STRONG_LEN: dict[str, int] = {"blake2": 32, "md4": 16}
DELTA_END = 0x00


def magic_for(hash_name: HashName, rollsum: RollsumName) -> int:
    """The signature magic for a hash and a rolling checksum, composed as rdiff composes it."""
    base = BLAKE2_SIG_MAGIC if hash_name == "blake2" else MD4_SIG_MAGIC
    return base + (0x10 if rollsum == "rabinkarp" else 0)


def describe_magic(magic: int) -> tuple[HashName, RollsumName]:
    """(hash, rollsum) of a signature magic; ValueError if it is not a signature magic."""
    if magic not in SIGNATURE_MAGICS:
        raise ValueError(f"not a signature magic: {magic:#x}")
    hash_name: HashName = "blake2" if magic & 0xF == 7 else "md4"
    rollsum: RollsumName = "rabinkarp" if magic & 0xF0 == 0x40 else "rollsum"
    return hash_name, rollsum


class SignatureParams:
    """Resolved parameters of a signature: what its 12-byte header records (immutable)."""

    __slots__ = ("block_len", "magic", "strong_len")
    magic: int
    block_len: int
    strong_len: int

    def __init__(self, magic: int, block_len: int, strong_len: int) -> None:
        object.__setattr__(self, "magic", magic)
        object.__setattr__(self, "block_len", block_len)
        object.__setattr__(self, "strong_len", strong_len)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SignatureParams is immutable")

    def _key(self) -> tuple[int, int, int]:
        return (self.magic, self.block_len, self.strong_len)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignatureParams) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"SignatureParams(magic={self.magic:#x}, block_len={self.block_len}, "
            f"strong_len={self.strong_len})"
        )

    @property
    def record_len(self) -> int:
        return 4 + self.strong_len

    def header(self) -> bytes:
        return HEADER.pack(self.magic, self.block_len, self.strong_len)

    def size_for(self, data_len: int) -> int:
        """Bytes of the signature of ``data_len`` bytes of basis."""
        blocks = -(-data_len // self.block_len)
        return HEADER.size + blocks * self.record_len

    @classmethod
    def from_header(cls, header: bytes) -> SignatureParams:
        """Parse a signature header; ValueError when it is short or not a signature."""
        if len(header) < HEADER.size:
            raise ValueError("signature header truncated")
        magic, block_len, strong_len = HEADER.unpack_from(header)
        hash_name, _ = describe_magic(magic)
        if block_len < 1 or not 0 < strong_len <= MAX_STRONG_LEN[hash_name]:
            raise ValueError(f"implausible block length {block_len} or sum length {strong_len}")
        return cls(magic, block_len, strong_len)
