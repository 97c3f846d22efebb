/* address-map.h: an address looked up in lookup tables in Postfix's key order (canonical(5), virtual(5), the BCC
 * maps, generic(5)); no I/O beyond the table lookups, for cleanup, smtp and the unit test. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "table.h"

/* The '@' between local part and domain (the last one outside quotes), or -1. */
ssize_t address_map_at(const char *addr);

/* A lookup callback, so that the key order can be tested without GDBM: 1 and *ret_value when found. */
/* partial: the key is a shorter form of the address (user, @domain), which pattern tables are not asked. */
typedef int (*AddressMapLookupFunc)(void *table, const char *key, bool partial, char **ret_value);

/* Looks addr up as Postfix's mail_addr_find(): user+ext@domain, user@domain, then for a local domain (the
 * domain is myorigin or in mydestination) user+ext and user, then @domain; the extension starts at the first
 * character of delimiter (recipient_delimiter; NULL or "": none). A result "@other" keeps the user:
 * user@other. With propagate (propagate_unmatched_extensions), a match found without the extension gets it
 * back in each address of the result: joe+foo@example.com by joe@example.com gives joe.user+foo@example.net.
 * 1 and *ret (the whole value, trimmed) when found, 0 when not, negative errno when a table fails. */
int address_map_find(AddressMapLookupFunc lookup, void *table, const char *addr, char **mydestination,
                     const char *myorigin, const char *delimiter, bool propagate, char **ret);
/* The AddressMapLookupFunc of a TableList. */
int address_map_table_lookup(void *table_list, const char *key, bool partial, char **ret_value);
