/* tls-util.c: the result of an SSL_* call on a non-blocking socket, for smtpd's and smtp's OpenSSL code.
 * Runs in the smtpd and smtp processes. */
#include <errno.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>

#include "tls-util.h"

ssize_t tls_result(SSL *ssl, int r, uint32_t *ret_wants) {
        *ret_wants = 0;
        switch (SSL_get_error(ssl, r)) {
        case SSL_ERROR_NONE:
                return r;
        case SSL_ERROR_WANT_READ:
                *ret_wants = EPOLLIN;
                return -EAGAIN;
        case SSL_ERROR_WANT_WRITE:
                *ret_wants = EPOLLOUT;
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
                return 0;
        case SSL_ERROR_SYSCALL:
                return -EIO;
        default:
                return -EPROTO;
        }
}
