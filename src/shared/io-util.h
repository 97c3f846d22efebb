/* io-util.h: whole reads and writes over file descriptors, retried on EINTR and short transfers. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Writes all len bytes; negative errno on failure. */
int write_full(int fd, const void *buf, size_t len);

/* Reads exactly len bytes at off; -EBADMSG when the file ends first. */
int pread_full(int fd, void *buf, size_t len, uint64_t off);
