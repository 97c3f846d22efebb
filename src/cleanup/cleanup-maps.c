/* cleanup-maps.c: address masquerading. */
#include <stdio.h>
#include <strings.h>

#include "address-map.h"
#include "cleanup-maps.h"
#include "string-util.h"

int cleanup_masquerade(char **domains, char **exceptions, const char *addr, char **ret) {
        ssize_t at = address_map_at(addr);
        const char *domain;
        size_t dlen;
        char *out;

        if (at < 0 || !domains || !domains[0])
                return 0;
        domain = addr + at + 1;
        dlen = strlen(domain);
        for (char **e = exceptions; e && *e; e++)
                if (strlen(*e) == (size_t) at && strncasecmp(*e, addr, (size_t) at) == 0)
                        return 0;

        for (char **d = domains; *d; d++) {
                const char *m = *d;
                bool excluded = m[0] == '!';
                size_t mlen;

                m += excluded;
                mlen = strlen(m);
                if (mlen == 0)
                        continue;
                if (mlen == dlen && strcasecmp(m, domain) == 0)
                        return 0;       /* the domain itself: nothing to strip */
                if (mlen < dlen && domain[dlen - mlen - 1] == '.' && strcasecmp(m, domain + dlen - mlen) == 0) {
                        if (excluded)
                                return 0;
                        if (asprintf(&out, "%.*s@%s", (int) at, addr, m) < 0)
                                return -ENOMEM;
                        *ret = out;
                        return 1;
                }
        }
        return 0;
}
