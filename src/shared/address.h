/* address.h: mail addresses as the envelope carries them (RFC 5321 paths without the angle brackets). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Longest address accepted anywhere (RFC 5321: 64 local-part + @ + 255 domain). */
#define ADDRESS_MAX 320

/* The domain of addr (after the last '@'), or NULL. */
const char *address_domain(const char *addr);

/* Splits addr into its local part and domain (NULL when there is none). */
int address_split(const char *addr, char **ret_local, char **ret_domain);

/* Whether mail for addr is delivered by the local role: no domain, or a domain in mydestination. */
bool address_is_local(char **mydestination, const char *addr);

/* Whether s is acceptable as an envelope address: not too long, no control characters, no spaces
 * outside a quoted local part, at most one unquoted '@' that is not first or last, bytes beyond ASCII only
 * as valid UTF-8. "" is the null sender. */
bool address_valid(const char *s);
