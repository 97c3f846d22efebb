/* qmgr-call.c: calls from qmgr to the agents and to bounce, which may carry a queue file descriptor and
 * so wait for the connection's handshake first. Run by qmgr.
 *
 * An agent that exits when idle (local, pipe) counts calls, not connections: it closes qmgr's connection
 * when its idle timer fires, and a call that reaches it at that moment is never read. The connection then
 * fails it as if the agent had died under it. Such a call was sent after the peer had been quiet for a
 * while (its idle time is max_idle, at least 1 s): a call sent after QMGR_CALL_QUIET_USEC without an answer
 * on the connection, and the calls sent with it before any answer, are sent again once, on a new
 * connection. Should the agent really have died under it, the second attempt tells (and counts) it; a
 * message delivered before the close is delivered again, as the deferral would have done. */
#include "log.h"
#include "qmgr.h"

#define QMGR_CALL_QUIET_USEC (500 * USEC_PER_MSEC)
#define QMGR_CALL_RETRY_USEC (10 * USEC_PER_MSEC)
#define QMGR_CALL_RETRY_WAITS 100U      /* for the closed connection to be gone: 1 s at most */

static void call_send(QmgrCall *c, sd_bus *bus);
static int on_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);

static void call_end(QmgrCall *c, sd_bus_message *reply, const char *error) {
        c->retry = sd_event_source_disable_unref(c->retry);
        c->done(c, reply, error);
        free(c);
}

/* Connects again (the closed connection must be gone first) and sends the call anew. */
static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        QmgrCall *c = userdata;
        sd_bus *bus = NULL;
        int r;

        r = bus_client_get_ready(c->client, on_ready, c, NULL, &bus);
        if (r == -ENOTCONN && ++c->retry_waits < QMGR_CALL_RETRY_WAITS) {
                (void) sd_event_source_set_time_relative(s, QMGR_CALL_RETRY_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        c->retry = sd_event_source_disable_unref(c->retry);
        if (r > 0)
                call_send(c, bus);
        else if (r < 0) {
                char why[256];
                (void) snprintf(why, sizeof why, "connect to %s: %s", bus_client_path(c->client),
                                r == -EAGAIN ? "waiting before the next attempt" : strerror(-r));
                call_end(c, NULL, why);
        }
        return 0;
}

/* The connection closed under c, which may never have been read: true when it goes again. */
static bool call_retry(QmgrCall *c, sd_bus *bus) {
        int r;

        if (!c->after_quiet || c->retried || !c->client)
                return false;
        c->retried = true;
        c->sent = false;
        c->lost_with = 0;
        r = sd_event_add_time_relative(sd_bus_get_event(bus), &c->retry, CLOCK_MONOTONIC, QMGR_CALL_RETRY_USEC, 0,
                                       on_retry, c);
        if (r < 0)
                return false;
        log_debug("%s to %s: the connection closed as the call came (the peer exiting idle?), sending it again.",
                  c->member, bus_client_path(c->client));
        return true;
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        QmgrCall *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        QmgrCallStats *st = c->stats;

        c->corrupt = e && sd_bus_error_has_name(e, POSTBUS_ERROR_CORRUPT_QUEUE_FILE);
        bool closed = e && sd_bus_is_open(sd_bus_message_get_bus(reply)) <= 0;
        if (st && !closed) {
                st->last_answer_usec = now_monotonic_usec();
                st->quiet_burst = false;
        }
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
        if (closed && call_retry(c, sd_bus_message_get_bus(reply)))
                return 0;
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
                QmgrCallStats *st = c->stats;
                /* The first call after a quiet while starts a burst; those sent before any answer join it. */
                if (st->in_flight == 0)
                        st->quiet_burst = st->last_answer_usec > 0 &&
                                now_monotonic_usec() - st->last_answer_usec >= QMGR_CALL_QUIET_USEC;
                c->after_quiet = st->quiet_burst;
                c->stats->in_flight++;
                c->stats->lost_left = 0;        /* a new connection: an earlier close is over */
        }
}

static int on_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        QmgrCall *c = userdata;
        sd_bus *bus = sd_bus_message_get_bus(reply);

        if (sd_bus_is_ready(bus) > 0) {
                /* The handshake is the peer's answer too: it has just served a call, and is not idle. */
                if (c->stats && c->stats->in_flight == 0)
                        c->stats->last_answer_usec = now_monotonic_usec();
                call_send(c, bus);
        } else {
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
        c->client = client;
        c->after_quiet = c->retried = false;
        c->retry_waits = 0;
        c->retry = NULL;
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
