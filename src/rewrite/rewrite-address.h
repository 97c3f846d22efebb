/* rewrite-address.h: the pure parts of the rewrite role (Postfix's trivial-rewrite): bringing an address
 * into canonical user@fully.qualified.domain form, parsing transport(5) results, and resolving an address
 * to transport, next hop and address. No I/O: table lookups come through a callback. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

/* Longest address the rewrite role accepts as input (source routes can make it longer than a path). */
#define REWRITE_INPUT_MAX 1024U

typedef struct RewriteContext {
        const char *myorigin;
        const char *mydomain;
        bool append_at_myorigin;
        bool append_dot_mydomain;
        bool allow_percent_hack;        /* user%domain -> user@domain */
        bool swap_bangpath;             /* host!user -> user@host */
} RewriteContext;

/* Canonical form of addr: a source route ("@a,@b:user@c") is stripped, a trailing dot of the domain
 * dropped, "@$myorigin" appended to an address without domain (append_at_myorigin), ".$mydomain" to a
 * domain without a dot (append_dot_mydomain). Quoted local parts are kept as they are. "" stays "".
 * -EINVAL: control characters, unbalanced quotes or an empty source route; -E2BIG: longer than
 * REWRITE_INPUT_MAX, or a result longer than ADDRESS_MAX. An address without '@' is first taken apart as
 * Postfix does: "host!user" becomes "user@host" (swap_bangpath), "user%domain" "user@domain"
 * (allow_percent_hack; the last '%'), both outside quotes. */
int rewrite_address(const RewriteContext *ctx, const char *addr, char **ret);

/* The offset of the '@' that separates local part and domain (the last one outside quotes), or -1. */
ssize_t rewrite_address_at(const char *addr);

/* Parses a transport(5) result "transport:nexthop" (white space around it ignored). Each part that is
 * empty comes back as NULL (it inherits). A result without ':' is a transport alone. -EINVAL: a
 * transport name with characters other than letters, digits, '-', '_' and '.'. */
int rewrite_transport_parse(const char *value, char **ret_transport, char **ret_nexthop);

/* A lookup in transport_maps: 1 and *ret_value when found, 0 when not, negative errno on failure. partial:
 * the key is a parent domain or "*", which pattern tables (regexp:, pcre:) are not asked, as in Postfix. */
typedef int (*RewriteLookupFunc)(const char *key, bool partial, char **ret_value, void *userdata);
/* Whether a domain is hosted (virtual_mailbox_domains): 1, 0, or negative errno on failure. */
typedef int (*RewriteDomainFunc)(const char *domain, void *userdata);

typedef struct RewriteResolveContext {
        char **mydestination;           /* domains delivered locally */
        const char *local_transport;    /* "local:$myhostname" */
        const char *default_transport;  /* "smtp" */
        const char *relayhost;          /* "" or "[host]:port" */
        RewriteDomainFunc virtual_domain;       /* NULL: no virtual_mailbox_domains */
        const char *virtual_transport;  /* "virtual" */
        RewriteDomainFunc relay_domain; /* relay_domains, subdomains included; NULL: none */
        const char *relay_transport;    /* "relay" */
        RewriteLookupFunc lookup;       /* NULL: no transport_maps */
        const char *sender;             /* NULL: not known (no sender_dependent_relayhost_maps lookup) */
        RewriteLookupFunc relayhost_lookup;     /* sender_dependent_relayhost_maps; NULL: none */
        void *userdata;
} RewriteResolveContext;

typedef struct RewriteResolution {
        char *transport;
        char *nexthop;
        char *address;
} RewriteResolution;

void rewrite_resolution_done(RewriteResolution *r);

/* Resolves a canonical address: local for no domain or a domain in mydestination (local_transport), else
 * virtual_transport for a hosted domain (the next hop, when it names none, the domain), else
 * relay_transport for a domain of relay_domains, else default_transport (these two to relayhost or the
 * domain; relayhost replaced by what relayhost_lookup finds for the sender, then for its @domain; the null
 * sender is "<>"); then transport_maps by the full address, the domain,
 * its parent domains (".parent" keys) and "*", the first match winning: ":" changes nothing, an empty
 * transport keeps the default one, an empty next hop becomes the recipient domain ("" for error).
 * -EINVAL: a malformed local_transport, default_transport or table result; a lookup's error as is. */
int rewrite_resolve(const RewriteResolveContext *ctx, const char *addr, RewriteResolution *ret);
