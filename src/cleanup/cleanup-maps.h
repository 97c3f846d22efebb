/* cleanup-maps.h: canonical(5) and virtual(5) lookups and address masquerading; no I/O beyond the table
 * lookups, for the message code and the unit test. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "table.h"

/* The '@' between local part and domain (the last one outside quotes), or -1. */
ssize_t cleanup_address_at(const char *addr);

/* A lookup callback, so that the key order can be tested without GDBM: 1 and *ret_value when found. */
/* partial: the key is a shorter form of the address (user, @domain), which pattern tables are not asked. */
typedef int (*CleanupLookupFunc)(void *table, const char *key, bool partial, char **ret_value);

/* Looks addr up in Postfix's order: user@domain, user (only when domain is $myorigin or in
 * $mydestination), @domain. A result "@other" keeps the user: user@other. 1 and *ret (the whole
 * value, trimmed) when found, 0 when not, negative errno when a table fails. */
int cleanup_map_lookup(CleanupLookupFunc lookup, void *table, const char *addr, char **mydestination,
                       const char *myorigin, char **ret);
/* The same with recipient_delimiter (NULL or "": none): user+ext@domain, user@domain, then for a local
 * domain user+ext and user, then @domain, as Postfix's mail_addr_find(). With propagate
 * (propagate_unmatched_extensions), a match found without the extension gets it back in each address of
 * the result: joe+foo@example.com by joe@example.com gives joe.user+foo@example.net. */
int cleanup_map_lookup_ext(CleanupLookupFunc lookup, void *table, const char *addr, char **mydestination,
                           const char *myorigin, const char *delimiter, bool propagate, char **ret);
int cleanup_table_lookup(void *table_list, const char *key, bool partial, char **ret_value);

/* Postfix's masquerading: user@host.sub.example.org becomes user@example.org when example.org is listed;
 * "!sub.example.org" before it keeps that domain and its subdomains as they are; local parts in
 * exceptions are never masqueraded. 1 and *ret when changed, 0 when not. */
int cleanup_masquerade(char **domains, char **exceptions, const char *addr, char **ret);
