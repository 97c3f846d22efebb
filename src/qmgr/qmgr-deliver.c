/* qmgr-deliver.c: handing recipients to the delivery roles and taking their results back. */
#include <fcntl.h>
#include <inttypes.h>

#include "address.h"
#include "log.h"
#include "qmgr.h"

typedef struct DeliveryCall {
        QmgrMessage *message;
        size_t n;
        size_t indices[];               /* recipients of this call, by index in the envelope */
} DeliveryCall;

/* The "to=<...>" record for a recipient that qmgr itself defers. */
static void log_deferred(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why) {
        const char *rcpt = m->envelope->recipients[i].address;
        _cleanup_free_ char *escaped = log_escape(rcpt, strlen(rcpt));
        double delay = (double) (now_realtime_usec() - MIN(now_realtime_usec(), m->envelope->arrival_usec)) / 1e6;

        log_mail(LOG_INFO, m->id,
                 LOG_FIELDS({ "RECIPIENT", escaped }, { "RELAY", relay }, { "DSN", dsn },
                            { "DELIVERY_STATUS", "deferred" }),
                 "to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=deferred (%s)", strempty(escaped), relay, delay, dsn,
                 why);
}

static void ready_push(Qmgr *q, QmgrMessage *m) {
        m->waiting = true;
        m->ready_next = NULL;
        if (q->ready_tail)
                q->ready_tail->ready_next = m;
        else
                q->ready_head = m;
        q->ready_tail = m;
}

static QmgrMessage *ready_pop(Qmgr *q) {
        QmgrMessage *m = q->ready_head;

        if (!m)
                return NULL;
        q->ready_head = m->ready_next;
        if (!q->ready_head)
                q->ready_tail = NULL;
        m->waiting = false;
        return m;
}

static int mark_results(DeliveryCall *call, sd_bus_message *reply) {
        QmgrMessage *m = call->message;
        _cleanup_close_ int fd = -EBADF;
        unsigned marked = 0, bounced = 0;
        uint32_t index;
        const char *status, *dsn, *text;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(usss)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(usss)", &index, &status, &dsn, &text)) > 0) {
                bool ours = false;
                for (size_t i = 0; i < call->n; i++)
                        if (call->indices[i] == index)
                                ours = true;
                if (!ours) {
                        log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS, "delivery result for unknown recipient %" PRIu32
                                 ", ignoring", index);
                        continue;
                }
                if (!streq(status, "sent") && !streq(status, "bounced"))
                        continue;       /* deferred: stays pending, the role has logged why */
                if (streq(status, "bounced"))
                        bounced++;
                if (fd < 0) {
                        fd = openat(m->qmgr->queue_fds[QUEUE_ACTIVE], m->id, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                        if (fd < 0) {
                                log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to open the queue file: %s",
                                         strerror(errno));
                                continue;       /* at worst delivered twice */
                        }
                }
                r = queue_file_mark_done(fd, m->envelope->recipients[index].offset);
                if (r < 0) {
                        log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to mark a recipient done: %s", strerror(-r));
                        continue;       /* at worst delivered twice */
                }
                m->envelope->recipients[index].done = true;
                marked++;
        }
        if (r < 0)
                return r;
        if (marked > 0 && fdatasync(fd) < 0)
                log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to sync the queue file: %s", strerror(errno));
        if (bounced > 0)
                log_mail(LOG_NOTICE, m->id, LOG_NO_FIELDS,
                         "sender non-delivery notification not sent: postbus has no bounce role yet");
        return sd_bus_message_exit_container(reply);
}

/* A call is over: the message may be finished, and a delivery slot is free. */
static void call_done(DeliveryCall *call) {
        QmgrMessage *m = call->message;
        Qmgr *q = m->qmgr;

        q->local_calls--;
        m->calls--;
        free(call);
        qmgr_message_finish(m);
        qmgr_deliver_ready(q);
}

/* The outcome is unknown: the worst case of a retry is a duplicate. */
static void call_failed(DeliveryCall *call, const char *relay, const char *why) {
        for (size_t i = 0; i < call->n; i++)
                log_deferred(call->message, call->indices[i], relay, "4.3.0", why);
        call_done(call);
}

static void call_unreachable(DeliveryCall *call, const char *error) {
        char why[256];

        (void) snprintf(why, sizeof why, "delivery temporarily suspended: connect to transport local: %s", error);
        call_failed(call, "none", why);
}

static int on_delivery_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        DeliveryCall *call = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        if (e) {
                call_failed(call, "local", e->message ?: e->name);
                return 0;
        }
        r = mark_results(call, reply);
        if (r < 0)
                log_mail(LOG_ERR, call->message->id, LOG_NO_FIELDS, "malformed delivery results: %s", strerror(-r));
        call_done(call);
        return 0;
}

static int local_call_send(DeliveryCall *call, sd_bus *bus) {
        QmgrMessage *m = call->message;
        Qmgr *q = m->qmgr;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        /* Delivery roles get their own read-only descriptor: they cannot change the queue file. */
        fd = openat(q->queue_fds[QUEUE_ACTIVE], m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        r = sd_bus_message_new_method_call(bus, &msg, NULL, "/org/postbus/Delivery1", "org.postbus.Delivery1",
                                           "Deliver");
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "hss", fd, m->id, m->envelope->sender);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "(us)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < call->n; i++) {
                r = sd_bus_message_append(msg, "(us)", (uint32_t) call->indices[i],
                                          m->envelope->recipients[call->indices[i]].address);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;
        return sd_bus_call_async(bus, NULL, msg, on_delivery_reply, call,
                                 (uint64_t) q->daemon->config->daemon_timeout * USEC_PER_SEC);
}

static void call_send(DeliveryCall *call, sd_bus *bus) {
        int r = local_call_send(call, bus);
        if (r < 0)
                call_unreachable(call, strerror(-r));
}

/* The connection to local has come up (or failed) while the call waited. */
static int on_local_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        DeliveryCall *call = userdata;
        sd_bus *bus = sd_bus_message_get_bus(reply);

        if (sd_bus_is_ready(bus) > 0)
                call_send(call, bus);
        else {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                call_unreachable(call, e && e->message ? e->message : "connection failed");
        }
        return 0;
}

/* Resolve calls in flight per message: pipelined, but bounded, however many recipients a message has. */
#define QMGR_RESOLVE_WINDOW 16U

void qmgr_message_routes_free(QmgrMessage *m) {
        if (!m->routes)
                return;
        for (size_t i = 0; i < m->envelope->n_recipients; i++) {
                free(m->routes[i].transport);
                free(m->routes[i].nexthop);
        }
        m->routes = mfree(m->routes);
}

typedef struct ResolveCall {
        QmgrMessage *message;
        size_t index;
} ResolveCall;

static void resolve_next(QmgrMessage *m);
static void dispatch(QmgrMessage *m);

static void resolve_failed(QmgrMessage *m, size_t i, const char *error) {
        char why[256];

        (void) snprintf(why, sizeof why, "delivery temporarily suspended: address resolver failure: %s", error);
        log_deferred(m, i, "none", "4.3.0", why);
}

static int on_resolve_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        ResolveCall *rc = userdata;
        QmgrMessage *m = rc->message;
        size_t i = rc->index;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *transport, *nexthop, *address;
        int r;

        free(rc);
        m->resolving--;
        m->calls--;
        if (e)
                resolve_failed(m, i, e->message ?: e->name);
        else {
                r = sd_bus_message_read(reply, "sss", &transport, &nexthop, &address);
                if (r < 0 || isempty(transport))
                        resolve_failed(m, i, "malformed reply");
                else {
                        m->routes[i].transport = strdup(transport);
                        m->routes[i].nexthop = strdup(nexthop);
                        if (!m->routes[i].transport || !m->routes[i].nexthop) {
                                m->routes[i].transport = mfree(m->routes[i].transport);
                                resolve_failed(m, i, "out of memory");
                        }
                }
        }
        resolve_next(m);
        return 0;
}

/* Asks rewrite where each pending recipient goes, a window of calls at a time; then dispatches. */
static void resolve_next(QmgrMessage *m) {
        Qmgr *q = m->qmgr;
        size_t n = m->envelope->n_recipients;

        while (m->resolving < QMGR_RESOLVE_WINDOW && m->next_resolve < n) {
                size_t i = m->next_resolve++;
                ResolveCall *rc;
                sd_bus *bus;
                int r;

                if (m->envelope->recipients[i].done)
                        continue;
                r = bus_client_get(q->rewrite, &bus);
                if (r < 0) {
                        resolve_failed(m, i, r == -EAGAIN ? "waiting before the next attempt" : strerror(-r));
                        continue;
                }
                rc = malloc(sizeof(ResolveCall));
                if (!rc) {
                        resolve_failed(m, i, "out of memory");
                        continue;
                }
                *rc = (ResolveCall) { .message = m, .index = i };
                r = sd_bus_call_method_async(bus, NULL, NULL, "/org/postbus/Rewrite1", "org.postbus.Rewrite1",
                                             "Resolve", on_resolve_reply, rc, "s",
                                             m->envelope->recipients[i].address);
                if (r < 0) {
                        free(rc);
                        resolve_failed(m, i, strerror(-r));
                        continue;
                }
                m->resolving++;
                m->calls++;
        }
        if (m->resolving == 0 && m->next_resolve >= n) {
                m->resolved = true;
                dispatch(m);
        }
}

/* Marks a recipient done now, for a permanent failure qmgr decides itself (the error transport). */
static void bounce_now(QmgrMessage *m, size_t i, const char *text) {
        const char *rcpt = m->envelope->recipients[i].address;
        _cleanup_free_ char *escaped = log_escape(rcpt, strlen(rcpt));
        _cleanup_free_ char *why = log_escape(text, strlen(text));
        _cleanup_close_ int fd = -EBADF;
        double delay = (double) (now_realtime_usec() - MIN(now_realtime_usec(), m->envelope->arrival_usec)) / 1e6;
        char dsn[16] = "5.0.0";
        size_t len = strcspn(text, " ");
        int r;

        /* An error text may start with its enhanced status code, "5.1.1 ..." (RFC 3463: 5.x.y). */
        if (len >= 5 && len < sizeof dsn && text[0] == '5' && text[1] == '.' &&
            strspn(text + 2, "0123456789.") == len - 2 && strchr(text + 2, '.') &&
            strchr(text + 2, '.') < text + len - 1 && text[2] != '.') {
                memcpy(dsn, text, len);
                dsn[len] = '\0';
        }
        fd = openat(m->qmgr->queue_fds[QUEUE_ACTIVE], m->id, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        r = fd < 0 ? -errno : queue_file_mark_done(fd, m->envelope->recipients[i].offset);
        if (r >= 0 && fdatasync(fd) < 0)
                r = -errno;
        if (r < 0) {
                log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to mark a recipient done: %s", strerror(-r));
                return;
        }
        m->envelope->recipients[i].done = true;
        log_mail(LOG_INFO, m->id,
                 LOG_FIELDS({ "RECIPIENT", escaped }, { "RELAY", "none" }, { "DSN", dsn },
                            { "DELIVERY_STATUS", "bounced" }),
                 "to=<%s>, relay=none, delay=%.2f, dsn=%s, status=bounced (%s)", strempty(escaped), delay, dsn,
                 isempty(why) ? "mail for this destination is refused" : why);
        log_mail(LOG_NOTICE, m->id, LOG_NO_FIELDS,
                 "sender non-delivery notification not sent: postbus has no bounce role yet");
}

void qmgr_deliver_message(QmgrMessage *m) {
        Qmgr *q = m->qmgr;

        if (!m->resolved) {
                if (!m->routes) {
                        m->routes = calloc(MAX(m->envelope->n_recipients, 1U), sizeof(QmgrRoute));
                        if (!m->routes) {
                                log_oom();
                                qmgr_message_finish(m);
                                return;
                        }
                }
                if (m->resolving == 0)
                        resolve_next(m);
                return;
        }
        if (q->local_calls >= (unsigned) q->daemon->config->default_process_limit) {
                ready_push(q, m);
                return;
        }
        dispatch(m);
}

/* Groups the resolved recipients by transport: local gets one call, error bounces, others wait. */
static void dispatch(QmgrMessage *m) {
        Qmgr *q = m->qmgr;
        DeliveryCall *call;
        size_t n = m->envelope->n_recipients;
        sd_bus *bus = NULL;
        int r;

        if (q->local_calls >= (unsigned) q->daemon->config->default_process_limit) {
                ready_push(q, m);
                return;
        }

        call = malloc(sizeof(DeliveryCall) + n * sizeof(size_t));
        if (!call) {
                log_oom();
                qmgr_message_finish(m);
                return;
        }
        call->message = m;
        call->n = 0;
        for (size_t i = 0; i < n; i++) {
                const QueueRecipient *rc = m->envelope->recipients + i;
                const QmgrRoute *route = m->routes + i;
                if (rc->done || !route->transport)
                        continue;       /* done, or deferred for want of an answer from rewrite */
                if (streq(route->transport, "local"))
                        call->indices[call->n++] = i;
                else if (streq(route->transport, "error"))
                        bounce_now(m, i, strempty(route->nexthop));
                else {
                        /* no smtp (or other) transport role yet: the mail waits in the deferred queue */
                        char why[128];
                        (void) snprintf(why, sizeof why, "mail transport unavailable: no %.64s transport",
                                        route->transport);
                        log_deferred(m, i, "none", "4.3.0", why);
                }
        }
        if (call->n == 0) {
                free(call);
                qmgr_message_finish(m);
                return;
        }

        m->calls++;
        q->local_calls++;
        r = bus_client_get_ready(q->local, on_local_ready, call, NULL, &bus);
        if (r > 0)
                call_send(call, bus);
        else if (r < 0)
                call_unreachable(call, r == -EAGAIN ? "waiting before the next attempt" : strerror(-r));
}

void qmgr_deliver_ready(Qmgr *q) {
        QmgrMessage *m;

        while (q->local_calls < (unsigned) q->daemon->config->default_process_limit && (m = ready_pop(q)))
                qmgr_deliver_message(m);
}
