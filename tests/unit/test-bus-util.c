/* test-bus-util.c: a peer-to-peer sd-bus server and client over a real AF_UNIX socket: a call that
 * passes a file descriptor, the peer check, and reconnection to a new server after the old one went
 * away (the new one answers, on a new connection, with a new server ID). */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "tests.h"
#include "bus-util.h"
#include "daemon.h"

static char socket_path[108];

static int listen_unix(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        ASSERT_TRUE(fd >= 0);
        (void) unlink(socket_path);
        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(listen(fd, 16));
        return fd;
}

/* One server instance, as its callers see it: what it answers with, and what it has served. */
typedef struct Peer {
        const char *name;
        unsigned connections;
        unsigned calls;
} Peer;

/* Reads the passed file and answers "<server name>: <its content>". */
static int method_read(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Peer *peer = userdata;
        char buf[64] = {}, answer[128];
        int fd;

        ASSERT_OK(sd_bus_message_read(m, "h", &fd));
        ASSERT_TRUE(pread(fd, buf, sizeof buf - 1, 0) > 0);
        peer->calls++;
        (void) snprintf(answer, sizeof answer, "%s: %s", peer->name, buf);
        return sd_bus_reply_method_return(m, "s", answer);
}

static const sd_bus_vtable test_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Read", "h", "s", method_read, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* Called once for each connection the server accepts. */
static int setup(sd_bus *bus, void *userdata) {
        Peer *peer = userdata;

        peer->connections++;
        return sd_bus_add_object_vtable(bus, NULL, "/test", "org.postbus.Test", test_vtable, userdata);
}

typedef struct Result {
        bool done;
        char *text;
        char *error;
} Result;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Result *res = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *s;

        res->done = true;
        if (e)
                res->error = strdup(e->name);
        else if (sd_bus_message_read(m, "s", &s) >= 0)
                res->text = strdup(s);
        return 0;
}

static void run_until(sd_event *e, const bool *flag) {
        for (unsigned i = 0; i < 2000 && !*flag; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_TRUE(*flag);
}

/* Calls Read with fd on the client's connection once it is ready; *ret_server_id is the ID of the
 * server that connection was made with. */
static void call_read(sd_event *e, BusClient *client, int fd, Result *res, sd_id128_t *ret_server_id) {
        sd_bus *bus = NULL;
        bool ready = false;
        int r;

        *res = (Result) {};
        /* wait for the handshake before passing a descriptor */
        for (unsigned i = 0; i < 2000 && !ready; i++) {
                r = bus_client_get(client, &bus);
                if (r >= 0 && sd_bus_is_ready(bus) > 0)
                        ready = true;
                else
                        ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        }
        ASSERT_TRUE(ready);
        ASSERT_OK(sd_bus_get_bus_id(bus, ret_server_id));
        ASSERT_OK(sd_bus_call_method_async(bus, NULL, NULL, "/test", "org.postbus.Test", "Read", on_reply, res, "h",
                                           fd));
        run_until(e, &res->done);
}

TEST(call_and_reconnect) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Config config = { .max_idle = 100, .bus_connection_limit = 16 };
        DaemonSpec spec = { .role = "test" };
        Daemon d = { .spec = &spec, .config = &config };
        BusServer *server = NULL;
        BusClient *client = NULL;
        Peer first = { .name = "first" }, second = { .name = "second" };
        sd_id128_t first_id, second_id;
        bool noticed = false;
        Result res;
        int lfd, fd, r;
        char tmpl[] = "/tmp/test-bus-util-XXXXXX";

        ASSERT_TRUE(mkdtemp(tmpl));
        (void) snprintf(socket_path, sizeof socket_path, "%s/sock", tmpl);
        ASSERT_OK(sd_event_new(&e));
        d.event = e;

        fd = memfd_create("content", MFD_CLOEXEC);
        ASSERT_EQ(write(fd, "hello through a descriptor", 26), 26);

        lfd = listen_unix();
        ASSERT_OK(bus_server_new(&d, lfd, setup, &first, &server));
        ASSERT_OK(bus_client_new(e, socket_path, &client));
        ASSERT_STREQ(bus_client_path(client), socket_path);

        call_read(e, client, fd, &res, &first_id);
        ASSERT_TRUE(res.error == NULL);
        ASSERT_STREQ(res.text, "first: hello through a descriptor");
        free(res.text);
        ASSERT_EQ(first.connections, 1);
        ASSERT_EQ(first.calls, 1);
        ASSERT_EQ(d.busy, 0);   /* an open connection is not work: the role may exit idle under it */
        ASSERT_EQ(bus_server_n_connections(server), 1);

        /* The server goes away: the client must notice (its connection closes, and connecting again
         * fails while nobody listens)... */
        bus_server_free(server);
        close(lfd);
        ASSERT_EQ(d.busy, 0);
        (void) unlink(socket_path);
        for (unsigned i = 0; i < 200 && !noticed; i++) {
                sd_bus *bus = NULL;

                r = bus_client_get(client, &bus);
                if (r == -ENOENT || r == -EAGAIN)
                        noticed = true;
                else
                        ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        }
        ASSERT_TRUE(noticed);

        /* ...and reach the new server at the same path: on a new connection (the new server accepts
         * one, and its ID is the new server's), which answers the call itself. */
        lfd = listen_unix();
        ASSERT_OK(bus_server_new(&d, lfd, setup, &second, &server));
        call_read(e, client, fd, &res, &second_id);
        ASSERT_TRUE(res.error == NULL);
        ASSERT_STREQ(res.text, "second: hello through a descriptor");
        free(res.text);
        ASSERT_EQ(second.connections, 1);
        ASSERT_EQ(second.calls, 1);
        ASSERT_EQ(first.connections, 1);
        ASSERT_EQ(first.calls, 1);
        ASSERT_TRUE(!sd_id128_equal(first_id, second_id));
        ASSERT_EQ(d.busy, 0);

        bus_client_free(client);
        bus_server_free(server);
        close(lfd);
        close(fd);
        (void) unlink(socket_path);
        (void) rmdir(tmpl);
}

TEST(bus_client_get_ready) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Config config = { .max_idle = 100, .bus_connection_limit = 16 };
        DaemonSpec spec = { .role = "test" };
        Daemon d = { .spec = &spec, .config = &config };
        BusServer *server = NULL;
        BusClient *client = NULL;
        Peer peer = { .name = "only" };
        Result ping = {};
        sd_bus *bus = NULL;
        char tmpl[] = "/tmp/test-bus-util-XXXXXX";
        int lfd, r;

        ASSERT_TRUE(mkdtemp(tmpl));
        (void) snprintf(socket_path, sizeof socket_path, "%s/sock", tmpl);
        ASSERT_OK(sd_event_new(&e));
        d.event = e;
        lfd = listen_unix();
        ASSERT_OK(bus_server_new(&d, lfd, setup, &peer, &server));
        ASSERT_OK(bus_client_new(e, socket_path, &client));

        /* a fresh connection is not ready: the callback comes once the handshake is done */
        r = bus_client_get_ready(client, on_reply, &ping, NULL, &bus);
        ASSERT_EQ(r, 0);
        run_until(e, &ping.done);
        ASSERT_TRUE(ping.error == NULL);
        ASSERT_EQ(bus_client_get_ready(client, on_reply, &ping, NULL, &bus), 1);
        ASSERT_TRUE(bus != NULL);

        /* nobody listening: a connection error, then back-off */
        BusClient *nowhere = NULL;
        ASSERT_OK(bus_client_new(e, "/nonexistent/postbus-test.sock", &nowhere));
        ASSERT_TRUE(bus_client_get(nowhere, &bus) < 0);
        ASSERT_ERR(bus_client_get(nowhere, &bus), EAGAIN);
        bus_client_free(nowhere);

        bus_client_free(client);
        bus_server_free(server);
        close(lfd);
        (void) unlink(socket_path);
        (void) rmdir(tmpl);
}

int main(void) {
        RUN(call_and_reconnect);
        RUN(bus_client_get_ready);
        return 0;
}
