"""Build-time only: compiles rdb_fastio._batchio (cffi API mode): small files read, written
and copied many at a time, each batch in one C call, against OpenSSL's libcrypto for the SHA1.

cffi releases the GIL around the call, so a pool thread reads, creates or copies files while
the caller's thread goes on with Python. Done from Python one system call at a time, each
call would hand the GIL between the two threads (with two CPUs a cross-CPU wake-up each time,
which cost more than the work); see rdb_fastio/batch_io.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cffi import FFI

MISSING = (
    "rdb-fastio: OpenSSL's development files (openssl/evp.h) not found. Install them "
    "(Debian/Ubuntu: 'apt-get install libssl-dev'; Fedora: 'dnf install openssl-devel'; "
    "elsewhere make 'pkg-config libcrypto' find them, or set CPATH and LIBRARY_PATH)."
)

STRUCTS = """
/* A time as the kernel keeps it: nanoseconds since 1970 overflow 64 bits after 2262-04-11,
   and ext4, XFS and btrfs keep later times (so does a repository's ModTime, in seconds) */
struct rdb_time {
    long long sec;
    long nsec;              /* 0 to 999999999 */
};

struct rdb_stage {
    const char *path;       /* the staged file to create (must not exist) */
    const char *target;     /* renamed to this when all is set */
    const char *data;
    size_t size;
    unsigned int mode;      /* permission bits, set with fchmod after fchown */
    int set_owner;          /* fchown to uid/gid (failures ignored, as os.fchown's were) */
    unsigned int uid;
    unsigned int gid;
    struct rdb_time atime;
    struct rdb_time mtime;
    int error;              /* out: 0, or the errno of the step that failed */
    int step;               /* out: 1 create, 2 write, 3 chmod, 4 times, 5 close, 6 rename */
};

struct rdb_read {
    const char *path;
    char *buffer;           /* room for size + 1 bytes (one more: a file that grew) */
    long long size;         /* the stat key the walk saw: size, mtime, ctime, inode */
    struct rdb_time mtime;
    struct rdb_time ctime;
    unsigned long long ino;
    int noatime;            /* open with O_NOATIME (retried without it on EPERM) */
    unsigned char sha1[20]; /* out: the SHA1 of the size bytes read */
    int status;             /* out: 0 read whole and unchanged; else see batch_io.py */
    int error;              /* out: the errno, for status 1 (open) and 3 (read) */
};

struct rdb_copy {
    const char *source;     /* the file to copy, in src_dir (no symlink followed) */
    const char *name;       /* the file to create, in dst_dir (must not exist) */
    int src_dir;            /* the directories of this file, when the call's are -1 */
    int dst_dir;
    unsigned int create_mode;
    long long size;         /* the size the copy must have, or -1 for any */
    int check_sha1;         /* 1: the copy must have the SHA1 sha1_want */
    unsigned char sha1_want[20];
    int set_owner;          /* fchown to uid/gid */
    unsigned int uid;
    unsigned int gid;
    int set_mode;           /* fchmod to mode, after fchown (which may clear set-ID bits) */
    unsigned int mode;
    int set_times;          /* futimens to atime and mtime */
    struct rdb_time atime;
    struct rdb_time mtime;
    long long copied;       /* out: the bytes read and written */
    unsigned char sha1[20]; /* out: their SHA1 */
    int status;             /* out: 0 done; else see batch_io.py (the file is not left) */
    int error;              /* out: the errno of the step that failed, if any */
};

struct rdb_entry {
    const char *name;       /* into the scan's own buffer */
    unsigned long long ino, dev, nlink, rdev;
    unsigned int mode, uid, gid;
    long long size, blksize, blocks;
    long long atime_ns, mtime_ns, ctime_ns;
    int wide;               /* 1: a time past 64 bits of nanoseconds: see atime, mtime, ctime */
    struct rdb_time atime, mtime, ctime;
    int error;              /* the errno of its lstat, or 0 */
    long long xattr_bytes;  /* llistxattr's size: 0 none, -1 not asked or failed */
};

struct rdb_scan {
    struct rdb_entry *entries;  /* out: count entries, in directory order */
    size_t count;
    char *names;
    int error;              /* out: the errno of opening or reading the directory, or 0 */
    int too_many;           /* out: 1 if it has more than the limit's entries (none given) */
    size_t names_size;      /* out: the bytes of names, one NUL-terminated after the other */
    unsigned char *packed;  /* out: per entry, RDB_PACKED_SIZE bytes (see scan.py) */
    int wide;               /* out: 1 if an entry has a time past 64 bits of nanoseconds */
};

/* What a directory scanner (rdb_ahead_*) has done so far, and its peaks */
struct rdb_ahead_stats {
    unsigned long long scans;        /* directories scanned on its thread */
    unsigned long long ready;        /* taken, their scan done */
    unsigned long long unstarted;    /* asked for before their scan began: the caller lists it */
    unsigned long long unfinished;   /* asked for while being scanned: the caller lists it */
    unsigned long long missing;      /* asked for, not queued (dropped for room, or never) */
    unsigned long long skipped;      /* queued, then passed by the walk without being taken */
    unsigned long long requeued;     /* results dropped for a directory needed sooner */
    unsigned long long dropped;      /* queued, then dropped for one needed sooner (full) */
    unsigned long long explored;     /* queued by the thread (explore) */
    unsigned long long queued;       /* now: directories queued, being scanned or ready */
    unsigned long long held;         /* now: results being made or ready */
    unsigned long long most_held;    /* the most results ever held at once */
    unsigned long long most_entries; /* the most entries ever held in ready results */
    int running;                     /* 1 while its thread runs */
    int idle;                        /* 1 while it waits for work or room */
};

struct rdb_names {
    char *names;            /* out: count NUL-terminated names, one after the other */
    size_t size;            /* out: their bytes, the NULs included */
    size_t count;
    int error;              /* out: the errno of opening or reading the directory, or 0 */
};
"""
CDEF = (
    STRUCTS
    + "void rdb_stage_files(struct rdb_stage *files, size_t count);\n"
    + "void rdb_read_files(struct rdb_read *files, size_t count);\n"
    + "void rdb_copy_files(int src_dir, int dst_dir, struct rdb_copy *files, size_t count);\n"
    + "long long rdb_copy_packed(const unsigned char *specs, size_t count, const char *names,\n"
    + "                          unsigned char *results, size_t *failed);\n"
    + "void rdb_scan_dir(const char *path, int xattrs, size_t limit, struct rdb_scan *out);\n"
    + "void rdb_scan_free(struct rdb_scan *scan);\n"
    + "void rdb_list_names(int dir_fd, struct rdb_names *out);\n"
    + "void rdb_names_free(struct rdb_names *names);\n"
    + "typedef struct rdb_ahead rdb_ahead_t;\n"
    + "rdb_ahead_t *rdb_ahead_new(int xattrs, size_t limit, size_t capacity, size_t results,\n"
    + "                           size_t entries, const char *explore_skip);\n"
    + "size_t rdb_ahead_submit(rdb_ahead_t *ahead, const char *paths, size_t count);\n"
    + "int rdb_ahead_take(rdb_ahead_t *ahead, const char *path, struct rdb_scan *out);\n"
    + "int rdb_ahead_list(rdb_ahead_t *ahead, const char *path, struct rdb_scan *out);\n"
    + "void rdb_ahead_scan_free(rdb_ahead_t *ahead, struct rdb_scan *scan);\n"
    + "void rdb_ahead_stats(rdb_ahead_t *ahead, struct rdb_ahead_stats *out);\n"
    + "void rdb_ahead_free(rdb_ahead_t *ahead);\n"
    + "int rdb_ahead_threads(void);\n"
)

SOURCE = (
    r"""
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
"""
    + STRUCTS
    + r"""
static struct timespec rdb_timespec(struct rdb_time time)
{
    struct timespec t;
    t.tv_sec = (time_t)time.sec;
    t.tv_nsec = time.nsec;
    return t;
}

/* call, again while it fails with EINTR (a signal handler without SA_RESTART, e.g. on a
   network file system); not for creating opens, whose retry could find its own file */
#define RDB_RETRY(call)                                                                    \
    ({                                                                                   \
        long rdb_result_;                                                                \
        do                                                                               \
            rdb_result_ = (long)(call);                                                  \
        while (rdb_result_ == -1 && errno == EINTR);                                     \
        rdb_result_;                                                                     \
    })

/* Write all n bytes at p (short writes and EINTR retried); 0, or the errno. */
static int rdb_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = RDB_RETRY(write(fd, p, n));
        if (w < 0)
            return errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The staged file is removed again on any failure: nothing half-made is left behind. */
static int rdb_stage_one(struct rdb_stage *f)
{
    int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int saved;
    if (fd < 0) {
        f->step = 1;
        return errno;
    }
    if ((errno = rdb_write_all(fd, f->data, f->size)) != 0) {
        f->step = 2;
        goto failed_open;
    }
    if (f->set_owner)
        (void)fchown(fd, f->uid, f->gid);
    if (fchmod(fd, f->mode) != 0) {
        f->step = 3;
        goto failed_open;
    }
    struct timespec times[2];
    times[0] = rdb_timespec(f->atime);
    times[1] = rdb_timespec(f->mtime);
    if (futimens(fd, times) != 0) {
        f->step = 4;
        goto failed_open;
    }
    if (close(fd) != 0) {
        f->step = 5;
        goto failed_closed;
    }
    /* made under its final name (an increment's marker): renaming it onto itself would do
       nothing but take its directory's lock */
    if (strcmp(f->path, f->target) != 0 && rename(f->path, f->target) != 0) {
        f->step = 6;
        goto failed_closed;
    }
    return 0;
failed_open:
    saved = errno;
    close(fd);
    unlink(f->path);
    return saved;
failed_closed:
    saved = errno;
    unlink(f->path);
    return saved;
}

void rdb_stage_files(struct rdb_stage *files, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        files[i].step = 0;
        files[i].error = rdb_stage_one(&files[i]);
    }
}

static int rdb_same_time(const struct timespec *t, struct rdb_time time)
{
    return (long long)t->tv_sec == time.sec && t->tv_nsec == time.nsec;
}

static int rdb_same_key(const struct stat *st, const struct rdb_read *f)
{
    return S_ISREG(st->st_mode) && (long long)st->st_size == f->size
           && rdb_same_time(&st->st_mtim, f->mtime) && rdb_same_time(&st->st_ctim, f->ctime)
           && (unsigned long long)st->st_ino == f->ino;
}

/* status: 0 ok, 1 open failed, 2 not the file the walk saw, 3 read failed,
   4 not size bytes (it grew or shrank), 5 changed while read, 6 SHA1 failed */
static int rdb_read_one(struct rdb_read *f)
{
    /* O_NONBLOCK: a FIFO put at the path since the walk would wait for a writer (maybe
       forever); it is no regular file, so status 2, and nothing is read without it */
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    int fd = RDB_RETRY(open(f->path, flags | (f->noatime ? O_NOATIME : 0)));
    if (fd < 0 && errno == EPERM && f->noatime)
        fd = RDB_RETRY(open(f->path, flags));
    if (fd < 0) {
        f->error = errno;
        return 1;
    }
    struct stat st;
    int status = 0;
    int now;  /* the flags to clear O_NONBLOCK from (and keep O_NOATIME) */
    if (fstat(fd, &st) != 0 || !rdb_same_key(&st, f) || (now = fcntl(fd, F_GETFL)) == -1
        || fcntl(fd, F_SETFL, now & ~O_NONBLOCK) != 0) {
        status = 2;
        goto done;
    }
    size_t room = (size_t)f->size + 1, got = 0;
    while (got < room) {
        ssize_t n = RDB_RETRY(read(fd, f->buffer + got, room - got));
        if (n < 0) {
            f->error = errno;
            status = 3;
            goto done;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)f->size) {
        status = 4;
        goto done;
    }
    if (fstat(fd, &st) != 0 || !rdb_same_key(&st, f)) {
        status = 5;
        goto done;
    }
    if (EVP_Digest(f->buffer, got, f->sha1, NULL, EVP_sha1(), NULL) != 1)
        status = 6;
done:
    close(fd);
    return status;
}

void rdb_read_files(struct rdb_read *files, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        files[i].error = 0;
        files[i].status = rdb_read_one(&files[i]);
    }
}

#define RDB_COPY_ROOM (256 * 1024)

/* status: 0 done, 1 source open failed, 2 source not a regular file, 3 read failed,
   4 create failed, 5 write failed, 6 not the size asked, 7 not the SHA1 asked,
   8 fchown failed, 9 fchmod failed, 10 futimens failed, 11 close failed, 12 SHA1 failed */
static int rdb_copy_one(int src_dir, int dst_dir, struct rdb_copy *f, EVP_MD_CTX *ctx,
                        char *buffer)
{
    /* What is at the name first: opening a device node planted there can act even with
       O_NONBLOCK (a watchdog starts, a tape rewinds), so only a regular file is opened */
    struct stat seen, st;
    if (RDB_RETRY(fstatat(src_dir, f->source, &seen, AT_SYMLINK_NOFOLLOW)) != 0) {
        f->error = errno;
        return 1;
    }
    if (S_ISLNK(seen.st_mode)) {
        f->error = ELOOP;  /* as the open with O_NOFOLLOW says it */
        return 1;
    }
    if (!S_ISREG(seen.st_mode))
        return 2;
    /* O_NONBLOCK, O_NOCTTY: should another file be put there meanwhile, the open neither
       waits for a FIFO's writer nor takes a terminal; O_NOATIME: copying leaves the
       source's inode alone (not allowed unless we own it) */
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    int in = RDB_RETRY(openat(src_dir, f->source, flags | O_NOATIME));
    if (in < 0 && errno == EPERM)
        in = RDB_RETRY(openat(src_dir, f->source, flags));
    if (in < 0) {
        f->error = errno;
        return 1;
    }
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode) || st.st_ino != seen.st_ino
        || st.st_dev != seen.st_dev) {
        close(in);
        return 2;
    }
    int out = openat(dst_dir, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     f->create_mode);
    if (out < 0) {
        f->error = errno;
        close(in);
        return 4;
    }
    int status = 0;
    unsigned int length = 0;
    if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1) {
        status = 12;
        goto failed;
    }
    for (;;) {
        ssize_t n = RDB_RETRY(read(in, buffer, RDB_COPY_ROOM));
        if (n < 0) {
            f->error = errno;
            status = 3;
            goto failed;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, buffer, (size_t)n) != 1) {
            status = 12;
            goto failed;
        }
        f->copied += n;
        if (f->size >= 0 && f->copied > f->size) {
            /* more than the size asked: stop here, so that a damaged copy far bigger than
               recorded never fills the disk (what was read is the size reported) */
            status = 6;
            goto failed;
        }
        if ((f->error = rdb_write_all(out, buffer, (size_t)n)) != 0) {
            status = 5;
            goto failed;
        }
    }
    if (EVP_DigestFinal_ex(ctx, f->sha1, &length) != 1) {
        status = 12;
        goto failed;
    }
    if (f->size >= 0 && f->copied != f->size) {
        status = 6;
        goto failed;
    }
    if (f->check_sha1 && memcmp(f->sha1, f->sha1_want, 20) != 0) {
        status = 7;
        goto failed;
    }
    if (f->set_owner && fchown(out, f->uid, f->gid) != 0) {
        f->error = errno;
        status = 8;
        goto failed;
    }
    if (f->set_mode && fchmod(out, f->mode) != 0) {
        f->error = errno;
        status = 9;
        goto failed;
    }
    if (f->set_times) {
        struct timespec times[2];
        times[0] = rdb_timespec(f->atime);
        times[1] = rdb_timespec(f->mtime);
        if (futimens(out, times) != 0) {
            f->error = errno;
            status = 10;
            goto failed;
        }
    }
    close(in);
    if (close(out) != 0) {
        f->error = errno;
        unlinkat(dst_dir, f->name, 0);
        return 11;
    }
    return 0;
failed:
    close(in);
    close(out);
    unlinkat(dst_dir, f->name, 0);
    return status;
}

void rdb_copy_files(int src_dir, int dst_dir, struct rdb_copy *files, size_t count)
{
    char *buffer = malloc(RDB_COPY_ROOM);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    for (size_t i = 0; i < count; i++) {
        files[i].error = 0;
        files[i].copied = 0;
        if (buffer == NULL || ctx == NULL) {
            files[i].error = ENOMEM;
            files[i].status = 12;
            continue;
        }
        files[i].status = rdb_copy_one(src_dir >= 0 ? src_dir : files[i].src_dir,
                                       dst_dir >= 0 ? dst_dir : files[i].dst_dir, &files[i],
                                       ctx, buffer);
    }
    EVP_MD_CTX_free(ctx);
    free(buffer);
}

/* rdb_copy_files for files packed by rdb_fastio.batch_io.CopyPlan, with no Python object or C
   pointer per file: each spec is RDB_SPEC_SIZE bytes (native byte order, no padding; the
   layout of batch_io._SPEC), its names offsets into names (each NUL-terminated); each result
   RDB_RESULT_SIZE bytes (batch_io._RESULT). Returns the bytes of the files copied, and in
   *failed how many were not. */
#define RDB_SPEC_SIZE 93
#define RDB_RESULT_SIZE 36

static const unsigned char *rdb_take(void *to, const unsigned char *from, size_t n)
{
    memcpy(to, from, n);
    return from + n;
}

static void rdb_unpack_copy(const unsigned char *p, const char *names, struct rdb_copy *f)
{
    int32_t dirs[2];
    uint32_t u32[3], ids[3];
    int64_t size, times[4];
    unsigned char flags;
    memset(f, 0, sizeof *f);
    p = rdb_take(dirs, p, sizeof dirs);
    p = rdb_take(u32, p, sizeof u32);
    p = rdb_take(&size, p, sizeof size);
    p = rdb_take(&flags, p, 1);
    p = rdb_take(f->sha1_want, p, 20);
    p = rdb_take(ids, p, sizeof ids);
    rdb_take(times, p, sizeof times);
    f->src_dir = dirs[0];
    f->dst_dir = dirs[1];
    f->source = names + u32[0];
    f->name = names + u32[1];
    f->create_mode = u32[2];
    f->size = size;
    f->check_sha1 = (flags & 1) != 0;
    f->set_owner = (flags & 2) != 0;
    f->set_mode = (flags & 4) != 0;
    f->set_times = (flags & 8) != 0;
    f->uid = ids[0];
    f->gid = ids[1];
    f->mode = ids[2];
    f->atime.sec = times[0];
    f->atime.nsec = (long)times[1];
    f->mtime.sec = times[2];
    f->mtime.nsec = (long)times[3];
}

long long rdb_copy_packed(const unsigned char *specs, size_t count, const char *names,
                          unsigned char *results, size_t *failed)
{
    char *buffer = malloc(RDB_COPY_ROOM);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    long long total = 0;
    *failed = 0;
    for (size_t i = 0; i < count; i++) {
        struct rdb_copy f;
        rdb_unpack_copy(specs + i * RDB_SPEC_SIZE, names, &f);
        int32_t status;
        if (buffer == NULL || ctx == NULL) {
            f.error = ENOMEM;
            status = 12;
        } else {
            status = rdb_copy_one(f.src_dir, f.dst_dir, &f, ctx, buffer);
        }
        if (status == 0)
            total += f.copied;
        else
            (*failed)++;
        int32_t error = f.error;
        int64_t copied = f.copied;
        unsigned char *out = results + i * RDB_RESULT_SIZE;
        memcpy(out, &status, 4);
        memcpy(out + 4, &error, 4);
        memcpy(out + 8, &copied, 8);
        memcpy(out + 16, f.sha1, 20);
    }
    EVP_MD_CTX_free(ctx);
    free(buffer);
    return total;
}

void rdb_scan_free(struct rdb_scan *scan)
{
    free(scan->entries);
    free(scan->names);
    free(scan->packed);
    scan->entries = NULL;
    scan->names = NULL;
    scan->packed = NULL;
    scan->count = 0;
}

/* An entry's lstat as os.stat_result's 19 fields, in its order, then the errno of the lstat
   and the size of the extended attribute list: "<6Q4q3d5qQ2q" in Python's struct notation
   (the unsigned fields cast to long long keep their bits). The float times are made as
   CPython makes them (sec + nsec * 1e-9), so they are the same. */
#define RDB_PACKED_SIZE (21 * 8)

static void rdb_pack(unsigned char *p, const struct rdb_entry *e)
{
    long long q[10] = {(long long)e->mode, (long long)e->ino, (long long)e->dev,
                       (long long)e->nlink, (long long)e->uid, (long long)e->gid, e->size,
                       e->atime.sec, e->mtime.sec, e->ctime.sec};
    double d[3] = {(double)e->atime.sec + e->atime.nsec * 1e-9,
                   (double)e->mtime.sec + e->mtime.nsec * 1e-9,
                   (double)e->ctime.sec + e->ctime.nsec * 1e-9};
    long long r[8] = {e->atime_ns, e->mtime_ns, e->ctime_ns, e->blksize, e->blocks,
                      (long long)e->rdev, (long long)e->error, e->xattr_bytes};
    memcpy(p, q, sizeof q);
    memcpy(p + sizeof q, d, sizeof d);
    memcpy(p + sizeof q + sizeof d, r, sizeof r);
}

/* The time t in *time, and in nanoseconds since 1970 in *ns: 1, or 0 when those do not fit
   in 64 bits (after 2262-04-11) */
static int rdb_ns(struct timespec t, struct rdb_time *time, long long *ns)
{
    long long whole;
    time->sec = (long long)t.tv_sec;
    time->nsec = t.tv_nsec;
    return !__builtin_mul_overflow(time->sec, 1000000000LL, &whole)
           && !__builtin_add_overflow(whole, (long long)t.tv_nsec, ns);
}

/* Read the names of dir (no "." or "..") into a malloc'd buffer, one NUL-terminated after the
   other: 0 with *names_out, *used_out (bytes) and *count_out set, else an errno. With more
   than limit names: 0, *too_many set and nothing kept. */
static int rdb_read_names(DIR *dir, size_t limit, char **names_out, size_t *used_out,
                          size_t *count_out, int *too_many)
{
    size_t used = 0, room = 4096, count = 0;
    char *names = malloc(room);
    if (names == NULL)
        return ENOMEM;
    for (;;) {
        errno = 0;
        struct dirent *d = readdir(dir);
        if (d == NULL) {
            if (errno != 0) {
                int error = errno;
                free(names);
                return error;
            }
            break;
        }
        const char *n = d->d_name;
        if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0)))
            continue;
        if (count == limit) {
            *too_many = 1;
            free(names);
            return 0;
        }
        size_t length = strlen(n) + 1;
        if (used + length > room) {
            while (used + length > room)
                room *= 2;
            char *grown = realloc(names, room);
            if (grown == NULL) {
                free(names);
                return ENOMEM;
            }
            names = grown;
        }
        memcpy(names + used, n, length);
        used += length;
        count++;
    }
    *names_out = names;
    *used_out = used;
    *count_out = count;
    return 0;
}

void rdb_names_free(struct rdb_names *names)
{
    free(names->names);
    names->names = NULL;
    names->size = names->count = 0;
}

/* The names in the directory open as dir_fd, read through a descriptor of its own (so no
   offset is shared with dir_fd), in one call: os.listdir gives up the GIL around every
   readdir, and a walk beside busy pool threads then waits for it once per name. */
void rdb_list_names(int dir_fd, struct rdb_names *out)
{
    out->names = NULL;
    out->size = out->count = 0;
    out->error = 0;
    int fd = RDB_RETRY(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0) {
        out->error = errno;
        return;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        out->error = errno;
        close(fd);
        return;
    }
    int too_many = 0;
    out->error = rdb_read_names(dir, (size_t)-1, &out->names, &out->size, &out->count,
                                &too_many);
    closedir(dir);
}

/* One directory's names (no "." or "..") and each one's lstat, and with xattrs the size of
   its extended attribute list (symlinks not asked: their attributes are not kept); nothing
   but too_many if it has more than limit entries (their stats would all be held at once). */
static void rdb_scan_dir_unless(const char *path, int xattrs, size_t limit,
                                struct rdb_scan *out, const int *stop);

void rdb_scan_dir(const char *path, int xattrs, size_t limit, struct rdb_scan *out)
{
    rdb_scan_dir_unless(path, xattrs, limit, out, NULL);
}

/* rdb_scan_dir, given up (ECANCELED, nothing kept) once *stop is set, if stop is given */
static void rdb_scan_dir_unless(const char *path, int xattrs, size_t limit,
                                struct rdb_scan *out, const int *stop)
{
    out->entries = NULL;
    out->names = NULL;
    out->count = 0;
    out->error = 0;
    out->too_many = 0;
    out->names_size = 0;
    out->packed = NULL;
    out->wide = 0;
    DIR *dir = opendir(path);
    if (dir == NULL) {
        out->error = errno;
        return;
    }
    size_t used = 0, count = 0;
    char *names = NULL;
    out->error = rdb_read_names(dir, limit, &names, &used, &count, &out->too_many);
    if (out->error != 0 || out->too_many) {
        closedir(dir);
        return;
    }
    struct rdb_entry *entries = calloc(count ? count : 1, sizeof *entries);
    if (entries == NULL)
        goto no_memory;
    size_t base = strlen(path);
    char *full = malloc(base + 2 + 256);  /* path/name for llistxattr (no *at form) */
    if (full == NULL) {
        free(entries);
        goto no_memory;
    }
    memcpy(full, path, base);
    full[base] = '/';
    int fd = dirfd(dir);
    const char *n = names;
    for (size_t i = 0; i < count; i++, n += strlen(n) + 1) {
        struct rdb_entry *e = &entries[i];
        struct stat st;
        if (stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
            free(entries);
            free(full);
            out->error = ECANCELED;
            goto failed;
        }
        e->name = n;
        e->xattr_bytes = -1;
        if (RDB_RETRY(fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW)) != 0) {
            e->error = errno;
            continue;
        }
        e->ino = st.st_ino;
        e->dev = st.st_dev;
        e->nlink = st.st_nlink;
        e->rdev = st.st_rdev;
        e->mode = st.st_mode;
        e->uid = st.st_uid;
        e->gid = st.st_gid;
        e->size = st.st_size;
        e->blksize = st.st_blksize;
        e->blocks = st.st_blocks;
        e->wide = !(rdb_ns(st.st_atim, &e->atime, &e->atime_ns)
                    & rdb_ns(st.st_mtim, &e->mtime, &e->mtime_ns)
                    & rdb_ns(st.st_ctim, &e->ctime, &e->ctime_ns));
        if (xattrs && !S_ISLNK(st.st_mode)) {
            strcpy(full + base + 1, n);
            ssize_t size = llistxattr(full, NULL, 0);
            e->xattr_bytes = size < 0 ? -1 : size;
        }
    }
    free(full);
    closedir(dir);
    unsigned char *packed = malloc(count ? count * RDB_PACKED_SIZE : 1);
    if (packed == NULL) {
        free(entries);
        out->error = ENOMEM;
        free(names);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        rdb_pack(packed + i * RDB_PACKED_SIZE, &entries[i]);
        out->wide |= entries[i].wide;
    }
    /* the names buffer never moves again: the entries point into it */
    out->entries = entries;
    out->names = names;
    out->names_size = used;
    out->packed = packed;
    out->count = count;
    return;
no_memory:
    out->error = ENOMEM;
failed:
    free(names);
    closedir(dir);
}

/* ---- directories scanned ahead, on a thread of their own -------------------------------

   A walk submits the directories it will list next and takes each one's scan (rdb_scan_dir's
   result) when it gets there, by its path. One thread scans them, the one the walk needs
   first first; it never touches Python, so it runs while the walk's thread holds the GIL.
   The walk must list directories in the order of a depth-first walk of sorted listings
   (rdb_walk_order): a directory it passes without taking it is dropped. With explore, the
   thread also queues the subdirectories of each directory it scans (for a walk that lists
   every directory below its root but skip). Bounded: at most capacity directories queued,
   at most max_results scans being made or ready, and no scan starts while the ready ones
   hold max_entries entries or more; past that, the ones needed last give way. */

enum { RDB_QUEUED = 1, RDB_RUNNING = 2, RDB_READY = 3 };
#define RDB_GARBAGE 192

struct rdb_ahead_item {
    char *path;
    int state;
    int abandoned;          /* passed by the walk while being scanned: the thread frees it */
    struct rdb_scan scan;
};

typedef struct rdb_ahead rdb_ahead_t;

struct rdb_ahead {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t thread;
    pid_t pid;              /* the process that made it: after a fork nothing is scanned */
    int started, stop, failed, xattrs, explore;
    int idle;               /* the thread waits for work or room, and was not woken yet */
    char *skip;             /* never queued by exploring (the repository's own directory) */
    size_t limit, capacity, max_results, max_entries;
    struct rdb_ahead_item **items;  /* in the walk's order: items[0] is needed first */
    size_t count;
    size_t results;         /* items being scanned or ready (abandoned ones included) */
    size_t entries;         /* the entries of the ready ones */
    struct rdb_ahead_stats stats;
    void *garbage[RDB_GARBAGE];  /* taken scans' buffers, freed by the thread (see below) */
    size_t garbage_count;
    size_t garbage_entries;  /* the entries of those scans: at most max_entries */
};

static int rdb_ahead_alive;  /* scanner threads running in this process */

/* The order a depth-first walk of sorted listings reaches paths under one root in: component
   by component, each compared bytewise ("a" < "a/b" < "a-c": '/' sorts before any byte). */
static int rdb_walk_order(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = *a == '/' ? 1 : *a ? (unsigned char)*a + 1 : 0;
        int y = *b == '/' ? 1 : *b ? (unsigned char)*b + 1 : 0;
        if (x != y)
            return x < y ? -1 : 1;
        if (x == 0)
            return 0;
    }
}

/* The first position whose path is not before path in the walk's order */
static size_t rdb_ahead_find(struct rdb_ahead *a, const char *path)
{
    size_t low = 0, high = a->count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (rdb_walk_order(a->items[mid]->path, path) < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

static void rdb_ahead_release(struct rdb_ahead *a, struct rdb_ahead_item *item)
{
    if (item->state == RDB_READY) {
        a->entries -= item->scan.count;
        a->results--;
        rdb_scan_free(&item->scan);
    }
    free(item->path);
    free(item);
}

/* Take items[at] out; freed, or left to the thread if it is being scanned. */
static void rdb_ahead_remove(struct rdb_ahead *a, size_t at)
{
    struct rdb_ahead_item *item = a->items[at];
    memmove(a->items + at, a->items + at + 1, (a->count - at - 1) * sizeof *a->items);
    a->count--;
    if (item->state == RDB_RUNNING)
        item->abandoned = 1;
    else
        rdb_ahead_release(a, item);
}

/* Queue path (malloc'd: kept or freed here): 1 queued, 0 already there, -1 no room (full,
   and every directory queued is needed before it or being scanned). */
static int rdb_ahead_insert(struct rdb_ahead *a, char *path)
{
    size_t at = rdb_ahead_find(a, path);
    if (at < a->count && rdb_walk_order(a->items[at]->path, path) == 0) {
        free(path);
        return 0;
    }
    if (a->count == a->capacity) {
        size_t last = a->count;  /* the one needed last gives way, if needed after this one */
        while (last > at && a->items[last - 1]->state == RDB_RUNNING)
            last--;
        if (last == at) {
            free(path);
            return -1;
        }
        rdb_ahead_remove(a, last - 1);
        a->stats.dropped++;
    }
    struct rdb_ahead_item *item = calloc(1, sizeof *item);
    if (item == NULL) {
        free(path);
        return -1;
    }
    item->path = path;
    item->state = RDB_QUEUED;
    memmove(a->items + at + 1, a->items + at, (a->count - at) * sizeof *a->items);
    a->items[at] = item;
    a->count++;
    return 1;
}

static int rdb_by_name(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The paths of the subdirectories in scan (of path), sorted by name, skip left out: a
   malloc'd array of malloc'd paths, *count of them (NULL if none, or out of memory). */
static char **rdb_subdirectories(const char *path, const struct rdb_scan *scan,
                                 const char *skip, size_t *count)
{
    *count = 0;
    const char **names = malloc(scan->count * sizeof *names);
    if (names == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < scan->count; i++)
        if (scan->entries[i].error == 0 && S_ISDIR(scan->entries[i].mode))
            names[n++] = scan->entries[i].name;
    char **paths = n ? malloc(n * sizeof *paths) : NULL;
    if (paths == NULL) {
        free(names);
        return NULL;
    }
    qsort(names, n, sizeof *names, rdb_by_name);
    size_t base = strlen(path);
    int slash = base > 0 && path[base - 1] == '/';  /* as the walk joins them */
    for (size_t i = 0; i < n; i++) {
        size_t length = strlen(names[i]);
        char *p = malloc(base + 1 + length + 1);
        if (p == NULL)
            break;
        memcpy(p, path, base);
        if (!slash)
            p[base] = '/';
        memcpy(p + base + !slash, names[i], length + 1);
        if (skip != NULL && strcmp(p, skip) == 0) {
            free(p);
            continue;
        }
        paths[(*count)++] = p;
    }
    free(names);
    return paths;
}

/* Queue the first keep of found paths (malloc'd, in the walk's order, as
   rdb_subdirectories makes them), as room allows; the rest and the array are freed. */
static void rdb_ahead_insert_all(struct rdb_ahead *a, char **below, size_t keep, size_t found)
{
    size_t i = 0;
    while (i < keep) {
        int queued = rdb_ahead_insert(a, below[i++]);  /* (kept, or freed) */
        if (queued < 0)
            break;
        a->stats.explored += (unsigned long long)queued;
    }
    for (; i < found; i++)
        free(below[i]);
    free(below);
}

static int rdb_ahead_start(struct rdb_ahead *a);

static void *rdb_ahead_run(void *arg)
{
    struct rdb_ahead *a = arg;
#ifdef SCHED_IDLE
    /* only a CPU nothing else wants: scanning ahead must not take the walk's own CPU (nor
       another process's) when there is no idle one; then the walk lists for itself */
    struct sched_param lowest = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &lowest);
#endif
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        for (size_t i = 0; i < a->garbage_count; i++)
            free(a->garbage[i]);
        a->garbage_count = a->garbage_entries = 0;
        size_t first = 0;
        while (first < a->count && a->items[first]->state != RDB_QUEUED)
            first++;
        if (first == a->count) {
            a->idle = 1;
            pthread_cond_wait(&a->changed, &a->lock);
            a->idle = 0;
            continue;
        }
        if (a->results >= a->max_results || a->entries >= a->max_entries) {
            /* full: a ready scan needed later than this one gives its room back */
            size_t last = a->count;
            while (--last > first && a->items[last]->state != RDB_READY)
                ;
            if (last > first) {
                struct rdb_ahead_item *later = a->items[last];
                a->entries -= later->scan.count;
                a->results--;
                rdb_scan_free(&later->scan);
                later->state = RDB_QUEUED;
                a->stats.requeued++;
            } else {
                a->idle = 1;
                pthread_cond_wait(&a->changed, &a->lock);
                a->idle = 0;
            }
            continue;
        }
        struct rdb_ahead_item *item = a->items[first];
        item->state = RDB_RUNNING;
        a->results++;
        if (a->results > a->stats.most_held)
            a->stats.most_held = a->results;
        pthread_mutex_unlock(&a->lock);
        struct rdb_scan scan;
        rdb_scan_dir_unless(item->path, a->xattrs, a->limit, &scan, &a->stop);
        size_t found = 0, keep;
        char **below = NULL;
        if (a->explore && scan.error == 0)
            below = rdb_subdirectories(item->path, &scan, a->skip, &found);
        pthread_mutex_lock(&a->lock);
        a->stats.scans++;
        item->scan = scan;
        if (item->abandoned) {  /* the walk is past it, and past its subdirectories */
            rdb_scan_free(&item->scan);
            free(item->path);
            free(item);
            a->results--;
            keep = 0;
        } else {
            item->state = RDB_READY;
            a->entries += scan.count;
            if (a->entries > a->stats.most_entries)
                a->stats.most_entries = a->entries;
            keep = found;
        }
        rdb_ahead_insert_all(a, below, keep, found);
    }
    pthread_mutex_unlock(&a->lock);
    __atomic_sub_fetch(&rdb_ahead_alive, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

rdb_ahead_t *rdb_ahead_new(int xattrs, size_t limit, size_t capacity, size_t results,
                           size_t entries, const char *explore_skip)
{
    struct rdb_ahead *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->items = calloc(capacity ? capacity : 1, sizeof *a->items);
    if (explore_skip != NULL)
        a->skip = strdup(explore_skip);
    if (a->items == NULL || (explore_skip != NULL && a->skip == NULL)) {
        free(a->items);
        free(a->skip);
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->changed, NULL);
    a->pid = getpid();
    a->xattrs = xattrs;
    a->explore = explore_skip != NULL;
    a->limit = limit;
    a->capacity = capacity;
    a->max_results = results ? results : 1;
    a->max_entries = entries ? entries : 1;
    return a;
}

/* The thread starts with the first directory submitted (not before: a process that forks
   before walking has no thread to lose), with every signal blocked (they are the caller's). */
static int rdb_ahead_start(struct rdb_ahead *a)
{
    sigset_t all, old;
    pthread_attr_t attr;
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    __atomic_add_fetch(&rdb_ahead_alive, 1, __ATOMIC_SEQ_CST);
    int error = pthread_create(&a->thread, &attr, rdb_ahead_run, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (error != 0) {
        __atomic_sub_fetch(&rdb_ahead_alive, 1, __ATOMIC_SEQ_CST);
        a->failed = 1;
        return 0;
    }
    a->started = 1;
    return 1;
}

/* Queue count paths (one NUL-terminated after the other, each needed after the one before
   it) to be scanned ahead: how many of the first are queued or were already; the rest are
   not (no room: every directory queued is needed before them). */
size_t rdb_ahead_submit(rdb_ahead_t *a, const char *paths, size_t count)
{
    size_t accepted = 0;
    if (a->pid != getpid() || pthread_mutex_trylock(&a->lock) != 0)
        return 0;  /* (see rdb_ahead_take) */
    if (a->failed || a->stop || (!a->started && !rdb_ahead_start(a))) {
        pthread_mutex_unlock(&a->lock);
        return 0;
    }
    const char *p = paths;
    for (; accepted < count; accepted++, p += strlen(p) + 1) {
        char *path = strdup(p);
        if (path == NULL || rdb_ahead_insert(a, path) < 0)
            break;
    }
    if (accepted && a->idle) {
        a->idle = 0;  /* (woken: not waiting any more, as far as anyone can tell) */
        pthread_cond_signal(&a->changed);
    }
    pthread_mutex_unlock(&a->lock);
    return accepted;
}

/* The scan of directory path, into *out (to be freed with rdb_scan_free): 1 if it is
   ready; 0 if not (the caller lists it: it never waits for the thread, which may be off the
   CPU). The walk is past every directory needed before this one: those not taken are
   dropped, and so is this one (unless the thread holds the lock just then: they are
   dropped by the next take). */
int rdb_ahead_take(rdb_ahead_t *a, const char *path, struct rdb_scan *out)
{
    /* never waits for the lock either: the thread holding it may be off the CPU for long
       (it runs only on an idle one), and the walk would wait with it */
    if (a->pid != getpid() || !a->started || pthread_mutex_trylock(&a->lock) != 0)
        return 0;
    size_t at = rdb_ahead_find(a, path);
    int found = at < a->count && rdb_walk_order(a->items[at]->path, path) == 0;
    for (; at > 0; at--) {
        rdb_ahead_remove(a, 0);
        a->stats.skipped++;
    }
    int ready = 0;
    if (!found) {
        a->stats.missing++;
    } else if (a->items[0]->state != RDB_READY) {
        if (a->items[0]->state == RDB_QUEUED)
            a->stats.unstarted++;
        else
            a->stats.unfinished++;
        rdb_ahead_remove(a, 0);
    } else {
        struct rdb_ahead_item *item = a->items[0];
        a->stats.ready++;
        *out = item->scan;
        a->entries -= item->scan.count;
        a->results--;
        memmove(a->items, a->items + 1, (a->count - 1) * sizeof *a->items);
        a->count--;
        free(item->path);
        free(item);
        ready = 1;
    }
    /* room again (half of it: not one wake-up per directory taken) */
    if (a->idle && a->results <= a->max_results / 2 && a->entries <= a->max_entries / 2) {
        a->idle = 0;
        pthread_cond_signal(&a->changed);
    }
    pthread_mutex_unlock(&a->lock);
    return ready;
}

/* The scan of directory path, into *out: taken (1) as rdb_ahead_take does, else made now on
   the caller's thread (0), as rdb_scan_dir does; one call, so one release of the GIL */
int rdb_ahead_list(rdb_ahead_t *a, const char *path, struct rdb_scan *out)
{
    if (rdb_ahead_take(a, path, out))
        return 1;
    rdb_scan_dir(path, a->xattrs, a->limit, out);
    if (a->explore && out->error == 0 && a->pid == getpid()) {
        /* its subdirectories queued here, as the thread does for what it scans (and it
           starts with the first): the walk need not submit them */
        size_t found = 0;
        char **below = rdb_subdirectories(path, out, a->skip, &found);
        if (below != NULL && pthread_mutex_trylock(&a->lock) == 0) {
            int running = !a->failed && !a->stop && (a->started || rdb_ahead_start(a));
            rdb_ahead_insert_all(a, below, running ? found : 0, found);
            if (running && a->idle) {
                a->idle = 0;
                pthread_cond_signal(&a->changed);
            }
            pthread_mutex_unlock(&a->lock);
        } else if (below != NULL) {
            rdb_ahead_insert_all(a, below, 0, found);
        }
    }
    return 0;
}

/* Free a scan taken from the thread: its buffers go back to the thread, which frees them
   in its own malloc arena. The walk's thread freeing them itself takes that arena's lock,
   which the thread may hold (inside malloc) while it is off the CPU for long (SCHED_IDLE
   on a busy machine): the walk would wait with it. Freed here when the lock is held just
   then, or too many wait already (the thread not running). */
void rdb_ahead_scan_free(rdb_ahead_t *a, struct rdb_scan *scan)
{
    if (a->pid == getpid() && pthread_mutex_trylock(&a->lock) == 0) {
        if (a->garbage_count + 3 <= RDB_GARBAGE
            && a->garbage_entries + scan->count <= a->max_entries) {
            a->garbage_entries += scan->count;
            a->garbage[a->garbage_count++] = scan->entries;
            a->garbage[a->garbage_count++] = scan->names;
            a->garbage[a->garbage_count++] = scan->packed;
            scan->entries = NULL;
            scan->names = NULL;
            scan->packed = NULL;
            scan->count = 0;
        }
        pthread_mutex_unlock(&a->lock);
    }
    rdb_scan_free(scan);  /* (nothing left to free if it was handed over) */
}

void rdb_ahead_stats(rdb_ahead_t *a, struct rdb_ahead_stats *out)
{
    if (a->pid != getpid()) {
        memset(out, 0, sizeof *out);
        return;
    }
    pthread_mutex_lock(&a->lock);
    *out = a->stats;
    out->queued = a->count;
    out->held = a->results;
    out->running = a->started && !a->stop;
    out->idle = a->idle;
    pthread_mutex_unlock(&a->lock);
}

/* Stop the thread (after the scan it is making), wait for it, and free every scan. In a
   forked child, whose copy has no thread and whose lock may be held forever: nothing. */
void rdb_ahead_free(rdb_ahead_t *a)
{
    if (a == NULL || a->pid != getpid())
        return;
    if (a->started) {  /* it gives up its scan at the caller's priority (if allowed: root) */
        struct sched_param normal = {0};
        (void)pthread_setschedparam(a->thread, SCHED_OTHER, &normal);
    }
    pthread_mutex_lock(&a->lock);
    __atomic_store_n(&a->stop, 1, __ATOMIC_RELAXED);  /* (read by its scan, unlocked) */
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->lock);
    if (a->started)
        pthread_join(a->thread, NULL);
    while (a->count > 0)
        rdb_ahead_remove(a, a->count - 1);
    for (size_t i = 0; i < a->garbage_count; i++)
        free(a->garbage[i]);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->changed);
    free(a->items);
    free(a->skip);
    free(a);
}

int rdb_ahead_threads(void)
{
    return __atomic_load_n(&rdb_ahead_alive, __ATOMIC_SEQ_CST);
}
"""
)


def _libcrypto_dirs() -> tuple[list[str], list[str]]:
    """libcrypto's include and library directories as pkg-config gives them (none without
    pkg-config: the compiler's defaults, CPATH and LIBRARY_PATH then have to do)."""
    try:
        found = subprocess.run(
            ["pkg-config", "--cflags-only-I", "--libs-only-L", "libcrypto"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        found = []
    return (
        [flag[2:] for flag in found if flag.startswith("-I")],
        [flag[2:] for flag in found if flag.startswith("-L")],
    )


def _check_openssl(include_dirs: list[str]) -> None:
    places = [
        *include_dirs,
        *os.environ.get("CPATH", "").split(os.pathsep),
        *os.environ.get("C_INCLUDE_PATH", "").split(os.pathsep),
        "/usr/include",
        "/usr/local/include",
    ]
    if not any(Path(d, "openssl", "evp.h").exists() for d in places if d):
        raise SystemExit(MISSING)


INCLUDE_DIRS, LIBRARY_DIRS = _libcrypto_dirs()
_check_openssl(INCLUDE_DIRS)
ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "rdb_fastio._batchio",
    SOURCE,
    libraries=["crypto", "pthread"],
    include_dirs=INCLUDE_DIRS,
    library_dirs=LIBRARY_DIRS,
    py_limited_api=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
