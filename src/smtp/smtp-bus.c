/* smtp-bus.c: the org.postbus.Delivery1 service of postbus-smtp, on the smtp and the lmtp socket. Each
 * Deliver call is checked, its transport's settings are read (main.cf with master.cf's -o overrides), its
 * next hop becomes a list of server addresses (smtp-dest.c), and sessions (smtp-session.c) try them in
 * order until every recipient has a result; then the call is answered. One journal record per recipient. */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "address.h"
#include "agent-bus.h"
#include "bus-util.h"
#include "log.h"
#include "smtp.h"
#include "string-util.h"

/* Most recipients and options one call may carry, longest transport name and next hop. */
#define SMTP_RECIPIENTS_MAX 100000U
#define SMTP_OPTIONS_MAX 256U
#define SMTP_TRANSPORT_MAX 64U
#define SMTP_NEXTHOP_MAX 1024U

typedef struct SmtpListener {
        Smtp *smtp;
        bool lmtp;
        BusServer *server;
} SmtpListener;

struct Smtp {
        Daemon *daemon;
        SmtpListener listeners[2];
        sd_event_source *exit_source;
        SmtpCall *calls;
};

struct SmtpCall {
        Smtp *smtp;
        sd_bus_message *message;        /* answered when every recipient has a result */
        char queue_id[QUEUE_ID_SIZE];
        int fd;                         /* our own copy of the queue file descriptor */
        char *sender;
        char *transport;
        char *nexthop;
        QueueEnvelope *envelope;
        SmtpRecipient *recipients;
        size_t n_recipients;
        SmtpSettings settings;
        SmtpDest *dest;                 /* finding the server addresses */
        SmtpAddress *addresses;
        size_t n_addresses;
        size_t next_address;
        unsigned n_sessions;            /* sessions that got a connection, for smtp_mx_session_limit */
        SmtpSession *session;
        char last_dsn[16];              /* the last failure of a server, for the recipients left at the end */
        char *last_text;
        char *last_relay;               /* NULL: "none" (no connection) */
        char tls[160];                  /* the TLS facts of the last session, "none" without TLS */
        sd_event_source *timer;         /* the deadline of the whole call */
        SmtpCall *prev, *next;
};

static void settings_done(SmtpSettings *s) {
        s->helo_name = mfree(s->helo_name);
        s->tls_cafile = mfree(s->tls_cafile);
        s->tls_capath = mfree(s->tls_capath);
        s->tls_match = mfree(s->tls_match);
        s->tls_nexthop = mfree(s->tls_nexthop);
}

static SmtpCall *call_free(SmtpCall *c) {
        if (!c)
                return NULL;
        if (c->prev)
                c->prev->next = c->next;
        else
                c->smtp->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        daemon_busy_dec(c->smtp->daemon);

        smtp_session_free(c->session);
        smtp_dest_free(c->dest);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        sd_bus_message_unref(c->message);
        free(c->sender);
        free(c->transport);
        free(c->nexthop);
        free(c->addresses);
        free(c->last_text);
        free(c->last_relay);
        queue_envelope_free(c->envelope);
        for (size_t i = 0; i < c->n_recipients; i++) {
                free(c->recipients[i].address);
                free(c->recipients[i].relay);
                free(c->recipients[i].text);
        }
        free(c->recipients);
        settings_done(&c->settings);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpCall *, call_free);

static int call_new(Smtp *smtp, SmtpCall **ret) {
        SmtpCall *c = calloc(1, sizeof(SmtpCall));

        if (!c)
                return -ENOMEM;
        c->smtp = smtp;
        c->fd = -EBADF;
        c->next = smtp->calls;
        if (c->next)
                c->next->prev = c;
        smtp->calls = c;
        daemon_busy_inc(smtp->daemon);
        *ret = c;
        return 0;
}

sd_event *smtp_call_event(SmtpCall *c) {
        return c->smtp->daemon->event;
}

Daemon *smtp_call_daemon(SmtpCall *c) {
        return c->smtp->daemon;
}

const SmtpSettings *smtp_call_settings(SmtpCall *c) {
        return &c->settings;
}

const char *smtp_call_queue_id(SmtpCall *c) {
        return c->queue_id;
}

const char *smtp_call_sender(SmtpCall *c) {
        return c->sender;
}

const QueueEnvelope *smtp_call_envelope(SmtpCall *c) {
        return c->envelope;
}

int smtp_call_queue_fd(SmtpCall *c) {
        return c->fd;
}

void smtp_call_set_tls(SmtpCall *c, const char *tls) {
        (void) snprintf(c->tls, sizeof c->tls, "%s", tls);
}

SmtpRecipient *smtp_call_recipients(SmtpCall *c, size_t *ret_n) {
        *ret_n = c->n_recipients;
        return c->recipients;
}

/* Postfix's delay= format: two digits, more only where the whole seconds need them. */
static void format_delay(uint64_t usec, char *buf, size_t size) {
        double s = (double) usec / USEC_PER_SEC;

        (void) snprintf(buf, size, s < 1 ? "%.2f" : s < 10 ? "%.1f" : "%.0f", s);
}

void smtp_call_result(SmtpCall *c, SmtpRecipient *rcpt, const char *dsn, const char *relay, const char *fmt, ...) {
        uint64_t now = now_realtime_usec(), arrival = c->envelope->arrival_usec;
        _cleanup_free_ char *address = NULL;
        char delay[32];
        va_list ap;

        assert(rcpt->state != SMTP_RCPT_DONE);
        rcpt->state = SMTP_RCPT_DONE;
        (void) snprintf(rcpt->dsn, sizeof rcpt->dsn, "%s", dsn);
        strcpy(rcpt->status, dsn[0] == '2' ? DELIVERY_STATUS_SENT
                             : dsn[0] == '5' ? DELIVERY_STATUS_BOUNCED : DELIVERY_STATUS_DEFERRED);
        free(rcpt->relay);
        rcpt->relay = strdup(relay);
        free(rcpt->text);
        va_start(ap, fmt);
        if (vasprintf(&rcpt->text, fmt, ap) < 0)
                rcpt->text = NULL;
        va_end(ap);

        address = log_escape(rcpt->address, strlen(rcpt->address));
        format_delay(now > arrival ? now - arrival : 0, delay, sizeof delay);
        log_mail(LOG_INFO, c->queue_id,
                 LOG_FIELDS({ "RECIPIENT", address }, { "RELAY", strna(rcpt->relay) }, { "DSN", rcpt->dsn },
                            { "DELIVERY_STATUS", rcpt->status }, { "TLS", c->tls[0] ? c->tls : "none" }),
                 "to=<%s>, relay=%s, delay=%s, dsn=%s, status=%s (%s)", strna(address), strna(rcpt->relay),
                 delay, rcpt->dsn, rcpt->status, rcpt->text ? rcpt->text : "out of memory");
}

static bool call_peer_connected(SmtpCall *c) {
        return sd_bus_is_open(sd_bus_message_get_bus(c->message)) > 0;
}

/* Answers with the result of every recipient and frees the call. */
static void call_finish(SmtpCall *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!call_peer_connected(c)) {
                log_mail(LOG_WARNING, c->queue_id, LOG_NO_FIELDS,
                         "connection to the queue manager lost; the delivery results are not reported");
                call_free(c);
                return;
        }
        r = sd_bus_message_new_method_return(c->message, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ussss)");
        for (size_t i = 0; r >= 0 && i < c->n_recipients; i++) {
                const SmtpRecipient *rcpt = c->recipients + i;
                r = sd_bus_message_append(reply, "(ussss)", rcpt->index, rcpt->status, rcpt->dsn,
                                          strempty(rcpt->relay), rcpt->text ? rcpt->text : "out of memory");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                log_warning_errno(r, "%s: Failed to send the delivery results, ignoring: %m", c->queue_id);
        call_free(c);
}

/* Every recipient without a result gets this one. */
static void call_fail_rest(SmtpCall *c, const char *dsn, const char *relay, const char *text) {
        for (size_t i = 0; i < c->n_recipients; i++)
                if (c->recipients[i].state != SMTP_RCPT_DONE)
                        smtp_call_result(c, c->recipients + i, dsn, relay, "%s", text);
}

static bool call_all_done(SmtpCall *c) {
        for (size_t i = 0; i < c->n_recipients; i++)
                if (c->recipients[i].state != SMTP_RCPT_DONE)
                        return false;
        return true;
}

static void call_remember_failure(SmtpCall *c, const char *relay, const char *dsn, const char *text) {
        if (!dsn || !text)
                return;
        free(c->last_text);
        free(c->last_relay);
        c->last_text = strdup(text);
        c->last_relay = relay ? strdup(relay) : NULL;
        (void) snprintf(c->last_dsn, sizeof c->last_dsn, "%s", dsn);
}

/* Starts a session with the next address, or ends the call when there is none. */
static void call_next(SmtpCall *c) {
        while (!call_all_done(c) && c->next_address < c->n_addresses) {
                const SmtpAddress *a = c->addresses + c->next_address++;
                bool final = c->next_address == c->n_addresses ||
                             (c->settings.mx_session_limit > 0 && c->n_sessions + 1 >= c->settings.mx_session_limit);
                int r;

                if (c->settings.mx_session_limit > 0 && c->n_sessions >= c->settings.mx_session_limit)
                        break;
                c->tls[0] = '\0';
                r = smtp_session_start(c, a, final, &c->session);
                if (r >= 0)
                        return;
                /* Refused at once (as loopback does): the next address, as for a refusal seen later. */
                char text[700];
                if (a->sockaddr.sa.sa_family == AF_UNIX)
                        (void) snprintf(text, sizeof text, "connect to %s[%s]: %s", a->host, a->text, strerror(-r));
                else
                        (void) snprintf(text, sizeof text, "connect to %s[%s]:%u: %s", a->host, a->text,
                                        ntohs(a->sockaddr.sa.sa_family == AF_INET ? a->sockaddr.in.sin_port
                                                                                  : a->sockaddr.in6.sin6_port),
                                        strerror(-r));
                call_remember_failure(c, NULL, "4.4.1", text);
                if (r == -ECONNREFUSED || r == -ENETUNREACH || r == -EHOSTUNREACH)
                        smtp_hostcache_fail(a, c->settings.host_failure_cache_time, c->queue_id, strerror(-r));
        }
        if (!call_all_done(c))
                call_fail_rest(c, c->last_text ? c->last_dsn : "4.4.1", c->last_relay ? c->last_relay : "none",
                               c->last_text ? c->last_text : "no server address could be reached");
        call_finish(c);
}

void smtp_call_session_done(SmtpCall *c, SmtpSessionEnd end, const char *relay, const char *dsn,
                            const char *text) {
        c->session = NULL;
        /* As Postfix, smtp_mx_session_limit counts only sessions that got a connection. */
        if (relay)
                c->n_sessions++;
        call_remember_failure(c, relay, dsn, text);
        call_next(c);
}

/* The addresses are known (or the lookup failed: then n == 0 and dsn/text say why). */
void smtp_call_dest_done(SmtpCall *c, SmtpAddress *addresses, size_t n, const char *dsn, const char *text) {
        c->dest = NULL;
        c->addresses = addresses;
        c->n_addresses = n;
        smtp_hostcache_sort(addresses, n, c->settings.host_failure_cache_time);
        if (n == 0) {
                call_fail_rest(c, dsn, "none", text);
                call_finish(c);
                return;
        }
        call_next(c);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        SmtpCall *c = userdata;

        c->session = smtp_session_free(c->session);
        c->dest = smtp_dest_free(c->dest);
        call_fail_rest(c, "4.4.2", "none", "delivery time limit exceeded");
        call_finish(c);
        return 0;
}

/* An INT or TIME parameter of ours, with a -o override. */
static int setting_int(const Config *cfg, char **options, const char *name, int64_t *ret) {
        const ConfigParam *p = config_param_find(name);
        int64_t v;

        assert(p);
        for (char **o = options; o && o[0]; o += 2) {
                /* "o:smtp_x" and, for lmtp transports, "o:lmtp_x" set smtp_x. */
                if (strncmp(o[0], "o:", 2) != 0 ||
                    (!streq(o[0] + 2, name) && !(strncmp(o[0] + 2, "lmtp_", 5) == 0 && streq(o[0] + 7, name + 5))))
                        continue;
                int r = p->type == CONFIG_TIME ? config_parse_time(o[1], &v) : 0;
                if (p->type != CONFIG_TIME) {
                        char *e;
                        errno = 0;
                        v = strtoll(o[1], &e, 10);
                        r = errno != 0 || *e || e == o[1] ? -EINVAL : 0;
                }
                if (r < 0 || v < p->min || v > p->max) {
                        log_warning("Bad master.cf override %s=%s, ignoring.", o[0] + 2, o[1]);
                        break;
                }
                *ret = v;
                return 0;
        }
        switch (config_param_find(name) - config_params) {
#define X(n, t, d, lo, hi, roles, doc)                                                                  \
        case CONFIG_PARAM_##n:                                                                          \
                if (CONFIG_##t == CONFIG_INT || CONFIG_##t == CONFIG_TIME) {                            \
                        *ret = *(const int64_t *) (const void *) &cfg->n;                               \
                        return 0;                                                               \
                }                                                                                       \
                break;
                POSTBUS_CONFIG_PARAMS(X)
#undef X
        default:
                break;
        }
        return -EINVAL;
}

static int settings_load(const Config *cfg, char **options, bool lmtp, const char *nexthop, SmtpSettings *ret) {
        static const struct {
                const char *name;
                size_t offset;
        } times[] = {
                { "smtp_connect_timeout", offsetof(SmtpSettings, connect_timeout) },
                { "smtp_helo_timeout", offsetof(SmtpSettings, helo_timeout) },
                { "smtp_mail_timeout", offsetof(SmtpSettings, mail_timeout) },
                { "smtp_rcpt_timeout", offsetof(SmtpSettings, rcpt_timeout) },
                { "smtp_data_init_timeout", offsetof(SmtpSettings, data_init_timeout) },
                { "smtp_data_xfer_timeout", offsetof(SmtpSettings, data_xfer_timeout) },
                { "smtp_data_done_timeout", offsetof(SmtpSettings, data_done_timeout) },
                { "smtp_quit_timeout", offsetof(SmtpSettings, quit_timeout) },
        };
        SmtpSettings s = { .lmtp = lmtp };
        int64_t v;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(times); i++) {
                r = setting_int(cfg, options, times[i].name, &v);
                if (r < 0)
                        return r;
                *(uint64_t *) (void *) ((char *) &s + times[i].offset) = (uint64_t) v * USEC_PER_SEC;
        }
        r = setting_int(cfg, options, "smtp_line_length_limit", &v);
        if (r < 0)
                return r;
        s.line_length_limit = (size_t) v;
        r = setting_int(cfg, options, "smtp_mx_address_limit", &v);
        if (r < 0)
                return r;
        s.mx_address_limit = (unsigned) v;
        r = setting_int(cfg, options, "smtp_mx_session_limit", &v);
        if (r < 0)
                return r;
        s.mx_session_limit = (unsigned) v;
        r = setting_int(cfg, options, "smtp_host_failure_cache_time", &v);
        if (r < 0)
                return r;
        s.host_failure_cache_time = (uint64_t) v * USEC_PER_SEC;

        const char *helo = cfg->smtp_helo_name;
        for (char **o = options; o && o[0]; o += 2)
                if (streq(o[0], "o:smtp_helo_name") || streq(o[0], "o:lmtp_lhlo_name"))
                        helo = o[1];
        r = smtp_tls_settings_load(cfg, options, nexthop, &s);
        if (r >= 0) {
                s.helo_name = strdup(isempty(helo) ? cfg->myhostname : helo);
                if (!s.helo_name)
                        r = -ENOMEM;
        }
        if (r < 0) {
                settings_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

static int invalid(sd_bus_error *error, const char *text) {
        return sd_bus_error_set(error, POSTBUS_ERROR_INVALID_ARGS, text);
}

static bool text_valid(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= ' ' || *s == 0x7F)
                        return false;
        return true;
}

static int read_options(sd_bus_message *m, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        for (;;) {
                const char *k, *v;

                r = sd_bus_message_read(m, "{ss}", &k, &v);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (n >= 2 * SMTP_OPTIONS_MAX)
                        return -E2BIG;
                r = strv_push(&l, &n, strdup(k));
                if (r >= 0)
                        r = strv_push(&l, &n, strdup(v));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static int method_deliver(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SmtpListener *listener = userdata;
        Smtp *smtp = listener->smtp;
        _cleanup_(call_freep) SmtpCall *c = NULL;
        _cleanup_strv_free_ char **options = NULL;
        const char *queue_id, *sender, *transport, *nexthop;
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(m, "hssss", &fd, &queue_id, &sender, &transport, &nexthop);
        if (r < 0)
                return r;
        r = read_options(m, &options);
        if (r == -E2BIG)
                return invalid(error, "Too many options.");
        if (r < 0)
                return r;
        r = call_new(smtp, &c);
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
                if (c->n_recipients >= SMTP_RECIPIENTS_MAX)
                        return invalid(error, "Too many recipients.");
                if (isempty(address) || !address_valid(address))
                        return invalid(error, "Invalid recipient address.");
                SmtpRecipient *n = realloc(c->recipients, (c->n_recipients + 1) * sizeof(SmtpRecipient));
                if (!n)
                        return -ENOMEM;
                c->recipients = n;
                n[c->n_recipients] = (SmtpRecipient) { .index = index, .address = strdup(address) };
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
        if (!text_valid(transport, SMTP_TRANSPORT_MAX) || !text_valid(nexthop, SMTP_NEXTHOP_MAX))
                return invalid(error, "Invalid transport or next hop.");
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
        r = queue_file_read(c->fd, &c->envelope);
        if (r < 0) {
                const char *why = r == -EBADMSG ? "queue file is corrupt" : "cannot read the queue file";
                log_mail(LOG_WARNING, c->queue_id, LOG_NO_FIELDS, "%s: %s", why, strerror(-r));
                return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY, "4.3.0 %s", why);
        }
        for (size_t i = 0; i < c->n_recipients; i++) {
                if (c->recipients[i].index >= c->envelope->n_recipients)
                        return invalid(error, "Recipient index out of range.");
                const QueueRecipient *q = c->envelope->recipients + c->recipients[i].index;
                c->recipients[i].notify = q->notify;
                c->recipients[i].orcpt = q->orcpt;
        }
        r = settings_load(smtp->daemon->config, options, listener->lmtp, c->nexthop, &c->settings);
        if (r < 0)
                return r;

        r = sd_event_add_time_relative(smtp->daemon->event, &c->timer, CLOCK_MONOTONIC,
                                       (uint64_t) smtp->daemon->config->daemon_timeout * USEC_PER_SEC / 10 * 9,
                                       USEC_PER_SEC, on_deadline, c);
        if (r < 0)
                return r;
        c->message = sd_bus_message_ref(m);
        /* From here on the call answers itself, when it is done. */
        SmtpCall *call = TAKE_PTR(c);
        r = smtp_dest_start(call, call->nexthop, &call->dest);
        if (r < 0) {
                char text[SMTP_NEXTHOP_MAX + 64];
                (void) snprintf(text, sizeof text, "bad next hop \"%s\": %s", call->nexthop,
                                r == -EINVAL ? "invalid syntax" : strerror(-r));
                call_fail_rest(call, "4.3.5", "none", text);
                call_finish(call);
        }
        return 1;
}

static const sd_bus_vtable smtp_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Deliver",
                                SD_BUS_ARGS("h", queue_file, "s", queue_id, "s", sender, "s", transport,
                                            "s", nexthop, "a{ss}", options, "a(us)", recipients),
                                SD_BUS_RESULT("a(ussss)", results),
                                method_deliver, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int smtp_bus_add(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, DELIVERY_OBJECT_PATH, DELIVERY_INTERFACE, smtp_vtable, userdata);
}

/* At exit: sessions are cut (a duplicate at worst, when qmgr tries again), every call is answered. */
static void smtp_finish_calls(Smtp *smtp) {
        while (smtp->calls) {
                SmtpCall *c = smtp->calls;

                c->session = smtp_session_free(c->session);
                c->dest = smtp_dest_free(c->dest);
                call_fail_rest(c, "4.3.0", "none", "smtp delivery agent is stopping");
                call_finish(c);
        }
        smtp_sessions_free_lingering();
}

static int on_event_exit(sd_event_source *s, void *userdata) {
        smtp_finish_calls(userdata);
        return 0;
}

int smtp_new(Daemon *d, Smtp **ret) {
        _cleanup_(smtp_freep) Smtp *smtp = NULL;
        static const char *const names[2] = { "smtp", "lmtp" };
        unsigned n = 0;
        int r;

        smtp = calloc(1, sizeof(Smtp));
        if (!smtp)
                return -ENOMEM;
        smtp->daemon = d;
        r = sd_event_add_exit(d->event, &smtp->exit_source, on_event_exit, smtp);
        if (r >= 0)
                r = sd_event_source_set_priority(smtp->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return r;
        r = smtp_dest_setup(d->event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the resolver: %m");
        for (unsigned i = 0; i < 2; i++) {
                SmtpListener *l = smtp->listeners + i;

                l->smtp = smtp;
                l->lmtp = i == 1;
                r = bus_server_serve(d, names[i], smtp_bus_add, l, &l->server);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                n++;
        }
        if (n == 0)
                return log_error_errno(ENOENT, "No socket named \"smtp\" or \"lmtp\" was passed.");
        *ret = TAKE_PTR(smtp);
        return 0;
}

Smtp *smtp_free(Smtp *smtp) {
        if (!smtp)
                return NULL;
        smtp_finish_calls(smtp);
        sd_event_source_disable_unref(smtp->exit_source);
        for (unsigned i = 0; i < 2; i++)
                bus_server_free(smtp->listeners[i].server);
        smtp_dest_cleanup();
        smtp_tls_cleanup();
        smtp_tls_policy_cleanup();
        free(smtp);
        return NULL;
}
