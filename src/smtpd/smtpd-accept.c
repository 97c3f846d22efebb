/* smtpd-accept.c: the smtpd process's listening sockets: accepting clients, refusing them over
 * smtpd_session_limit and the per-client connection limits (smtpd-anvil.c), and starting their sessions. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/socket.h>

#include "log.h"
#include "smtpd-session.h"

static void accept_enable(Smtpd *server, int enabled) {
        for (size_t i = 0; i < server->n_listen; i++)
                (void) sd_event_source_set_enabled(server->listen_sources[i], enabled);
}

static int on_accept_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        accept_enable(userdata, SD_EVENT_ON);
        return 0;
}

/* Out of file descriptors or memory: the pending connection stays readable, so stop polling for a
 * second rather than spin. */
static void accept_pause(Smtpd *server) {
        uint64_t when = now_monotonic_usec() + USEC_PER_SEC;
        int r;

        accept_enable(server, SD_EVENT_OFF);
        if (server->accept_retry) {
                (void) sd_event_source_set_time(server->accept_retry, when);
                r = sd_event_source_set_enabled(server->accept_retry, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(server->daemon->event, &server->accept_retry, CLOCK_MONOTONIC, when, 0,
                                      on_accept_retry, server);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the accept timer, accepting again at once: %m");
                accept_enable(server, SD_EVENT_ON);
        }
}

static void refuse(Smtpd *server, int fd, const SmtpdAddress *client) {
        char reply[SMTPD_REPLY_LINE_MAX];
        int n;

        log_mail(LOG_WARNING, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", client->text }, { "SMTP_COMMAND", "CONNECT" }, { "DSN", "4.7.0" }),
                 "Too many connections (smtpd_session_limit=%" PRIi64 "), refused unknown[%s]",
                 server->config->smtpd_session_limit, client->text);
        n = snprintf(reply, sizeof reply, "421 4.7.0 %s Error: too many connections\r\n",
                     server->config->myhostname);
        if (n > 0)
                (void) send(fd, reply, MIN((size_t) n, sizeof reply - 1), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int on_anvil_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Smtpd *server = userdata;
        uint64_t now = now_monotonic_usec();

        if (smtpd_anvil_expire(server->anvil, now) == 0) {
                server->anvil_busy = false;
                daemon_busy_dec(server->daemon);
                return 0;
        }
        (void) sd_event_source_set_time(source, now + sec_to_usec(server->config->anvil_rate_time_unit));
        (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        return 0;
}

/* With a rate limit on, the counters must outlive the sessions: were smtpd to exit idle, a client could
 * start its rates again by waiting max_idle. So smtpd counts as busy while it keeps any, and a timer
 * drops them once their time unit is over. */
static void anvil_hold(Smtpd *server) {
        const Config *config = server->config;
        uint64_t when = now_monotonic_usec() + sec_to_usec(config->anvil_rate_time_unit);
        int r;

        if (server->anvil_busy || smtpd_anvil_size(server->anvil) == 0 ||
            (config->smtpd_client_connection_rate_limit <= 0 && config->smtpd_client_message_rate_limit <= 0 &&
             config->smtpd_client_recipient_rate_limit <= 0))
                return;
        if (server->anvil_timer) {
                r = sd_event_source_set_time(server->anvil_timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(server->anvil_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(server->daemon->event, &server->anvil_timer, CLOCK_MONOTONIC, when,
                                      USEC_PER_SEC, on_anvil_timer, server);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the rate counter timer, ignoring: %m");
                return;
        }
        server->anvil_busy = true;
        daemon_busy_inc(server->daemon);
}

/* smtpd_client_connection_count_limit and smtpd_client_connection_rate_limit, per client address, except
 * for smtpd_client_event_limit_exceptions. Returns false when the client was refused (answered, logged);
 * else *ret is its counters (NULL when it is exempt), for the session to hold. */
static bool anvil_admit(Smtpd *server, int fd, const SmtpdAddress *client, SmtpdAnvilClient **ret) {
        const Config *config = server->config;
        uint64_t now = now_monotonic_usec();
        char reply[SMTPD_REPLY_LINE_MAX];
        SmtpdAnvilClient *c;
        const char *what;
        unsigned count;
        int64_t limit;
        int r, n;

        *ret = NULL;
        if (smtpd_networks_match(&server->conf->limit_exceptions, client))
                return true;
        r = smtpd_anvil_connect(server->anvil, client->text, now, &c);
        anvil_hold(server);
        if (r < 0) {
                log_warning_errno(r, "Failed to count a connection from %s, not limiting it: %m", client->text);
                return true;
        }
        if (config->smtpd_client_connection_count_limit > 0 &&
            c->connections > (uint64_t) config->smtpd_client_connection_count_limit) {
                what = "Connection concurrency";
                count = c->connections;
                limit = config->smtpd_client_connection_count_limit;
        } else if (config->smtpd_client_connection_rate_limit > 0 &&
                   c->connection_rate > (uint64_t) config->smtpd_client_connection_rate_limit) {
                what = "Connection rate";
                count = c->connection_rate;
                limit = config->smtpd_client_connection_rate_limit;
        } else {
                *ret = c;
                return true;
        }
        smtpd_anvil_disconnect(server->anvil, c, now);

        n = snprintf(reply, sizeof reply, "421 4.7.0 %s Error: too many connections from %s",
                     config->myhostname, client->text);
        log_mail(LOG_WARNING, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", client->text }, { "SMTP_COMMAND", "CONNECT" }, { "DSN", "4.7.0" }),
                 "NOQUEUE: reject: CONNECT from unknown[%s]: %s; %s limit exceeded: %u (limit %" PRIi64 ")",
                 client->text, reply, what, count, limit);
        if (n > 0 && (size_t) n < sizeof reply - 2) {
                memcpy(reply + n, "\r\n", 2);
                (void) send(fd, reply, (size_t) n + 2, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        return false;
}

static int on_accept(sd_event_source *source, int listen_fd, uint32_t revents, void *userdata) {
        SmtpdListener *listener = userdata;
        Smtpd *server = listener->server;
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        SmtpdAddress client;
        int r;

        fd = accept4(listen_fd, (struct sockaddr *) &sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        log_warning_errno(errno, "Failed to accept a connection: %m");
                        accept_pause(server);
                } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_debug_errno(errno, "Failed to accept a connection, ignoring: %m");
                return 0;
        }
        r = smtpd_address_from_sockaddr((struct sockaddr *) &sa, salen, &client);
        if (r < 0) {
                log_warning_errno(r, "Failed to format a client address, closing: %m");
                return 0;
        }

        if (server->n_sessions >= (unsigned) server->config->smtpd_session_limit) {
                refuse(server, fd, &client);
                return 0;
        }
        /* Port 465 without a certificate cannot speak at all (smtpd.c warned at start). */
        if (listener->wrappermode && !listener->tls) {
                log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", client.text }),
                         "%s: no TLS certificate (smtpd_tls_cert_file), refused unknown[%s]", listener->name,
                         client.text);
                return 0;
        }
        SmtpdAnvilClient *anvil;
        if (!anvil_admit(server, fd, &client, &anvil))
                return 0;
        r = smtpd_session_new(listener, fd, &client, anvil);
        if (r < 0) {
                log_warning_errno(r, "Failed to set up a session for %s, closing: %m", client.text);
                return 0;
        }
        TAKE_FD(fd);
        return 0;
}

int smtpd_listen(SmtpdListener *listener, int fd) {
        Smtpd *server = listener->server;
        int flags, r;

        /* A connection that is reset between poll and accept must not block the loop. */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_error_errno(errno, "Failed to make a listening socket non-blocking: %m");
        r = sd_event_add_io(server->daemon->event, &server->listen_sources[server->n_listen], fd, EPOLLIN,
                            on_accept, listener);
        if (r < 0)
                return log_error_errno(r, "Failed to watch a listening socket: %m");
        server->n_listen++;
        return 0;
}
