"""Build-time only: compiles rdb_mirror._stagefiles (cffi API mode), plain C with no library.

It writes a batch of small new files with their attributes in one call. cffi releases the GIL
around the call, so a pool thread creates files while the session's thread goes on with
Python; done one system call at a time from Python, each call would hand the GIL between the
two threads (with two CPUs a cross-CPU wake-up each time, which cost more than the work).
"""

from __future__ import annotations

from cffi import FFI

STRUCT = """
struct rdb_stage {
    const char *path;       /* the staged file to create (must not exist) */
    const char *target;     /* renamed to this when all is set; NULL: left staged */
    const char *data;
    size_t size;
    unsigned int mode;      /* permission bits, set with fchmod after fchown */
    int set_owner;          /* fchown to uid/gid (failures ignored, as os.fchown's were) */
    unsigned int uid;
    unsigned int gid;
    long long atime_ns;
    long long mtime_ns;
    int error;              /* out: 0, or the errno of the step that failed */
    int step;               /* out: 1 create, 2 write, 3 chmod, 4 times, 5 close, 6 rename */
};
"""
CDEF = STRUCT + "void rdb_stage_files(struct rdb_stage *files, size_t count);\n"

SOURCE = (
    r"""
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
"""
    + STRUCT
    + r"""
static struct timespec rdb_timespec(long long ns)
{
    struct timespec t;
    t.tv_sec = (time_t)(ns / 1000000000LL);
    t.tv_nsec = (long)(ns % 1000000000LL);
    if (t.tv_nsec < 0) {  /* before 1970: C division truncates toward zero */
        t.tv_nsec += 1000000000L;
        t.tv_sec -= 1;
    }
    return t;
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
    const char *p = f->data;
    size_t left = f->size;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            f->step = 2;
            goto failed_open;
        }
        p += n;
        left -= (size_t)n;
    }
    if (f->set_owner)
        (void)fchown(fd, f->uid, f->gid);
    if (fchmod(fd, f->mode) != 0) {
        f->step = 3;
        goto failed_open;
    }
    struct timespec times[2];
    times[0] = rdb_timespec(f->atime_ns);
    times[1] = rdb_timespec(f->mtime_ns);
    if (futimens(fd, times) != 0) {
        f->step = 4;
        goto failed_open;
    }
    if (close(fd) != 0) {
        f->step = 5;
        goto failed_closed;
    }
    if (f->target != NULL && rename(f->path, f->target) != 0) {
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
"""
)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("rdb_mirror._stagefiles", SOURCE, py_limited_api=True)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
