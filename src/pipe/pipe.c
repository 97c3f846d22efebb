/* pipe.c: the pipe delivery role: hands queued mail to external commands for qmgr, over
 * org.postbus.Delivery1 on its socket, as Postfix's pipe(8) does for master.cf pipe transports (dovecot-lda,
 * a content filter, a list manager). qmgr reads master.cf and passes each call the transport's settings
 * (argv=, user=, flags=, size=, eol=, the time limit); pipe reads no master.cf.
 *
 * SECURITY
 * pipe runs as root, because each command runs as the user its transport names; the unit confines it and its
 * commands (ProtectSystem=strict with only the mail spool, /home and the maildrop writable, no network but
 * AF_UNIX, the capabilities for switching users and for killing commands). It trusts only its peer, qmgr:
 * connections are accepted from uid 0 and the postbus user alone (SO_PEERCRED at accept), and even so every
 * argument is checked (queue ID syntax, addresses, transport and next hop names, bounded option and recipient
 * counts, a regular queue file that must validate as a whole, indices within the file). It reads the queue
 * file only through the descriptor qmgr passes and never writes it.
 * A command never runs as root, as the postbus user, or with group 0, postbus or postdrop: such a transport
 * defers its mail with a warning. Each command is forked into a session of its own, takes on its user's
 * identity (groups, gid, uid, checked to be irrevocable) before it runs, holds no descriptor of the
 * parent but its stdin and output pipes, gets a clean environment (PATH and export_environment) and is
 * executed directly, without a shell; the macros of argv= expand into whole arguments, so an address can
 * never become two. Its process group is killed at the time limit. The parent never blocks on a command: it
 * writes the message through a non-blocking pipe from the event loop, reads at most PIPE_OUTPUT_MAX bytes
 * of what the command says (the rest is read and dropped), and takes that output as untrusted: control bytes
 * and invalid UTF-8 are replaced before it goes into a result or the journal. */
#include <grp.h>
#include <pwd.h>

#include "bus-util.h"
#include "log.h"
#include "pipe.h"

static void lookup_forbidden(PipeForbidden *f) {
        struct passwd *pw;
        struct group *gr;

        *f = (PipeForbidden) { .owner_uid = (uid_t) -1, .owner_gid = (gid_t) -1, .setgid_gid = (gid_t) -1 };
        errno = 0;
        pw = getpwnam("postbus");
        if (pw) {
                f->owner_uid = pw->pw_uid;
                f->owner_gid = pw->pw_gid;
        } else
                log_warning("Cannot find the postbus user; only root may connect.");
        errno = 0;
        gr = getgrnam("postdrop");
        if (gr)
                f->setgid_gid = gr->gr_gid;
}

static int pipe_setup(Daemon *d) {
        PipeForbidden forbidden;
        Pipe *p;
        int fd, r;

        fd = daemon_listen_fd(d, "pipe");
        if (fd < 0)
                return log_error_errno(fd, "No socket named \"pipe\" was passed.");

        lookup_forbidden(&forbidden);
        r = pipe_new(d, fd, forbidden.owner_uid, &forbidden, &p);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Delivery1 service: %m");
        d->userdata = p;
        return 0;
}

static void pipe_done(Daemon *d) {
        d->userdata = pipe_free(d->userdata);
}

/* Each delivery call copies its settings from d->config when it begins (pipe-options.c): a command running
 * keeps its own, the next one gets the new. */
static int pipe_reload(Daemon *d, Config *new) {
        return 0;
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "pipe",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = pipe_setup,
                .done = pipe_done,
                .reload = pipe_reload,
        };

        return daemon_main(argc, argv, &spec);
}
