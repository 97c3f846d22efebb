/* local.c: the local delivery role: delivers queued mail for qmgr, over org.postbus.Delivery1 on its socket,
 * as Postfix's local(8) does: alias_maps, :include: files and ~/.forward expand a recipient into mailboxes
 * (mbox in the mail spool or the home directory, or Maildir), |commands, /files and addresses elsewhere,
 * which are submitted to cleanup as a new message.
 *
 * SECURITY
 * local runs as root, because it writes mailboxes as their owners and runs commands as the users who named
 * them; the unit confines it (ProtectSystem=strict with only /var/mail and /home writable, no network but
 * AF_UNIX, NoNewPrivileges=, and only CAP_SETUID, CAP_SETGID, CAP_CHOWN and CAP_KILL), and commands run
 * inside that sandbox. A command gets the postdrop group from local (local-command.c), so that the sendmail
 * it runs needs no set-group-ID bit; the group lets it create maildrop files and nothing more.
 * It trusts only its peer, qmgr: connections are accepted from uid 0 and the postbus user alone (SO_PEERCRED
 * at accept), and even so every argument is checked (queue ID syntax, addresses, a regular queue file that
 * must validate as a whole, bounded recipient count, indices within the file). It reads the queue file only
 * through the descriptor qmgr passes.
 * local itself (root, long-lived) expands each recipient: it reads alias tables, which it keeps open, as root;
 * a .forward file with its user's effective ids (switched for the open() alone and back: local has no
 * threads), and the user must own it (or root) and be the only one who may write it, else it is ignored with
 * a warning; an :include: file with the rights of whoever named it. It never writes a mailbox or a user's
 * file. Mailboxes are written by per-user workers (local-worker.c): forked once per identity, each takes
 * its user's uid, gid and groups for good (real, effective and saved; it checks that it cannot get root
 * back) before it reads a request, holds only its socket to local and, per delivery, the queue file; local
 * closes the idle ones. Where the mail spool is writable by root alone, one worker stays root and switches
 * its effective ids per delivery, as Postfix does. Commands and /files run in a process forked for the
 * recipient (in a process group of its own, killed whole at the call's deadline), as the owner of the alias
 * table, :include: file or .forward that names them, never as root (default_privs instead), only where
 * allow_mail_to_commands/files allow them, a command in a session of its own with a clean environment
 * (values from mail filtered), bounded output and command_time_limit, after which its process group is
 * killed. Loops end: a Delivered-To of the address bounces, so do an address among its own ancestors and
 * nesting deeper than 100, and at most duplicate_filter_limit destinations are expanded. In the home
 * directory (home_mailbox) everything is done by the worker as the user. In the mail spool the worker
 * creates the mailbox and the dot-lock with the rights of the spool directory (the recipient with the
 * spool's group, its saved gid, on Debian; root only where the spool is writable by root alone, then
 * chowning the new file), refuses symbolic links, hard links, non-regular files and mailboxes owned by
 * others, and writes the message with the recipient's effective ids. A Maildir file is fsynced before it
 * is linked into new/, and new/ after. Forwarded mail goes to cleanup over its socket, as root.
 * local takes the answers of workers and of the command process as untrusted: strict enhanced status codes
 * and escaped text of bounded length. */
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <unistd.h>

#include "bus-util.h"
#include "local.h"
#include "log.h"
#include "table.h"

static int config_error(const Config *c, ConfigParamId id, const char *why, const char *value) {
        char where[PATH_MAX + 32];

        log_error("%s: %s: \"%s\": %s", config_where(c, id, where, sizeof where), config_params[id].name, value,
                  why);
        return -EINVAL;
}

/* What local alone uses is checked at start, so that a mistake stops the role rather than every delivery. */
static int local_check_config(const Config *c) {
        static const ConfigParamId lists[] = { CONFIG_PARAM_allow_mail_to_commands, CONFIG_PARAM_allow_mail_to_files };
        _cleanup_strv_free_ char **specs = NULL, **paths = NULL;
        struct passwd *pw;
        int r;

        errno = 0;
        pw = getpwnam(c->default_privs);
        if (!pw)
                return config_error(c, CONFIG_PARAM_default_privs, "no such user", c->default_privs);
        if (pw->pw_uid == 0)
                return config_error(c, CONFIG_PARAM_default_privs, "must not be a privileged user", c->default_privs);
        /* As Postfix refuses mail_owner: the roles' users (units/sysusers-postbus.conf) are admitted by the roles'
         * sockets, which a command must not reach. */
        if (streq(pw->pw_name, "postbus") || strncmp(pw->pw_name, "postbus-", STRLEN("postbus-")) == 0)
                return config_error(c, CONFIG_PARAM_default_privs, "must not be a mail system user", c->default_privs);

        for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
                _cleanup_strv_free_ char **l = NULL;
                const char *v = lists[i] == CONFIG_PARAM_allow_mail_to_commands ? c->allow_mail_to_commands
                                                                                : c->allow_mail_to_files;
                r = config_split_list(v, &l);
                if (r < 0)
                        return log_oom();
                for (char **s = l; s && *s; s++)
                        if (!strcaseeq(*s, "alias") && !strcaseeq(*s, "forward") && !strcaseeq(*s, "include"))
                                return config_error(c, lists[i], "only alias, forward and include are known", *s);
        }

        MailboxLocking locking;
        r = mailbox_lock_parse(c->mailbox_delivery_lock, &locking);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return config_error(c, CONFIG_PARAM_mailbox_delivery_lock, "only fcntl and dotlock are known",
                                    c->mailbox_delivery_lock);

        r = config_split_list(c->forward_path, &paths);
        if (r < 0)
                return log_oom();
        for (char **p = paths; p && *p; p++) {
                _cleanup_free_ char *x = NULL;
                if (format_expand_vars(*p, NULL, &x) < 0)
                        return config_error(c, CONFIG_PARAM_forward_path, "malformed $name reference", *p);
        }

        r = config_split_list(c->alias_maps, &specs);
        if (r < 0)
                return log_oom();
        for (char **s = specs; s && *s; s++) {
                _cleanup_(table_freep) Table *t = NULL;
                if (table_open(*s, &t) < 0)     /* logs what is wrong with the spec */
                        return config_error(c, CONFIG_PARAM_alias_maps, "bad table", *s);
        }

        const struct {
                ConfigParamId id;
                const char *value;
        } maps[] = {
                { CONFIG_PARAM_mailbox_transport_maps, c->mailbox_transport_maps },
                { CONFIG_PARAM_mailbox_command_maps, c->mailbox_command_maps },
                { CONFIG_PARAM_fallback_transport_maps, c->fallback_transport_maps },
        };
        for (size_t i = 0; i < ELEMENTSOF(maps); i++) {
                _cleanup_(table_list_freep) TableList *l = NULL;
                r = table_list_open(maps[i].value, &l);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return config_error(c, maps[i].id, "bad table list", maps[i].value);
        }
        return 0;
}

/* What local checks of a configuration at start and on reload: -EINVAL, logged with file and line. */
static int local_config_valid(const Config *c) {
        /* As in Postfix: otherwise every message near the size limit would bounce. */
        if (c->mailbox_size_limit > 0 && c->mailbox_size_limit < c->message_size_limit) {
                char where[PATH_MAX + 32];
                return log_error_errno(EINVAL, "%s: mailbox_size_limit = %" PRIi64 " is smaller than "
                                       "message_size_limit = %" PRIi64 "; set it larger, or 0 (no limit).",
                                       config_where(c, CONFIG_PARAM_mailbox_size_limit, where, sizeof where),
                                       c->mailbox_size_limit, c->message_size_limit);
        }
        return local_check_config(c);
}

static int local_setup(Daemon *d) {
        DeliveryAgent *a;
        uid_t postbus_uid = (uid_t) -1;
        int fd, r;

        fd = daemon_listen_fd(d, "local");
        if (fd < 0)
                return log_error_errno(fd, "No socket named \"local\" was passed.");
        r = local_config_valid(d->config);
        if (r < 0)
                return r;
        /* No supplementary groups but postbus-to-lmtp (its unit's SupplementaryGroups=), which owns nothing but
         * the lmtp agent's socket (mailbox_transport, local-pass.c): while local reads a .forward or :include:
         * file as its owner (switching the effective ids alone, local-expand-include.c), none of root's may
         * give it access. */
        struct group *lmtp_group = getgrnam("postbus-to-lmtp");
        gid_t keep = lmtp_group ? lmtp_group->gr_gid : 0;
        if (getuid() == 0 && setgroups(lmtp_group ? 1 : 0, &keep) < 0)
                return log_error_errno(errno, "Failed to drop the supplementary groups: %m");

        /* What per-user workers that a kill ended left in the spool (local-worker.c keeps its dot-lock file). */
        mailbox_dotlock_sweep(d->config->mail_spool_directory);

        r = get_user_uid("postbus", &postbus_uid);
        if (r < 0)
                log_warning_errno(r, "Cannot find the postbus user, only root may connect: %m");

        r = local_new(d, fd, postbus_uid, &a);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Delivery1 service: %m");
        d->userdata = a;
        return 0;
}

/* A delivery in progress finishes as it began; the next one reads the new d->config, alias_maps are opened
 * again, and each per-user worker is replaced once idle. */
static int local_reload_config(Daemon *d, Config *new) {
        int r;

        r = local_config_valid(new);
        if (r < 0)
                return r;
        return local_reload(d->userdata, new);
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
                .reload = local_reload_config,
        };

        return daemon_main(argc, argv, &spec);
}
