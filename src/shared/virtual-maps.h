/* virtual-maps.h: hosted domains (virtual_mailbox_domains) and the tables of hosted mailboxes
 * (virtual_mailbox_maps, virtual_uid_maps, virtual_gid_maps) as Postfix looks them up. Used by rewrite (is a
 * domain hosted?), smtpd (is a hosted address known?) and the virtual delivery agent. */
#pragma once

#include <stdbool.h>

#include "macro.h"
#include "table.h"

/* One list of lookup tables from main.cf, where "static:value" is a table that holds every key with that
 * value (as Postfix's static: type). */
typedef struct VirtualMapEntry {
        char *static_value;             /* static:value; else table */
        Table *table;
} VirtualMapEntry;

typedef struct VirtualMap {
        VirtualMapEntry *entries;
        size_t n;
} VirtualMap;

/* Opens the tables of value (a list: "hash:/a, static:5000"; "" is an empty map). -EINVAL (logged) for a
 * table that cannot be used. */
int virtual_map_open(const char *value, VirtualMap *ret);
void virtual_map_done(VirtualMap *m);
bool virtual_map_is_empty(const VirtualMap *m);
/* key in the tables in order: 1 and the value (ret_value may be NULL) from the first that holds it, 0 when
 * none does, negative errno when a table before that cannot be read (-ENOENT: not built). */
int virtual_map_lookup(VirtualMap *m, const char *key, char **ret_value);
/* A hosted address, as Postfix's virtual(8) looks it up: user+ext@domain, then user@domain (the extension
 * split at the first of the delimiters, not at the very start), then @domain. */
int virtual_map_lookup_address(VirtualMap *m, const char *address, const char *delimiters, char **ret_value);

/* virtual_mailbox_domains: domain names, and tables (an entry with ':' or '/') whose keys are domains. */
typedef struct VirtualDomains {
        char **names;
        VirtualMap tables;
} VirtualDomains;

int virtual_domains_open(const char *value, VirtualDomains *ret);
void virtual_domains_done(VirtualDomains *d);
bool virtual_domains_is_empty(const VirtualDomains *d);
/* 1 when domain (a trailing dot ignored) is hosted, 0 when not, negative errno when a table cannot be read. */
int virtual_domains_contain(VirtualDomains *d, const char *domain);
/* As virtual_domains_contain(), and a subdomain of a listed domain matches too (Postfix's
 * parent_domain_matches_subdomains, as for relay_domains). */
int virtual_domains_contain_parent(VirtualDomains *d, const char *domain);
