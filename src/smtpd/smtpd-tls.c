/* smtpd-tls.c: OpenSSL under smtpd's sessions: one server context per service, and per session a
 * non-blocking handshake, read and write whose WANT_READ/WANT_WRITE results become the socket events
 * the session's io source waits for. Nothing here blocks; the caller bounds the handshake in time. */
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"
#include "smtpd-tls.h"
#include "tls-util.h"

struct SmtpdTls {
        SSL *ssl;
        uint32_t read_wants;            /* the events a blocked read waits for, 0 if none */
        uint32_t write_wants;           /* the same for a blocked write */
        uint32_t handshake_wants;
        bool shut;
        char error[256];
};

static const char *const level_names[_SMTPD_TLS_LEVEL_MAX] = {
        [SMTPD_TLS_NONE] = "none",
        [SMTPD_TLS_MAY] = "may",
        [SMTPD_TLS_ENCRYPT] = "encrypt",
};

SmtpdTlsLevel smtpd_tls_level_from_string(const char *s) {
        /* Postfix's empty value means none. */
        if (s && s[0] == '\0')
                return SMTPD_TLS_NONE;
        for (int i = 0; s && i < _SMTPD_TLS_LEVEL_MAX; i++)
                if (streq(s, level_names[i]))
                        return (SmtpdTlsLevel) i;
        return _SMTPD_TLS_LEVEL_INVALID;
}

const char *smtpd_tls_level_to_string(SmtpdTlsLevel l) {
        return l >= 0 && l < _SMTPD_TLS_LEVEL_MAX ? level_names[l] : NULL;
}

/* The oldest error of OpenSSL's queue as text, and the queue emptied. */
static void error_text(char *buf, size_t size) {
        unsigned long e = ERR_get_error();

        if (e == 0)
                (void) snprintf(buf, size, "unknown error");
        else
                ERR_error_string_n(e, buf, size);
        ERR_clear_error();
}

int smtpd_tls_context_new(const char *cert_file, const char *key_file, const char *where, SSL_CTX **ret) {
        SSL_CTX *ctx;
        char err[256];

        ERR_clear_error();
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx)
                return log_oom();
        /* TLS 1.0 and 1.1 are deprecated (RFC 8996). Compression invites CRIME; renegotiation by the
         * client is a denial-of-service lever and useless to SMTP. */
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
                goto fail;
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        /* No TLS 1.3 tickets either: nothing to resume, and nothing written behind the session's back. */
        (void) SSL_CTX_set_num_tickets(ctx, 0);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
        /* A client that closes the TCP connection without close_notify has simply gone: SMTP has its own
         * end (QUIT, the end of DATA), so no truncation attack is possible. */
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
        /* session_flush() moves its buffer between a write that would block and its retry. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
                error_text(err, sizeof err);
                log_error("%s: cannot use the certificate %s: %s", where, cert_file, err);
                SSL_CTX_free(ctx);
                return -EINVAL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
                error_text(err, sizeof err);
                log_error("%s: cannot use the private key %s (it must be readable by user postbus and match "
                          "the certificate): %s", where, key_file, err);
                SSL_CTX_free(ctx);
                return -EINVAL;
        }
        *ret = ctx;
        return 0;
fail:
        error_text(err, sizeof err);
        SSL_CTX_free(ctx);
        return log_error_errno(EIO, "Failed to set up a TLS context: %s", err);
}

int smtpd_tls_new(SSL_CTX *ctx, int fd, SmtpdTls **ret) {
        SmtpdTls *t;

        t = calloc(1, sizeof(SmtpdTls));
        if (!t)
                return -ENOMEM;
        ERR_clear_error();
        t->ssl = SSL_new(ctx);
        if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
                ERR_clear_error();
                smtpd_tls_free(t);
                return -ENOMEM;
        }
        SSL_set_accept_state(t->ssl);
        *ret = t;
        return 0;
}

SmtpdTls *smtpd_tls_free(SmtpdTls *t) {
        if (!t)
                return NULL;
        SSL_free(t->ssl);
        free(t);
        return NULL;
}

/* Turns the result r of an SSL_* call into what smtpd_tls_read() and friends return; *wants is set to
 * the events to wait for when the call would block. */
static ssize_t result(SmtpdTls *t, int r, uint32_t *wants) {
        ssize_t x = tls_result(t->ssl, r, wants);

        if (x != -EIO && x != -EPROTO)
                return x;
        if (x == -EIO && ERR_peek_error() == 0) {
                int saved = errno;
                (void) snprintf(t->error, sizeof t->error, "%s",
                                saved != 0 ? strerror(saved) : "unexpected end of file");
                ERR_clear_error();
                return -EIO;
        }
        error_text(t->error, sizeof t->error);
        return -EPROTO;
}

int smtpd_tls_handshake(SmtpdTls *t) {
        ssize_t r;

        ERR_clear_error();
        errno = 0;
        r = result(t, SSL_accept(t->ssl), &t->handshake_wants);
        if (r > 0)
                return 1;
        if (r == -EAGAIN)
                return 0;
        if (r == 0 && t->error[0] == '\0')
                (void) snprintf(t->error, sizeof t->error, "connection closed during the handshake");
        return -EPROTO;
}

ssize_t smtpd_tls_read(SmtpdTls *t, void *buf, size_t n) {
        ssize_t r;

        ERR_clear_error();
        errno = 0;
        r = result(t, SSL_read(t->ssl, buf, (int) MIN(n, (size_t) INT32_MAX)), &t->read_wants);
        /* A peer that closes the TCP connection without close_notify has closed it all the same. */
        if (r == -EIO && errno == 0)
                return 0;
        return r;
}

ssize_t smtpd_tls_write(SmtpdTls *t, const void *buf, size_t n) {
        ERR_clear_error();
        errno = 0;
        return result(t, SSL_write(t->ssl, buf, (int) MIN(n, (size_t) INT32_MAX)), &t->write_wants);
}

uint32_t smtpd_tls_events(const SmtpdTls *t, uint32_t wanted) {
        uint32_t events = 0;

        if (!SSL_is_init_finished(t->ssl))
                return t->handshake_wants ?: EPOLLIN;
        if (wanted & EPOLLIN)
                events |= t->read_wants ?: EPOLLIN;
        if (wanted & EPOLLOUT)
                events |= t->write_wants ?: EPOLLOUT;
        return events;
}

bool smtpd_tls_read_wants_write(const SmtpdTls *t) {
        return t->read_wants == EPOLLOUT;
}

bool smtpd_tls_pending(const SmtpdTls *t) {
        return SSL_pending(t->ssl) > 0;
}

void smtpd_tls_shutdown(SmtpdTls *t) {
        if (t->shut || !SSL_is_init_finished(t->ssl))
                return;
        t->shut = true;
        ERR_clear_error();
        (void) SSL_shutdown(t->ssl);
        ERR_clear_error();
}

const char *smtpd_tls_version(const SmtpdTls *t) {
        return SSL_get_version(t->ssl);
}

const char *smtpd_tls_cipher(const SmtpdTls *t) {
        return SSL_get_cipher_name(t->ssl);
}

int smtpd_tls_bits(const SmtpdTls *t) {
        return SSL_get_cipher_bits(t->ssl, NULL);
}

/* Postfix's names for the server's signature algorithm. */
static const char *signature_name(int nid) {
        switch (nid) {
        case EVP_PKEY_RSA:
                return "RSA";
        case EVP_PKEY_RSA_PSS:
                return "RSA-PSS";
        case EVP_PKEY_EC:
                return "ECDSA";
        case EVP_PKEY_ED25519:
                return "ED25519";
        case EVP_PKEY_ED448:
                return "ED448";
        default:
                return OBJ_nid2sn(nid);
        }
}

void smtpd_tls_received_info(const SmtpdTls *t, char cipher[static SMTPD_TLS_INFO_MAX],
                             char kex[static SMTPD_TLS_INFO_MAX]) {
        SSL *ssl = t->ssl;
        EVP_PKEY *key = SSL_get_privatekey(ssl);
        const char *group = NULL, *sig = NULL, *digest = NULL;
        int alg_bits = 0, bits = SSL_get_cipher_bits(ssl, &alg_bits), nid, n = 0;

        (void) snprintf(cipher, SMTPD_TLS_INFO_MAX, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
                        SSL_get_cipher_name(ssl), bits, alg_bits);
        kex[0] = '\0';
        /* Postfix's names: "X25519", "P-256" (NIST's name where a curve has one). */
        nid = SSL_get_negotiated_group(ssl);
        if (nid != NID_undef && !(nid & TLSEXT_nid_unknown))
                group = EC_curve_nid2nist(nid) ?: OBJ_nid2sn(nid);
        if (SSL_get_signature_type_nid(ssl, &nid) == 1)
                sig = signature_name(nid);
        if (SSL_get_signature_nid(ssl, &nid) == 1 && nid != NID_undef)
                digest = OBJ_nid2sn(nid);
        if (group)
                n += snprintf(kex + n, SMTPD_TLS_INFO_MAX - (size_t) n, "key-exchange %s", group);
        if (sig && key && n < SMTPD_TLS_INFO_MAX)
                n += snprintf(kex + n, SMTPD_TLS_INFO_MAX - (size_t) n, "%sserver-signature %s (%d bits)",
                              n > 0 ? " " : "", sig, EVP_PKEY_get_bits(key));
        if (digest && n < SMTPD_TLS_INFO_MAX)
                (void) snprintf(kex + n, SMTPD_TLS_INFO_MAX - (size_t) n, "%sserver-digest %s", n > 0 ? " " : "",
                                digest);
}

const char *smtpd_tls_error(const SmtpdTls *t) {
        return t->error[0] ? t->error : "unknown error";
}
