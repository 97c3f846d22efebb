/* smtpd-peername.h: the client's name in the smtpd process, as Postfix finds it before the greeting: the
 * PTR name of the address (reverse_client_name), and that name again only if its A/AAAA records hold the
 * address (client_name); "unknown" otherwise. */
#pragma once

#include <stdbool.h>

#include "resolver.h"
#include "smtpd-mynetworks.h"

#define SMTPD_PEER_UNKNOWN "unknown"

/* How a name was found, in Postfix's order (smtpd_peer.c): a status from TEMP on means "unknown"; TEMP
 * alone is a temporary failure, so the restrictions answer 450 whatever unknown_client_reject_code says. */
typedef enum SmtpdPeerStatus {
        SMTPD_PEER_OK,
        SMTPD_PEER_TEMP,                /* a DNS temporary failure: may be known next time */
        SMTPD_PEER_PERM,                /* no name (or no lookup: smtpd_peername_lookup = no, not an IP client) */
        SMTPD_PEER_FORGED,              /* a PTR name whose addresses do not include the client's */
        _SMTPD_PEER_STATUS_MAX,
        _SMTPD_PEER_STATUS_INVALID = -EINVAL,
} SmtpdPeerStatus;

typedef struct SmtpdPeerName {
        char name[RESOLVER_NAME_MAX + 1];               /* client_name: confirmed, or "unknown" */
        char reverse_name[RESOLVER_NAME_MAX + 1];       /* reverse_client_name: the PTR name, or "unknown" */
        SmtpdPeerStatus name_status, reverse_status;
} SmtpdPeerName;

/* "unknown" for both names, with status. */
void smtpd_peer_name_unknown(SmtpdPeerName *ret, SmtpdPeerStatus status);

/* Whether a PTR name may be used as the client's name: a host name of letters, digits, '-' and '_' in
 * labels of 1 to 63 characters that neither begin nor end with '-', and not all digits and dots (a name
 * that looks like an address would fool address-based access rules). */
bool smtpd_peer_name_valid(const char *name);

typedef struct SmtpdPeerLookup SmtpdPeerLookup;

/* Called once with the names found (borrowed: valid during the call); never from within
 * smtpd_peer_lookup_start(). */
typedef void (*SmtpdPeerCallback)(const SmtpdPeerName *peer, void *userdata);

/* Starts the PTR lookup of client, then the forward lookup of the name. Each is bounded by the resolver's
 * deadline, so the whole by twice that. */
int smtpd_peer_lookup_start(Resolver *r, const SmtpdAddress *client, SmtpdPeerCallback callback, void *userdata,
                            SmtpdPeerLookup **ret);
/* Cancels a lookup whose callback has not run: it will not run. Accepts NULL. */
SmtpdPeerLookup *smtpd_peer_lookup_free(SmtpdPeerLookup *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdPeerLookup *, smtpd_peer_lookup_free);
