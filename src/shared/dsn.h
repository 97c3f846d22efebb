/* dsn.h: the SMTP DSN extension's parameters (RFC 3461): MAIL's RET and ENVID, RCPT's NOTIFY and ORCPT,
 * checked over (buf, len) wherever they cross a trust boundary (smtpd, cleanup, the queue file); and the
 * enhanced status codes (RFC 3463) of server replies and delivery results. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* RFC 3461 4.4: ENVID has at most 100 characters; 4.2: ORCPT, with its type, fewer than 500. */
#define DSN_ENVID_MAX 100U
#define DSN_ORCPT_MAX 500U
/* "SUCCESS,FAILURE,DELAY" and a NUL. */
#define DSN_NOTIFY_TEXT_MAX 22U

typedef enum DsnNotify {
        DSN_NOTIFY_NEVER = 1 << 0,
        DSN_NOTIFY_SUCCESS = 1 << 1,
        DSN_NOTIFY_FAILURE = 1 << 2,
        DSN_NOTIFY_DELAY = 1 << 3,
} DsnNotify;

/* "NEVER", or a comma-separated list of SUCCESS, FAILURE and DELAY without repeats, in any case.
 * -EINVAL otherwise. */
int dsn_notify_parse(const char *s, size_t len, unsigned *ret_mask);

/* The canonical text of a mask that dsn_notify_parse() returned: "NEVER" or e.g. "SUCCESS,DELAY". */
void dsn_notify_format(unsigned mask, char ret[static DSN_NOTIFY_TEXT_MAX]);

/* "FULL" or "HDRS", in any case: the canonical upper-case form, or NULL. */
const char *dsn_ret_parse(const char *s, size_t len);

/* xtext (RFC 3461 4): printable ASCII but '+' and '=', and "+XX" with two upper-case hex digits;
 * at least one character. */
bool xtext_valid(const char *s, size_t len);

/* ORCPT's value, "addr-type;xtext": the type is letters, digits and '-'; for "utf-8" (RFC 6533) the
 * address is utf-8-addr-xtext (valid UTF-8, no controls, '+' or '=', "\x{HEX}" escapes), else xtext;
 * fewer than DSN_ORCPT_MAX bytes in all. */
bool dsn_orcpt_valid(const char *s, size_t len);

/* An enhanced status code (RFC 3463) at the start of s: class 2, 4 or 5, then two numbers of 1 to 3 digits,
 * as "5.1.1"; its length, or 0 when there is none (a number of 4 digits is none). */
size_t dsn_status_length(const char *s, size_t len);

/* Postfix's soft_bounce, in place: class 5 made class 4 in a delivery status ("5.1.1") or on each line of an SMTP
 * reply, the reply code's first digit and the enhanced status code after it ("550 5.1.1 ..." and
 * "550-5.1.1 ..." become "450 4.1.1 ..."). Anything else is left as it is. Whether it changed anything. */
bool dsn_soft_bounce(char *s);

/* ENVID's value: xtext of at most DSN_ENVID_MAX characters. */
bool dsn_envid_valid(const char *s, size_t len);
