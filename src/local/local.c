/* local.c: the local delivery role: delivers queued mail to UNIX mailboxes (mbox in the mail spool or the
 * home directory, or Maildir) for qmgr, over org.postbus.Delivery1 on its socket.
 *
 * SECURITY
 * local runs as root, because it writes mailboxes as their owners; the unit confines it
 * (ProtectSystem=strict with only /var/mail and /home writable, no network, the capabilities for switching
 * users and for files).
 * It trusts only its peer, qmgr: connections are accepted from uid 0 and the postbus user alone (SO_PEERCRED
 * at accept), and even so every argument is checked (queue ID syntax, addresses, a regular queue file that
 * must validate as a whole, bounded recipient count, indices within the file). It reads the queue file only
 * through the descriptor qmgr passes.
 * The parent never touches a mailbox: each recipient is delivered by a forked child that holds only the
 * queue file and its result pipe, looks the user up, and acts as the recipient. In the home directory
 * (home_mailbox) it gives up root for good before it touches anything. In the mail spool it creates the
 * mailbox and the dot-lock with the rights of the spool directory (the recipient with the spool's group on
 * Debian; root only where the spool is writable by root alone, then chowning the new file), refuses symbolic
 * links, hard links, non-regular files and mailboxes owned by others, and writes the message with the
 * recipient's effective ids. The only files written are <mail_spool_directory>/<user> and its ".lock", or
 * ~/<home_mailbox> (and its ".lock", or the Maildir's tmp/ and new/). The parent takes the child's report as
 * untrusted: a strict enhanced status code and escaped text of bounded length. */
#include <inttypes.h>
#include <limits.h>

#include "bus-util.h"
#include "local.h"
#include "log.h"

static int local_setup(Daemon *d) {
        Local *l;
        uid_t postbus_uid = (uid_t) -1;
        int fd, r;

        fd = daemon_listen_fd(d, "local");
        if (fd < 0)
                return log_error_errno(fd, "No socket named \"local\" was passed.");
        /* As in Postfix: otherwise every message near the size limit would bounce. */
        const Config *c = d->config;
        if (c->mailbox_size_limit > 0 && c->mailbox_size_limit < c->message_size_limit) {
                char where[PATH_MAX + 32];
                return log_error_errno(EINVAL, "%s: mailbox_size_limit = %" PRIi64 " is smaller than "
                                       "message_size_limit = %" PRIi64 "; set it larger, or 0 (no limit).",
                                       config_where(c, CONFIG_PARAM_mailbox_size_limit, where, sizeof where),
                                       c->mailbox_size_limit, c->message_size_limit);
        }

        r = get_user_uid("postbus", &postbus_uid);
        if (r < 0)
                log_warning_errno(r, "Cannot find the postbus user, only root may connect: %m");

        r = local_new(d, fd, postbus_uid, &l);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Delivery1 service: %m");
        d->userdata = l;
        return 0;
}

static void local_done(Daemon *d) {
        d->userdata = local_free(d->userdata);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "local",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = local_setup,
                .done = local_done,
        };

        return daemon_main(argc, argv, &spec);
}
