/* io-util.c: whole reads and writes, memory files, directory syncs. */
#include <fcntl.h>
#include <sys/mman.h>

#include "io-util.h"
#include "macro.h"

int write_full(int fd, const void *buf, size_t len) {
        const char *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int write_full_cb(const char *data, size_t len, void *userdata) {
        return write_full(*(const int *) userdata, data, len);
}

int pread_full(int fd, void *buf, size_t len, uint64_t off) {
        char *p = buf;

        while (len > 0) {
                ssize_t n = pread(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EBADMSG;        /* shorter than expected: truncated */
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

int memfd_new(const char *name) {
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        return fd < 0 ? -errno : fd;
}

int memfd_seal(int fd) {
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        return 0;
}

int fsync_directory(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

int fsync_directory_of(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                return fsync_directory(".");
        if (slash == dir)
                slash++;        /* "/name": the root */
        *slash = '\0';
        return fsync_directory(dir);
}

void close_fds_except(int a, int b) {
        unsigned lo = (unsigned) MIN(a, b), hi = (unsigned) MAX(a, b);

        if (lo > 3)
                (void) close_range(3, lo - 1, 0);
        if (hi > lo + 1)
                (void) close_range(lo + 1, hi - 1, 0);
        (void) close_range(hi + 1, ~0U, 0);
}
