/* virtual.c: the virtual delivery role (Postfix's virtual(8)): delivers mail for hosted domains
 * (virtual_mailbox_domains), whose mailboxes are not Unix users, for qmgr over org.postbus.Delivery1 on its
 * socket: each recipient's mailbox (Maildir or mbox below virtual_mailbox_base), uid and gid come from
 * virtual_mailbox_maps, virtual_uid_maps and virtual_gid_maps.
 *
 * SECURITY
 * virtual runs as root, because it writes each mailbox as the uid the maps name; the unit confines it
 * (ProtectSystem=strict with only /var/mail/vhosts writable, no network but AF_UNIX, the capabilities to
 * switch users and to kill its own delivery processes). It trusts only its peer, qmgr: connections are
 * accepted from uid 0 and the postbus user alone (SO_PEERCRED at accept), and every argument of a call is
 * checked (queue ID, addresses, a queue file that validates as a whole, bounded recipient count). The tables
 * are the administrator's, read as root. It never writes anything itself: each delivery is a process forked
 * for it that takes the mapped uid and gid for good (and checks that it cannot get root back) before it opens
 * anything, holds only the queue file and a pipe to virtual, and has virtual_mailbox_limit as its file size
 * limit. A uid below virtual_minimum_uid (root in particular) is refused. The writer refuses symbolic links,
 * hard links, files owned by others and non-regular files, creates with O_EXCL, syncs a Maildir file before
 * it links it into new/ and new/ after, and truncates an mbox file back after a failed write. Results from
 * the delivery process are untrusted: strict enhanced status codes and escaped text of bounded length. */
#include <inttypes.h>
#include <limits.h>

#include "bus-util.h"
#include "log.h"
#include "virtual.h"

static int config_error(const Config *c, ConfigParamId id, const char *why, const char *value) {
        char where[PATH_MAX + 32];

        log_error("%s: %s: \"%s\": %s", config_where(c, id, where, sizeof where), config_params[id].name, value,
                  why);
        return -EINVAL;
}

/* Mistakes stop the role at start, rather than every delivery. */
static int virtual_check_config(const Config *c) {
        MailboxLocking locking = {};
        VirtualMaps maps;
        int r;

        if (isempty(c->virtual_mailbox_base) || c->virtual_mailbox_base[0] != '/')
                return config_error(c, CONFIG_PARAM_virtual_mailbox_base, "must be an absolute directory",
                                    c->virtual_mailbox_base);
        r = mailbox_lock_parse(c->virtual_mailbox_lock, &locking);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return config_error(c, CONFIG_PARAM_virtual_mailbox_lock, "only fcntl and dotlock are known",
                                    c->virtual_mailbox_lock);
        if (c->virtual_mailbox_limit > 0 && c->virtual_mailbox_limit < c->message_size_limit)
                return config_error(c, CONFIG_PARAM_virtual_mailbox_limit,
                                    "is smaller than message_size_limit; set it larger, or 0 (no limit)",
                                    "");
        r = virtual_maps_open(&maps, c);        /* logs what is wrong with a table */
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return config_error(c, CONFIG_PARAM_virtual_mailbox_maps,
                                    "a table of virtual_mailbox_maps, virtual_uid_maps or virtual_gid_maps is unusable",
                                    c->virtual_mailbox_maps);
        virtual_maps_done(&maps);
        return 0;
}

static int virtual_setup(Daemon *d) {
        DeliveryAgent *a;
        uid_t postbus_uid = (uid_t) -1;
        int fd, r;

        fd = daemon_listen_fd(d, "virtual");
        if (fd < 0)
                return log_error_errno(fd, "No socket named \"virtual\" was passed.");
        r = virtual_check_config(d->config);
        if (r < 0)
                return r;
        r = get_user_uid("postbus", &postbus_uid);
        if (r < 0)
                log_warning_errno(r, "Cannot find the postbus user, only root may connect: %m");
        r = virtual_new(d, fd, postbus_uid, &a);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Delivery1 service: %m");
        d->userdata = a;
        return 0;
}

/* The maps are opened again from the new configuration; a delivery in progress has its own. */
static int virtual_reload_config(Daemon *d, Config *new) {
        int r;

        r = virtual_check_config(new);
        if (r < 0)
                return r;
        return virtual_reload(d->userdata, new);
}

static void virtual_done(Daemon *d) {
        d->userdata = virtual_free(d->userdata);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "virtual",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = virtual_setup,
                .done = virtual_done,
                .reload = virtual_reload_config,
        };

        return daemon_main(argc, argv, &spec);
}
