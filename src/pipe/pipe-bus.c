/* pipe-bus.c: the org.postbus.Delivery1 service of the pipe process. Each Deliver call is checked, its
 * transport's settings are read from the options, its recipients share one command (at most
 * default_process_limit commands run at once over all calls; the rest wait in line), and the call is
 * answered, with a journal record per recipient, when the command has ended or the call's time is up. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "address.h"
#include "agent-bus.h"
#include "bus-util.h"
#include "log.h"
#include "pipe.h"

/* Longest transport name and next hop accepted. */
#define PIPE_TRANSPORT_MAX 64U
#define PIPE_NEXTHOP_MAX 1024U

typedef struct PipeRecipient {
        uint32_t index;                 /* in the queue file's recipient list, handed back as it came */
        char *address;                  /* as qmgr resolved it */
        const char *original;           /* the queue file's recipient (owned by the envelope) */
} PipeRecipient;

typedef struct PipeCall PipeCall;

struct Pipe {
        Daemon *daemon;
        BusServer *server;
        sd_event_source *exit_source;
        PipeForbidden forbidden;
        PipeCall *calls;                /* every call in progress */
        PipeCall *waiting;              /* calls whose command waits for a slot, oldest first */
        PipeCall *waiting_tail;
        unsigned n_running;
};

struct PipeCall {
        Pipe *pipe;
        sd_bus_message *message;        /* answered when the call is finished */
        char queue_id[QUEUE_ID_SIZE];
        int fd;                         /* our own copy of the queue file descriptor */
        char *sender;
        char *transport;
        char *nexthop;
        char **options;                 /* "name", "value" pairs */
        QueueEnvelope *envelope;
        PipeRecipient *recipients;
        size_t n_recipients;
        PipeSettings settings;
        char **argv;                    /* expanded */
        char **env;
        char *prefix;
        PipeCommand *command;
        PipeResult result;
        sd_event_source *timer;         /* the deadline of the whole call */
        bool deadline_hit;
        bool is_waiting;
        PipeCall *prev, *next;          /* in Pipe.calls */
        PipeCall *waiting_next;
};

static void waiting_push(PipeCall *c) {
        Pipe *p = c->pipe;

        c->waiting_next = NULL;
        if (p->waiting_tail)
                p->waiting_tail->waiting_next = c;
        else
                p->waiting = c;
        p->waiting_tail = c;
        c->is_waiting = true;
}

static void waiting_remove(PipeCall *c) {
        Pipe *p = c->pipe;
        PipeCall *prev = NULL;

        if (!c->is_waiting)
                return;
        for (PipeCall *i = p->waiting; i != c; i = i->waiting_next)
                prev = i;
        if (prev)
                prev->waiting_next = c->waiting_next;
        else
                p->waiting = c->waiting_next;
        if (p->waiting_tail == c)
                p->waiting_tail = prev;
        c->waiting_next = NULL;
        c->is_waiting = false;
}

static PipeCall *call_free(PipeCall *c) {
        if (!c)
                return NULL;
        waiting_remove(c);
        if (c->prev)
                c->prev->next = c->next;
        else
                c->pipe->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        daemon_busy_dec(c->pipe->daemon);

        if (c->command) {
                c->command = pipe_command_free(c->command);
                c->pipe->n_running--;
        }
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        sd_bus_message_unref(c->message);
        free(c->sender);
        free(c->transport);
        free(c->nexthop);
        strv_free(c->options);
        queue_envelope_free(c->envelope);
        for (size_t i = 0; i < c->n_recipients; i++)
                free(c->recipients[i].address);
        free(c->recipients);
        pipe_settings_done(&c->settings);
        strv_free(c->argv);
        strv_free(c->env);
        free(c->prefix);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PipeCall *, call_free);

static int call_new(Pipe *p, PipeCall **ret) {
        PipeCall *c = calloc(1, sizeof(PipeCall));

        if (!c)
                return -ENOMEM;
        c->pipe = p;
        c->fd = -EBADF;
        c->next = p->calls;
        if (c->next)
                c->next->prev = c;
        p->calls = c;
        daemon_busy_inc(p->daemon);
        *ret = c;
        return 0;
}

/* Postfix's delay= format: two digits, more only where the whole seconds need them. */
static void format_delay(uint64_t usec, char *buf, size_t size) {
        double s = (double) usec / USEC_PER_SEC;

        (void) snprintf(buf, size, s < 1 ? "%.2f" : s < 10 ? "%.1f" : "%.0f", s);
}

static void log_recipient(const PipeCall *c, const PipeRecipient *rcpt) {
        const PipeResult *result = &c->result;
        const char *status = pipe_status_to_string(result->status);
        /* What a success report says (Postfix's X flag): qmgr knows it too, from the flags it passed. */
        const char *action = result->status != PIPE_STATUS_SENT ? NULL
                             : (c->settings.flags & PIPE_FLAG_FINAL) ? "delivered" : "relayed";
        _cleanup_free_ char *to = log_escape(rcpt->address, strlen(rcpt->address));
        _cleanup_free_ char *orig = log_escape(rcpt->original, strlen(rcpt->original));
        _cleanup_free_ char *relay = log_escape(c->transport, strlen(c->transport));
        _cleanup_free_ char *text = log_escape(result->text, strlen(result->text));
        uint64_t now = now_realtime_usec(), arrival = c->envelope->arrival_usec;
        bool same = streq(rcpt->address, rcpt->original);
        char delay[32];

        format_delay(now > arrival ? now - arrival : 0, delay, sizeof delay);
        log_mail(LOG_INFO, c->queue_id,
                 LOG_FIELDS({ "RECIPIENT", to }, { "ORIGINAL_RECIPIENT", same ? NULL : orig }, { "RELAY", relay },
                            { "DSN", result->dsn }, { "DELIVERY_STATUS", status }, { "DSN_ACTION", action }),
                 "to=<%s>%s%s%s, relay=%s, delay=%s, dsn=%s, status=%s (%s)", strna(to), same ? "" : ", orig_to=<",
                 same ? "" : strna(orig), same ? "" : ">", strna(relay), delay, result->dsn, status, strna(text));
}

static bool call_peer_connected(PipeCall *c) {
        return sd_bus_is_open(sd_bus_message_get_bus(c->message)) > 0;
}

/* Logs the result for every recipient, answers and frees the call. */
static void call_finish(PipeCall *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *status = pipe_status_to_string(c->result.status);
        int r;

        for (size_t i = 0; i < c->n_recipients; i++)
                log_recipient(c, c->recipients + i);

        if (!call_peer_connected(c)) {
                /* It takes the whole call as failed and tries again: at worst a duplicate. */
                log_mail(LOG_WARNING, c->queue_id, LOG_NO_FIELDS,
                         "connection to the queue manager lost; the results of %zu recipients are not reported",
                         c->n_recipients);
                call_free(c);
                return;
        }
        r = sd_bus_message_new_method_return(c->message, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ussss)");
        for (size_t i = 0; r >= 0 && i < c->n_recipients; i++)
                r = sd_bus_message_append(reply, "(ussss)", c->recipients[i].index, status, c->result.dsn,
                                          c->transport, c->result.text);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                log_warning_errno(r, "%s: Failed to send the delivery results, ignoring: %m", c->queue_id);
        call_free(c);
}

static void dispatch(Pipe *p);

static void on_command_done(PipeCommand *cmd, const PipeResult *result, void *userdata) {
        PipeCall *c = userdata;
        Pipe *p = c->pipe;

        if (c->deadline_hit)
                pipe_result_set(&c->result, "4.3.0", "delivery time limit exceeded");
        else
                c->result = *result;
        c->command = pipe_command_free(c->command);
        p->n_running--;
        call_finish(c);
        dispatch(p);
}

static void dispatch(Pipe *p) {
        while (p->waiting && p->n_running < (unsigned) p->daemon->config->default_process_limit) {
                PipeCall *c = p->waiting;
                const PipeCommandSpec spec = {
                        .argv = c->argv,
                        .env = c->env,
                        .settings = &c->settings,
                        .transport = c->transport,
                        .prefix = c->prefix,
                        .queue_fd = c->fd,
                        .envelope = c->envelope,
                };
                int r;

                waiting_remove(c);
                r = pipe_command_start(p->daemon->event, &spec, on_command_done, c, &c->command);
                if (r >= 0) {
                        p->n_running++;
                        log_debug("%s: started %s as %s, pid %d", c->queue_id, c->argv[0], c->settings.user,
                                  (int) pipe_command_pid(c->command));
                        continue;
                }
                pipe_result_set(&c->result, "4.3.0", "Delivery failed: cannot start a command: %s", strerror(-r));
                call_finish(c);
        }
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        PipeCall *c = userdata;

        c->deadline_hit = true;
        if (c->command)
                pipe_command_kill(c->command);  /* on_command_done answers */
        else if (c->is_waiting) {
                waiting_remove(c);
                pipe_result_set(&c->result, "4.3.0", "delivery time limit exceeded");
                call_finish(c);
        }
        return 0;
}

/* A transport's fault: the mail waits (4.3.5) while the administrator is told. */
static int config_error(PipeCall *c, const char *why) {
        _cleanup_free_ char *t = log_escape(c->transport, strlen(c->transport));
        _cleanup_free_ char *w = log_escape(why, strlen(why));

        log_mail(LOG_WARNING, c->queue_id, LOG_FIELDS({ "RELAY", t }), "warning: transport %s: %s", strna(t), strna(w));
        pipe_result_set(&c->result, "4.3.5", "mail system configuration error: %s", why);
        return 1;
}

/* Whether the message already went through this recipient (D flag). */
static int delivered_to_loop(PipeCall *c, const char *address) {
        _cleanup_free_ char *buf = malloc(QUEUE_RECORD_MAX);
        uint64_t off = c->envelope->content_offset;
        PipeHeaderScan scan;
        int n;

        if (!buf)
                return -ENOMEM;
        pipe_header_scan_init(&scan, address);
        while ((n = queue_file_content_next(c->fd, c->envelope, &off, buf)) > 0)
                if (pipe_header_scan_feed(&scan, buf, (size_t) n))
                        break;
        if (n < 0)
                return n;
        pipe_header_scan_finish(&scan);
        return scan.found;
}

/* A queue file attribute for the argv macros; "" when the message has none. */
static const char *attr(const QueueEnvelope *e, const char *name) {
        return strempty(queue_envelope_attr(e, name));
}

/* Everything before the command runs: the settings, the checks Postfix's pipe makes before it starts one,
 * the command line, its environment and the lines before the message. Returns 1 when the call already has
 * its result, 0 when the command is to run. */
static int call_prepare(PipeCall *c) {
        _cleanup_free_ char *error = NULL;
        const QueueEnvelope *e = c->envelope;
        char size[32];
        int r;

        r = pipe_settings_parse((const char *const *) c->options, c->pipe->daemon->config, &c->settings, &error);
        if (r == -EINVAL)
                return config_error(c, error);
        if (r < 0)
                return r;
        r = pipe_settings_resolve_user(&c->settings, &c->pipe->forbidden, &error);
        if (r == -EINVAL)
                return config_error(c, error);
        if (r < 0)
                return r;

        /* Headers about one recipient cannot go to a command for several. */
        if (c->n_recipients > 1 && (c->settings.flags & (PIPE_FLAG_DELIVERED_TO | PIPE_FLAG_ORIGINAL_TO))) {
                _cleanup_free_ char *why = NULL;
                if (asprintf(&why, "flag %s requires %s_destination_recipient_limit = 1",
                             (c->settings.flags & PIPE_FLAG_DELIVERED_TO) ? "D" : "O", c->transport) < 0)
                        return -ENOMEM;
                return config_error(c, why);
        }
        if (c->settings.size_limit > 0 && e->content_size > c->settings.size_limit) {
                pipe_result_set(&c->result, "5.2.3", "message too large");
                return 1;
        }
        if (c->settings.flags & PIPE_FLAG_DELIVERED_TO) {
                _cleanup_free_ char *internal = NULL, *quoted = NULL;
                /* The header is compared in the form D writes it. */
                r = pipe_address_unquote(c->recipients[0].address, &internal);
                if (r >= 0)
                        r = pipe_address_quote(internal, &quoted);
                if (r >= 0)
                        r = delivered_to_loop(c, quoted);
                if (r < 0) {
                        pipe_result_set(&c->result, "4.3.0", "cannot read the queue file: %s", strerror(-r));
                        return 1;
                }
                if (r > 0) {
                        pipe_result_set(&c->result, "5.4.6", "mail forwarding loop for %s", c->recipients[0].address);
                        return 1;
                }
        }

        (void) snprintf(size, sizeof size, "%" PRIu64, e->content_size);
        const char *const vars[] = {
                "size", size,
                "queue_id", c->queue_id,
                "client_address", attr(e, "client_address"),
                "client_hostname", attr(e, "client_name"),
                "client_helo", attr(e, "helo_name"),
                "client_port", attr(e, "client_port"),
                "client_protocol", attr(e, "protocol"),
                "sasl_method", attr(e, "sasl_method"),
                "sasl_username", attr(e, "sasl_username"),
                "sasl_sender", attr(e, "sasl_sender"),
                NULL,
        };
        _cleanup_free_ PipeAddress *addresses = calloc(c->n_recipients, sizeof(PipeAddress));
        if (!addresses)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_recipients; i++)
                addresses[i] = (PipeAddress) { c->recipients[i].address, c->recipients[i].original };
        const PipeExpand x = {
                .flags = c->settings.flags,
                .delimiter = c->settings.recipient_delimiter,
                .sender = c->sender,
                .null_sender = c->settings.null_sender,
                .nexthop = c->nexthop,
                .vars = vars,
                .recipients = addresses,
                .n_recipients = c->n_recipients,
        };
        r = pipe_argv_expand(c->settings.argv, &x, &c->argv, &error);
        if (r == -EINVAL)
                return config_error(c, error);
        if (r == -E2BIG)
                return config_error(c, "the command line has too many arguments");
        if (r < 0)
                return r;

        r = pipe_environment(c->settings.export_environment, &c->env);
        if (r < 0)
                return r;
        r = pipe_message_prefix(c->settings.flags, c->sender, c->settings.null_sender, c->recipients[0].original,
                                c->recipients[0].address, c->settings.eol, time(NULL), &c->prefix);
        if (r < 0)
                return r;
        return 0;
}

static int invalid(sd_bus_error *error, const char *text) {
        return sd_bus_error_set(error, POSTBUS_ERROR_INVALID_ARGS, text);
}

/* A master.cf service name. */
static bool transport_valid(const char *s) {
        if (isempty(s) || strlen(s) > PIPE_TRANSPORT_MAX)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("-_.", *s)))
                        return false;
        return true;
}

/* Empty is allowed: ${nexthop} is then empty (Postfix's qmgr always has one; ours may not). */
static bool nexthop_valid(const char *s) {
        if (strlen(s) > PIPE_NEXTHOP_MAX)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= ' ' || *s == 0x7F)
                        return false;
        return true;
}

static int read_options(sd_bus_message *m, PipeCall *c, sd_bus_error *error) {
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name, *value;

                r = sd_bus_message_read(m, "{ss}", &name, &value);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (n / 2 >= PIPE_OPTIONS_MAX)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "More than %u options.",
                                                 PIPE_OPTIONS_MAX);
                if (isempty(name) || strlen(name) > 64 || strlen(value) > PIPE_OPTION_VALUE_MAX)
                        return invalid(error, "Invalid option.");
                char **nl = realloc(c->options, (n + 3) * sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                c->options = nl;
                nl[n] = strdup(name);
                nl[n + 1] = strdup(value);
                nl[n + 2] = NULL;
                n += 2;
                if (!nl[n - 2] || !nl[n - 1])
                        return -ENOMEM;
        }
        return sd_bus_message_exit_container(m);
}

static int read_recipients(sd_bus_message *m, PipeCall *c, sd_bus_error *error) {
        int r;

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
                if (c->n_recipients >= PIPE_RECIPIENTS_MAX)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "More than %u recipients.",
                                                 PIPE_RECIPIENTS_MAX);
                if (isempty(address) || !address_valid(address))
                        return invalid(error, "Invalid recipient address.");
                PipeRecipient *n = realloc(c->recipients, (c->n_recipients + 1) * sizeof(PipeRecipient));
                if (!n)
                        return -ENOMEM;
                c->recipients = n;
                n[c->n_recipients] = (PipeRecipient) { .index = index, .address = strdup(address) };
                if (!n[c->n_recipients++].address)
                        return -ENOMEM;
        }
        return sd_bus_message_exit_container(m);
}

static int method_deliver(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pipe *p = userdata;
        _cleanup_(call_freep) PipeCall *c = NULL;
        const char *queue_id, *sender, *transport, *nexthop;
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(m, "hssss", &fd, &queue_id, &sender, &transport, &nexthop);
        if (r < 0)
                return r;
        r = call_new(p, &c);
        if (r < 0)
                return r;
        r = read_options(m, c, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        r = read_recipients(m, c, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;

        if (c->n_recipients == 0)
                return invalid(error, "No recipients.");
        if (!queue_id_valid(queue_id))
                return invalid(error, "Invalid queue ID.");
        if (!address_valid(sender))
                return invalid(error, "Invalid sender address.");
        if (!transport_valid(transport))
                return invalid(error, "Invalid transport name.");
        if (!nexthop_valid(nexthop))
                return invalid(error, "Invalid next hop.");
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return invalid(error, "The queue file is not a regular file.");

        strcpy(c->queue_id, queue_id);
        c->sender = strdup(sender);
        c->transport = strdup(transport);
        c->nexthop = strdup(nexthop);
        if (!c->sender || !c->transport || !c->nexthop)
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
        for (size_t i = 0; i < c->n_recipients; i++) {
                if (c->recipients[i].index >= c->envelope->n_recipients)
                        return invalid(error, "Recipient index out of range.");
                c->recipients[i].original = c->envelope->recipients[c->recipients[i].index].address;
        }

        c->message = sd_bus_message_ref(m);
        r = call_prepare(c);
        if (r < 0)
                return r;
        if (r > 0) {
                call_finish(TAKE_PTR(c));
                return 1;
        }
        /* Answer before qmgr, which waits daemon_timeout, gives up on the call. */
        r = sd_event_add_time_relative(p->daemon->event, &c->timer, CLOCK_MONOTONIC,
                                       (uint64_t) p->daemon->config->daemon_timeout * USEC_PER_SEC / 10 * 9,
                                       USEC_PER_SEC, on_deadline, c);
        if (r < 0)
                return r;
        waiting_push(TAKE_PTR(c));
        dispatch(p);
        return 1;
}

static const sd_bus_vtable pipe_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Deliver",
                                SD_BUS_ARGS("h", queue_file, "s", queue_id, "s", sender, "s", transport, "s", nexthop,
                                            "a{ss}", options, "a(us)", recipients),
                                SD_BUS_RESULT("a(ussss)", results),
                                method_deliver, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int pipe_bus_add(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, DELIVERY_OBJECT_PATH, DELIVERY_INTERFACE, pipe_vtable, userdata);
}

/* At exit: a command still running is killed (a duplicate at worst, when qmgr tries again), and every call
 * is answered with what is known. */
static void pipe_finish_calls(Pipe *p) {
        while (p->calls) {
                PipeCall *c = p->calls;

                if (c->command) {
                        c->command = pipe_command_free(c->command);
                        p->n_running--;
                }
                waiting_remove(c);
                pipe_result_set(&c->result, "4.3.0", "pipe delivery agent is stopping");
                call_finish(c);
        }
}

/* Runs when the event loop exits, before the connections close (they do so in exit sources of normal
 * priority). */
static int on_event_exit(sd_event_source *s, void *userdata) {
        pipe_finish_calls(userdata);
        return 0;
}

int pipe_new(Daemon *d, int listen_fd, uid_t peer_uid, const PipeForbidden *forbidden, Pipe **ret) {
        Pipe *p = calloc(1, sizeof(Pipe));
        int r;

        if (!p)
                return -ENOMEM;
        p->daemon = d;
        p->forbidden = *forbidden;
        r = sd_event_add_exit(d->event, &p->exit_source, on_event_exit, p);
        if (r >= 0)
                r = sd_event_source_set_priority(p->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = bus_server_new(d, listen_fd, pipe_bus_add, p, &p->server);
        if (r < 0) {
                pipe_free(p);
                return r;
        }
        if (peer_uid != (uid_t) -1)
                bus_server_allow_uid(p->server, peer_uid);
        *ret = p;
        return 0;
}

Pipe *pipe_free(Pipe *p) {
        if (!p)
                return NULL;
        pipe_finish_calls(p);
        sd_event_source_disable_unref(p->exit_source);
        bus_server_free(p->server);
        free(p);
        return NULL;
}
