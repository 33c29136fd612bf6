"""The main job on the sample tree: an rdiff round trip, summarised for a person.

Packs sample/tree into a tar (the basis), makes a "next version" of it with an edited chapter
and a new file, then runs the installed `rdiff` command: signature of the old, delta against
the new, patch of the old. Checks the result and, when Debian's rdiff is there, that both
tools agree byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample" / "tree"
BIN = Path(sys.executable).parent


def pack(tree: Path, out: Path, edits: dict[str, bytes]) -> None:
    """A reproducible tar of ``tree`` with ``edits`` (path -> new content) applied."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
        names = {p.relative_to(tree).as_posix(): p.read_bytes() for p in paths}
        names.update(edits)
        for name in sorted(names):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(names[name]), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(names[name]))


def run(*argv: str | Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(a) for a in argv], check=True)
    return time.perf_counter() - start


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main() -> int:
    rdiff = BIN / "rdiff"
    chapter = (SAMPLE / "docs" / "chapter2.txt").read_bytes()
    edited = chapter[:2000] + b"\nA paragraph written after the last backup.\n" + chapter[2000:]
    with tempfile.TemporaryDirectory(prefix="rdb-demo-") as tmp:
        t = Path(tmp)
        old, new = t / "old.tar", t / "new.tar"
        pack(SAMPLE, old, {})
        pack(SAMPLE, new, {"docs/chapter2.txt": edited, "notes/todo.txt": b"water the plants\n"})
        times = {
            "signature": run(rdiff, "signature", old, t / "old.sig"),
            "delta": run(rdiff, "delta", t / "old.sig", new, t / "new.delta"),
            "patch": run(rdiff, "patch", old, t / "new.delta", t / "rebuilt.tar"),
        }
        ok = (t / "rebuilt.tar").read_bytes() == new.read_bytes()
        size = {p: (t / p).stat().st_size for p in ("old.tar", "new.tar", "old.sig", "new.delta")}
        print("rdiff round trip on the sample tree (sample/tree packed as a tar)")
        print(f"  basis     old.tar    {size['old.tar']:>9,} bytes  sha256 {digest(old)}")
        print(f"  new       new.tar    {size['new.tar']:>9,} bytes  sha256 {digest(new)}")
        print(f"  signature old.sig    {size['old.sig']:>9,} bytes  {times['signature']:.3f} s")
        print(
            f"  delta     new.delta  {size['new.delta']:>9,} bytes  {times['delta']:.3f} s"
            f"  ({100 * size['new.delta'] / size['new.tar']:.1f}% of the new file crosses the wire)"
        )
        print(f"  patch     rebuilt.tar            {times['patch']:.3f} s  identical to new: {ok}")
        reference = shutil.which("rdiff", path="/usr/bin")
        if reference:
            subprocess.run([reference, "signature", old, t / "ref.sig"], check=True)
            subprocess.run([reference, "patch", old, t / "new.delta", t / "ref.tar"], check=True)
            same_sig = (t / "ref.sig").read_bytes() == (t / "old.sig").read_bytes()
            same_out = (t / "ref.tar").read_bytes() == new.read_bytes()
            print(
                f"  Debian rdiff: same signature bytes: {same_sig}; applies our delta: {same_out}"
            )
            ok = ok and same_sig and same_out
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
