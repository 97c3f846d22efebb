/* cleanup-maps.c: canonical and virtual alias lookups in Postfix's key order, and masquerading. */
#include <strings.h>

#include "cleanup-maps.h"
#include "config.h"
#include "string-util.h"

ssize_t cleanup_address_at(const char *addr) {
        ssize_t at = -1;
        bool quoted = false;

        for (size_t i = 0; addr[i]; i++) {
                if (addr[i] == '\\' && addr[i + 1])
                        i++;
                else if (addr[i] == '"')
                        quoted = !quoted;
                else if (addr[i] == '@' && !quoted)
                        at = (ssize_t) i;
        }
        return at;
}

int cleanup_table_lookup(void *table_list, const char *key, bool partial, char **ret_value) {
        return partial ? table_list_lookup_partial(table_list, key, ret_value)
                       : table_list_lookup(table_list, key, ret_value);
}

int cleanup_map_lookup(CleanupLookupFunc lookup, void *table, const char *addr, char **mydestination,
                       const char *myorigin, char **ret) {
        _cleanup_free_ char *value = NULL, *local = NULL, *key = NULL;
        ssize_t at = cleanup_address_at(addr);
        const char *domain = at >= 0 ? addr + at + 1 : NULL;
        int r;

        if (isempty(addr))
                return 0;
        r = lookup(table, addr, false, &value);
        if (r == 0 && domain) {
                local = strndup(addr, (size_t) at);
                if (!local)
                        return -ENOMEM;
                if (config_list_contains_domain(mydestination, domain) ||
                    (myorigin && strcasecmp(domain, myorigin) == 0))
                        r = lookup(table, local, true, &value);
                if (r == 0) {
                        if (asprintf(&key, "@%s", domain) < 0)
                                return -ENOMEM;
                        r = lookup(table, key, true, &value);
                }
        }
        if (r <= 0)
                return r;

        char *v = strstrip(value), *out;
        if (v[0] == '@' && at >= 0) {
                if (asprintf(&out, "%.*s%s", (int) at, addr, v) < 0)
                        return -ENOMEM;
        } else {
                out = strdup(v);
                if (!out)
                        return -ENOMEM;
        }
        *ret = out;
        return 1;
}

int cleanup_masquerade(char **domains, char **exceptions, const char *addr, char **ret) {
        ssize_t at = cleanup_address_at(addr);
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
