/* smtp-bus.c: what postbus-smtp does with a Deliver call of org.postbus.Delivery1 (delivery-agent.c serves it,
 * on the smtp and the lmtp socket, and reads and checks the call): its transport's settings are read (main.cf
 * with master.cf's -o overrides), its next hop becomes a list of server addresses (smtp-dest.c), and sessions
 * (smtp-session.c) try them in order until every recipient has a result; then the call is answered. The
 * sessions are driven by the event loop: no call waits for a process slot. One journal record per recipient. */
#include <assert.h>
#include <stdarg.h>

#include "agent-bus.h"
#include "delivery-agent.h"
#include "log.h"
#include "smtp.h"
#include "string-util.h"

/* Most recipients and options one call may carry, and the longest option value. */
#define SMTP_RECIPIENTS_MAX 100000U
#define SMTP_OPTIONS_MAX 256U
#define SMTP_OPTION_VALUE_MAX 8192U
#define SMTP_NEXTHOP_TEXT_MAX 1024U

/* The socket a call comes on: the lmtp socket makes LMTP calls. */
#define SMTP_SOCKET_LMTP 1U

struct Smtp {
        DeliveryAgent *agent;
};

/* smtp's state of one call. */
struct SmtpCall {
        DeliveryRequest req;            /* first: the agent allocates the whole */
        SmtpRecipient *recipients;      /* req.n_recipients, in the order of req.recipients */
        SmtpSettings settings;
        SmtpDest *dest;                 /* finding the server addresses */
        SmtpAddress *addresses;
        size_t n_addresses;
        SmtpAddress *hop_addresses;     /* in a fallback relay: the request's next hop's addresses */
        size_t n_hop_addresses;
        size_t next_address;
        unsigned n_sessions;            /* sessions that got a connection, for smtp_mx_session_limit */
        SmtpSession *session;
        char last_dsn[16];              /* the last failure of a server, for the recipients left at the end */
        char *last_text;
        char *last_relay;               /* NULL: "none" (no connection) */
        char tls[160];                  /* the TLS facts of the last session, "none" without TLS */
        unsigned conn_use;              /* of the last session */
        bool backlog;                   /* qmgr has more for the destination (q:backlog) */
        char *cache_key;                /* the destination in the connection cache */
        bool looked_up;                 /* the addresses of the next hop were asked for */
        bool reused;                    /* a session from the cache ran: its address is not tried again */
        SmtpAddress reused_address;
        size_t next_fallback;           /* the next of smtp_fallback_relay */
        bool in_fallback;               /* the addresses are a fallback relay's */
        const char *current_nexthop;    /* the next hop or fallback relay being tried (borrowed) */
        char *mail_from;                /* the sender after smtp_generic_maps, or NULL: unchanged */
};

static void settings_done(SmtpSettings *s) {
        s->helo_name = mfree(s->helo_name);
        s->tls_cafile = mfree(s->tls_cafile);
        s->tls_capath = mfree(s->tls_capath);
        s->tls_match = mfree(s->tls_match);
        s->tls_nexthop = mfree(s->tls_nexthop);
        s->fallback_relay = strv_free(s->fallback_relay);
        s->generic_maps = mfree(s->generic_maps);
        for (size_t i = 0; i < _SMTP_CHECKS_MAX; i++)
                s->checks[i] = mfree(s->checks[i]);
        smtp_sasl_settings_done(s);
}

sd_event *smtp_call_event(SmtpCall *c) {
        return c->req.agent->daemon->event;
}

Daemon *smtp_call_daemon(SmtpCall *c) {
        return c->req.agent->daemon;
}

const SmtpSettings *smtp_call_settings(SmtpCall *c) {
        return &c->settings;
}

const char *smtp_call_queue_id(SmtpCall *c) {
        return c->req.queue_id;
}

const char *smtp_call_sender(SmtpCall *c) {
        return c->req.sender;
}

const char *smtp_call_mail_from(SmtpCall *c) {
        return c->mail_from ?: c->req.sender;
}

const char *smtp_call_nexthop(SmtpCall *c) {
        return c->current_nexthop ?: c->req.nexthop;
}

const QueueEnvelope *smtp_call_envelope(SmtpCall *c) {
        return c->req.envelope;
}

int smtp_call_queue_fd(SmtpCall *c) {
        return c->req.fd;
}

void smtp_call_set_tls(SmtpCall *c, const char *tls) {
        (void) snprintf(c->tls, sizeof c->tls, "%s", tls);
}

void smtp_call_set_conn_use(SmtpCall *c, unsigned n) {
        c->conn_use = n;
}

bool smtp_call_keep_session(SmtpCall *c, const SmtpAddress *a) {
        if (!c->settings.cache_always && !(c->settings.cache_on_demand && c->backlog))
                return false;
        /* As Postfix, a session is kept under the destination only when it is with one of the destination's
         * best MX hosts: not a fallback relay, nor a backup MX that the next delivery should not stick to. */
        if (c->in_fallback)
                return false;
        for (size_t i = 0; i < c->n_addresses; i++)
                if (c->addresses[i].preference < a->preference)
                        return false;
        return true;
}

const char *smtp_call_cache_key(SmtpCall *c) {
        return c->cache_key;
}

SmtpRecipient *smtp_call_recipients(SmtpCall *c, size_t *ret_n) {
        *ret_n = c->req.n_recipients;
        return c->recipients;
}

void smtp_call_result(SmtpCall *c, SmtpRecipient *rcpt, const char *dsn, const char *relay, const char *fmt, ...) {
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

        /* The answer is made a deferral by delivery_request_reply(). */
        char soft[DELIVERY_DSN_MAX];
        bool softened = delivery_request_soft_bounce(&c->req, rcpt->status, rcpt->dsn, soft);
        log_delivery_record(c->req.queue_id, &(LogDelivery) {
                .recipient = rcpt->address,
                /* The queue file's, when local handed an alias's expansion on (mailbox_transport). */
                .original_recipient = c->req.recipients[rcpt - c->recipients].original,
                .relay = strna(rcpt->relay),
                .dsn = softened ? soft : rcpt->dsn,
                .status = softened ? DELIVERY_LOG_SOFTBOUNCE : rcpt->status,
                .text = rcpt->text ?: "out of memory",
                .arrival_usec = c->req.envelope->arrival_usec,
                .active_usec = c->req.active_usec,
                .sent_usec = c->req.sent_usec,
                .conn_use = c->conn_use,
                .fields = LOG_FIELDS({ "TLS", c->tls[0] ? c->tls : "none" }),
        });
}

static void smtp_result_of(const DeliveryRequest *req, size_t i, DeliveryResult *ret) {
        const SmtpRecipient *rcpt = ((const SmtpCall *) req)->recipients + i;

        const char *status = rcpt->status;

        if (streq(status, DELIVERY_STATUS_SENT) && rcpt->sent_as)
                status = rcpt->sent_as;
        *ret = (DeliveryResult) { status, rcpt->dsn, strempty(rcpt->relay), rcpt->text ?: "out of memory" };
}

/* Answers with the result of every recipient and frees the call. */
static void smtp_finish(DeliveryRequest *req) {
        delivery_request_finish(req, smtp_result_of, true);
}

static void call_finish(SmtpCall *c) {
        smtp_finish(&c->req);
}

/* Every recipient without a result gets this one. */
static void call_fail_rest(SmtpCall *c, const char *dsn, const char *relay, const char *text) {
        for (size_t i = 0; i < c->req.n_recipients; i++)
                if (c->recipients[i].state != SMTP_RCPT_DONE)
                        smtp_call_result(c, c->recipients + i, dsn, relay, "%s", text);
}

void smtp_call_soft_failure(SmtpCall *c, SmtpRecipient *rcpt, const char *dsn, const char *relay, const char *text) {
        char *t = strdup(text), *r = strdup(relay);

        if (!t || !r) {
                free(t);
                free(r);
                return;
        }
        free(rcpt->text);
        free(rcpt->relay);
        rcpt->text = t;
        rcpt->relay = r;
        (void) snprintf(rcpt->dsn, sizeof rcpt->dsn, "%s", dsn);
}

/* At the end of the addresses: a recipient a server deferred keeps that server's reply; the others get the
 * last failure of a server (or of a connection). */
static void call_fail_rest_own(SmtpCall *c, const char *dsn, const char *relay, const char *text) {
        for (size_t i = 0; i < c->req.n_recipients; i++) {
                SmtpRecipient *rcpt = c->recipients + i;
                if (rcpt->state == SMTP_RCPT_DONE || !rcpt->text || rcpt->dsn[0] != '4')
                        continue;
                _cleanup_free_ char *own_text = TAKE_PTR(rcpt->text), *own_relay = TAKE_PTR(rcpt->relay);
                char own_dsn[sizeof rcpt->dsn];
                memcpy(own_dsn, rcpt->dsn, sizeof own_dsn);
                smtp_call_result(c, rcpt, own_dsn, own_relay, "%s", own_text);
        }
        call_fail_rest(c, dsn, relay, text);
}

static bool call_all_done(SmtpCall *c) {
        for (size_t i = 0; i < c->req.n_recipients; i++)
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

static bool same_address(const SmtpAddress *a, const SmtpAddress *b) {
        return a->socklen == b->socklen && memcmp(&a->sockaddr, &b->sockaddr, a->socklen) == 0;
}

static bool call_fallback_left(SmtpCall *c) {
        return !c->settings.lmtp && c->settings.fallback_relay && c->settings.fallback_relay[c->next_fallback];
}

/* Finds the addresses of the next hop, or of a fallback relay: 0 when the lookup runs, -1 when the call
 * is finished. */
static int call_lookup(SmtpCall *c, const char *nexthop) {
        int r;

        c->looked_up = true;
        c->current_nexthop = nexthop;
        r = smtp_dest_start(c, nexthop, &c->dest);
        if (r >= 0)
                return 0;
        char text[SMTP_NEXTHOP_TEXT_MAX + 64];
        (void) snprintf(text, sizeof text, "bad next hop \"%s\": %s", nexthop,
                        r == -EINVAL ? "invalid syntax" : strerror(-r));
        call_fail_rest(c, "4.3.5", "none", text);
        call_finish(c);
        return -1;
}

/* Starts a session with the next address, or goes on to a fallback relay, or ends the call when there is
 * none. */
static void call_next(SmtpCall *c) {
        if (!c->looked_up && !call_all_done(c)) {
                /* A session from the cache ran first. */
                (void) call_lookup(c, c->req.nexthop);
                return;
        }
        while (!call_all_done(c) && c->next_address < c->n_addresses) {
                const SmtpAddress *a = c->addresses + c->next_address++;
                /* Temporary failures are final at the last address, unless a fallback relay comes after it. */
                bool final = !call_fallback_left(c) &&
                             (c->next_address == c->n_addresses ||
                              (c->settings.mx_session_limit > 0 && c->n_sessions + 1 >= c->settings.mx_session_limit));
                int r;

                if (c->settings.mx_session_limit > 0 && c->n_sessions >= c->settings.mx_session_limit)
                        break;
                if (c->reused && same_address(a, &c->reused_address))
                        continue;
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
                        smtp_hostcache_fail(a, c->settings.host_failure_cache_time, c->req.queue_id, strerror(-r));
        }
        /* As Postfix: what is left failed only temporarily (a 5xx is final), so the fallback relays may take
         * it, each with its own MX or address lookup and a fresh session count. */
        if (!call_all_done(c) && call_fallback_left(c)) {
                c->in_fallback = true;
                c->n_sessions = 0;
                (void) call_lookup(c, c->settings.fallback_relay[c->next_fallback++]);
                return;
        }
        if (!call_all_done(c))
                call_fail_rest_own(c, c->last_text ? c->last_dsn : "4.4.1", c->last_relay ? c->last_relay : "none",
                               c->last_text ? c->last_text : "no server address could be reached");
        call_finish(c);
}

void smtp_call_session_done(SmtpCall *c, SmtpSessionEnd end, const char *relay, const char *dsn,
                            const char *text) {
        c->session = NULL;
        c->conn_use = 0;
        if (end == SMTP_SESSION_STALE) {
                /* A cached session that did not survive its RSET: as if it had never been. */
                c->reused = false;
                call_next(c);
                return;
        }
        /* As Postfix, smtp_mx_session_limit counts only sessions that got a connection. */
        if (relay)
                c->n_sessions++;
        call_remember_failure(c, relay, dsn, text);
        call_next(c);
}

/* The addresses are known (or the lookup failed: then n == 0 and dsn/text say why). */
void smtp_call_dest_done(SmtpCall *c, SmtpAddress *addresses, size_t n, const char *dsn, const char *text) {
        c->dest = NULL;
        /* The next hop's own addresses are kept for the answer's hosts when a fallback relay's come. */
        if (c->in_fallback && !c->hop_addresses) {
                c->hop_addresses = TAKE_PTR(c->addresses);
                c->n_hop_addresses = c->n_addresses;
        }
        free(c->addresses);
        c->addresses = addresses;
        c->n_addresses = n;
        c->next_address = 0;
        smtp_hostcache_sort(addresses, n, c->settings.host_failure_cache_time,
                            c->settings.address_preference != AF_UNSPEC);
        if (n == 0) {
                /* A temporary DNS failure (not NXDOMAIN or a Null MX) may go to a fallback relay; a fallback
                 * relay's own lookup failure leaves the destination's failure in place. */
                if (dsn[0] == '4' || c->in_fallback) {
                        if (!c->in_fallback || !c->last_text)
                                call_remember_failure(c, NULL, dsn[0] == '4' ? dsn : "4.4.3", text);
                        if (call_fallback_left(c) || c->in_fallback) {
                                call_next(c);
                                return;
                        }
                }
                call_fail_rest(c, dsn, "none", text);
                call_finish(c);
                return;
        }
        call_next(c);
}

/* Ends what runs for the call: the recipients without a result get this one. */
static void call_abort(SmtpCall *c, const char *dsn, const char *text) {
        c->session = smtp_session_free(c->session);
        c->dest = smtp_dest_free(c->dest);
        call_fail_rest(c, dsn, "none", text);
}

static void smtp_deadline(DeliveryRequest *req) {
        SmtpCall *c = (SmtpCall *) req;

        call_abort(c, "4.4.2", "delivery time limit exceeded");
        call_finish(c);
}

/* At exit: sessions are cut (a duplicate at worst, when qmgr tries again); the agent answers the call. */
static void smtp_stop(DeliveryRequest *req) {
        call_abort((SmtpCall *) req, "4.3.0", "smtp delivery agent is stopping");
}

/* An INT or TIME parameter of ours, with a -o override. */
static int setting_int(const Config *cfg, char **options, const char *name, int64_t *ret) {
        const ConfigParam *p = config_param_find(name);

        assert(p);
        for (char **o = options; o && o[0]; o += 2) {
                /* "o:smtp_x" and, for lmtp transports, "o:lmtp_x" set smtp_x. */
                if (strncmp(o[0], "o:", 2) != 0 ||
                    (!streq(o[0] + 2, name) && !(strncmp(o[0] + 2, "lmtp_", 5) == 0 && streq(o[0] + 7, name + 5))))
                        continue;
                if (config_param_parse_int(p, o[1], ret) < 0) {
                        log_warning("Bad master.cf override %s=%s, ignoring.", o[0] + 2, o[1]);
                        break;
                }
                return 0;
        }
        return config_param_int(cfg, (ConfigParamId) (p - config_params), ret);
}

const char *smtp_setting_string(char **options, const char *name, const char *value) {
        for (char **o = options; o && o[0]; o += 2)
                if (strncmp(o[0], "o:", 2) == 0 &&
                    (streq(o[0] + 2, name) || (strncmp(o[0] + 2, "lmtp_", 5) == 0 && strncmp(name, "smtp_", 5) == 0 &&
                                               streq(o[0] + 7, name + 5))))
                        value = o[1];
        return value;
}

static int setting_family(const char *name, const char *value, const char *any, int *ret) {
        if (streq(value, "ipv4"))
                *ret = AF_INET;
        else if (streq(value, "ipv6"))
                *ret = AF_INET6;
        else if (streq(value, any))
                *ret = AF_UNSPEC;
        else {
                log_warning("Bad %s value \"%s\", using %s.", name, value, any);
                *ret = AF_UNSPEC;
        }
        return 0;
}

/* The connection cache and address settings. */
static int settings_load_more(const Config *cfg, char **options, const char *nexthop, SmtpSettings *s) {
        static const struct {
                const char *name;
                size_t offset;
        } times[] = {
                { "smtp_connection_cache_time_limit", offsetof(SmtpSettings, cache_time_limit) },
                { "smtp_connection_reuse_time_limit", offsetof(SmtpSettings, reuse_time_limit) },
                { "smtp_rset_timeout", offsetof(SmtpSettings, rset_timeout) },
        };
        _cleanup_strv_free_ char **destinations = NULL;
        const char *v;
        int64_t n;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(times); i++) {
                r = setting_int(cfg, options, times[i].name, &n);
                if (r < 0)
                        return r;
                *(uint64_t *) (void *) ((char *) s + times[i].offset) = (uint64_t) n * USEC_PER_SEC;
        }
        r = setting_int(cfg, options, "smtp_connection_reuse_count_limit", &n);
        if (r < 0)
                return r;
        s->reuse_count_limit = (unsigned) n;
        r = setting_int(cfg, options, "smtp_tls_loglevel", &s->tls_loglevel);
        if (r < 0)
                return r;
        r = setting_int(cfg, options, "smtp_tls_session_cache_timeout", &n);
        if (r < 0)
                return r;
        s->tls_session_cache_timeout = (uint64_t) n * USEC_PER_SEC;
        v = smtp_setting_string(options, "smtp_connection_cache_on_demand",
                           cfg->smtp_connection_cache_on_demand ? "yes" : "no");
        s->cache_on_demand = streq(v, "yes");
        r = config_split_list(smtp_setting_string(options, "smtp_connection_cache_destinations",
                                             cfg->smtp_connection_cache_destinations), &destinations);
        if (r < 0)
                return r;
        for (char **d = destinations; d && *d; d++)
                if (strcaseeq(*d, nexthop))
                        s->cache_always = true;
        r = config_split_list(smtp_setting_string(options, "smtp_fallback_relay", cfg->smtp_fallback_relay),
                              &s->fallback_relay);
        if (r < 0)
                return r;
        (void) setting_family("inet_protocols", smtp_setting_string(options, "inet_protocols", cfg->inet_protocols),
                              "all", &s->address_family);
        (void) setting_family("smtp_address_preference",
                              smtp_setting_string(options, "smtp_address_preference", cfg->smtp_address_preference),
                              "any", &s->address_preference);
        return 0;
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
        if (r >= 0)
                r = settings_load_more(cfg, options, nexthop, &s);
        if (r >= 0)
                r = smtp_sasl_settings_load(cfg, options, &s);
        if (r >= 0) {
                s.helo_name = strdup(isempty(helo) ? cfg->myhostname : helo);
                /* Postfix's lmtp_generic_maps is a parameter of its own, empty by default: final delivery over
                 * LMTP takes the addresses as they are, unless the transport says otherwise (-o). */
                s.generic_maps = strdup(smtp_setting_string(options, "smtp_generic_maps",
                                                            lmtp ? "" : cfg->smtp_generic_maps));
                if (!s.helo_name || !s.generic_maps)
                        r = -ENOMEM;
                /* As Postfix's lmtp_*_checks, LMTP's are empty unless the transport says otherwise (-o). */
                const char *checks[_SMTP_CHECKS_MAX][2] = {
                        [SMTP_CHECKS_HEADER] = { "smtp_header_checks", cfg->smtp_header_checks },
                        [SMTP_CHECKS_MIME_HEADER] = { "smtp_mime_header_checks", cfg->smtp_mime_header_checks },
                        [SMTP_CHECKS_NESTED_HEADER] = { "smtp_nested_header_checks", cfg->smtp_nested_header_checks },
                        [SMTP_CHECKS_BODY] = { "smtp_body_checks", cfg->smtp_body_checks },
                };
                for (size_t i = 0; i < _SMTP_CHECKS_MAX && r >= 0; i++) {
                        s.checks[i] = strdup(smtp_setting_string(options, checks[i][0], lmtp ? "" : checks[i][1]));
                        if (!s.checks[i])
                                r = -ENOMEM;
                }
        }
        if (r < 0) {
                settings_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

/* smtp_generic_maps on the sender and each recipient, for MAIL FROM and RCPT TO; the journal keeps the
 * addresses as they were, as Postfix's does. */
static int call_generic_envelope(SmtpCall *c) {
        const Config *cfg = c->req.agent->daemon->config;
        const char *spec = c->settings.generic_maps;
        int r;

        if (isempty(spec))
                return 0;
        r = smtp_generic_address(cfg, spec, c->req.sender, &c->mail_from);
        for (size_t i = 0; r >= 0 && i < c->req.n_recipients; i++)
                r = smtp_generic_address(cfg, spec, c->recipients[i].address, &c->recipients[i].rcpt_to);
        return r < 0 ? r : 0;
}

static int smtp_prepare(DeliveryRequest *req) {
        SmtpCall *c = (SmtpCall *) req;
        int r;

        c->recipients = calloc(req->n_recipients, sizeof(SmtpRecipient));
        if (!c->recipients)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_recipients; i++) {
                const QueueRecipient *q = req->envelope->recipients + req->recipients[i].index;

                c->recipients[i] = (SmtpRecipient) {
                        .index = req->recipients[i].index,
                        .address = req->recipients[i].address,
                        .notify = q->notify,
                        .orcpt = q->orcpt,
                };
        }
        for (char **o = req->options; o && o[0]; o += 2)
                if (streq(o[0], DELIVERY_OPTION_BACKLOG) && streq(o[1], "yes"))
                        c->backlog = true;
        /* Sessions are kept per protocol, transport (its settings) and next hop. */
        if (asprintf(&c->cache_key, "%s %s %s", req->socket_flags & SMTP_SOCKET_LMTP ? "lmtp" : "smtp",
                     req->transport, req->nexthop) < 0) {
                c->cache_key = NULL;
                return -ENOMEM;
        }
        r = settings_load(req->agent->daemon->config, req->options, req->socket_flags & SMTP_SOCKET_LMTP,
                          req->nexthop, &c->settings);
        if (r < 0)
                return r;
        r = call_generic_envelope(c);
        if (r < 0) {
                log_error_errno(r, "%s: smtp_generic_maps %s lookup error: %m", req->queue_id, c->settings.generic_maps);
                for (size_t i = 0; i < req->n_recipients; i++)
                        smtp_call_result(c, c->recipients + i, "4.3.0", "none", "smtp_generic_maps lookup failure");
                return 1;
        }
        /* Sessions authenticated by sender are kept for that sender only. */
        if (c->settings.sasl_enable && c->settings.sasl_sender_dependent) {
                char *key;
                if (asprintf(&key, "%s %s", c->cache_key, req->sender) < 0)
                        return -ENOMEM;
                free(c->cache_key);
                c->cache_key = key;
        }
        return 0;
}

/* From here on the call answers itself, when it is done. */
static int smtp_start(DeliveryRequest *req) {
        SmtpCall *c = (SmtpCall *) req;
        SmtpSession *s;

        /* As Postfix: a session kept for the destination first, before any DNS lookup. */
        while ((s = smtp_cache_take(c->cache_key))) {
                if (smtp_session_reuse(s, c) < 0) {
                        smtp_session_free(s);
                        continue;
                }
                c->session = s;
                c->reused = true;
                c->reused_address = *smtp_session_address(s);
                return 1;
        }
        return call_lookup(c, req->nexthop) < 0 ? 0 : 1;
}

/* The answer's hosts: every address of the request's next hop, with the host failure cache's verdict, so that
 * qmgr shows which ones are skipped (none when no lookup was made: a cached session did it all). */
static int smtp_append_hosts(const DeliveryRequest *req, sd_bus_message *reply) {
        const SmtpCall *c = (const SmtpCall *) req;
        const SmtpAddress *a = c->hop_addresses ?: (c->in_fallback ? NULL : c->addresses);
        size_t n = c->hop_addresses ? c->n_hop_addresses : (c->in_fallback ? 0 : c->n_addresses);
        int r;

        for (size_t i = 0; i < n; i++) {
                const char *reason = "";
                uint64_t until = smtp_hostcache_failing_until(a + i, &reason);
                char server[sizeof a->host + sizeof a->text + 8];
                uint16_t port;

                if (a[i].sockaddr.sa.sa_family == AF_INET)
                        port = ntohs(a[i].sockaddr.in.sin_port);
                else if (a[i].sockaddr.sa.sa_family == AF_INET6)
                        port = ntohs(a[i].sockaddr.in6.sin6_port);
                else
                        continue;
                (void) snprintf(server, sizeof server, "%s[%s]:%u", a[i].host, a[i].text, port);
                r = sd_bus_message_append(reply, "(sst)", server, until > 0 ? reason : "", until);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void smtp_call_done(DeliveryRequest *req) {
        SmtpCall *c = (SmtpCall *) req;

        smtp_session_free(c->session);
        smtp_dest_free(c->dest);
        free(c->addresses);
        free(c->hop_addresses);
        free(c->last_text);
        free(c->last_relay);
        free(c->cache_key);
        for (size_t i = 0; c->recipients && i < req->n_recipients; i++) {
                free(c->recipients[i].relay);
                free(c->recipients[i].text);
                free(c->recipients[i].rcpt_to);
        }
        free(c->mail_from);
        free(c->recipients);
        settings_done(&c->settings);
}

static const DeliveryAgentOps smtp_ops = {
        .request_size = sizeof(SmtpCall),
        .recipients_max = SMTP_RECIPIENTS_MAX,
        .options_max = SMTP_OPTIONS_MAX,
        .option_value_max = SMTP_OPTION_VALUE_MAX,
        .without_slots = true,
        .prepare = smtp_prepare,
        .start = smtp_start,
        .deadline = smtp_deadline,
        .stop = smtp_stop,
        .finish = smtp_finish,
        .done = smtp_call_done,
        .append_hosts = smtp_append_hosts,
};

int smtp_new(Daemon *d, Smtp **ret) {
        _cleanup_(smtp_freep) Smtp *smtp = NULL;
        static const char *const names[2] = { "smtp", "lmtp" };
        unsigned n = 0;
        int r;

        smtp = calloc(1, sizeof(Smtp));
        if (!smtp)
                return -ENOMEM;
        r = smtp_dest_setup(d->event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the resolver: %m");
        r = delivery_agent_new(d, -EBADF, (uid_t) -1, &smtp_ops, smtp, &smtp->agent);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < 2; i++) {
                r = delivery_agent_serve(smtp->agent, names[i], i == 1 ? SMTP_SOCKET_LMTP : 0);
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
        delivery_agent_free(smtp->agent);
        smtp_sessions_free_lingering();
        smtp_dest_cleanup();
        smtp_tls_cleanup();
        smtp_tls_policy_cleanup();
        smtp_sasl_cleanup();
        smtp_generic_cleanup();
        smtp_checks_cleanup();
        free(smtp);
        return NULL;
}
