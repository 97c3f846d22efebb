/* bus-util.c: peer-to-peer sd-bus servers and clients. */
#include <pwd.h>
#include <sys/socket.h>
#include <systemd/sd-id128.h>

#include "bus-util.h"
#include "log.h"

#define BUS_SERVER_ALLOWED_MAX 8
#define BUS_CLIENT_BACKOFF_MIN_USEC (100 * USEC_PER_MSEC)
#define BUS_CLIENT_BACKOFF_MAX_USEC (10 * USEC_PER_SEC)

typedef struct BusConnection BusConnection;

struct BusServer {
        Daemon *daemon;
        int listen_fd;
        sd_event_source *accept_source;
        sd_event_source *drain_source;
        BusServerSetupFunc setup;
        void *userdata;
        sd_id128_t id;
        bool allow_any;
        uid_t allowed[BUS_SERVER_ALLOWED_MAX];
        size_t n_allowed;
        BusConnection *connections;
};

struct BusConnection {
        BusServer *server;
        sd_bus *bus;
        BusConnection *prev, *next;
};

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
                daemon_busy_dec(c->server->daemon);
        }
        sd_bus_flush_close_unref(c->bus);
        free(c);
        return NULL;
}

static int on_server_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_connection_free(userdata);
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

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        BusServer *s = userdata;
        _cleanup_close_ int cfd = -EBADF;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        struct ucred cred;
        socklen_t len = sizeof cred;
        int r;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                        return 0;
                log_warning_errno(errno, "Failed to accept a connection, ignoring: %m");
                return 0;
        }
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                { (void) log_warning_errno(errno, "Failed to get the peer's credentials, ignoring: %m"); return 0; }
        if (!peer_allowed(s, cred.uid)) {
                log_warning("Refused a connection from uid %u (pid %i).", (unsigned) cred.uid, (int) cred.pid);
                return 0;
        }

        if ((r = sd_bus_new(&bus)) < 0 ||
            (r = sd_bus_set_fd(bus, cfd, cfd)) < 0)
                { (void) log_warning_errno(r, "Failed to set up a bus connection, ignoring: %m"); return 0; }
        TAKE_FD(cfd);
        if ((r = sd_bus_set_server(bus, 1, s->id)) < 0 ||
            (r = sd_bus_negotiate_fds(bus, true)) < 0 ||
            (r = s->setup(bus, s->userdata)) < 0)
                { (void) log_warning_errno(r, "Failed to set up a bus connection, ignoring: %m"); return 0; }

        BusConnection *c = calloc(1, sizeof(BusConnection));
        if (!c)
                { (void) log_oom(); return 0; }
        r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                "Disconnected", on_server_disconnected, c);
        if (r >= 0)
                r = sd_bus_attach_event(bus, s->daemon->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                free(c);
                { (void) log_warning_errno(r, "Failed to start a bus connection, ignoring: %m"); return 0; }
        }
        c->bus = TAKE_PTR(bus);
        c->server = s;
        c->next = s->connections;
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        daemon_busy_inc(s->daemon);
        log_debug("Accepted a connection from uid %u (pid %i).", (unsigned) cred.uid, (int) cred.pid);
        return 0;
}

/* sd_bus_attach_event() processes one message per wake-up; a message that arrived in the same read as the
 * end of the handshake then waits for more input that may never come (seen with libdbus clients). So after
 * every loop iteration that did something, each connection is processed until it has nothing left. */
static int on_drain(sd_event_source *source, void *userdata) {
        BusServer *s = userdata;

        for (BusConnection *c = s->connections, *next; c; c = next) {
                next = c->next;
                sd_bus *bus = sd_bus_ref(c->bus);
                int r;
                do
                        r = sd_bus_process(bus, NULL);
                while (r > 0 && sd_bus_is_open(bus) > 0);
                sd_bus_unref(bus);
                if (r < 0 && r != -ENOTCONN && r != -ECONNRESET)
                        log_debug_errno(r, "Failed to process a bus connection: %m");
        }
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
        r = sd_id128_randomize(&s->id);
        if (r < 0)
                return r;
        r = sd_event_add_io(d->event, &s->accept_source, listen_fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        r = sd_event_add_post(d->event, &s->drain_source, on_drain, s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

void bus_server_allow_uid(BusServer *s, uid_t uid) {
        if (s->n_allowed < BUS_SERVER_ALLOWED_MAX)
                s->allowed[s->n_allowed++] = uid;
}

void bus_server_allow_any(BusServer *s) {
        s->allow_any = true;
}

BusServer *bus_server_free(BusServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                bus_connection_free(s->connections);
        sd_event_source_disable_unref(s->accept_source);
        sd_event_source_disable_unref(s->drain_source);
        free(s);
        return NULL;
}

struct BusClient {
        sd_event *event;
        char *path;
        sd_bus *bus;
        uint64_t backoff_usec;
        uint64_t retry_after;   /* CLOCK_MONOTONIC */
};

int bus_client_new(sd_event *e, const char *socket_path, BusClient **ret) {
        BusClient *c = calloc(1, sizeof(BusClient));

        if (!c)
                return -ENOMEM;
        c->path = strdup(socket_path);
        if (!c->path) {
                free(c);
                return -ENOMEM;
        }
        c->event = sd_event_ref(e);
        *ret = c;
        return 0;
}

static void bus_client_drop(BusClient *c) {
        if (!c->bus)
                return;
        (void) sd_bus_detach_event(c->bus);
        /* No flush: it would block on a peer that does not answer the handshake. */
        c->bus = sd_bus_close_unref(c->bus);
}

BusClient *bus_client_free(BusClient *c) {
        if (!c)
                return NULL;
        bus_client_drop(c);
        sd_event_unref(c->event);
        free(c->path);
        free(c);
        return NULL;
}

const char *bus_client_path(const BusClient *c) {
        return c->path;
}

static int on_client_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusClient *c = userdata;

        log_debug("Connection to %s closed.", c->path);
        /* sd-bus keeps its own reference while dispatching; pending calls have failed already. */
        c->bus = sd_bus_unref(c->bus);
        return 0;
}

static void bus_client_failed(BusClient *c) {
        c->backoff_usec = c->backoff_usec == 0 ? BUS_CLIENT_BACKOFF_MIN_USEC
                                               : MIN(c->backoff_usec * 2, BUS_CLIENT_BACKOFF_MAX_USEC);
        c->retry_after = now_monotonic_usec() + c->backoff_usec;
}

int bus_client_get(BusClient *c, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *address = NULL;
        int r;

        if (c->bus) {
                if (sd_bus_is_open(c->bus) > 0) {
                        *ret = c->bus;
                        return 0;
                }
                /* Closing: sd-bus is failing the calls in flight, one by one, and then tells us
                 * Disconnected. Dropping it now would lose those replies and leave callers waiting. */
                return -ENOTCONN;
        }
        if (c->retry_after > now_monotonic_usec())
                return -EAGAIN;

        if (asprintf(&address, "unix:path=%s", c->path) < 0)
                return -ENOMEM;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        if ((r = sd_bus_set_address(bus, address)) < 0 ||
            (r = sd_bus_negotiate_fds(bus, true)) < 0 ||
            (r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                     "Disconnected", on_client_disconnected, c)) < 0 ||
            (r = sd_bus_attach_event(bus, c->event, SD_EVENT_PRIORITY_NORMAL)) < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0) {
                bus_client_failed(c);
                return log_debug_errno(r, "Failed to connect to %s: %m", c->path);
        }
        c->backoff_usec = 0;
        c->retry_after = 0;
        c->bus = TAKE_PTR(bus);
        *ret = c->bus;
        return 0;
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

int bus_client_get_ready(BusClient *c, sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_slot,
                         sd_bus **ret) {
        sd_bus *bus;
        int r;

        r = bus_client_get(c, &bus);
        if (r < 0)
                return r;
        if (sd_bus_is_ready(bus) > 0) {
                *ret = bus;
                return 1;
        }
        /* sd_bus_send() of a file descriptor on a connection still in its handshake blocks the whole
         * process until the peer answers (sd-bus must learn whether it takes descriptors). A call without
         * one is only queued; its answer comes once the connection is up. */
        r = sd_bus_call_method_async(bus, ret_slot, NULL, "/", "org.freedesktop.DBus.Peer", "Ping", callback, userdata,
                                     NULL);
        if (r < 0)
                return r;
        return 0;
}

int bus_server_serve(Daemon *d, const char *fd_name, BusServerSetupFunc setup, void *userdata, BusServer **ret) {
        uid_t uid;
        int fd, r;

        fd = daemon_listen_fd(d, fd_name);
        if (fd < 0)
                return fd;
        r = bus_server_new(d, fd, setup, userdata, ret);
        if (r < 0)
                return log_error_errno(r, "Failed to serve the %s socket: %m", fd_name);
        if (get_user_uid("postbus", &uid) >= 0)
                bus_server_allow_uid(*ret, uid);
        return 0;
}
