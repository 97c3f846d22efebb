/* delivery-agent.c: org.postbus.Delivery1 as the delivery agents serve it: Deliver calls read and checked, in
 * line for process slots, timed, and answered. Runs in the local, pipe and smtp processes. */
#include <inttypes.h>
#include <assert.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "address.h"
#include "agent-bus.h"
#include "delivery-agent.h"
#include "dsn.h"
#include "log.h"

/* ---- the line for process slots ---- */

void delivery_request_wait(DeliveryRequest *req) {
        DeliveryAgent *a = req->agent;

        assert(!req->waiting && !req->running);
        req->waiting_next = NULL;
        if (a->waiting_tail)
                a->waiting_tail->waiting_next = req;
        else
                a->waiting = req;
        a->waiting_tail = req;
        req->waiting = true;
}

static void waiting_remove(DeliveryRequest *req) {
        DeliveryAgent *a = req->agent;
        DeliveryRequest *prev = NULL;

        if (!req->waiting)
                return;
        for (DeliveryRequest *i = a->waiting; i != req; i = i->waiting_next)
                prev = i;
        if (prev)
                prev->waiting_next = req->waiting_next;
        else
                a->waiting = req->waiting_next;
        if (a->waiting_tail == req)
                a->waiting_tail = prev;
        req->waiting_next = NULL;
        req->waiting = false;
}

void delivery_request_ended(DeliveryRequest *req) {
        assert(req->running);
        req->running = false;
        req->agent->n_running--;
}

void delivery_agent_dispatch(DeliveryAgent *a) {
        while (a->waiting &&
               (a->ops->without_slots || a->n_running < (unsigned) a->daemon->config->default_process_limit)) {
                DeliveryRequest *req = a->waiting;

                waiting_remove(req);
                /* The caller went away (qmgr was killed or restarted): it takes the outcome as unknown and
                 * delivers these again, so a request not started yet is dropped rather than delivered
                 * twice. Only those already running can be duplicated. */
                if (sd_bus_is_open(sd_bus_message_get_bus(req->message)) <= 0) {
                        log_debug("Dropping a delivery request whose caller has gone.");
                        delivery_request_free(req);
                        continue;
                }
                if (a->ops->start(req) > 0) {
                        req->running = true;
                        a->n_running++;
                }
        }
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        DeliveryRequest *req = userdata;

        req->deadline_hit = true;
        if (!req->running && !req->waiting)
                return 0;
        waiting_remove(req);
        req->agent->ops->deadline(req);
        return 0;
}

/* ---- requests ---- */

DeliveryRequest *delivery_request_free(DeliveryRequest *req) {
        DeliveryAgent *a;

        if (!req)
                return NULL;
        a = req->agent;
        /* The role's first: what it runs reads the queue file. */
        if (req->prepared)
                a->ops->done(req);
        waiting_remove(req);
        if (req->running)
                delivery_request_ended(req);
        if (req->prev)
                req->prev->next = req->next;
        else
                a->requests = req->next;
        if (req->next)
                req->next->prev = req->prev;
        daemon_busy_dec(a->daemon);

        sd_event_source_disable_unref(req->timer);
        sd_bus_message_unref(req->message);     /* and with it req->fd */
        free(req->sender);
        free(req->transport);
        free(req->nexthop);
        strv_free(req->options);
        queue_envelope_free(req->envelope);
        for (size_t i = 0; i < req->n_recipients; i++)
                free(req->recipients[i].address);
        free(req->recipients);
        free(req);
        return NULL;
}

static int request_alloc(DeliveryAgent *a, DeliveryRequest **ret) {
        DeliveryRequest *req;

        assert(a->ops->request_size >= sizeof(DeliveryRequest));
        req = calloc(1, a->ops->request_size);
        if (!req)
                return -ENOMEM;
        req->agent = a;
        req->fd = -EBADF;
        req->next = a->requests;
        if (req->next)
                req->next->prev = req;
        a->requests = req;
        daemon_busy_inc(a->daemon);
        *ret = req;
        return 0;
}

static int invalid(sd_bus_error *error, const char *text) {
        return sd_bus_error_set(error, POSTBUS_ERROR_INVALID_ARGS, text);
}

/* A master.cf service name. */
static bool transport_valid(const char *s) {
        if (isempty(s) || strlen(s) > DELIVERY_TRANSPORT_MAX)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("-_.", *s)))
                        return false;
        return true;
}

/* Empty is allowed: pipe's ${nexthop} is then empty (Postfix's qmgr always has one; ours may not). */
static bool nexthop_valid(const char *s) {
        if (strlen(s) > DELIVERY_NEXTHOP_MAX)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= ' ' || *s == 0x7F)
                        return false;
        return true;
}

static int read_options(sd_bus_message *m, DeliveryRequest *req, sd_bus_error *error) {
        const DeliveryAgentOps *ops = req->agent->ops;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name, *value;

                r = sd_bus_message_read(m, "{ss}", &name, &value);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                /* qmgr's timings of the delivery, for delays= in the journal; not the transport's settings. */
                if (streq(name, DELIVERY_OPTION_ACTIVE_USEC) || streq(name, DELIVERY_OPTION_SENT_USEC)) {
                        uint64_t *t = streq(name, DELIVERY_OPTION_ACTIVE_USEC) ? &req->active_usec : &req->sent_usec;
                        if (sscanf(value, "%" SCNu64, t) != 1)
                                *t = 0;
                        continue;
                }
                /* An agent without per-transport options works from main.cf's parameters alone. */
                if (ops->options_max == 0)
                        continue;
                if (n / 2 >= ops->options_max)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "More than %u options.",
                                                 ops->options_max);
                if (isempty(name) || strlen(name) > DELIVERY_OPTION_NAME_MAX || strlen(value) > ops->option_value_max)
                        return invalid(error, "Invalid option.");
                char **nl = realloc(req->options, (n + 3) * sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                req->options = nl;
                nl[n] = strdup(name);
                nl[n + 1] = strdup(value);
                nl[n + 2] = NULL;
                n += 2;
                if (!nl[n - 2] || !nl[n - 1])
                        return -ENOMEM;
        }
        return sd_bus_message_exit_container(m);
}

static int read_recipients(sd_bus_message *m, DeliveryRequest *req, sd_bus_error *error) {
        unsigned max = req->agent->ops->recipients_max;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(us)");
        if (r < 0)
                return r;
        for (;;) {
                uint32_t index;
                const char *address;

                r = sd_bus_message_read(m, "(us)", &index, &address);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (req->n_recipients >= max)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "More than %u recipients.", max);
                if (isempty(address) || !address_valid(address))
                        return invalid(error, "Invalid recipient address.");
                DeliveryRecipient *n = realloc(req->recipients, (req->n_recipients + 1) * sizeof(DeliveryRecipient));
                if (!n)
                        return -ENOMEM;
                req->recipients = n;
                n[req->n_recipients] = (DeliveryRecipient) { .index = index, .address = strdup(address) };
                if (!n[req->n_recipients++].address)
                        return -ENOMEM;
        }
        return sd_bus_message_exit_container(m);
}

int delivery_request_new(DeliveryAgent *a, sd_bus_message *m, bool inline_file, sd_bus_error *error,
                         DeliveryRequest **ret) {
        _cleanup_(delivery_request_freep) DeliveryRequest *req = NULL;
        const char *queue_id, *sender, *transport, *nexthop;
        bool uses_transport = a->ops->options_max > 0;
        const void *file = NULL;
        size_t file_size = 0;
        int fd = -EBADF, r;

        r = inline_file ? sd_bus_message_read_array(m, 'y', &file, &file_size)
                        : sd_bus_message_read(m, "h", &fd);
        if (r >= 0)
                r = sd_bus_message_read(m, "ssss", &queue_id, &sender, &transport, &nexthop);
        if (r < 0)
                return r;
        r = request_alloc(a, &req);
        if (r < 0)
                return r;
        r = read_options(m, req, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        r = read_recipients(m, req, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;

        if (req->n_recipients == 0)
                return invalid(error, "No recipients.");
        if (!queue_id_valid(queue_id))
                return invalid(error, "Invalid queue ID.");
        if (!address_valid(sender))
                return invalid(error, "Invalid sender address.");
        if (uses_transport && !transport_valid(transport))
                return invalid(error, "Invalid transport name.");
        if (uses_transport && !nexthop_valid(nexthop))
                return invalid(error, "Invalid next hop.");
        struct stat st;
        if (inline_file && file_size > DELIVERY_INLINE_MAX)
                return invalid(error, "Queue file too large to come inside the call.");
        r = inline_file ? 0 : bus_check_peer_fd(m, fd, PEER_FD_QUEUE_FILE, "queue file", &st, error);
        if (r < 0)
                return r;

        strcpy(req->queue_id, queue_id);
        req->sender = strdup(sender);
        req->transport = strdup(transport);
        req->nexthop = strdup(nexthop);
        if (!req->sender || !req->transport || !req->nexthop)
                return -ENOMEM;
        /* The call's own descriptor, open while the request holds the call. */
        req->message = sd_bus_message_ref(m);
        req->fd = fd;
        /* qmgr read the file before; if it is unreadable now, qmgr should look again rather than log a
         * deferral per recipient: the whole call fails. */
        r = inline_file ? queue_file_read_delivery_bytes(file, file_size, &req->envelope)
                        : queue_file_read_delivery(req->fd, &st, &req->envelope);
        if (r < 0) {
                const char *why = r == -EBADMSG ? "queue file is corrupt" : "cannot read the queue file";
                log_mail(LOG_WARNING, req->queue_id, LOG_NO_FIELDS, "%s: %s", why, strerror(-r));
                /* A corrupt file is qmgr's to set aside; it is no fault of the destination. */
                return sd_bus_error_setf(error,
                                         r == -EBADMSG ? POSTBUS_ERROR_CORRUPT_QUEUE_FILE : POSTBUS_ERROR_TEMPORARY,
                                         "4.3.0 %s", why);
        }
        for (size_t i = 0; i < req->n_recipients; i++) {
                if (req->recipients[i].index >= req->envelope->n_recipients)
                        return invalid(error, "Recipient index out of range.");
                req->recipients[i].original = req->envelope->recipients[req->recipients[i].index].address;
        }
        *ret = TAKE_PTR(req);
        return 0;
}

bool delivery_request_peer_connected(const DeliveryRequest *req) {
        return sd_bus_is_open(sd_bus_message_get_bus(req->message)) > 0;
}

bool delivery_request_soft_bounce(const DeliveryRequest *req, const char *status, const char *dsn,
                                  char ret_dsn[static DELIVERY_DSN_MAX]) {
        if (!req->agent->daemon->config->soft_bounce || !streq(status, DELIVERY_STATUS_BOUNCED))
                return false;
        (void) snprintf(ret_dsn, DELIVERY_DSN_MAX, "%s", dsn);
        (void) dsn_soft_bounce(ret_dsn);
        return true;
}

void delivery_request_log(const DeliveryRequest *req, const char *recipient, const char *original, const char *relay,
                          const char *dsn, const char *status, const char *text, const LogField *fields) {
        char soft[DELIVERY_DSN_MAX];

        if (delivery_request_soft_bounce(req, status, dsn, soft)) {
                status = DELIVERY_LOG_SOFTBOUNCE;
                dsn = soft;
        }
        log_delivery_record(req->queue_id, &(LogDelivery) {
                .recipient = recipient,
                .original_recipient = original,
                .relay = relay,
                .dsn = dsn,
                .status = status,
                .text = text,
                .arrival_usec = req->envelope->arrival_usec,
                .active_usec = req->active_usec,
                .sent_usec = req->sent_usec,
                .fields = fields,
        });
}

void delivery_request_reply(DeliveryRequest *req, DeliveryResultFunc result) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(req->message, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ussss)");
        for (size_t i = 0; r >= 0 && i < req->n_recipients; i++) {
                DeliveryResult x;
                char soft[DELIVERY_DSN_MAX];

                result(req, i, &x);
                if (delivery_request_soft_bounce(req, x.status, x.dsn, soft)) {
                        x.status = DELIVERY_STATUS_DEFERRED;
                        x.dsn = soft;
                }
                r = sd_bus_message_append(reply, "(ussss)", req->recipients[i].index, x.status, x.dsn, x.relay,
                                          x.text);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sst)");
        if (r >= 0 && req->agent->ops->append_hosts)
                r = req->agent->ops->append_hosts(req, reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                log_warning_errno(r, "%s: Failed to send the delivery results, ignoring: %m", req->queue_id);
}

void delivery_request_finish(DeliveryRequest *req, DeliveryResultFunc result, bool complete) {
        if (!complete || !delivery_request_peer_connected(req))
                log_mail(LOG_WARNING, req->queue_id, LOG_NO_FIELDS,
                         "connection to the queue manager lost; the results of %zu recipients are not reported",
                         req->n_recipients);
        else
                delivery_request_reply(req, result);
        delivery_request_free(req);
}

/* ---- the service ---- */

static int deliver(sd_bus_message *m, DeliverySocket *sock, bool inline_file, sd_bus_error *error) {
        DeliveryAgent *a = sock->agent;
        _cleanup_(delivery_request_freep) DeliveryRequest *req = NULL;
        int r;

        r = delivery_request_new(a, m, inline_file, error, &req);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        req->socket_flags = sock->flags;
        req->prepared = true;
        r = a->ops->prepare(req);
        if (r < 0)
                return r;
        if (r > 0) {
                a->ops->finish(TAKE_PTR(req));
                return 1;
        }
        /* Answer before qmgr, which waits daemon_timeout, gives up on the call. */
        r = sd_event_add_time_relative(a->daemon->event, &req->timer, CLOCK_MONOTONIC,
                                       (uint64_t) a->daemon->config->daemon_timeout * USEC_PER_SEC / 10 * 9,
                                       USEC_PER_SEC, on_deadline, req);
        if (r < 0)
                return r;
        delivery_request_wait(TAKE_PTR(req));
        delivery_agent_dispatch(a);
        return 1;
}

static int method_deliver(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return deliver(m, userdata, false, error);
}

static int method_deliver_inline(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return deliver(m, userdata, true, error);
}

static const sd_bus_vtable delivery_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Deliver",
                                SD_BUS_ARGS("h", queue_file, "s", queue_id, "s", sender, "s", transport, "s", nexthop,
                                            "a{ss}", options, "a(us)", recipients),
                                SD_BUS_RESULT("a(ussss)", results, "a(sst)", hosts),
                                method_deliver, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeliverInline",
                                SD_BUS_ARGS("ay", queue_file, "s", queue_id, "s", sender, "s", transport, "s", nexthop,
                                            "a{ss}", options, "a(us)", recipients),
                                SD_BUS_RESULT("a(ussss)", results, "a(sst)", hosts),
                                method_deliver_inline, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int delivery_bus_add(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, DELIVERY_OBJECT_PATH, DELIVERY_INTERFACE, delivery_vtable,
                                        userdata);
}

/* Every call in progress is answered with what is known. */
static void finish_all(DeliveryAgent *a) {
        while (a->requests) {
                DeliveryRequest *req = a->requests;

                waiting_remove(req);
                a->ops->stop(req);
                if (req->running)
                        delivery_request_ended(req);
                a->ops->finish(req);
        }
}

/* Runs when the event loop exits, before the connections close (bus_server_free(), from the role's done()):
 * the answers are written then, without waiting for a peer that does not read. */
static int on_event_exit(sd_event_source *s, void *userdata) {
        finish_all(userdata);
        return 0;
}

int delivery_agent_new(Daemon *d, int listen_fd, uid_t peer_uid, const DeliveryAgentOps *ops, void *userdata,
                       DeliveryAgent **ret) {
        _cleanup_(delivery_agent_freep) DeliveryAgent *a = NULL;
        int r;

        a = calloc(1, sizeof(DeliveryAgent));
        if (!a)
                return -ENOMEM;
        a->daemon = d;
        a->ops = ops;
        a->userdata = userdata;
        r = sd_event_add_exit(d->event, &a->exit_source, on_event_exit, a);
        if (r >= 0)
                r = sd_event_source_set_priority(a->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return r;
        if (listen_fd >= 0) {
                DeliverySocket *sock = a->sockets + a->n_sockets;

                r = bus_server_new(d, listen_fd, delivery_bus_add, sock, &sock->server);
                if (r < 0)
                        return r;
                sock->agent = a;
                a->n_sockets++;
                if (peer_uid != (uid_t) -1) {
                        r = bus_server_allow_uid(sock->server, peer_uid);
                        if (r < 0)
                                return r;
                }
        }
        *ret = TAKE_PTR(a);
        return 0;
}

int delivery_agent_serve(DeliveryAgent *a, const char *fd_name, unsigned flags) {
        DeliverySocket *sock = a->sockets + a->n_sockets;
        int r;

        if (a->n_sockets >= DELIVERY_AGENT_SOCKETS_MAX)
                return -E2BIG;
        *sock = (DeliverySocket) { .agent = a, .flags = flags };
        r = bus_server_serve(a->daemon, fd_name, delivery_bus_add, sock, &sock->server);
        if (r < 0)
                return r;
        a->n_sockets++;
        return 0;
}

DeliveryAgent *delivery_agent_free(DeliveryAgent *a) {
        if (!a)
                return NULL;
        finish_all(a);
        sd_event_source_disable_unref(a->exit_source);
        for (size_t i = 0; i < a->n_sockets; i++)
                bus_server_free(a->sockets[i].server);
        free(a);
        return NULL;
}
