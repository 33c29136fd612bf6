"""The main job on the sample tree: backups with rdb-mirror, and an rdiff round trip.

First, rdb-mirror backs up a copy of sample/tree twice (session times faked with
--current-time), with an edited chapter, a new file and a deleted one in between; the demo
lists the sessions (rdb-restore list), shows what changed (rdb-restore list changed), and
restores the first session with rdb-restore, and with rdiff-backup 2.2.7 when it is installed
($RDB_RDIFF_BACKUP, else .venv-rdiff-backup), to prove it comes back bit for bit.

Then it packs sample/tree into a tar (the basis), makes a "next version" of it with an
edited chapter and a new file, then runs the installed `rdiff` command: signature of the old,
delta against the new, patch of the old. Checks the result and, when Debian's rdiff is there,
that both tools agree byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import os
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


def rdiff_backup_tool() -> Path | None:
    """rdiff-backup 2.2.7: $RDB_RDIFF_BACKUP (as the tests), else the nox venv's."""
    path = Path(os.environ.get("RDB_RDIFF_BACKUP") or ROOT / ".venv-rdiff-backup/bin/rdiff-backup")
    return path if path.exists() else None


def same_tree(original: Path, restored: Path) -> bool:
    """Every regular file of ``original`` is in ``restored`` with the same bytes."""
    return all(
        (restored / p.relative_to(original)).read_bytes() == p.read_bytes()
        for p in original.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


def backup_demo() -> bool:
    """Two rdb-mirror sessions of the sample tree; list them, show what changed, restore the
    first with rdb-restore (and with rdiff-backup 2.2.7 when it is installed)."""
    mirror, restore = BIN / "rdb-mirror", BIN / "rdb-restore"
    first, second = 1_700_000_000, 1_700_086_400
    with tempfile.TemporaryDirectory(prefix="rdb-demo-backup-") as tmp:
        t = Path(tmp)
        src, repo = t / "tree", t / "backup"
        shutil.copytree(SAMPLE, src, symlinks=True)
        print("rdb-mirror: two backups of sample/tree, a day apart (--current-time)")
        subprocess.run([mirror, "--current-time", str(first), src, repo], check=True)
        chapter = src / "docs" / "chapter2.txt"
        chapter.write_bytes(chapter.read_bytes() + b"\nA paragraph written after the backup.\n")
        (src / "notes").mkdir(exist_ok=True)
        (src / "notes" / "todo.txt").write_bytes(b"water the plants\n")
        (src / "empty.txt").unlink()
        subprocess.run([mirror, "--current-time", str(second), src, repo], check=True)
        print(f"$ rdb-restore list {repo.name}")
        subprocess.run([restore, "list", repo], check=True)
        print(f"$ rdb-restore list changed --since {first} {repo.name}")
        subprocess.run([restore, "list", "changed", "--since", str(first), repo], check=True)
        data = repo / "rdiff-backup-data"
        increments = sorted(
            p.relative_to(data).as_posix()
            for p in data.rglob("*")
            if p.is_file() and p.parts[len(data.parts)] == "increments"
        )
        print(f"increments kept for the first session: {', '.join(increments)}")
        ours = t / "restored-by-rdb-restore"
        subprocess.run([restore, "--quiet", "--at", str(first), repo, ours], check=True)
        ok = same_tree(SAMPLE, ours)
        print(f"first session restored by rdb-restore: identical to the original: {ok}")
        tool = rdiff_backup_tool()
        if tool is None:
            print("first session by rdiff-backup 2.2.7: not checked (not installed)")
            return ok
        theirs = t / "restored-by-rdiff-backup"
        subprocess.run(
            [tool, "restore", "--at", str(first), repo, theirs], check=True, capture_output=True
        )
        same = same_tree(SAMPLE, theirs)
        print(f"first session restored by rdiff-backup 2.2.7: identical to the original: {same}")
        return ok and same


def main() -> int:
    # each line out before the commands run after it write theirs (stdout a pipe: CI, | tee)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    backup_ok = backup_demo()
    print()
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
    ok = ok and backup_ok
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
