/* tls-util.h: what smtpd's and smtp's OpenSSL code share: the result of an SSL_* call on a non-blocking
 * socket, sorted into what the caller does next. Runs in the smtpd and smtp processes. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

typedef struct ssl_st SSL;

/* The result r of an SSL_* call on ssl: r itself when it succeeded; -EAGAIN with *ret_wants set to the socket
 * event (EPOLLIN or EPOLLOUT) to wait for before calling again; 0 at a clean end (close_notify); -EIO for
 * SSL_ERROR_SYSCALL (errno and OpenSSL's error queue, both left as they are, may say more); -EPROTO for any
 * other failure. *ret_wants is 0 unless -EAGAIN is returned. */
ssize_t tls_result(SSL *ssl, int r, uint32_t *ret_wants);
