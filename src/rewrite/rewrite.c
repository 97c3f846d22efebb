/* rewrite.c: the rewrite role (Postfix's trivial-rewrite): brings addresses into canonical
 * user@fully.qualified.domain form for cleanup, and resolves recipients to transport, next hop and
 * address for qmgr ($mydestination, $virtual_mailbox_domains, $relay_domains, relayhost,
 * transport_maps).
 *
 * SECURITY: runs as the unprivileged user postbus-rewrite, with no network and a read-only file system. It
 * accepts connections only from root, cleanup, qmgr (postbus) and smtpd (SO_PEERCRED at accept; the socket
 * is 0660 postbus-rewrite:postbus-to-rewrite). Addresses are peer data: bounded in length, checked for
 * control characters and balanced quotes, escaped before they are logged. It reads transport_maps,
 * sender_dependent_relayhost_maps and the tables of virtual_mailbox_domains and relay_domains, and writes
 * nothing. */
#include "log.h"
#include "rewrite.h"

static int rewrite_bus_setup(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, "/org/postbus/Rewrite1", "org.postbus.Rewrite1", rewrite_vtable,
                                        userdata);
}

static int rewrite_setup(Daemon *d) {
        Rewrite *rw;
        char *t = NULL, *n = NULL;
        int r;

        rw = calloc(1, sizeof(Rewrite));
        if (!rw)
                return log_oom();
        d->userdata = rw;
        rw->daemon = d;
        rw->context = (RewriteContext) {
                .myorigin = d->config->myorigin,
                .mydomain = d->config->mydomain,
                .append_at_myorigin = d->config->append_at_myorigin,
                .append_dot_mydomain = d->config->append_dot_mydomain,
                .allow_percent_hack = d->config->allow_percent_hack,
                .swap_bangpath = d->config->swap_bangpath,
        };

        /* Bad transports are configuration errors: found now, not at the first message. */
        const struct { const char *name, *value; } transports[] = {
                { "local_transport", d->config->local_transport },
                { "default_transport", d->config->default_transport },
                { "virtual_transport", d->config->virtual_transport },
                { "relay_transport", d->config->relay_transport },
        };
        for (size_t i = 0; i < ELEMENTSOF(transports); i++) {
                t = n = NULL;
                r = rewrite_transport_parse(transports[i].value, &t, &n);
                bool ok = r >= 0 && t;
                free(t);
                free(n);
                if (r == -ENOMEM)
                        return log_oom();
                if (!ok) {
                        log_error("%s = %s: not of the form transport[:nexthop]", transports[i].name,
                                  transports[i].value);
                        return -EINVAL;
                }
        }

        r = config_split_list(d->config->mydestination, &rw->mydestination);
        if (r < 0)
                return log_oom();
        r = table_list_open(d->config->transport_maps, &rw->transport_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "transport_maps = %s: bad table list.", d->config->transport_maps);

        r = virtual_domains_open(d->config->virtual_mailbox_domains, &rw->virtual_domains);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "virtual_mailbox_domains = %s: bad table list.",
                                       d->config->virtual_mailbox_domains);
        r = virtual_domains_open(d->config->relay_domains, &rw->relay_domains);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "relay_domains = %s: bad table list.", d->config->relay_domains);
        r = table_list_open(d->config->sender_dependent_relayhost_maps, &rw->relayhost_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "sender_dependent_relayhost_maps = %s: bad table list.",
                                       d->config->sender_dependent_relayhost_maps);

        r = bus_server_serve(d, "rewrite", rewrite_bus_setup, rw, &rw->server);
        if (r == -ENOENT)
                return log_error_errno(r, "No socket named \"rewrite\" was passed.");
        return r;
}

static void rewrite_done(Daemon *d) {
        Rewrite *rw = d->userdata;

        if (!rw)
                return;
        bus_server_free(rw->server);
        table_list_free(rw->transport_maps);
        virtual_domains_done(&rw->virtual_domains);
        virtual_domains_done(&rw->relay_domains);
        table_list_free(rw->relayhost_maps);
        strv_free(rw->mydestination);
        free(rw);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "rewrite",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = rewrite_setup,
                .done = rewrite_done,
        };
        return daemon_main(argc, argv, &spec);
}
