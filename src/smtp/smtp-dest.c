/* smtp-dest.c: from a next hop to the server addresses postbus-smtp tries, in order, as Postfix's smtp(8)
 * finds them: an IP literal or a unix socket as it is; a name in brackets (or any LMTP name) by its A/AAAA
 * records; a domain by its MX records, in preference order (random among equal ones, which the resolver
 * does), each host by its addresses, at most smtp_mx_address_limit of them; without MX, the domain's own
 * addresses. A Null MX bounces, NXDOMAIN bounces, a DNS failure defers. Lookups are asynchronous (c-ares). */
#include <arpa/inet.h>
#include <stdarg.h>

#include "log.h"
#include "resolver.h"
#include "smtp.h"

static sd_event *dest_event;
static Resolver *resolver;

typedef struct SmtpDest SmtpDest;

typedef struct DestHost {
        SmtpDest *dest;
        char *name;
        unsigned preference;
        ResolverQuery *query;
        ResolverStatus status;
        ResolverAddress *addresses;
        size_t n_addresses;
        bool done;
} DestHost;

struct SmtpDest {
        SmtpCall *call;
        SmtpHop hop;
        sd_event_source *defer;         /* literal next hops: the answer from the event loop */
        ResolverQuery *mx_query;
        DestHost *hosts;                /* in the order to try */
        size_t n_hosts;
        size_t n_pending;
        SmtpAddress *addresses;
        size_t n_addresses;
        char dsn[16];
        char text[700];
};

int smtp_dest_setup(sd_event *e) {
        dest_event = e;
        return 0;
}

void smtp_dest_cleanup(void) {
        resolver = resolver_free(resolver);
}

static int get_resolver(Resolver **ret) {
        int r;

        if (!resolver) {
                r = resolver_new(dest_event, &resolver);
                if (r < 0)
                        return r;
        }
        *ret = resolver;
        return 0;
}

SmtpDest *smtp_dest_free(SmtpDest *d) {
        if (!d)
                return NULL;
        sd_event_source_disable_unref(d->defer);
        resolver_query_cancel(d->mx_query);
        for (size_t i = 0; i < d->n_hosts; i++) {
                resolver_query_cancel(d->hosts[i].query);
                free(d->hosts[i].name);
                free(d->hosts[i].addresses);
        }
        free(d->hosts);
        free(d->addresses);
        free(d);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpDest *, smtp_dest_free);

/* Hands the outcome to the call, which takes the addresses, and frees d. */
static void dest_finish(SmtpDest *d) {
        SmtpCall *c = d->call;
        SmtpAddress *a = TAKE_PTR(d->addresses);
        size_t n = d->n_addresses;
        char dsn[16], text[700];

        memcpy(dsn, d->dsn, sizeof dsn);
        memcpy(text, d->text, sizeof text);
        smtp_dest_free(d);
        smtp_call_dest_done(c, a, n, dsn, text);
}

static int address_add(SmtpDest *d, const char *host, unsigned preference, int family, const void *bytes) {
        SmtpAddress *n = realloc(d->addresses, (d->n_addresses + 1) * sizeof(SmtpAddress)), *a;

        if (!n)
                return -ENOMEM;
        d->addresses = n;
        a = n + d->n_addresses++;
        *a = (SmtpAddress) {};
        (void) snprintf(a->host, sizeof a->host, "%s", host);
        a->preference = preference;
        if (family == AF_INET) {
                a->sockaddr.in.sin_family = AF_INET;
                a->sockaddr.in.sin_port = htons(d->hop.port);
                memcpy(&a->sockaddr.in.sin_addr, bytes, 4);
                a->socklen = sizeof a->sockaddr.in;
        } else {
                a->sockaddr.in6.sin6_family = AF_INET6;
                a->sockaddr.in6.sin6_port = htons(d->hop.port);
                memcpy(&a->sockaddr.in6.sin6_addr, bytes, 16);
                a->socklen = sizeof a->sockaddr.in6;
        }
        (void) inet_ntop(family, bytes, a->text, sizeof a->text);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        dest_finish(userdata);
        return 0;
}

static void fail(SmtpDest *d, const char *dsn, const char *fmt, ...) _printf_(3, 4);
static void fail(SmtpDest *d, const char *dsn, const char *fmt, ...) {
        va_list ap;

        (void) snprintf(d->dsn, sizeof d->dsn, "%s", dsn);
        va_start(ap, fmt);
        (void) vsnprintf(d->text, sizeof d->text, fmt, ap);
        va_end(ap);
}

/* smtp_address_preference: within one MX preference, the addresses of the preferred family first (a stable
 * sort: DNS order otherwise). Runs before smtp_mx_address_limit cuts the list. */
static void order_by_family(DestHost *hosts, size_t n_hosts, int preferred, size_t *order, size_t n) {
        size_t k = 0;

        for (size_t i = 0; i < n_hosts; i++)
                for (size_t j = 0; j < hosts[i].n_addresses; j++)
                        order[k++] = i << 16 | j;
        if (preferred == AF_UNSPEC)
                return;
        for (size_t i = 1; i < n; i++) {
                size_t t = order[i], m = i;
                const DestHost *ht = hosts + (t >> 16);
                bool tp = ht->addresses[t & 0xffff].family == preferred;
                for (; m > 0; m--) {
                        const DestHost *hp = hosts + (order[m - 1] >> 16);
                        bool pp = hp->addresses[order[m - 1] & 0xffff].family == preferred;
                        if (hp->preference != ht->preference || !tp || pp)
                                break;
                        order[m] = order[m - 1];
                }
                order[m] = t;
        }
}

/* Every host's addresses are in: the list in host order, at most smtp_mx_address_limit long. */
static void hosts_done(SmtpDest *d, const char *type) {
        unsigned limit = smtp_call_settings(d->call)->mx_address_limit;
        bool tempfail = false;
        size_t n = 0;
        _cleanup_free_ size_t *order = NULL;

        for (size_t i = 0; i < d->n_hosts; i++) {
                if (d->hosts[i].status == RESOLVER_TEMPFAIL)
                        tempfail = true;
                /* At most 65536 addresses per host are kept (a DNS reply holds far fewer). */
                d->hosts[i].n_addresses = MIN(d->hosts[i].n_addresses, (size_t) 0xffff);
                n += d->hosts[i].n_addresses;
        }
        order = calloc(MAX(n, 1U), sizeof(size_t));
        if (!order) {
                fail(d, "4.3.0", "out of memory");
                dest_finish(d);
                return;
        }
        order_by_family(d->hosts, d->n_hosts, smtp_call_settings(d->call)->address_preference, order, n);
        for (size_t k = 0; k < n; k++) {
                DestHost *h = d->hosts + (order[k] >> 16);
                size_t j = order[k] & 0xffff;
                if (limit > 0 && d->n_addresses >= limit)
                        break;
                if (address_add(d, h->name, h->preference, h->addresses[j].family, h->addresses[j].bytes) < 0) {
                        fail(d, "4.3.0", "out of memory");
                        d->n_addresses = 0;
                        dest_finish(d);
                        return;
                }
        }
        if (d->n_addresses == 0) {
                /* As Postfix: a name that exists nowhere bounces; a DNS failure defers. */
                if (tempfail)
                        fail(d, "4.4.3", "Host or domain name not found. Name service error for name=%s type=%s: "
                             "Host not found, try again", d->n_hosts == 1 ? d->hosts[0].name : d->hop.host, type);
                else
                        fail(d, "5.4.4", "Host or domain name not found. Name service error for name=%s type=%s: "
                             "Host not found", d->n_hosts == 1 ? d->hosts[0].name : d->hop.host, type);
        }
        dest_finish(d);
}

static void on_address(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        DestHost *h = userdata;
        SmtpDest *d = h->dest;

        h->query = NULL;
        h->status = reply->status;
        h->done = true;
        if (reply->status == RESOLVER_FOUND && reply->n_addresses > 0) {
                h->addresses = calloc(reply->n_addresses, sizeof(ResolverAddress));
                if (h->addresses) {
                        memcpy(h->addresses, reply->addresses, reply->n_addresses * sizeof(ResolverAddress));
                        h->n_addresses = reply->n_addresses;
                } else
                        h->status = RESOLVER_TEMPFAIL;
        }
        if (--d->n_pending == 0)
                hosts_done(d, "A");
}

/* Looks up the addresses of every host of d->hosts at once; 1 when no lookup could start. */
static int hosts_lookup(SmtpDest *d) {
        Resolver *res;
        int r;

        r = get_resolver(&res);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_hosts; i++) {
                /* inet_protocols: only the families asked for are looked up. */
                r = resolver_lookup_address(res, d->hosts[i].name, smtp_call_settings(d->call)->address_family,
                                            on_address, d->hosts + i, &d->hosts[i].query);
                if (r == -EINVAL) {
                        /* A name that cannot be asked for has no address. */
                        d->hosts[i].status = RESOLVER_NXDOMAIN;
                        d->hosts[i].done = true;
                        continue;
                }
                if (r < 0)
                        return r;
                d->n_pending++;
        }
        return d->n_pending == 0;
}

static int hosts_new(SmtpDest *d, size_t n) {
        d->hosts = calloc(n, sizeof(DestHost));
        if (!d->hosts)
                return -ENOMEM;
        return 0;
}

static int host_add(SmtpDest *d, const char *name, unsigned preference) {
        DestHost *h = d->hosts + d->n_hosts;

        h->dest = d;
        h->preference = preference;
        h->name = strdup(name);
        if (!h->name)
                return -ENOMEM;
        d->n_hosts++;
        return 0;
}

static void on_mx(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        SmtpDest *d = userdata;
        int r = 0;

        d->mx_query = NULL;
        switch (reply->status) {
        case RESOLVER_FOUND:
                r = hosts_new(d, reply->n_mx);
                for (size_t i = 0; r >= 0 && i < reply->n_mx; i++)
                        r = host_add(d, reply->mx[i].host, reply->mx[i].preference);
                break;
        case RESOLVER_NODATA:
                /* No MX: the domain's own addresses, as if it were its own MX. */
                r = hosts_new(d, 1);
                if (r >= 0)
                        r = host_add(d, d->hop.host, 0);
                break;
        case RESOLVER_NULL_MX:
                fail(d, "5.1.10", "Domain %s does not accept mail (nullMX)", d->hop.host);
                dest_finish(d);
                return;
        case RESOLVER_NXDOMAIN:
                fail(d, "5.4.4", "Host or domain name not found. Name service error for name=%s type=MX: "
                     "Host not found", d->hop.host);
                dest_finish(d);
                return;
        default:
                fail(d, "4.4.3", "Host or domain name not found. Name service error for name=%s type=MX: "
                     "Host not found, try again", d->hop.host);
                dest_finish(d);
                return;
        }
        if (r >= 0)
                r = hosts_lookup(d);
        if (r == 1)
                hosts_done(d, "A");
        else if (r < 0) {
                fail(d, "4.4.3", "cannot look up the addresses of %s: %s", d->hop.host, strerror(-r));
                dest_finish(d);
        }
}

int smtp_dest_start(SmtpCall *call, const char *nexthop, SmtpDest **ret) {
        _cleanup_(smtp_dest_freep) SmtpDest *d = NULL;
        const SmtpSettings *set = smtp_call_settings(call);
        struct in6_addr a6;
        struct in_addr a4;
        Resolver *res;
        int r;

        d = calloc(1, sizeof(SmtpDest));
        if (!d)
                return -ENOMEM;
        d->call = call;
        r = smtp_hop_parse(nexthop, set->lmtp, set->lmtp ? 24 : 25, &d->hop);
        if (r < 0)
                return r;

        if (d->hop.kind == SMTP_HOP_UNIX || inet_pton(AF_INET, d->hop.host, &a4) == 1 ||
            inet_pton(AF_INET6, d->hop.host, &a6) == 1) {
                if (d->hop.kind == SMTP_HOP_UNIX) {
                        SmtpAddress *a = calloc(1, sizeof(SmtpAddress));
                        if (!a)
                                return -ENOMEM;
                        d->addresses = a;
                        d->n_addresses = 1;
                        (void) gethostname(a->host, sizeof a->host - 1);
                        a->sockaddr.un.sun_family = AF_UNIX;
                        strcpy(a->sockaddr.un.sun_path, d->hop.host);
                        a->socklen = sizeof a->sockaddr.un;
                        /* smtp_hop_parse() allows no longer path than sun_path holds. */
                        memcpy(a->text, d->hop.host, MIN(strlen(d->hop.host) + 1, sizeof a->text));
                        a->text[sizeof a->text - 1] = '\0';
                } else {
                        bool v4 = inet_pton(AF_INET, d->hop.host, &a4) == 1;
                        r = address_add(d, d->hop.host, 0, v4 ? AF_INET : AF_INET6, v4 ? (void *) &a4 : (void *) &a6);
                        if (r < 0)
                                return r;
                }
                r = sd_event_add_defer(smtp_call_event(call), &d->defer, on_defer, d);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(d);
                return 0;
        }

        if (resolver_name_valid(d->hop.host) < 0)
                return -EINVAL;
        r = get_resolver(&res);
        if (r < 0)
                return r;
        if (d->hop.mx) {
                r = resolver_lookup_mx(res, d->hop.host, on_mx, d, &d->mx_query);
                if (r < 0)
                        return r;
        } else {
                r = hosts_new(d, 1);
                if (r >= 0)
                        r = host_add(d, d->hop.host, 0);
                if (r < 0)
                        return r;
                r = hosts_lookup(d);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(d);
        return 0;
}
