/* utf8.h: checking UTF-8 in peer input (RFC 3629), for SMTPUTF8 addresses and command lines. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (at most len bytes, len > 0): 1 for ASCII, 2 to 4 for a
 * code point beyond it; 0 if the bytes there are no valid UTF-8 (overlong forms, surrogates, code
 * points above U+10FFFF, truncated or stray continuation bytes). */
size_t utf8_sequence_len(const char *s, size_t len);

/* Whether s[0 .. len) is valid UTF-8 (ASCII is). */
bool utf8_valid(const char *s, size_t len);

/* Whether s[0 .. len) is plain ASCII (no byte above 0x7F). */
bool ascii_only(const char *s, size_t len);
