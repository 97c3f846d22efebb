/* bounce-bus.c: org.postbus.Bounce1 (src/shared/agent-bus.h): Append, Finish, Warn, Expire, Reject and
 * Remove, called by qmgr and pickup. Each handler reads and checks its arguments, waits behind a call on
 * the same message that is still sending notices, and answers once what it did is durable. */
#include <fcntl.h>
#include <sys/stat.h>

#include "address.h"
#include "agent-bus.h"
#include "bounce.h"
#include "log.h"
#include "verp.h"

/* At most this much of a message is read for a report: bounce_size_limit caps what is returned whole, and
 * this caps a header section. */
#define BOUNCE_READ_HEADERS_MAX (1024U * 1024U)

static int invalid(sd_bus_error *error, const char *what) {
        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "%s", what);
}

/* ---- the original message ---- */

typedef struct ContentReader {
        char *buf;
        size_t len, max;
        bool headers_only;
} ContentReader;

static int content_piece(const char *data, size_t len, void *userdata) {
        ContentReader *c = userdata;
        size_t n = MIN(len, c->max - c->len), from = c->len > 0 ? c->len - 1 : 0;

        memcpy(c->buf + c->len, data, n);
        c->len += n;
        if (c->len == c->max)
                return -ECANCELED;
        /* The header section ends at the first empty line: that is all a headers-only report needs. */
        if (c->headers_only && (memmem(c->buf + from, c->len - from, "\n\n", 2) || c->buf[0] == '\n'))
                return -ECANCELED;
        return 0;
}

/* The whole content when it may be returned whole (not over bounce_size_limit), else its headers. */
static int read_content(Bounce *b, ContentReader *c, uint64_t size, int (*foreach)(void *arg, ContentReader *c),
                        void *arg) {
        int r;

        c->headers_only = size > (uint64_t) b->daemon->config->bounce_size_limit;
        c->max = c->headers_only ? BOUNCE_READ_HEADERS_MAX : (size_t) size;
        c->len = 0;
        c->buf = malloc(c->max + 1);
        if (!c->buf)
                return -ENOMEM;
        if (c->max == 0)
                return 0;
        r = foreach(arg, c);
        return r == -ECANCELED ? 0 : r;
}

typedef struct QueueSource {
        int fd;
        const QueueEnvelope *envelope;
} QueueSource;

static int queue_foreach(void *arg, ContentReader *c) {
        QueueSource *q = arg;
        return queue_file_content_foreach(q->fd, q->envelope, content_piece, c);
}

/* The envelope and the message for a report, from the queue file qmgr passed. */
static int read_queue_message(Bounce *b, int fd, const char *id, QueueEnvelope **ret_env, BounceMessage *ret_msg,
                              sd_bus_error *error) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        ContentReader c = {};
        int r;

        r = queue_file_read(fd, &e);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_mail(LOG_ERR, id, LOG_NO_FIELDS, "the queue file passed for a delivery report is unreadable: %s",
                         strerror(-r));
                return invalid(error, "Unreadable queue file.");
        }
        r = read_content(b, &c, e->content_size, queue_foreach, &(QueueSource) { fd, e });
        if (r < 0) {
                free(c.buf);
                if (r == -ENOMEM)
                        return r;
                return invalid(error, "Unreadable queue file content.");
        }
        *ret_msg = (BounceMessage) {
                .queue_id = id,
                .sender = e->sender,
                .envid = queue_envelope_attr(e, "dsn_envid"),
                .ret = queue_envelope_attr(e, "dsn_ret"),
                .arrival_usec = e->arrival_usec,
                .content = c.buf,
                .content_size = c.len,
                .original_size = e->content_size,
        };
        *ret_env = TAKE_PTR(e);
        return 0;
}

/* The start of a call on one message: its queue file descriptor (when ret_fd is given) and its queue ID. A
 * call on a message whose notices are still being sent waits behind them. 0: go on; 1: parked (handler runs
 * on it again later); negative: the call fails. */
static int call_begin(Bounce *b, sd_bus_message *m, sd_bus_message_handler_t handler, int *ret_fd,
                      const char **ret_id, sd_bus_error *error) {
        int r;

        r = ret_fd ? sd_bus_message_read(m, "h", ret_fd) : 0;
        if (r >= 0)
                r = sd_bus_message_read_basic(m, 's', ret_id);
        if (r < 0)
                return r;
        if (ret_fd) {
                r = bus_check_peer_fd(m, *ret_fd, PEER_FD_QUEUE_FILE, "queue file", NULL, error);
                if (r < 0)
                        return r;
        }
        if (!queue_id_valid(*ret_id))
                return invalid(error, "Malformed queue ID.");
        if (bounce_busy(b, *ret_id))
                return bounce_park(b, m, handler, *ret_id);
        return 0;
}

/* ---- the logs ---- */

static int read_log(Bounce *b, BounceLogKind kind, const char *id, BounceLog **ret, sd_bus_error *error) {
        int r = bounce_log_read(b->log_fds[kind], id, ret);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY, "4.3.0 cannot read the %s log: %s",
                                         bounce_log_kind_to_string(kind), strerror(-r));
        return 0;
}

/* A failure to write is logged: the records are not kept, and the caller repeats the call. */
static int append_log(Bounce *b, BounceLogKind kind, const char *id, const BounceRecord *records, size_t n,
                      sd_bus_error *error) {
        const char *log = bounce_log_kind_to_string(kind);
        int r = bounce_log_append(b->log_fds[kind], id, records, n, false);

        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_mail(LOG_ERR, id, LOG_NO_FIELDS, "failed to append to the %s log: %s", log, strerror(-r));
                return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY, "4.3.0 cannot write the %s log: %s", log,
                                         strerror(-r));
        }
        return 0;
}

static int remove_logs(Bounce *b, const char *id, sd_bus_error *error) {
        int r;

        for (BounceLogKind k = 0; k < _BOUNCE_LOG_KIND_MAX; k++)
                if ((r = bounce_log_remove(b->log_fds[k], id)) < 0) {
                        log_mail(LOG_ERR, id, LOG_NO_FIELDS, "failed to remove the %s log: %s",
                                 bounce_log_kind_to_string(k), strerror(-r));
                        return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY, "4.3.0 cannot remove the logs: %s",
                                                 strerror(-r));
                }
        return 0;
}

/* Starts a job once its reports are added (r: how that went), and frees the content they were made of. */
static int job_launch(BounceJob **j, BounceMessage *msg, int r) {
        msg->content = mfree(msg->content);
        if (r < 0)
                return r;
        bounce_job_start(TAKE_PTR(*j));
        return 1;
}

/* A job of one report on records, of no log: the call is answered once its notices are in the queue. */
static int launch_report(Bounce *b, sd_bus_message *m, BounceJobKind job, const char *id, BounceReportKind kind,
                         BounceMessage *msg, const BounceRecord *records, size_t n) {
        _cleanup_(bounce_job_freep) BounceJob *j = NULL;
        int r;

        r = bounce_job_new(b, job, m, id, &j);
        if (r >= 0)
                r = bounce_job_add_report(j, kind, msg, records, n, -1);
        return job_launch(&j, msg, r);
}

/* ---- Append ---- */

static void records_free(BounceRecord *l, size_t n) {
        for (size_t i = 0; i < n; i++)
                bounce_record_done(l + i);
        free(l);
}

static int method_append(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bounce *b = userdata;
        BounceRecord *records = NULL;
        const char *id, *log;
        BounceLogKind kind;
        size_t n = 0;
        int r;

        r = call_begin(b, m, method_append, NULL, &id, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(m, "s", &log);
        if (r < 0)
                return r;
        kind = bounce_log_kind_from_string(log);
        if (kind < 0)
                return invalid(error, "Unknown log.");

        r = sd_bus_message_enter_container(m, 'a', "(sssssssst)");
        if (r < 0)
                return r;
        for (;;) {
                const char *f[8], *why;
                uint64_t t;

                r = sd_bus_message_read(m, "(sssssssst)", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &t);
                if (r <= 0)
                        break;
                if (n >= BOUNCE_RECORDS_PER_CALL_MAX) {
                        records_free(records, n);
                        return invalid(error, "Too many records.");
                }
                BounceRecord *nl = realloc(records, (n + 1) * sizeof(BounceRecord));
                if (!nl) {
                        records_free(records, n);
                        return -ENOMEM;
                }
                records = nl;
                BounceRecord *e = records + n++;
                *e = (BounceRecord) {
                        .recipient = strdup(f[0]), .original_recipient = strdup(f[1]), .orcpt = strdup(f[2]),
                        .notify = strdup(f[3]), .action = strdup(f[4]), .status = strdup(f[5]),
                        .relay = strdup(f[6]), .text = strdup(f[7]), .time_usec = t,
                };
                if (!e->recipient || !e->original_recipient || !e->orcpt || !e->notify || !e->action || !e->status ||
                    !e->relay || !e->text) {
                        records_free(records, n);
                        return -ENOMEM;
                }
                if (bounce_record_check(e, &why) < 0) {
                        records_free(records, n);
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Record %zu: %s.", n - 1, why);
                }
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                records_free(records, n);
                return r;
        }

        r = append_log(b, kind, id, records, n, error);
        records_free(records, n);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

/* ---- Finish ---- */

/* VERP mail (disable_verp_bounces = no): a failure report per recipient, each to the sender that names the
 * recipient, as qmgr made it for the delivery (from the queue file's recipient, before local's aliases). The
 * bounce log goes with the last of them, so that a call that fails half way is repeated in full. */
static int add_verp_reports(BounceJob *j, const BounceMessage *msg, const char *delims, const BounceRecord *records,
                            size_t n) {
        int r;

        for (size_t i = 0; i < n; i++) {
                const BounceRecord *rec = records + i;
                _cleanup_free_ char *sender = NULL;
                BounceMessage verp = *msg;

                r = verp_sender(msg->sender, delims,
                                isempty(rec->original_recipient) ? rec->recipient : rec->original_recipient, &sender);
                if (r < 0)
                        return r;
                verp.sender = sender;
                r = bounce_job_add_report(j, BOUNCE_REPORT_FAILURE, &verp, rec, 1,
                                          i + 1 == n ? (int) BOUNCE_LOG_KIND_BOUNCE : -1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int method_finish(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bounce *b = userdata;
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        _cleanup_(bounce_log_freep) BounceLog *bounced = NULL, *traced = NULL;
        _cleanup_(bounce_job_freep) BounceJob *j = NULL;
        _cleanup_free_ BounceRecord *latest = NULL;
        BounceMessage msg = {};
        const char *id;
        size_t n;
        int fd, r;

        r = call_begin(b, m, method_finish, &fd, &id, error);
        if (r != 0)
                return r;

        if ((r = read_log(b, BOUNCE_LOG_KIND_BOUNCE, id, &bounced, error)) < 0 ||
            (r = read_log(b, BOUNCE_LOG_KIND_TRACE, id, &traced, error)) < 0)
                return r;
        /* Nothing to tell: the queue file is not needed. */
        if (bounced->n_records == 0 && traced->n_records == 0) {
                r = remove_logs(b, id, error);
                return r < 0 ? r : sd_bus_reply_method_return(m, "as", 0);
        }

        r = read_queue_message(b, fd, id, &e, &msg, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        r = bounce_job_new(b, BOUNCE_JOB_FINISH, m, id, &j);
        if (r >= 0)
                r = bounce_log_latest(bounced, &latest, &n);
        const char *delims = queue_envelope_attr(e, VERP_ATTR);
        if (r >= 0 && delims && !isempty(msg.sender) && !b->daemon->config->disable_verp_bounces)
                r = add_verp_reports(j, &msg, delims, latest, n);
        else if (r >= 0)
                r = bounce_job_add_report(j, BOUNCE_REPORT_FAILURE, &msg, latest, n, BOUNCE_LOG_KIND_BOUNCE);
        latest = mfree(latest);
        if (r >= 0)
                r = bounce_log_latest(traced, &latest, &n);
        if (r >= 0)
                r = bounce_job_add_report(j, BOUNCE_REPORT_SUCCESS, &msg, latest, n, BOUNCE_LOG_KIND_TRACE);
        return job_launch(&j, &msg, r);
}

/* ---- Warn ---- */

static bool pending(const QueueEnvelope *e, const char *address) {
        for (size_t i = 0; i < e->n_recipients; i++)
                if (!e->recipients[i].done && streq(e->recipients[i].address, address))
                        return true;
        return false;
}

static int method_warn(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bounce *b = userdata;
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        _cleanup_(bounce_log_freep) BounceLog *deferred = NULL;
        _cleanup_free_ BounceRecord *latest = NULL;
        BounceMessage msg = {};
        const char *id;
        size_t n, k = 0;
        int fd, r;

        r = call_begin(b, m, method_warn, &fd, &id, error);
        if (r != 0)
                return r;

        r = read_log(b, BOUNCE_LOG_KIND_DEFER, id, &deferred, error);
        if (r < 0)
                return r;
        if (deferred->warned)
                return sd_bus_reply_method_return(m, "s", "");
        r = bounce_log_latest(deferred, &latest, &n);
        if (r < 0)
                return r;

        r = read_queue_message(b, fd, id, &e, &msg, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        /* Only recipients still waiting: one delivered since its deferral is no longer delayed. */
        for (size_t i = 0; i < n; i++)
                if (pending(e, latest[i].recipient) ||
                    (!isempty(latest[i].original_recipient) && pending(e, latest[i].original_recipient)))
                        latest[k++] = latest[i];
        return launch_report(b, m, BOUNCE_JOB_WARN, id, BOUNCE_REPORT_DELAY, &msg, latest, k);
}

/* ---- Expire ---- */

static int method_expire(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bounce *b = userdata;
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        _cleanup_(bounce_log_freep) BounceLog *deferred = NULL;
        _cleanup_free_ BounceRecord *latest = NULL, *out = NULL;
        uint64_t now = now_realtime_usec();
        const char *id;
        size_t n, k = 0;
        int fd, r;

        r = call_begin(b, m, method_expire, &fd, &id, error);
        if (r != 0)
                return r;

        r = queue_file_read(fd, &e);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return invalid(error, "Unreadable queue file.");
        r = read_log(b, BOUNCE_LOG_KIND_DEFER, id, &deferred, error);
        if (r < 0)
                return r;
        r = bounce_log_latest(deferred, &latest, &n);
        if (r < 0)
                return r;
        /* Each pending recipient fails with the reason it was last deferred for (one record per address it
         * expanded to), or with a plain expiry when it never was. Borrowed strings: out lives shorter. A
         * record matches at most two recipients (by its address and by its original one). */
        out = calloc(2 * n + e->n_recipients + 1, sizeof(BounceRecord));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_recipients; i++) {
                const QueueRecipient *q = e->recipients + i;
                bool found = false;

                if (q->done)
                        continue;
                for (size_t d = 0; d < n; d++) {
                        BounceRecord *rec = latest + d;
                        if (!streq(rec->recipient, q->address) && !streq(rec->original_recipient, q->address))
                                continue;
                        out[k] = *rec;
                        out[k].action = (char *) "failed";
                        out[k++].time_usec = now;
                        found = true;
                }
                if (!found)
                        out[k++] = (BounceRecord) {
                                .recipient = q->address,
                                .original_recipient = (char *) "",
                                .orcpt = q->orcpt ?: (char *) "",
                                .notify = q->notify ?: (char *) "",
                                .action = (char *) "failed",
                                .status = (char *) "4.7.0",
                                .relay = (char *) "none",
                                .text = (char *) "message expired",
                                .time_usec = now,
                        };
        }
        if (k == 0)
                return sd_bus_reply_method_return(m, NULL);
        r = append_log(b, BOUNCE_LOG_KIND_BOUNCE, id, out, k, error);
        if (r < 0)
                return r;
        log_mail(LOG_INFO, id, LOG_NO_FIELDS, "message expired: %zu recipient%s returned to the sender", k,
                 k == 1 ? "" : "s");
        return sd_bus_reply_method_return(m, NULL);
}

/* ---- Reject ---- */

typedef struct FdSource {
        int fd;
} FdSource;

static int fd_foreach(void *arg, ContentReader *c) {
        FdSource *s = arg;
        char buf[16384];
        uint64_t off = 0;

        for (;;) {
                ssize_t n = pread(s->fd, buf, sizeof buf, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return 0;
                off += (uint64_t) n;
                int r = content_piece(buf, (size_t) n, c);
                if (r < 0)
                        return r;
        }
}

static int method_reject(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bounce *b = userdata;
        _cleanup_free_ BounceRecord *records = NULL;
        _cleanup_strv_free_ char **recipients = NULL;
        const char *sender, *status, *text, *why;
        ContentReader c = {};
        uint64_t now = now_realtime_usec();
        struct stat st;
        size_t n = 0;
        int fd, r;

        r = sd_bus_message_read(m, "hs", &fd, &sender);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &recipients);
        if (r >= 0)
                r = sd_bus_message_read(m, "ss", &status, &text);
        if (r < 0)
                return r;
        if (!address_valid(sender))
                return invalid(error, "Invalid sender address.");
        r = bus_check_peer_fd(m, fd, PEER_FD_SEALED, "message content", &st, error);
        if (r < 0)
                return r;
        for (char **rc = recipients; rc && *rc; rc++)
                n++;
        if (n == 0 || n > BOUNCE_RECORDS_PER_CALL_MAX)
                return invalid(error, "No recipients, or too many.");
        records = calloc(n, sizeof(BounceRecord));
        if (!records)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                records[i] = (BounceRecord) {
                        .recipient = recipients[i], .original_recipient = (char *) "", .orcpt = (char *) "",
                        .notify = (char *) "", .action = (char *) "failed", .status = (char *) status,
                        .relay = (char *) "none", .text = (char *) text, .time_usec = now,
                };
                if (bounce_record_check(records + i, &why) < 0)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Recipient %zu: %s.", i, why);
        }
        if (status[0] == '2')
                return invalid(error, "A rejection needs a status of class 4 or 5.");

        r = read_content(b, &c, (uint64_t) st.st_size, fd_foreach, &(FdSource) { fd });
        if (r < 0) {
                free(c.buf);
                return r == -ENOMEM ? r : invalid(error, "Unreadable content.");
        }
        BounceMessage msg = {
                .sender = sender,
                .arrival_usec = now,
                .content = c.buf,
                .content_size = c.len,
                .original_size = (uint64_t) st.st_size,
        };
        return launch_report(b, m, BOUNCE_JOB_REJECT, NULL, BOUNCE_REPORT_FAILURE, &msg, records, n);
}

/* ---- Remove ---- */

static int method_remove(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bounce *b = userdata;
        const char *id;
        int r;

        r = call_begin(b, m, method_remove, NULL, &id, error);
        if (r != 0)
                return r;
        r = remove_logs(b, id, error);
        return r < 0 ? r : sd_bus_reply_method_return(m, NULL);
}

const sd_bus_vtable bounce_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Append",
                                SD_BUS_ARGS("s", queue_id, "s", log, "a(sssssssst)", records),
                                SD_BUS_NO_RESULT,
                                method_append,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Finish",
                                SD_BUS_ARGS("h", queue_fd, "s", queue_id),
                                SD_BUS_RESULT("as", notice_ids),
                                method_finish,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Warn",
                                SD_BUS_ARGS("h", queue_fd, "s", queue_id),
                                SD_BUS_RESULT("s", notice_id),
                                method_warn,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Expire",
                                SD_BUS_ARGS("h", queue_fd, "s", queue_id),
                                SD_BUS_NO_RESULT,
                                method_expire,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reject",
                                SD_BUS_ARGS("h", content_fd, "s", sender, "as", recipients, "s", status, "s", text),
                                SD_BUS_RESULT("s", notice_id),
                                method_reject,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Remove",
                                SD_BUS_ARGS("s", queue_id),
                                SD_BUS_NO_RESULT,
                                method_remove,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
