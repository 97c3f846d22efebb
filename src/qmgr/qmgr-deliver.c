/* qmgr-deliver.c: where each recipient goes (rewrite's Resolve, relocated_maps, the transport), what
 * qmgr decides itself (error, retry, discard), and the Deliver calls to the agents with their results.
 * Run by qmgr. */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>

#include "address.h"
#include "agent-bus.h"
#include "dsn.h"
#include "log.h"
#include "qmgr.h"
#include "verp.h"

/* One recipient's outcome: status is DELIVERY_STATUS_*. */
typedef struct QmgrResult {
        size_t index;
        const char *status, *dsn, *relay, *text;
} QmgrResult;

/* Done-marks are made durable in batches, off the event loop: the results of one message's recipients, and
 * of other messages, come within moments of each other, and one fdatasync per queue file for all that came
 * in QMGR_DONE_SYNC_USEC, on the sync thread (qmgr-sync.c), stands for one per result, each of which held
 * the event loop for a disk write. A kill
 * of qmgr loses no mark (they are in the page cache, where the next qmgr reads them); a crash of the
 * machine before the batch's sync delivers those recipients again, as it would those in flight. A file
 * removed before its batch's sync (every recipient done) leaves the batch: nothing is left to deliver
 * again, and most messages of a few recipients end within the window. */
#define QMGR_DONE_SYNC_USEC (20 * USEC_PER_MSEC)
#define QMGR_DONE_SYNC_MAX 64U

void qmgr_done_sync_flush(Qmgr *q) {
        for (size_t k = 0; k < q->n_done_sync; k++) {
                QmgrDoneSync *s = q->done_sync + k;
                if (qmgr_sync_submit(q, s->id, s->fd) >= 0)
                        continue;
                if (fdatasync(s->fd) < 0)
                        log_mail(LOG_ERR, s->id, LOG_NO_FIELDS,
                                 "failed to sync recipients marked done (a crash may deliver them again): %m");
                safe_close(s->fd);
        }
        q->n_done_sync = 0;
}

void qmgr_done_sync_forget(Qmgr *q, const char *id) {
        for (size_t k = 0; k < q->n_done_sync; k++)
                if (streq(q->done_sync[k].id, id)) {
                        safe_close(q->done_sync[k].fd);
                        q->done_sync[k] = q->done_sync[--q->n_done_sync];
                        return;
                }
}

static int on_done_sync(sd_event_source *s, uint64_t usec, void *userdata) {
        qmgr_done_sync_flush(userdata);
        return 0;
}

/* Takes fd, the open queue file of id (owned: else a duplicate, only when its batch has not got the file
 * yet), into the next batch's sync; false when it has to be synced now. */
static bool done_sync_later(Qmgr *q, const char *id, int fd, bool owned) {
        int r;

        for (size_t k = 0; k < q->n_done_sync; k++)
                if (streq(q->done_sync[k].id, id)) {
                        if (owned)
                                safe_close(fd);         /* the same file: its sync comes with the batch */
                        return true;
                }
        if (q->n_done_sync >= QMGR_DONE_SYNC_MAX)
                qmgr_done_sync_flush(q);
        if (!q->done_sync) {
                q->done_sync = calloc(QMGR_DONE_SYNC_MAX, sizeof(QmgrDoneSync));
                if (!q->done_sync)
                        return false;
        }
        if (!owned) {
                fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return false;
        }
        if (!q->done_sync_timer)
                r = sd_event_add_time_relative(q->daemon->event, &q->done_sync_timer, CLOCK_MONOTONIC,
                                               QMGR_DONE_SYNC_USEC, 0, on_done_sync, q);
        else if (q->n_done_sync > 0)
                r = 0;          /* armed by the first of the batch */
        else {
                r = sd_event_source_set_time_relative(q->done_sync_timer, QMGR_DONE_SYNC_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(q->done_sync_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0) {
                if (!owned)
                        safe_close(fd);
                return false;
        }
        QmgrDoneSync *s = q->done_sync + q->n_done_sync++;
        (void) snprintf(s->id, sizeof s->id, "%s", id);
        s->fd = fd;
        return true;
}

/* Writes the marks; syncs them unless the file goes next. */
static int marks_write(QmgrMessage *m, const size_t *indices, size_t n, bool sync) {
        _cleanup_close_ int owned_fd = -EBADF;
        bool owned = false;
        int fd, r = 0;

        fd = qmgr_message_fd(m, O_RDWR, &owned);
        if (fd < 0)
                return fd;
        if (owned)
                owned_fd = fd;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = queue_file_mark_done(fd, m->envelope->recipients[indices[i]].offset);
        if (r >= 0 && sync) {
                if (done_sync_later(m->qmgr, m->id, fd, owned))
                        TAKE_FD(owned_fd);
                else if (fdatasync(fd) < 0)
                        r = -errno;
        }
        if (r < 0)
                log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to mark recipients done: %s", strerror(-r));
        return r;
}

bool qmgr_mark_done(QmgrMessage *m, const size_t *indices, size_t n, bool file_goes_next) {
        bool last = queue_envelope_pending(m->envelope) == n;

        if (n == 0)
                return true;
        if (last && file_goes_next && m->action == QMGR_ACTION_NONE && !qmgr_bounce_logs_exist(m))
                /* Nothing is written: the file goes once this call returns, and a kill in between delivers
                 * them again, as a kill before the marks would. */
                m->marks_unwritten = true;
        /* When these were the last, the file goes next and a sync would be wasted: a crash in between
         * delivers them again, the same worst case as a crash before the mark. They stay pending when the
         * marks cannot be written: at worst delivered twice. */
        else if (marks_write(m, indices, n, !last) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                m->envelope->recipients[indices[i]].done = true;
        return true;
}

void qmgr_marks_write(QmgrMessage *m) {
        _cleanup_free_ size_t *indices = NULL;
        size_t n = 0;

        if (!m->marks_unwritten)
                return;
        m->marks_unwritten = false;
        indices = malloc(MAX(m->envelope->n_recipients, 1U) * sizeof(size_t));
        if (!indices) {
                log_oom();
                return;
        }
        for (size_t i = 0; i < m->envelope->n_recipients; i++)
                if (m->envelope->recipients[i].done)
                        indices[n++] = i;
        (void) marks_write(m, indices, n, true);
}

static void on_bounce_logged(QmgrMessage *m, const QmgrLogRecord *records, size_t n, bool ok) {
        _cleanup_free_ size_t *indices = NULL;

        /* Unless bounce has the record, the recipient is not done: the sender must hear of it. */
        if (!ok || n == 0)
                return;
        indices = malloc(n * sizeof(size_t));
        if (!indices) {
                log_oom();
                return;
        }
        for (size_t i = 0; i < n; i++)
                indices[i] = records[i].index;
        (void) qmgr_mark_done(m, indices, n, false);
}

static bool notify_has(const char *notify, const char *what) {
        return notify && strcasestr(notify, what);
}

/* Records outcomes: the journal record where qmgr decided (log), bounce's logs, and the queue file. */
static void apply_results(QmgrMessage *m, const QmgrResult *res, size_t n, bool log) {
        _cleanup_free_ QmgrLogRecord *bounced = NULL, *deferred = NULL, *traced = NULL;
        _cleanup_free_ size_t *sent = NULL;
        size_t n_bounced = 0, n_deferred = 0, n_traced = 0, n_sent = 0;

        bounced = malloc(MAX(n, 1U) * sizeof(QmgrLogRecord));
        deferred = malloc(MAX(n, 1U) * sizeof(QmgrLogRecord));
        traced = malloc(MAX(n, 1U) * sizeof(QmgrLogRecord));
        sent = malloc(MAX(n, 1U) * sizeof(size_t));
        if (!bounced || !deferred || !traced || !sent) {
                log_oom();
                return;         /* all stay pending */
        }
        for (size_t k = 0; k < n; k++) {
                const QmgrResult *r = res + k;
                const QueueRecipient *rc = m->envelope->recipients + r->index;

                if (log)
                        log_delivery_record(m->id, &(LogDelivery) {
                                .recipient = rc->address,
                                .relay = r->relay,
                                .dsn = r->dsn,
                                .status = r->status,
                                .text = r->text,
                                .arrival_usec = m->envelope->arrival_usec,
                                .active_usec = m->active_usec,
                        });
                if (streq(r->status, DELIVERY_STATUS_SENT) || streq(r->status, DELIVERY_STATUS_RELAYED) ||
                    streq(r->status, DELIVERY_STATUS_PASSED)) {
                        qmgr_signal_delivered(m->qmgr, m->id, rc->address, r->relay, r->dsn);
                        sent[n_sent++] = r->index;
                        /* "passed": the next hop took the NOTIFY over and reports success itself. */
                        if (notify_has(rc->notify, "SUCCESS") && !streq(r->status, DELIVERY_STATUS_PASSED))
                                traced[n_traced++] = (QmgrLogRecord) {
                                        r->index, streq(r->status, DELIVERY_STATUS_RELAYED) ? "relayed" : "delivered",
                                        r->dsn, r->relay, r->text };
                } else if (streq(r->status, DELIVERY_STATUS_BOUNCED)) {
                        qmgr_signal_bounced(m->qmgr, m->id, rc->address, r->dsn, r->text);
                        bounced[n_bounced++] = (QmgrLogRecord) { r->index, "failed", r->dsn, r->relay, r->text };
                } else {
                        uint64_t next = now_realtime_usec() + (uint64_t) qmgr_message_backoff(m) * USEC_PER_SEC;
                        qmgr_signal_deferred(m->qmgr, m->id, rc->address, r->dsn, r->text, next);
                        qmgr_index_set_reason(m->qmgr, m->id, r->text);
                        deferred[n_deferred++] = (QmgrLogRecord) { r->index, "delayed", r->dsn, r->relay, r->text };
                }
        }
        (void) qmgr_mark_done(m, sent, n_sent, n_traced == 0);
        qmgr_bounce_append(m, BOUNCE_LOG_TRACE, traced, n_traced, NULL);
        qmgr_bounce_append(m, BOUNCE_LOG_BOUNCE, bounced, n_bounced, on_bounce_logged);
        qmgr_bounce_append(m, BOUNCE_LOG_DEFER, deferred, n_deferred, NULL);
}

static void recipient_outcome(QmgrMessage *m, size_t i, const char *status, const char *relay, const char *dsn,
                              const char *why) {
        QmgrResult r = { i, status, dsn, relay, why };
        apply_results(m, &r, 1, true);
}

void qmgr_recipient_deferred(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why) {
        recipient_outcome(m, i, DELIVERY_STATUS_DEFERRED, relay, dsn, why);
}

void qmgr_recipient_bounced(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why) {
        char soft[DELIVERY_DSN_MAX];

        /* soft_bounce, as for the agents' failures: deferred, and the journal says SOFTBOUNCE (apply_results()
         * takes any status but the final ones for a deferral). */
        if (m->qmgr->daemon->config->soft_bounce) {
                (void) snprintf(soft, sizeof soft, "%s", dsn);
                (void) dsn_soft_bounce(soft);
                recipient_outcome(m, i, DELIVERY_LOG_SOFTBOUNCE, relay, soft, why);
                return;
        }
        qmgr_recipient_returned(m, i, relay, dsn, why);
}

void qmgr_recipient_returned(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why) {
        recipient_outcome(m, i, DELIVERY_STATUS_BOUNCED, relay, dsn, why);
}

void qmgr_recipient_sent(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why) {
        recipient_outcome(m, i, DELIVERY_STATUS_SENT, relay, dsn, why);
}

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
static void schedule_message(QmgrMessage *m);

static void resolve_failed(QmgrMessage *m, size_t i, const char *error) {
        char why[256];

        (void) snprintf(why, sizeof why, "delivery temporarily suspended: address resolver failure: %s", error);
        qmgr_recipient_deferred(m, i, "none", "4.3.0", why);
}

static int resolve_build(sd_bus_message *call, void *userdata) {
        ResolveCall *rc = userdata;

        /* With the sender, for sender_dependent_relayhost_maps. */
        return sd_bus_message_append(call, "ss", strempty(rc->message->envelope->sender),
                                     rc->message->envelope->recipients[rc->index].address);
}

/* "transport:nexthop" of the message's content_filter: 1 and the parts (the next hop NULL when empty), 0
 * when there is none or it is malformed (warned about: the message then takes its normal routes), -ENOMEM. */
static int content_filter_parse(const char *value, char **ret_transport, char **ret_nexthop) {
        const char *colon;

        if (isempty(value))
                return 0;
        colon = strchr(value, ':');
        if (colon == value || strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                                      (size_t) (colon ? colon - value : (ptrdiff_t) strlen(value))) {
                log_warning("Malformed content_filter \"%s\" in a queue file, ignoring it.", value);
                return 0;
        }
        *ret_transport = colon ? strndup(value, (size_t) (colon - value)) : strdup(value);
        *ret_nexthop = colon && colon[1] ? strdup(colon + 1) : NULL;
        if (!*ret_transport || (colon && colon[1] && !*ret_nexthop)) {
                *ret_transport = mfree(*ret_transport);
                *ret_nexthop = mfree(*ret_nexthop);
                return -ENOMEM;
        }
        return 1;
}

/* Recipient i goes to transport and nexthop, as rewrite answered. */
static void resolved(QmgrMessage *m, size_t i, const char *transport, const char *nexthop) {
        _cleanup_free_ char *filter_transport = NULL, *filter_nexthop = NULL;
        int r;

        /* content_filter (an after-queue filter): every recipient goes to the filter's transport and next hop
         * (an empty one keeps the recipient's), as Postfix's qmgr. */
        r = content_filter_parse(queue_envelope_attr(m->envelope, "content_filter"), &filter_transport,
                                 &filter_nexthop);
        if (r > 0) {
                transport = filter_transport;
                if (filter_nexthop)
                        nexthop = filter_nexthop;
        }
        /* Never around the filter: out of memory defers. */
        m->routes[i].transport = r < 0 ? NULL : strdup(transport);
        m->routes[i].nexthop = r < 0 ? NULL : strdup(nexthop);
        if (!m->routes[i].transport || !m->routes[i].nexthop) {
                m->routes[i].transport = mfree(m->routes[i].transport);
                resolve_failed(m, i, "out of memory");
        }
}

/* The question for the cache of rewrite's lasting answers: sender and recipient, each with its NUL, in buf
 * (NULL when they do not fit, and nothing is kept). */
static const char *resolve_question(QmgrMessage *m, size_t i, char *buf, size_t size, size_t *ret_size) {
        const char *sender = strempty(m->envelope->sender), *rcpt = m->envelope->recipients[i].address;
        size_t a = strlen(sender) + 1, b = strlen(rcpt) + 1;

        if (a + b > size)
                return NULL;
        memcpy(buf, sender, a);
        memcpy(buf + a, rcpt, b);
        *ret_size = a + b;
        return buf;
}

/* Keeps an answer that lasts until a reload (rewrite says so): transport and next hop, each with its NUL. */
static void resolve_keep(QmgrMessage *m, size_t i, const char *transport, const char *nexthop) {
        char question[2 * 1024], answer[2 * 1024];
        size_t qsize, tsize = strlen(transport) + 1, nsize = strlen(nexthop) + 1;

        if (tsize + nsize > sizeof answer || !resolve_question(m, i, question, sizeof question, &qsize))
                return;
        memcpy(answer, transport, tsize);
        memcpy(answer + tsize, nexthop, nsize);
        answer_cache_put(&m->qmgr->resolve_cache, question, qsize, answer, tsize + nsize);
}

static void on_resolve_reply(sd_bus_message *reply, const sd_bus_error *e, void *userdata) {
        ResolveCall *rc = userdata;
        QmgrMessage *m = rc->message;
        size_t i = rc->index;
        const char *transport, *nexthop, *address;
        int lasting = false, r;

        free(rc);
        m->resolving--;
        m->calls--;
        if (e)
                resolve_failed(m, i, e->message ?: e->name);
        else {
                r = sd_bus_message_read(reply, "sss", &transport, &nexthop, &address);
                if (r >= 0 && sd_bus_message_read(reply, "b", &lasting) < 0)
                        lasting = false;
                if (r < 0 || isempty(transport))
                        resolve_failed(m, i, "malformed reply");
                else {
                        if (lasting)
                                resolve_keep(m, i, transport, nexthop);
                        resolved(m, i, transport, nexthop);
                }
        }
        resolve_next(m);
}

/* Asks rewrite where each pending recipient goes, unless it gave a lasting answer (one from main.cf alone,
 * not from a table that takes effect as soon as it is rebuilt) to the same question within ANSWER_CACHE_USEC;
 * then dispatches. Flow control is the rewrite connection's window (bus_client_call()), shared by all
 * messages: however many recipients the active set holds, rewrite sees a bounded number of calls at once,
 * and each call's timeout runs only once it is sent. */
static void resolve_next(QmgrMessage *m) {
        Qmgr *q = m->qmgr;
        size_t n = m->envelope->n_recipients;

        while (m->next_resolve < n) {
                size_t i = m->next_resolve++, qsize, asize;
                char question[2 * 1024];
                ResolveCall *rc;
                int r;

                if (m->envelope->recipients[i].done)
                        continue;
                const char *known = resolve_question(m, i, question, sizeof question, &qsize)
                                            ? answer_cache_get(&q->resolve_cache, question, qsize, &asize)
                                            : NULL;
                if (known) {
                        resolved(m, i, known, known + strlen(known) + 1);
                        continue;
                }
                rc = malloc(sizeof(ResolveCall));
                if (!rc) {
                        resolve_failed(m, i, "out of memory");
                        continue;
                }
                *rc = (ResolveCall) { .message = m, .index = i };
                /* Idempotent: sent again if rewrite exits idle as the call reaches it. */
                r = bus_client_call(q->rewrite, "/org/postbus/Rewrite1", "org.postbus.Rewrite1", "ResolveSender",
                                    BUS_LOOKUP_TIMEOUT_USEC, BUS_CALL_IDEMPOTENT, resolve_build, on_resolve_reply,
                                    rc);
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
                schedule_message(m);
        }
}

/* An error or retry text may start with its enhanced status code, "5.1.1 ..." (RFC 3463). */
static void status_from_text(const char *text, char klass, char dsn[static 16], const char **ret_rest) {
        size_t len = strcspn(text, " ");

        (void) snprintf(dsn, 16, "%c.0.0", klass);
        *ret_rest = text;
        if (len >= 5 && len < 16 && text[0] == klass && text[1] == '.' && text[2] != '.' &&
            strspn(text + 2, "0123456789.") == len - 2 && strchr(text + 2, '.') &&
            strchr(text + 2, '.') < text + len - 1) {
                memcpy(dsn, text, len);
                dsn[len] = '\0';
                *ret_rest = text + len + strspn(text + len, " ");
        }
}

/* relocated_maps, as Postfix looks them up: user@domain, then (not in a pattern table) user for a local
 * domain and @domain. 1 and the new address, 0 when not relocated, negative errno when a table cannot be
 * read (the recipient is deferred, never delivered as if the table were empty). */
static int relocated_lookup(Qmgr *q, const char *address, char **ret) {
        _cleanup_free_ char *local = NULL, *domain = NULL, *key = NULL;
        int r;

        if (table_list_is_empty(q->relocated_maps))
                return 0;
        r = table_list_lookup(q->relocated_maps, address, ret);
        if (r != 0)
                return r;
        r = address_split(address, &local, &domain);
        if (r < 0)
                return r == -ENOMEM ? r : 0;
        if (domain && config_list_contains_domain(q->mydestination, domain)) {
                r = table_list_lookup_partial(q->relocated_maps, local, ret);
                if (r != 0)
                        return r;
        }
        if (!domain)
                return 0;
        if (asprintf(&key, "@%s", domain) < 0)
                return -ENOMEM;
        return table_list_lookup_partial(q->relocated_maps, key, ret);
}

/* Recipients of one transport and destination, gathered up to the recipient limit. */
typedef struct Group {
        QmgrTransport *transport;
        char *dest;
        size_t n;
        size_t *indices;
} Group;

static void group_flush(QmgrMessage *m, Group *g) {
        if (g->n == 0)
                return;
        if (qmgr_schedule_add(m, g->transport, g->dest, g->indices, g->n) < 0)
                for (size_t i = 0; i < g->n; i++)
                        qmgr_recipient_deferred(m, g->indices[i], "none", "4.3.0", "out of memory");
        g->n = 0;
}

static int group_add(QmgrMessage *m, Group **groups, size_t *n_groups, QmgrTransport *t, const char *dest,
                     size_t index) {
        Group *g = NULL;

        for (size_t k = 0; k < *n_groups; k++)
                if ((*groups)[k].transport == t && streq((*groups)[k].dest, dest))
                        g = *groups + k;
        if (!g) {
                Group *l = realloc(*groups, (*n_groups + 1) * sizeof(Group));
                if (!l)
                        return -ENOMEM;
                *groups = l;
                g = l + *n_groups;
                *g = (Group) { .transport = t, .dest = strdup(dest),
                               .indices = malloc(t->recipient_limit * sizeof(size_t)) };
                if (!g->dest || !g->indices) {
                        free(g->dest);
                        free(g->indices);
                        return -ENOMEM;
                }
                (*n_groups)++;
        }
        g->indices[g->n++] = index;
        /* VERP mail: each recipient has a sender of its own, so each is a delivery of its own (Postfix's
         * qmgr does the same). */
        if (g->n == g->transport->recipient_limit || queue_envelope_attr(m->envelope, VERP_ATTR))
                group_flush(m, g);
        return 0;
}

static char *lowercase(char *s) {
        for (char *p = s; p && *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return s;
}

/* Sends each resolved recipient its way: qmgr's own transports now, the agents' onto the schedule. */
static void schedule_message(QmgrMessage *m) {
        Qmgr *q = m->qmgr;
        _cleanup_free_ Group *groups = NULL;
        size_t n_groups = 0;

        if (m->action != QMGR_ACTION_NONE || m->controlled) {
                qmgr_message_finish(m);         /* asked for while resolving: no deliveries now */
                return;
        }

        m->calls++;     /* nothing below may finish the message under our feet */
        for (size_t i = 0; i < m->envelope->n_recipients; i++) {
                const QueueRecipient *rc = m->envelope->recipients + i;
                const QmgrRoute *route = m->routes + i;
                const char *rest;
                char dsn[16];
                QmgrTransport *t;

                if (rc->done || !route->transport)
                        continue;       /* done, or deferred for want of an answer from rewrite */
                _cleanup_free_ char *moved = NULL;
                int k = relocated_lookup(q, rc->address, &moved);
                if (k < 0) {
                        log_warning_errno(k, "relocated_maps: lookup of <%s> failed: %m", rc->address);
                        qmgr_recipient_deferred(m, i, "none", "4.3.0", "relocated_maps lookup failure");
                        continue;
                }
                if (k > 0) {
                        _cleanup_free_ char *why = NULL;
                        if (asprintf(&why, "user has moved to %s", moved) < 0)
                                qmgr_recipient_deferred(m, i, "none", "4.3.0", "out of memory");
                        else
                                qmgr_recipient_bounced(m, i, "none", "5.1.6", why);
                        continue;
                }
                t = qmgr_transport_find(q, route->transport);
                if (!t) {
                        _cleanup_free_ char *why = NULL;
                        if (asprintf(&why, "mail transport unavailable: no transport %s in master.cf",
                                     route->transport) < 0)
                                why = NULL;
                        qmgr_recipient_deferred(m, i, "none", "4.3.5", why ?: "mail transport unavailable");
                        continue;
                }
                switch (t->kind) {
                case MASTER_COMMAND_ERROR:
                        status_from_text(strempty(route->nexthop), '5', dsn, &rest);
                        qmgr_recipient_bounced(m, i, "none", dsn, isempty(rest) ? "mail for this destination is refused" : rest);
                        continue;
                case MASTER_COMMAND_RETRY:
                        status_from_text(strempty(route->nexthop), '4', dsn, &rest);
                        qmgr_recipient_deferred(m, i, "none", dsn, isempty(rest) ? "delivery temporarily suspended" : rest);
                        continue;
                case MASTER_COMMAND_DISCARD:
                        qmgr_recipient_sent(m, i, "none", "2.0.0", isempty(route->nexthop) ? "discarded" : route->nexthop);
                        continue;
                default:
                        break;
                }
                /* With one recipient per delivery the recipient is the destination: for local, that makes
                 * its concurrency limit one per user, as in Postfix. */
                _cleanup_free_ char *dest = lowercase(strdup(t->recipient_limit == 1 || isempty(route->nexthop)
                                                                     ? rc->address : route->nexthop));
                if (!dest || group_add(m, &groups, &n_groups, t, dest, i) < 0)
                        qmgr_recipient_deferred(m, i, "none", "4.3.0", "out of memory");
        }
        for (size_t k = 0; k < n_groups; k++) {
                group_flush(m, groups + k);
                free(groups[k].dest);
                free(groups[k].indices);
        }
        m->calls--;
        qmgr_schedule_run_all(q);
        qmgr_message_finish(m);
}

void qmgr_deliver_message(QmgrMessage *m) {
        if (m->resolved || m->resolving > 0)
                return;
        if (m->action != QMGR_ACTION_NONE || m->controlled) {
                m->resolved = true;     /* nothing to resolve: the action needs no routes */
                qmgr_message_finish(m);
                return;
        }
        if (!m->routes) {
                m->routes = calloc(MAX(m->envelope->n_recipients, 1U), sizeof(QmgrRoute));
                if (!m->routes) {
                        log_oom();
                        m->resolved = true;
                        qmgr_message_finish(m);
                        return;
                }
        }
        resolve_next(m);
}

static int deliver_build(QmgrCall *c, sd_bus_message *msg) {
        QmgrEntry *e = c->data;
        QmgrMessage *m = e->message;
        QmgrTransport *t = e->dest->transport;
        const QueueEnvelope *env = m->envelope;
        _cleanup_close_ int owned_fd = -EBADF;
        bool owned = false;
        int fd = -EBADF, r;

        /* The agent gets the file's bytes (DeliverInline), or a read-only descriptor (sd-bus passes a
         * duplicate): it cannot change the queue file. */
        if (!env->file) {
                fd = qmgr_message_fd(m, O_RDONLY, &owned);
                if (fd < 0)
                        return fd;
                if (owned)
                        owned_fd = fd;
        }
        /* VERP mail (one recipient per entry): the sender that names the recipient, for the agent's MAIL FROM,
         * Return-Path, $sender and anything it forwards. */
        _cleanup_free_ char *verp = NULL;
        const char *delims = queue_envelope_attr(env, VERP_ATTR);
        if (delims && e->n == 1 && !isempty(env->sender)) {
                r = verp_sender(env->sender, delims, env->recipients[e->indices[0]].address, &verp);
                if (r == -ENOMEM)
                        return r;
                /* Too long for an address (RFC 5321): the agents would refuse it, so the plain sender goes. */
                if (verp && !address_valid(verp)) {
                        log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS, "VERP sender too long, using the sender as it is");
                        verp = mfree(verp);
                }
        }
        r = env->file ? sd_bus_message_append_array(msg, 'y', env->file, (size_t) env->file_size)
                      : sd_bus_message_append(msg, "h", fd);
        if (r >= 0)
                r = sd_bus_message_append(msg, "ssss", m->id, verp ?: env->sender, t->name,
                                          strempty(m->routes[e->indices[0]].nexthop));
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "{ss}");
        for (char **o = t->options; r >= 0 && o[0] && o[1]; o += 2)
                r = sd_bus_message_append(msg, "{ss}", o[0], o[1]);
        char active[32], sent[32];
        (void) snprintf(active, sizeof active, "%" PRIu64, m->active_usec);
        (void) snprintf(sent, sizeof sent, "%" PRIu64, now_realtime_usec());
        if (r >= 0)
                r = sd_bus_message_append(msg, "{ss}{ss}", DELIVERY_OPTION_ACTIVE_USEC, active,
                                          DELIVERY_OPTION_SENT_USEC, sent);
        /* More for this destination waits, or mail for it comes back to back: the agent may keep its
         * connection for it. */
        if (r >= 0 && (e->dest->peers || qmgr_dest_back_to_back(e->dest)))
                r = sd_bus_message_append(msg, "{ss}", DELIVERY_OPTION_BACKLOG, "yes");
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(us)");
        for (size_t i = 0; r >= 0 && i < e->n; i++)
                r = sd_bus_message_append(msg, "(us)", (uint32_t) e->indices[i],
                                          m->envelope->recipients[e->indices[i]].address);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        return r;
}

/* Reads the agent's results for the entry's recipients; the ones it did not report stay deferred. */
static int read_results(QmgrEntry *e, sd_bus_message *reply, QmgrResult *res, size_t *n, bool *ret_success) {
        const char *status, *dsn, *relay, *text;
        uint32_t index;
        bool site_failure = true;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(ussss)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(ussss)", &index, &status, &dsn, &relay, &text)) > 0) {
                bool ours = false;
                for (size_t i = 0; i < e->n && !ours; i++)
                        ours = e->indices[i] == index;
                for (size_t i = 0; i < *n && ours; i++)
                        ours = res[i].index != index;
                if (!ours || (!streq(status, DELIVERY_STATUS_SENT) && !streq(status, DELIVERY_STATUS_RELAYED) &&
                              !streq(status, DELIVERY_STATUS_PASSED) && !streq(status, DELIVERY_STATUS_BOUNCED) &&
                              !streq(status, DELIVERY_STATUS_DEFERRED))) {
                        log_mail(LOG_WARNING, e->message->id, LOG_NO_FIELDS,
                                 "bad delivery result for recipient %" PRIu32 ", ignoring", index);
                        continue;
                }
                res[(*n)++] = (QmgrResult) { index, status, dsn, relay, text };
                /* Only trouble with the destination itself counts against it: 4.4.x (network, routing). */
                if (!streq(status, DELIVERY_STATUS_DEFERRED) || strncmp(dsn, "4.4.", 4) != 0)
                        site_failure = false;
        }
        if (r < 0)
                return r;
        *ret_success = !site_failure || *n == 0;
        return sd_bus_message_exit_container(reply);
}

static void deliver_done(QmgrCall *c, sd_bus_message *reply, const char *error) {
        QmgrEntry *e = c->data;
        QmgrMessage *m = e->message;
        QmgrDest *d = e->dest;
        QmgrTransport *t = d->transport;
        _cleanup_free_ QmgrResult *res = calloc(e->n, sizeof(QmgrResult));
        _cleanup_free_ char *why = NULL;
        bool success = false;
        size_t n = 0;
        int r = 0;
        /* Before anything else: it may hold the message, and tells whether the agent is at fault. */
        QmgrAgentOutcome outcome = qmgr_agent_ended(e, c);
        const bool transport_was_full = t->busy >= t->process_limit;

        if (!res) {
                log_oom();
                error = "out of memory";
        }
        if (!error) {
                r = read_results(e, reply, res, &n, &success);
                if (r < 0) {
                        log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "malformed delivery results: %s", strerror(-r));
                        error = "malformed delivery results";
                } else if ((r = qmgr_hosts_read(t->qmgr, t->name, d->name, reply)) < 0)
                        log_warning_errno(r, "Bad host list from %s, ignoring: %m", t->name);
        }
        if (error && c->corrupt) {
                /* The file changed under qmgr (truncated, overwritten): the recipients stay pending and
                 * qmgr_message_finish() reads the file again; the destination is not to blame. */
                m->corrupt = true;
                success = true;
        } else if (error) {
                /* The outcome is unknown: the worst case of a retry is a duplicate. */
                if (asprintf(&why, "delivery temporarily suspended: transport %s: %s", t->name, error) < 0)
                        why = NULL;
                for (size_t i = 0; i < e->n; i++)
                        qmgr_recipient_deferred(m, e->indices[i], "none", "4.3.0", why ?: error);
                success = false;
        } else {
                apply_results(m, res, n, false);
                if (n < e->n)
                        log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS, "%zu recipients without a result from %s",
                                 e->n - n, t->name);
        }

        t->busy--;
        d->busy--;
        m->calls--;
        qmgr_entry_free(e);
        qmgr_message_finish(m);                 /* m may be gone now */
        /* An agent that is down or died is no fault of the destination's (qmgr-agent.c). */
        if (outcome == QMGR_AGENT_ANSWERED)
                qmgr_dest_feedback(d, success, why ?: (n > 0 ? res[0].text : error));
        qmgr_schedule_run_dest(d, transport_was_full);
        qmgr_dest_release(d);                   /* d may be gone now */
        qmgr_agent_after(t->qmgr, t->agent_id);
}

void qmgr_deliver_start(QmgrEntry *e) {
        QmgrTransport *t = e->dest->transport;
        Qmgr *q = t->qmgr;

        t->busy++;
        e->dest->busy++;
        e->message->calls++;
        qmgr_agent_started(e);
        qmgr_call(t->agent, &(QmgrCall) {
                .message = e->message,
                .path = DELIVERY_OBJECT_PATH,
                .interface = DELIVERY_INTERFACE,
                .member = e->message->envelope->file ? "DeliverInline" : "Deliver",
                .build = deliver_build,
                .done = deliver_done,
                .timeout_usec = (uint64_t) q->daemon->config->daemon_timeout * USEC_PER_SEC,
                .data = e,
                .stats = qmgr_agent_stats(t),
        });
}
