/* test-bus-client.c: flow control on a bus client connection over a real AF_UNIX socket (a window of calls
 * in flight, the rest queued in order), an idempotent call sent again after its connection closed under it,
 * the server's connection limit, and a server that admits more than a handful of uids. */
#include <sys/socket.h>
#include <sys/un.h>

#include "tests.h"
#include "bus-util.h"
#include "daemon.h"

#define N_CALLS 100U
#define WINDOW 4U

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

/* The server side: holds each Hold call unanswered until the test answers it; Flaky drops the connection
 * under the first call it gets. */
typedef struct Server {
        sd_bus_message *held[N_CALLS];
        unsigned n_held, n_answered;
        unsigned order[N_CALLS];        /* the argument of each call, in arrival order */
        unsigned n_seen;
        unsigned flaky_calls;
} Server;

static int method_hold(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Server *s = userdata;
        uint32_t i;

        ASSERT_OK(sd_bus_message_read(m, "u", &i));
        ASSERT_TRUE(s->n_seen < N_CALLS);
        s->order[s->n_seen++] = i;
        s->held[s->n_held++] = sd_bus_message_ref(m);
        return 1;       /* answered later */
}

static int method_flaky(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Server *s = userdata;

        if (s->flaky_calls++ == 0) {
                sd_bus_close(sd_bus_message_get_bus(m));
                return 1;
        }
        return sd_bus_reply_method_return(m, "s", "second time");
}

static const sd_bus_vtable test_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Hold", "u", "u", method_hold, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Flaky", "", "s", method_flaky, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int setup(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, "/test", "org.postbus.Test", test_vtable, userdata);
}

typedef struct Done {
        unsigned n, n_errors;
        uint32_t order[N_CALLS];
        char *text;
} Done;

static int build_index(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "u", (uint32_t) (uintptr_t) userdata);
}

static Done done;

static void on_done(sd_bus_message *reply, const sd_bus_error *e, void *userdata) {
        uint32_t v;

        if (e) {
                done.n_errors++;
                return;
        }
        ASSERT_OK(sd_bus_message_read(reply, "u", &v));
        ASSERT_EQ(v, (uint32_t) (uintptr_t) userdata);
        done.order[done.n++] = v;
}

static void on_text(sd_bus_message *reply, const sd_bus_error *e, void *userdata) {
        const char *s;

        if (e) {
                done.n_errors++;
                return;
        }
        ASSERT_OK(sd_bus_message_read(reply, "s", &s));
        done.text = strdup(s);
        done.n++;
}

static void run_for(sd_event *e, unsigned turns) {
        for (unsigned i = 0; i < turns; i++)
                ASSERT_OK(sd_event_run(e, 5 * USEC_PER_MSEC));
}

#define RUN_UNTIL(e, cond)                                                                      \
        do {                                                                                    \
                for (unsigned _i = 0; _i < 2000 && !(cond); _i++)                               \
                        ASSERT_OK(sd_event_run((e), 10 * USEC_PER_MSEC));                       \
                ASSERT_TRUE(cond);                                                              \
        } while (0)

TEST(window) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Config config = { .max_idle = 100, .bus_connection_limit = 16 };
        DaemonSpec spec = { .role = "test" };
        Daemon d = { .spec = &spec, .config = &config };
        BusServer *server = NULL;
        BusClient *client = NULL;
        static Server srv;
        char tmpl[] = "/tmp/test-bus-client-XXXXXX";
        int lfd;

        ASSERT_TRUE(mkdtemp(tmpl));
        (void) snprintf(socket_path, sizeof socket_path, "%s/sock", tmpl);
        ASSERT_OK(sd_event_new(&e));
        d.event = e;
        lfd = listen_unix();
        ASSERT_OK(bus_server_new(&d, lfd, setup, &srv, &server));
        ASSERT_OK(bus_client_new(e, socket_path, &client));
        bus_client_set_window(client, WINDOW);
        done = (Done) {};

        for (uintptr_t i = 0; i < N_CALLS; i++)
                ASSERT_OK(bus_client_call(client, "/test", "org.postbus.Test", "Hold", 5 * USEC_PER_SEC, 0,
                                          build_index, on_done, (void *) i));
        /* nothing is sent, nor answered, from within the calls */
        ASSERT_EQ(bus_client_n_queued(client), N_CALLS);
        ASSERT_EQ(bus_client_n_in_flight(client), 0);

        /* the server sees the window and no more, however long it takes */
        RUN_UNTIL(e, srv.n_held == WINDOW);
        run_for(e, 20);
        ASSERT_EQ(srv.n_held, WINDOW);
        ASSERT_EQ(bus_client_n_in_flight(client), WINDOW);
        ASSERT_EQ(bus_client_n_queued(client), N_CALLS - WINDOW);

        /* answering the held calls lets the next in, in order, until all are done */
        while (srv.n_answered < N_CALLS) {
                RUN_UNTIL(e, srv.n_held > srv.n_answered);
                ASSERT_TRUE(srv.n_held - srv.n_answered <= WINDOW);
                sd_bus_message *m = srv.held[srv.n_answered];
                ASSERT_OK(sd_bus_reply_method_return(m, "u", srv.order[srv.n_answered]));
                sd_bus_message_unref(m);
                srv.n_answered++;
        }
        RUN_UNTIL(e, done.n == N_CALLS);
        ASSERT_EQ(done.n_errors, 0);
        for (unsigned i = 0; i < N_CALLS; i++) {
                ASSERT_EQ(srv.order[i], i);
                ASSERT_EQ(done.order[i], i);
        }
        ASSERT_EQ(bus_client_n_in_flight(client), 0);
        ASSERT_EQ(bus_client_n_queued(client), 0);

        /* a call that times out is an error for its caller, and frees its place in the window */
        done = (Done) {};
        srv = (Server) {};
        ASSERT_OK(bus_client_call(client, "/test", "org.postbus.Test", "Hold", 50 * USEC_PER_MSEC, 0, build_index,
                                  on_done, (void *) 7));
        RUN_UNTIL(e, done.n_errors == 1);
        ASSERT_EQ(done.n, 0);
        ASSERT_EQ(bus_client_n_in_flight(client), 0);
        sd_bus_message_unref(srv.held[0]);

        /* the connection closes under an idempotent call: it goes again, once, on a new connection */
        done = (Done) {};
        ASSERT_OK(bus_client_call(client, "/test", "org.postbus.Test", "Flaky", 5 * USEC_PER_SEC,
                                  BUS_CALL_IDEMPOTENT, NULL, on_text, NULL));
        RUN_UNTIL(e, done.n + done.n_errors == 1);
        ASSERT_EQ(done.n_errors, 0);
        ASSERT_STREQ(done.text, "second time");
        ASSERT_EQ(srv.flaky_calls, 2);
        free(done.text);

        /* ...but a call that is not idempotent has an unknown outcome, an error for its caller */
        done = (Done) {};
        srv.flaky_calls = 0;
        ASSERT_OK(bus_client_call(client, "/test", "org.postbus.Test", "Flaky", 5 * USEC_PER_SEC, 0, NULL, on_text,
                                  NULL));
        RUN_UNTIL(e, done.n + done.n_errors == 1);
        ASSERT_EQ(done.n_errors, 1);
        ASSERT_EQ(srv.flaky_calls, 1);

        /* nobody listening: queued calls fail, from the event loop */
        bus_server_free(server);
        close(lfd);
        (void) unlink(socket_path);
        RUN_UNTIL(e, bus_client_n_in_flight(client) == 0);
        run_for(e, 10);
        done = (Done) {};
        ASSERT_OK(bus_client_call(client, "/test", "org.postbus.Test", "Hold", 5 * USEC_PER_SEC, 0, build_index,
                                  on_done, (void *) 1));
        ASSERT_EQ(done.n_errors, 0);
        RUN_UNTIL(e, done.n_errors == 1);

        bus_client_free(client);
        (void) rmdir(tmpl);
}

static int ping_ok(BusClient *c, sd_event *e, unsigned turns) {
        for (unsigned i = 0; i < turns; i++) {
                sd_bus *bus;
                if (bus_client_get(c, &bus) >= 0 && sd_bus_is_ready(bus) > 0)
                        return 1;
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        }
        return 0;
}

TEST(connection_limit_and_uids) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Config config = { .max_idle = 100, .bus_connection_limit = 2 };
        DaemonSpec spec = { .role = "test" };
        Daemon d = { .spec = &spec, .config = &config };
        BusServer *server = NULL;
        BusClient *clients[3] = {};
        static Server srv;
        char tmpl[] = "/tmp/test-bus-client-XXXXXX";
        int lfd;

        ASSERT_TRUE(mkdtemp(tmpl));
        (void) snprintf(socket_path, sizeof socket_path, "%s/sock", tmpl);
        ASSERT_OK(sd_event_new(&e));
        d.event = e;
        lfd = listen_unix();
        ASSERT_OK(bus_server_new(&d, lfd, setup, &srv, &server));

        /* more uids than the eight the old fixed list held, none dropped */
        for (uid_t u = 1000; u < 1100; u++)
                ASSERT_OK(bus_server_allow_uid(server, u));

        for (unsigned i = 0; i < 3; i++)
                ASSERT_OK(bus_client_new(e, socket_path, &clients[i]));
        ASSERT_TRUE(ping_ok(clients[0], e, 500));
        ASSERT_TRUE(ping_ok(clients[1], e, 500));
        /* the third waits in the backlog: its handshake does not finish while two are open */
        ASSERT_TRUE(!ping_ok(clients[2], e, 30));
        ASSERT_EQ(bus_server_n_connections(server), 2);

        /* one closes: the third is served */
        clients[0] = bus_client_free(clients[0]);
        ASSERT_TRUE(ping_ok(clients[2], e, 500));
        ASSERT_EQ(bus_server_n_connections(server), 2);

        for (unsigned i = 0; i < 3; i++)
                bus_client_free(clients[i]);
        bus_server_free(server);
        close(lfd);
        (void) unlink(socket_path);
        (void) rmdir(tmpl);
}

int main(void) {
        RUN(window);
        RUN(connection_limit_and_uids);
        return 0;
}
