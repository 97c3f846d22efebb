/* bus-client.c: the client side of the peer-to-peer sd-bus between roles: one connection per peer, kept
 * and reconnected with back-off, and flow control on it: a window of calls in flight, the calls beyond it
 * queued in order, each with a timeout chosen by its caller. Run by every role that calls another. */
#include <assert.h>

#include "bus-util.h"
#include "log.h"

#define BUS_CLIENT_BACKOFF_MIN_USEC (100 * USEC_PER_MSEC)
#define BUS_CLIENT_BACKOFF_MAX_USEC (10 * USEC_PER_SEC)

typedef struct BusCall BusCall;

struct BusCall {
        BusClient *client;
        const char *path, *interface, *member;  /* static strings */
        uint64_t timeout_usec;
        unsigned flags;
        BusCallBuildFunc build;
        BusCallFunc done;
        void *userdata;
        sd_bus_slot *slot;              /* while in flight */
        bool retried;
        BusCall *prev, *next;
};

typedef struct BusCallList {
        BusCall *head, *tail;
} BusCallList;

struct BusClient {
        sd_event *event;
        char *path;
        sd_bus *bus;
        bool ready_once;                /* the current connection finished its handshake */
        uint64_t backoff_usec;
        uint64_t retry_after;           /* CLOCK_MONOTONIC */
        unsigned window;
        unsigned n_in_flight;
        size_t n_queued;
        BusCallList queue, in_flight;
        sd_bus_slot *ping;              /* waiting for the handshake */
        sd_event_source *pump;
};

static void list_remove(BusCallList *l, BusCall *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                l->head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                l->tail = c->prev;
        c->prev = c->next = NULL;
}

static void list_append(BusCallList *l, BusCall *c) {
        c->prev = l->tail;
        c->next = NULL;
        if (l->tail)
                l->tail->next = c;
        else
                l->head = c;
        l->tail = c;
}

static void list_prepend(BusCallList *l, BusCall *c) {
        c->prev = NULL;
        c->next = l->head;
        if (l->head)
                l->head->prev = c;
        else
                l->tail = c;
        l->head = c;
}

static int on_pump(sd_event_source *s, void *userdata);

int bus_client_new(sd_event *e, const char *socket_path, BusClient **ret) {
        _cleanup_(bus_client_freep) BusClient *c = NULL;
        int r;

        c = calloc(1, sizeof(BusClient));
        if (!c)
                return -ENOMEM;
        c->window = BUS_CLIENT_WINDOW_DEFAULT;
        c->event = sd_event_ref(e);
        c->path = strdup(socket_path);
        if (!c->path)
                return -ENOMEM;
        r = sd_event_add_defer(e, &c->pump, on_pump, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->pump, SD_EVENT_OFF);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

void bus_client_set_window(BusClient *c, unsigned window) {
        c->window = MAX(window, 1U);
}

static void bus_client_drop(BusClient *c) {
        c->ping = sd_bus_slot_unref(c->ping);
        if (!c->bus)
                return;
        (void) sd_bus_detach_event(c->bus);
        /* No flush: it would block on a peer that does not answer the handshake. */
        c->bus = sd_bus_close_unref(c->bus);
}

static BusCall *call_free(BusCall *call) {
        sd_bus_slot_unref(call->slot);
        free(call);
        return NULL;
}

BusClient *bus_client_free(BusClient *c) {
        if (!c)
                return NULL;
        /* The role is ending: its callers hear nothing more. */
        for (BusCallList *l = &c->queue; l; l = l == &c->queue ? &c->in_flight : NULL)
                while (l->head) {
                        BusCall *call = l->head;
                        list_remove(l, call);
                        call_free(call);
                }
        bus_client_drop(c);
        sd_event_source_disable_unref(c->pump);
        sd_event_unref(c->event);
        free(c->path);
        free(c);
        return NULL;
}

const char *bus_client_path(const BusClient *c) {
        return c->path;
}

size_t bus_client_n_queued(const BusClient *c) {
        return c->n_queued;
}

unsigned bus_client_n_in_flight(const BusClient *c) {
        return c->n_in_flight;
}

static void pump_schedule(BusClient *c) {
        if (c->pump && c->queue.head)
                (void) sd_event_source_set_enabled(c->pump, SD_EVENT_ONESHOT);
}

static void bus_client_failed(BusClient *c) {
        c->backoff_usec = c->backoff_usec == 0 ? BUS_CLIENT_BACKOFF_MIN_USEC
                                               : MIN(c->backoff_usec * 2, BUS_CLIENT_BACKOFF_MAX_USEC);
        c->retry_after = now_monotonic_usec() + c->backoff_usec;
}

static int on_client_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusClient *c = userdata;

        log_debug("Connection to %s closed.", c->path);
        /* A peer that hangs up before the handshake is done (it refuses us, or is stopping) is not to be
         * called again at once. */
        if (!c->ready_once)
                bus_client_failed(c);
        c->ping = sd_bus_slot_unref(c->ping);
        /* sd-bus keeps its own reference while dispatching; pending calls have failed already. */
        c->bus = sd_bus_unref(c->bus);
        if (c->queue.head)
                pump_schedule(c);
        return 0;
}

int bus_client_get(BusClient *c, sd_bus **ret) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
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
        c->ready_once = false;
        c->bus = TAKE_PTR(bus);
        *ret = c->bus;
        return 0;
}

/* Pings with an explicit timeout: the handshake and a peer's start by socket activation fit in it. */
static int ping_async(sd_bus *bus, sd_bus_slot **ret_slot, sd_bus_message_handler_t callback, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, NULL, "/", "org.freedesktop.DBus.Peer", "Ping");
        if (r < 0)
                return r;
        return sd_bus_call_async(bus, ret_slot, m, callback, userdata, BUS_CONNECT_TIMEOUT_USEC);
}

int bus_client_get_ready(BusClient *c, sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_slot,
                         sd_bus **ret) {
        sd_bus *bus;
        int r;

        r = bus_client_get(c, &bus);
        if (r < 0)
                return r;
        if (sd_bus_is_ready(bus) > 0) {
                c->ready_once = true;
                c->backoff_usec = 0;
                *ret = bus;
                return 1;
        }
        /* sd_bus_send() of a file descriptor on a connection still in its handshake blocks the whole
         * process until the peer answers (sd-bus must learn whether it takes descriptors). A call without
         * one is only queued; its answer comes once the connection is up. */
        r = ping_async(bus, ret_slot, callback, userdata);
        if (r < 0)
                return r;
        return 0;
}

/* ---- calls through the window ------------------------------------------------------------------- */

static void call_finish(BusCall *call, sd_bus_message *reply, const sd_bus_error *error) {
        call->done(reply, error, call->userdata);
        call_free(call);
}

static void call_fail(BusCall *call, int r, const char *why) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        (void) sd_bus_error_setf(&e, SD_BUS_ERROR_DISCONNECTED, "%s %s: %s", call->member, call->client->path,
                                 why ?: strerror(-r));
        call_finish(call, NULL, &e);
}

static int on_call_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusCall *call = userdata;
        BusClient *c = call->client;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        call->slot = sd_bus_slot_unref(call->slot);
        list_remove(&c->in_flight, call);
        c->n_in_flight--;

        /* The connection closed under the call (the peer exited idle as it came, or restarted): a call
         * that may be made twice goes again, once, on a new connection, ahead of those still queued. */
        if (e && (call->flags & BUS_CALL_IDEMPOTENT) && !call->retried &&
            sd_bus_is_open(sd_bus_message_get_bus(reply)) <= 0) {
                call->retried = true;
                list_prepend(&c->queue, call);
                c->n_queued++;
                pump_schedule(c);
                return 0;
        }
        call_finish(call, e ? NULL : reply, e);
        pump_schedule(c);
        return 0;
}

static int call_send(BusCall *call, sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, NULL, call->path, call->interface, call->member);
        if (r >= 0 && call->build)
                r = call->build(m, call->userdata);
        if (r >= 0)
                r = sd_bus_call_async(bus, &call->slot, m, on_call_reply, call, call->timeout_usec);
        return r;
}

static int on_ping_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusClient *c = userdata;

        c->ping = sd_bus_slot_unref(c->ping);
        pump_schedule(c);
        return 0;
}

/* Fails every queued call: the peer cannot be reached now. */
static void queue_fail(BusClient *c, int r) {
        const char *why = r == -EAGAIN ? "waiting before the next connection attempt" : NULL;

        while (c->queue.head) {
                BusCall *call = c->queue.head;
                list_remove(&c->queue, call);
                c->n_queued--;
                call_fail(call, r, why);
        }
}

static int on_pump(sd_event_source *s, void *userdata) {
        BusClient *c = userdata;
        sd_bus *bus;
        int r;

        while (c->queue.head && c->n_in_flight < c->window) {
                r = bus_client_get(c, &bus);
                if (r == -ENOTCONN)
                        return 0;       /* Disconnected comes, and pumps again */
                if (r < 0) {
                        queue_fail(c, r);
                        return 0;
                }
                if (sd_bus_is_ready(bus) <= 0) {
                        /* Calls wait for the handshake, so that their timeouts count the peer's work only,
                         * and those passing descriptors do not block the process. */
                        if (!c->ping) {
                                r = ping_async(bus, &c->ping, on_ping_reply, c);
                                if (r < 0) {
                                        queue_fail(c, r);
                                        return 0;
                                }
                        }
                        return 0;
                }
                c->ready_once = true;
                c->backoff_usec = 0;

                BusCall *call = c->queue.head;
                list_remove(&c->queue, call);
                c->n_queued--;
                r = call_send(call, bus);
                if (r < 0) {
                        call_fail(call, r, NULL);
                        continue;
                }
                list_append(&c->in_flight, call);
                c->n_in_flight++;
        }
        return 0;
}

int bus_client_call(BusClient *c, const char *path, const char *interface, const char *member,
                    uint64_t timeout_usec, unsigned flags, BusCallBuildFunc build, BusCallFunc done,
                    void *userdata) {
        BusCall *call;

        assert(timeout_usec > 0);
        call = calloc(1, sizeof(BusCall));
        if (!call)
                return -ENOMEM;
        *call = (BusCall) {
                .client = c,
                .path = path,
                .interface = interface,
                .member = member,
                .timeout_usec = timeout_usec,
                .flags = flags,
                .build = build,
                .done = done,
                .userdata = userdata,
        };
        list_append(&c->queue, call);
        c->n_queued++;
        /* Sent from the event loop, so that the callback never runs inside this call. */
        pump_schedule(c);
        return 0;
}
