/* addrlist.h: an RFC 5322 address-list parser for header values (To, Cc, Bcc, From, ...): groups,
 * comments, quoted strings, display names, angle addresses with obsolete source routes. Pure, over
 * (buf, len). Encoded words are atoms of the display name and are left alone. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct AddressItem {
        char *address;          /* the addr-spec, white space and comments removed, quotes kept */
        size_t start, end;      /* where the addr-spec stands in the input, for rewriting it in place */
} AddressItem;

/* Parses buf as an address list. Lenient like a mail system must be: an unterminated quoted string,
 * comment or angle address ends at the end of the input; an item without an address (an empty group,
 * "undisclosed-recipients:;") gives none. Returns the number of addresses (each item once, in order) in
 * *ret; -E2BIG when there are more than max. */
int addrlist_parse(const char *buf, size_t len, size_t max, AddressItem **ret);
void addrlist_free(AddressItem *l, size_t n);

/* sendmail -t: whether the header h (its whole logical header, hlen bytes) names recipients: To, Cc or
 * Bcc, or with resent (the message has Resent- headers, RFC 5322 3.6.6) Resent-To, Resent-Cc or
 * Resent-Bcc. */
bool addrlist_header_names_recipients(const char *h, size_t hlen, bool resent);
typedef enum AddrlistHeaderClass {
        ADDRLIST_HEADER_OTHER,
        ADDRLIST_HEADER_SENDER,
        ADDRLIST_HEADER_RECIPIENT,
} AddrlistHeaderClass;

/* Whether the header h (its whole logical header) holds mailboxes that address rewriting (canonical maps,
 * masquerading, smtp_generic_maps) changes, as Postfix's header table marks them, and of which kind: sender
 * (From, Sender, Reply-To, Return-Receipt-To, Errors-To, Disposition-Notification-To, Resent-From,
 * Resent-Sender, Resent-Reply-To) or recipient (To, Cc, Bcc, Apparently-To, Resent-To, Resent-Cc,
 * Resent-Bcc). */
AddrlistHeaderClass addrlist_header_class(const char *h, size_t hlen);
/* Whether a header section (len bytes up to, not including, the empty line) has a Resent- header. */
bool addrlist_headers_resent(const char *hdr, size_t len);
/* The number of valid recipient addresses sendmail -t finds in a header section, at most max. */
size_t addrlist_count_header_recipients(const char *hdr, size_t len, size_t max);
