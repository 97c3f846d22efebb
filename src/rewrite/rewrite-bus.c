/* rewrite-bus.c: org.postbus.Rewrite1: Rewrite (canonical form) and Resolve (transport, next hop,
 * address), asked by cleanup and qmgr. */
#include "log.h"
#include "rewrite.h"

static int lookup_transport_maps(const char *key, bool partial, char **ret_value, void *userdata) {
        Rewrite *rw = userdata;
        return partial ? table_list_lookup_partial(rw->transport_maps, key, ret_value)
                       : table_list_lookup(rw->transport_maps, key, ret_value);
}

static int lookup_virtual_domain(const char *domain, void *userdata) {
        Rewrite *rw = userdata;

        return virtual_domains_contain(&rw->virtual_domains, domain);
}

static int lookup_relay_domain(const char *domain, void *userdata) {
        Rewrite *rw = userdata;

        return virtual_domains_contain_parent(&rw->relay_domains, domain);
}

static int lookup_relayhost_maps(const char *key, bool partial, char **ret_value, void *userdata) {
        Rewrite *rw = userdata;
        return partial ? table_list_lookup_partial(rw->relayhost_maps, key, ret_value)
                       : table_list_lookup(rw->relayhost_maps, key, ret_value);
}

static int canonicalize(Rewrite *rw, const char *address, char **ret, sd_bus_error *error) {
        _cleanup_free_ char *escaped = NULL;
        int r;

        r = rewrite_address(&rw->context, address, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                escaped = log_escape(address, MIN(strlen(address), (size_t) REWRITE_INPUT_MAX));
                log_debug("Refused to rewrite malformed address <%s>.", strna(escaped));
                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Malformed address: %s",
                                         r == -E2BIG ? "too long" : "bad syntax");
        }
        return 0;
}

static int method_rewrite(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Rewrite *rw = userdata;
        _cleanup_free_ char *out = NULL;
        const char *address;
        int r;

        r = sd_bus_message_read(m, "s", &address);
        if (r < 0)
                return r;
        r = canonicalize(rw, address, &out, error);
        if (r < 0 || !out)
                return r;
        return sd_bus_reply_method_return(m, "s", out);
}

/* Whether the answers come from main.cf alone: no table a rebuild could change without a reload. */
static bool answers_last(const Rewrite *rw) {
        return table_list_is_empty(rw->transport_maps) && table_list_is_empty(rw->relayhost_maps) &&
               virtual_map_is_empty(&rw->virtual_domains.tables) && virtual_map_is_empty(&rw->relay_domains.tables);
}

/* Resolve (address) and ResolveSender (sender, address): the second lets sender_dependent_relayhost_maps
 * choose the relay host, and says whether its answer lasts until a reload (qmgr then keeps it a while). */
static int resolve(sd_bus_message *m, Rewrite *rw, const char *sender, const char *address, sd_bus_error *error) {
        _cleanup_free_ char *canonical = NULL;
        RewriteResolution res = {};
        int r;

        r = canonicalize(rw, address, &canonical, error);
        if (r < 0 || !canonical)
                return r;

        RewriteResolveContext ctx = {
                .mydestination = rw->mydestination,
                .local_transport = rw->daemon->config->local_transport,
                .default_transport = rw->daemon->config->default_transport,
                .relayhost = rw->daemon->config->relayhost,
                .virtual_domain = virtual_domains_is_empty(&rw->virtual_domains) ? NULL : lookup_virtual_domain,
                .virtual_transport = rw->daemon->config->virtual_transport,
                .relay_domain = virtual_domains_is_empty(&rw->relay_domains) ? NULL : lookup_relay_domain,
                .relay_transport = rw->daemon->config->relay_transport,
                .lookup = table_list_is_empty(rw->transport_maps) ? NULL : lookup_transport_maps,
                .sender = sender,
                .relayhost_lookup = table_list_is_empty(rw->relayhost_maps) ? NULL : lookup_relayhost_maps,
                .userdata = rw,
        };
        r = rewrite_resolve(&ctx, canonical, &res);
        if (r == -ENOMEM)
                return r;
        if (r == -EINVAL) {
                _cleanup_free_ char *escaped = log_escape(canonical, strlen(canonical));
                log_error("Malformed transport for <%s> (local_transport, default_transport or a transport_maps "
                          "entry): resolution deferred.", strna(escaped));
                return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY,
                                         "451 4.3.0 Malformed transport table entry");
        }
        if (r < 0) {
                log_error_errno(r, "Failed to look up transport_maps (%s), virtual_mailbox_domains (%s), relay_domains (%s) "
                                "or sender_dependent_relayhost_maps (%s): %m",
                                rw->daemon->config->transport_maps, rw->daemon->config->virtual_mailbox_domains,
                                rw->daemon->config->relay_domains,
                                rw->daemon->config->sender_dependent_relayhost_maps);
                return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY, "451 4.3.0 transport_maps lookup failure");
        }
        if (sender)
                r = sd_bus_reply_method_return(m, "sssb", res.transport, res.nexthop, res.address, answers_last(rw));
        else
                r = sd_bus_reply_method_return(m, "sss", res.transport, res.nexthop, res.address);
        rewrite_resolution_done(&res);
        return r;
}

static int method_resolve(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *address;
        int r;

        r = sd_bus_message_read(m, "s", &address);
        if (r < 0)
                return r;
        return resolve(m, userdata, NULL, address, error);
}

static int method_resolve_sender(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *sender, *address;
        int r;

        r = sd_bus_message_read(m, "ss", &sender, &address);
        if (r < 0)
                return r;
        return resolve(m, userdata, sender, address, error);
}

const sd_bus_vtable rewrite_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Rewrite",
                                SD_BUS_ARGS("s", address),
                                SD_BUS_RESULT("s", canonical),
                                method_rewrite,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resolve",
                                SD_BUS_ARGS("s", address),
                                SD_BUS_RESULT("s", transport, "s", nexthop, "s", address),
                                method_resolve,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResolveSender",
                                SD_BUS_ARGS("s", sender, "s", address),
                                SD_BUS_RESULT("s", transport, "s", nexthop, "s", address, "b", lasting),
                                method_resolve_sender,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
