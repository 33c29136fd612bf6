"""rdb-increment's writer against ``/usr/bin/rdiff`` + ``gzip -9``, side by side in one run.

Usage::

    python benchmarks/bench_increment.py            # 512 MiB file pair + 200 small files
    python benchmarks/bench_increment.py --quick    # 64 MiB file pair + 200 small files

Cases (the same old/new pairs for both sides; 1% of each new file changed in 64 KiB spots):

- ``big``: one reverse increment of a large file (signature of the new file, delta of the old
  one, gzip level 9), ours through ``IncrementWriter.write``; the reference is
  ``rdiff -H md4 -R rollsum -S 8 -b <rdiff-backup's block> signature`` then
  ``rdiff delta ... | gzip -9``, the same parameters rdiff-backup uses.
- ``small``: 200 changed files of 4-64 KiB, ours through ``IncrementWriter.write_many`` (a
  thread pool); the reference runs the same two rdiff commands and gzip per file from a shell.

Each side runs as a child process; wall time is measured around it and peak RSS comes from the
child's rusage (for the shell reference: the largest of its children). Outputs are checked:
every delta gunzips and patches back to the old file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import run_child

SMALL_FILES = 200


def _write_pair(old: Path, new: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    chunk = 1 << 20
    with open(old, "wb") as fo, open(new, "wb") as fn:
        left = size
        while left:
            n = min(chunk, left)
            block = rng.randbytes(n)
            fo.write(block)
            changed = bytearray(block)
            spots = max(1, n // (64 * 1024 * 100))  # ~1% in 64 KiB spots (at least one)
            for _ in range(spots if n >= 64 * 1024 else 0):
                at = rng.randrange(0, n - 1024)
                span = min(64 * 1024 // 100 * 100, n - at)
                changed[at : at + span // 100] = rng.randbytes(span // 100)
            if n < 64 * 1024:
                at = rng.randrange(0, max(1, n - n // 100))
                changed[at : at + max(1, n // 100)] = rng.randbytes(max(1, n // 100))
            fn.write(bytes(changed))
            left -= n


def _ours_child(argv: list[str]) -> int:
    from rdb_format.layout import Layout
    from rdb_increment import IncrementJob, IncrementWriter

    mode, repo, listing = argv
    layout = Layout(Path(repo))
    writer = IncrementWriter(layout, 1_700_000_000, utc_offset=0)
    pairs = [line.split("\t") for line in Path(listing).read_text().splitlines()]
    if mode == "big":
        old, new = pairs[0]
        writer.write((b"big",), Path(old), Path(new))
    else:
        jobs = [
            IncrementJob((b"d", Path(old).name.encode()), Path(old), Path(new))
            for old, new in pairs
        ]
        for outcome in writer.write_many(jobs):
            if outcome.error is not None:
                raise outcome.error
    writer.sync()
    return 0


def _block(size: int) -> int:
    return 64 if size < 10240 else (size >> (size.bit_length() // 2 + 4)) << 4


def _reference_script(pairs: list[tuple[Path, Path]], out_dir: Path) -> str:
    lines = ["set -e"]
    for old, new in pairs:
        sig = out_dir / (old.name + ".sig")
        out = out_dir / (old.name + ".diff.gz")
        lines.append(
            f"rdiff -H md4 -R rollsum -S 8 -b {_block(new.stat().st_size)} signature "
            f"'{new}' '{sig}'; rdiff delta '{sig}' '{old}' - | gzip -9 > '{out}'; rm '{sig}'"
        )
    lines.append("sync")
    return "\n".join(lines)


def _run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a child process (the largest of its children)."""
    child = run_child(argv, stdout=None)
    return child.wall, child.rss_kib


class _Hasher(io.RawIOBase):
    """A write-only stream that keeps only a SHA-256 (the parent's RSS stays small: a child
    inherits its parent's peak RSS at fork)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        view = memoryview(data)  # type: ignore[arg-type]
        self.digest.update(view)
        return view.nbytes


def _sha(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.digest()


def _check(pairs: list[tuple[Path, Path]], deltas: list[Path]) -> None:
    from rdiff.api import patch

    for (old, new), delta in zip(pairs, deltas, strict=True):
        out = _Hasher()
        with open(new, "rb") as basis, gzip.open(delta, "rb") as d:
            patch(basis, d, out)  # type: ignore[arg-type]
        if out.digest.digest() != _sha(old):
            raise SystemExit(f"{delta}: does not patch back to {old}")


def _case(name: str, pairs: list[tuple[Path, Path]], work: Path) -> dict[str, tuple[float, int]]:
    listing = work / f"{name}.pairs"
    listing.write_text("".join(f"{o}\t{n}\n" for o, n in pairs))
    repo = work / f"repo-{name}"
    (repo / "rdiff-backup-data" / "increments").mkdir(parents=True)
    ref_out = work / f"ref-{name}"
    ref_out.mkdir()
    subprocess.run(["sync"], check=True)
    ours = _run([sys.executable, __file__, "--child", name, str(repo), str(listing)])
    subprocess.run(["sync"], check=True)
    ref = _run(["bash", "-c", _reference_script(pairs, ref_out)])
    incs = repo / "rdiff-backup-data" / "increments"
    if name == "big":
        ours_deltas = [next(incs.glob("big.*.diff.gz"))]
    else:
        ours_deltas = [next((incs / "d").glob(f"{old.name}.*.diff.gz")) for old, _ in pairs]
    _check(pairs, ours_deltas)
    _check(pairs, [ref_out / (old.name + ".diff.gz") for old, _ in pairs])
    return {"ours": ours, "rdiff+gzip": ref}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        return _ours_child(args[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of 512 MiB")
    parser.add_argument("--tmp", default=None, help="scratch directory (default: $TMPDIR)")
    opts = parser.parse_args(args)
    size = (64 if opts.quick else 512) << 20
    with tempfile.TemporaryDirectory(prefix="bench-increment-", dir=opts.tmp) as scratch:
        work = Path(scratch)
        data = work / "data"
        data.mkdir()
        big = (data / "big.old", data / "big.new")
        _write_pair(*big, size, seed=1)
        small = []
        rng = random.Random(2)
        for i in range(SMALL_FILES):
            pair = (data / f"f{i:03d}.old", data / f"f{i:03d}.new")
            _write_pair(*pair, rng.randrange(4096, 65536), seed=100 + i)
            small.append(pair)
        for path in data.iterdir():  # into the page cache for both sides
            _sha(path)
        results = {
            f"big ({size >> 20} MiB, 1% changed)": _case("big", [big], work),
            f"small ({SMALL_FILES} files, 4-64 KiB)": _case("small", small, work),
        }
    print(f"rdb-increment benchmark ({os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')})")
    print(f"{'case':<34} {'tool':<11} {'wall s':>8} {'peak RSS MiB':>13}")
    for case, rows in results.items():
        for tool, (wall, rss) in rows.items():
            print(f"{case:<34} {tool:<11} {wall:>8.2f} {rss / 1024:>13.1f}")
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
