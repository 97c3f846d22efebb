/* smtpd.c: the SMTP server role: receives mail from the network and hands each message to cleanup.
 *
 * SECURITY: smtpd talks to anyone who can reach port 25 and trusts nothing they send. It runs as the
 * unprivileged user postbus without capabilities: systemd binds the port and passes the socket. Peer
 * input is held in a bounded buffer per session (line_length_limit plus one read), parsed only by the
 * pure functions of smtpd-protocol.c, and limited in line length, message size, recipients, errors,
 * junk commands, idle time and session time; smtpd_session_limit bounds the sessions at once, and the
 * smtpd_client_* limits the sessions, new sessions, messages and recipients of one client address, in a
 * table bounded by smtpd_client_table_limit. Message content (DATA or BDAT) is stored with LF line ends
 * only, every CRLF, bare LF and bare CR taken as a line end, so that nothing in the queue can end a
 * message for another MTA where smtpd saw none (SMTP smuggling; smtpd_forbid_bare_newline). smtpd
 * writes no files: a message goes into an anonymous memory file, sealed and passed to cleanup over
 * $rundir/cleanup, and only cleanup's answer that the message is durable makes smtpd reply 250.
 * It trusts cleanup, a local role behind a socket that only postbus may open, for the queue ID and
 * for rejection texts, and still checks both before passing them on. It reads main.cf and the user
 * database (getpwnam(), to tell local recipients that exist). */
#include <limits.h>

#include "log.h"
#include "postbus-config.h"
#include "smtpd.h"

static void smtpd_free(Smtpd *server) {
        if (!server)
                return;
        smtpd_sessions_free(server);
        bus_client_free(server->cleanup);
        for (size_t i = 0; i < server->n_listen; i++)
                sd_event_source_disable_unref(server->listen_sources[i]);
        free(server->listen_sources);
        sd_event_source_disable_unref(server->accept_retry);
        smtpd_networks_done(&server->mynetworks);
        smtpd_networks_done(&server->limit_exceptions);
        smtpd_networks_done(&server->bare_newline_exclusions);
        smtpd_anvil_free(server->anvil);
        strv_free(server->mydestination);
        free(server);
}

static int smtpd_setup(Daemon *d) {
        char where[PATH_MAX + 32];
        Smtpd *server;
        int r;

        server = calloc(1, sizeof(Smtpd));
        if (!server)
                return log_oom();
        d->userdata = server;   /* freed by smtpd_done(), also when set-up fails half way */
        server->daemon = d;
        server->config = d->config;
        server->listen_sources = calloc((size_t) d->n_fds, sizeof(sd_event_source *));
        if (!server->listen_sources)
                return log_oom();

        r = config_split_list(d->config->mydestination, &server->mydestination);
        if (r < 0)
                return log_oom();
        r = smtpd_networks_parse(d->config->mynetworks,
                                 config_where(d->config, CONFIG_PARAM_mynetworks, where, sizeof where),
                                 &server->mynetworks);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return -EINVAL;         /* logged with file and line; a bad main.cf is not retried */
        r = smtpd_networks_parse(d->config->smtpd_client_event_limit_exceptions,
                                 config_where(d->config, CONFIG_PARAM_smtpd_client_event_limit_exceptions, where,
                                              sizeof where),
                                 &server->limit_exceptions);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return -EINVAL;
        r = smtpd_networks_parse(d->config->smtpd_forbid_bare_newline_exclusions,
                                 config_where(d->config, CONFIG_PARAM_smtpd_forbid_bare_newline_exclusions, where,
                                              sizeof where),
                                 &server->bare_newline_exclusions);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return -EINVAL;
        if (streq(d->config->smtpd_forbid_bare_newline, "reject") || streq(d->config->smtpd_forbid_bare_newline, "yes"))
                server->reject_bare_lf = true;
        else if (!streq(d->config->smtpd_forbid_bare_newline, "normalize"))
                return log_error_errno(EINVAL, "%s: smtpd_forbid_bare_newline = %s: must be normalize, reject or yes.",
                                       config_where(d->config, CONFIG_PARAM_smtpd_forbid_bare_newline, where,
                                                    sizeof where),
                                       d->config->smtpd_forbid_bare_newline);
        r = smtpd_anvil_new((size_t) d->config->smtpd_client_table_limit,
                            (uint64_t) d->config->anvil_rate_time_unit * USEC_PER_SEC, &server->anvil);
        if (r < 0)
                return log_oom();
        r = bus_client_new(d->event, POSTBUS_RUNDIR "/cleanup", &server->cleanup);
        if (r < 0)
                return log_oom();

        /* Every socket named "smtp": the unit may list several ListenStream= addresses. */
        for (int i = 0; i < d->n_fds; i++)
                if (d->fd_names && d->fd_names[i] && streq(d->fd_names[i], "smtp")) {
                        r = smtpd_listen(server, d->fds[i]);
                        if (r < 0)
                                return r;
                }
        if (server->n_listen == 0)
                return log_error_errno(ENOENT,
                                       "No socket named \"smtp\" was passed (FileDescriptorName=smtp).");
        return 0;
}

static void smtpd_done(Daemon *d) {
        smtpd_free(d->userdata);
        d->userdata = NULL;
}

static const DaemonSpec smtpd_spec = {
        .role = "smtpd",
        .may_exit_idle = true,
        .needs_sockets = true,
        .setup = smtpd_setup,
        .done = smtpd_done,
};

int main(int argc, char **argv) {
        return daemon_main(argc, argv, &smtpd_spec);
}
