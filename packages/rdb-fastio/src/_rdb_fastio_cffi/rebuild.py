"""Build-time only: compiles rdb_fastio._rebuild (cffi API mode): files rebuilt from a full
copy and a chain of reverse deltas, many per C call with the GIL released, against librsync
(the patching), zlib (``.gz`` increments) and OpenSSL's libcrypto (the SHA1).

Apart from rdb_fastio._batchio so that what only a rebuild needs (librsync, which loads
OpenMP's runtime) is loaded only when a file is rebuilt: never in a newest-session restore.
See rdb_fastio/rebuild.py for the Python side and the packed layouts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cffi import FFI

MISSING = (
    "rdb-fastio: {what} not found. Install it (Debian/Ubuntu: 'apt-get install {debian}'; "
    "Fedora: 'dnf install {fedora}'), or set CPATH and LIBRARY_PATH."
)
HEADERS = {
    "openssl/evp.h": ("OpenSSL's development files", "libssl-dev", "openssl-devel"),
    "librsync.h": ("librsync's development files", "librsync-dev", "librsync-devel"),
    "zlib.h": ("zlib's development files", "zlib1g-dev", "zlib-devel"),
}

CDEF = """
void rdb_rebuild_quiet(void);
#define RB_SPEC_SIZE ...
#define RB_DELTA_SIZE ...
#define RB_RESULT_SIZE ...
long long rdb_rebuild_packed(const unsigned char *specs, size_t count,
                             const unsigned char *deltas, const char *names, size_t limit,
                             unsigned char *results, size_t *failed);
"""

#: C that rdb_fastio._increment (_rdb_fastio_cffi/increment.py) has too
SHARED = r"""
/* Write all n bytes at p (short writes and EINTR retried); 0, or the errno. */
static int rb_write_out(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void rb_no_trace(rs_loglevel level, char const *msg)
{
    (void)level;
    (void)msg;
}

"""

SOURCE = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <librsync.h>
#include <openssl/evp.h>
#include <zlib.h>
"""
SOURCE += SHARED
SOURCE += r"""
/* Status of one file (rdb_fastio.rebuild.RebuildStatus); nothing is left at the target's name
   unless it is 0. 1-3, 13-15: the repository could not give the file as it should (the
   caller rebuilds it the general way, which says why or, for 15, streams it). */
enum {
    RB_DONE = 0, RB_SOURCE_OPEN = 1, RB_SOURCE_NOT_REGULAR = 2, RB_READ = 3, RB_CREATE = 4,
    RB_WRITE = 5, RB_SIZE = 6, RB_SHA1 = 7, RB_OWNER = 8, RB_MODE = 9, RB_TIMES = 10,
    RB_CLOSE = 11, RB_DIGEST = 12, RB_GZIP = 13, RB_DELTA = 14, RB_TOO_BIG = 15
};

#define RB_SPEC_SIZE 102
#define RB_DELTA_SIZE 9
#define RB_RESULT_SIZE 36

/* one file as packed by rdb_fastio.rebuild.RebuildPlan (native byte order, no padding) */
struct rb_file {
    int32_t base_dir, dst_dir;
    const char *base_name, *name;
    int base_gzip;
    uint32_t first_delta, delta_count;
    uint32_t create_mode;
    int64_t size;
    unsigned char sha1_want[20];
    int check_sha1, set_owner, set_mode, set_times;
    uint32_t uid, gid, mode;
    struct timespec times[2];
    /* out */
    int error;
    int64_t made;
    unsigned char sha1[20];
};

struct rb_bytes {
    char *data;
    size_t len;
};

static const unsigned char *rb_take(void *to, const unsigned char *from, size_t n)
{
    memcpy(to, from, n);
    return from + n;
}

static void rb_unpack(const unsigned char *p, const char *names, struct rb_file *f)
{
    int32_t dirs[2];
    uint32_t u32[5];
    unsigned char gzip, flags;
    uint32_t ids[3];
    int64_t times[4];
    memset(f, 0, sizeof *f);
    p = rb_take(&dirs[0], p, 4);
    p = rb_take(&u32[0], p, 4);
    p = rb_take(&gzip, p, 1);
    p = rb_take(&dirs[1], p, 4);
    p = rb_take(&u32[1], p, 4);
    p = rb_take(&u32[2], p, 12);  /* first delta, delta count, create mode */
    p = rb_take(&f->size, p, 8);
    p = rb_take(f->sha1_want, p, 20);
    p = rb_take(&flags, p, 1);
    p = rb_take(ids, p, sizeof ids);
    rb_take(times, p, sizeof times);
    f->base_dir = dirs[0];
    f->dst_dir = dirs[1];
    f->base_name = names + u32[0];
    f->name = names + u32[1];
    f->base_gzip = gzip != 0;
    f->first_delta = u32[2];
    f->delta_count = u32[3];
    f->create_mode = u32[4];
    f->check_sha1 = (flags & 1) != 0;
    f->set_owner = (flags & 2) != 0;
    f->set_mode = (flags & 4) != 0;
    f->set_times = (flags & 8) != 0;
    f->uid = ids[0];
    f->gid = ids[1];
    f->mode = ids[2];
    f->times[0].tv_sec = (time_t)times[0];
    f->times[0].tv_nsec = (long)times[1];
    f->times[1].tv_sec = (time_t)times[2];
    f->times[1].tv_nsec = (long)times[3];
}

/* Open a repository file as rdb_restore.repo.open_file_at does: what is at the name first
   (a regular file only: a device node planted there could act on open), no symlink followed,
   then the same inode. */
static int rb_open(int dir, const char *name, int *fd, off_t *size, int *error)
{
    struct stat seen, st;
    int rc;
    do
        rc = fstatat(dir, name, &seen, AT_SYMLINK_NOFOLLOW);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        *error = errno;
        return RB_SOURCE_OPEN;
    }
    if (S_ISLNK(seen.st_mode)) {
        *error = ELOOP;
        return RB_SOURCE_OPEN;
    }
    if (!S_ISREG(seen.st_mode))
        return RB_SOURCE_NOT_REGULAR;
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    do
        *fd = openat(dir, name, flags);
    while (*fd < 0 && errno == EINTR);
    if (*fd < 0) {
        *error = errno;
        return RB_SOURCE_OPEN;
    }
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_ino != seen.st_ino
        || st.st_dev != seen.st_dev) {
        close(*fd);
        return RB_SOURCE_NOT_REGULAR;
    }
    *size = st.st_size;
    return RB_DONE;
}

/* Up to limit + 1 bytes of fd from its start into a new buffer (*out, free() it). */
static int rb_read_all(int fd, size_t hint, size_t limit, struct rb_bytes *out, int *error)
{
    size_t cap = hint + 1 < limit + 1 ? hint + 1 : limit + 1, len = 0;
    char *data = malloc(cap ? cap : 1);
    if (data == NULL) {
        *error = ENOMEM;
        return RB_DIGEST;
    }
    for (;;) {
        if (len == cap) {
            if (cap > limit)
                break;
            size_t grown_cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *grown = realloc(data, grown_cap);
            if (grown == NULL) {
                free(data);
                *error = ENOMEM;
                return RB_DIGEST;
            }
            data = grown;
            cap = grown_cap;
        }
        ssize_t n = pread(fd, data + len, cap - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *error = errno;
            free(data);
            return RB_READ;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > limit) {
        free(data);
        return RB_TOO_BIG;
    }
    out->data = data;
    out->len = len;
    return RB_DONE;
}

/* The uncompressed bytes of a whole gzip file, as rdb_restore.content._read_gzip takes them:
   members one after another, zero bytes between them skipped, input ending inside a member an
   error; RB_TOO_BIG past limit bytes. */
static int rb_gunzip(const struct rb_bytes *in, size_t limit, struct rb_bytes *out, int *error)
{
    size_t cap = in->len * 4 + 64, len = 0;
    if (cap > limit + 1)
        cap = limit + 1;
    char *data = malloc(cap);
    if (data == NULL) {
        *error = ENOMEM;
        return RB_DIGEST;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    int started = 0, status = RB_DONE;
    const unsigned char *next = (const unsigned char *)in->data;
    size_t left = in->len;
    for (;;) {
        while (left > 0 && *next == 0) {  /* padding between members */
            next++;
            left--;
        }
        if (left == 0)
            break;
        int rc = started ? inflateReset(&z) : inflateInit2(&z, 16 + MAX_WBITS);
        if (rc != Z_OK) {
            *error = ENOMEM;
            status = RB_DIGEST;
            goto done;
        }
        started = 1;
        z.next_in = (unsigned char *)next;
        z.avail_in = (uInt)(left > UINT32_MAX ? UINT32_MAX : left);
        for (;;) {
            if (len == cap) {
                if (cap > limit) {
                    status = RB_TOO_BIG;
                    goto done;
                }
                size_t grown_cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
                char *grown = realloc(data, grown_cap);
                if (grown == NULL) {
                    *error = ENOMEM;
                    status = RB_DIGEST;
                    goto done;
                }
                data = grown;
                cap = grown_cap;
            }
            size_t room = cap - len;
            z.next_out = (unsigned char *)data + len;
            z.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
            uInt before = z.avail_out;
            rc = inflate(&z, Z_NO_FLUSH);
            len += before - z.avail_out;
            if (rc == Z_STREAM_END)
                break;
            if (rc == Z_BUF_ERROR && z.avail_out > 0) {  /* the input ends inside it */
                status = RB_GZIP;
                goto done;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                status = RB_GZIP;
                goto done;
            }
            if (z.avail_in == 0 && z.avail_out > 0) {
                status = RB_GZIP;
                goto done;
            }
        }
        left -= (size_t)(z.next_in - next);
        next = z.next_in;
    }
    if (len > limit)
        status = RB_TOO_BIG;
done:
    if (started)
        inflateEnd(&z);
    if (status != RB_DONE) {
        free(data);
        return status;
    }
    out->data = data;
    out->len = len;
    return RB_DONE;
}

/* A repository file's whole (uncompressed) bytes. */
static int rb_load(int dir, const char *name, int gzip, size_t limit, struct rb_bytes *out,
                   int *error)
{
    int fd;
    off_t size;
    int status = rb_open(dir, name, &fd, &size, error);
    if (status != RB_DONE)
        return status;
    if (!gzip) {
        status = (size_t)size > limit ? RB_TOO_BIG : rb_read_all(fd, (size_t)size, limit, out,
                                                                 error);
        close(fd);
        return status;
    }
    struct rb_bytes packed;
    /* the compressed bytes are at most limit too: gzip never makes data much bigger */
    status = rb_read_all(fd, (size_t)size, limit, &packed, error);
    close(fd);
    if (status != RB_DONE)
        return status;
    status = rb_gunzip(&packed, limit, out, error);
    free(packed.data);
    return status;
}

typedef struct {
    int fd;              /* >= 0: the basis is read from this descriptor */
    const char *data;    /* else: the basis in memory */
    size_t len;
    int error;           /* the errno of a failed read */
} rb_basis;

static rs_result rb_basis_copy(void *opaque, rs_long_t pos, size_t *len, void **buf)
{
    rb_basis *basis = (rb_basis *)opaque;
    if (pos < 0)
        return RS_CORRUPT;
    if (basis->fd >= 0) {
        ssize_t got;
        do
            got = pread(basis->fd, *buf, *len, (off_t)pos);
        while (got < 0 && errno == EINTR);
        if (got < 0) {
            basis->error = errno;
            return RS_IO_ERROR;
        }
        if (got == 0)
            return RS_INPUT_ENDED;  /* a COPY past the end of the basis */
        *len = (size_t)got;
        return RS_DONE;
    }
    if ((rs_long_t)basis->len <= pos)
        return RS_INPUT_ENDED;
    if (*len > basis->len - (size_t)pos)
        *len = basis->len - (size_t)pos;
    *buf = (void *)(basis->data + pos);
    return RS_DONE;
}

/* delta applied to basis into a new buffer of at most limit bytes (first hint bytes). */
static int rb_patch(rb_basis *basis, const struct rb_bytes *delta, size_t hint, size_t limit,
                    struct rb_bytes *out, int *error)
{
    size_t cap = hint < 64 ? 64 : hint;
    if (cap > limit)
        cap = limit;
    char *buffer = malloc(cap ? cap : 1);
    if (buffer == NULL) {
        *error = ENOMEM;
        return RB_DIGEST;
    }
    rs_job_t *job = rs_patch_begin(rb_basis_copy, basis);
    rs_buffers_t bufs;
    bufs.next_in = delta->data;
    bufs.avail_in = delta->len;
    bufs.eof_in = 1;
    bufs.next_out = buffer;
    bufs.avail_out = cap;
    int status = RB_DONE;
    for (;;) {
        rs_result result = rs_job_iter(job, &bufs);
        if (result == RS_DONE)
            break;
        if (result != RS_BLOCKED || bufs.avail_out > 0) {
            /* a bad delta, one that ends early or copies past its basis */
            status = basis->error != 0 ? RB_READ : RB_DELTA;
            *error = basis->error;
            break;
        }
        if (cap >= limit) {
            status = RB_TOO_BIG;
            break;
        }
        size_t grown_cap = cap > limit / 2 ? limit : cap * 2;
        char *grown = realloc(buffer, grown_cap);
        if (grown == NULL) {
            *error = ENOMEM;
            status = RB_DIGEST;
            break;
        }
        bufs.next_out = grown + cap;
        bufs.avail_out = grown_cap - cap;
        buffer = grown;
        cap = grown_cap;
    }
    rs_job_free(job);
    if (status != RB_DONE) {
        free(buffer);
        return status;
    }
    out->data = buffer;
    out->len = cap - bufs.avail_out;
    return RB_DONE;
}

/* The file's bytes at the session: the basis with each delta applied, newest first. */
static int rb_rebuild(struct rb_file *f, const unsigned char *deltas, const char *names,
                      size_t limit, struct rb_bytes *out)
{
    struct rb_bytes version = {NULL, 0};
    int base_fd = -1, status;
    off_t base_size = 0;
    if (f->base_gzip || f->delta_count == 0)
        status = rb_load(f->base_dir, f->base_name, f->base_gzip, limit, &version, &f->error);
    else  /* a plain basis is read where the first delta copies from it */
        status = rb_open(f->base_dir, f->base_name, &base_fd, &base_size, &f->error);
    for (uint32_t i = 0; i < f->delta_count && status == RB_DONE; i++) {
        const unsigned char *d = deltas + (size_t)(f->first_delta + i) * RB_DELTA_SIZE;
        int32_t dir;
        uint32_t at;
        unsigned char gzip;
        memcpy(&dir, d, 4);
        memcpy(&at, d + 4, 4);
        gzip = d[8];
        struct rb_bytes delta, next;
        status = rb_load(dir, names + at, gzip, limit, &delta, &f->error);
        if (status != RB_DONE)
            break;
        rb_basis basis = {base_fd, version.data, version.len, 0};
        size_t hint = base_fd >= 0 ? (size_t)base_size : version.len;
        if (i + 1 == f->delta_count && f->size >= 0)
            hint = (size_t)f->size + 1;
        status = rb_patch(&basis, &delta, hint, limit, &next, &f->error);
        free(delta.data);
        if (base_fd >= 0) {
            close(base_fd);
            base_fd = -1;
        }
        free(version.data);
        version.data = NULL;
        if (status == RB_DONE)
            version = next;
    }
    if (base_fd >= 0)
        close(base_fd);
    if (status != RB_DONE) {
        free(version.data);
        return status;
    }
    *out = version;
    return RB_DONE;
}

/* Rebuild, check and write one file (a negative dst_dir: rebuild and check it only, as a
   verify does); its status. */
static int rb_one(struct rb_file *f, const unsigned char *deltas, const char *names,
                  size_t limit)
{
    struct rb_bytes data;
    int status = rb_rebuild(f, deltas, names, limit, &data);
    if (status != RB_DONE)
        return status;
    unsigned int length = 0;
    f->made = (int64_t)data.len;
    if (EVP_Digest(data.data, data.len, f->sha1, &length, EVP_sha1(), NULL) != 1) {
        free(data.data);
        return RB_DIGEST;
    }
    if (f->size >= 0 && f->made != f->size) {
        free(data.data);
        return RB_SIZE;
    }
    if (f->check_sha1 && memcmp(f->sha1, f->sha1_want, 20) != 0) {
        free(data.data);
        return RB_SHA1;
    }
    if (f->dst_dir < 0) {
        free(data.data);
        return RB_DONE;
    }
    int out = openat(f->dst_dir, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     f->create_mode);
    if (out < 0) {
        f->error = errno;
        free(data.data);
        return RB_CREATE;
    }
    f->error = rb_write_out(out, data.data, data.len);
    free(data.data);
    if (f->error != 0)
        status = RB_WRITE;
    else if (f->set_owner && fchown(out, f->uid, f->gid) != 0)
        status = RB_OWNER;
    else if (f->set_mode && fchmod(out, f->mode) != 0)
        status = RB_MODE;
    else if (f->set_times && futimens(out, f->times) != 0)
        status = RB_TIMES;
    if (status != RB_DONE && f->error == 0)
        f->error = errno;
    if (close(out) != 0 && status == RB_DONE) {
        f->error = errno;
        status = RB_CLOSE;
    }
    if (status != RB_DONE)
        unlinkat(f->dst_dir, f->name, 0);
    return status;
}

/* librsync's messages go to stderr unless a trace function is set (process-wide): a damaged
   delta is reported by its status, so none is printed */
void rdb_rebuild_quiet(void)
{
    rs_trace_to(rb_no_trace);
}

/* Rebuild every file of specs (RB_SPEC_SIZE bytes each; their deltas RB_DELTA_SIZE bytes each
   in deltas; names NUL-terminated at offsets into names), each version held in memory up to
   limit bytes; each result RB_RESULT_SIZE bytes (status, errno, size, SHA1). Returns the bytes
   written, and in *failed how many files were not. */
long long rdb_rebuild_packed(const unsigned char *specs, size_t count,
                             const unsigned char *deltas, const char *names, size_t limit,
                             unsigned char *results, size_t *failed)
{
    long long total = 0;
    *failed = 0;
    for (size_t i = 0; i < count; i++) {
        struct rb_file f;
        rb_unpack(specs + i * RB_SPEC_SIZE, names, &f);
        int32_t status = rb_one(&f, deltas, names, limit);
        if (status == RB_DONE)
            total += f.made;
        else
            (*failed)++;
        int32_t error = f.error;
        unsigned char *out = results + i * RB_RESULT_SIZE;
        memcpy(out, &status, 4);
        memcpy(out + 4, &error, 4);
        memcpy(out + 8, &f.made, 8);
        memcpy(out + 16, f.sha1, 20);
    }
    return total;
}
"""


def _pkg_config_dirs() -> tuple[list[str], list[str]]:
    """Include and library directories of libcrypto, librsync and zlib as pkg-config gives them
    (Debian's librsync-dev has no .pc file: the compiler's defaults then do)."""
    include: list[str] = []
    library: list[str] = []
    for package in ("libcrypto", "librsync", "zlib"):
        try:
            found = subprocess.run(
                ["pkg-config", "--cflags-only-I", "--libs-only-L", package],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            continue
        include += [flag[2:] for flag in found if flag.startswith("-I")]
        library += [flag[2:] for flag in found if flag.startswith("-L")]
    return include, library


def _check_headers(include_dirs: list[str]) -> None:
    import os

    places = [
        *include_dirs,
        *os.environ.get("CPATH", "").split(os.pathsep),
        *os.environ.get("C_INCLUDE_PATH", "").split(os.pathsep),
        "/usr/include",
        "/usr/local/include",
    ]
    for header, (what, debian, fedora) in HEADERS.items():
        if not any(Path(d, header).exists() for d in places if d):
            raise SystemExit(MISSING.format(what=what, debian=debian, fedora=fedora))


INCLUDE_DIRS, LIBRARY_DIRS = _pkg_config_dirs()
_check_headers(INCLUDE_DIRS)
ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "rdb_fastio._rebuild",
    SOURCE,
    libraries=["rsync", "z", "crypto"],
    include_dirs=INCLUDE_DIRS,
    library_dirs=LIBRARY_DIRS,
    py_limited_api=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
