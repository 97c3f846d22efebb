/* resolver.h: asynchronous DNS on the sd-event loop, through c-ares, for every role that looks names up
 * (smtpd: client names and DNSBLs; smtp: MX and addresses). No call here ever blocks. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* RFC 1035 2.3.4: a name has at most 253 characters in text form (without the final dot). */
#define RESOLVER_NAME_MAX 253

typedef struct Resolver Resolver;
typedef struct ResolverQuery ResolverQuery;

/* The outcome of one lookup. Every lookup ends in exactly one of these. */
typedef enum ResolverStatus {
        RESOLVER_FOUND,         /* at least one record of the type asked for */
        RESOLVER_NXDOMAIN,      /* the name does not exist (permanent) */
        RESOLVER_NODATA,        /* the name exists but has no record of the type: for MX, fall back to A/AAAA */
        RESOLVER_NULL_MX,       /* MX only: RFC 7505 "MX 0 .", the domain accepts no mail; no A/AAAA fallback */
        RESOLVER_TEMPFAIL,      /* SERVFAIL, REFUSED, timeout, no server reachable, malformed reply: try later */
        _RESOLVER_STATUS_MAX,
        _RESOLVER_STATUS_INVALID = -EINVAL,
} ResolverStatus;

/* "found", "nxdomain", "nodata", "null-mx", "tempfail"; NULL when out of range. */
const char *resolver_status_to_string(ResolverStatus s);

typedef struct ResolverAddress {
        int family;                     /* AF_INET or AF_INET6 */
        union {
                struct in_addr in;
                struct in6_addr in6;
                uint8_t bytes[16];      /* network order; 4 used for AF_INET */
        };
} ResolverAddress;

typedef struct ResolverMx {
        uint16_t preference;
        char *host;                     /* lower case, no final dot; never empty (a "." exchange is NULL_MX) */
} ResolverMx;

/* What a lookup found. Only the arrays of the lookup's kind are filled; the others are NULL with count 0.
 *
 * Lifetime: the reply and everything it points to belong to the resolver and are valid only until the
 * callback returns. A caller that keeps anything copies it. */
typedef struct ResolverReply {
        ResolverStatus status;
        const char *detail;             /* for logs and diagnostics: "Domain name not found", "Timeout while
                                         * contacting DNS servers", ...; never NULL */

        /* resolver_lookup_mx(): sorted by preference ascending; hosts of equal preference are in random
         * order (a new shuffle per lookup). Set only with RESOLVER_FOUND. */
        const ResolverMx *mx;
        size_t n_mx;

        /* resolver_lookup_address(): with AF_UNSPEC the IPv4 addresses first, then the IPv6 ones, each in
         * the order of the reply (the caller applies inet_protocols / smtp_address_preference).
         * resolver_lookup() with RESOLVER_TYPE_A: the IPv4 addresses. */
        const ResolverAddress *addresses;
        size_t n_addresses;

        /* resolver_lookup_ptr(): the names (lower case, no final dot), in the order of the reply. */
        char *const *names;
        size_t n_names;

        /* resolver_lookup() with RESOLVER_TYPE_TXT: one string per TXT record, its character-strings
         * joined, bytes outside printable ASCII replaced by '?'. */
        char *const *txt;
        size_t n_txt;
} ResolverReply;

/* Called exactly once per lookup, unless the lookup was cancelled first, from the event loop (never from
 * inside the resolver_lookup_*() call that started it). The query handle is freed right after the
 * callback returns: the callback must not cancel or keep it (drop the caller's pointer to it). The
 * callback may start new lookups, cancel other ones, and free its own userdata; it must not call
 * resolver_free(). */
typedef void (*ResolverCallback)(ResolverQuery *q, const ResolverReply *reply, void *userdata);

/* A resolver on the event loop e: the name servers and "options timeout:n attempts:n" of /etc/resolv.conf
 * (glibc's defaults 5 s and 2), read once here; every lookup ends within timeout × attempts (then with
 * RESOLVER_TEMPFAIL). c-ares's sockets are watched with io sources on e and its retries driven by one
 * timer. */
int resolver_new(sd_event *e, Resolver **ret);

/* For tests: as resolver_new(), but asking only the server at addr:port over UDP (and TCP for truncated
 * replies), each attempt timing out after timeout_msec, attempts tries. */
int resolver_new_with_server(sd_event *e, const ResolverAddress *addr, uint16_t port, unsigned timeout_msec,
                             unsigned attempts, Resolver **ret);

/* Frees the resolver. Lookups still running are cancelled: their callbacks are not called, and handles the
 * callers still hold become invalid (so free the resolver only after the sessions that use it). */
Resolver *resolver_free(Resolver *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Resolver *, resolver_free);

/* Every lookup below starts a query and returns at once. On success, *ret_query (if not NULL) is the
 * handle for resolver_query_cancel(), valid until the callback has been called or the query cancelled.
 * Names are absolute (no "search" list is applied, as Postfix's smtp and smtpd do); a final dot is
 * accepted. Synchronous errors: -EINVAL for a name that cannot be a DNS name (empty label, label over 63
 * octets, over RESOLVER_NAME_MAX), -ENOMEM; the callback is then never called. */

/* MX records of domain. RESOLVER_NODATA: the domain exists without MX (use its A/AAAA records).
 * RESOLVER_NULL_MX: the only MX is ".". An MX "." among other MX records is left out. */
int resolver_lookup_mx(Resolver *r, const char *domain, ResolverCallback callback, void *userdata,
                       ResolverQuery **ret_query);

/* The addresses of host: family AF_INET (A), AF_INET6 (AAAA), or AF_UNSPEC (both, queried in parallel).
 * With AF_UNSPEC: RESOLVER_FOUND if either query found addresses (even if the other failed),
 * else RESOLVER_TEMPFAIL if either failed temporarily, else RESOLVER_NXDOMAIN if the name does not exist,
 * else RESOLVER_NODATA. */
int resolver_lookup_address(Resolver *r, const char *host, int family, ResolverCallback callback, void *userdata,
                            ResolverQuery **ret_query);

/* The PTR names of addr (in-addr.arpa / ip6.arpa). RESOLVER_NXDOMAIN and RESOLVER_NODATA both mean the
 * address has no name. */
int resolver_lookup_ptr(Resolver *r, const ResolverAddress *addr, ResolverCallback callback, void *userdata,
                        ResolverQuery **ret_query);

/* A record type for resolver_lookup(): the values are the DNS type numbers. */
typedef enum ResolverType {
        RESOLVER_TYPE_A = 1,
        RESOLVER_TYPE_TXT = 16,
} ResolverType;

/* Records of type A or TXT of name as it is (for DNSBL names such as 4.3.2.1.zen.example). */
int resolver_lookup(Resolver *r, const char *name, ResolverType type, ResolverCallback callback, void *userdata,
                    ResolverQuery **ret_query);

/* Cancels a lookup whose callback has not been called yet: the callback will never be called. Accepts
 * NULL; returns NULL, so that `s->query = resolver_query_cancel(s->query);`. */
ResolverQuery *resolver_query_cancel(ResolverQuery *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(ResolverQuery *, resolver_query_cancel);

/* Helpers for callers. */

/* The PTR query name of addr: "4.3.2.1.in-addr.arpa" or the 32 nibbles ".ip6.arpa". size must be at
 * least RESOLVER_NAME_MAX + 1. -EAFNOSUPPORT for another family. */
int resolver_ptr_name(const ResolverAddress *addr, char *ret, size_t size);

/* True if a and b are the same address. */
bool resolver_address_equal(const ResolverAddress *a, const ResolverAddress *b);

/* 0 if name can be sent as a DNS query name (see above), -EINVAL otherwise. */
int resolver_name_valid(const char *name);
