/* smtpd-dnsbl.h: the smtpd process's DNS blocklists, reject_rbl_client and reject_rhsbl_*: the query names
 * (a reversed address, or a domain, under the list's domain) and the reply filter. The lookups themselves
 * run on the shared resolver (resolver.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "resolver.h"
#include "smtpd-mynetworks.h"

/* A records kept from one reply; a blocklist answers with one or a few. */
#define SMTPD_DNSBL_A_MAX 8
/* The text kept of a TXT record (its character-strings joined), as printable ASCII. */
#define SMTPD_DNSBL_TXT_MAX 256

/* "4.3.2.1.zen.example" for 1.2.3.4 under zen.example; for IPv6 the 32 nibbles, last first. size must be
 * at least RESOLVER_NAME_MAX + 1. -ENAMETOOLONG if the name would be longer than RESOLVER_NAME_MAX,
 * -EAFNOSUPPORT if the address is neither IPv4 nor IPv6, -EINVAL for an empty domain. */
int smtpd_dnsbl_query_name(const SmtpdAddress *client, const char *domain, char *ret, size_t size);

/* "bad.example.rhsbl.example" for what "bad.example" (a name) or "someone@bad.example" (an address: its
 * domain) under the right-hand side list rhsbl.example; trailing dots dropped. size must be at least
 * RESOLVER_NAME_MAX + 1. -EINVAL when there is nothing to ask about (no domain, an address literal, a name
 * that cannot be in DNS), -ENAMETOOLONG over RESOLVER_NAME_MAX. */
int smtpd_rhsbl_query_name(const char *what, const char *domain, char *ret, size_t size);

/* The reply filter of "reject_rbl_client domain=d.d.d.d" (Postfix's syntax): each d is a number, or a list
 * in brackets of numbers and ranges, "127.0.0.[2..11;20]"; a client is listed only by an A record that
 * matches. */
#define SMTPD_DNSBL_FILTER_RANGES 8

typedef struct SmtpdDnsblFilter {
        struct {
                uint8_t lo, hi;
        } ranges[4][SMTPD_DNSBL_FILTER_RANGES];
        unsigned n[4];
} SmtpdDnsblFilter;

/* -EINVAL: not such a pattern (a number over 255, a range whose end is below its start, more than
 * SMTPD_DNSBL_FILTER_RANGES parts in one pair of brackets, not four octets). */
int smtpd_dnsbl_filter_parse(const char *s, SmtpdDnsblFilter *ret);
bool smtpd_dnsbl_filter_match(const SmtpdDnsblFilter *f, const uint8_t a[4]);
