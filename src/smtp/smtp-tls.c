/* smtp-tls.c: STARTTLS for postbus-smtp with OpenSSL: a client context per set of trusted CAs, non-blocking
 * handshakes, reads and writes that say which event they wait for, and the trust in the server: levels may
 * and encrypt take any certificate, verify and secure need one from a trusted CA that holds a name of the
 * match strategy (smtp_tls_verify_cert_match, smtp_tls_secure_cert_match, or the policy's match=). */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>

#include "log.h"
#include "smtp.h"
#include "tls-util.h"

/* One client context per set of trusted CAs (smtp_tls_CAfile, smtp_tls_CApath), made when first needed. */
#define TLS_CONTEXTS_MAX 8U

typedef struct TlsContext {
        char *cafile, *capath;
        SSL_CTX *ctx;
} TlsContext;

static TlsContext contexts[TLS_CONTEXTS_MAX];
static size_t n_contexts;

int smtp_tls_level_from_string(const char *s) {
        if (isempty(s) || streq(s, "none"))
                return SMTP_TLS_NONE;
        if (streq(s, "may"))
                return SMTP_TLS_MAY;
        if (streq(s, "encrypt"))
                return SMTP_TLS_ENCRYPT;
        if (streq(s, "verify"))
                return SMTP_TLS_VERIFY;
        if (streq(s, "secure"))
                return SMTP_TLS_SECURE;
        return -EINVAL;
}

void smtp_tls_cleanup(void) {
        smtp_tls_cache_cleanup();
        for (size_t i = 0; i < n_contexts; i++) {
                SSL_CTX_free(contexts[i].ctx);
                free(contexts[i].cafile);
                free(contexts[i].capath);
        }
        n_contexts = 0;
}

static SSL_CTX *context_get(const char *cafile, const char *capath) {
        TlsContext *t;
        SSL_CTX *ctx;

        cafile = strempty(cafile);
        capath = strempty(capath);
        for (size_t i = 0; i < n_contexts; i++)
                if (streq(contexts[i].cafile, cafile) && streq(contexts[i].capath, capath))
                        return contexts[i].ctx;
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx)
                return NULL;
        /* Never fail the handshake on the certificate: the level decides after it (SSL_get_verify_result()). */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        (void) SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (smtp_tls_cache_setup(ctx) < 0) {
                SSL_CTX_free(ctx);
                return NULL;
        }
        if ((cafile[0] || capath[0]) &&
            SSL_CTX_load_verify_locations(ctx, cafile[0] ? cafile : NULL, capath[0] ? capath : NULL) != 1) {
                log_warning("Cannot load the trusted CA certificates of smtp_tls_CAfile=%s smtp_tls_CApath=%s; "
                            "no server certificate is verified with them.", cafile, capath);
                ERR_clear_error();
        }
        if (n_contexts == TLS_CONTEXTS_MAX) {
                /* Rare (as many CA sets as transports): the oldest context goes; its sessions hold references. */
                SSL_CTX_free(contexts[0].ctx);
                free(contexts[0].cafile);
                free(contexts[0].capath);
                memmove(contexts, contexts + 1, (TLS_CONTEXTS_MAX - 1) * sizeof(TlsContext));
                n_contexts--;
        }
        t = contexts + n_contexts;
        t->cafile = strdup(cafile);
        t->capath = strdup(capath);
        if (!t->cafile || !t->capath) {
                free(t->cafile);
                free(t->capath);
                SSL_CTX_free(ctx);
                return NULL;
        }
        t->ctx = ctx;
        n_contexts++;
        return ctx;
}

/* The names the certificate must hold at verify and secure, from the match strategies: hostname (the
 * server's name), nexthop, dot-nexthop (any name under it), or a literal name. */
static int add_match_names(SSL *ssl, const SmtpSettings *set, const char *hostname) {
        _cleanup_free_ char *copy = strdup(strempty(set->tls_match));
        char *state = NULL, buf[300];
        bool any = false;

        if (!copy)
                return -ENOMEM;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        for (char *w = strtok_r(copy, " ,:\t", &state); w; w = strtok_r(NULL, " ,:\t", &state)) {
                const char *name = w;
                if (streq(w, "hostname"))
                        name = hostname;
                else if (streq(w, "nexthop"))
                        name = set->tls_nexthop;
                else if (streq(w, "dot-nexthop")) {
                        (void) snprintf(buf, sizeof buf, ".%s", strempty(set->tls_nexthop));
                        name = buf;
                }
                if (isempty(name) || SSL_add1_host(ssl, name) != 1)
                        continue;
                any = true;
        }
        /* No name to match: nothing can be verified. */
        if (!any && SSL_add1_host(ssl, "invalid.") != 1)
                return -EIO;
        return 0;
}

int smtp_tls_new(int fd, const SmtpSettings *set, const char *hostname, const char *server, SSL **ret) {
        SSL_CTX *ctx = context_get(set->tls_cafile, set->tls_capath);
        _cleanup_free_ char *key = NULL;
        SSL *ssl;

        if (!ctx)
                return -ENOMEM;
        ssl = SSL_new(ctx);
        if (!ssl)
                return -ENOMEM;
        if (SSL_set_fd(ssl, fd) != 1 ||
            (set->tls_level >= SMTP_TLS_VERIFY && add_match_names(ssl, set, hostname) < 0)) {
                SSL_free(ssl);
                return -EIO;
        }
        if (hostname && hostname[0] && !strchr(hostname, ':') && strspn(hostname, "0123456789.") != strlen(hostname))
                (void) SSL_set_tlsext_host_name(ssl, hostname);
        /* Everything that decides what the handshake checks is in the key. */
        if (asprintf(&key, "%s|%s|%d|%s|%s|%s|%s", server, strempty(hostname), set->tls_level,
                     set->tls_level >= SMTP_TLS_VERIFY ? strempty(set->tls_match) : "", strempty(set->tls_nexthop),
                     strempty(set->tls_cafile), strempty(set->tls_capath)) < 0)
                key = NULL;
        if (!key || smtp_tls_cache_attach(ssl, key, set->tls_session_cache_timeout) < 0) {
                SSL_free(ssl);
                return -ENOMEM;
        }
        SSL_set_connect_state(ssl);
        *ret = ssl;
        return 0;
}

SmtpTlsTrust smtp_tls_trust(SSL *ssl, int level) {
        X509 *peer = SSL_get_peer_certificate(ssl);
        long v = SSL_get_verify_result(ssl);

        if (!peer)
                return SMTP_TLS_ANONYMOUS;
        X509_free(peer);
        if (v == X509_V_OK)
                return level >= SMTP_TLS_VERIFY ? SMTP_TLS_VERIFIED : SMTP_TLS_TRUSTED;
        /* The chain was good (it is checked first); only the name was not. */
        if (v == X509_V_ERR_HOSTNAME_MISMATCH)
                return SMTP_TLS_TRUSTED;
        return SMTP_TLS_UNTRUSTED;
}

static const char *const trust_name[] = {
        [SMTP_TLS_ANONYMOUS] = "Anonymous",
        [SMTP_TLS_UNTRUSTED] = "Untrusted",
        [SMTP_TLS_TRUSTED] = "Trusted",
        [SMTP_TLS_VERIFIED] = "Verified",
};

void smtp_tls_describe(SSL *ssl, SmtpTlsTrust trust, char *buf, size_t size) {
        (void) snprintf(buf, size, "%s %s with cipher %s", trust_name[trust], SSL_get_version(ssl),
                        SSL_get_cipher_name(ssl));
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

void smtp_tls_log(SSL *ssl, SmtpTlsTrust trust, const char *queue_id, const char *relay) {
        int bits = SSL_get_cipher_bits(ssl, NULL);
        char *verify = NULL;
        long v = SSL_get_verify_result(ssl);
        bool resumed = SSL_session_reused(ssl) == 1;

        if (v != X509_V_OK && trust != SMTP_TLS_ANONYMOUS)
                verify = (char *) X509_verify_cert_error_string(v);
        log_mail(LOG_INFO, queue_id,
                 LOG_FIELDS({ "RELAY", relay }, { "TLS_PROTOCOL", SSL_get_version(ssl) },
                            { "TLS_CIPHER", SSL_get_cipher_name(ssl) }, { "TLS_TRUST", trust_name[trust] },
                            { "TLS_VERIFY_ERROR", verify }, { "TLS_SESSION_RESUMED", resumed ? "yes" : "no" }),
                 "%s TLS connection established to %s: %s with cipher %s (%d/%d bits)%s", trust_name[trust], relay,
                 SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits, bits, resumed ? ", session resumed" : "");
}
