/* cleanup-job.c: the course of one submission in the cleanup process, from the Submit call to its answer: the
 * job, its rounds of rewrite calls, canonical maps and masquerading, and the queue file. The header pass,
 * virtual aliases and the failure answers have files of their own (cleanup-job-headers.c and so on). */
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "address.h"
#include "address-map.h"
#include "cleanup-maps.h"
#include "cleanup.h"
#include "io-util.h"
#include "log.h"
#include "string-util.h"

typedef struct RewriteCall {
        CleanupJob *job;
        char **slot;
} RewriteCall;

CleanupJob *cleanup_job_free(CleanupJob *j) {
        if (!j)
                return NULL;
        if (j->mapped)
                (void) munmap(j->content, j->size);
        else if (!j->borrowed)
                free(j->content);
        sd_bus_message_unref(j->request);
        free(j->sender);
        for (size_t i = 0; i < j->n_recipients; i++)
                free(j->recipients[i]);
        free(j->recipients);
        strv_free(j->attrs);
        strv_free(j->dsn_notify);
        strv_free(j->dsn_orcpt);
        free(j->drops);
        for (size_t i = 0; i < j->n_edit_texts; i++)
                free(j->edit_texts[i]);
        free(j->edit_texts);
        free(j->queue);
        cleanup_job_header_addresses_free(j);
        free(j->hold);
        free(j->sync.file);
        strv_free(j->prepend);
        free(j->filter);
        free(j->reject);
        free(j->defer);
        cleanup_virtual_free(j);
        safe_close(j->sync.fd);
        free(j->message_id);
        j->cleanup->n_jobs--;
        daemon_busy_dec(j->cleanup->daemon);
        free(j);
        return NULL;
}

/* ---- rewrite rounds ---------------------------------------------------------------------------- */

static void job_pump(CleanupJob *j);

static void job_round_done(CleanupJob *j) {
        if (j->pending > 0 || j->queue_next < j->n_queue)
                return;
        j->n_queue = j->queue_next = 0;
        if (j->reject || j->defer) {
                cleanup_job_reply_error(j);
                return;
        }
        j->next(j);
}

static void on_rewrite_reply(sd_bus_message *reply, const sd_bus_error *e, void *userdata) {
        RewriteCall *call = userdata;
        CleanupJob *j = call->job;
        const char *out;

        j->pending--;
        if (e) {
                if (sd_bus_error_has_name(e, POSTBUS_ERROR_INVALID_ARGS)) {
                        _cleanup_free_ char *escaped = log_escape(*call->slot, strlen(*call->slot));
                        if (!j->reject)
                                (void) cleanup_job_reject(j, "553 5.1.3 Bad address syntax: <%s>", strempty(escaped));
                } else {
                        log_warning("rewrite did not answer: %s", e->message ?: e->name);
                        cleanup_job_defer(j, "451 4.3.0 Error: address rewriting failed, try again later");
                }
        } else if (sd_bus_message_read(reply, "s", &out) < 0 || !address_valid(out)) {
                cleanup_job_defer(j, "451 4.3.0 Error: malformed answer from rewrite");
        } else {
                char *copy = strdup(out);
                if (!copy)
                        cleanup_job_defer(j, "451 4.3.0 Error: out of memory");
                else {
                        answer_cache_put(&j->cleanup->rewrite_cache, *call->slot, strlen(*call->slot) + 1, out,
                                         strlen(out) + 1);
                        free(*call->slot);
                        *call->slot = copy;
                }
        }
        free(call);
        job_pump(j);
        job_round_done(j);
}

void cleanup_job_rewrite(CleanupJob *j, char **slot) {
        const char *known;
        size_t size;

        if (isempty(*slot) || j->defer || j->reject)
                return;
        known = answer_cache_get(&j->cleanup->rewrite_cache, *slot, strlen(*slot) + 1, &size);
        if (known) {
                char *copy = strdup(known);
                if (!copy) {
                        cleanup_job_defer(j, "451 4.3.0 Error: out of memory");
                        return;
                }
                free(*slot);
                *slot = copy;
                return;
        }
        char ***q = realloc(j->queue, (j->n_queue + 1) * sizeof(char **));
        if (!q) {
                cleanup_job_defer(j, "451 4.3.0 Error: out of memory");
                return;
        }
        j->queue = q;
        q[j->n_queue++] = slot;
}

static int rewrite_build(sd_bus_message *m, void *userdata) {
        RewriteCall *call = userdata;

        return sd_bus_message_append(m, "s", *call->slot);
}

static void job_send(CleanupJob *j, char **slot) {
        RewriteCall *call;
        int r;

        call = malloc(sizeof(RewriteCall));
        if (!call) {
                cleanup_job_defer(j, "451 4.3.0 Error: out of memory");
                return;
        }
        *call = (RewriteCall) { .job = j, .slot = slot };
        /* Idempotent: sent again if rewrite exits idle as the call reaches it. */
        r = bus_client_call(j->cleanup->rewrite, "/org/postbus/Rewrite1", "org.postbus.Rewrite1", "Rewrite",
                            BUS_LOOKUP_TIMEOUT_USEC, BUS_CALL_IDEMPOTENT, rewrite_build, on_rewrite_reply, call);
        if (r < 0) {
                free(call);
                log_warning_errno(r, "Failed to call rewrite: %m");
                cleanup_job_defer(j, "451 4.3.0 Error: address rewriting is unavailable, try again later");
                return;
        }
        j->pending++;
}

/* Flow control is the rewrite connection's window (bus_client_call()), shared by every job: a job hands
 * over its whole round, and rewrite sees a bounded number of calls at once however many jobs run. */
static void job_pump(CleanupJob *j) {
        while (j->queue_next < j->n_queue) {
                if (j->defer || j->reject) {
                        j->queue_next = j->n_queue;     /* the answer is known: ask no more */
                        break;
                }
                job_send(j, j->queue[j->queue_next++]);
        }
}

void cleanup_job_round_start(CleanupJob *j, CleanupJobStep next) {
        /* Replies are dispatched from the event loop, never from within the calls that sent them. */
        j->next = next;
        job_pump(j);
        job_round_done(j);
}

/* ---- maps -------------------------------------------------------------------------------------- */

int cleanup_job_add_recipient(CleanupJob *j, const char *address) {
        if (j->n_recipients >= CLEANUP_RECIPIENTS_MAX)
                return -E2BIG;
        char **n = realloc(j->recipients, (j->n_recipients + 2) * sizeof(char *));
        if (!n)
                return -ENOMEM;
        j->recipients = n;
        n[j->n_recipients] = strdup(address);
        if (!n[j->n_recipients])
                return -ENOMEM;
        n[++j->n_recipients] = NULL;
        return 0;
}

/* The result goes to rewrite again: a table may give "user" without a domain. */
int cleanup_job_canonicalize(CleanupJob *j, char **addr, TableList *first, TableList *second) {
        Cleanup *c = j->cleanup;
        TableList *lists[] = { first, second };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
                char *out = NULL;
                if (table_list_is_empty(lists[i]))
                        continue;
                r = address_map_find(address_map_table_lookup, lists[i], *addr, c->mydestination,
                                           c->daemon->config->myorigin, c->daemon->config->recipient_delimiter,
                                           c->propagate_canonical, &out);
                if (r < 0) {
                        _cleanup_free_ char *escaped = log_escape(*addr, strlen(*addr));
                        log_error_errno(r, "Failed to look up <%s> in a canonical table: %m", strempty(escaped));
                        cleanup_job_fail(j, "451 4.3.0 Error: canonical table lookup failure");
                        return r;
                }
                if (r > 0) {
                        /* A canonical result is one address: the first if there are more. */
                        size_t len = strcspn(out, ", \t");
                        out[len] = '\0';
                        if (len == 0 || !address_valid(out) || strcmp(out, *addr) == 0) {
                                free(out);
                                return 0;
                        }
                        free(*addr);
                        *addr = out;
                        cleanup_job_rewrite(j, addr);
                        return 0;
                }
        }
        return 0;
}

static void step_masquerade(CleanupJob *j);

/* canonical maps on sender, recipients and header addresses (canonical_classes: all four by default; the
 * header addresses as they stand in the header). */
static void step_maps(CleanupJob *j) {
        Cleanup *c = j->cleanup;

        if (!isempty(j->sender) &&
            cleanup_job_canonicalize(j, &j->sender, c->sender_canonical_maps, c->canonical_maps) < 0)
                return;
        for (size_t i = 0; i < j->n_recipients; i++)
                if (cleanup_job_canonicalize(j, &j->recipients[i], c->recipient_canonical_maps, c->canonical_maps) < 0)
                        return;
        for (size_t i = 0; i < j->n_header_addresses; i++) {
                CleanupHeaderAddress *a = j->header_addresses + i;
                if (cleanup_job_canonicalize(j, &a->address,
                                             a->sender ? c->sender_canonical_maps : c->recipient_canonical_maps,
                                             c->canonical_maps) < 0)
                        return;
        }
        cleanup_job_round_start(j, step_masquerade);
}

/* masquerade_domains on one address. Out of memory answers the submitter: -ENOMEM. */
static int masquerade(CleanupJob *j, char **addr) {
        Cleanup *c = j->cleanup;
        char *out = NULL;
        int r;

        r = cleanup_masquerade(c->masquerade_domains, c->masquerade_exceptions, *addr, &out);
        if (r < 0) {
                cleanup_job_fail(j, "451 4.3.0 Error: out of memory");
                return r;
        }
        if (r > 0) {
                free(*addr);
                *addr = out;
        }
        return 0;
}

/* masquerade_classes: envelope_sender, header_sender, header_recipient. */
static void step_masquerade(CleanupJob *j) {
        if (!isempty(j->sender) && masquerade(j, &j->sender) < 0)
                return;
        for (size_t i = 0; i < j->n_header_addresses; i++)
                if (masquerade(j, &j->header_addresses[i].address) < 0)
                        return;
        cleanup_bcc_start(j);
}

/* ---- the end ----------------------------------------------------------------------------------- */

typedef struct DedupeEntry {
        const char *s;
        bool bcc;
        size_t index;
} DedupeEntry;

static int dedupe_cmp(const void *a, const void *b) {
        const DedupeEntry *x = a, *y = b;
        int r = (int) x->bcc - (int) y->bcc;
        if (r == 0)
                r = strcasecmp(x->s, y->s);
        return r != 0 ? r : (x->index > y->index) - (x->index < y->index);
}

/* Removes later duplicates (any case) from v[0..n) and their roots, keeping the order; returns the new count.
 * An automatic BCC copy is a duplicate of another BCC copy only: like Postfix, whose duplicate filter tells
 * recipients apart by their NOTIFY, and the BCC ones have NEVER, a BCC address that is a recipient anyway
 * gets both copies. */
static size_t dedupe(CleanupJob *j, char **v, size_t *roots, size_t n) {
        DedupeEntry *e = calloc(MAX(n, 1U), sizeof(DedupeEntry));
        bool *drop = calloc(MAX(n, 1U), sizeof(bool));
        size_t k = 0;

        if (!e || !drop) {
                free(e);
                free(drop);
                return n;       /* duplicates only cost a second delivery attempt */
        }
        for (size_t i = 0; i < n; i++)
                e[i] = (DedupeEntry) { v[i], roots[i] >= j->bcc_first, i };
        qsort(e, n, sizeof(DedupeEntry), dedupe_cmp);
        for (size_t i = 1; i < n; i++)
                if (e[i].bcc == e[i - 1].bcc && strcasecmp(e[i].s, e[i - 1].s) == 0)
                        drop[e[i].index] = true;
        for (size_t i = 0; i < n; i++)
                if (!drop[i]) {
                        roots[k] = roots[i];
                        v[k++] = v[i];
                }
        free(e);
        free(drop);
        return k;
}

/* The DSN options (RFC 3461) of each final recipient: those of the recipient it was submitted as, which an
 * alias expansion passes on to every address it yields; NOTIFY=NEVER for an automatic BCC copy, as Postfix
 * adds it. Borrowed from j; both NULL when there are none. */
static int job_dsn_options(CleanupJob *j, const size_t *roots, size_t k, const char ***ret_notify,
                           const char ***ret_orcpt) {
        const char **notify, **orcpt;
        bool any = j->bcc_first < j->n_recipients;

        *ret_notify = *ret_orcpt = NULL;
        for (size_t i = 0; i < j->n_dsn && i < j->n_recipients; i++)
                any = any || !isempty(j->dsn_notify[i]) || !isempty(j->dsn_orcpt[i]);
        if (!any)
                return 0;
        notify = calloc(k + 1, sizeof(char *));
        orcpt = calloc(k + 1, sizeof(char *));
        if (!notify || !orcpt) {
                free(notify);
                free(orcpt);
                return -ENOMEM;
        }
        for (size_t x = 0; x < k; x++) {
                size_t i = roots[x];

                if (i >= j->bcc_first)
                        notify[x] = "NEVER";
                else if (i < j->n_dsn) {
                        notify[x] = j->dsn_notify[i];
                        orcpt[x] = j->dsn_orcpt[i];
                }
        }
        *ret_notify = notify;
        *ret_orcpt = orcpt;
        return 0;
}

/* The answer to a queue file that could not be written (error already logged with its errno): a full file
 * system is Postfix's "Insufficient system storage", so that the client knows to come back later. */
static void job_fail_write(CleanupJob *j, int error) {
        if (error == -ENOSPC || error == -EDQUOT)
                cleanup_job_fail(j, "452 4.3.1 Insufficient system storage");
        else
                cleanup_job_fail(j, "451 4.3.0 Error: queue file write error");
}

/* The queue file and its name in incoming/ are on disk (or the file is gone again): the answer. */
static void job_synced(CleanupSyncItem *item, void *userdata) {
        CleanupJob *j = userdata;
        int r = item->error;

        if (r < 0 && item->dir_failed) {
                log_error_errno(r, "%s: failed to sync the incoming queue directory: %m", item->id);
                if (item->unlink_error < 0)
                        log_warning_errno(item->unlink_error,
                                          "%s: failed to remove the unconfirmed queue file, ignoring: %m", item->id);
                cleanup_job_fail(j, "451 4.3.0 Error: queue file write error");
                return;
        }
        if (r < 0) {
                log_error_errno(r, "%s: failed to write the queue file: %m", item->id);
                job_fail_write(j, r);
                return;
        }
        if (item->collided)
                log_warning("Queue ID collision in incoming: the message was queued as %s.", item->id);
        cleanup_message_log(item->id, j->sender, j->hold, j->message_id);
        (void) sd_bus_reply_method_return(j->request, "s", item->id);
        cleanup_wake_qmgr(j->cleanup, item->id, item->file, item->file_size);
        cleanup_job_free(j);
}

void cleanup_job_write(CleanupJob *j) {
        Cleanup *c = j->cleanup;
        _cleanup_free_ char *reject = NULL;
        _cleanup_free_ char **vec = NULL;
        _cleanup_free_ size_t *roots = NULL;
        _cleanup_free_ CleanupRange *edits = NULL;
        char id[QUEUE_ID_SIZE];
        size_t n, n_edits;
        int r;

        /* The final recipients, each once. */
        if (cleanup_virtual_final(j, &vec, &roots, &n) < 0) {
                cleanup_job_fail(j, "451 4.3.0 Error: out of memory");
                return;
        }
        size_t k = dedupe(j, vec, roots, n);
        vec[k] = NULL;

        if (k == 0) {
                (void) cleanup_job_reject(j, "554 5.1.0 No recipient addresses found in message header");
                cleanup_job_reply_error(j);
                return;
        }
        if (j->discard) {
                /* Accepted and dropped, as the administrator asked: the submitter is told it was queued. */
                if (j->queue_id[0])
                        strcpy(id, j->queue_id);
                else if (queue_id_new(id) < 0) {
                        cleanup_job_fail(j, "451 4.3.0 Error: cannot make a queue ID");
                        return;
                }
                (void) sd_bus_reply_method_return(j->request, "s", id);
                cleanup_job_free(j);
                return;
        }

        if (cleanup_job_header_edits(j, &edits, &n_edits) < 0) {
                cleanup_job_fail(j, "451 4.3.0 Error: out of memory");
                return;
        }
        CleanupRequest req = {
                .content = j->content,
                .size = j->size,
                .sender = j->sender,
                .recipients = vec,
                .attrs = j->attrs,
                .edits = edits,
                .n_edits = n_edits,
                .hold = j->hold,
                .prepend = j->prepend,
                .filter = j->filter,
                .queue_id = j->queue_id[0] ? j->queue_id : NULL,
        };
        r = job_dsn_options(j, roots, k, &req.dsn_notify, &req.dsn_orcpt);
        if (r >= 0)
                r = cleanup_message_write(c, &req, &j->sync, &reject, &j->message_id);
        free(req.dsn_notify);
        free(req.dsn_orcpt);
        if (r < 0) {
                job_fail_write(j, r);
                return;
        }
        if (reject) {
                j->reject = TAKE_PTR(reject);
                cleanup_job_reply_error(j);
                return;
        }
        /* The file's fsync and rename go to a sync thread; the loop goes on with other jobs meanwhile. A job
         * alone is synced here: no other has to wait for the loop, and the hand-offs to a thread and back
         * would cost more than they save. */
        j->sync.done = job_synced;
        j->sync.userdata = j;
        cleanup_sync_submit(c->sync, &j->sync, c->n_jobs == 1);
}

/* ---- the start --------------------------------------------------------------------------------- */

/* smtpd's access(5) actions for the whole message, and the submitter's queue ID and receive_override_options,
 * from the attribute a ("smtpd_hold=reason", ...): 1 when it was one (and is in the job now), 0 when not. The
 * cleanup socket is open to postbus's roles only. */
static const char *attr_value(const char *a, const char *prefix) {
        size_t n = strlen(prefix);
        return strncmp(a, prefix, n) == 0 ? a + n : NULL;
}

static int job_take_smtpd_action(CleanupJob *j, const char *a) {
        const char *v;

        /* The submitter's queue ID, which the milters were shown: used if free, never written as an attribute. */
        if ((v = attr_value(a, "queue_id="))) {
                if (queue_id_valid(v))
                        strcpy(j->queue_id, v);
                else
                        log_warning("A submitted queue ID is malformed: ignored.");
                return 1;
        }
        /* The submitting service's receive_override_options: cleanup's part of them; the others are done. */
        if ((v = attr_value(a, RECEIVE_OVERRIDE_ATTR "="))) {
                _cleanup_free_ char *bad = NULL;
                unsigned mask;
                int r = receive_override_parse(v, &mask, &bad);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        _cleanup_free_ char *e = log_escape(bad, strlen(bad));
                        log_warning("A submission's receive_override_options has the unknown option \"%s\", "
                                    "ignoring it.", strempty(e));
                        return 1;
                }
                j->receive_override = mask & RECEIVE_OVERRIDE_CLEANUP;
                return 1;
        }
        if ((v = attr_value(a, "smtpd_hold="))) {
                if (!j->hold) {
                        j->hold = strdup(isempty(v) ? "smtpd access HOLD" : v);
                        if (!j->hold)
                                return -ENOMEM;
                }
                return 1;
        }
        /* A milter's quarantine (smtpd and pickup run the milters). */
        if ((v = attr_value(a, "milter_hold="))) {
                if (!j->hold) {
                        j->hold = strdup(isempty(v) ? "milter quarantine" : v);
                        if (!j->hold)
                                return -ENOMEM;
                }
                return 1;
        }
        if ((v = attr_value(a, "smtpd_discard="))) {
                _cleanup_free_ char *e = log_escape(v, strlen(v)), *s = log_escape(j->sender, strlen(j->sender));
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLEANUP_ACTION", "DISCARD" }),
                         "DISCARD: smtpd access from sender=<%s>%s%s", strempty(s), isempty(v) ? "" : ": ",
                         strempty(e));
                j->discard = true;
                return 1;
        }
        if ((v = attr_value(a, "smtpd_filter="))) {
                /* transport:nexthop, the last one winning, as in Postfix */
                if (strpbrk(v, "\r\n \t") || !strchr(v, ':') || v[0] == ':')
                        return 1;
                char *f = strdup(v);
                if (!f)
                        return -ENOMEM;
                free(j->filter);
                j->filter = f;
                return 1;
        }
        if ((v = attr_value(a, "smtpd_redirect="))) {
                /* Every recipient becomes the one address; the final ones are made unique later. The DSN
                 * options stay with each, as the original recipients they were. */
                if (!address_valid(v))
                        return 1;       /* smtpd checked it; ignored rather than trusted */
                for (size_t i = 0; i < j->n_recipients; i++) {
                        char *n = strdup(v);
                        if (!n)
                                return -ENOMEM;
                        free(j->recipients[i]);
                        j->recipients[i] = n;
                }
                return 1;
        }
        if ((v = attr_value(a, "smtpd_prepend="))) {
                size_t n = 0;
                while (j->prepend && j->prepend[n])
                        n++;
                /* A header is one line: smtpd allows printable ASCII only. */
                if (strpbrk(v, "\r\n") || !strchr(v, ':'))
                        return 1;
                return strv_push(&j->prepend, &n, strdup(v)) < 0 ? -ENOMEM : 1;
        }
        return 0;
}

/* A job for the Submit call m. It owns the vectors from here on, even when this fails. */
static int job_new(Cleanup *c, sd_bus_message *m, const char *sender, char **recipients, char **dsn_notify,
                   char **dsn_orcpt, char **attrs, CleanupJob **ret) {
        _cleanup_(cleanup_job_freep) CleanupJob *j = NULL;

        j = calloc(1, sizeof(CleanupJob));
        if (!j) {
                strv_free(recipients);
                strv_free(dsn_notify);
                strv_free(dsn_orcpt);
                strv_free(attrs);
                return -ENOMEM;
        }
        j->cleanup = c;
        c->n_jobs++;
        daemon_busy_inc(c->daemon);
        j->sync.fd = -EBADF;
        j->bcc_first = SIZE_MAX;
        j->recipients = recipients;
        for (char **rc = recipients; *rc; rc++)
                j->n_recipients++;
        j->attrs = attrs;
        j->dsn_notify = dsn_notify;
        j->dsn_orcpt = dsn_orcpt;
        for (char **d = dsn_notify; d && *d; d++)
                j->n_dsn++;
        j->request = sd_bus_message_ref(m);
        j->sender = strdup(sender);
        if (!j->sender)
                return -ENOMEM;
        /* "hold" and "filter" in a queue file are cleanup's own words (header_checks HOLD), not a submitter's;
         * smtpd's access actions and a milter's quarantine become the job's. A FILTER (smtpd's or
         * header_checks') is written as the content_filter attribute, over the one the message came with. */
        for (char **a = j->attrs, **o = j->attrs; a && *a; a++) {
                int r = job_take_smtpd_action(j, *a);
                if (r < 0) {
                        /* The vector stays whole for the job's cleanup. */
                        for (; *a; a++)
                                *o++ = *a;
                        *o = NULL;
                        return r;
                }
                if (r > 0 || strncmp(*a, "hold=", 5) == 0 || strncmp(*a, "filter=", 7) == 0)
                        free(*a);
                else
                        *o++ = *a;
                if (!a[1])
                        *o = NULL;
        }
        *ret = TAKE_PTR(j);
        return 0;
}

/* Reads or maps the submitted message (fd, as st says it is: a sealed regular file): 1 when it is larger than
 * message_size_limit (and left alone). The descriptor stays the request's. */
static int job_map(CleanupJob *j, const CleanupContent *content) {
        if (content->size > (uint64_t) j->cleanup->daemon->config->message_size_limit)
                return 1;
        j->size = (size_t) content->size;
        if (j->size == 0)
                return 0;
        if (content->bytes) {
                /* In the request, which the job holds until it answers; only read. */
                j->content = (void *) content->bytes;
                j->borrowed = true;
                return 0;
        }
        if (j->size <= CLEANUP_READ_MAX) {
                /* One read, where a mapping costs its unmapping too, and a TLB flush on the other CPUs. The
                 * seals keep the size. */
                j->content = malloc(j->size);
                if (!j->content)
                        return log_oom();
                int r = pread_full(content->fd, j->content, j->size, 0);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the submitted message: %m");
                return 0;
        }
        j->content = mmap(NULL, j->size, PROT_READ, MAP_PRIVATE, content->fd, 0);
        if (j->content == MAP_FAILED) {
                j->content = NULL;
                return log_error_errno(errno, "Failed to map the submitted message: %m");
        }
        j->mapped = true;
        return 0;
}

/* The course: the header pass; every address into canonical form by the rewrite role (asynchronous calls,
 * a window of them in flight at once); canonical maps and masquerading; virtual aliases, round by round; the
 * queue file. Only then does the submitter get its answer. */
int cleanup_job_start(Cleanup *c, sd_bus_message *m, const CleanupContent *content, const char *sender,
                      char **recipients, char **dsn_notify, char **dsn_orcpt, char **attrs) {
        _cleanup_(cleanup_job_freep) CleanupJob *j = NULL;
        CleanupHeaderScan h;
        int r;

        r = job_new(c, m, sender, recipients, dsn_notify, dsn_orcpt, attrs, &j);
        if (r < 0)
                return r;
        r = job_map(j, content);
        if (r < 0)
                return r;
        if (r > 0) {
                (void) cleanup_job_reject(j, "552 5.3.4 Message file too big");
                cleanup_job_reply_error(TAKE_PTR(j));
                return 0;
        }

        r = cleanup_job_characters(j);
        if (r < 0)
                return r;
        if (j->reject) {
                cleanup_job_reply_error(TAKE_PTR(j));
                return 0;
        }

        r = cleanup_header_scan(j->content, j->size, &h);
        if (r < 0)
                return r;
        size_t header_end = h.header_end;
        cleanup_header_scan_done(&h);
        r = cleanup_job_header_pass(j, header_end);
        if (r >= 0 && !j->reject)
                r = cleanup_job_body_pass(j, header_end);
        if (r == -E2BIG)
                (void) cleanup_job_reject(j, "552 5.5.3 Error: too many recipients");
        else if (r < 0)
                return r;
        if (j->reject) {
                cleanup_job_reply_error(TAKE_PTR(j));
                return 0;
        }
        if (j->n_recipients == 0) {
                (void) cleanup_job_reject(j, "554 5.1.0 No recipient addresses found in message header");
                cleanup_job_reply_error(TAKE_PTR(j));
                return 0;
        }

        /* Round one: the canonical form of the envelope, and of the header addresses of local mail (as
         * Postfix's local_header_rewrite_clients: mail from other hosts keeps its headers as written). */
        cleanup_job_rewrite(j, &j->sender);
        for (size_t i = 0; i < j->n_recipients; i++)
                cleanup_job_rewrite(j, &j->recipients[i]);
        if (streq(strempty(cleanup_attr_get(j->attrs, "origin")), "pickup"))
                for (size_t i = 0; i < j->n_header_addresses; i++)
                        cleanup_job_rewrite(j, &j->header_addresses[i].address);
        /* receive_override_options = no_address_mappings (mail that had them before a content filter): the
         * canonical form only, no canonical maps, masquerading, automatic BCC or virtual aliases. */
        CleanupJobStep next = j->receive_override & RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS ? cleanup_job_write
                                                                                          : step_maps;
        cleanup_job_round_start(TAKE_PTR(j), next);
        return 0;
}
