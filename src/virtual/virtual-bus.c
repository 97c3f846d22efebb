/* virtual-bus.c: runs in virtual, the long-lived process: what it does with a Deliver call of
 * org.postbus.Delivery1 (delivery-agent.c serves it, at most default_process_limit deliveries at once): each
 * recipient is looked up here, then written by a process forked for it that becomes the mapped uid and gid for
 * good and reports its result over a pipe. A journal record per recipient, one result each for qmgr. */
#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "command-util.h"
#include "io-util.h"
#include "log.h"
#include "virtual.h"

typedef struct Virtual {
        VirtualMaps maps;
} Virtual;

/* virtual's state of one call. */
typedef struct VirtualCall {
        DeliveryRequest req;            /* first: the agent allocates the whole */
        MailboxResult *results;
        size_t n_done;
        /* the delivery process of recipients[n_done], while it runs */
        pid_t pid;
        int result_fd;
        sd_event_source *child;
} VirtualCall;

static void call_record(VirtualCall *c, const MailboxResult *result) {
        const char *rcpt = c->req.recipients[c->n_done].address;

        c->results[c->n_done++] = *result;
        delivery_request_log(&c->req, rcpt, NULL, "virtual", result->dsn, mailbox_status_to_string(result->status),
                             result->text, NULL);
}

static void virtual_result_of(const DeliveryRequest *req, size_t i, DeliveryResult *ret) {
        const MailboxResult *r = ((const VirtualCall *) req)->results + i;

        *ret = (DeliveryResult) { mailbox_status_to_string(r->status), r->dsn, "virtual", r->text };
}

static void virtual_finish(DeliveryRequest *req) {
        delivery_request_finish(req, virtual_result_of, ((VirtualCall *) req)->n_done == req->n_recipients);
}

static void call_defer_rest(VirtualCall *c, const char *text) {
        MailboxResult result;

        mailbox_result_set(&result, "4.3.0", "%s", text);
        while (c->n_done < c->req.n_recipients)
                call_record(c, &result);
}

static void call_continue(VirtualCall *c) {
        if (c->n_done < c->req.n_recipients && c->req.deadline_hit)
                call_defer_rest(c, "delivery time limit exceeded");
        if (c->n_done == c->req.n_recipients || !delivery_request_peer_connected(&c->req))
                virtual_finish(&c->req);
        else
                delivery_request_wait(&c->req);
}

/* The delivery process has ended (si): its result, or why there is none. */
static void child_ended(VirtualCall *c, const siginfo_t *si) {
        char buf[MAILBOX_RESULT_WIRE_MAX + 1];
        MailboxResult result;
        ssize_t n;

        n = read(c->result_fd, buf, sizeof buf);
        if (c->req.deadline_hit)
                mailbox_result_set(&result, "4.3.0", "delivery time limit exceeded");
        else if (n <= 0 || (size_t) n > MAILBOX_RESULT_WIRE_MAX || mailbox_result_parse(buf, (size_t) n, &result) < 0) {
                if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)
                        mailbox_result_set(&result, "4.3.0", "delivery process killed by signal %s",
                                           strsignal(si->si_status));
                else
                        mailbox_result_set(&result, "4.3.0", "delivery process ended without a result");
        }
        c->child = sd_event_source_disable_unref(c->child);
        c->result_fd = safe_close(c->result_fd);
        c->pid = 0;
        call_record(c, &result);
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        VirtualCall *c = userdata;
        DeliveryAgent *a = c->req.agent;

        child_ended(c, si);
        delivery_request_ended(&c->req);
        call_continue(c);
        delivery_agent_dispatch(a);
        return 0;
}

/* The delivery process: becomes the target's uid and gid for good, with virtual_mailbox_limit as its file size
 * limit, writes the message and its result. */
_Noreturn static void child_main(const MailboxMessage *m, const Config *c, const VirtualTarget *t, int result_fd) {
        char buf[MAILBOX_RESULT_WIRE_MAX];
        MailboxResult result;
        int r;

        (void) signal(SIGXFSZ, SIG_IGN);        /* a write past virtual_mailbox_limit fails with EFBIG */
        close_fds_except(m->queue_fd, result_fd);

        const rlim_t limit = (rlim_t) c->virtual_mailbox_limit;
        const struct rlimit rl = { .rlim_cur = limit, .rlim_max = limit };
        const gid_t groups[] = { t->gid };
        r = become_user(NULL, t->uid, t->gid, groups, ELEMENTSOF(groups));
        if (r < 0)
                mailbox_result_set(&result, "4.3.0", "cannot switch to uid %u: %s", (unsigned) t->uid, strerror(-r));
        else if (geteuid() == 0)
                mailbox_result_set(&result, "4.3.5", "mail system configuration error");
        else if (c->virtual_mailbox_limit > 0 && setrlimit(RLIMIT_FSIZE, &rl) < 0)
                mailbox_result_set(&result, "4.3.0", "cannot set the file size limit: %m");
        else
                virtual_deliver(m, c, t, &result);
        size_t n = mailbox_result_format(&result, buf, sizeof buf);
        (void) write_full(result_fd, buf, n);
        _exit(EXIT_SUCCESS);
}

/* Looks the next recipient up and starts its delivery process. 1: it runs; 0: settled here (recorded). */
static int recipient_start(VirtualCall *c) {
        Daemon *d = c->req.agent->daemon;
        Virtual *v = c->req.agent->userdata;
        _cleanup_(virtual_target_done) VirtualTarget t = {};
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        const MailboxMessage m = {
                .queue_fd = c->req.fd,
                .envelope = c->req.envelope,
                .sender = c->req.sender,
                .recipient = c->req.recipients[c->n_done].address,
                .original = c->req.recipients[c->n_done].original,
        };
        MailboxResult result;
        int p[2], r;
        pid_t pid;

        if (!virtual_lookup(&v->maps, d->config, m.recipient, &t, &result)) {
                call_record(c, &result);
                return 0;
        }
        if (pipe2(p, O_CLOEXEC) < 0) {
                mailbox_result_set(&result, "4.3.0", "cannot create a pipe: %m");
                call_record(c, &result);
                return 0;
        }
        rfd = p[0];
        wfd = p[1];
        pid = fork();
        if (pid < 0) {
                mailbox_result_set(&result, "4.3.0", "cannot start a delivery process: %m");
                call_record(c, &result);
                return 0;
        }
        if (pid == 0)
                child_main(&m, d->config, &t, wfd);
        wfd = safe_close(wfd);
        r = sd_event_add_child(d->event, &c->child, pid, WEXITED, on_child, c);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                mailbox_result_set(&result, "4.3.0", "cannot watch the delivery process: %s", strerror(-r));
                call_record(c, &result);
                return 0;
        }
        c->pid = pid;
        c->result_fd = TAKE_FD(rfd);
        return 1;
}

static int virtual_start(DeliveryRequest *req) {
        VirtualCall *c = (VirtualCall *) req;

        /* Recipients settled without a process (unknown, misconfigured) go at once. */
        while (c->n_done < req->n_recipients && !req->deadline_hit)
                if (recipient_start(c) > 0)
                        return 1;
        call_continue(c);
        return 0;
}

static void virtual_deadline(DeliveryRequest *req) {
        VirtualCall *c = (VirtualCall *) req;

        if (req->running && c->pid > 0)
                (void) kill(c->pid, SIGKILL);   /* its end is reported as usual and finishes the call */
        else if (!req->running)
                call_continue(c);
}

/* Lets a running delivery end rather than leave half a message in a mailbox. */
static void virtual_stop(DeliveryRequest *req) {
        VirtualCall *c = (VirtualCall *) req;

        if (req->running && c->pid > 0) {
                siginfo_t si = {};
                (void) waitid(P_PID, c->pid, &si, WEXITED);
                child_ended(c, &si);
        }
        if (delivery_request_peer_connected(req))
                call_defer_rest(c, "virtual delivery agent is stopping");
}

static int virtual_prepare(DeliveryRequest *req) {
        VirtualCall *c = (VirtualCall *) req;

        c->result_fd = -EBADF;
        c->results = calloc(req->n_recipients, sizeof(MailboxResult));
        return c->results ? 0 : -ENOMEM;
}

static void virtual_call_done(DeliveryRequest *req) {
        VirtualCall *c = (VirtualCall *) req;

        if (c->pid > 0) {
                (void) kill(c->pid, SIGKILL);
                (void) waitpid(c->pid, NULL, 0);
        }
        sd_event_source_disable_unref(c->child);
        safe_close(c->result_fd);
        free(c->results);
}

static const DeliveryAgentOps virtual_ops = {
        .request_size = sizeof(VirtualCall),
        .recipients_max = VIRTUAL_RECIPIENTS_MAX,
        .options_max = 0,               /* its parameters are main.cf's */
        .prepare = virtual_prepare,
        .start = virtual_start,
        .deadline = virtual_deadline,
        .stop = virtual_stop,
        .finish = virtual_finish,
        .done = virtual_call_done,
};

int virtual_new(Daemon *d, int listen_fd, uid_t peer_uid, DeliveryAgent **ret) {
        Virtual *v = calloc(1, sizeof(Virtual));
        int r;

        if (!v)
                return -ENOMEM;
        r = virtual_maps_open(&v->maps, d->config);
        if (r >= 0)
                r = delivery_agent_new(d, listen_fd, peer_uid, &virtual_ops, v, ret);
        if (r < 0) {
                virtual_maps_done(&v->maps);
                free(v);
        }
        return r;
}

int virtual_reload(DeliveryAgent *a, const Config *c) {
        Virtual *v = a->userdata;
        VirtualMaps maps = {};
        int r;

        r = virtual_maps_open(&maps, c);
        if (r < 0) {
                virtual_maps_done(&maps);
                return r == -ENOMEM ? log_oom() : -EINVAL;
        }
        virtual_maps_done(&v->maps);
        v->maps = maps;
        return 0;
}

DeliveryAgent *virtual_free(DeliveryAgent *a) {
        Virtual *v;

        if (!a)
                return NULL;
        v = a->userdata;
        delivery_agent_free(a);
        virtual_maps_done(&v->maps);
        free(v);
        return NULL;
}
