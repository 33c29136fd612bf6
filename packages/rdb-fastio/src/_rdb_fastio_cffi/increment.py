"""Build-time only: compiles rdb_fastio._increment (cffi API mode): the reverse increment of one
changed regular file (a librsync delta from the new version back to the old one, gzipped or
not) written in one C call with the GIL released, against librsync and zlib.

Its own module, apart from rdb_fastio._rebuild (restore's), so that each program loads only
what it calls. See rdb_fastio/increment.py for the Python side.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cffi import FFI

sys.path.insert(0, str(Path(__file__).parent))
from rebuild import INCLUDE_DIRS, LIBRARY_DIRS, SHARED  # (which checks the headers)

STRUCTS = """
/* One increment to write; see rdb_fastio/increment.py (DeltaJob) for the meaning. */
struct rdb_delta_job {
    const char *old;          /* the old version (the mirror copy): the delta's target */
    const char *new;          /* the new version: the signature's basis */
    const char *target;       /* the increment, created here (must not exist) */
    long long old_size;       /* the sizes seen by lstat: anything else is status 6 */
    long long new_size;
    unsigned int block_len;   /* the signature's parameters */
    unsigned int strong_len;
    unsigned int magic;
    int gzip;                 /* 1: gzip the delta (header as Python's gzip.GzipFile) */
    int level;
    const char *gzip_name;    /* the header's FNAME (no NUL inside), or NULL for none */
    unsigned int gzip_mtime;
    int set_owner;            /* fchown to uid/gid (failures ignored) */
    unsigned int uid;
    unsigned int gid;
    unsigned int mode;        /* fchmod to this, after the owner */
    long long atime_sec;
    long atime_nsec;
    long long mtime_sec;
    long mtime_nsec;
    int fsync;                /* fsync the increment before closing it */
    int snapshot;             /* 1: the old version whole (a .snapshot[.gz]), no delta: new,
                                 new_size and the signature's parameters are not used */
    int status;               /* out: 0 written; else the step that failed (nothing left) */
    int error;                /* out: its errno, or 0 */
    long long size;           /* out: the increment's bytes */
    long long read;           /* out: the bytes of the old version read */
};

/* One file's new access and modification times (rdb_fastio.increment.set_times). */
struct rdb_times {
    const char *path;         /* no symlink followed */
    long long atime_sec;
    long atime_nsec;
    long long mtime_sec;
    long mtime_nsec;
    int error;                /* out: the errno of utimensat, or 0 */
};
"""

CDEF = STRUCTS + (
    "void rdb_set_times(struct rdb_times *files, size_t count);\n"
    "void rdb_delta_quiet(void);\n"
    "void rdb_write_delta(struct rdb_delta_job *job);\n"
    "void rdb_write_deltas(struct rdb_delta_job **jobs, size_t count);\n"
)

SOURCE = (
    r"""
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <librsync.h>
#include <zlib.h>
"""
    + STRUCTS
    + SHARED
    + r"""
/* Status of one increment (rdb_fastio.increment.DeltaStatus). */
enum {
    DJ_DONE = 0, DJ_CREATE = 1, DJ_OPEN_NEW = 2, DJ_READ_NEW = 3, DJ_OPEN_OLD = 4,
    DJ_READ_OLD = 5, DJ_CHANGED = 6, DJ_RSYNC = 7, DJ_WRITE = 8, DJ_MODE = 9, DJ_TIMES = 10,
    DJ_FSYNC = 11, DJ_CLOSE = 12, DJ_MEMORY = 13
};

/* What the Python path reads at a time (rdb_increment.writer.CHUNK): the delta's literals are
   cut where its input is, when the signature is empty, so the old file is fed in these */
#define DJ_CHUNK (1024 * 1024)
/* librsync's output room per call (the Python path's out_size at most) */
#define DJ_OUT (256 * 1024)

struct dj_bytes {
    unsigned char *data;
    size_t len, cap;
};

static int dj_reserve(struct dj_bytes *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more)
        cap *= 2;
    unsigned char *grown = realloc(b->data, cap);
    if (grown == NULL)
        return ENOMEM;
    b->data = grown;
    b->cap = cap;
    return 0;
}

static int dj_append(struct dj_bytes *b, const void *p, size_t n)
{
    int error = dj_reserve(b, n);
    if (error == 0 && n > 0) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
    return error;
}

/* A buffer for a file of size bytes (or what librsync makes of them), as the Python path's
   (rdb_increment.writer._buffer_for): the whole file up to most, at least 4 KiB */
static size_t dj_room(long long size, size_t most)
{
    size_t room = (size_t)size + 1 < most ? (size_t)size + 1 : most;
    return room < 4096 ? 4096 : room;
}

/* n bytes into buffer, short only at the end of the file; the count, or -1 (errno set) */
static ssize_t dj_read_full(int fd, unsigned char *buffer, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buffer + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* A version to read: no symlink followed, a regular file of the size seen, else DJ_CHANGED
   (the Python path then reads what is there and says what is wrong) */
static int dj_open(const char *path, long long size, int fail, int *fd, int *error)
{
    *fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (*fd < 0) {
        *error = errno;
        return fail;
    }
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode) || (long long)st.st_size != size) {
        close(*fd);
        *fd = -1;
        return DJ_CHANGED;
    }
    return DJ_DONE;
}

/* One rs_job_iter with room bytes free at the end of out for its output: its result (or
   RS_MEM_ERROR), and in *produced the bytes it made */
static rs_result dj_step(rs_job_t *job, rs_buffers_t *bufs, struct dj_bytes *out, size_t room,
                         size_t *produced)
{
    *produced = 0;
    if (dj_reserve(out, room) != 0)
        return RS_MEM_ERROR;
    bufs->next_out = (char *)out->data + out->len;
    bufs->avail_out = room;
    rs_result result = rs_job_iter(job, bufs);
    *produced = room - bufs->avail_out;
    out->len += *produced;
    return result;
}

/* Run job over the bytes of fd (read piece bytes at a time, as the Python path's reads cut
   them; each piece offered until librsync has consumed it, as rdiff's Job.run does), its
   output appended to out; the input must be exactly size bytes. */
static int dj_run(rs_job_t *job, int fd, long long size, size_t piece, size_t out_room,
                  int read_fail, struct dj_bytes *out, long long *read_total, int *error)
{
    unsigned char *buffer = malloc(piece);
    if (buffer == NULL)
        return DJ_MEMORY;
    rs_buffers_t bufs;
    memset(&bufs, 0, sizeof bufs);
    rs_result result = RS_BLOCKED;
    long long total = 0;
    size_t produced;
    for (int more = 1; more && result == RS_BLOCKED;) {
        ssize_t got = dj_read_full(fd, buffer, piece);
        if (got < 0) {
            *error = errno;
            free(buffer);
            return read_fail;
        }
        total += got;
        more = (size_t)got == piece;
        bufs.next_in = (char *)buffer;
        bufs.avail_in = (size_t)got;
        while (got > 0) {
            result = dj_step(job, &bufs, out, out_room, &produced);
            if (result != RS_BLOCKED || (bufs.avail_in == 0 && produced < out_room))
                break;
        }
    }
    free(buffer);
    bufs.next_in = NULL;
    bufs.avail_in = 0;
    bufs.eof_in = 1;
    for (int idle = 0; result == RS_BLOCKED && idle <= 3; idle = produced ? 0 : idle + 1)
        result = dj_step(job, &bufs, out, out_room, &produced);
    if (result != RS_DONE)
        return result == RS_MEM_ERROR ? DJ_MEMORY : DJ_RSYNC;
    *read_total = total;
    return total == size ? DJ_DONE : DJ_CHANGED;
}

/* The signature of the new version, loaded and hashed for the delta. */
static int dj_signature(struct rdb_delta_job *j, rs_signature_t **sig)
{
    int fd, status = dj_open(j->new, j->new_size, DJ_OPEN_NEW, &fd, &j->error);
    if (status != DJ_DONE)
        return status;
    rs_job_t *job = rs_sig_begin(j->block_len, j->strong_len, (rs_magic_number)j->magic);
    if (job == NULL) {
        close(fd);
        return DJ_MEMORY;
    }
    struct dj_bytes raw = {NULL, 0, 0};
    long long read = 0;
    status = dj_run(job, fd, j->new_size, dj_room(j->new_size, DJ_CHUNK),
                    dj_room(j->new_size, DJ_OUT), DJ_READ_NEW, &raw, &read, &j->error);
    rs_job_free(job);
    close(fd);
    if (status == DJ_DONE) {
        job = rs_loadsig_begin(sig);
        rs_buffers_t bufs;
        memset(&bufs, 0, sizeof bufs);
        bufs.next_in = (char *)raw.data;
        bufs.avail_in = raw.len;
        bufs.eof_in = 1;
        char none[1];
        bufs.next_out = none;
        bufs.avail_out = 0;
        rs_result result = RS_MEM_ERROR;
        for (int round = 0; job != NULL && round < 8; round++)
            if ((result = rs_job_iter(job, &bufs)) != RS_BLOCKED)
                break;
        if (job != NULL)
            rs_job_free(job);
        if (result != RS_DONE || rs_build_hash_table(*sig) != RS_DONE) {
            if (*sig != NULL)
                rs_free_sumset(*sig);
            *sig = NULL;
            status = DJ_RSYNC;
        }
    }
    free(raw.data);
    return status;
}

static void dj_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* raw as Python's gzip.GzipFile writes it (header, raw deflate, CRC32, size) into out */
static int dj_gzip(const struct rdb_delta_job *j, const struct dj_bytes *raw,
                   struct dj_bytes *out)
{
    unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
    size_t name_len = j->gzip_name != NULL ? strlen(j->gzip_name) : 0;
    header[3] = name_len ? 8 : 0;  /* FNAME */
    dj_put32(header + 4, j->gzip_mtime);
    header[8] = j->level == 9 ? 2 : j->level == 1 ? 4 : 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, j->level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return DJ_MEMORY;
    int status = DJ_DONE;
    size_t bound = deflateBound(&z, raw->len);
    if (dj_append(out, header, sizeof header) != 0
        || (name_len && dj_append(out, j->gzip_name, name_len + 1) != 0)
        || dj_reserve(out, bound + 8) != 0) {
        status = DJ_MEMORY;
        goto done;
    }
    z.next_in = raw->data;
    z.avail_in = (uInt)raw->len;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt)(out->cap - out->len);
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        status = DJ_MEMORY;
        goto done;
    }
    out->len = out->cap - z.avail_out;
    unsigned char trailer[8];
    dj_put32(trailer, (uint32_t)crc32(0L, raw->data, (uInt)raw->len));
    dj_put32(trailer + 4, (uint32_t)raw->len);
    dj_append(out, trailer, sizeof trailer);  /* room reserved above */
done:
    deflateEnd(&z);
    return status;
}

/* The delta from the new version to the old one, gzipped if asked, in *out. */
static int dj_make(struct rdb_delta_job *j, struct dj_bytes *out)
{
    rs_signature_t *sig = NULL;
    int status = dj_signature(j, &sig);
    if (status != DJ_DONE)
        return status;
    int fd;
    status = dj_open(j->old, j->old_size, DJ_OPEN_OLD, &fd, &j->error);
    if (status == DJ_DONE) {
        rs_job_t *job = rs_delta_begin(sig);
        struct dj_bytes raw = {NULL, 0, 0};
        /* the old file in pieces of exactly what the Python path's reads return */
        size_t piece = (size_t)j->old_size + 1 < DJ_CHUNK ? (size_t)j->old_size + 1 : DJ_CHUNK;
        if (job == NULL)
            status = DJ_MEMORY;
        else
            status = dj_run(job, fd, j->old_size, piece, dj_room(j->old_size, DJ_OUT),
                            DJ_READ_OLD, j->gzip ? &raw : out, &j->read, &j->error);
        if (job != NULL)
            rs_job_free(job);
        close(fd);
        if (status == DJ_DONE && j->gzip)
            status = dj_gzip(j, &raw, out);
        free(raw.data);
    }
    rs_free_sumset(sig);
    return status;
}

/* The old version whole, gzipped if asked, in *out (a snapshot increment). */
static int dj_snapshot(struct rdb_delta_job *j, struct dj_bytes *out)
{
    int fd;
    int status = dj_open(j->old, j->old_size, DJ_OPEN_OLD, &fd, &j->error);
    if (status != DJ_DONE)
        return status;
    struct dj_bytes raw = {NULL, 0, 0};
    struct dj_bytes *into = j->gzip ? &raw : out;
    size_t room = (size_t)j->old_size + 1;  /* one more: a file that grew is seen */
    if (dj_reserve(into, room) != 0) {
        close(fd);
        return DJ_MEMORY;
    }
    ssize_t got = dj_read_full(fd, into->data + into->len, room);
    if (got < 0) {
        j->error = errno;
        status = DJ_READ_OLD;
    } else {
        into->len += (size_t)got;
        j->read = (long long)got;
        if ((long long)got != j->old_size)
            status = DJ_CHANGED;
        else if (j->gzip)
            status = dj_gzip(j, &raw, out);
    }
    close(fd);
    free(raw.data);
    return status;
}

/* Write one increment; the target is removed again unless all went well. */
void rdb_write_delta(struct rdb_delta_job *j)
{
    j->status = DJ_DONE;
    j->error = 0;
    j->size = 0;
    j->read = 0;
    int fd = open(j->target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        j->error = errno;
        j->status = DJ_CREATE;
        return;
    }
    struct dj_bytes out = {NULL, 0, 0};
    int status = j->snapshot ? dj_snapshot(j, &out) : dj_make(j, &out);
    if (status == DJ_DONE && (j->error = rb_write_out(fd, (const char *)out.data, out.len)) != 0)
        status = DJ_WRITE;
    free(out.data);
    j->size = (long long)out.len;
    if (status == DJ_DONE) {
        struct timespec times[2];
        times[0].tv_sec = (time_t)j->atime_sec;
        times[0].tv_nsec = j->atime_nsec;
        times[1].tv_sec = (time_t)j->mtime_sec;
        times[1].tv_nsec = j->mtime_nsec;
        if (j->set_owner)
            (void)fchown(fd, j->uid, j->gid);
        if (fchmod(fd, j->mode) != 0)
            status = DJ_MODE;
        else if (futimens(fd, times) != 0)
            status = DJ_TIMES;
        else if (j->fsync && fsync(fd) != 0)
            status = DJ_FSYNC;
        if (status != DJ_DONE)
            j->error = errno;
    }
    if (close(fd) != 0 && status == DJ_DONE) {
        j->error = errno;
        status = DJ_CLOSE;
    }
    if (status != DJ_DONE)
        unlink(j->target);
    j->status = status;
}

/* Many increments, one after the other (see rdb_write_delta). */
void rdb_write_deltas(struct rdb_delta_job **jobs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        rdb_write_delta(jobs[i]);
}

/* Each file's times (a session's attribute-only changes: a release unpacked again changes
   thousands of mtimes), one utimensat each, in one call. */
void rdb_set_times(struct rdb_times *files, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct rdb_times *f = &files[i];
        struct timespec times[2];
        times[0].tv_sec = (time_t)f->atime_sec;
        times[0].tv_nsec = f->atime_nsec;
        times[1].tv_sec = (time_t)f->mtime_sec;
        times[1].tv_nsec = f->mtime_nsec;
        f->error = utimensat(AT_FDCWD, f->path, times, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
    }
}

/* librsync's messages go to stderr unless a trace function is set (process-wide): a failed
   delta is reported by its status (the Python path then says why) */
void rdb_delta_quiet(void)
{
    rs_trace_to(rb_no_trace);
}
"""
)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "rdb_fastio._increment",
    SOURCE,
    libraries=["rsync", "z"],
    include_dirs=INCLUDE_DIRS,
    library_dirs=LIBRARY_DIRS,
    py_limited_api=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
