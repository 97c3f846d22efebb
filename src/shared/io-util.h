/* io-util.h: whole reads and writes over file descriptors, retried on EINTR and short transfers; sealed
 * memory files; syncing a directory so that a new name in it lasts. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Writes all len bytes; negative errno on failure. */
int write_full(int fd, const void *buf, size_t len);
/* write_full() as a callback of a content walk (RecordDataFunc): userdata points to the int fd. */
int write_full_cb(const char *data, size_t len, void *userdata);

/* Reads exactly len bytes at off; -EBADMSG when the file ends first. */
int pread_full(int fd, void *buf, size_t len, uint64_t off);

/* A memory file that can be sealed (close-on-exec), for a message handed to another role; the fd or
 * negative errno. */
int memfd_new(const char *name);
/* Seals it against any change (shrink, grow, write, more seals), so that the receiver may map it. */
int memfd_seal(int fd);

/* What a descriptor received from a peer must be before it is used. */
typedef enum PeerFdKind {
        PEER_FD_SEALED,         /* a memory file sealed at least against shrink, grow and write: safe to map */
        PEER_FD_QUEUE_FILE,     /* a regular file opened read-only (a queue file qmgr passes) */
        _PEER_FD_KIND_MAX,
        _PEER_FD_KIND_INVALID = -EINVAL,
} PeerFdKind;

/* Checks fd as kind says, so that a peer that truncates or rewrites a file it handed over cannot kill the
 * receiver with SIGBUS nor change the message under it. 0 with *ret_st (may be NULL) on success; on refusal
 * a negative errno (-EBADF not open, -EISDIR/-EINVAL not a regular file, -EPERM not sealed or not
 * read-only) with *ret_why set to a short phrase for the record and the error. */
int peer_fd_check(int fd, PeerFdKind kind, struct stat *ret_st, const char **ret_why);
const char *peer_fd_kind_to_string(PeerFdKind kind);

/* fsync() of the directory path, or of the directory that holds path ("." for a bare name). */
int fsync_directory(const char *path);
int fsync_directory_of(const char *path);

/* In a forked child: closes every descriptor from 3 up but a and b. */
void close_fds_except(int a, int b);
