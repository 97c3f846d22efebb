/* smtpd-mynetworks.c: the smtpd process's client addresses and the address lists they are matched against:
 * $mynetworks (the clients that may relay) and its like. */
#include <netinet/in.h>

#include "config.h"
#include "log.h"
#include "smtpd-mynetworks.h"

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int smtpd_address_from_sockaddr(const struct sockaddr *sa, socklen_t len, SmtpdAddress *ret) {
        SmtpdAddress a = { .family = AF_UNSPEC };

        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

                a.family = AF_INET;
                memcpy(a.bytes, &in->sin_addr, 4);
                a.port = ntohs(in->sin_port);
        } else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;

                if (memcmp(in6->sin6_addr.s6_addr, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
                        a.family = AF_INET;
                        memcpy(a.bytes, in6->sin6_addr.s6_addr + 12, 4);
                } else {
                        a.family = AF_INET6;
                        memcpy(a.bytes, in6->sin6_addr.s6_addr, 16);
                }
                a.port = ntohs(in6->sin6_port);
        }

        if (a.family == AF_UNSPEC)
                strcpy(a.text, "unknown");
        else if (!inet_ntop(a.family, a.bytes, a.text, sizeof a.text))
                return -errno;
        *ret = a;
        return 0;
}

static int prefixlen_parse(const char *s, unsigned max, unsigned *ret) {
        unsigned v = 0;

        if (*s == '\0' || strlen(s) > 3)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (*s - '0');
        }
        if (v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int smtpd_network_parse(const char *s, SmtpdNetwork *ret) {
        char addr[INET6_ADDRSTRLEN];
        const char *slash = strchr(s, '/'), *a = s;
        size_t alen = slash ? (size_t) (slash - s) : strlen(s);
        SmtpdNetwork n = {};

        if (alen >= 2 && s[0] == '[') {
                if (s[alen - 1] != ']')
                        return -EINVAL;
                a++;
                alen -= 2;
        }
        if (alen == 0 || alen >= sizeof addr)
                return -EINVAL;
        memcpy(addr, a, alen);
        addr[alen] = '\0';

        if (inet_pton(AF_INET, addr, n.bytes) == 1 && a == s)
                n.family = AF_INET;
        else if (inet_pton(AF_INET6, addr, n.bytes) == 1)
                n.family = AF_INET6;
        else
                return -EINVAL;

        unsigned max = n.family == AF_INET ? 32 : 128;
        n.prefixlen = max;
        if (slash && prefixlen_parse(slash + 1, max, &n.prefixlen) < 0)
                return -EINVAL;

        /* A network with host bits set is almost always a typo for a different network. */
        for (unsigned bit = n.prefixlen; bit < max; bit++)
                if (n.bytes[bit / 8] & (0x80 >> (bit % 8)))
                        return -EDOM;
        /* An IPv4-mapped network (Debian's "[::ffff:127.0.0.0]/104"): clients that connect over IPv6 from a
         * mapped address are taken as IPv4 clients (above), so the network becomes the IPv4 one it maps. */
        if (n.family == AF_INET6 && n.prefixlen >= 96 &&
            memcmp(n.bytes, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
                n.family = AF_INET;
                memmove(n.bytes, n.bytes + 12, 4);
                memset(n.bytes + 4, 0, 12);
                n.prefixlen -= 96;
        }
        *ret = n;
        return 0;
}

int smtpd_networks_parse(const char *value, const char *where, SmtpdNetworks *ret) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ SmtpdNetwork *items = NULL;
        size_t n = 0;
        int r;

        r = config_split_list(value, &l);
        if (r < 0)
                return r;
        for (char **i = l; *i; i++)
                n++;
        items = calloc(MAX(n, (size_t) 1), sizeof(SmtpdNetwork));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = smtpd_network_parse(l[i], items + i);
                if (r == -EDOM)
                        return log_error_errno(r, "%s: mynetworks: \"%s\" has bits set beyond its prefix "
                                               "length.", where, l[i]);
                if (r < 0)
                        return log_error_errno(r, "%s: mynetworks: \"%s\" is not an address or network "
                                               "(like 192.0.2.0/24 or [2001:db8::]/32).", where, l[i]);
        }
        *ret = (SmtpdNetworks) { .items = TAKE_PTR(items), .n = n };
        return 0;
}

void smtpd_networks_done(SmtpdNetworks *l) {
        free(l->items);
        *l = (SmtpdNetworks) {};
}

static bool network_contains(const SmtpdNetwork *n, const SmtpdAddress *a) {
        unsigned full = n->prefixlen / 8, rest = n->prefixlen % 8;

        if (n->family != a->family)
                return false;
        if (memcmp(n->bytes, a->bytes, full) != 0)
                return false;
        if (rest == 0)
                return true;
        uint8_t mask = (uint8_t) (0xff << (8 - rest));
        return (n->bytes[full] & mask) == (a->bytes[full] & mask);
}

bool smtpd_networks_match(const SmtpdNetworks *l, const SmtpdAddress *a) {
        for (size_t i = 0; i < l->n; i++)
                if (network_contains(l->items + i, a))
                        return true;
        return false;
}
