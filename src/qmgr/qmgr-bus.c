/* qmgr-bus.c: org.postbus.Queue1 on the system bus (queue state for everyone), and
 * org.postbus.QueueManager1 on qmgr's private socket (wake-ups from cleanup). */
#include <fcntl.h>

#include "log.h"
#include "qmgr.h"

static int property_count(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        _cleanup_free_ char *lower = strdup(property);

        if (!lower)
                return -ENOMEM;
        lower[0] = (char) (lower[0] - 'A' + 'a');
        QueueName which = queue_name_from_string(lower);
        if (which < 0)
                return -EINVAL;
        return sd_bus_message_append(reply, "u", qmgr_queue_count(q, which));
}

static int list_entry(Qmgr *q, QueueName which, const char *id, int dirfd, void *userdata) {
        sd_bus_message *reply = userdata;
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = openat(dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return 0;       /* moved on in the meantime */
        if (queue_file_read(fd, &e) < 0)
                e = NULL;       /* corrupt: listed without an envelope */

        r = sd_bus_message_open_container(reply, 'r', "ssttsas");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "sstts", id, queue_name_to_string(which),
                                  e ? e->arrival_usec : queue_id_usec(id), e ? e->content_size : 0,
                                  e ? e->sender : "");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; e && i < e->n_recipients; i++)
                if (!e->recipients[i].done) {
                        r = sd_bus_message_append_basic(reply, 's', e->recipients[i].address);
                        if (r < 0)
                                return r;
                }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        return r < 0 ? r : 0;
}

static int method_list_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Qmgr *q = userdata;
        QueueName only = _QUEUE_NAME_INVALID;
        const char *queue;
        int r;

        r = sd_bus_message_read(m, "s", &queue);
        if (r < 0)
                return r;
        if (!isempty(queue)) {
                only = queue_name_from_string(queue);
                if (only < 0)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "No queue named \"%s\".", queue);
        }

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssttsas)");
        if (r < 0)
                return r;
        for (QueueName which = 0; which < _QUEUE_NAME_MAX; which++) {
                if (only >= 0 && which != only)
                        continue;
                r = qmgr_queue_foreach(q, which, list_entry, reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Deferred mail goes to the active queue now, whatever its retry time (sendmail -q); up to
 * qmgr_message_active_limit, the rest on the next scans. */
static int flush_entry(Qmgr *q, QueueName which, const char *id, int dirfd, void *userdata) {
        if (q->n_messages >= (unsigned) q->daemon->config->qmgr_message_active_limit) {
                q->rescan = true;
                return 1;
        }
        if (qmgr_queue_activate(q, which, id) >= 0)
                (*(unsigned *) userdata)++;
        return 0;
}

static int method_flush_queue(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        Qmgr *q = userdata;
        unsigned n = 0;
        uid_t uid;
        int r;

        /* The bus policy admits root only; checked here too. dbus-daemon vouches for the connection's
         * uid (SO_PEERCRED, an effective uid), which sd-bus reports as UID unless it can read /proc. */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_euid(creds, &uid) < 0 && sd_bus_creds_get_uid(creds, &uid) < 0)
                return sd_bus_error_set(error, POSTBUS_ERROR_ACCESS_DENIED, "Cannot tell who is asking.");
        if (uid != 0)
                return sd_bus_error_set(error, POSTBUS_ERROR_ACCESS_DENIED, "Only root may flush the queue.");

        r = qmgr_queue_foreach(q, QUEUE_DEFERRED, flush_entry, &n);
        if (r < 0)
                return r;
        log_info("Flushing the deferred queue at the request of uid %u: %u messages.", (unsigned) uid, n);
        return sd_bus_reply_method_return(m, "u", n);
}

static const sd_bus_vtable queue_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Incoming", "u", property_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Active", "u", property_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Deferred", "u", property_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Hold", "u", property_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Corrupt", "u", property_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListMessages",
                                SD_BUS_ARGS("s", queue),
                                SD_BUS_RESULT("a(ssttsas)", messages),
                                method_list_messages,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FlushQueue",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("u", messages),
                                method_flush_queue,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int method_wake(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        const char *id;
        int r;

        r = sd_bus_message_read(m, "s", &id);
        if (r < 0)
                return r;
        if (!queue_id_valid(id))
                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Invalid queue ID.");
        r = sd_bus_reply_method_return(m, NULL);
        qmgr_queue_changed(q);          /* incoming has grown */
        if (q->n_messages < (unsigned) q->daemon->config->qmgr_message_active_limit)
                (void) qmgr_queue_activate(q, QUEUE_INCOMING, id);
        else
                q->rescan = true;
        return r;
}

const sd_bus_vtable qmgr_wake_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Wake", SD_BUS_ARGS("s", queue_id), SD_BUS_NO_RESULT, method_wake,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int on_changed_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Qmgr *q = userdata;
        int r;

        if (!q->system_bus)
                return 0;
        /* The getters count the directories, once for every signal, not once for every change. */
        r = sd_bus_emit_properties_changed(q->system_bus, "/org/postbus/Queue1", "org.postbus.Queue1", "Incoming",
                                           "Active", "Deferred", "Hold", "Corrupt", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send PropertiesChanged, ignoring: %m");
        return 0;
}

void qmgr_queue_changed(Qmgr *q) {
        int r, enabled = SD_EVENT_OFF;

        if (!q->system_bus || !q->changed_timer)
                return;
        if (sd_event_source_get_enabled(q->changed_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;         /* a signal is already on its way */
        r = sd_event_source_set_time_relative(q->changed_timer, USEC_PER_SEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->changed_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_debug_errno(r, "Failed to arm the PropertiesChanged timer, ignoring: %m");
}

int qmgr_bus_setup(Qmgr *q) {
        int r;

        r = sd_bus_open_system(&q->system_bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_add_object_vtable(q->system_bus, NULL, "/org/postbus/Queue1", "org.postbus.Queue1", queue_vtable, q);
        if (r < 0)
                return log_error_errno(r, "Failed to publish org.postbus.Queue1: %m");
        r = sd_bus_request_name(q->system_bus, "org.postbus.Queue1", 0);
        if (r < 0)
                return log_error_errno(r, "Failed to own the name org.postbus.Queue1: %m");
        r = sd_bus_attach_event(q->system_bus, q->daemon->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the system bus: %m");
        r = sd_event_add_time_relative(q->daemon->event, &q->changed_timer, CLOCK_MONOTONIC, USEC_PER_SEC,
                                       USEC_PER_SEC / 10, on_changed_timer, q);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the PropertiesChanged timer: %m");
        return sd_event_source_set_enabled(q->changed_timer, SD_EVENT_OFF);
}
