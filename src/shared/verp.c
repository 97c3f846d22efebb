/* verp.c: VERP delimiters and the per-recipient senders they make (verp.h); a library function of every
 * role that deals with VERP mail. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "verp.h"

bool verp_delimiters_valid(const char *delims, const char *filter) {
        return delims && filter && strlen(delims) == 2 && strchr(filter, delims[0]) && strchr(filter, delims[1]);
}

int verp_sender(const char *sender, const char *delims, const char *recipient, char **ret) {
        const char *s_at, *r_at, *s_domain, *r_domain;
        size_t s_local, r_local;
        char *s;

        if (!sender || !sender[0] || !delims || strlen(delims) != 2 || !recipient)
                return -EINVAL;
        s_at = strrchr(sender, '@');
        r_at = strrchr(recipient, '@');
        s_local = s_at ? (size_t) (s_at - sender) : strlen(sender);
        r_local = r_at ? (size_t) (r_at - recipient) : strlen(recipient);
        /* A domain part only where there is one: "user" gives owner-list+user@origin. */
        s_domain = s_at && s_at[1] ? s_at + 1 : NULL;
        r_domain = r_at && r_at[1] ? r_at + 1 : NULL;
        if (asprintf(&s, "%.*s%c%.*s%s%s%s%s", (int) s_local, sender, delims[0], (int) r_local, recipient,
                     r_domain ? (const char[]) { delims[1], '\0' } : "", r_domain ?: "",
                     s_domain ? "@" : "", s_domain ?: "") < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}
