/* io-util.h: whole reads and writes over file descriptors, retried on EINTR and short transfers; sealed
 * memory files; syncing a directory so that a new name in it lasts. */
#pragma once

#include <stddef.h>
#include <stdint.h>

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

/* fsync() of the directory path, or of the directory that holds path ("." for a bare name). */
int fsync_directory(const char *path);
int fsync_directory_of(const char *path);

/* In a forked child: closes every descriptor from 3 up but a and b. */
void close_fds_except(int a, int b);
