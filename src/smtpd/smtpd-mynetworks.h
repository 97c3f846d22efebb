/* smtpd-mynetworks.h: the client's address, and the CIDR list of $mynetworks it is matched against. */
#pragma once

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "macro.h"

/* A client address as logs show it and mynetworks matches it: an IPv4-mapped IPv6 address
 * (::ffff:192.0.2.1, from a dual-stack socket) is the IPv4 address. */
typedef struct SmtpdAddress {
        int family;                     /* AF_INET, AF_INET6, or AF_UNSPEC for anything else */
        uint8_t bytes[16];              /* 4 used for AF_INET */
        uint16_t port;
        char text[INET6_ADDRSTRLEN];    /* "192.0.2.1", "2001:db8::1", "unknown" */
} SmtpdAddress;

int smtpd_address_from_sockaddr(const struct sockaddr *sa, socklen_t len, SmtpdAddress *ret);

typedef struct SmtpdNetwork {
        int family;
        uint8_t bytes[16];              /* host bits are zero */
        unsigned prefixlen;
} SmtpdNetwork;

typedef struct SmtpdNetworks {
        SmtpdNetwork *items;
        size_t n;
} SmtpdNetworks;

/* One entry: "192.0.2.0/24", "192.0.2.1" (a /32), "[2001:db8::]/32", "2001:db8::/32", "[::1]".
 * -EINVAL: not such an entry; -EDOM: host bits set beyond the prefix ("192.0.2.1/24"). */
int smtpd_network_parse(const char *s, SmtpdNetwork *ret);

/* A list value as config_split_list() splits it. A bad entry is logged, naming where (e.g. "main.cf:7"). */
int smtpd_networks_parse(const char *value, const char *where, SmtpdNetworks *ret);
void smtpd_networks_done(SmtpdNetworks *l);

bool smtpd_networks_match(const SmtpdNetworks *l, const SmtpdAddress *a);
