/* smtpd-peername.c: the smtpd process's lookup of the client's name at connect: PTR, then the name's
 * A/AAAA records, on the shared resolver, so that a slow DNS server holds up this session only.
 *
 * The PTR record is the client's own claim: its name is believed only when the name's owner agrees (the
 * forward lookup finds the address), and only if it is a plain host name, never one that reads as an
 * address. */
#include <ctype.h>
#include <sys/socket.h>

#include "log.h"
#include "smtpd-peername.h"

struct SmtpdPeerLookup {
        Resolver *resolver;
        ResolverAddress address;
        char address_text[INET6_ADDRSTRLEN];
        ResolverQuery *query;
        SmtpdPeerName peer;
        SmtpdPeerCallback callback;
        void *userdata;
};

void smtpd_peer_name_unknown(SmtpdPeerName *ret, SmtpdPeerStatus status) {
        *ret = (SmtpdPeerName) { .name_status = status, .reverse_status = status };
        strcpy(ret->name, SMTPD_PEER_UNKNOWN);
        strcpy(ret->reverse_name, SMTPD_PEER_UNKNOWN);
}

bool smtpd_peer_name_valid(const char *name) {
        size_t len = strlen(name), label = 0;
        bool numeric = true;

        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0 || len > RESOLVER_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];

                if (c == '.') {
                        if (label == 0 || name[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!isascii(c) || !(isalnum(c) || c == '-' || c == '_'))
                        return false;
                if (c == '-' && label == 0)
                        return false;
                if (++label > 63)
                        return false;
                if (!isdigit(c))
                        numeric = false;
        }
        return name[len - 1] != '-' && !numeric;
}

SmtpdPeerLookup *smtpd_peer_lookup_free(SmtpdPeerLookup *l) {
        if (!l)
                return NULL;
        resolver_query_cancel(l->query);
        free(l);
        return NULL;
}

static void peer_done(SmtpdPeerLookup *l) {
        l->query = NULL;
        l->callback(&l->peer, l->userdata);
}

static SmtpdPeerStatus status_of(ResolverStatus s) {
        return s == RESOLVER_TEMPFAIL ? SMTPD_PEER_TEMP : SMTPD_PEER_PERM;
}

static void on_forward(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        SmtpdPeerLookup *l = userdata;

        l->query = NULL;
        if (reply->status != RESOLVER_FOUND) {
                log_warning("hostname %s does not resolve to address %s: %s", l->peer.reverse_name, l->address_text,
                            reply->detail);
                l->peer.name_status = status_of(reply->status);
        } else {
                bool match = false;

                for (size_t i = 0; i < reply->n_addresses && !match; i++)
                        match = resolver_address_equal(&reply->addresses[i], &l->address);
                if (match) {
                        strcpy(l->peer.name, l->peer.reverse_name);
                        l->peer.name_status = SMTPD_PEER_OK;
                } else {
                        log_warning("hostname %s does not resolve to address %s", l->peer.reverse_name,
                                    l->address_text);
                        l->peer.name_status = SMTPD_PEER_FORGED;
                }
        }
        peer_done(l);
}

static void on_ptr(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        SmtpdPeerLookup *l = userdata;
        const char *name;
        int r;

        l->query = NULL;
        if (reply->status != RESOLVER_FOUND) {
                if (reply->status == RESOLVER_TEMPFAIL)
                        log_warning("%s: address not listed for hostname: %s", l->address_text, reply->detail);
                smtpd_peer_name_unknown(&l->peer, status_of(reply->status));
                peer_done(l);
                return;
        }
        name = reply->names[0];
        if (!smtpd_peer_name_valid(name)) {
                _cleanup_free_ char *e = log_escape(name, strlen(name));
                log_warning("%s: malformed or numeric hostname in PTR record: %s", l->address_text, strna(e));
                smtpd_peer_name_unknown(&l->peer, SMTPD_PEER_PERM);
                peer_done(l);
                return;
        }
        strcpy(l->peer.reverse_name, name);
        l->peer.reverse_status = SMTPD_PEER_OK;

        /* Only the client's own family needs to hold its address. */
        r = resolver_lookup_address(l->resolver, name, l->address.family, on_forward, l, &l->query);
        if (r < 0) {
                log_warning_errno(r, "Failed to look up hostname %s: %m", name);
                l->peer.name_status = SMTPD_PEER_TEMP;
                peer_done(l);
                return;
        }
}

int smtpd_peer_lookup_start(Resolver *r, const SmtpdAddress *client, SmtpdPeerCallback callback, void *userdata,
                            SmtpdPeerLookup **ret) {
        _cleanup_(smtpd_peer_lookup_freep) SmtpdPeerLookup *l = NULL;
        int k;

        if (client->family != AF_INET && client->family != AF_INET6)
                return -EAFNOSUPPORT;
        l = calloc(1, sizeof(SmtpdPeerLookup));
        if (!l)
                return -ENOMEM;
        l->resolver = r;
        l->callback = callback;
        l->userdata = userdata;
        l->address.family = client->family;
        memcpy(l->address.bytes, client->bytes, client->family == AF_INET ? 4 : 16);
        strcpy(l->address_text, client->text);
        smtpd_peer_name_unknown(&l->peer, SMTPD_PEER_PERM);

        k = resolver_lookup_ptr(r, &l->address, on_ptr, l, &l->query);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(l);
        return 0;
}
