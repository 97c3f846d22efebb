/* qmgr-control.c: what administrators do to the queue over org.postbus.Queue1 (queue-bus.h): hold,
 * release, requeue, delete and bounce messages, flush, pause and resume destinations. Run by qmgr.
 *
 * A message in the active queue is not taken from under a delivery in progress: its deliveries not yet
 * started are dropped and the action is done when the ones in progress have ended, as Postfix does. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "agent-bus.h"
#include "log.h"
#include "qmgr.h"
#include "queue-bus.h"
#include "string-util.h"

static const char *const action_names[_QMGR_ACTION_MAX] = {
        [QMGR_ACTION_HOLD] = "held",
        [QMGR_ACTION_REQUEUE] = "requeued",
        [QMGR_ACTION_DELETE] = "deleted",
        [QMGR_ACTION_BOUNCE] = "bounced",
};

/* Bounce forgets the message's logs; nobody is told (postsuper -d). */
static void bounce_remove_logs(Qmgr *q, const char *id) {
        sd_bus *bus;
        int r;

        r = bus_client_get(q->bounce, &bus);
        if (r >= 0)
                r = sd_bus_call_method_async(bus, NULL, NULL, BOUNCE_OBJECT_PATH, BOUNCE_INTERFACE,
                                             "Remove", NULL, NULL, "s", id);
        if (r < 0)
                log_mail(LOG_WARNING, id, LOG_NO_FIELDS, "failed to ask bounce to remove its logs, ignoring: %s",
                         strerror(-r));
}

/* Due now, and tried now when the active queue has room. */
static void retry_now(Qmgr *q, QueueName where, const char *id) {
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_NOW } };

        (void) utimensat(q->queue_fds[where], id, ts, AT_SYMLINK_NOFOLLOW);
        if (where != QUEUE_DEFERRED && qmgr_queue_move(q, where, QUEUE_DEFERRED, id) < 0)
                return;
        qmgr_index_set_next_attempt(q, id, now_realtime_usec());
        if (q->n_messages < (unsigned) q->daemon->config->qmgr_message_active_limit)
                (void) qmgr_queue_activate(q, QUEUE_DEFERRED, id);
        else
                q->rescan = true;
}

bool qmgr_control_apply(QmgrMessage *m) {
        Qmgr *q = m->qmgr;
        QmgrAction action = m->action;
        char id[QUEUE_ID_SIZE];

        memcpy(id, m->id, QUEUE_ID_SIZE);
        m->action = QMGR_ACTION_NONE;
        m->controlled = true;
        /* A hold with a reason is qmgr's own (a poison message, qmgr-agent.c), logged when it was decided. */
        if (!(action == QMGR_ACTION_HOLD && m->action_reason))
                log_mail(LOG_INFO, id, LOG_FIELDS({ "QUEUE_ACTION", action_names[action] }),
                         "%s by the administrator", action_names[action]);
        switch (action) {
        case QMGR_ACTION_HOLD:
                qmgr_index_set_reason(q, id, m->action_reason ?: "held by the administrator");
                qmgr_message_move(m, QUEUE_HOLD);
                return true;
        case QMGR_ACTION_REQUEUE:
                qmgr_message_move(m, QUEUE_DEFERRED);
                retry_now(q, QUEUE_DEFERRED, id);
                return true;
        case QMGR_ACTION_DELETE:
                bounce_remove_logs(q, id);
                qmgr_message_remove(m);
                return true;
        case QMGR_ACTION_BOUNCE: {
                const char *why = isempty(m->action_reason) ? "message bounced by the administrator" : m->action_reason;
                m->resolved = true;
                m->calls++;     /* not finished before all are logged */
                for (size_t i = 0; i < m->envelope->n_recipients; i++)
                        if (!m->envelope->recipients[i].done)
                                qmgr_recipient_returned(m, i, "none", "5.0.0", why);
                m->calls--;
                return false;   /* finishes as usual: with nothing pending, bounce's Finish */
        }
        default:
                return false;
        }
}

int qmgr_control_act(Qmgr *q, QmgrAction action, const char *id, const char *reason) {
        QmgrMessage *m = qmgr_message_find(q, id);
        QmgrIndexEntry *e = qmgr_index_find(q, id);
        QueueName where;

        if (!m && !e)
                return -ENOENT;
        where = m ? QUEUE_ACTIVE : (QueueName) e->queue;
        if (where == QUEUE_ACTIVE) {
                if (!m || m->action != QMGR_ACTION_NONE || m->finishing || m->controlled)
                        return 0;       /* not loaded, or on its way out already */
                if (reason) {
                        m->action_reason = strdup(reason);
                        if (!m->action_reason)
                                return -ENOMEM;
                }
                m->action = action;
                qmgr_schedule_message_free(m);  /* what has not started never will */
                if (m->calls == 0)
                        qmgr_message_finish(m);
                return 1;
        }

        switch (action) {
        case QMGR_ACTION_HOLD:
                if (where == QUEUE_HOLD || where == QUEUE_CORRUPT)
                        return 0;
                if (qmgr_queue_move(q, where, QUEUE_HOLD, id) < 0)
                        return 0;
                qmgr_index_set_reason(q, id, "held by the administrator");
                break;
        case QMGR_ACTION_REQUEUE:
                if (where == QUEUE_CORRUPT)
                        return 0;
                retry_now(q, where, id);
                break;
        case QMGR_ACTION_DELETE:
                if (unlinkat(q->queue_fds[where], id, 0) < 0)
                        return errno == ENOENT ? 0 : -errno;
                bounce_remove_logs(q, id);
                qmgr_queue_changed(q);
                qmgr_index_remove(q, id);
                break;
        case QMGR_ACTION_BOUNCE:
                if (where == QUEUE_CORRUPT)
                        return 0;
                if (qmgr_queue_activate_for(q, where, id, QMGR_ACTION_BOUNCE, reason) < 0)
                        return 0;
                return 1;       /* logged when done */
        default:
                return -EINVAL;
        }
        log_mail(LOG_INFO, id, LOG_FIELDS({ "QUEUE_ACTION", action_names[action] }), "%s by the administrator",
                 action_names[action]);
        return 1;
}

int qmgr_control_release(Qmgr *q, const char *id) {
        QmgrIndexEntry *e = qmgr_index_find(q, id);

        if (!e)
                return -ENOENT;
        if (e->queue != QUEUE_HOLD)
                return 0;
        qmgr_index_set_reason(q, id, NULL);
        log_mail(LOG_INFO, id, LOG_FIELDS({ "QUEUE_ACTION", "released" }), "released from hold by the administrator");
        retry_now(q, QUEUE_HOLD, id);
        return 1;
}

/* Paused destinations: $queue_directory/state/paused-destinations, "destination TAB reason" a line. */
static int paused_path(Qmgr *q, char **ret) {
        return asprintf(ret, "%s/state/paused-destinations", q->daemon->config->queue_directory) < 0 ? -ENOMEM : 0;
}

int qmgr_paused_load(Qmgr *q) {
        _cleanup_free_ char *path = NULL, *line = NULL;
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0, size = 0;
        FILE *f;
        int r;

        if (paused_path(q, &path) < 0)
                return log_oom();
        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : log_warning_errno(errno, "Failed to read %s, ignoring: %m", path);
        while (getline(&line, &size, f) > 0) {
                char *tab = strchr(line, '\t');
                line[strcspn(line, "\n")] = '\0';
                if (!tab || tab == line)
                        continue;
                *tab = '\0';
                r = strv_push(&l, &n, strdup(line));
                if (r >= 0)
                        r = strv_push(&l, &n, strdup(tab + 1));
                if (r < 0) {
                        fclose(f);
                        return log_oom();
                }
        }
        fclose(f);
        strv_free(q->paused);
        q->paused = TAKE_PTR(l);
        for (size_t i = 0; q->paused && q->paused[i]; i += 2)
                log_info("Destination %s is paused: %s", q->paused[i], q->paused[i + 1]);
        return 0;
}

static int paused_save(Qmgr *q) {
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        FILE *f;

        if (paused_path(q, &path) < 0 || asprintf(&tmp, "%s.new", path) < 0)
                return -ENOMEM;
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        for (size_t i = 0; q->paused && q->paused[i]; i += 2)
                fprintf(f, "%s\t%s\n", q->paused[i], q->paused[i + 1]);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
                int r = -errno;
                fclose(f);
                (void) unlink(tmp);
                return r;
        }
        fclose(f);
        if (rename(tmp, path) < 0)
                return -errno;
        return 0;
}

const char *qmgr_paused_reason(Qmgr *q, const char *dest) {
        const char *at = dest ? strrchr(dest, '@') : NULL;

        for (size_t i = 0; dest && q->paused && q->paused[i]; i += 2)
                if (strcasecmp(q->paused[i], dest) == 0 || (at && strcasecmp(q->paused[i], at + 1) == 0))
                        return q->paused[i + 1];
        return NULL;
}

/* A destination or a reason as a line of the state file: no tabs or line ends. */
static char *one_line(const char *s) {
        char *c = strdup(s);
        for (char *p = c; p && *p; p++)
                if (*p == '\t' || *p == '\n' || *p == '\r')
                        *p = ' ';
        return c;
}

int qmgr_control_pause(Qmgr *q, const char *dest, const char *reason) {
        _cleanup_free_ char *d = one_line(dest), *why = one_line(reason);
        size_t n = strv_length(q->paused);
        int r;

        if (!d || !why)
                return -ENOMEM;
        for (size_t i = 0; i < n; i += 2)
                if (strcasecmp(q->paused[i], d) == 0) {
                        free(q->paused[i + 1]);
                        q->paused[i + 1] = TAKE_PTR(why);
                        return paused_save(q);
                }
        r = strv_push(&q->paused, &n, TAKE_PTR(d));
        if (r >= 0)
                r = strv_push(&q->paused, &n, TAKE_PTR(why));
        if (r < 0)
                return r;
        r = paused_save(q);
        if (r < 0)
                return r;
        log_info("Destination %s paused by the administrator: %s", dest, reason);

        /* Deliveries waiting in the active queue for it wait in deferred instead. */
        _cleanup_free_ char *text = NULL;
        if (asprintf(&text, "delivery temporarily suspended: destination paused%s%s", isempty(reason) ? "" : ": ",
                     reason) < 0)
                return 0;
        for (QmgrTransport *t = q->transports; t; t = t->next)
                for (size_t b = 0; t->dests && b < QMGR_DEST_BUCKETS; b++)
                        for (QmgrDest *x = t->dests[b]; x; x = x->hash_next)
                                if (x->peers && qmgr_paused_reason(q, x->name))
                                        qmgr_schedule_defer_dest_why(x, "4.3.2", text);
        return 0;
}

typedef struct FlushData {
        const char *dest;
        unsigned found, activated;
} FlushData;

static int flush_dest_entry(Qmgr *q, QmgrIndexEntry *e, void *userdata) {
        FlushData *f = userdata;

        if (e->queue != QUEUE_DEFERRED && e->queue != QUEUE_ACTIVE)
                return 0;
        if (!qmgr_index_has_destination(q, e, f->dest))
                return 0;
        f->found++;
        if (e->queue == QUEUE_DEFERRED) {
                char id[QUEUE_ID_SIZE];
                memcpy(id, e->id, QUEUE_ID_SIZE);       /* e may be replaced */
                retry_now(q, QUEUE_DEFERRED, id);
                f->activated++;
        }
        return 0;
}

/* The deferred mail for dest is tried now; -ENOENT when none is queued. */
int qmgr_control_flush_destination(Qmgr *q, const char *dest, unsigned *ret) {
        FlushData f = { .dest = dest };
        const char *at = strrchr(dest, '@');
        int r;

        if (at)
                f.dest = at + 1;
        r = qmgr_index_foreach(q, flush_dest_entry, &f);
        if (r < 0)
                return r;
        if (f.found == 0)
                return -ENOENT;
        *ret = f.activated;
        return 0;
}

int qmgr_control_resume(Qmgr *q, const char *dest) {
        size_t n = strv_length(q->paused);
        unsigned ignored;

        for (size_t i = 0; i < n; i += 2)
                if (strcasecmp(q->paused[i], dest) == 0) {
                        free(q->paused[i]);
                        free(q->paused[i + 1]);
                        memmove(q->paused + i, q->paused + i + 2, (n - i - 1) * sizeof(char *));
                        if (!q->paused[0])
                                q->paused = mfree(q->paused);
                        int r = paused_save(q);
                        if (r < 0)
                                log_warning_errno(r, "Failed to save the paused destinations, ignoring: %m");
                        log_info("Destination %s resumed by the administrator.", dest);
                        (void) qmgr_control_flush_destination(q, dest, &ignored);
                        return 0;
                }
        return -ENOENT;
}
