/* resolver.c: the shared asynchronous resolver: c-ares channels whose sockets and retries run on sd-event,
 * and the MX, address, PTR, A and TXT lookups of resolver.h. Runs in every role that resolves names.
 *
 * c-ares checks that a reply comes from the server asked (its UDP sockets are connected), carries the
 * query's random ID and repeats the question. c-ares cannot cancel one query, so a cancelled lookup (or
 * one past its deadline) stays allocated, without callback, until c-ares is done with it. */
#include <ares.h>
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <netdb.h>
#include <sys/random.h>

#include "daemon.h"
#include "log.h"
#include "resolver.h"

/* glibc's defaults for "options timeout:n attempts:n" (resolv.conf(5)). */
#define RESOLVER_TIMEOUT_MSEC_DEFAULT 5000U
#define RESOLVER_ATTEMPTS_DEFAULT 2U
#define RESOLVER_ATTEMPTS_MAX 5U
#define RESOLVER_TIMEOUT_MSEC_MAX 30000U

/* DNS class and types (RFC 1035, RFC 3596); arpa/nameser.h would bring sys/param.h's MIN and MAX. */
#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_PTR 12
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28

typedef enum QueryKind {
        QUERY_MX,
        QUERY_ADDRESS,
        QUERY_PTR,
        QUERY_A,
        QUERY_TXT,
} QueryKind;

/* One c-ares query; an address lookup of AF_UNSPEC has two (A and AAAA). */
typedef struct SubQuery {
        ResolverQuery *query;
        int type;                       /* the DNS type asked */
        bool pending;                   /* c-ares still holds it */
        ResolverStatus status;
        const char *detail;
} SubQuery;

struct ResolverQuery {
        Resolver *resolver;
        ResolverQuery *prev, *next;     /* the resolver's list of live queries */
        QueryKind kind;
        SubQuery sub[2];
        unsigned n_sub;
        ResolverAddress ptr_address;

        ResolverCallback callback;
        void *userdata;
        bool starting;                  /* inside resolver_lookup_*(): delivery must be deferred */
        bool complete;                  /* the result is decided (or the lookup was cancelled) */
        bool orphaned;                  /* delivered or cancelled: freed when c-ares lets go */
        sd_event_source *deadline, *defer;

        ResolverStatus status;
        const char *detail;
        ResolverMx *mx;
        size_t n_mx;
        ResolverAddress *addresses;
        size_t n_addresses;
        char **names;
        size_t n_names;
        char **txt;
        size_t n_txt;
};

typedef struct ResolverWatch {
        int fd;
        sd_event_source *source;
} ResolverWatch;

struct Resolver {
        sd_event *event;
        ares_channel channel;
        bool channel_ready;
        bool destroying;
        uint64_t deadline_usec;         /* per lookup, as the caller sees it */
        sd_event_source *timer;         /* c-ares's next retry */
        ResolverWatch *watches;
        size_t n_watches;
        ResolverQuery *queries;
};

static const char *const status_table[_RESOLVER_STATUS_MAX] = {
        [RESOLVER_FOUND] = "found",
        [RESOLVER_NXDOMAIN] = "nxdomain",
        [RESOLVER_NODATA] = "nodata",
        [RESOLVER_NULL_MX] = "null-mx",
        [RESOLVER_TEMPFAIL] = "tempfail",
};

const char *resolver_status_to_string(ResolverStatus s) {
        if (s < 0 || s >= _RESOLVER_STATUS_MAX)
                return NULL;
        return status_table[s];
}

int resolver_name_valid(const char *name) {
        size_t len, label = 0;

        if (!name)
                return -EINVAL;
        len = strlen(name);
        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0 || len > RESOLVER_NAME_MAX)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) name[i];

                /* c-ares reads a backslash as an escape; control characters and spaces are no name's. */
                if (c <= ' ' || c >= 0x7F || c == '\\')
                        return -EINVAL;
                if (c == '.') {
                        if (label == 0)
                                return -EINVAL;
                        label = 0;
                } else if (++label > 63)
                        return -EINVAL;
        }
        return 0;
}

bool resolver_address_equal(const ResolverAddress *a, const ResolverAddress *b) {
        if (a->family != b->family)
                return false;
        return memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

int resolver_ptr_name(const ResolverAddress *addr, char *ret, size_t size) {
        size_t n = 0;

        assert(size > RESOLVER_NAME_MAX);
        if (addr->family == AF_INET)
                (void) snprintf(ret, size, "%u.%u.%u.%u.in-addr.arpa", addr->bytes[3], addr->bytes[2],
                                addr->bytes[1], addr->bytes[0]);
        else if (addr->family == AF_INET6) {
                for (int i = 15; i >= 0; i--)
                        n += (size_t) snprintf(ret + n, size - n, "%x.%x.", addr->bytes[i] & 0xf,
                                               addr->bytes[i] >> 4);
                (void) snprintf(ret + n, size - n, "ip6.arpa");
        } else
                return -EAFNOSUPPORT;
        return 0;
}

/* The c-ares event glue. */

static void resolver_update_timer(Resolver *r) {
        struct timeval tv, *t;
        uint64_t now;

        if (!r->channel_ready || r->destroying)
                return;
        t = ares_timeout(r->channel, NULL, &tv);
        if (!t) {
                (void) sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);
                return;
        }
        if (sd_event_now(r->event, CLOCK_MONOTONIC, &now) < 0)
                now = now_monotonic_usec();
        (void) sd_event_source_set_time(r->timer, now + (uint64_t) t->tv_sec * USEC_PER_SEC + (uint64_t) t->tv_usec);
        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Resolver *r = userdata;

        ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        resolver_update_timer(r);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Resolver *r = userdata;
        bool readable = revents & (EPOLLIN | EPOLLERR | EPOLLHUP);

        /* An error is read by c-ares as a failed read, so that it moves to the next server. */
        ares_process_fd(r->channel, readable ? fd : ARES_SOCKET_BAD,
                        revents & EPOLLOUT ? fd : ARES_SOCKET_BAD);
        resolver_update_timer(r);
        return 0;
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
        Resolver *r = data;
        uint32_t events = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
        size_t i;

        for (i = 0; i < r->n_watches; i++)
                if (r->watches[i].fd == fd)
                        break;

        if (events == 0) {
                if (i == r->n_watches)
                        return;
                sd_event_source_disable_unref(r->watches[i].source);
                r->watches[i] = r->watches[--r->n_watches];
                return;
        }
        if (i < r->n_watches) {
                if (sd_event_source_set_io_events(r->watches[i].source, events) < 0)
                        log_warning("Failed to watch DNS socket %i, ignoring.", fd);
                return;
        }

        /* c-ares gives us no way to fail here: without a watch its query ends at its timeout. */
        ResolverWatch *w = reallocarray(r->watches, r->n_watches + 1, sizeof(ResolverWatch));
        if (!w) {
                log_warning("Out of memory watching DNS socket %i, ignoring.", fd);
                return;
        }
        r->watches = w;
        w[r->n_watches] = (ResolverWatch) { .fd = fd };
        if (sd_event_add_io(r->event, &w[r->n_watches].source, fd, events, on_io, r) < 0) {
                log_warning("Failed to watch DNS socket %i, ignoring.", fd);
                return;
        }
        r->n_watches++;
}

/* Queries. */

static void query_clear_results(ResolverQuery *q) {
        for (size_t i = 0; i < q->n_mx; i++)
                free(q->mx[i].host);
        q->mx = mfree(q->mx);
        q->n_mx = 0;
        q->addresses = mfree(q->addresses);
        q->n_addresses = 0;
        for (size_t i = 0; i < q->n_names; i++)
                free(q->names[i]);
        q->names = mfree(q->names);
        q->n_names = 0;
        for (size_t i = 0; i < q->n_txt; i++)
                free(q->txt[i]);
        q->txt = mfree(q->txt);
        q->n_txt = 0;
}

static bool query_pending(const ResolverQuery *q) {
        for (unsigned i = 0; i < q->n_sub; i++)
                if (q->sub[i].pending)
                        return true;
        return false;
}

static void query_free(ResolverQuery *q) {
        Resolver *r = q->resolver;

        if (q->prev)
                q->prev->next = q->next;
        else if (r->queries == q)
                r->queries = q->next;
        if (q->next)
                q->next->prev = q->prev;
        sd_event_source_disable_unref(q->deadline);
        sd_event_source_disable_unref(q->defer);
        query_clear_results(q);
        free(q);
}

/* The caller is done with q (delivered or cancelled): free it now, or when c-ares lets go of it. */
static void query_release(ResolverQuery *q) {
        q->complete = true;
        q->orphaned = true;
        q->callback = NULL;
        q->deadline = sd_event_source_disable_unref(q->deadline);
        q->defer = sd_event_source_disable_unref(q->defer);
        query_clear_results(q);
        if (!query_pending(q))
                query_free(q);
}

ResolverQuery *resolver_query_cancel(ResolverQuery *q) {
        if (q)
                query_release(q);
        return NULL;
}

static void query_deliver(ResolverQuery *q) {
        ResolverReply reply = {
                .status = q->status,
                .detail = q->detail ?: "",
                .mx = q->mx,
                .n_mx = q->n_mx,
                .addresses = q->addresses,
                .n_addresses = q->n_addresses,
                .names = q->names,
                .n_names = q->n_names,
                .txt = q->txt,
                .n_txt = q->n_txt,
        };
        ResolverCallback cb = q->callback;

        q->deadline = sd_event_source_disable_unref(q->deadline);
        q->defer = sd_event_source_disable_unref(q->defer);
        /* Orphaned before the callback, so that a (forbidden) cancel from inside it is harmless. */
        q->orphaned = true;
        if (cb)
                cb(q, &reply, q->userdata);
        query_release(q);
}

static int on_defer(sd_event_source *s, void *userdata) {
        query_deliver(userdata);
        return 0;
}

/* Decides the lookup's status from its sub-queries, and delivers it (later, if still inside the start). */
static void query_complete(ResolverQuery *q) {
        static const ResolverStatus order[] = { RESOLVER_FOUND, RESOLVER_NULL_MX, RESOLVER_TEMPFAIL,
                                                RESOLVER_NXDOMAIN, RESOLVER_NODATA };

        q->complete = true;
        q->status = RESOLVER_TEMPFAIL;
        q->detail = NULL;
        for (size_t k = 0; k < ELEMENTSOF(order) && !q->detail; k++)
                for (unsigned i = 0; i < q->n_sub; i++)
                        if (q->sub[i].status == order[k]) {
                                q->status = order[k];
                                q->detail = q->sub[i].detail;
                                break;
                        }
        if (q->status != RESOLVER_FOUND)
                query_clear_results(q);

        if (q->starting) {
                /* resolver_lookup_*() sees that no defer source came and fails if so. */
                (void) sd_event_add_defer(q->resolver->event, &q->defer, on_defer, q);
                return;
        }
        query_deliver(q);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        ResolverQuery *q = userdata;

        for (unsigned i = 0; i < q->n_sub; i++)
                if (q->sub[i].pending) {
                        q->sub[i].status = RESOLVER_TEMPFAIL;
                        q->sub[i].detail = "Timeout while contacting DNS servers";
                }
        query_complete(q);
        return 0;
}

static char *name_dup_lower(const char *s) {
        size_t len = strlen(s);
        char *n;

        if (len > 0 && s[len - 1] == '.')
                len--;
        n = strndup(s, len);
        if (n)
                for (char *p = n; *p; p++)
                        *p = (char) tolower((unsigned char) *p);
        return n;
}

static int mx_compare(const void *a, const void *b) {
        const ResolverMx *x = a, *y = b;

        return (int) x->preference - (int) y->preference;
}

static int parse_mx(ResolverQuery *q, const unsigned char *abuf, int alen) {
        struct ares_mx_reply *list = NULL;
        size_t n = 0, dots = 0;
        int k;

        k = ares_parse_mx_reply(abuf, alen, &list);
        if (k != ARES_SUCCESS)
                return k;
        for (struct ares_mx_reply *m = list; m; m = m->next) {
                n++;
                if (isempty(m->host) || streq(m->host, "."))
                        dots++;
        }
        if (n == 1 && dots == 1) {
                ares_free_data(list);
                return -EDOM;   /* the Null MX */
        }
        q->mx = calloc(n, sizeof(ResolverMx));
        if (!q->mx) {
                ares_free_data(list);
                return ARES_ENOMEM;
        }
        for (struct ares_mx_reply *m = list; m; m = m->next) {
                if (isempty(m->host) || streq(m->host, "."))
                        continue;
                q->mx[q->n_mx].preference = m->priority;
                q->mx[q->n_mx].host = name_dup_lower(m->host);
                if (!q->mx[q->n_mx].host) {
                        ares_free_data(list);
                        return ARES_ENOMEM;
                }
                q->n_mx++;
        }
        ares_free_data(list);
        if (q->n_mx == 0)
                return ARES_ENODATA;

        /* Shuffle, then sort with ties broken by position: equal preferences end in random order. */
        for (size_t i = q->n_mx - 1; i > 0; i--) {
                uint32_t rnd = 0;
                size_t j;
                ResolverMx t;

                if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
                        rnd = (uint32_t) random();
                j = rnd % (i + 1);
                t = q->mx[i];
                q->mx[i] = q->mx[j];
                q->mx[j] = t;
        }
        /* Insertion sort is stable; the list is bounded by one reply. */
        for (size_t i = 1; i < q->n_mx; i++)
                for (size_t j = i; j > 0 && mx_compare(&q->mx[j - 1], &q->mx[j]) > 0; j--) {
                        ResolverMx t = q->mx[j];
                        q->mx[j] = q->mx[j - 1];
                        q->mx[j - 1] = t;
                }
        return ARES_SUCCESS;
}

static int parse_addresses(ResolverQuery *q, int type, const unsigned char *abuf, int alen) {
        struct hostent *host = NULL;
        size_t n = 0;
        int k, family = type == DNS_TYPE_A ? AF_INET : AF_INET6;

        k = type == DNS_TYPE_A ? ares_parse_a_reply(abuf, alen, &host, NULL, NULL)
                           : ares_parse_aaaa_reply(abuf, alen, &host, NULL, NULL);
        if (k != ARES_SUCCESS)
                return k;
        while (host->h_addr_list && host->h_addr_list[n])
                n++;
        if (n == 0 || host->h_addrtype != family) {
                ares_free_hostent(host);
                return ARES_ENODATA;
        }
        ResolverAddress *a = reallocarray(q->addresses, q->n_addresses + n, sizeof(ResolverAddress));
        if (!a) {
                ares_free_hostent(host);
                return ARES_ENOMEM;
        }
        q->addresses = a;
        /* IPv4 first: the A sub-query's addresses go before what the AAAA one stored already. */
        if (family == AF_INET) {
                memmove(a + n, a, q->n_addresses * sizeof(ResolverAddress));
                a = q->addresses;
        } else
                a = q->addresses + q->n_addresses;
        for (size_t i = 0; i < n; i++) {
                a[i] = (ResolverAddress) { .family = family };
                memcpy(a[i].bytes, host->h_addr_list[i], family == AF_INET ? 4 : 16);
        }
        q->n_addresses += n;
        ares_free_hostent(host);
        return ARES_SUCCESS;
}

static int parse_ptr(ResolverQuery *q, const unsigned char *abuf, int alen) {
        struct hostent *host = NULL;
        const ResolverAddress *a = &q->ptr_address;
        size_t n = 0;
        int k;

        k = ares_parse_ptr_reply(abuf, alen, a->bytes, a->family == AF_INET ? 4 : 16, a->family, &host);
        if (k != ARES_SUCCESS)
                return k;
        /* c-ares lists every PTR name among the aliases, and the last again as h_name. */
        while (host->h_aliases && host->h_aliases[n])
                n++;
        q->names = calloc(MAX(n, 1U), sizeof(char *));
        if (!q->names) {
                ares_free_hostent(host);
                return ARES_ENOMEM;
        }
        for (size_t i = 0; i < MAX(n, 1U); i++) {
                const char *name = n > 0 ? host->h_aliases[i] : host->h_name;

                if (isempty(name))
                        continue;
                q->names[q->n_names] = name_dup_lower(name);
                if (!q->names[q->n_names]) {
                        ares_free_hostent(host);
                        return ARES_ENOMEM;
                }
                q->n_names++;
        }
        ares_free_hostent(host);
        return q->n_names > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static int parse_txt(ResolverQuery *q, const unsigned char *abuf, int alen) {
        struct ares_txt_ext *list = NULL;
        size_t n = 0;
        int k;

        k = ares_parse_txt_reply_ext(abuf, alen, &list);
        if (k != ARES_SUCCESS)
                return k;
        for (struct ares_txt_ext *t = list; t; t = t->next)
                if (t->record_start || !q->txt)
                        n++;
        q->txt = calloc(n + 1, sizeof(char *));
        if (!q->txt) {
                ares_free_data(list);
                return ARES_ENOMEM;
        }
        for (struct ares_txt_ext *t = list; t; t = t->next) {
                size_t old = 0;
                char *s;

                if (t->record_start || q->n_txt == 0)
                        q->n_txt++;
                if (q->txt[q->n_txt - 1])
                        old = strlen(q->txt[q->n_txt - 1]);
                s = realloc(q->txt[q->n_txt - 1], old + t->length + 1);
                if (!s) {
                        ares_free_data(list);
                        return ARES_ENOMEM;
                }
                for (size_t i = 0; i < t->length; i++)
                        s[old + i] = t->txt[i] >= 0x20 && t->txt[i] < 0x7F ? (char) t->txt[i] : '?';
                s[old + t->length] = '\0';
                q->txt[q->n_txt - 1] = s;
        }
        ares_free_data(list);
        return q->n_txt > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static void sub_set(SubQuery *s, int ares_status) {
        switch (ares_status) {
        case ARES_SUCCESS:
                s->status = RESOLVER_FOUND;
                s->detail = "Found";
                break;
        case ARES_ENOTFOUND:
                s->status = RESOLVER_NXDOMAIN;
                s->detail = "Host not found";
                break;
        case ARES_ENODATA:
                s->status = RESOLVER_NODATA;
                s->detail = "No record of the requested type";
                break;
        case -EDOM:
                s->status = RESOLVER_NULL_MX;
                s->detail = "Domain does not accept mail (null MX)";
                break;
        case ARES_ETIMEOUT:
                s->status = RESOLVER_TEMPFAIL;
                s->detail = "Timeout while contacting DNS servers";
                break;
        default:
                /* SERVFAIL, REFUSED, FORMERR, NOTIMP, unreachable servers, a reply we cannot read: all of
                 * them may be better on another try. */
                s->status = RESOLVER_TEMPFAIL;
                s->detail = ares_strerror(ares_status);
                break;
        }
}

static void on_ares_reply(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
        SubQuery *s = arg;
        ResolverQuery *q = s->query;

        s->pending = false;
        /* resolver_free() frees every query after ares_destroy() has called back for each. */
        if (q->resolver->destroying)
                return;
        if (q->complete) {
                if (q->orphaned && !query_pending(q))
                        query_free(q);
                return;
        }

        if (status == ARES_SUCCESS) {
                switch (q->kind) {
                case QUERY_MX:
                        status = parse_mx(q, abuf, alen);
                        break;
                case QUERY_ADDRESS:
                case QUERY_A:
                        status = parse_addresses(q, s->type, abuf, alen);
                        break;
                case QUERY_PTR:
                        status = parse_ptr(q, abuf, alen);
                        break;
                case QUERY_TXT:
                        status = parse_txt(q, abuf, alen);
                        break;
                }
        }
        sub_set(s, status);
        if (!query_pending(q))
                query_complete(q);
}

static int query_start(Resolver *r, QueryKind kind, const char *name, const int types[], unsigned n_types,
                       const ResolverAddress *ptr_address, ResolverCallback callback, void *userdata,
                       ResolverQuery **ret_query) {
        ResolverQuery *q;
        uint64_t now;
        int k;

        assert(r);
        assert(callback);
        assert(n_types >= 1 && n_types <= 2);
        if (resolver_name_valid(name) < 0)
                return -EINVAL;

        q = calloc(1, sizeof(ResolverQuery));
        if (!q)
                return -ENOMEM;
        q->resolver = r;
        q->kind = kind;
        q->callback = callback;
        q->userdata = userdata;
        if (ptr_address)
                q->ptr_address = *ptr_address;
        q->next = r->queries;
        if (r->queries)
                r->queries->prev = q;
        r->queries = q;

        if (sd_event_now(r->event, CLOCK_MONOTONIC, &now) < 0)
                now = now_monotonic_usec();
        /* Within a tenth of a second: the event loop need not set its timerfd again for each query. */
        k = sd_event_add_time(r->event, &q->deadline, CLOCK_MONOTONIC, now + r->deadline_usec, USEC_PER_SEC / 10,
                              on_deadline, q);
        if (k < 0) {
                query_free(q);
                return k;
        }

        q->n_sub = n_types;
        for (unsigned i = 0; i < n_types; i++)
                q->sub[i] = (SubQuery) { .query = q, .type = types[i], .pending = true };
        q->starting = true;
        for (unsigned i = 0; i < n_types; i++)
                ares_query(r->channel, name, DNS_CLASS_IN, types[i], on_ares_reply, &q->sub[i]);
        q->starting = false;
        resolver_update_timer(r);

        if (q->complete && !q->defer) {
                /* It ended at once, and its delivery could not be scheduled. */
                query_release(q);
                return -ENOMEM;
        }
        if (ret_query)
                *ret_query = q;
        return 0;
}

int resolver_lookup_mx(Resolver *r, const char *domain, ResolverCallback callback, void *userdata,
                       ResolverQuery **ret_query) {
        static const int types[] = { DNS_TYPE_MX };

        return query_start(r, QUERY_MX, domain, types, 1, NULL, callback, userdata, ret_query);
}

int resolver_lookup_address(Resolver *r, const char *host, int family, ResolverCallback callback, void *userdata,
                            ResolverQuery **ret_query) {
        static const int a[] = { DNS_TYPE_A }, aaaa[] = { DNS_TYPE_AAAA }, both[] = { DNS_TYPE_A, DNS_TYPE_AAAA };

        switch (family) {
        case AF_INET:
                return query_start(r, QUERY_ADDRESS, host, a, 1, NULL, callback, userdata, ret_query);
        case AF_INET6:
                return query_start(r, QUERY_ADDRESS, host, aaaa, 1, NULL, callback, userdata, ret_query);
        case AF_UNSPEC:
                return query_start(r, QUERY_ADDRESS, host, both, 2, NULL, callback, userdata, ret_query);
        default:
                return -EAFNOSUPPORT;
        }
}

int resolver_lookup_ptr(Resolver *r, const ResolverAddress *addr, ResolverCallback callback, void *userdata,
                        ResolverQuery **ret_query) {
        static const int types[] = { DNS_TYPE_PTR };
        char name[RESOLVER_NAME_MAX + 1];
        int k;

        k = resolver_ptr_name(addr, name, sizeof name);
        if (k < 0)
                return k;
        return query_start(r, QUERY_PTR, name, types, 1, addr, callback, userdata, ret_query);
}

int resolver_lookup(Resolver *r, const char *name, ResolverType type, ResolverCallback callback, void *userdata,
                    ResolverQuery **ret_query) {
        static const int a[] = { DNS_TYPE_A }, txt[] = { DNS_TYPE_TXT };

        switch (type) {
        case RESOLVER_TYPE_A:
                return query_start(r, QUERY_A, name, a, 1, NULL, callback, userdata, ret_query);
        case RESOLVER_TYPE_TXT:
                return query_start(r, QUERY_TXT, name, txt, 1, NULL, callback, userdata, ret_query);
        default:
                return -EINVAL;
        }
}

/* The resolver. */

/* "options timeout:n attempts:n" of /etc/resolv.conf, with glibc's defaults; c-ares's own defaults (four
 * tries, each round twice as long) would hold a session for over a minute when the server is dead. */
static void read_resolv_options(unsigned *ret_timeout_msec, unsigned *ret_attempts) {
        _cleanup_fclose_ FILE *f = NULL;
        char line[1024];

        *ret_timeout_msec = RESOLVER_TIMEOUT_MSEC_DEFAULT;
        *ret_attempts = RESOLVER_ATTEMPTS_DEFAULT;
        f = fopen("/etc/resolv.conf", "re");
        if (!f)
                return;
        while (fgets(line, sizeof line, f)) {
                char *save = NULL, *w = strtok_r(line, " \t\r\n", &save);

                if (!w || !streq(w, "options"))
                        continue;
                while ((w = strtok_r(NULL, " \t\r\n", &save))) {
                        unsigned v;

                        if (sscanf(w, "timeout:%u", &v) == 1 && v >= 1)
                                *ret_timeout_msec = MIN(v * 1000U, RESOLVER_TIMEOUT_MSEC_MAX);
                        else if (sscanf(w, "attempts:%u", &v) == 1 && v >= 1)
                                *ret_attempts = MIN(v, RESOLVER_ATTEMPTS_MAX);
                }
        }
}

static int resolver_new_full(sd_event *e, const ResolverAddress *server, uint16_t port, unsigned timeout_msec,
                             unsigned attempts, Resolver **ret) {
        _cleanup_(resolver_freep) Resolver *r = NULL;
        struct ares_options options = {};
        int k;

        assert(e);
        assert(ret);

        r = calloc(1, sizeof(Resolver));
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(e);
        /* The caller sees an answer within this time; c-ares doubles its timeout per round of servers. */
        r->deadline_usec = (uint64_t) timeout_msec * attempts * USEC_PER_MSEC;

        k = ares_library_init(ARES_LIB_INIT_ALL);
        if (k != ARES_SUCCESS)
                return log_error_errno(ENOMEM, "Failed to initialise c-ares: %s", ares_strerror(k));

        options.flags = ARES_FLAG_NOSEARCH;
        options.timeout = (int) timeout_msec;
        options.tries = (int) attempts;
        options.sock_state_cb = on_sock_state;
        options.sock_state_cb_data = r;
        k = ares_init_options(&r->channel,
                              &options,
                              ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
        if (k != ARES_SUCCESS) {
                ares_library_cleanup();
                return log_error_errno(k == ARES_ENOMEM ? ENOMEM : EIO, "Failed to initialise the resolver: %s",
                                       ares_strerror(k));
        }
        r->channel_ready = true;

        if (server) {
                struct ares_addr_port_node node = {
                        .family = server->family,
                        .udp_port = port,
                        .tcp_port = port,
                };

                memcpy(&node.addr, server->bytes, server->family == AF_INET ? 4 : 16);
                k = ares_set_servers_ports(r->channel, &node);
                if (k != ARES_SUCCESS)
                        return log_error_errno(EINVAL, "Failed to set the DNS server: %s", ares_strerror(k));
        }

        k = sd_event_add_time(e, &r->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer, r);
        if (k < 0)
                return log_error_errno(k, "Failed to add the resolver timer: %m");
        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);

        *ret = TAKE_PTR(r);
        return 0;
}

int resolver_new(sd_event *e, Resolver **ret) {
        unsigned timeout_msec, attempts;

        read_resolv_options(&timeout_msec, &attempts);
        return resolver_new_full(e, NULL, 0, timeout_msec, attempts, ret);
}

int resolver_new_with_server(sd_event *e, const ResolverAddress *addr, uint16_t port, unsigned timeout_msec,
                             unsigned attempts, Resolver **ret) {
        assert(addr);
        if (timeout_msec == 0 || attempts == 0)
                return -EINVAL;
        return resolver_new_full(e, addr, port, timeout_msec, attempts, ret);
}

Resolver *resolver_free(Resolver *r) {
        if (!r)
                return NULL;
        r->destroying = true;
        if (r->channel_ready) {
                /* Calls back every query with ARES_EDESTRUCTION and closes the sockets (through on_sock_state). */
                ares_destroy(r->channel);
                ares_library_cleanup();
        }
        while (r->queries)
                query_free(r->queries);
        for (size_t i = 0; i < r->n_watches; i++)
                sd_event_source_disable_unref(r->watches[i].source);
        free(r->watches);
        sd_event_source_disable_unref(r->timer);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}
