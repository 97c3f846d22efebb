/* smtp-tls-cache.c: postbus-smtp's TLS session cache, in the memory of the (long-lived) smtp process rather
 * than in Postfix's tlsmgr database: the last session each server gave us, so that the next connection resumes
 * it (a TLS 1.3 ticket, or a TLS 1.2 session ID or ticket) and saves a full handshake. A session is kept under
 * the next hop, the server address and name, and every TLS setting that decides what is checked (level, match
 * names, CA files), so that it is never resumed under another policy. Entries live
 * smtp_tls_session_cache_timeout at most (and no longer than the session itself); the oldest goes when
 * TLS_SESSION_CACHE_MAX are kept. Gone when the idle process exits. */
#include <openssl/ssl.h>

#include "log.h"
#include "smtp.h"

#define TLS_SESSION_CACHE_MAX 1000U

typedef struct TlsCacheEntry {
        char *key;
        SSL_SESSION *session;
        uint64_t expires;               /* CLOCK_MONOTONIC usec */
} TlsCacheEntry;

/* What a connection's SSL carries, for the new-session callback. */
typedef struct TlsCacheTag {
        uint64_t timeout;               /* usec */
        char key[];
} TlsCacheTag;

static TlsCacheEntry entries[TLS_SESSION_CACHE_MAX];
static size_t n_entries;
static int tag_index = -1;

static void entry_drop(size_t i) {
        free(entries[i].key);
        SSL_SESSION_free(entries[i].session);
        entries[i] = entries[--n_entries];
}

static ssize_t entry_find(const char *key) {
        for (size_t i = 0; i < n_entries; i++)
                if (streq(entries[i].key, key))
                        return (ssize_t) i;
        return -1;
}

static void tag_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        free(ptr);
}

/* OpenSSL hands us a session the server made resumable: after a TLS 1.2 handshake, or for each TLS 1.3
 * ticket (which comes after the handshake). Returns 1 when the cache took the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *session) {
        const TlsCacheTag *tag = SSL_get_ex_data(ssl, tag_index);
        uint64_t now = now_monotonic_usec(), lifetime;
        ssize_t i;
        char *key;

        if (!tag || !SSL_SESSION_is_resumable(session))
                return 0;
        lifetime = MIN(tag->timeout, (uint64_t) SSL_SESSION_get_timeout(session) * USEC_PER_SEC);
        if (lifetime == 0)
                return 0;
        i = entry_find(tag->key);
        if (i >= 0) {
                /* The newest ticket replaces the one before. */
                SSL_SESSION_free(entries[i].session);
                entries[i].session = session;
                entries[i].expires = now + lifetime;
                return 1;
        }
        key = strdup(tag->key);
        if (!key)
                return 0;
        for (size_t j = 0; j < n_entries;)
                if (entries[j].expires <= now)
                        entry_drop(j);
                else
                        j++;
        if (n_entries == TLS_SESSION_CACHE_MAX) {
                size_t oldest = 0;
                for (size_t j = 1; j < n_entries; j++)
                        if (entries[j].expires < entries[oldest].expires)
                                oldest = j;
                entry_drop(oldest);
        }
        entries[n_entries++] = (TlsCacheEntry) { key, session, now + lifetime };
        return 1;
}

int smtp_tls_cache_setup(SSL_CTX *ctx) {
        if (tag_index < 0) {
                tag_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, tag_free);
                if (tag_index < 0)
                        return -ENOMEM;
        }
        /* The client side only, and no store of OpenSSL's own: ours is keyed by policy. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
        return 0;
}

int smtp_tls_cache_attach(SSL *ssl, const char *key, uint64_t timeout) {
        TlsCacheTag *tag;
        ssize_t i;

        if (timeout == 0 || tag_index < 0)
                return 0;
        tag = malloc(sizeof(TlsCacheTag) + strlen(key) + 1);
        if (!tag)
                return -ENOMEM;
        tag->timeout = timeout;
        strcpy(tag->key, key);
        if (SSL_set_ex_data(ssl, tag_index, tag) != 1) {
                free(tag);
                return -ENOMEM;
        }
        i = entry_find(key);
        if (i < 0)
                return 0;
        if (entries[i].expires <= now_monotonic_usec() || !SSL_SESSION_is_resumable(entries[i].session)) {
                entry_drop((size_t) i);
                return 0;
        }
        if (SSL_set_session(ssl, entries[i].session) != 1)
                return 0;
        /* A TLS 1.3 ticket is for one use (RFC 8446, C.4): the new connection brings fresh ones. */
        if (SSL_SESSION_get_protocol_version(entries[i].session) >= TLS1_3_VERSION)
                entry_drop((size_t) i);
        return 1;
}

void smtp_tls_cache_cleanup(void) {
        while (n_entries > 0)
                entry_drop(n_entries - 1);
}
