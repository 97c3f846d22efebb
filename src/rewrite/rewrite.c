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

/* The tables and settings of config: at start, and again on each reload. A bad value is -EINVAL, logged. */
static int rewrite_state_load(const Config *config, Rewrite *rw) {
        char *t = NULL, *n = NULL;
        int r;

        rw->context = (RewriteContext) {
                .myorigin = config->myorigin,
                .mydomain = config->mydomain,
                .append_at_myorigin = config->append_at_myorigin,
                .append_dot_mydomain = config->append_dot_mydomain,
                .allow_percent_hack = config->allow_percent_hack,
                .swap_bangpath = config->swap_bangpath,
        };

        /* Bad transports are configuration errors: found now, not at the first message. */
        const struct { const char *name, *value; } transports[] = {
                { "local_transport", config->local_transport },
                { "default_transport", config->default_transport },
                { "virtual_transport", config->virtual_transport },
                { "relay_transport", config->relay_transport },
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

        r = config_split_list(config->mydestination, &rw->mydestination);
        if (r < 0)
                return log_oom();
        r = table_list_open(config->transport_maps, &rw->transport_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "transport_maps = %s: bad table list.", config->transport_maps);

        r = virtual_domains_open(config->virtual_mailbox_domains, &rw->virtual_domains);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "virtual_mailbox_domains = %s: bad table list.",
                                       config->virtual_mailbox_domains);
        r = virtual_domains_open(config->relay_domains, &rw->relay_domains);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "relay_domains = %s: bad table list.", config->relay_domains);
        r = table_list_open(config->sender_dependent_relayhost_maps, &rw->relayhost_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "sender_dependent_relayhost_maps = %s: bad table list.",
                                       config->sender_dependent_relayhost_maps);
        return 0;
}

static void rewrite_state_done(Rewrite *rw) {
        table_list_free(rw->transport_maps);
        virtual_domains_done(&rw->virtual_domains);
        virtual_domains_done(&rw->relay_domains);
        table_list_free(rw->relayhost_maps);
        strv_free(rw->mydestination);
}

static int rewrite_setup(Daemon *d) {
        Rewrite *rw;
        int r;

        rw = calloc(1, sizeof(Rewrite));
        if (!rw)
                return log_oom();
        d->userdata = rw;
        rw->daemon = d;
        r = rewrite_state_load(d->config, rw);
        if (r < 0)
                return r;

        r = bus_server_serve(d, "rewrite", rewrite_bus_setup, rw, &rw->server);
        if (r == -ENOENT)
                return log_error_errno(r, "No socket named \"rewrite\" was passed.");
        return r;
}

/* Each call is answered within the callback that reads it, so the tables can change between any two. */
static int rewrite_reload(Daemon *d, Config *new) {
        Rewrite *rw = d->userdata, next = { .daemon = d, .server = rw->server };
        int r;

        r = rewrite_state_load(new, &next);
        if (r < 0) {
                rewrite_state_done(&next);
                return r;
        }
        rewrite_state_done(rw);
        *rw = next;
        return 0;
}

static void rewrite_done(Daemon *d) {
        Rewrite *rw = d->userdata;

        if (!rw)
                return;
        bus_server_free(rw->server);
        rewrite_state_done(rw);
        free(rw);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "rewrite",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = rewrite_setup,
                .done = rewrite_done,
                .reload = rewrite_reload,
        };
        return daemon_main(argc, argv, &spec);
}
