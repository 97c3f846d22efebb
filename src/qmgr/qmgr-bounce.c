/* qmgr-bounce.c: qmgr's calls to bounce (agent-bus.h): records for the per-message logs, and the
 * notices at the end of a message's life (failure, success, expiry) or on its way (a delay warning).
 * Run by qmgr. */
#include <fcntl.h>
#include <unistd.h>

#include "agent-bus.h"
#include "log.h"
#include "qmgr.h"

static const char *const log_names[3] = { BOUNCE_LOG_BOUNCE, BOUNCE_LOG_DEFER, BOUNCE_LOG_TRACE };

bool qmgr_bounce_logs_exist(QmgrMessage *m) {
        if (m->had_logs)
                return true;
        if (m->new_mail)
                return false;   /* only qmgr has bounce write to the logs, and it never did for this one */
        for (size_t i = 0; i < ELEMENTSOF(log_names); i++)
                if (m->qmgr->log_fds[i] >= 0 && faccessat(m->qmgr->log_fds[i], m->id, F_OK, AT_EACCESS) >= 0)
                        return true;
        return false;
}

static uint64_t bounce_timeout(Qmgr *q) {
        return (uint64_t) q->daemon->config->daemon_timeout * USEC_PER_SEC;
}

typedef struct AppendData {
        char log[8];
        QmgrLogDone done;
        size_t n;
        QmgrLogRecord records[];        /* with their strings after the array */
} AppendData;

static int append_build(QmgrCall *c, sd_bus_message *msg) {
        AppendData *a = c->data;
        QmgrMessage *m = c->message;
        uint64_t now = now_realtime_usec();
        int r;

        r = sd_bus_message_append(msg, "ss", m->id, a->log);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "(sssssssst)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < a->n; i++) {
                const QmgrLogRecord *rec = a->records + i;
                const QueueRecipient *rc = m->envelope->recipients + rec->index;
                r = sd_bus_message_append(msg, "(sssssssst)", rc->address, "", strempty(rc->orcpt),
                                          strempty(rc->notify), rec->action, rec->status, rec->relay, rec->text,
                                          now);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(msg);
}

static void append_done(QmgrCall *c, sd_bus_message *reply, const char *error) {
        AppendData *a = c->data;
        QmgrMessage *m = c->message;

        if (error)
                log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS, "cannot write to the %s log: %s", a->log, error);
        m->calls--;
        if (a->done)
                a->done(m, a->records, a->n, !error);
        free(a);
        qmgr_message_finish(m);
}

void qmgr_bounce_append(QmgrMessage *m, const char *log, const QmgrLogRecord *records, size_t n, QmgrLogDone done) {
        size_t size = sizeof(AppendData) + n * sizeof(QmgrLogRecord);
        AppendData *a;
        char *p;

        if (n == 0)
                return;
        for (size_t i = 0; i < n; i++)
                size += strlen(records[i].action) + strlen(records[i].status) + strlen(records[i].relay) +
                        strlen(records[i].text) + 4;
        a = malloc(size);
        if (!a) {
                log_oom();
                if (done)
                        done(m, records, n, false);
                return;
        }
        (void) snprintf(a->log, sizeof a->log, "%s", log);
        a->done = done;
        a->n = n;
        p = (char *) (a->records + n);
        for (size_t i = 0; i < n; i++) {
                a->records[i].index = records[i].index;
                a->records[i].action = p;
                p = stpcpy(p, records[i].action) + 1;
                a->records[i].status = p;
                p = stpcpy(p, records[i].status) + 1;
                a->records[i].relay = p;
                p = stpcpy(p, records[i].relay) + 1;
                a->records[i].text = p;
                p = stpcpy(p, records[i].text) + 1;
        }
        m->had_logs = true;
        m->calls++;
        qmgr_call(m->qmgr->bounce, &(QmgrCall) {
                .message = m,
                .path = BOUNCE_OBJECT_PATH,
                .interface = BOUNCE_INTERFACE,
                .member = "Append",
                .build = append_build,
                .done = append_done,
                .timeout_usec = bounce_timeout(m->qmgr),
                .data = a,
        });
}

/* Finish, Expire and Warn pass the queue file and its ID. */
static int fd_id_build(QmgrCall *c, sd_bus_message *msg) {
        _cleanup_close_ int fd = qmgr_message_open(c->message, O_RDONLY);

        if (fd < 0)
                return fd;
        return sd_bus_message_append(msg, "hs", fd, c->message->id);
}

/* A call that passes the queue file and its ID: Finish, Expire, Warn. */
static void bounce_call_fd(QmgrMessage *m, const char *member, QmgrCallDone done) {
        m->calls++;
        qmgr_call(m->qmgr->bounce, &(QmgrCall) {
                .message = m,
                .path = BOUNCE_OBJECT_PATH,
                .interface = BOUNCE_INTERFACE,
                .member = member,
                .build = fd_id_build,
                .done = done,
                .timeout_usec = bounce_timeout(m->qmgr),
        });
}

static void finish_done(QmgrCall *c, sd_bus_message *reply, const char *error) {
        QmgrMessage *m = c->message;

        m->calls--;
        if (error) {
                log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS,
                         "delivery status notification not sent yet: %s; trying again later", error);
                qmgr_message_defer(m);
                return;
        }
        qmgr_message_remove(m);
}

void qmgr_bounce_finish(QmgrMessage *m) {
        bounce_call_fd(m, "Finish", finish_done);
}

static void expire_done(QmgrCall *c, sd_bus_message *reply, const char *error) {
        QmgrMessage *m = c->message;
        QueueEnvelope *e = m->envelope;
        _cleanup_free_ size_t *pending = NULL;
        size_t n = 0;

        m->calls--;
        if (error) {
                log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS, "cannot return the expired message yet: %s", error);
                qmgr_message_defer(m);
                return;
        }
        pending = malloc(MAX(e->n_recipients, 1U) * sizeof(size_t));
        if (!pending) {
                log_oom();
                qmgr_message_defer(m);
                return;
        }
        for (size_t i = 0; i < e->n_recipients; i++)
                if (!e->recipients[i].done)
                        pending[n++] = i;
        if (!qmgr_mark_done(m, pending, n, false)) {
                qmgr_message_defer(m);
                return;
        }
        _cleanup_free_ char *sender = log_escape(e->sender, strlen(e->sender));
        log_mail(LOG_INFO, m->id, LOG_FIELDS({ "SENDER", sender }, { "DELIVERY_STATUS", "expired" }),
                 "from=<%s>, status=expired, returned to sender", strempty(sender));
        qmgr_bounce_finish(m);
}

void qmgr_bounce_expire(QmgrMessage *m) {
        m->had_logs = true;
        bounce_call_fd(m, "Expire", expire_done);
}

static void warn_done(QmgrCall *c, sd_bus_message *reply, const char *error) {
        QmgrMessage *m = c->message;

        m->calls--;
        if (error)
                log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS, "delay warning not sent: %s", error);
        qmgr_message_defer(m);
}

/* The message goes to deferred once bounce has taken what it needs. */
void qmgr_bounce_warn(QmgrMessage *m) {
        bounce_call_fd(m, "Warn", warn_done);
}
