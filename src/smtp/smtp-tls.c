/* smtp-tls.c: STARTTLS for postbus-smtp with OpenSSL: one client context for all sessions, and
 * non-blocking handshakes, reads and writes that say which event they wait for. Levels none, may (TLS when
 * offered, else clear text) and encrypt (TLS or no mail); certificates are not verified at these levels. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>

#include "log.h"
#include "smtp.h"
#include "tls-util.h"

static SSL_CTX *client_ctx;

int smtp_tls_level_from_string(const char *s) {
        if (isempty(s) || streq(s, "none"))
                return SMTP_TLS_NONE;
        if (streq(s, "may"))
                return SMTP_TLS_MAY;
        if (streq(s, "encrypt"))
                return SMTP_TLS_ENCRYPT;
        return -EINVAL;
}

void smtp_tls_cleanup(void) {
        SSL_CTX_free(client_ctx);
        client_ctx = NULL;
}

int smtp_tls_new(int fd, const char *sni, SSL **ret) {
        SSL *ssl;

        if (!client_ctx) {
                client_ctx = SSL_CTX_new(TLS_client_method());
                if (!client_ctx)
                        return -ENOMEM;
                SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
                (void) SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION);
        }
        ssl = SSL_new(client_ctx);
        if (!ssl)
                return -ENOMEM;
        if (SSL_set_fd(ssl, fd) != 1) {
                SSL_free(ssl);
                return -EIO;
        }
        if (sni && sni[0] && !strchr(sni, ':') && strspn(sni, "0123456789.") != strlen(sni))
                (void) SSL_set_tlsext_host_name(ssl, sni);
        SSL_set_connect_state(ssl);
        *ret = ssl;
        return 0;
}

/* The result r of an SSL_* call: r > 0 as it is, -EAGAIN with *wants set when it would block, 0 at a
 * clean end, -EPROTO or -EIO on failure. */
ssize_t smtp_tls_result(SSL *ssl, int r, uint32_t *wants) {
        ssize_t x = tls_result(ssl, r, wants);

        if (x != -EIO && x != -EPROTO)
                return x;
        ERR_clear_error();
        return x == -EIO && errno == 0 ? 0 : x;
}

ssize_t smtp_io_send(SSL *ssl, int fd, const void *buf, size_t n, uint32_t *wants) {
        ssize_t r;

        if (ssl) {
                r = smtp_tls_result(ssl, SSL_write(ssl, buf, (int) MIN(n, (size_t) INT32_MAX)), wants);
                return r == 0 ? -EPIPE : r;
        }
        r = send(fd, buf, n, MSG_NOSIGNAL);
        return r < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : r;
}

ssize_t smtp_io_recv(SSL *ssl, int fd, void *buf, size_t n, uint32_t *wants) {
        ssize_t r;

        if (ssl)
                return smtp_tls_result(ssl, SSL_read(ssl, buf, (int) MIN(n, (size_t) INT32_MAX)), wants);
        r = recv(fd, buf, n, 0);
        return r < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : r;
}

void smtp_tls_log(SSL *ssl, const char *queue_id, const char *relay) {
        int bits = SSL_get_cipher_bits(ssl, NULL);

        log_mail(LOG_INFO, queue_id,
                 LOG_FIELDS({ "RELAY", relay }, { "TLS_PROTOCOL", SSL_get_version(ssl) },
                            { "TLS_CIPHER", SSL_get_cipher_name(ssl) }),
                 "Anonymous TLS connection established to %s: %s with cipher %s (%d/%d bits)", relay,
                 SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits, bits);
}
