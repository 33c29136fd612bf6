"""Seeded generator of inputs for the rdiff tests: bases and edited new versions.

Everything is generated from a seed (nothing is copied from librsync's test suite), so the same
seed always gives the same bytes. Use it as a library::

    from make_rdiff_inputs import make_inputs, edit
    data = make_inputs(seed=1)           # {name: bytes}

or from the command line::

    python scripts/make_rdiff_inputs.py OUTDIR [--seed N] [--no-big]

Names: ``empty``, ``one``, ``size-<n>`` (block-boundary sizes), ``text``, ``random``,
``zeros``, ``zero-runs``, ``big-3m``, ``big-9m`` (omitted with ``big=False``), and edited
versions ``<base>.<edit>`` for the edits in :data:`EDIT_KINDS`.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

DEFAULT_SEED = 0x5EED2302
KIB = 1024
MIB = 1024 * KIB

# Sizes around the block lengths rdiff uses (256 is the default for files <= 64 KiB, 2048 for
# pipes) and around multiples of the -b values the tests use (1000, 2048, 4096).
BOUNDARY_SIZES = (
    255,
    256,
    257,
    511,
    513,
    2047,
    2048,
    2049,
    3 * 1000 - 1,
    3 * 1000 + 1,
    5 * 2048 - 1,
    5 * 2048 + 1,
    4 * 4096 - 1,
    4 * 4096,
    4 * 4096 + 1,
)

EDIT_KINDS = ("insert", "delete", "move", "repeat", "overwrite", "mixed")

# Bases that get edited versions, and the size of the plain generated bases.
EDITED_BASES = ("text", "random", "zero-runs", "big-3m")
TEXT_SIZE = 100_000
RANDOM_SIZE = 150_000
ZEROS_SIZE = 70_000
ZERO_RUNS_SIZE = 120_000

_WORD_TEXT = (
    "the quick brown fox jumps over lazy dog signature delta patch block rolling checksum "
    "strong hash literal copy basis librsync rdiff backup increment mirror metadata session "
    "regress restore verify list file directory link device fifo socket owner group mode "
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
)
_WORDS = _WORD_TEXT.split(" ")


def text_like(rng: random.Random, size: int) -> bytes:
    """Lines of words with some repeated paragraphs, like source code or prose."""
    parts: list[bytes] = []
    total = 0
    paragraphs: list[bytes] = []
    while total < size:
        if paragraphs and rng.random() < 0.15:
            para = rng.choice(paragraphs)  # repeated content makes in-file matches
        else:
            lines = []
            for _ in range(rng.randint(1, 12)):
                words = [rng.choice(_WORDS) for _ in range(rng.randint(0, 14))]
                indent = " " * (4 * rng.randint(0, 3))
                lines.append((indent + " ".join(words)).encode())
            para = b"\n".join(lines) + b"\n\n"
            paragraphs.append(para)
        parts.append(para)
        total += len(para)
    return b"".join(parts)[:size]


def random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def zero_runs(rng: random.Random, size: int) -> bytes:
    """Random stretches separated by runs of zeros, some longer than any block length."""
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(rng.randint(1, 3000))
        out += bytes(rng.choice((1, 17, 255, 256, 2048, 5000, 9000, 20000)))
    return bytes(out[:size])


def edit(data: bytes, kind: str, rng: random.Random, *, count: int = 3) -> bytes:
    """An edited copy of ``data``: ``count`` edits of one kind (``mixed``: of random kinds).

    insert: new random bytes at random places; delete: remove ranges; move: cut a range and
    paste it elsewhere; repeat: duplicate a range next to itself; overwrite: replace a range
    with random bytes of the same length.
    """
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit {kind!r}; expected one of {EDIT_KINDS}")
    out = bytearray(data)
    for _ in range(count):
        this = rng.choice(EDIT_KINDS[:-1]) if kind == "mixed" else kind
        out = bytearray(_edit_once(bytes(out), this, rng))
    return bytes(out)


def _span(rng: random.Random, length: int) -> tuple[int, int]:
    if length == 0:
        return 0, 0
    size = rng.randint(1, max(1, min(length, rng.choice((1, 7, 100, 1000, 5000, 40000)))))
    start = rng.randint(0, length - size)
    return start, start + size


def _edit_once(data: bytes, kind: str, rng: random.Random) -> bytes:
    n = len(data)
    if kind == "insert" or n == 0:
        at = rng.randint(0, n)
        return data[:at] + rng.randbytes(rng.choice((1, 13, 300, 4096, 33000))) + data[at:]
    start, end = _span(rng, n)
    if kind == "delete":
        return data[:start] + data[end:]
    if kind == "overwrite":
        return data[:start] + rng.randbytes(end - start) + data[end:]
    if kind == "repeat":
        return data[:end] + data[start:end] + data[end:]
    # move
    piece = data[start:end]
    rest = data[:start] + data[end:]
    at = rng.randint(0, len(rest))
    return rest[:at] + piece + rest[at:]


def make_inputs(seed: int = DEFAULT_SEED, *, big: bool = True) -> dict[str, bytes]:
    """All named inputs for ``seed``; ``big`` adds the 3 MiB and 9 MiB files and their edits."""
    rng = random.Random(seed)
    data: dict[str, bytes] = {"empty": b"", "one": rng.randbytes(1)}
    for size in BOUNDARY_SIZES:
        data[f"size-{size}"] = rng.randbytes(size)
    data["text"] = text_like(rng, TEXT_SIZE)
    data["random"] = random_bytes(rng, RANDOM_SIZE)
    data["zeros"] = bytes(ZEROS_SIZE)
    data["zero-runs"] = zero_runs(rng, ZERO_RUNS_SIZE)
    if big:
        # Half text, half random: cheap to generate, matches and misses both happen.
        data["big-3m"] = text_like(rng, 3 * MIB // 2) + rng.randbytes(3 * MIB - 3 * MIB // 2)
        data["big-9m"] = rng.randbytes(9 * MIB)
    for base in EDITED_BASES:
        if base not in data:
            continue
        for kind in EDIT_KINDS:
            data[f"{base}.{kind}"] = edit(data[base], kind, random.Random(f"{seed}/{base}/{kind}"))
    if big:
        data["big-9m.mixed"] = edit(data["big-9m"], "mixed", random.Random(f"{seed}/big-9m"))
    return data


def write_inputs(directory: Path, seed: int = DEFAULT_SEED, *, big: bool = True) -> dict[str, Path]:
    """Write every input of :func:`make_inputs` into ``directory``; return name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, content in make_inputs(seed, big=big).items():
        path = directory / name
        path.write_bytes(content)
        paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-big", action="store_true", help="skip the multi-MiB inputs")
    args = parser.parse_args(argv)
    paths = write_inputs(args.outdir, args.seed, big=not args.no_big)
    for name, path in paths.items():
        print(f"{path.stat().st_size:>10}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
