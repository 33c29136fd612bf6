"""Build-time only: compiles rdiff._librsync (cffi API mode) against the system librsync.

librsync is found through, in order:
  1. RDIFF_LIBRSYNC_PREFIX (a prefix holding include/librsync.h and lib/librsync.so),
  2. pkg-config (``librsync``; Debian's librsync-dev 2.3.2 ships no .pc file),
  3. plain ``-lrsync`` with the system headers.
If none has the header, the build stops with one message naming the package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent
HEADER_DIRS = ["/usr/include", "/usr/local/include"]
MISSING = (
    "rdiff: librsync 2.3 development files not found. Install them "
    "(Debian/Ubuntu: 'apt-get install librsync-dev'; Fedora: 'dnf install librsync-devel'; "
    "macOS: 'brew install librsync') or set RDIFF_LIBRSYNC_PREFIX to librsync's install prefix."
)


def _pkg_config() -> dict[str, list[str]] | None:
    if not shutil.which("pkg-config"):
        return None
    try:
        cflags = subprocess.run(
            ["pkg-config", "--cflags-only-I", "librsync"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        libs = subprocess.run(
            ["pkg-config", "--libs", "librsync"], capture_output=True, text=True, check=True
        ).stdout.split()
    except subprocess.CalledProcessError:
        return None
    return {
        "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
        "library_dirs": [f[2:] for f in libs if f.startswith("-L")],
    }


def find_librsync() -> dict[str, list[str]]:
    """Compiler arguments for librsync; raises SystemExit with an install hint if absent."""
    prefix = os.environ.get("RDIFF_LIBRSYNC_PREFIX")
    if prefix:
        found = {
            "include_dirs": [str(Path(prefix) / "include")],
            "library_dirs": [str(Path(prefix) / "lib")],
            "runtime_library_dirs": [str(Path(prefix) / "lib")],
        }
    else:
        found = _pkg_config() or {"include_dirs": [], "library_dirs": []}
    dirs = found["include_dirs"] + HEADER_DIRS
    if not any((Path(d) / "librsync.h").exists() for d in dirs):
        raise SystemExit(MISSING)
    return found


ffibuilder = FFI()
ffibuilder.cdef((HERE / "librsync.cdef.h").read_text())
ffibuilder.set_source(
    "rdiff._librsync",
    "#include <stdio.h>\n#include <stdint.h>\n#include <librsync.h>\n",
    libraries=["rsync"],
    **find_librsync(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
