/* smtp-hostcache.c: postbus-smtp's memory of how server addresses performed (beyond Postfix, which only
 * randomises equal MX preferences): within one preference, addresses that answered recently and quickly go
 * first, and an address that timed out or refused is tried only after all others for
 * smtp_host_failure_cache_time. In-process state; it is gone when the idle process exits. */
#include <arpa/inet.h>
#include <inttypes.h>

#include "log.h"
#include "smtp.h"

#define HOSTCACHE_MAX 1024U

typedef struct HostEntry {
        char key[sizeof(struct sockaddr_un) + 8];      /* "[addr]:port" */
        uint64_t fail_until;                    /* CLOCK_MONOTONIC usec; 0 or past: not failing */
        uint64_t fail_until_realtime;           /* the same in CLOCK_REALTIME, as reported to qmgr */
        uint64_t ok_at;                         /* when it last greeted us; 0: never */
        uint64_t latency;                       /* connect to greeting, the last time */
        uint64_t used;
        char reason[128];                       /* why it entered the cache */
} HostEntry;

static HostEntry entries[HOSTCACHE_MAX];
static size_t n_entries;

static bool address_port(const SmtpAddress *a, uint16_t *ret) {
        if (a->sockaddr.sa.sa_family == AF_INET)
                *ret = ntohs(a->sockaddr.in.sin_port);
        else if (a->sockaddr.sa.sa_family == AF_INET6)
                *ret = ntohs(a->sockaddr.in6.sin6_port);
        else
                return false;
        return true;
}

/* "[addr]:port", which is unambiguous for IPv6 too. */
static bool address_key(const SmtpAddress *a, char *buf, size_t size) {
        uint16_t port;

        if (!address_port(a, &port))
                return false;
        (void) snprintf(buf, size, "[%s]:%u", a->text, port);
        return true;
}

/* The entry of a; with create, a new one (the least recently used one is reused when full). */
static HostEntry *entry_find(const SmtpAddress *a, bool create) {
        char key[sizeof entries[0].key];
        HostEntry *oldest = NULL;

        if (!address_key(a, key, sizeof key))
                return NULL;
        for (size_t i = 0; i < n_entries; i++) {
                if (streq(entries[i].key, key))
                        return entries + i;
                if (!oldest || entries[i].used < oldest->used)
                        oldest = entries + i;
        }
        if (!create)
                return NULL;
        if (n_entries < HOSTCACHE_MAX)
                oldest = entries + n_entries++;
        *oldest = (HostEntry) {};
        memcpy(oldest->key, key, sizeof key);
        return oldest;
}

bool smtp_hostcache_failing(const SmtpAddress *a) {
        const HostEntry *e = entry_find(a, false);

        return e && e->fail_until > now_monotonic_usec();
}

uint64_t smtp_hostcache_failing_until(const SmtpAddress *a, const char **ret_reason) {
        const HostEntry *e = entry_find(a, false);

        if (!e || e->fail_until <= now_monotonic_usec())
                return 0;
        if (ret_reason)
                *ret_reason = e->reason;
        return e->fail_until_realtime;
}

void smtp_hostcache_ok(const SmtpAddress *a, uint64_t latency) {
        HostEntry *e = entry_find(a, true);

        if (!e)
                return;
        e->used = e->ok_at = now_monotonic_usec();
        e->fail_until = 0;
        e->latency = latency;
}

void smtp_hostcache_fail(const SmtpAddress *a, uint64_t cache_time, const char *queue_id, const char *reason) {
        uint64_t now = now_monotonic_usec();
        HostEntry *e;
        char seconds[32], relay[sizeof a->host + sizeof e->key];

        if (cache_time == 0)
                return;
        e = entry_find(a, true);
        if (!e)
                return;
        e->used = now;
        e->ok_at = 0;
        (void) snprintf(e->reason, sizeof e->reason, "%s", reason);
        e->fail_until_realtime = now_realtime_usec() + cache_time;
        if (e->fail_until > now) {
                e->fail_until = now + cache_time;
                return;
        }
        e->fail_until = now + cache_time;
        (void) snprintf(seconds, sizeof seconds, "%" PRIu64, (uint64_t) (cache_time / USEC_PER_SEC));
        (void) snprintf(relay, sizeof relay, "%s%s", a->host, e->key);
        log_mail(LOG_NOTICE, queue_id,
                 LOG_FIELDS({ "HOST", a->host }, { "HOST_ADDRESS", a->text }, { "RELAY", relay },
                            { "HOST_CACHE_REASON", reason }, { "HOST_CACHE_SECONDS", seconds }),
                 "host %s enters the host failure cache for %ss: %s", relay, seconds, reason);
}

/* How good an address looks: lower is better. Failing ones after every other; within one preference, those
 * that greeted us within cache_time by their latency, then the ones not known. */
static void rank(const SmtpAddress *a, uint64_t now, uint64_t cache_time, bool *ret_failing, uint64_t *ret_score) {
        const HostEntry *e = entry_find(a, false);

        *ret_failing = e && e->fail_until > now;
        if (e && !*ret_failing && e->ok_at > 0 && now - e->ok_at < cache_time)
                *ret_score = e->latency;
        else
                *ret_score = UINT64_MAX;
}

void smtp_hostcache_sort(SmtpAddress *a, size_t n, uint64_t cache_time, bool family_bound) {
        uint64_t now = now_monotonic_usec();
        bool *failing;
        uint64_t *score;

        if (cache_time == 0 || n < 2)
                return;
        failing = calloc(n, sizeof(bool));
        score = calloc(n, sizeof(uint64_t));
        if (failing && score) {
                for (size_t i = 0; i < n; i++)
                        rank(a + i, now, cache_time, failing + i, score + i);
                /* A stable insertion sort: lists are short (smtp_mx_address_limit). */
                for (size_t i = 1; i < n; i++) {
                        SmtpAddress t = a[i];
                        bool tf = failing[i];
                        uint64_t ts = score[i];
                        size_t j = i;
                        for (; j > 0; j--) {
                                bool before = (!tf && failing[j - 1]) ||
                                              (tf == failing[j - 1] && !tf && t.preference == a[j - 1].preference &&
                                               (!family_bound || t.sockaddr.sa.sa_family ==
                                                                 a[j - 1].sockaddr.sa.sa_family) &&
                                               ts < score[j - 1]);
                                if (!before)
                                        break;
                                a[j] = a[j - 1];
                                failing[j] = failing[j - 1];
                                score[j] = score[j - 1];
                        }
                        a[j] = t;
                        failing[j] = tf;
                        score[j] = ts;
                }
        }
        free(failing);
        free(score);
}
