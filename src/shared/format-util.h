/* format-util.h: text that roles put into the messages they make (cleanup's added headers, bounce's reports):
 * a formatted string in a new allocation, the date of a Date: header, and a Message-ID. */
#pragma once

#include <stddef.h>
#include <time.h>

#include "macro.h"

/* The formatted string in a new allocation, or NULL when out of memory. */
char *strprintf(const char *fmt, ...) _printf_(1, 2);

/* t as RFC 5322's date-time in local time, with the zone's name as a comment:
 * "Tue, 14 Nov 2023 23:13:20 +0100 (CET)". */
void format_rfc5322_date(time_t t, char *buf, size_t size);

/* A Message-ID for a message made at now by this host: "<YYYYMMDDhhmmss.unique@host>" (UTC), or with a tag
 * "<YYYYMMDDhhmmss.unique.tag@host>". */
int format_message_id(time_t now, const char *unique, const char *tag, const char *host, char **ret);

/* Expands $name, ${name}, ${name?text} and ${name:text} in text with vars ("name", "value" pairs,
 * NULL-terminated; an unknown name is empty) and $$ into "$", as Postfix's $name templates (forward_path,
 * smtpd_reject_footer, rbl_reply_maps). -EINVAL: a '$' not followed by a name or '{' ... '}'. */
int format_expand_vars(const char *text, const char *const *vars, char **ret);
