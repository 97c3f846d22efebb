/* local-bus.c: the org.postbus.Delivery1 service. Each Deliver call is checked, its recipients are delivered
 * one after another by delivery children (at most default_process_limit at once over all calls, the
 * rest wait in line), a journal record is written per recipient, and the call is answered when its last
 * recipient is done or its time is up. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "address.h"
#include "bus-util.h"
#include "local.h"
#include "log.h"

#define LOCAL_OBJECT_PATH "/org/postbus/Delivery1"
#define LOCAL_INTERFACE "org.postbus.Delivery1"

typedef struct LocalRecipient {
        uint32_t index;                 /* in the queue file's recipient list, handed back as it came */
        char *address;
        LocalResult result;
} LocalRecipient;

typedef struct LocalCall LocalCall;

struct Local {
        Daemon *daemon;
        BusServer *server;
        sd_event_source *exit_source;
        LocalCall *calls;               /* every call in progress */
        LocalCall *waiting;             /* calls whose next recipient waits for a process, oldest first */
        LocalCall *waiting_tail;
        unsigned n_children;
};

struct LocalCall {
        Local *local;
        sd_bus_message *message;        /* answered when the call is finished */
        char queue_id[QUEUE_ID_SIZE];
        int fd;                         /* our own copy of the queue file descriptor */
        char *sender;
        QueueEnvelope *envelope;
        LocalRecipient *recipients;
        size_t n_recipients;
        size_t n_done;                  /* recipients[0..n_done) have a result */
        sd_event_source *timer;         /* the deadline of the whole call */
        bool timed_out;
        pid_t pid;                      /* the child delivering to recipients[n_done], or 0 */
        int result_fd;
        sd_event_source *child;
        bool is_waiting;
        LocalCall *prev, *next;         /* in Local.calls */
        LocalCall *waiting_next;
};

static void waiting_push(LocalCall *c) {
        Local *l = c->local;

        c->waiting_next = NULL;
        if (l->waiting_tail)
                l->waiting_tail->waiting_next = c;
        else
                l->waiting = c;
        l->waiting_tail = c;
        c->is_waiting = true;
}

static void waiting_remove(LocalCall *c) {
        Local *l = c->local;
        LocalCall *prev = NULL;

        if (!c->is_waiting)
                return;
        for (LocalCall *i = l->waiting; i != c; i = i->waiting_next)
                prev = i;
        if (prev)
                prev->waiting_next = c->waiting_next;
        else
                l->waiting = c->waiting_next;
        if (l->waiting_tail == c)
                l->waiting_tail = prev;
        c->waiting_next = NULL;
        c->is_waiting = false;
}

static LocalCall *call_free(LocalCall *c) {
        if (!c)
                return NULL;
        waiting_remove(c);
        if (c->prev)
                c->prev->next = c->next;
        else
                c->local->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        daemon_busy_dec(c->local->daemon);

        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->child);
        safe_close(c->result_fd);
        safe_close(c->fd);
        sd_bus_message_unref(c->message);
        free(c->sender);
        queue_envelope_free(c->envelope);
        for (size_t i = 0; i < c->n_recipients; i++)
                free(c->recipients[i].address);
        free(c->recipients);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(LocalCall *, call_free);

static int call_new(Local *l, LocalCall **ret) {
        LocalCall *c = calloc(1, sizeof(LocalCall));

        if (!c)
                return -ENOMEM;
        c->local = l;
        c->fd = c->result_fd = -EBADF;
        c->next = l->calls;
        if (c->next)
                c->next->prev = c;
        l->calls = c;
        daemon_busy_inc(l->daemon);
        *ret = c;
        return 0;
}

/* Postfix's delay= format: two digits, more only where the whole seconds need them. */
static void format_delay(uint64_t usec, char *buf, size_t size) {
        double s = (double) usec / USEC_PER_SEC;

        (void) snprintf(buf, size, s < 1 ? "%.2f" : s < 10 ? "%.1f" : "%.0f", s);
}

static void log_delivery(LocalCall *c, const char *to, const char *orig_to, const LocalResult *result) {
        const char *status = local_status_to_string(result->status);
        uint64_t now = now_realtime_usec(), arrival = c->envelope->arrival_usec;
        char delay[32];

        format_delay(now > arrival ? now - arrival : 0, delay, sizeof delay);
        if (isempty(orig_to))
                log_mail(LOG_INFO, c->queue_id,
                         LOG_FIELDS({ "RECIPIENT", to }, { "RELAY", "local" }, { "DSN", result->dsn },
                                    { "DELIVERY_STATUS", status }),
                         "to=<%s>, relay=local, delay=%s, dsn=%s, status=%s (%s)",
                         to, delay, result->dsn, status, result->text);
        else
                log_mail(LOG_INFO, c->queue_id,
                         LOG_FIELDS({ "RECIPIENT", to }, { "ORIGINAL_RECIPIENT", orig_to }, { "RELAY", "local" },
                                    { "DSN", result->dsn }, { "DELIVERY_STATUS", status }),
                         "to=<%s>, orig_to=<%s>, relay=local, delay=%s, dsn=%s, status=%s (%s)",
                         to, orig_to, delay, result->dsn, status, result->text);
}

/* Stores the result of the next recipient and logs it. */
static void call_record(LocalCall *c, const LocalResult *result) {
        LocalRecipient *rcpt = c->recipients + c->n_done++;
        _cleanup_free_ char *address = log_escape(rcpt->address, strlen(rcpt->address));

        rcpt->result = *result;
        log_delivery(c, strna(address), NULL, result);
}

/* The report of the child that delivered to the next recipient: every final delivery is logged, and the
 * recipient's result is deferred if any of them is, else bounced if any is, else sent. */
static void call_report(LocalCall *c, const siginfo_t *si, bool timed_out) {
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
                        log_mail(LOG_WARNING, c->queue_id, LOG_NO_FIELDS, "malformed report from a delivery process");
                        start = end + 1;
                        continue;
                }
                start = end + 1;
                if (l.type == 'I') {
                        LocalRecipient *rcpt = c->recipients + c->n_done;
                        _cleanup_free_ char *address = log_escape(rcpt->address, strlen(rcpt->address));
                        log_mail(LOG_WARNING, c->queue_id,
                                 LOG_FIELDS({ "MESSAGE_ID", POSTBUS_MESSAGE_FORWARD_FILE_IGNORED },
                                            { "FORWARD_FILE", l.path }, { "RECIPIENT", address }),
                                 "warning: file %s %s -- ignored", l.path, l.text);
                        local_report_line_done(&l);
                        continue;
                }
                if (l.type == 'W') {
                        log_mail(LOG_WARNING, c->queue_id, LOG_NO_FIELDS, "warning: %s", l.text);
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
        c->recipients[c->n_done++].result = have_deferred ? deferred : have_bounced ? bounced : sent;
}

/* Gives every recipient still without a result a temporary failure. */
static void call_defer_rest(LocalCall *c, const char *text) {
        LocalResult result;

        local_result_set(&result, "4.3.0", "%s", text);
        while (c->n_done < c->n_recipients)
                call_record(c, &result);
}

static bool call_peer_connected(LocalCall *c) {
        return sd_bus_is_open(sd_bus_message_get_bus(c->message)) > 0;
}

/* Answers with the result of every recipient and frees the call. */
static void call_finish(LocalCall *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (c->n_done < c->n_recipients) {
                /* Only when the peer went away: it takes the whole call as failed and tries again. */
                log_mail(LOG_WARNING, c->queue_id, LOG_NO_FIELDS,
                         "connection to the queue manager lost; %zu recipients not delivered",
                         c->n_recipients - c->n_done);
                call_free(c);
                return;
        }
        r = sd_bus_message_new_method_return(c->message, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ussss)");
        for (size_t i = 0; r >= 0 && i < c->n_recipients; i++) {
                const LocalRecipient *rcpt = c->recipients + i;
                r = sd_bus_message_append(reply, "(ussss)", rcpt->index,
                                          local_status_to_string(rcpt->result.status), rcpt->result.dsn, "local",
                                          rcpt->result.text);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                log_warning_errno(r, "%s: Failed to send the delivery results, ignoring: %m", c->queue_id);
        call_free(c);
}

/* Finishes the call when nothing is left to do for it, else puts it in line for a process slot. */
static void call_continue(LocalCall *c) {
        if (c->n_done < c->n_recipients && c->timed_out)
                call_defer_rest(c, "delivery time limit exceeded");
        if (c->n_done == c->n_recipients || !call_peer_connected(c))
                call_finish(c);
        else
                waiting_push(c);
}

static void dispatch(Local *l);

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        LocalCall *c = userdata;
        Local *l = c->local;

        call_report(c, si, c->timed_out);
        c->result_fd = safe_close(c->result_fd);
        c->child = sd_event_source_disable_unref(c->child);
        c->pid = 0;
        l->n_children--;
        call_continue(c);
        dispatch(l);
        return 0;
}

static int call_start_child(LocalCall *c) {
        LocalRecipient *rcpt = c->recipients + c->n_done;
        const LocalMessage m = {
                .queue_fd = c->fd,
                .envelope = c->envelope,
                .sender = c->sender,
                .recipient = rcpt->address,
        };
        int r;

        r = local_child_start(&m, c->local->daemon->config, &c->pid, &c->result_fd);
        if (r < 0)
                return r;
        r = sd_event_add_child(c->local->daemon->event, &c->child, c->pid, WEXITED, on_child, c);
        if (r < 0) {
                /* Unwatched, it cannot be reported: stop it and reap it here. */
                (void) kill(-c->pid, SIGKILL);
                (void) waitpid(c->pid, NULL, 0);
                c->pid = 0;
                c->result_fd = safe_close(c->result_fd);
                return r;
        }
        c->local->n_children++;
        return 0;
}

static void dispatch(Local *l) {
        while (l->waiting && l->n_children < (unsigned) l->daemon->config->default_process_limit) {
                LocalCall *c = l->waiting;
                LocalResult result;
                int r;

                waiting_remove(c);
                r = call_start_child(c);
                if (r >= 0)
                        continue;
                local_result_set(&result, "4.3.0", "cannot start a delivery process: %s", strerror(-r));
                call_record(c, &result);
                call_continue(c);
        }
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        LocalCall *c = userdata;

        c->timed_out = true;
        if (c->pid > 0)
                (void) kill(-c->pid, SIGKILL);  /* with its commands; on_child reports it and finishes the call */
        else if (c->is_waiting) {
                waiting_remove(c);
                call_continue(c);
        }
        return 0;
}

static int invalid(sd_bus_error *error, const char *text) {
        return sd_bus_error_set(error, POSTBUS_ERROR_INVALID_ARGS, text);
}

static int method_deliver(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Local *l = userdata;
        _cleanup_(call_freep) LocalCall *c = NULL;
        const char *queue_id, *sender, *transport, *nexthop;
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(m, "hssss", &fd, &queue_id, &sender, &transport, &nexthop);
        if (r < 0)
                return r;
        /* local has no per-transport options: its parameters are main.cf's. */
        r = sd_bus_message_skip(m, "a{ss}");
        if (r < 0)
                return r;
        r = call_new(l, &c);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "(us)");
        if (r < 0)
                return r;
        for (;;) {
                uint32_t index;
                const char *address;

                r = sd_bus_message_read(m, "(us)", &index, &address);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (c->n_recipients >= LOCAL_RECIPIENTS_MAX)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS,
                                                 "More than %u recipients.", LOCAL_RECIPIENTS_MAX);
                if (isempty(address) || !address_valid(address))
                        return invalid(error, "Invalid recipient address.");
                LocalRecipient *n = realloc(c->recipients, (c->n_recipients + 1) * sizeof(LocalRecipient));
                if (!n)
                        return -ENOMEM;
                c->recipients = n;
                n[c->n_recipients] = (LocalRecipient) { .index = index, .address = strdup(address) };
                if (!n[c->n_recipients++].address)
                        return -ENOMEM;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        if (c->n_recipients == 0)
                return invalid(error, "No recipients.");
        if (!queue_id_valid(queue_id))
                return invalid(error, "Invalid queue ID.");
        if (!address_valid(sender))
                return invalid(error, "Invalid sender address.");
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return invalid(error, "The queue file is not a regular file.");

        strcpy(c->queue_id, queue_id);
        c->sender = strdup(sender);
        if (!c->sender)
                return -ENOMEM;
        c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (c->fd < 0)
                return -errno;
        /* qmgr read the file before; if it is unreadable now, qmgr should look again rather than log a
         * deferral per recipient: the whole call fails. */
        r = queue_file_read(c->fd, &c->envelope);
        if (r < 0) {
                const char *why = r == -EBADMSG ? "queue file is corrupt" : "cannot read the queue file";
                log_mail(LOG_WARNING, c->queue_id, LOG_NO_FIELDS, "%s: %s", why, strerror(-r));
                return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY, "4.3.0 %s", why);
        }
        for (size_t i = 0; i < c->n_recipients; i++)
                if (c->recipients[i].index >= c->envelope->n_recipients)
                        return invalid(error, "Recipient index out of range.");

        /* Answer before qmgr, which waits daemon_timeout, gives up on the call. */
        r = sd_event_add_time_relative(l->daemon->event, &c->timer, CLOCK_MONOTONIC,
                                       (uint64_t) l->daemon->config->daemon_timeout * USEC_PER_SEC / 10 * 9,
                                       USEC_PER_SEC, on_deadline, c);
        if (r < 0)
                return r;
        c->message = sd_bus_message_ref(m);
        waiting_push(TAKE_PTR(c));
        dispatch(l);
        return 1;
}

static const sd_bus_vtable local_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Deliver",
                                SD_BUS_ARGS("h", queue_file, "s", queue_id, "s", sender, "s", transport,
                                            "s", nexthop, "a{ss}", options, "a(us)", recipients),
                                SD_BUS_RESULT("a(ussss)", results),
                                method_deliver, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int local_bus_add(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, LOCAL_OBJECT_PATH, LOCAL_INTERFACE, local_vtable,
                                        userdata);
}

/* Lets running deliveries end rather than leave half a message in a mailbox, and answers every call with
 * what is known. */
static void local_finish_calls(Local *l) {
        while (l->calls) {
                LocalCall *c = l->calls;

                if (c->pid > 0) {
                        siginfo_t si = {};

                        (void) waitid(P_PID, c->pid, &si, WEXITED);
                        call_report(c, &si, false);
                        c->pid = 0;
                }
                if (call_peer_connected(c))
                        call_defer_rest(c, "local delivery agent is stopping");
                call_finish(c);
        }
}

/* Runs when the event loop exits, before the connections close (they do so in exit sources of normal
 * priority). */
static int on_event_exit(sd_event_source *s, void *userdata) {
        local_finish_calls(userdata);
        return 0;
}

int local_new(Daemon *d, int listen_fd, uid_t peer_uid, Local **ret) {
        Local *l = calloc(1, sizeof(Local));
        int r;

        if (!l)
                return -ENOMEM;
        l->daemon = d;
        r = sd_event_add_exit(d->event, &l->exit_source, on_event_exit, l);
        if (r >= 0)
                r = sd_event_source_set_priority(l->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = bus_server_new(d, listen_fd, local_bus_add, l, &l->server);
        if (r < 0) {
                local_free(l);
                return r;
        }
        if (peer_uid != (uid_t) -1)
                bus_server_allow_uid(l->server, peer_uid);
        *ret = l;
        return 0;
}

Local *local_free(Local *l) {
        if (!l)
                return NULL;
        local_finish_calls(l);
        sd_event_source_disable_unref(l->exit_source);
        bus_server_free(l->server);
        free(l);
        return NULL;
}
