/* local-bus.c: runs in local, the long-lived process: what it does with a Deliver call of org.postbus.Delivery1
 * (delivery-agent.c serves it and keeps the line for slots, at most default_process_limit over all calls): its
 * recipients are taken one after another: expanded here, with the alias tables kept open; the mailboxes
 * written by the per-user workers (local-pool.c); files, commands and forwarding in a process of their own
 * (local-child.c). Every final delivery is written as a line to the recipient's report, kept in memory (and
 * in a memory file for the child, when there is one), which is read once at its end: a journal record each,
 * and one result per recipient for qmgr. */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "delivery-agent.h"
#include "local.h"
#include "log.h"

/* The role's state: the workers and the alias tables, kept from one delivery to the next. */
typedef struct Local {
        LocalPool *pool;
        LocalPass *pass;                /* mailbox_transport, fallback_transport */
        LocalAliases aliases;
        bool stopping;                  /* the agent stops: answers are awaited in local_stop(), call by call */
} Local;

/* What a report says so far: the first result of each kind. */
typedef struct ReportSum {
        MailboxResult deferred, bounced, sent;
        bool have_deferred, have_bounced, have_sent;
} ReportSum;

/* local's state of one call. */
typedef struct LocalCall {
        DeliveryRequest req;            /* first: the agent allocates the whole */
        MailboxResult *results;           /* one per recipient */
        size_t n_done;                  /* recipients[0..n_done) have a result */
        /* recipients[n_done], while it runs: */
        bool active;                    /* it has started and not yet been reported */
        LocalReport report;             /* its report: local's own lines and the workers' answers */
        int child_fd;                   /* the child's report, a memory file, or -EBADF */
        unsigned n_waiting;             /* answers still owed: one per mailbox, and the child's end */
        pid_t pid;                      /* the process for files, commands and forwarding, or 0 */
        sd_event_source *child;
        bool failed;                    /* that process ended badly: failure is the recipient's result */
        MailboxResult failure;
        ReportSum passed;               /* the results of the agents it was handed to (they logged them) */
} LocalCall;

static Local *call_local(LocalCall *c) {
        return c->req.agent->userdata;
}

static void log_delivery(LocalCall *c, const char *to, const char *orig_to, const MailboxResult *result) {
        delivery_request_log(&c->req, to, isempty(orig_to) ? NULL : orig_to, "local", result->dsn,
                             mailbox_status_to_string(result->status), result->text, NULL);
}

/* Stores the result of the next recipient and logs it. */
static void call_record(LocalCall *c, const MailboxResult *result) {
        const char *rcpt = c->req.recipients[c->n_done].address;

        c->results[c->n_done++] = *result;
        log_delivery(c, rcpt, NULL, result);
}

/* The report of the child that delivered to the next recipient: every final delivery is logged, and the
 * recipient's result is deferred if any of them is, else bounced if any is, else sent. */

static void report_sum_add(ReportSum *sum, const MailboxResult *r) {
        if (r->status == MAILBOX_STATUS_DEFERRED && !sum->have_deferred) {
                sum->deferred = *r;
                sum->have_deferred = true;
        } else if (r->status == MAILBOX_STATUS_BOUNCED && !sum->have_bounced) {
                sum->bounced = *r;
                sum->have_bounced = true;
        } else if (r->status == MAILBOX_STATUS_SENT && !sum->have_sent) {
                sum->sent = *r;
                sum->have_sent = true;
        }
}

static void report_scan(LocalCall *c, const char *buf, size_t len, ReportSum *sum) {
        const char *queue_id = c->req.queue_id;

        for (size_t start = 0; start < len;) {
                const char *nl = memchr(buf + start, '\n', len - start);
                LocalReportLine l;

                if (!nl)
                        break;          /* cut off: the child died while writing */
                size_t end = (size_t) (nl - buf);
                if (local_report_parse(buf + start, end - start, &l) < 0) {
                        log_mail(LOG_WARNING, queue_id, LOG_NO_FIELDS, "malformed report from a delivery process");
                        start = end + 1;
                        continue;
                }
                start = end + 1;
                if (l.type == 'I') {
                        const char *rcpt = c->req.recipients[c->n_done].address;
                        _cleanup_free_ char *address = log_escape(rcpt, strlen(rcpt));
                        log_mail(LOG_WARNING, queue_id,
                                 LOG_FIELDS({ "MESSAGE_ID", POSTBUS_MESSAGE_FORWARD_FILE_IGNORED },
                                            { "FORWARD_FILE", l.path }, { "RECIPIENT", address }),
                                 "warning: file %s %s -- ignored", l.path, l.text);
                        local_report_line_done(&l);
                        continue;
                }
                if (l.type == 'W') {
                        log_mail(LOG_WARNING, queue_id, LOG_NO_FIELDS, "warning: %s", l.text);
                        local_report_line_done(&l);
                        continue;
                }
                log_delivery(c, l.to, l.orig_to, &l.result);
                report_sum_add(sum, &l.result);
                local_report_line_done(&l);
        }
}

/* The report of the recipient in progress (local's lines, then the child's): every final delivery is
 * logged, and the recipient's result is deferred if any of them is, else bounced if any is, else sent. */
static void call_report(LocalCall *c) {
        ReportSum sum = c->passed;

        c->passed = (ReportSum) {};
        report_scan(c, c->report.buf.data, c->report.buf.len, &sum);
        local_report_done(&c->report);
        if (c->child_fd >= 0) {
                _cleanup_free_ char *buf = malloc(LOCAL_REPORT_MAX);
                size_t len = 0;
                ssize_t n;

                while (buf && len < LOCAL_REPORT_MAX &&
                       (n = pread(c->child_fd, buf + len, LOCAL_REPORT_MAX - len, (off_t) len)) > 0)
                        len += (size_t) n;
                if (buf)
                        report_scan(c, buf, len, &sum);
                c->child_fd = safe_close(c->child_fd);
        }
        c->active = false;
        const bool have_deferred = sum.have_deferred, have_bounced = sum.have_bounced, have_sent = sum.have_sent;

        if (!c->failed && c->req.deadline_hit && have_deferred) {
                c->failed = true;
                mailbox_result_set(&c->failure, "4.3.0", "delivery time limit exceeded");
        }
        if (!c->failed && !have_deferred && !have_bounced && !have_sent) {
                c->failed = true;
                mailbox_result_set(&c->failure, "4.3.0", "delivery reported no result");
        }
        if (c->failed) {
                call_record(c, &c->failure);
                return;
        }
        c->results[c->n_done++] = have_deferred ? sum.deferred : have_bounced ? sum.bounced : sum.sent;
}

/* Gives every recipient still without a result a temporary failure. */
static void call_defer_rest(LocalCall *c, const char *text) {
        MailboxResult result;

        mailbox_result_set(&result, "4.3.0", "%s", text);
        while (c->n_done < c->req.n_recipients)
                call_record(c, &result);
}

static void local_result_of(const DeliveryRequest *req, size_t i, DeliveryResult *ret) {
        const MailboxResult *r = ((const LocalCall *) req)->results + i;

        *ret = (DeliveryResult) { mailbox_status_to_string(r->status), r->dsn, "local", r->text };
}

/* Answers with the result of every recipient and frees the call. */
static void local_finish(DeliveryRequest *req) {
        /* Fewer results than recipients only when the peer went away. */
        delivery_request_finish(req, local_result_of, ((LocalCall *) req)->n_done == req->n_recipients);
}

/* Finishes the call when nothing is left to do for it, else puts it in line for a process slot. */
static void call_continue(LocalCall *c) {
        if (c->n_done < c->req.n_recipients && c->req.deadline_hit)
                call_defer_rest(c, "delivery time limit exceeded");
        if (c->n_done == c->req.n_recipients || !delivery_request_peer_connected(&c->req))
                local_finish(&c->req);
        else
                delivery_request_wait(&c->req);
}

/* Every answer owed for the recipient in progress has come: its result, and on to the next. */
static void recipient_step(LocalCall *c) {
        DeliveryAgent *a = c->req.agent;

        assert(c->n_waiting > 0);
        /* While local stops, a worker's answers to other calls come in too: each call reports in its own
         * local_stop(). */
        if (--c->n_waiting > 0 || call_local(c)->stopping)
                return;
        call_report(c);
        delivery_request_ended(&c->req);
        call_continue(c);
        delivery_agent_dispatch(a);
}

static void on_mailbox_done(const char *recipient, const MailboxResult *r, void *userdata) {
        LocalCall *c = userdata;
        const char *orig = c->req.recipients[c->n_done].address;

        (void) local_report_delivery(&c->report, recipient, strcaseeq(recipient, orig) ? NULL : orig, r);
        recipient_step(c);
}

static void on_pass_done(const MailboxResult *r, void *userdata) {
        LocalCall *c = userdata;

        report_sum_add(&c->passed, r);
        recipient_step(c);
}

static void child_ended(LocalCall *c, const siginfo_t *si) {
        if (!(si->si_code == CLD_EXITED && si->si_status == EXIT_SUCCESS) || c->req.deadline_hit) {
                c->failed = true;
                local_child_failure(si, c->req.deadline_hit, &c->failure);
        }
        c->child = sd_event_source_disable_unref(c->child);
        c->pid = 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        LocalCall *c = userdata;

        child_ended(c, si);
        recipient_step(c);
        return 0;
}

static int call_start_child(LocalCall *c, const MailboxMessage *m, const LocalPlan *plan) {
        Daemon *d = c->req.agent->daemon;
        int r;

        /* Only a child needs a report outside local's memory. O_APPEND: it may write after a kill. */
        c->child_fd = memfd_create("postbus-local-report", MFD_CLOEXEC);
        if (c->child_fd < 0 || fcntl(c->child_fd, F_SETFL, O_APPEND) < 0)
                return -errno;
        r = local_child_start(m, d->config, plan, c->child_fd, &c->pid);
        if (r < 0)
                return r;
        r = sd_event_add_child(d->event, &c->child, c->pid, WEXITED, on_child, c);
        if (r < 0) {
                /* Unwatched, it cannot be reported: stop it and reap it here. */
                (void) kill(-c->pid, SIGKILL);
                (void) waitpid(c->pid, NULL, 0);
                c->pid = 0;
                return r;
        }
        return 0;
}

/* Expands the recipient in progress and hands out its deliveries; the number of answers owed. */
static unsigned recipient_start(LocalCall *c) {
        Daemon *d = c->req.agent->daemon;
        Local *l = call_local(c);
        _cleanup_(local_plan_done) LocalPlan plan = {};
        const MailboxMessage m = {
                .queue_fd = c->req.fd,
                .envelope = c->req.envelope,
                .sender = c->req.sender,
                .recipient = c->req.recipients[c->n_done].address,
                .original = c->req.recipients[c->n_done].original,
        };
        MailboxResult result;
        unsigned n = 0;
        int r;

        local_expand(&m, d->config, &l->aliases, &c->report, &plan);
        for (size_t k = 0; k < plan.n_jobs; k++) {
                const LocalJob *j = plan.jobs + k;
                MailboxMessage mm = m;

                if (j->type == LOCAL_JOB_PASS) {
                        r = local_pass_deliver(l->pass, &c->req, c->req.recipients[c->n_done].index, j->address,
                                               j->value, on_pass_done, c, &result);
                        if (r > 0)
                                n++;
                        else if (r < 0)
                                mailbox_result_set(&result, "4.3.0", "cannot hand the delivery on to %s: %s",
                                                   j->value, strerror(-r));
                        if (r <= 0)
                                (void) local_report_delivery(&c->report, j->address,
                                                             strcaseeq(j->address, m.recipient) ? NULL : m.recipient,
                                                             &result);
                        continue;
                }
                if (j->type != LOCAL_JOB_MAILBOX)
                        continue;
                mm.recipient = j->address;
                r = local_pool_deliver(l->pool, &mm, &j->privs, on_mailbox_done, c);
                if (r >= 0) {
                        n++;
                        continue;
                }
                mailbox_result_set(&result, "4.3.0", "cannot start a delivery process: %s", strerror(-r));
                (void) local_report_delivery(&c->report, j->address,
                                             strcaseeq(j->address, m.recipient) ? NULL : m.recipient, &result);
        }
        if (local_plan_needs_child(&plan)) {
                r = call_start_child(c, &m, &plan);
                if (r >= 0)
                        n++;
                else {
                        c->failed = true;
                        mailbox_result_set(&c->failure, "4.3.0", "cannot start a delivery process: %s",
                                         strerror(-r));
                }
        }
        return n;
}

static int local_start(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        c->failed = false;
        c->active = true;
        c->n_waiting = recipient_start(c);
        if (c->n_waiting > 0)
                return 1;
        /* Settled here and now: an unknown user, a loop, a failure to start. */
        call_report(c);
        call_continue(c);
        return 0;
}

static void local_deadline(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        if (req->running) {
                /* Their ends are reported as usual and finish the call. */
                if (c->pid > 0)
                        (void) kill(-c->pid, SIGKILL);
                local_pool_kill(call_local(c)->pool, c);
        } else
                call_continue(c);
}

/* Lets a running delivery end rather than leave half a message in a mailbox. */
static void local_stop(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        call_local(c)->stopping = true;
        if (req->running && c->active) {
                if (c->pid > 0) {
                        siginfo_t si = {};

                        (void) waitid(P_PID, c->pid, &si, WEXITED);
                        child_ended(c, &si);
                }
                local_pool_drain(call_local(c)->pool, c);
                call_report(c);
        }
        if (delivery_request_peer_connected(req))
                call_defer_rest(c, "local delivery agent is stopping");
}

static int local_prepare(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        c->report = LOCAL_REPORT_MEMORY;
        c->child_fd = -EBADF;
        c->results = calloc(req->n_recipients, sizeof(MailboxResult));
        return c->results ? 0 : -ENOMEM;
}

static void local_call_done(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        local_pool_forget(call_local(c)->pool, c);
        local_pass_forget(call_local(c)->pass, c);
        sd_event_source_disable_unref(c->child);
        safe_close(c->child_fd);
        local_report_done(&c->report);
        free(c->results);
}

static const DeliveryAgentOps local_ops = {
        .request_size = sizeof(LocalCall),
        .recipients_max = LOCAL_RECIPIENTS_MAX,
        .options_max = 0,               /* local has no per-transport options: its parameters are main.cf's */
        .prepare = local_prepare,
        .start = local_start,
        .deadline = local_deadline,
        .stop = local_stop,
        .finish = local_finish,
        .done = local_call_done,
};

static Local *local_state_free(Local *l) {
        if (!l)
                return NULL;
        local_pool_free(l->pool);
        local_pass_free(l->pass);
        local_aliases_done(&l->aliases);
        return mfree(l);
}

int local_new(Daemon *d, int listen_fd, uid_t peer_uid, DeliveryAgent **ret) {
        Local *l = calloc(1, sizeof(Local));
        int r;

        if (!l)
                return -ENOMEM;
        r = local_pool_new(d, &l->pool);
        if (r >= 0)
                r = local_pass_new(d, &l->pass);
        if (r >= 0)
                r = local_aliases_open(&l->aliases, d->config);
        if (r >= 0)
                r = delivery_agent_new(d, listen_fd, peer_uid, &local_ops, l, ret);
        if (r < 0)
                local_state_free(l);
        return r;
}

int local_reload(DeliveryAgent *a, const Config *new) {
        Local *l = a->userdata;
        int r;

        r = local_pass_reload(l->pass, new);    /* master.cf: a bad one keeps the old configuration */
        if (r < 0)
                return r;
        local_aliases_done(&l->aliases);        /* local_expand() opens them again, from the new config */
        local_pool_reload(l->pool);
        return 0;
}

DeliveryAgent *local_free(DeliveryAgent *a) {
        Local *l;

        if (!a)
                return NULL;
        l = a->userdata;
        delivery_agent_free(a);         /* waits for what runs, through the workers */
        local_state_free(l);
        return NULL;
}
