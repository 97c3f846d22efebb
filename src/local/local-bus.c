/* local-bus.c: what local does with a Deliver call of org.postbus.Delivery1 (delivery-agent.c serves it and
 * keeps the line for process slots, at most default_process_limit over all calls): its recipients are
 * delivered one after another by delivery children, a journal record is written per recipient, and the call
 * is answered when its last recipient is done or its time is up. */
#include <inttypes.h>
#include <sys/wait.h>

#include "delivery-agent.h"
#include "local.h"
#include "log.h"

/* local's state of one call. */
typedef struct LocalCall {
        DeliveryRequest req;            /* first: the agent allocates the whole */
        LocalResult *results;           /* one per recipient */
        size_t n_done;                  /* recipients[0..n_done) have a result */
        pid_t pid;                      /* the child delivering to recipients[n_done], or 0 */
        int result_fd;
        sd_event_source *child;
} LocalCall;

static void log_delivery(LocalCall *c, const char *to, const char *orig_to, const LocalResult *result) {
        delivery_request_log(&c->req, to, isempty(orig_to) ? NULL : orig_to, "local", result->dsn,
                             local_status_to_string(result->status), result->text, NULL);
}

/* Stores the result of the next recipient and logs it. */
static void call_record(LocalCall *c, const LocalResult *result) {
        const char *rcpt = c->req.recipients[c->n_done].address;

        c->results[c->n_done++] = *result;
        log_delivery(c, rcpt, NULL, result);
}

/* The report of the child that delivered to the next recipient: every final delivery is logged, and the
 * recipient's result is deferred if any of them is, else bounced if any is, else sent. */
static void call_report(LocalCall *c, const siginfo_t *si, bool timed_out) {
        const char *queue_id = c->req.queue_id;
        _cleanup_free_ char *buf = NULL;
        LocalResult deferred = {}, bounced = {}, sent = {}, failure;
        bool have_deferred = false, have_bounced = false, have_sent = false;
        size_t len = 0;
        ssize_t n;

        buf = malloc(LOCAL_REPORT_MAX);
        while (buf && len < LOCAL_REPORT_MAX &&
               (n = pread(c->result_fd, buf + len, LOCAL_REPORT_MAX - len, (off_t) len)) > 0)
                len += (size_t) n;
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
                if (l.result.status == LOCAL_STATUS_DEFERRED && !have_deferred) {
                        deferred = l.result;
                        have_deferred = true;
                } else if (l.result.status == LOCAL_STATUS_BOUNCED && !have_bounced) {
                        bounced = l.result;
                        have_bounced = true;
                } else if (l.result.status == LOCAL_STATUS_SENT && !have_sent) {
                        sent = l.result;
                        have_sent = true;
                }
                local_report_line_done(&l);
        }

        bool finished = si->si_code == CLD_EXITED && si->si_status == EXIT_SUCCESS && !timed_out;
        if (!finished || (!have_deferred && !have_bounced && !have_sent)) {
                local_child_failure(si, timed_out, &failure);
                call_record(c, &failure);
                return;
        }
        c->results[c->n_done++] = have_deferred ? deferred : have_bounced ? bounced : sent;
}

/* Gives every recipient still without a result a temporary failure. */
static void call_defer_rest(LocalCall *c, const char *text) {
        LocalResult result;

        local_result_set(&result, "4.3.0", "%s", text);
        while (c->n_done < c->req.n_recipients)
                call_record(c, &result);
}

static void local_result_of(const DeliveryRequest *req, size_t i, DeliveryResult *ret) {
        const LocalResult *r = ((const LocalCall *) req)->results + i;

        *ret = (DeliveryResult) { local_status_to_string(r->status), r->dsn, "local", r->text };
}

/* Answers with the result of every recipient and frees the call. */
static void local_finish(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        if (c->n_done < req->n_recipients)
                /* Only when the peer went away: it takes the whole call as failed and tries again. */
                log_mail(LOG_WARNING, req->queue_id, LOG_NO_FIELDS,
                         "connection to the queue manager lost; %zu recipients not delivered",
                         req->n_recipients - c->n_done);
        else
                delivery_request_reply(req, local_result_of);
        delivery_request_free(req);
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

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        LocalCall *c = userdata;
        DeliveryAgent *a = c->req.agent;

        call_report(c, si, c->req.deadline_hit);
        c->result_fd = safe_close(c->result_fd);
        c->child = sd_event_source_disable_unref(c->child);
        c->pid = 0;
        delivery_request_ended(&c->req);
        call_continue(c);
        delivery_agent_dispatch(a);
        return 0;
}

static int call_start_child(LocalCall *c) {
        Daemon *d = c->req.agent->daemon;
        const LocalMessage m = {
                .queue_fd = c->req.fd,
                .envelope = c->req.envelope,
                .sender = c->req.sender,
                .recipient = c->req.recipients[c->n_done].address,
        };
        int r;

        r = local_child_start(&m, d->config, &c->pid, &c->result_fd);
        if (r < 0)
                return r;
        r = sd_event_add_child(d->event, &c->child, c->pid, WEXITED, on_child, c);
        if (r < 0) {
                /* Unwatched, it cannot be reported: stop it and reap it here. */
                (void) kill(-c->pid, SIGKILL);
                (void) waitpid(c->pid, NULL, 0);
                c->pid = 0;
                c->result_fd = safe_close(c->result_fd);
                return r;
        }
        return 0;
}

static int local_start(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;
        LocalResult result;
        int r;

        r = call_start_child(c);
        if (r >= 0)
                return 1;
        local_result_set(&result, "4.3.0", "cannot start a delivery process: %s", strerror(-r));
        call_record(c, &result);
        call_continue(c);
        return 0;
}

static void local_deadline(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        if (req->running)
                (void) kill(-c->pid, SIGKILL);  /* with its commands; on_child reports it and finishes the call */
        else
                call_continue(c);
}

/* Lets a running delivery end rather than leave half a message in a mailbox. */
static void local_stop(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        if (c->pid > 0) {
                siginfo_t si = {};

                (void) waitid(P_PID, c->pid, &si, WEXITED);
                call_report(c, &si, false);
                c->pid = 0;
        }
        if (delivery_request_peer_connected(req))
                call_defer_rest(c, "local delivery agent is stopping");
}

static int local_prepare(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        c->result_fd = -EBADF;
        c->results = calloc(req->n_recipients, sizeof(LocalResult));
        return c->results ? 0 : -ENOMEM;
}

static void local_call_done(DeliveryRequest *req) {
        LocalCall *c = (LocalCall *) req;

        sd_event_source_disable_unref(c->child);
        safe_close(c->result_fd);
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

int local_new(Daemon *d, int listen_fd, uid_t peer_uid, DeliveryAgent **ret) {
        return delivery_agent_new(d, listen_fd, peer_uid, &local_ops, NULL, ret);
}
