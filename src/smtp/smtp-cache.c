/* smtp-cache.c: postbus-smtp's connection cache, Postfix's smtp_connection_cache_* in process (one process
 * drives every session, so no scache daemon is needed): after a transaction a session may wait here, idle,
 * for the next delivery to the same destination, which sends RSET and goes on in it. An idle session is
 * closed when smtp_connection_cache_time_limit passes, or when the server speaks or hangs up. */
#include <assert.h>

#include "log.h"
#include "smtp-session.h"

/* Most idle sessions kept at once, over all destinations: the oldest goes first when full. */
#define SMTP_CACHE_MAX 1000U

static SmtpSession *cached;             /* the most recently kept first */
static size_t n_cached;

void smtp_cache_remove(SmtpSession *s) {
        if (!s->cache_key)
                return;
        if (s->cache_prev)
                s->cache_prev->cache_next = s->cache_next;
        else
                cached = s->cache_next;
        if (s->cache_next)
                s->cache_next->cache_prev = s->cache_prev;
        s->cache_next = s->cache_prev = NULL;
        s->cache_key = mfree(s->cache_key);
        n_cached--;
}

void smtp_cache_put(SmtpSession *s, const char *key, uint64_t idle_limit) {
        assert(!s->call && !s->cache_key);

        s->cache_key = strdup(key);
        if (!s->cache_key) {
                s->finished = true;
                return;
        }
        if (n_cached >= SMTP_CACHE_MAX) {
                SmtpSession *oldest = cached;
                while (oldest->cache_next)
                        oldest = oldest->cache_next;
                smtp_session_free(oldest);
        }
        s->stage = SMTP_STAGE_IDLE;
        s->tls_wants = 0;       /* only what the server sends (or its hangup) ends an idle session */
        s->idle_since = now_monotonic_usec();
        session_set_timeout(s, idle_limit);
        s->cache_next = cached;
        if (cached)
                cached->cache_prev = s;
        cached = s;
        n_cached++;
}

SmtpSession *smtp_cache_take(const char *key) {
        for (SmtpSession *s = cached; s; s = s->cache_next)
                if (streq(s->cache_key, key)) {
                        smtp_cache_remove(s);
                        return s;
                }
        return NULL;
}

void smtp_cache_free_all(void) {
        while (cached)
                smtp_session_free(cached);
}
