/* io-util.c: whole reads and writes, memory files, directory syncs. */
#include <assert.h>
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

#define PEER_SEALS_REQUIRED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static const char *const peer_fd_kind_table[_PEER_FD_KIND_MAX] = {
        [PEER_FD_SEALED] = "sealed memory file",
        [PEER_FD_QUEUE_FILE] = "read-only queue file",
};

const char *peer_fd_kind_to_string(PeerFdKind kind) {
        return kind >= 0 && kind < _PEER_FD_KIND_MAX ? peer_fd_kind_table[kind] : NULL;
}

int peer_fd_check(int fd, PeerFdKind kind, struct stat *ret_st, const char **ret_why) {
        struct stat st;
        int flags, seals;

        assert(ret_why);
        if (fstat(fd, &st) < 0) {
                *ret_why = "not an open descriptor";
                return -errno;
        }
        if (S_ISDIR(st.st_mode)) {
                *ret_why = "a directory, not a regular file";
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                *ret_why = "not a regular file";
                return -EINVAL;
        }
        switch (kind) {
        case PEER_FD_SEALED:
                /* A file of another kind has no seals (EINVAL); an unsealed one could shrink under a mapping. */
                seals = fcntl(fd, F_GET_SEALS);
                if (seals < 0) {
                        *ret_why = "not a memory file that can be sealed";
                        return -EPERM;
                }
                if ((seals & PEER_SEALS_REQUIRED) != PEER_SEALS_REQUIRED) {
                        *ret_why = "not sealed against shrink, grow and write";
                        return -EPERM;
                }
                break;
        case PEER_FD_QUEUE_FILE:
                flags = fcntl(fd, F_GETFL);
                if (flags < 0) {
                        *ret_why = "not an open descriptor";
                        return -errno;
                }
                if ((flags & O_ACCMODE) != O_RDONLY) {
                        *ret_why = "not opened read-only";
                        return -EPERM;
                }
                break;
        default:
                *ret_why = "of no known kind";
                return -EINVAL;
        }
        if (ret_st)
                *ret_st = st;
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
        if (a < 0 || b < 0) {           /* one, or none */
                a = b = MAX(a, b);
                if (a < 0) {
                        (void) close_range(3, ~0U, 0);
                        return;
                }
        }
        unsigned lo = (unsigned) MIN(a, b), hi = (unsigned) MAX(a, b);

        if (lo > 3)
                (void) close_range(3, lo - 1, 0);
        if (hi > lo + 1)
                (void) close_range(lo + 1, hi - 1, 0);
        (void) close_range(hi + 1, ~0U, 0);
}
