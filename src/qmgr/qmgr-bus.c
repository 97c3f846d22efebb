/* qmgr-bus.c: org.postbus.Queue1 on the system bus (queue state for everyone, changes for root and
 * whom polkit allows; queue-bus.h has the interface), and org.postbus.QueueManager1 on qmgr's private
 * socket (wake-ups from cleanup). Run by qmgr. */
#include <fcntl.h>
#include <math.h>

#include "log.h"
#include "qmgr.h"
#include "queue-bus.h"

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

typedef struct ListData {
        sd_bus_message *reply;
        QueueName only;
} ListData;

static int list_entry(Qmgr *q, QmgrIndexEntry *e, void *userdata) {
        ListData *l = userdata;
        int r;

        if (l->only >= 0 && e->queue != (uint8_t) l->only)
                return 0;
        r = sd_bus_message_open_container(l->reply, 'r', "ssttsas");
        if (r < 0)
                return r;
        r = sd_bus_message_append(l->reply, "sstts", e->id, queue_name_to_string(e->queue), e->arrival_usec, e->size,
                                  qmgr_index_sender(e));
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(l->reply, 'a', "s");
        if (r < 0)
                return r;
        if (e->truncated) {
                _cleanup_(queue_envelope_freep) QueueEnvelope *env = NULL;
                if (qmgr_index_read_envelope(q, e, &env) >= 0)
                        for (size_t i = 0; i < env->n_recipients; i++)
                                if (!env->recipients[i].done) {
                                        r = sd_bus_message_append_basic(l->reply, 's', env->recipients[i].address);
                                        if (r < 0)
                                                return r;
                                }
        } else
                for (const char *a = qmgr_index_next_recipient(e, NULL); a; a = qmgr_index_next_recipient(e, a)) {
                        r = sd_bus_message_append_basic(l->reply, 's', a);
                        if (r < 0)
                                return r;
                }
        r = sd_bus_message_close_container(l->reply);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(l->reply);
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
        r = qmgr_index_foreach(q, list_entry, &(ListData) { reply, only });
        if (r < 0)
                return r;
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
        Qmgr *q = userdata;
        unsigned n = 0;
        int r;

        r = qmgr_authorize(q, m, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: polkit's answer dispatches the call again */
        r = qmgr_queue_foreach(q, QUEUE_DEFERRED, flush_entry, &n);
        if (r < 0)
                return r;
        log_info("Flushing the deferred queue at the request of %s: %u messages.",
                 strna(sd_bus_message_get_sender(m)), n);
        return sd_bus_reply_method_return(m, "u", n);
}

static int property_oldest(Qmgr *q, QmgrIndexEntry *e, void *userdata) {
        uint64_t *oldest = userdata;

        if (e->queue == QUEUE_DEFERRED && (*oldest == 0 || e->arrival_usec < *oldest))
                *oldest = e->arrival_usec;
        return 0;
}

static int property_oldest_deferred(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint64_t oldest = 0;

        (void) qmgr_index_foreach(userdata, property_oldest, &oldest);
        return sd_bus_message_append(reply, "t", oldest);
}

static int property_paused(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; q->paused && q->paused[i]; i += 2) {
                r = sd_bus_message_append_basic(reply, 's', q->paused[i]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* Reads the IDs of an "as" argument; InvalidArguments when one is malformed. */
static int read_ids(sd_bus_message *m, char ***ret, sd_bus_error *error) {
        _cleanup_strv_free_ char **ids = NULL;
        int r;

        r = sd_bus_message_read_strv(m, &ids);
        if (r < 0)
                return r;
        for (size_t i = 0; ids && ids[i]; i++)
                if (!queue_id_valid(ids[i]))
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Invalid queue ID \"%.64s\".",
                                                 ids[i]);
        *ret = TAKE_PTR(ids);
        return 0;
}

static int messages_act(sd_bus_message *m, Qmgr *q, QmgrAction action, bool release, sd_bus_error *error) {
        _cleanup_strv_free_ char **ids = NULL;
        const char *reason = NULL;
        unsigned n = 0, missing = 0, total = 0;
        int r;

        r = qmgr_authorize(q, m, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: polkit's answer dispatches the call again */
        r = read_ids(m, &ids, error);
        if (r < 0)
                return r;
        if (action == QMGR_ACTION_BOUNCE) {
                r = sd_bus_message_read(m, "s", &reason);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; ids && ids[i]; i++) {
                total++;
                r = release ? qmgr_control_release(q, ids[i]) : qmgr_control_act(q, action, ids[i], reason);
                if (r == -ENOENT)
                        missing++;
                else if (r < 0)
                        log_mail(LOG_WARNING, ids[i], LOG_NO_FIELDS, "failed to act on the message: %s", strerror(-r));
                else
                        n += (unsigned) r;
        }
        if (total > 0 && missing == total)
                return sd_bus_error_setf(error, POSTBUS_ERROR_NO_SUCH_MESSAGE, "No such message: %s%s", ids[0],
                                         total > 1 ? ", ..." : "");
        return sd_bus_reply_method_return(m, "u", n);
}

static int method_hold_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return messages_act(m, userdata, QMGR_ACTION_HOLD, false, error);
}

static int method_release_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return messages_act(m, userdata, QMGR_ACTION_NONE, true, error);
}

static int method_requeue_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return messages_act(m, userdata, QMGR_ACTION_REQUEUE, false, error);
}

static int method_delete_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return messages_act(m, userdata, QMGR_ACTION_DELETE, false, error);
}

static int method_bounce_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return messages_act(m, userdata, QMGR_ACTION_BOUNCE, false, error);
}

typedef struct Filter {
        QueueName queue;
        const char *sender, *recipient, *destination, *reason;
        uint64_t older_than_usec;
        bool has_older_than;
        uint64_t now;
        sd_bus_message *reply;
} Filter;

static int select_entry(Qmgr *q, QmgrIndexEntry *e, void *userdata) {
        Filter *f = userdata;

        if (f->queue >= 0 && e->queue != (uint8_t) f->queue)
                return 0;
        if (f->sender && strcasecmp(qmgr_index_sender(e), f->sender) != 0)
                return 0;
        if (f->has_older_than && (e->arrival_usec > f->now || f->now - e->arrival_usec <= f->older_than_usec))
                return 0;
        if (f->reason && (!e->reason || !strstr(e->reason, f->reason)))
                return 0;
        if (f->recipient && !qmgr_index_has_recipient(q, e, f->recipient))
                return 0;
        if (f->destination && !qmgr_index_has_destination(q, e, f->destination))
                return 0;
        return sd_bus_message_append_basic(f->reply, 's', e->id) < 0 ? -ENOMEM : 0;
}

static int method_select_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Filter f = { .queue = _QUEUE_NAME_INVALID, .now = now_realtime_usec() };
        Qmgr *q = userdata;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *contents, *s;
                char type;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (streq(key, QUEUE_FILTER_OLDER_THAN_USEC)) {
                        if (!streq(contents, "t"))
                                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS,
                                                         "Filter %s takes a value of type t.", key);
                        r = sd_bus_message_read(m, "v", "t", &f.older_than_usec);
                        f.has_older_than = true;
                } else if (streq(key, QUEUE_FILTER_QUEUE) || streq(key, QUEUE_FILTER_SENDER) ||
                           streq(key, QUEUE_FILTER_RECIPIENT) || streq(key, QUEUE_FILTER_DESTINATION) ||
                           streq(key, QUEUE_FILTER_REASON)) {
                        if (!streq(contents, "s"))
                                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS,
                                                         "Filter %s takes a value of type s.", key);
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r < 0)
                                return r;
                        if (streq(key, QUEUE_FILTER_QUEUE)) {
                                f.queue = queue_name_from_string(s);
                                if (f.queue < 0)
                                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS,
                                                                 "No queue named \"%.64s\".", s);
                        } else if (streq(key, QUEUE_FILTER_SENDER))
                                f.sender = s;
                        else if (streq(key, QUEUE_FILTER_RECIPIENT))
                                f.recipient = s;
                        else if (streq(key, QUEUE_FILTER_DESTINATION))
                                f.destination = s;
                        else
                                f.reason = s;
                } else
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Unknown filter \"%.64s\".", key);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        f.reply = reply;
        r = qmgr_index_foreach(q, select_entry, &f);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_flush_destination(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        const char *dest;
        unsigned n = 0;
        int r;

        r = qmgr_authorize(q, m, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: polkit's answer dispatches the call again */
        r = sd_bus_message_read(m, "s", &dest);
        if (r < 0)
                return r;
        if (isempty(dest))
                return sd_bus_error_set(error, POSTBUS_ERROR_INVALID_ARGS, "No destination given.");
        r = qmgr_control_flush_destination(q, dest, &n);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, POSTBUS_ERROR_NO_SUCH_DESTINATION, "No mail queued for %.255s.", dest);
        if (r < 0)
                return r;
        log_info("Flushing mail for %s at the request of %s: %u messages.", dest,
                 strna(sd_bus_message_get_sender(m)), n);
        return sd_bus_reply_method_return(m, "u", n);
}

static int method_pause_destination(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        const char *dest, *reason;
        int r;

        r = qmgr_authorize(q, m, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: polkit's answer dispatches the call again */
        r = sd_bus_message_read(m, "ss", &dest, &reason);
        if (r < 0)
                return r;
        if (isempty(dest) || strlen(dest) > 255 || strpbrk(dest, " \t\r\n"))
                return sd_bus_error_set(error, POSTBUS_ERROR_INVALID_ARGS, "Invalid destination.");
        r = qmgr_control_pause(q, dest, reason);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to pause %s: %m", dest);
        (void) sd_bus_emit_properties_changed(q->system_bus, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE,
                                              "PausedDestinations", NULL);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_resume_destination(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        const char *dest;
        int r;

        r = qmgr_authorize(q, m, error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* 0: polkit's answer dispatches the call again */
        r = sd_bus_message_read(m, "s", &dest);
        if (r < 0)
                return r;
        if (isempty(dest))
                return sd_bus_error_set(error, POSTBUS_ERROR_INVALID_ARGS, "No destination given.");
        r = qmgr_control_resume(q, dest);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, POSTBUS_ERROR_NO_SUCH_DESTINATION, "%.255s is not paused.", dest);
        if (r < 0)
                return r;
        (void) sd_bus_emit_properties_changed(q->system_bus, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE,
                                              "PausedDestinations", NULL);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_list_destinations(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Qmgr *q = userdata;
        uint64_t mono = now_monotonic_usec(), real = now_realtime_usec();
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssuuubt)");
        if (r < 0)
                return r;
        for (QmgrTransport *t = q->transports; t; t = t->next)
                for (size_t b = 0; t->dests && b < QMGR_DEST_BUCKETS; b++)
                        for (QmgrDest *d = t->dests[b]; d; d = d->hash_next) {
                                unsigned waiting = 0;
                                for (QmgrPeer *p = d->peers; p; p = p->dest_next)
                                        waiting++;
                                const char *state = qmgr_paused_reason(q, d->name) ? "paused" :
                                                    d->dead ? "dead" : "active";
                                uint64_t next = d->not_before > mono ? real + (d->not_before - mono) : 0;
                                r = sd_bus_message_append(reply, "(sssuuubt)", t->name, d->name, state,
                                                          (uint32_t) floor(d->window), t->concurrency_limit,
                                                          waiting, d->dead, next);
                                if (r < 0)
                                        return r;
                        }
        for (size_t i = 0; q->paused && q->paused[i]; i += 2) {
                r = sd_bus_message_append(reply, "(sssuuubt)", "", q->paused[i], "paused", 0, 0, 0, false,
                                          (uint64_t) 0);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_host_failures(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = qmgr_hosts_append(userdata, reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Reads a call's queue ID argument: 0, or the error to answer with. */
static int read_queue_id(sd_bus_message *m, const char **ret, sd_bus_error *error) {
        int r = sd_bus_message_read(m, "s", ret);

        if (r < 0)
                return r;
        if (!queue_id_valid(*ret))
                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Invalid queue ID \"%.64s\".", *ret);
        return 0;
}

static int method_get_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        char path[sizeof(QUEUE_BUS_MESSAGE_PREFIX) + QUEUE_ID_SIZE + 1];
        const char *id;
        int r;

        r = read_queue_id(m, &id, error);
        if (r < 0)
                return r;
        if (!qmgr_index_find(q, id))
                return sd_bus_error_setf(error, POSTBUS_ERROR_NO_SUCH_MESSAGE, "Message %s is not queued.", id);
        (void) snprintf(path, sizeof path, "%s/%s", QUEUE_BUS_MESSAGE_PREFIX, id);
        return sd_bus_reply_method_return(m, "o", path);
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
        SD_BUS_PROPERTY("OldestDeferredUSec", "t", property_oldest_deferred, 0, 0),
        SD_BUS_PROPERTY("PausedDestinations", "as", property_paused, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("FlushQueue",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("u", messages),
                                method_flush_queue,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SelectMessages", SD_BUS_ARGS("a{sv}", filter), SD_BUS_RESULT("as", ids),
                                method_select_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("HoldMessages", SD_BUS_ARGS("as", ids), SD_BUS_RESULT("u", n),
                                method_hold_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseMessages", SD_BUS_ARGS("as", ids), SD_BUS_RESULT("u", n),
                                method_release_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RequeueMessages", SD_BUS_ARGS("as", ids), SD_BUS_RESULT("u", n),
                                method_requeue_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteMessages", SD_BUS_ARGS("as", ids), SD_BUS_RESULT("u", n),
                                method_delete_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("BounceMessages", SD_BUS_ARGS("as", ids, "s", reason), SD_BUS_RESULT("u", n),
                                method_bounce_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FlushDestination", SD_BUS_ARGS("s", destination), SD_BUS_RESULT("u", n),
                                method_flush_destination, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PauseDestination", SD_BUS_ARGS("s", destination, "s", reason), SD_BUS_NO_RESULT,
                                method_pause_destination, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResumeDestination", SD_BUS_ARGS("s", destination), SD_BUS_NO_RESULT,
                                method_resume_destination, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListDestinations", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssuuubt)", destinations),
                                method_list_destinations, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListHostFailures", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssst)", hosts),
                                method_list_host_failures, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetMessage", SD_BUS_ARGS("s", id), SD_BUS_RESULT("o", path),
                                method_get_message, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("MessageQueued", SD_BUS_ARGS("s", id, "s", sender, "u", recipients), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageDelivered", SD_BUS_ARGS("s", id, "s", recipient, "s", relay, "s", dsn), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageDeferred", SD_BUS_ARGS("s", id, "s", recipient, "s", dsn, "s", reason,
                                                                "t", next_attempt_usec), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageBounced", SD_BUS_ARGS("s", id, "s", recipient, "s", dsn, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageRemoved", SD_BUS_ARGS("s", id), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DestinationDead", SD_BUS_ARGS("s", transport, "s", destination, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Alert", SD_BUS_ARGS("s", class, "s", text), 0),
        SD_BUS_VTABLE_END,
};

/* incoming/<id> is new. env: its envelope, from the bytes cleanup sent (taken over), or NULL. */
static void wake(Qmgr *q, const char *id, QueueEnvelope *env) {
        qmgr_queue_changed(q);          /* incoming has grown */
        if (q->n_messages < (unsigned) q->daemon->config->qmgr_message_active_limit && !qmgr_index_loading(q)) {
                /* Read once, by the activation, which indexes and announces it (qmgr_queue_move_as()). */
                if (env)
                        (void) qmgr_queue_activate_new(q, id, env);
                else
                        (void) qmgr_queue_activate(q, QUEUE_INCOMING, id);
                return;
        }
        /* It waits in incoming: indexed and announced now, and read when there is room. */
        queue_envelope_free(env);
        (void) qmgr_index_update(q, QUEUE_INCOMING, id, true);
        if (q->n_messages < (unsigned) q->daemon->config->qmgr_message_active_limit)
                (void) qmgr_queue_activate(q, QUEUE_INCOMING, id);
        else
                q->rescan = true;
}

static int method_wake(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *id;
        int r;

        r = read_queue_id(m, &id, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(m, NULL);
        wake(userdata, id, NULL);
        return r;
}

/* The bytes are cleanup's own file, as it wrote it: taken from cleanup (or root) only, since another caller
 * of this socket (pickup) could otherwise say what a file in incoming/ holds. In peer-to-peer mode the
 * owner's credentials are the peer's, from SO_PEERCRED. */
static bool from_cleanup(Qmgr *q, sd_bus_message *m) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;

        return sd_bus_get_owner_creds(sd_bus_message_get_bus(m), SD_BUS_CREDS_EUID, &creds) >= 0 &&
               sd_bus_creds_get_euid(creds, &uid) >= 0 && (uid == 0 || uid == q->cleanup_uid);
}

static int method_wake_inline(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Qmgr *q = userdata;
        QueueEnvelope *env = NULL;
        const void *file;
        size_t size;
        const char *id;
        int r;

        r = read_queue_id(m, &id, error);
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'y', &file, &size);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(m, NULL);
        /* What does not read as a whole queue file is read from the disk instead, and judged there. */
        if (size > QMGR_WAKE_INLINE_MAX || !from_cleanup(q, m) || queue_file_read_delivery_bytes(file, size, &env) < 0)
                env = NULL;
        wake(q, id, env);
        return r;
}

const sd_bus_vtable qmgr_wake_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Wake", SD_BUS_ARGS("s", queue_id), SD_BUS_NO_RESULT, method_wake,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WakeInline", SD_BUS_ARGS("s", queue_id, "ay", queue_file), SD_BUS_NO_RESULT,
                                method_wake_inline, SD_BUS_VTABLE_UNPRIVILEGED),
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
        r = qmgr_bus_message_setup(q);
        if (r < 0)
                return r;
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
