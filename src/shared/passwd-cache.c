/* passwd-cache.c: see passwd-cache.h. Run by local and smtpd. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "macro.h"
#include "passwd-cache.h"

static struct {
        struct passwd pw;               /* its strings in buf */
        char *buf;
        uint64_t expire;                /* CLOCK_MONOTONIC */
} pw_cache[PASSWD_CACHE_SIZE];
static unsigned pw_cache_next;

struct passwd *getpwnam_recent(const char *user) {
        uint64_t now = now_monotonic_usec();
        struct passwd *pw;
        size_t slot = pw_cache_next;

        for (size_t k = 0; k < PASSWD_CACHE_SIZE; k++)
                if (pw_cache[k].buf && streq(pw_cache[k].pw.pw_name, user)) {
                        if (pw_cache[k].expire > now)
                                return &pw_cache[k].pw;
                        slot = k;
                        break;
                }
        errno = 0;
        pw = getpwnam(user);
        if (!pw)
                return NULL;
        const char *fields[] = { pw->pw_name, pw->pw_passwd, pw->pw_gecos, pw->pw_dir, pw->pw_shell };
        size_t len[ELEMENTSOF(fields)], total = 0;
        for (size_t k = 0; k < ELEMENTSOF(fields); k++)
                total += len[k] = strlen(strempty(fields[k])) + 1;
        char *buf = malloc(total);
        if (!buf)
                return pw;      /* not kept: getpwnam()'s own, as without a cache */
        char *out[ELEMENTSOF(fields)], *at = buf;
        for (size_t k = 0; k < ELEMENTSOF(fields); k++) {
                out[k] = memcpy(at, strempty(fields[k]), len[k]);
                at += len[k];
        }
        free(pw_cache[slot].buf);
        pw_cache[slot].buf = buf;
        pw_cache[slot].pw = (struct passwd) { out[0], out[1], pw->pw_uid, pw->pw_gid, out[2], out[3], out[4] };
        pw_cache[slot].expire = now + PASSWD_CACHE_USEC;
        if (slot == pw_cache_next)
                pw_cache_next = (pw_cache_next + 1) % PASSWD_CACHE_SIZE;
        return &pw_cache[slot].pw;
}
