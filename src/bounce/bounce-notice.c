/* bounce-notice.c: who gets which report (the sender, or the postmaster for mail from <>, copies as
 * notify_classes asks, nothing for mail from double_bounce_sender), and the jobs that send them as new
 * messages through cleanup's Submit, one after the other, before the Bounce1 call is answered. */
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>

#include "bounce.h"
#include "format-util.h"
#include "io-util.h"
#include "log.h"

#define CLEANUP_OBJECT "/org/postbus/Cleanup1"
#define CLEANUP_INTERFACE "org.postbus.Cleanup1"
/* cleanup answers once the notice is on disk: this is long enough for a loaded disk, short enough that the
 * caller's own timeout has not run out first. */
#define BOUNCE_SUBMIT_TIMEOUT_USEC (60 * USEC_PER_SEC)

typedef struct BounceNotice {
        char *content;
        size_t size;
        const char *sender;             /* of the notice: "" or double_bounce_sender (the config's) */
        char *to;
        const char *what;               /* "sender non-delivery notification", for the journal */
        bool critical;                  /* the call fails when it cannot be queued */
        int remove_log;                 /* BounceLogKind removed once it is queued, or -1 */
        bool mark_warned;               /* the defer log records the warning once it is queued */
} BounceNotice;

struct BounceJob {
        Bounce *bounce;
        BounceJob *prev, *next;
        BounceJobKind kind;
        sd_bus_message *request;
        char queue_id[QUEUE_ID_SIZE];   /* "" for Reject */
        BounceNotice *notices;
        size_t n_notices, current;
        char **ids;                     /* queue IDs of the notices queued so far */
        size_t n_ids;
        char *main_id;                  /* the sender's notice (or its replacement for mail from <>) */
        bool warned;
        sd_bus_slot *slot;
};

struct BounceParked {
        BounceParked *next;
        sd_bus_message *m;
        sd_bus_message_handler_t handler;
        char queue_id[QUEUE_ID_SIZE];
};

bool bounce_is_double_bounce_sender(Bounce *b, const char *addr) {
        const Config *c = b->daemon->config;
        const char *dbs = c->double_bounce_sender;
        size_t n = strlen(strempty(dbs));

        if (isempty(addr) || n == 0)
                return false;
        if (strcaseeq(addr, dbs))
                return true;
        /* cleanup qualified the bare name with $myorigin */
        if (strchr(dbs, '@') || strncasecmp(addr, dbs, n) != 0 || addr[n] != '@')
                return false;
        return strcaseeq(addr + n + 1, c->myorigin) || strcaseeq(addr + n + 1, c->myhostname);
}

/* ---- jobs ---- */

int bounce_job_new(Bounce *b, BounceJobKind kind, sd_bus_message *request, const char *queue_id, BounceJob **ret) {
        BounceJob *j = calloc(1, sizeof(BounceJob));

        if (!j)
                return -ENOMEM;
        j->bounce = b;
        j->kind = kind;
        j->request = sd_bus_message_ref(request);
        (void) snprintf(j->queue_id, sizeof j->queue_id, "%s", strempty(queue_id));
        j->next = b->jobs;
        if (j->next)
                j->next->prev = j;
        b->jobs = j;
        daemon_busy_inc(b->daemon);
        *ret = j;
        return 0;
}

BounceJob *bounce_job_free(BounceJob *j) {
        if (!j)
                return NULL;
        if (j->prev)
                j->prev->next = j->next;
        else
                j->bounce->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        for (size_t i = 0; i < j->n_notices; i++) {
                free(j->notices[i].content);
                free(j->notices[i].to);
        }
        free(j->notices);
        strv_free(j->ids);
        free(j->main_id);
        sd_bus_slot_unref(j->slot);
        sd_bus_message_unref(j->request);
        daemon_busy_dec(j->bounce->daemon);
        free(j);
        return NULL;
}

/* The job is over (answered or not): calls for its message that waited may run now. */
static void job_end(BounceJob *j) {
        Bounce *b = j->bounce;
        char id[QUEUE_ID_SIZE];

        memcpy(id, j->queue_id, sizeof id);
        bounce_job_free(j);
        if (id[0])
                bounce_unpark(b, id);
}

static void job_fail(BounceJob *j, const char *text) {
        (void) sd_bus_reply_method_errorf(j->request, POSTBUS_ERROR_TEMPORARY, "4.3.0 %s", text);
        job_end(j);
}

static int make_message_id(const char *myhostname, char **ret) {
        char id[QUEUE_ID_SIZE];
        int r;

        r = queue_id_new(id);
        if (r < 0)
                return r;
        return format_message_id(time(NULL), id, "bounce", myhostname, ret);
}

static int job_add_notice(BounceJob *j, BounceReport *report, const char *sender, const char *to, const char *what,
                          bool critical, int remove_log) {
        _cleanup_free_ char *mid = NULL, *content = NULL, *copy = NULL;
        size_t size;
        int r;

        r = make_message_id(report->myhostname, &mid);
        if (r < 0)
                return r;
        report->to = to;
        report->message_id = mid;
        r = bounce_report_compose(report, &content, &size);
        if (r < 0)
                return r;
        copy = strdup(to);
        if (!copy)
                return -ENOMEM;
        BounceNotice *n = realloc(j->notices, (j->n_notices + 1) * sizeof(BounceNotice));
        if (!n)
                return -ENOMEM;
        j->notices = n;
        n[j->n_notices++] = (BounceNotice) {
                .content = TAKE_PTR(content),
                .size = size,
                .sender = sender,
                .to = TAKE_PTR(copy),
                .what = what,
                .critical = critical,
                .remove_log = remove_log,
                .mark_warned = critical && j->kind == BOUNCE_JOB_WARN,
        };
        return 0;
}

static const char *const notice_names[_BOUNCE_REPORT_KIND_MAX][2] = {
        [BOUNCE_REPORT_FAILURE] = { "sender non-delivery notification", "postmaster non-delivery notification" },
        [BOUNCE_REPORT_DELAY] = { "sender delay notification", "postmaster delay notification" },
        [BOUNCE_REPORT_SUCCESS] = { "sender delivery status notification", "postmaster delivery status notification" },
};

int bounce_job_add_report(BounceJob *j, BounceReportKind kind, const BounceMessage *msg, const BounceRecord *records,
                          size_t n, int log) {
        Bounce *b = j->bounce;
        const Config *c = b->daemon->config;
        _cleanup_free_ BounceRecord *chosen = NULL;
        _cleanup_free_ char *sender = log_escape(msg->sender, strlen(msg->sender));
        const char *qid = msg->queue_id ?: "NOQUEUE";
        size_t k = 0;
        int r;

        chosen = calloc(MAX(n, (size_t) 1), sizeof(BounceRecord));
        if (!chosen || !sender)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (bounce_record_notify_allows(records + i, kind))
                        chosen[k++] = records[i];
        if (k == 0)
                return 0;       /* NOTIFY said no, for each of them */

        const LogField *fields = LOG_FIELDS({ "SENDER", sender });
        /* No notice about a notice to the postmaster: that is how loops start. */
        if (bounce_is_double_bounce_sender(b, msg->sender)) {
                if (kind == BOUNCE_REPORT_FAILURE)
                        log_mail(LOG_WARNING, qid,
                                 LOG_FIELDS({ "SENDER", sender }, { "MESSAGE_ID", POSTBUS_MESSAGE_NOTICE_DISCARDED }),
                                 "undeliverable postmaster notification discarded");
                else
                        log_mail(LOG_INFO, qid, fields, "not sending a %s for a postmaster notification",
                                 notice_names[kind][0] + STRLEN("sender "));
                return 0;
        }

        BounceReport report = {
                .kind = kind,
                .myhostname = c->myhostname,
                .queue_id = msg->queue_id,
                .sender = msg->sender,
                .envid = msg->envid,
                .ret = msg->ret,
                .arrival_usec = msg->arrival_usec,
                .now_usec = now_realtime_usec(),
                .records = chosen,
                .n_records = k,
                .content = msg->content,
                .content_size = msg->content_size,
                .original_size = msg->original_size,
                .size_limit = (uint64_t) c->bounce_size_limit,
        };
        uint64_t lifetime = (uint64_t) (isempty(msg->sender) ? c->bounce_queue_lifetime : c->maximal_queue_lifetime);
        report.retry_until_usec = msg->arrival_usec + lifetime * USEC_PER_SEC;

        if (isempty(msg->sender)) {
                /* The message was itself a notification: the report cannot go back to it. */
                if (kind == BOUNCE_REPORT_SUCCESS) {
                        log_mail(LOG_INFO, qid, fields, "not sending a delivery status notification for mail from <>");
                        return 0;
                }
                if (!(b->notify_classes & BOUNCE_CLASS_2BOUNCE)) {
                        log_mail(LOG_WARNING, qid,
                                 LOG_FIELDS({ "SENDER", sender }, { "MESSAGE_ID", POSTBUS_MESSAGE_NOTICE_DISCARDED }),
                                 "not sending a %s for mail from <> (notify_classes has no 2bounce); discarded",
                                 notice_names[kind][0] + STRLEN("sender "));
                        return 0;
                }
                report.postmaster = true;
                return job_add_notice(j, &report, c->double_bounce_sender, c->double_bounce_notice_recipient,
                                      notice_names[kind][1], true, log);
        }

        r = job_add_notice(j, &report, "", msg->sender, notice_names[kind][0], true, log);
        if (r < 0)
                return r;
        const char *copy_to = kind == BOUNCE_REPORT_FAILURE && (b->notify_classes & BOUNCE_CLASS_BOUNCE)
                                      ? c->bounce_notice_recipient
                            : kind == BOUNCE_REPORT_DELAY && (b->notify_classes & BOUNCE_CLASS_DELAY)
                                      ? c->delay_notice_recipient
                                      : NULL;
        if (isempty(copy_to))
                return 0;
        report.postmaster = true;
        /* Only a copy: when it cannot be queued, the sender's report is not sent again for it. */
        return job_add_notice(j, &report, c->double_bounce_sender, copy_to, notice_names[kind][1], false, -1);
}

/* ---- sending ---- */

static void job_next(BounceJob *j);

/* What is to happen once a notice is in the queue (or refused for good): -errno when that fails. */
static int notice_done(BounceJob *j, BounceNotice *n) {
        Bounce *b = j->bounce;
        int r;

        if (n->remove_log >= 0 && j->queue_id[0]) {
                r = bounce_log_remove(b->log_fds[n->remove_log], j->queue_id);
                if (r < 0)
                        return log_error_errno(r, "%s: failed to remove the %s log: %m", j->queue_id,
                                               bounce_log_kind_to_string(n->remove_log));
        }
        if (n->mark_warned && !j->warned && j->queue_id[0]) {
                r = bounce_log_append(b->log_fds[BOUNCE_LOG_KIND_DEFER], j->queue_id, NULL, 0, true);
                if (r < 0)
                        return log_error_errno(r, "%s: failed to note the delay warning in the defer log: %m",
                                               j->queue_id);
                j->warned = true;
        }
        return 0;
}

/* A notice that could not be queued for now: a critical one fails the call (the caller repeats it), any
 * other is given up. */
static void notice_failed(BounceJob *j, const char *why) {
        BounceNotice *n = j->notices + j->current;
        _cleanup_free_ char *text = log_escape(why, strlen(why));

        log_mail(n->critical ? LOG_ERR : LOG_WARNING, j->queue_id[0] ? j->queue_id : "NOQUEUE", LOG_NO_FIELDS,
                 "cannot queue the %s to <%s>: %s%s", n->what, n->to, strna(text),
                 n->critical ? "; the request fails, to be repeated" : "; not sent");
        if (n->critical) {
                job_fail(j, "cannot queue the notification now");
                return;
        }
        j->current++;
        job_next(j);
}

static int on_submit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BounceJob *j = userdata;
        BounceNotice *n = j->notices + j->current;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *qid = j->queue_id[0] ? j->queue_id : "NOQUEUE", *id;
        _cleanup_free_ char *to = log_escape(n->to, strlen(n->to));

        j->slot = sd_bus_slot_unref(j->slot);
        if (e && sd_bus_error_has_names(e, POSTBUS_ERROR_REJECTED, POSTBUS_ERROR_INVALID_ARGS)) {
                /* It would be refused again and again: a lost notice, said loudly, not a loop. */
                _cleanup_free_ char *text = log_escape(strna(e->message), strlen(strna(e->message)));
                log_mail(LOG_ERR, qid,
                         LOG_FIELDS({ "RECIPIENT", to }, { "MESSAGE_ID", POSTBUS_MESSAGE_NOTICE_DISCARDED }),
                         "cleanup refused the %s to <%s>: %s; discarded", n->what, strna(to), strna(text));
        } else if (e || sd_bus_message_read(reply, "s", &id) < 0 || !queue_id_valid(id)) {
                notice_failed(j, e ? strna(e->message) : "a malformed answer from cleanup");
                return 0;
        } else {
                log_mail(LOG_INFO, qid, LOG_FIELDS({ "NOTICE_QUEUE_ID", id }, { "RECIPIENT", to }), "%s: %s",
                         n->what, id);
                char **l = realloc(j->ids, (j->n_ids + 2) * sizeof(char *));
                if (!l) {
                        job_fail(j, "out of memory");
                        return 0;
                }
                j->ids = l;
                l[j->n_ids] = strdup(id);
                if (!l[j->n_ids]) {
                        job_fail(j, "out of memory");
                        return 0;
                }
                l[++j->n_ids] = NULL;
                if (n->critical && !j->main_id && !(j->main_id = strdup(id))) {
                        job_fail(j, "out of memory");
                        return 0;
                }
        }
        if (notice_done(j, n) < 0) {
                job_fail(j, "cannot update the delivery status logs");
                return 0;
        }
        j->current++;
        job_next(j);
        return 0;
}

static int notice_submit(BounceJob *j, sd_bus *bus) {
        BounceNotice *n = j->notices + j->current;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        /* cleanup takes a sealed memory file, as smtpd hands it every message. */
        fd = memfd_create("postbus-bounce", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        r = write_full(fd, n->content, n->size);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        r = sd_bus_message_new_method_call(bus, &m, NULL, CLEANUP_OBJECT, CLEANUP_INTERFACE, "Submit");
        if (r >= 0)
                r = sd_bus_message_append(m, "hs", fd, n->sender);
        if (r >= 0)
                r = sd_bus_message_append(m, "a(sss)", 1, n->to, "", "");
        if (r >= 0)
                r = sd_bus_message_append(m, "a{ss}", 1, "origin", "bounce");
        if (r >= 0)
                r = sd_bus_call_async(bus, &j->slot, m, on_submit_reply, j, BOUNCE_SUBMIT_TIMEOUT_USEC);
        return r;
}

static int on_cleanup_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BounceJob *j = userdata;

        j->slot = sd_bus_slot_unref(j->slot);
        if (sd_bus_is_ready(sd_bus_message_get_bus(reply)) <= 0) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                notice_failed(j, e && e->message ? e->message : "cannot connect to cleanup");
                return 0;
        }
        job_next(j);
        return 0;
}

static void job_reply(BounceJob *j) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Bounce *b = j->bounce;
        int r = 0;

        switch (j->kind) {
        case BOUNCE_JOB_FINISH:
                /* Every log goes: the message is done. */
                for (BounceLogKind k = 0; k < _BOUNCE_LOG_KIND_MAX && r >= 0; k++)
                        r = bounce_log_remove(b->log_fds[k], j->queue_id);
                if (r < 0) {
                        log_error_errno(r, "%s: failed to remove the delivery status logs: %m", j->queue_id);
                        job_fail(j, "cannot remove the delivery status logs");
                        return;
                }
                r = sd_bus_message_new_method_return(j->request, &m);
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, j->ids);
                if (r >= 0)
                        r = sd_bus_send(NULL, m, NULL);
                break;
        case BOUNCE_JOB_WARN:
                /* Once per message, also when nobody was to be told. */
                if (!j->warned && (r = bounce_log_append(b->log_fds[BOUNCE_LOG_KIND_DEFER], j->queue_id, NULL, 0,
                                                         true)) < 0) {
                        log_error_errno(r, "%s: failed to note the delay warning in the defer log: %m", j->queue_id);
                        job_fail(j, "cannot update the defer log");
                        return;
                }
                r = sd_bus_reply_method_return(j->request, "s", strempty(j->main_id));
                break;
        default:
                r = sd_bus_reply_method_return(j->request, "s", strempty(j->main_id));
                break;
        }
        if (r < 0)
                log_debug_errno(r, "Failed to answer a request, ignoring: %m");
        job_end(j);
}

static void job_next(BounceJob *j) {
        while (j->current < j->n_notices) {
                sd_bus *bus;
                int r;

                r = bus_client_get_ready(j->bounce->cleanup, on_cleanup_ready, j, &j->slot, &bus);
                if (r == 0)
                        return;         /* on_cleanup_ready() goes on */
                if (r >= 0)
                        r = notice_submit(j, bus);
                if (r >= 0)
                        return;         /* on_submit_reply() goes on */
                /* notice_failed() either ends the job or goes on with the next notice itself. */
                notice_failed(j, r == -EAGAIN ? "cleanup is not reachable, waiting to try again" : strerror(-r));
                return;
        }
        job_reply(j);
}

void bounce_job_start(BounceJob *j) {
        job_next(j);
}

/* ---- calls that wait for a job on the same message ---- */

bool bounce_busy(Bounce *b, const char *queue_id) {
        for (BounceJob *j = b->jobs; j; j = j->next)
                if (j->queue_id[0] && streq(j->queue_id, queue_id))
                        return true;
        return false;
}

int bounce_park(Bounce *b, sd_bus_message *m, sd_bus_message_handler_t handler, const char *queue_id) {
        BounceParked *p = calloc(1, sizeof(BounceParked)), **tail = &b->parked;

        if (!p)
                return -ENOMEM;
        p->m = sd_bus_message_ref(m);
        p->handler = handler;
        (void) snprintf(p->queue_id, sizeof p->queue_id, "%s", queue_id);
        while (*tail)
                tail = &(*tail)->next;
        *tail = p;
        return 1;
}

void bounce_unpark(Bounce *b, const char *queue_id) {
        /* A call run here may end a job at once and come back here: the outer loop does the work. */
        if (b->unparking)
                return;
        b->unparking = true;
        for (BounceParked **pp = &b->parked; *pp && !bounce_busy(b, queue_id);) {
                BounceParked *p = *pp;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                int r;

                if (!streq(p->queue_id, queue_id)) {
                        pp = &p->next;
                        continue;
                }
                *pp = p->next;
                r = sd_bus_message_rewind(p->m, true);
                if (r >= 0)
                        r = p->handler(p->m, b, &error);
                if (r < 0 || sd_bus_error_is_set(&error)) {
                        if (sd_bus_error_is_set(&error))
                                (void) sd_bus_reply_method_error(p->m, &error);
                        else
                                (void) sd_bus_reply_method_errno(p->m, r, NULL);
                }
                sd_bus_message_unref(p->m);
                free(p);
                pp = &b->parked;        /* the handler may have parked or finished others */
        }
        b->unparking = false;
}

void bounce_parked_free_all(Bounce *b) {
        while (b->parked) {
                BounceParked *p = b->parked;
                b->parked = p->next;
                sd_bus_message_unref(p->m);
                free(p);
        }
}
