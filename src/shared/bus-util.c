/* bus-util.c: the peer-to-peer sd-bus server every role that others call runs (bus-client.c holds the
 * client side), and small bus helpers. Run by qmgr, cleanup, rewrite, bounce and the delivery agents. */
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <systemd/sd-id128.h>

#include "bus-util.h"
#include "io-util.h"
#include "log.h"

/* A peer that connects and does not finish the handshake in this time is dropped, so that it cannot hold
 * one of the connection_limit places. */
#define BUS_SERVER_AUTH_TIMEOUT_USEC (30 * USEC_PER_SEC)

typedef struct BusConnection BusConnection;

struct BusServer {
        Daemon *daemon;
        int listen_fd;
        sd_event_source *accept_source;
        BusServerSetupFunc setup;
        void *userdata;
        sd_id128_t id;
        bool allow_any;
        char *name;                     /* the socket's FileDescriptorName=, once its callers are known */
        uid_t *allowed;
        size_t n_allowed;
        unsigned connection_limit;
        unsigned n_connections;
        bool limit_logged;
        BusConnection *connections;
        sd_event_source *sweep;         /* while calls are in flight: replies that did not fit, flushed */
};

struct BusConnection {
        BusServer *server;
        sd_bus *bus;
        sd_event_source *io_source;
        uint32_t io_events;             /* what io_source waits for */
        sd_event_source *auth_timer;
        BusConnection *prev, *next;
};

/* How often replies sent outside a handler that the socket did not take at once (a peer that does not read)
 * are looked for while calls are in flight. */
#define BUS_SERVER_SWEEP_USEC USEC_PER_SEC

static void accept_resume(BusServer *s) {
        if (s->n_connections >= s->connection_limit || !s->accept_source)
                return;
        if (s->limit_logged)
                log_info("Below the bus connection limit (%u) again, accepting connections.", s->connection_limit);
        s->limit_logged = false;
        (void) sd_event_source_set_enabled(s->accept_source, SD_EVENT_ON);
}

/* Never blocks: replies still unwritten are lost, and their callers treat the calls as failed for now (their
 * outcome is unknown to them, as when a process dies). */
static BusConnection *bus_connection_free(BusConnection *c) {
        if (!c)
                return NULL;
        if (c->server) {
                if (c->prev)
                        c->prev->next = c->next;
                else
                        c->server->connections = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                c->server->n_connections--;
                accept_resume(c->server);
        }
        sd_event_source_disable_unref(c->io_source);
        sd_event_source_disable_unref(c->auth_timer);
        if (c->bus) {
                uint64_t n = 0;
                if (sd_bus_get_n_queued_write(c->bus, &n) >= 0 && n > 0)
                        log_debug("Closing a bus connection with %" PRIu64 " messages unsent.", n);
                sd_bus_close_unref(c->bus);
        }
        free(c);
        return NULL;
}

/* A connection waits for input always (level-triggered: sd-bus reads a message and no more, so what is left
 * stays in the socket and wakes the loop again), and for room to write only while sd-bus holds output that
 * the socket did not take: waiting for it always would wake us each time the peer reads a reply. */
static void connection_update_events(BusConnection *c) {
        int events = sd_bus_get_events(c->bus);
        uint32_t want = EPOLLIN | (events > 0 && (events & POLLOUT) ? EPOLLOUT : 0);

        if (want != c->io_events && sd_event_source_set_io_events(c->io_source, want) >= 0)
                c->io_events = want;
}

/* Whether sd-bus has work that no input will announce: a message it read ahead (while waiting for a reply) or
 * a call that timed out. Else the socket's readiness tells when to come back, and one more read to find it
 * empty would be a wasted system call for every message. */
static bool connection_has_work(BusConnection *c) {
        uint64_t until;

        return sd_bus_get_timeout(c->bus, &until) > 0 && until <= now_monotonic_usec();
}

/* A reply sent later, from outside a handler, goes out at once as a rule; one that the socket did not take
 * waits in sd-bus, and is found here within a second, while calls are in flight (not on every loop turn). */
static int on_sweep(sd_event_source *source, uint64_t usec, void *userdata) {
        BusServer *s = userdata;

        for (BusConnection *c = s->connections; c; c = c->next)
                connection_update_events(c);
        if (s->daemon->busy > 0) {
                (void) sd_event_source_set_time_relative(source, BUS_SERVER_SWEEP_USEC);
                (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        }
        return 0;
}

static void sweep_arm(BusServer *s) {
        int enabled = SD_EVENT_OFF;

        if (!s->sweep) {
                if (sd_event_add_time_relative(s->daemon->event, &s->sweep, CLOCK_MONOTONIC, BUS_SERVER_SWEEP_USEC,
                                               USEC_PER_SEC / 4, on_sweep, s) < 0)
                        log_warning("Cannot arm the bus server's sweep: a reply that the socket cannot take at once "
                                    "waits for the caller's next call.");
                return;
        }
        if (sd_event_source_get_enabled(s->sweep, &enabled) >= 0 && enabled == SD_EVENT_OFF) {
                (void) sd_event_source_set_time_relative(s->sweep, BUS_SERVER_SWEEP_USEC);
                (void) sd_event_source_set_enabled(s->sweep, SD_EVENT_ONESHOT);
        }
}

/* Each connection has its own io source: no work per connection on loop turns that do not concern it
 * (sd_bus_attach_event() prepares every attached connection on every turn). */
static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        BusConnection *c = userdata;
        BusServer *s = c->server;
        Daemon *d = s->daemon;
        /* The handshake reads ahead, maybe into the first message: until it is over, sd-bus is asked until it
         * has nothing left. */
        bool drain = c->auth_timer;
        int r;

        /* Busy while it runs: the idle timer starts again after each call, however short. A connection that is
         * closing is left to bus_connection_free(), which takes its descriptor out of the loop's epoll set
         * before sd-bus closes it: closed first, a copy of it that a child just forked holds would keep it in
         * the set, which would then report a freed source. */
        daemon_busy_inc(d);
        r = 0;
        while (sd_bus_is_open(c->bus) > 0) {
                r = sd_bus_process(c->bus, NULL);
                if (r <= 0 || !(drain || connection_has_work(c)))
                        break;
        }
        if (r < 0 && r != -ENOTCONN && r != -ECONNRESET && r != -EPIPE)
                log_debug_errno(r, "Failed to process a bus connection: %m");
        if (c->auth_timer && sd_bus_is_ready(c->bus) > 0)
                c->auth_timer = sd_event_source_disable_unref(c->auth_timer);
        if (r < 0 || sd_bus_is_open(c->bus) <= 0)
                bus_connection_free(c);
        else
                connection_update_events(c);
        daemon_busy_dec(d);
        /* A call still in flight answers later, maybe more than the socket takes. */
        if (d->busy > 0)
                sweep_arm(s);
        return 0;
}

static int on_auth_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        BusConnection *c = userdata;

        log_warning("A peer did not finish the bus handshake in time, closing its connection.");
        bus_connection_free(c);
        return 0;
}

static bool peer_allowed(BusServer *s, uid_t uid) {
        if (s->allow_any || uid == 0 || uid == geteuid())
                return true;
        for (size_t i = 0; i < s->n_allowed; i++)
                if (s->allowed[i] == uid)
                        return true;
        return false;
}

/* Journaled with the peer's identity, as the kernel gives it: a refusal means a role or a user tried a socket
 * its unit's SocketGroup= should not have let it reach, or the socket file's mode was changed. */
static void log_refused(const BusServer *s, const struct ucred *cred) {
        char uid[32], pid[32];
        struct passwd *pw;

        (void) snprintf(uid, sizeof uid, "%u", (unsigned) cred->uid);
        (void) snprintf(pid, sizeof pid, "%i", (int) cred->pid);
        pw = getpwuid(cred->uid);
        log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "PEER_UID", uid }, { "PEER_PID", pid },
                                               { "PEER_USER", pw ? pw->pw_name : NULL }, { "SOCKET", s->name }),
                 "Refused a connection%s%s from uid %s%s%s%s (pid %s): not one of its callers.",
                 s->name ? " on the " : "", s->name ? s->name : "", uid, pw ? " (" : "", pw ? pw->pw_name : "",
                 pw ? ")" : "", pid);
}

/* Takes cfd, whatever the outcome. */
static int connection_start(BusServer *s, int cfd) {
        _cleanup_close_ int fd = cfd;
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ BusConnection *c = NULL;
        int r;

        c = calloc(1, sizeof(BusConnection));
        if (!c)
                return -ENOMEM;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0)
                return r;
        TAKE_FD(fd);            /* the bus closes it */
        if ((r = sd_bus_set_server(bus, 1, s->id)) < 0 ||
            (r = sd_bus_negotiate_fds(bus, true)) < 0 ||
            (r = s->setup(bus, s->userdata)) < 0 ||
            (r = sd_bus_start(bus)) < 0)
                return r;
        /* sd_bus_start() may have read the peer's first words already, and the answer waits to be written: the
         * first turn (the socket is writable) finds out what the connection waits for. */
        c->io_events = EPOLLIN | EPOLLOUT;
        r = sd_event_add_io(s->daemon->event, &c->io_source, cfd, c->io_events, on_connection_io, c);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(s->daemon->event, &c->auth_timer, CLOCK_MONOTONIC,
                                       BUS_SERVER_AUTH_TIMEOUT_USEC, USEC_PER_SEC, on_auth_timeout, c);
        if (r < 0) {
                c->io_source = sd_event_source_disable_unref(c->io_source);
                return r;
        }
        c->bus = TAKE_PTR(bus);
        c->server = s;
        c->next = s->connections;
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        s->n_connections++;
        TAKE_PTR(c);
        return 0;
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        BusServer *s = userdata;
        _cleanup_close_ int cfd = -EBADF;
        struct ucred cred;
        socklen_t len = sizeof cred;
        int r;

        if (s->n_connections >= s->connection_limit) {
                /* Peers wait in the listen backlog until a connection closes, rather than fail. */
                if (!s->limit_logged)
                        log_warning("Reached the bus connection limit (%u, bus_connection_limit), not accepting "
                                    "more until one closes.", s->connection_limit);
                s->limit_logged = true;
                (void) sd_event_source_set_enabled(s->accept_source, SD_EVENT_OFF);
                return 0;
        }
        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                        return 0;
                log_warning_errno(errno, "Failed to accept a connection, ignoring: %m");
                return 0;
        }
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                log_warning_errno(errno, "Failed to get the peer's credentials, ignoring: %m");
                return 0;
        }
        if (!peer_allowed(s, cred.uid)) {
                log_refused(s, &cred);
                return 0;
        }
        r = connection_start(s, TAKE_FD(cfd));
        if (r < 0) {
                log_warning_errno(r, "Failed to set up a bus connection, ignoring: %m");
                return 0;
        }
        log_debug("Accepted a connection from uid %u (pid %i).", (unsigned) cred.uid, (int) cred.pid);
        return 0;
}

int bus_server_new(Daemon *d, int listen_fd, BusServerSetupFunc setup, void *userdata, BusServer **ret) {
        _cleanup_(bus_server_freep) BusServer *s = NULL;
        int r;

        s = calloc(1, sizeof(BusServer));
        if (!s)
                return -ENOMEM;
        s->daemon = d;
        s->listen_fd = listen_fd;
        s->setup = setup;
        s->userdata = userdata;
        s->connection_limit = (unsigned) d->config->bus_connection_limit;
        r = sd_id128_randomize(&s->id);
        if (r < 0)
                return r;
        r = sd_event_add_io(d->event, &s->accept_source, listen_fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int bus_server_allow_uid(BusServer *s, uid_t uid) {
        uid_t *l;

        if (peer_allowed(s, uid))
                return 0;
        l = reallocarray(s->allowed, s->n_allowed + 1, sizeof(uid_t));
        if (!l)
                return -ENOMEM;
        s->allowed = l;
        s->allowed[s->n_allowed++] = uid;
        return 0;
}

void bus_server_allow_any(BusServer *s) {
        s->allow_any = true;
}

unsigned bus_server_n_connections(const BusServer *s) {
        return s->n_connections;
}

BusServer *bus_server_free(BusServer *s) {
        if (!s)
                return NULL;
        s->accept_source = sd_event_source_disable_unref(s->accept_source);
        s->sweep = sd_event_source_disable_unref(s->sweep);
        while (s->connections)
                bus_connection_free(s->connections);
        free(s->allowed);
        free(s->name);
        free(s);
        return NULL;
}

/* The roles that call each role, by the FileDescriptorName= of its socket: their users
 * (units/sysusers-postbus.conf), besides root, which local and pipe run as (local forwards mail through
 * cleanup). The socket units let the same users reach the socket file (SocketGroup= postbus-to-<role>, or
 * the owner postbus alone for qmgr's agents); this is the check at accept, which holds however the file's
 * mode is changed. */
static const struct {
        const char *socket;
        const char *callers[4];
} role_callers[] = {
        { "cleanup", { "postbus-smtpd", "postbus-pickup", "postbus-bounce" } },
        { "rewrite", { "postbus-cleanup", "postbus", "postbus-smtpd" } },
        { "qmgr",    { "postbus-cleanup", "postbus-pickup" } },     /* Wake; the agents answer qmgr's calls */
        { "bounce",  { "postbus", "postbus-pickup" } },
        { "local",   { "postbus" } },
        { "pipe",    { "postbus" } },
        { "smtp",    { "postbus" } },
        { "lmtp",    { "postbus" } },
        { "virtual", { "postbus" } },
};

int bus_server_allow_callers(BusServer *s, const char *fd_name) {
        size_t i;
        int r;

        free(s->name);
        s->name = strdup(fd_name);
        if (!s->name)
                return -ENOMEM;
        for (i = 0; i < ELEMENTSOF(role_callers); i++)
                if (streq(role_callers[i].socket, fd_name))
                        break;
        if (i >= ELEMENTSOF(role_callers)) {
                log_warning("No callers are known for the %s socket: only root may connect.", fd_name);
                return 0;
        }
        for (size_t k = 0; k < ELEMENTSOF(role_callers[i].callers) && role_callers[i].callers[k]; k++) {
                uid_t uid;

                r = get_user_uid(role_callers[i].callers[k], &uid);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_warning_errno(r, "Cannot find the user %s, who calls the %s socket, ignoring: %m",
                                          role_callers[i].callers[k], fd_name);
                        continue;
                }
                r = bus_server_allow_uid(s, uid);
                if (r < 0)
                        return r;
        }
        return 0;
}

int bus_server_serve(Daemon *d, const char *fd_name, BusServerSetupFunc setup, void *userdata, BusServer **ret) {
        int fd, r;

        fd = daemon_listen_fd(d, fd_name);
        if (fd < 0)
                return fd;
        r = bus_server_new(d, fd, setup, userdata, ret);
        if (r < 0)
                return log_error_errno(r, "Failed to serve the %s socket: %m", fd_name);
        r = bus_server_allow_callers(*ret, fd_name);
        if (r < 0)
                return log_oom();
        return 0;
}

int bus_check_peer_fd(sd_bus_message *m, int fd, PeerFdKind kind, const char *what, struct stat *ret_st,
                      sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *why = NULL;
        char uid_s[16] = "?", pid_s[16] = "?";
        uid_t uid;
        pid_t pid;
        int r;

        r = peer_fd_check(fd, kind, ret_st, &why);
        if (r >= 0)
                return 0;
        /* In peer-to-peer mode the owner's credentials are the peer's, from SO_PEERCRED. */
        if (sd_bus_get_owner_creds(sd_bus_message_get_bus(m), SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID, &creds) >= 0) {
                if (sd_bus_creds_get_euid(creds, &uid) >= 0)
                        (void) snprintf(uid_s, sizeof uid_s, "%u", (unsigned) uid);
                if (sd_bus_creds_get_pid(creds, &pid) >= 0)
                        (void) snprintf(pid_s, sizeof pid_s, "%i", (int) pid);
        }
        log_mail(LOG_WARNING, NULL,
                 LOG_FIELDS({ "MESSAGE_ID", POSTBUS_MESSAGE_DESCRIPTOR_REFUSED }, { "PEER_UID", uid_s },
                            { "PEER_PID", pid_s }),
                 "refused the %s passed to %s by uid %s (pid %s): expected a %s, got %s (%s)", what,
                 strna(sd_bus_message_get_member(m)), uid_s, pid_s, peer_fd_kind_to_string(kind), why,
                 strerror(-r));
        return sd_bus_error_setf(error, POSTBUS_ERROR_BAD_DESCRIPTOR, "The %s is %s; a %s is required.", what, why,
                                 peer_fd_kind_to_string(kind));
}

int bus_error_to_errno(const sd_bus_error *e) {
        int r = sd_bus_error_get_errno(e);
        return r > 0 ? -r : -EIO;
}

int get_user_uid(const char *name, uid_t *ret) {
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(name);
        if (!pw)
                return errno > 0 ? -errno : -ENOENT;
        *ret = pw->pw_uid;
        return 0;
}
