/* LD_PRELOAD shim for the crash sweep: SIGKILL the process at the N-th C-library call that
 * changes the disk, counted over all threads together (strace counts per thread).
 *
 *   RDB_KILLSHIM_AT=N     kill on entry to the N-th counted call (the call never happens)
 *   RDB_KILLSHIM_COUNT=F  at a normal exit, write "<calls> <calls by other threads>" to F;
 *                         when killing, "killed <1 if by another thread than the first>"
 *
 * Counted: open/openat with a write flag, write/writev/pwrite to a regular file, and the
 * renames, links, removals, syncs, truncations, mode/owner/time and xattr changes below (the
 * C-library functions libpython and the project's C extensions call; see syscall_kill.py). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

static long kill_at;
static const char *count_file;
static long calls, other_calls;

__attribute__((constructor)) static void shim_init(void) {
    const char *at = getenv("RDB_KILLSHIM_AT");
    kill_at = at ? atol(at) : 0;
    count_file = getenv("RDB_KILLSHIM_COUNT");
}

static void put(const char *line, int n);

__attribute__((destructor)) static void shim_report(void) {
    if (!count_file) return;
    char line[64];
    int n = snprintf(line, sizeof line, "%ld %ld\n", __atomic_load_n(&calls, __ATOMIC_SEQ_CST),
                     __atomic_load_n(&other_calls, __ATOMIC_SEQ_CST));
    put(line, n);
}

static void put(const char *line, int n) {
    int fd = (int)syscall(SYS_openat, AT_FDCWD, count_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        syscall(SYS_write, fd, line, (size_t)n);
        syscall(SYS_close, fd);
    }
}

static void counted(void) {
    long n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    int other = syscall(SYS_gettid) != getpid();
    if (other) __atomic_add_fetch(&other_calls, 1, __ATOMIC_SEQ_CST);
    if (n == kill_at) {
        if (count_file) put(other ? "killed 1\n" : "killed 0\n", 9);
        syscall(SYS_kill, getpid(), SIGKILL);
    }
}

static int regular(int fd) {
    struct stat st;
    return fd > 2 && syscall(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode);
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

#define WRAP(ret, name, params, args) \
    ret name params {                   \
        counted();                      \
        return REAL(name) args;         \
    }

static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

static mode_t mode_of(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

/* open and openat in both spellings: counted when they may write */
#define WRAP_OPEN(name, params, args)              \
    int name params {                              \
        va_list ap;                                \
        va_start(ap, flags);                       \
        mode_t mode = mode_of(flags, ap);          \
        va_end(ap);                                \
        if (writes(flags)) counted();              \
        return REAL(name) args;                    \
    }

WRAP_OPEN(open, (const char *path, int flags, ...), (path, flags, mode))
WRAP_OPEN(open64, (const char *path, int flags, ...), (path, flags, mode))
WRAP_OPEN(openat, (int dirfd, const char *path, int flags, ...), (dirfd, path, flags, mode))
WRAP_OPEN(openat64, (int dirfd, const char *path, int flags, ...), (dirfd, path, flags, mode))

/* writes: counted when they go to a regular file (not a pipe, socket or terminal) */
#define WRAP_WRITE(name, params, args)         \
    ssize_t name params {                      \
        if (regular(fd)) counted();            \
        return REAL(name) args;                \
    }

WRAP_WRITE(write, (int fd, const void *buf, size_t count), (fd, buf, count))
WRAP_WRITE(writev, (int fd, const struct iovec *iov, int count), (fd, iov, count))
WRAP_WRITE(pwrite64, (int fd, const void *buf, size_t count, off_t at), (fd, buf, count, at))

WRAP(int, rename, (const char *a, const char *b), (a, b))
WRAP(int, renameat, (int da, const char *a, int db, const char *b), (da, a, db, b))
WRAP(int, renameat2, (int da, const char *a, int db, const char *b, unsigned f), (da, a, db, b, f))
WRAP(int, link, (const char *a, const char *b), (a, b))
WRAP(int, linkat, (int da, const char *a, int db, const char *b, int f), (da, a, db, b, f))
WRAP(int, symlink, (const char *a, const char *b), (a, b))
WRAP(int, symlinkat, (const char *a, int d, const char *b), (a, d, b))
WRAP(int, unlink, (const char *a), (a))
WRAP(int, unlinkat, (int d, const char *a, int f), (d, a, f))
WRAP(int, rmdir, (const char *a), (a))
WRAP(int, mkdir, (const char *a, mode_t m), (a, m))
WRAP(int, mkdirat, (int d, const char *a, mode_t m), (d, a, m))
WRAP(int, mknod, (const char *a, mode_t m, dev_t v), (a, m, v))
WRAP(int, mknodat, (int d, const char *a, mode_t m, dev_t v), (d, a, m, v))
WRAP(int, fsync, (int fd), (fd))
WRAP(int, fdatasync, (int fd), (fd))
WRAP(int, syncfs, (int fd), (fd))
WRAP(void, sync, (void), ())
WRAP(int, ftruncate64, (int fd, off_t n), (fd, n))
WRAP(int, ftruncate, (int fd, off_t n), (fd, n))
WRAP(int, truncate64, (const char *a, off_t n), (a, n))
WRAP(int, posix_fallocate64, (int fd, off_t o, off_t n), (fd, o, n))
WRAP(ssize_t, copy_file_range, (int a, off_t *ao, int b, off_t *bo, size_t n, unsigned f),
     (a, ao, b, bo, n, f))
WRAP(ssize_t, sendfile64, (int a, int b, off_t *o, size_t n), (a, b, o, n))
WRAP(int, chmod, (const char *a, mode_t m), (a, m))
WRAP(int, fchmod, (int fd, mode_t m), (fd, m))
WRAP(int, fchmodat, (int d, const char *a, mode_t m, int f), (d, a, m, f))
WRAP(int, chown, (const char *a, uid_t u, gid_t g), (a, u, g))
WRAP(int, lchown, (const char *a, uid_t u, gid_t g), (a, u, g))
WRAP(int, fchown, (int fd, uid_t u, gid_t g), (fd, u, g))
WRAP(int, fchownat, (int d, const char *a, uid_t u, gid_t g, int f), (d, a, u, g, f))
WRAP(int, utimensat, (int d, const char *a, const struct timespec t[2], int f), (d, a, t, f))
WRAP(int, futimens, (int fd, const struct timespec t[2]), (fd, t))
WRAP(int, setxattr, (const char *a, const char *n, const void *v, size_t s, int f),
     (a, n, v, s, f))
WRAP(int, lsetxattr, (const char *a, const char *n, const void *v, size_t s, int f),
     (a, n, v, s, f))
WRAP(int, fsetxattr, (int fd, const char *n, const void *v, size_t s, int f), (fd, n, v, s, f))
WRAP(int, removexattr, (const char *a, const char *n), (a, n))
WRAP(int, lremovexattr, (const char *a, const char *n), (a, n))
WRAP(int, fremovexattr, (int fd, const char *n), (fd, n))
