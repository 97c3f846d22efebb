/* smtpd-dnsbl.h: DNS for reject_rbl_client: the reversed-address query names, a pure builder and parser of
 * DNS messages over (buf, len), and a small resolver that runs its queries as UDP sockets on the event
 * loop, so that a lookup never stalls the other sessions. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "smtpd-mynetworks.h"

#define SMTPD_DNS_TYPE_A 1
#define SMTPD_DNS_TYPE_TXT 16
#define SMTPD_DNS_CLASS_IN 1

#define SMTPD_DNS_RCODE_NOERROR 0
#define SMTPD_DNS_RCODE_SERVFAIL 2
#define SMTPD_DNS_RCODE_NXDOMAIN 3

/* RFC 1035 2.3.4: a name has at most 253 characters in text form (255 octets on the wire). */
#define SMTPD_DNS_NAME_MAX 253
/* A UDP reply without EDNS0 (RFC 1035 4.2.1); we send no OPT record, so a server sends no more. */
#define SMTPD_DNS_UDP_MAX 512
/* A records kept from one reply; a blocklist answers with one or a few. */
#define SMTPD_DNS_A_MAX 8
/* The text kept of a TXT record (its character-strings joined), as printable ASCII. */
#define SMTPD_DNS_TXT_MAX 256

/* "4.3.2.1.zen.example" for 1.2.3.4 under zen.example; for IPv6 the 32 nibbles, last first. size must be
 * at least SMTPD_DNS_NAME_MAX + 1. -ENAMETOOLONG if the name would be longer than SMTPD_DNS_NAME_MAX,
 * -EAFNOSUPPORT if the address is neither IPv4 nor IPv6, -EINVAL for an empty domain. */
int smtpd_dnsbl_query_name(const SmtpdAddress *client, const char *domain, char *ret, size_t size);

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

/* A query for name (text form, no trailing dot needed) of type in class IN, recursion desired, into buf.
 * Returns its length, -ENAMETOOLONG or -EINVAL for a name that cannot be encoded (empty label, label over
 * 63 octets), -ENOBUFS if buf is too small. */
int smtpd_dns_query_build(uint16_t id, const char *name, uint16_t type, uint8_t *buf, size_t size);

typedef struct SmtpdDnsReply {
        unsigned rcode;
        bool truncated;
        unsigned n_a;                           /* A records of class IN in the answer section */
        uint8_t a[SMTPD_DNS_A_MAX][4];
        bool has_txt;
        char txt[SMTPD_DNS_TXT_MAX];            /* the first TXT record; other bytes than printable ASCII as '?' */
} SmtpdDnsReply;

/* Parses the reply to the query (id, name, type, class IN).
 *   -ESRCH     a well-formed message that is not the reply to this query (id, QR bit, question differ)
 *   -EBADMSG   malformed: truncated records, bad names, compression loops, leftover bytes */
int smtpd_dns_reply_parse(const uint8_t *buf, size_t len, uint16_t id, const char *name, uint16_t type,
                          SmtpdDnsReply *ret);

/* The resolver: the name servers, timeout and attempts of /etc/resolv.conf, read once at start. */
typedef struct SmtpdResolver SmtpdResolver;
typedef struct SmtpdDnsQuery SmtpdDnsQuery;

int smtpd_resolver_new(sd_event *event, SmtpdResolver **ret);
SmtpdResolver *smtpd_resolver_free(SmtpdResolver *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdResolver *, smtpd_resolver_free);

/* Called once per query: error is 0 with the reply, or negative (-ETIMEDOUT when no server answered, or
 * the error of the socket). The query is freed after the callback returns: the callback must not free it. */
typedef void (*SmtpdDnsCallback)(SmtpdDnsQuery *q, int error, const SmtpdDnsReply *reply, void *userdata);

int smtpd_dns_query_start(SmtpdResolver *r, const char *name, uint16_t type, SmtpdDnsCallback callback,
                          void *userdata, SmtpdDnsQuery **ret);
/* Cancels a query whose callback has not run yet; the callback will not run. */
SmtpdDnsQuery *smtpd_dns_query_free(SmtpdDnsQuery *q);
