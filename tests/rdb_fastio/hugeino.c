/* LD_PRELOAD: every stat the process makes sees its inode number with bit 63 set, as on a
   file system with 64-bit inode numbers (NFS fileids, FUSE file systems that hash them). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>

#define HIGH (1ULL << 63)
#define WRAP(name, type, params, args, ino)                                                 \
    int name params                                                                         \
    {                                                                                       \
        static int (*real) params;                                                          \
        if (!real)                                                                          \
            real = (int (*) params)dlsym(RTLD_NEXT, #name);                                 \
        int rc = real args;                                                                 \
        if (rc == 0)                                                                        \
            ino |= HIGH;                                                                    \
        return rc;                                                                          \
    }

WRAP(stat, struct stat, (const char *p, struct stat *s), (p, s), s->st_ino)
WRAP(lstat, struct stat, (const char *p, struct stat *s), (p, s), s->st_ino)
WRAP(fstat, struct stat, (int fd, struct stat *s), (fd, s), s->st_ino)
WRAP(fstatat, struct stat, (int d, const char *p, struct stat *s, int f), (d, p, s, f), s->st_ino)
WRAP(stat64, struct stat64, (const char *p, struct stat64 *s), (p, s), s->st_ino)
WRAP(lstat64, struct stat64, (const char *p, struct stat64 *s), (p, s), s->st_ino)
WRAP(fstat64, struct stat64, (int fd, struct stat64 *s), (fd, s), s->st_ino)
WRAP(fstatat64, struct stat64, (int d, const char *p, struct stat64 *s, int f), (d, p, s, f),
     s->st_ino)
WRAP(statx, struct statx, (int d, const char *p, int f, unsigned m, struct statx *s),
     (d, p, f, m, s), s->stx_ino)
