/* cleanup-addrlist.h: an RFC 5322 address-list parser for header values (To, Cc, Bcc, From, ...): groups,
 * comments, quoted strings, display names, angle addresses with obsolete source routes. Pure, over
 * (buf, len). Encoded words are atoms of the display name and are left alone. */
#pragma once

#include <stddef.h>

#include "macro.h"

typedef struct CleanupAddress {
        char *address;          /* the addr-spec, white space and comments removed, quotes kept */
        size_t start, end;      /* where the addr-spec stands in the input, for rewriting it in place */
} CleanupAddress;

/* Parses buf as an address list. Lenient like a mail system must be: an unterminated quoted string,
 * comment or angle address ends at the end of the input; an item without an address (an empty group,
 * "undisclosed-recipients:;") gives none. Returns the number of addresses (each item once, in order) in
 * *ret; -E2BIG when there are more than max. */
int cleanup_addrlist_parse(const char *buf, size_t len, size_t max, CleanupAddress **ret);
void cleanup_addrlist_free(CleanupAddress *l, size_t n);
