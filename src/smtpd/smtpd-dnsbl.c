/* smtpd-dnsbl.c: the smtpd process's DNS blocklists: the query names (the client's address reversed for
 * reject_rbl_client, a domain for reject_rhsbl_*, under the blocklist's domain) and the filter of the A
 * records that list an entry. */
#include <assert.h>
#include <sys/socket.h>

#include "smtpd-dnsbl.h"

int smtpd_dnsbl_query_name(const SmtpdAddress *client, const char *domain, char *ret, size_t size) {
        char name[RESOLVER_NAME_MAX + 64 + 2];
        size_t n = 0;

        assert(size > RESOLVER_NAME_MAX);
        if (isempty(domain))
                return -EINVAL;
        if (client->family == AF_INET)
                n = (size_t) snprintf(name, sizeof name, "%u.%u.%u.%u.", client->bytes[3], client->bytes[2],
                                      client->bytes[1], client->bytes[0]);
        else if (client->family == AF_INET6)
                for (int i = 15; i >= 0; i--)
                        n += (size_t) snprintf(name + n, sizeof name - n, "%x.%x.", client->bytes[i] & 0xf,
                                               client->bytes[i] >> 4);
        else
                return -EAFNOSUPPORT;

        size_t dlen = strlen(domain);
        if (dlen > 0 && domain[dlen - 1] == '.')
                dlen--;
        if (dlen == 0 || n + dlen > RESOLVER_NAME_MAX)
                return -ENAMETOOLONG;
        memcpy(name + n, domain, dlen);
        name[n + dlen] = '\0';
        memcpy(ret, name, n + dlen + 1);
        return 0;
}

/* The length of name without its trailing dots. */
static size_t name_len(const char *name) {
        size_t n = strlen(name);

        while (n > 0 && name[n - 1] == '.')
                n--;
        return n;
}

int smtpd_rhsbl_query_name(const char *what, const char *domain, char *ret, size_t size) {
        const char *at = strrchr(what, '@'), *d = at ? at + 1 : what;
        char name[2 * RESOLVER_NAME_MAX + 2];
        size_t dlen = name_len(d), llen = name_len(domain);

        assert(size > RESOLVER_NAME_MAX);
        if (dlen == 0 || d[0] == '[' || llen == 0)
                return -EINVAL;
        if (dlen + 1 + llen > RESOLVER_NAME_MAX)
                return -ENAMETOOLONG;
        memcpy(name, d, dlen);
        name[dlen] = '.';
        memcpy(name + dlen + 1, domain, llen);
        name[dlen + 1 + llen] = '\0';
        if (resolver_name_valid(name) < 0)
                return -EINVAL;
        memcpy(ret, name, dlen + llen + 2);
        return 0;
}

static int octet_parse(const char **p, uint8_t *ret) {
        unsigned v = 0, digits = 0;

        while (**p >= '0' && **p <= '9') {
                v = v * 10 + (unsigned) (**p - '0');
                (*p)++;
                if (++digits > 3 || v > 255)
                        return -EINVAL;
        }
        if (digits == 0)
                return -EINVAL;
        *ret = (uint8_t) v;
        return 0;
}

int smtpd_dnsbl_filter_parse(const char *s, SmtpdDnsblFilter *ret) {
        SmtpdDnsblFilter f = {};
        const char *p = s;

        for (unsigned i = 0; i < 4; i++) {
                bool list;

                if (i > 0 && *p++ != '.')
                        return -EINVAL;
                list = *p == '[';
                if (list)
                        p++;
                for (;;) {
                        uint8_t lo, hi;

                        if (f.n[i] >= SMTPD_DNSBL_FILTER_RANGES || octet_parse(&p, &lo) < 0)
                                return -EINVAL;
                        hi = lo;
                        if (list && p[0] == '.' && p[1] == '.') {
                                p += 2;
                                if (octet_parse(&p, &hi) < 0 || hi < lo)
                                        return -EINVAL;
                        }
                        f.ranges[i][f.n[i]].lo = lo;
                        f.ranges[i][f.n[i]].hi = hi;
                        f.n[i]++;
                        if (!list)
                                break;
                        if (*p == ';') {
                                p++;
                                continue;
                        }
                        if (*p++ != ']')
                                return -EINVAL;
                        break;
                }
        }
        if (*p != '\0')
                return -EINVAL;
        *ret = f;
        return 0;
}

bool smtpd_dnsbl_filter_match(const SmtpdDnsblFilter *f, const uint8_t a[4]) {
        for (unsigned i = 0; i < 4; i++) {
                bool match = false;

                for (unsigned k = 0; k < f->n[i] && !match; k++)
                        match = a[i] >= f->ranges[i][k].lo && a[i] <= f->ranges[i][k].hi;
                if (!match)
                        return false;
        }
        return true;
}
