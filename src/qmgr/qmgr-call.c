/* qmgr-call.c: calls from qmgr to the agents and to bounce, which may carry a queue file descriptor and
 * so wait for the connection's handshake first. Run by qmgr. */
#include "log.h"
#include "qmgr.h"

static void call_end(QmgrCall *c, sd_bus_message *reply, const char *error) {
        c->done(c, reply, error);
        free(c);
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        QmgrCall *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        QmgrCallStats *st = c->stats;

        c->corrupt = e && sd_bus_error_has_name(e, POSTBUS_ERROR_CORRUPT_QUEUE_FILE);
        if (st) {
                /* A connection that closed fails its calls in flight one after the other, before any new call
                 * can be sent (bus_client_get() says -ENOTCONN meanwhile): the first of them learns how many
                 * were in flight, and the rest belong to the same close. */
                if (e && sd_bus_is_open(sd_bus_message_get_bus(reply)) <= 0) {
                        if (st->lost_left == 0)
                                st->lost_size = st->lost_left = st->in_flight;
                        c->lost_with = st->lost_size;
                        if (st->lost_left > 0)
                                st->lost_left--;
                }
                if (st->in_flight > 0)
                        st->in_flight--;
        }
        call_end(c, e ? NULL : reply, e ? (e->message ?: e->name) : NULL);
        return 0;
}

static void call_send(QmgrCall *c, sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &msg, NULL, c->path, c->interface, c->member);
        if (r >= 0)
                r = c->build(c, msg);
        if (r >= 0)
                r = sd_bus_call_async(bus, NULL, msg, on_reply, c, c->timeout_usec);
        if (r < 0) {
                call_end(c, NULL, strerror(-r));
                return;
        }
        c->sent = true;
        if (c->stats) {
                c->stats->in_flight++;
                c->stats->lost_left = 0;        /* a new connection: an earlier close is over */
        }
}

static int on_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        QmgrCall *c = userdata;
        sd_bus *bus = sd_bus_message_get_bus(reply);

        if (sd_bus_is_ready(bus) > 0)
                call_send(c, bus);
        else {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                call_end(c, NULL, e && e->message ? e->message : "connection failed");
        }
        return 0;
}

void qmgr_call(BusClient *client, const QmgrCall *template) {
        QmgrCall *c = malloc(sizeof(QmgrCall));
        sd_bus *bus = NULL;
        int r;

        if (!c) {
                template->done((QmgrCall *) template, NULL, "out of memory");
                return;
        }
        *c = *template;
        c->sent = false;
        c->lost_with = 0;
        r = bus_client_get_ready(client, on_ready, c, NULL, &bus);
        if (r > 0)
                call_send(c, bus);
        else if (r < 0) {
                char why[256];
                (void) snprintf(why, sizeof why, "connect to %s: %s", bus_client_path(client),
                                r == -EAGAIN ? "waiting before the next attempt" : strerror(-r));
                call_end(c, NULL, why);
        }
}
