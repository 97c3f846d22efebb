/* sendmail.c: the sendmail command (also mailq and newaliases, the same program under other names): how
 * every program on the machine hands postbus a message. It writes the message into the maildrop and
 * returns; pickup, started by postbus-pickup.path, takes it from there. Mail is accepted while the
 * daemons are stopped.
 *
 * SECURITY: set-group-ID postdrop, run by any user with any environment, arguments and descriptors. It
 * clears the environment first, keeps 0, 1 and 2 open, and takes a configuration other than the default
 * (-C) from root only. With the postdrop group it may create files in the maildrop directory (mode 1730
 * postbus:postdrop: the group may create but not list, and the sticky bit keeps users from removing each
 * other's files); it writes nothing else, and gives the group up at once in the modes that do not write
 * there (-bp, -q, -bi). Its files are 0440, owned by the user (pickup's proof of who sent the mail) and
 * readable by the postdrop group, which pickup runs with; their names hold 64 random bits, so a process
 * with the group cannot find another user's file without listing the directory, which only postbus can.
 * Input is bounded: the message by message_size_limit, the envelope by MAILDROP_ENVELOPE_MAX, SMTP lines
 * by line_length_limit. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "log.h"
#include "sendmail.h"

/* A program started with 0, 1 or 2 closed would write its files or replies on them. */
static int ensure_std_fds(void) {
        for (int fd = 0; fd <= 2; fd++)
                if (fcntl(fd, F_GETFD) < 0) {
                        int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
                        if (nfd < 0)
                                return -errno;
                        if (nfd != fd)
                                return -EBADF;
                }
        return 0;
}

static int drop_group(void) {
        gid_t gid = getgid();
        return setresgid(gid, gid, gid) < 0 ? -errno : 0;
}

int main(int argc, char **argv) {
        SendmailOptions o = {};
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *error = NULL, *config_path = NULL;
        int r, status;

        if (ensure_std_fds() < 0)
                return EX_OSERR;
        if (clearenv() != 0 || setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1) < 0)
                return EX_OSERR;
        umask(0077);
        log_setup("sendmail");
        log_set_target(LOG_TARGET_STDERR);

        r = sendmail_parse_argv(argc, argv, &o, &error);
        if (r < 0) {
                if (r == -ENOMEM)
                        return log_oom(), EX_OSERR;
                fprintf(stderr, "%s: %s\nusage: %s [-t] [-i] [-f sender] [-F full-name] [-N dsn] [-R ret] "
                        "[-V envid] [-B body] [recipient ...] | -bs | -bp | -bi | -q\n",
                        program_invocation_short_name, error, program_invocation_short_name);
                return EX_USAGE;
        }
        if (o.verbose)
                for (char **w = o.warnings; w && *w; w++)
                        fprintf(stderr, "%s: %s\n", program_invocation_short_name, *w);

        if (o.mode != SENDMAIL_MODE_DELIVER && o.mode != SENDMAIL_MODE_SMTP && drop_group() < 0) {
                log_error_errno(errno, "Failed to give up the postdrop group: %m");
                sendmail_options_done(&o);
                return EX_OSERR;
        }
        if (o.mode == SENDMAIL_MODE_NOTHING) {
                sendmail_options_done(&o);
                return EX_OK;
        }

        if (o.config_dir) {
                if (getuid() != 0) {
                        fprintf(stderr, "%s: -C: only root may choose another configuration.\n",
                                program_invocation_short_name);
                        sendmail_options_done(&o);
                        return EX_USAGE;
                }
                if (asprintf(&config_path, "%s/main.cf", o.config_dir) < 0) {
                        sendmail_options_done(&o);
                        return log_oom(), EX_OSERR;
                }
        }
        r = config_load(config_path, &config);
        if (r < 0) {
                log_error("The configuration is not valid.");
                sendmail_options_done(&o);
                return r == -ENOMEM ? EX_OSERR : EX_CONFIG;
        }

        switch (o.mode) {
        case SENDMAIL_MODE_SMTP:
                status = sendmail_smtp(config, &o);
                break;
        case SENDMAIL_MODE_LIST:
                status = sendmail_list_queue(config, &o);
                break;
        case SENDMAIL_MODE_ALIASES:
                status = sendmail_rebuild_aliases(config, &o);
                break;
        case SENDMAIL_MODE_FLUSH:
                status = sendmail_flush_queue(config, &o);
                break;
        case SENDMAIL_MODE_DELIVER:
        default:
                status = sendmail_deliver(config, &o);
                break;
        }
        sendmail_options_done(&o);
        return status;
}
