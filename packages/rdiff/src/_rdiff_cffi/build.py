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
# A whole-file patch with no Python in its loop (rdiff.api.patch_in_memory): the basis is read
# with pread from a descriptor (or from memory), the delta is in memory, the output goes into a
# malloc'd buffer that grows up to a limit. cffi releases the GIL around the call.
WHOLE_PATCH_C = r"""
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    int fd;              /* >= 0: the basis is read from this descriptor */
    const char *data;    /* else: the basis in memory */
    size_t len;
    int ended;           /* set when a COPY reached past its end */
} rdiff_basis_t;

static rs_result rdiff_basis_copy(void *opaque, rs_long_t pos, size_t *len, void **buf)
{
    rdiff_basis_t *basis = (rdiff_basis_t *)opaque;
    if (pos < 0)
        return RS_CORRUPT;
    if (basis->fd >= 0) {
        ssize_t got;
        do {
            got = pread(basis->fd, *buf, *len, (off_t)pos);
        } while (got < 0 && errno == EINTR);
        if (got < 0)
            return RS_IO_ERROR;
        if (got == 0) {
            basis->ended = 1; /* a COPY past the end of the basis */
            return RS_INPUT_ENDED;
        }
        *len = (size_t)got;
        return RS_DONE;
    }
    if ((rs_long_t)basis->len <= pos) {
        basis->ended = 1;
        return RS_INPUT_ENDED;
    }
    if (*len > basis->len - (size_t)pos)
        *len = basis->len - (size_t)pos;
    *buf = (void *)(basis->data + pos);
    return RS_DONE;
}

/* RS_DONE: *out (free() it) holds *out_len bytes. RDIFF_TOO_BIG: the output would pass
   `limit` bytes. RDIFF_BASIS_SHORT: the delta copies past the end of the basis. Else
   librsync's error. */
#define RDIFF_TOO_BIG (-1)
#define RDIFF_BASIS_SHORT (-2)
static int rdiff_patch_whole(int basis_fd, const char *basis_data, size_t basis_len,
                             const char *delta, size_t delta_len, size_t size_hint,
                             size_t limit, char **out, size_t *out_len)
{
    rdiff_basis_t basis = {basis_fd, basis_data, basis_len, 0};
    size_t cap = size_hint < 64 ? 64 : size_hint;
    if (cap > limit)
        cap = limit;
    char *buffer = malloc(cap);
    if (buffer == NULL)
        return RS_MEM_ERROR;
    rs_job_t *job = rs_patch_begin(rdiff_basis_copy, &basis);
    rs_buffers_t bufs;
    bufs.next_in = (char *)delta;
    bufs.avail_in = delta_len;
    bufs.eof_in = 1;
    bufs.next_out = buffer;
    bufs.avail_out = cap;
    int result;
    for (;;) {
        result = rs_job_iter(job, &bufs);
        if (result != RS_BLOCKED)
            break;
        if (bufs.avail_out > 0) { /* blocked with room left: the delta ended early */
            result = RS_INPUT_ENDED;
            break;
        }
        if (cap >= limit) {
            result = RDIFF_TOO_BIG;
            break;
        }
        size_t grown_cap = cap > limit / 2 ? limit : cap * 2;
        char *grown = realloc(buffer, grown_cap);
        if (grown == NULL) {
            result = RS_MEM_ERROR;
            break;
        }
        bufs.next_out = grown + cap;
        bufs.avail_out = grown_cap - cap;
        buffer = grown;
        cap = grown_cap;
    }
    rs_job_free(job);
    if (result != RS_DONE && basis.ended)
        result = RDIFF_BASIS_SHORT;
    if (result != RS_DONE) {
        free(buffer);
        return result;
    }
    *out = buffer;
    *out_len = cap - bufs.avail_out;
    return RS_DONE;
}
"""

ffibuilder.set_source(
    "rdiff._librsync",
    "#include <stdio.h>\n#include <stdint.h>\n#include <librsync.h>\n" + WHOLE_PATCH_C,
    libraries=["rsync"],
    **find_librsync(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
