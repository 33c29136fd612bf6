"""``hugeino.c``: an LD_PRELOAD shim that sets bit 63 of every inode number the process sees,
whichever stat call (as on NFS with 64-bit file ids, or FUSE file systems that hash them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

#: the bit the shim sets
HIGH = 1 << 63


def build_shim(directory: Path) -> str:
    """The shim compiled into ``directory`` (the system's C compiler); its path."""
    library = directory / "hugeino.so"
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    source = Path(__file__).with_name("hugeino.c")
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
        check=True,
    )
    return str(library)


def run_with_shim(shim: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python ARGV`` with the shim loaded (text output)."""
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "LD_PRELOAD": shim},
        timeout=120,
        check=False,
    )
