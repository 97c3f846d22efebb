/* qmgr-bus-message.c: the objects /org/postbus/Queue1/message/<ID> (org.postbus.Message1), served from
 * the queue index with a fallback vtable and a node enumerator, and the signals of org.postbus.Queue1.
 * Run by qmgr. */
#include <stdarg.h>
#include <stdio.h>

#include "address.h"
#include "log.h"
#include "qmgr.h"
#include "queue-bus.h"
#include "string-util.h"

/* The queue ID in a message object's path, or NULL. */
static const char *path_id(const char *path) {
        const char *p = path;
        size_t n = strlen(QUEUE_BUS_MESSAGE_PREFIX);

        if (strncmp(p, QUEUE_BUS_MESSAGE_PREFIX, n) != 0 || p[n] != '/')
                return NULL;
        p += n + 1;
        return queue_id_valid(p) ? p : NULL;
}

/* The message's index entry for an object path, or NULL. */
static QmgrIndexEntry *entry_of(Qmgr *q, const char *path) {
        const char *id = path_id(path);
        return id ? qmgr_index_find(q, id) : NULL;
}

static int message_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                        sd_bus_error *error) {
        Qmgr *q = userdata;

        if (!entry_of(q, path))
                return 0;
        *found = q;     /* the getters look the entry up again: it may be replaced between calls */
        return 1;
}

typedef struct NodeList {
        char **l;
        size_t n;
} NodeList;

static int add_node(Qmgr *q, QmgrIndexEntry *e, void *userdata) {
        NodeList *nl = userdata;

        if (asprintf(&nl->l[nl->n], "%s/%s", QUEUE_BUS_MESSAGE_PREFIX, e->id) < 0)
                return -ENOMEM;
        nl->n++;
        return 0;
}

static int message_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Qmgr *q = userdata;
        NodeList nl = { .l = calloc(qmgr_index_count(q) + 1, sizeof(char *)) };
        int r;

        if (!nl.l)
                return -ENOMEM;
        r = qmgr_index_foreach(q, add_node, &nl);
        if (r < 0) {
                strv_free(nl.l);
                return r;
        }
        *nodes = nl.l;
        return 0;
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        QmgrIndexEntry *e = entry_of(userdata, path);

        if (!e)
                return sd_bus_error_set(error, POSTBUS_ERROR_NO_SUCH_MESSAGE, "The message is no longer queued.");
        if (streq(property, "Id"))
                return sd_bus_message_append(reply, "s", e->id);
        if (streq(property, "Queue"))
                return sd_bus_message_append(reply, "s", queue_name_to_string(e->queue));
        if (streq(property, "Sender"))
                return sd_bus_message_append(reply, "s", qmgr_index_sender(e));
        if (streq(property, "ArrivalUSec"))
                return sd_bus_message_append(reply, "t", e->arrival_usec);
        if (streq(property, "Size"))
                return sd_bus_message_append(reply, "t", e->size);
        if (streq(property, "Attempts"))
                return sd_bus_message_append(reply, "u", e->attempts);
        if (streq(property, "NextAttemptUSec"))
                return sd_bus_message_append(reply, "t", e->queue == QUEUE_DEFERRED ? e->next_attempt_usec : 0);
        if (streq(property, "Reason"))
                return sd_bus_message_append(reply, "s", strempty(e->reason));
        return -EINVAL;
}

static int property_recipients(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *env = NULL;
        Qmgr *q = userdata;
        QmgrIndexEntry *e = entry_of(q, path);
        int r;

        if (!e)
                return sd_bus_error_set(error, POSTBUS_ERROR_NO_SUCH_MESSAGE, "The message is no longer queued.");
        if (qmgr_index_read_envelope(q, e, &env) < 0)
                env = NULL;     /* corrupt, or moved on just now: no recipients to show */
        r = sd_bus_message_open_container(reply, 'a', "(ssss)");
        if (r < 0)
                return r;
        for (size_t i = 0; env && i < env->n_recipients; i++) {
                const QueueRecipient *rc = env->recipients + i;
                const char *orig = rc->orcpt ? strchr(rc->orcpt, ';') : NULL;
                r = sd_bus_message_append(reply, "(ssss)", rc->address, orig ? orig + 1 : rc->address,
                                          rc->done ? "done" : "pending", rc->done ? "" : strempty(e->reason));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int message_act(sd_bus_message *m, Qmgr *q, QmgrAction action, bool release, sd_bus_error *error) {
        const char *id = path_id(sd_bus_message_get_path(m)), *reason = NULL;
        int r;

        r = qmgr_authorize(q, m, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: polkit's answer dispatches the call again */
        if (action == QMGR_ACTION_BOUNCE) {
                r = sd_bus_message_read(m, "s", &reason);
                if (r < 0)
                        return r;
        }
        if (!id)
                return sd_bus_error_set(error, POSTBUS_ERROR_NO_SUCH_MESSAGE, "No such message.");
        r = release ? qmgr_control_release(q, id) : qmgr_control_act(q, action, id, reason);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, POSTBUS_ERROR_NO_SUCH_MESSAGE, "Message %s is not queued.", id);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_hold(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return message_act(m, userdata, QMGR_ACTION_HOLD, false, error);
}

static int method_release(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return message_act(m, userdata, QMGR_ACTION_NONE, true, error);
}

static int method_requeue(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return message_act(m, userdata, QMGR_ACTION_REQUEUE, false, error);
}

static int method_delete(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return message_act(m, userdata, QMGR_ACTION_DELETE, false, error);
}

static int method_bounce(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return message_act(m, userdata, QMGR_ACTION_BOUNCE, false, error);
}

static const sd_bus_vtable message_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Queue", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Sender", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ArrivalUSec", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Size", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Attempts", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NextAttemptUSec", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Reason", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Recipients", "a(ssss)", property_recipients, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_METHOD("Hold", NULL, NULL, method_hold, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Release", NULL, NULL, method_release, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Requeue", NULL, NULL, method_requeue, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Delete", NULL, NULL, method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Bounce", SD_BUS_ARGS("s", reason), SD_BUS_NO_RESULT, method_bounce,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int qmgr_bus_message_setup(Qmgr *q) {
        int r;

        r = sd_bus_add_fallback_vtable(q->system_bus, NULL, QUEUE_BUS_MESSAGE_PREFIX, QUEUE_BUS_MESSAGE_INTERFACE,
                                       message_vtable, message_find, q);
        if (r < 0)
                return log_error_errno(r, "Failed to publish the message objects: %m");
        r = sd_bus_add_node_enumerator(q->system_bus, NULL, QUEUE_BUS_MESSAGE_PREFIX, message_enumerate, q);
        if (r < 0)
                return log_error_errno(r, "Failed to enumerate the message objects: %m");
        return 0;
}

void qmgr_bus_message_changed(Qmgr *q, const char *id) {
        char path[sizeof(QUEUE_BUS_MESSAGE_PREFIX) + QUEUE_ID_SIZE + 1];
        int r;

        if (!q->system_bus)
                return;
        (void) snprintf(path, sizeof path, "%s/%s", QUEUE_BUS_MESSAGE_PREFIX, id);
        r = sd_bus_emit_properties_changed(q->system_bus, path, QUEUE_BUS_MESSAGE_INTERFACE, "Queue", "Attempts",
                                           "NextAttemptUSec", "Reason", "Recipients", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send PropertiesChanged of %s, ignoring: %m", id);
}

static void emit(Qmgr *q, const char *member, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        if (!q->system_bus)
                return;
        r = sd_bus_message_new_signal(q->system_bus, &m, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE, member);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_send(q->system_bus, m, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send the signal %s, ignoring: %m", member);
}

void qmgr_signal_queued(Qmgr *q, const QmgrIndexEntry *e) {
        emit(q, "MessageQueued", "ssu", e->id, qmgr_index_sender(e), e->n_pending);
}

void qmgr_signal_delivered(Qmgr *q, const char *id, const char *rcpt, const char *relay, const char *dsn) {
        emit(q, "MessageDelivered", "ssss", id, rcpt, strempty(relay), strempty(dsn));
}

void qmgr_signal_deferred(Qmgr *q, const char *id, const char *rcpt, const char *dsn, const char *reason,
                          uint64_t next_usec) {
        emit(q, "MessageDeferred", "sssst", id, rcpt, strempty(dsn), strempty(reason), next_usec);
}

void qmgr_signal_bounced(Qmgr *q, const char *id, const char *rcpt, const char *dsn, const char *reason) {
        emit(q, "MessageBounced", "ssss", id, rcpt, strempty(dsn), strempty(reason));
}

void qmgr_signal_removed(Qmgr *q, const char *id) {
        emit(q, "MessageRemoved", "s", id);
}

void qmgr_signal_dead(Qmgr *q, const char *transport, const char *dest, const char *reason) {
        emit(q, "DestinationDead", "sss", transport, dest, strempty(reason));
}

void qmgr_alert(Qmgr *q, const char *klass, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;
        emit(q, "Alert", "ss", klass, text);
}
