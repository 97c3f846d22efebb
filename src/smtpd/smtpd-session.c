/* smtpd-session.c: SMTP sessions: accepting clients, answering their commands, receiving each message
 * into a memory file and handing it to cleanup. All sessions share the one event loop; a session never
 * blocks it, and buffers no more than one line and one read of input. */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "dsn.h"
#include "log.h"
#include "postbus-config.h"
#include "queue-id.h"
#include "smtpd-protocol.h"
#include "smtpd-sasl.h"
#include "smtpd.h"
#include "utf8.h"

/* Once this much output waits for the client to read it, no further command is read. */
#define SMTPD_OUT_PAUSE 4096U
/* Room for one reply (the EHLO reply has several lines). */
#define SMTPD_REPLY_MAX 1024U

#define REPLY_QUEUE_WRITE_ERROR "451 4.3.0 Error: queue file write error"

#define CLEANUP_OBJECT "/org/postbus/Cleanup1"
#define CLEANUP_INTERFACE "org.postbus.Cleanup1"

typedef enum SmtpdSessionState {
        SMTPD_SESSION_COMMAND,          /* reading commands */
        SMTPD_SESSION_DATA,             /* reading message content */
        SMTPD_SESSION_BDAT,             /* reading the bytes of a BDAT chunk */
        SMTPD_SESSION_CONNECT,          /* the message is complete, the connection to cleanup being set up */
        SMTPD_SESSION_SUBMIT,           /* waiting for cleanup's answer */
        SMTPD_SESSION_STARTTLS,         /* the 220 to STARTTLS is being sent; the handshake follows */
        SMTPD_SESSION_TLS_HANDSHAKE,    /* the TLS handshake (after STARTTLS, or at once on port 465) */
        SMTPD_SESSION_AUTH_RESPONSE,    /* AUTH: reading the client's answer to a 334 challenge */
        SMTPD_SESSION_AUTH_CHECK,       /* AUTH: waiting for Dovecot */
        SMTPD_SESSION_CLOSING,          /* sending the last replies, then closing */
        SMTPD_SESSION_CLOSED,           /* closing now */
        _SMTPD_SESSION_STATE_MAX,
        _SMTPD_SESSION_STATE_INVALID = -EINVAL,
} SmtpdSessionState;

typedef struct SmtpdCounter {
        unsigned ok, total;
} SmtpdCounter;

struct SmtpdSession {
        Smtpd *server;
        SmtpdListener *listener;        /* the service (port) the client came in through */
        SmtpdTls *tls;                  /* NULL until STARTTLS (or on port 465, the connect) */
        SmtpdSasl *sasl;                /* the AUTH exchange with Dovecot in progress */
        bool authenticated;             /* AUTH succeeded: may relay (permit_sasl_authenticated) */
        char *sasl_username;            /* the authenticated name, printable ASCII */
        const char *sasl_method;        /* "PLAIN", "LOGIN" */
        SmtpdSession *prev, *next;
        bool linked;                    /* in server->sessions, counted as busy */
        SmtpdSessionState state;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        uint64_t deadline_usec;         /* smtpd_session_deadline, on CLOCK_MONOTONIC */
        uint64_t last_io_usec;          /* smtpd_timeout runs from here */
        SmtpdAddress client;
        const char *stage;              /* the last command, as in "lost connection after RCPT" */
        unsigned errors;                /* 5xx replies since the last message accepted */
        unsigned junk;                  /* NOOP, RSET, VRFY */
        SmtpdCounter counters[_SMTPD_COMMAND_MAX + 1];  /* the last one counts unknown commands */
        int reply_code;                 /* of the last reply */
        bool in_reject;                 /* session_reject() journals the reply it sends */
        bool reject_bare_lf;            /* smtpd_forbid_bare_newline = reject, and not excluded */
        SmtpdAnvilClient *anvil;        /* this client's rate counters; NULL when exempt */
        sd_event_source *delay;         /* smtpd_error_sleep_time before the next command */
        bool delaying;                  /* the next command waits for the delay timer */
        bool delay_done;                /* the delay is over: the next command runs now */

        /* Restrictions (smtpd-restrictions.c): this client's DNS blocklist lookups, started at connect. */
        SmtpdCheckSession *checks;
        bool greet_pending;             /* smtpd_delay_reject = no: the greeting waits for the lookups */
        bool access_denied;             /* the client restrictions refused the greeting: 503 to all but QUIT */
        bool checks_wait;               /* the next command waits for the lookups (session_checks_wait()) */

        char *helo;                     /* NULL before HELO or EHLO */
        bool esmtp;

        /* The mail transaction. */
        bool in_mail;
        char sender[ADDRESS_MAX + 1];
        char **recipients;
        unsigned *rcpt_notify;          /* NOTIFY= of each recipient, DsnNotify flags or 0 */
        char **rcpt_orcpt;              /* ORCPT= of each recipient, or "" */
        size_t n_recipients, n_allocated;
        bool smtputf8;                  /* MAIL ... SMTPUTF8 */
        const char *body;               /* MAIL ... BODY=: "8BITMIME", "7BIT", or NULL */
        const char *dsn_ret;            /* MAIL ... RET=: "FULL", "HDRS", or NULL */
        char dsn_envid[DSN_ENVID_MAX + 1];      /* MAIL ... ENVID=, or "" */
        bool bdat;                      /* a BDAT chunk came in this transaction: no DATA */
        bool bdat_last;                 /* the chunk being read is the last */
        uint64_t bdat_size;             /* bytes of the chunk being read */
        uint64_t bdat_remaining;        /* bytes of the chunk still to read */
        const char *bdat_error;         /* the reply to the chunk being read, once it or the transaction failed */
        bool bdat_failed;               /* the transaction failed: every chunk up to LAST gets bdat_error */
        int data_fd;
        bool data_failed;
        SmtpdDataReader data;
        sd_bus_slot *submit;            /* CONNECT: the Ping; SUBMIT: the Submit call */

        SmtpdLineReader lines;
        char *in;                       /* input not consumed yet is in[in_start .. in_end) */
        size_t in_size, in_start, in_end;
        char out[SMTPD_OUT_PAUSE + 2 * SMTPD_REPLY_MAX];
        size_t out_len;
};

static void session_update(SmtpdSession *s);
static bool session_tls_offered(const SmtpdSession *s);
static bool session_auth_offered(const SmtpdSession *s);
static const char *session_protocol(const SmtpdSession *s);
static void session_tls_start(SmtpdSession *s);
static void session_tls_handshake(SmtpdSession *s);
static void session_auth_response(SmtpdSession *s, const char *line, size_t len);
static void session_auth_end(SmtpdSession *s);
static ssize_t session_recv(SmtpdSession *s, void *buf, size_t n);
static ssize_t session_send(SmtpdSession *s, const void *buf, size_t n);

static uint64_t sec_to_usec(int64_t sec) {
        return (uint64_t) sec * USEC_PER_SEC;
}

/* Resets the mail transaction (RSET, HELO, and after each message). */
static void session_reset(SmtpdSession *s) {
        s->in_mail = false;
        s->sender[0] = '\0';
        s->recipients = strv_free(s->recipients);
        s->rcpt_orcpt = strv_free(s->rcpt_orcpt);
        s->rcpt_notify = mfree(s->rcpt_notify);
        s->n_recipients = s->n_allocated = 0;
        s->smtputf8 = false;
        s->body = s->dsn_ret = NULL;
        s->dsn_envid[0] = '\0';
        s->bdat = s->bdat_last = s->bdat_failed = false;
        s->bdat_remaining = 0;
        s->bdat_error = NULL;
        s->data_fd = safe_close(s->data_fd);
        /* An answer still due from cleanup is dropped: the outcome is unknown to the client, which will
         * retry, so the worst case is a duplicate. */
        s->submit = sd_bus_slot_unref(s->submit);
}

static void session_log_disconnect(SmtpdSession *s) {
        char stats[512] = "";
        size_t n = 0;
        unsigned ok = 0, total = 0;

        /* Postfix's form: "ehlo=1 mail=1 rcpt=0/1 commands=2/3", counting successes out of attempts. */
        for (size_t i = 0; i <= _SMTPD_COMMAND_MAX; i++) {
                const SmtpdCounter *c = s->counters + i;
                const char *name = i < _SMTPD_COMMAND_MAX ? smtpd_command_to_string(i) : "UNKNOWN";
                char lower[16] = "";

                if (c->total == 0)
                        continue;
                for (size_t k = 0; name[k] && k < sizeof lower - 1; k++)
                        lower[k] = (char) tolower((unsigned char) name[k]);
                if (c->ok == c->total)
                        n += (size_t) snprintf(stats + n, sizeof stats - n, " %s=%u", lower, c->total);
                else
                        n += (size_t) snprintf(stats + n, sizeof stats - n, " %s=%u/%u", lower, c->ok,
                                               c->total);
                ok += c->ok;
                total += c->total;
        }
        if (ok == total)
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "disconnect from unknown[%s]%s commands=%u", s->client.text, stats, total);
        else
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "disconnect from unknown[%s]%s commands=%u/%u", s->client.text, stats, ok, total);
}

static SmtpdSession *session_free(SmtpdSession *s) {
        if (!s)
                return NULL;
        if (s->linked) {
                session_log_disconnect(s);
                if (s->prev)
                        s->prev->next = s->next;
                else
                        s->server->sessions = s->next;
                if (s->next)
                        s->next->prev = s->prev;
                s->server->n_sessions--;
                daemon_busy_dec(s->server->daemon);
        }
        smtpd_anvil_disconnect(s->server->anvil, s->anvil, now_monotonic_usec());
        s->anvil = NULL;
        session_reset(s);
        smtpd_check_session_free(s->checks);
        sd_event_source_disable_unref(s->delay);
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->timer);
        free(s->helo);
        free(s->in);
        smtpd_sasl_free(s->sasl);
        free(s->sasl_username);
        if (s->tls)
                smtpd_tls_shutdown(s->tls);
        smtpd_tls_free(s->tls);
        safe_close(s->fd);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdSession *, session_free);

void smtpd_sessions_free(Smtpd *server) {
        while (server->sessions)
                session_free(server->sessions);
}

/* Journals a 4xx or 5xx reply that session_reject() did not: every refusal leaves a record with the
 * client, the command and the enhanced status code, in the shape Postfix administrators grep for. Other
 * replies are journaled too, at debug level (POSTBUS_LOG_LEVEL=debug). */
static void session_log_reply(SmtpdSession *s, const char *reply, size_t len) {
        _cleanup_free_ char *text = log_escape(reply, len), *ehelo = s->helo ? log_escape(s->helo, strlen(s->helo)) : NULL;
        char dsn[16] = "";

        (void) sscanf(reply, "%*3d%*[ -]%15[0-9.]", dsn);
        log_mail(reply[0] >= '4' ? LOG_INFO : LOG_DEBUG, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SMTP_COMMAND", s->stage },
                            { "DSN", dsn[0] ? dsn : NULL }),
                 "%s: %s from unknown[%s]: %s; proto=%s helo=<%s>",
                 reply[0] >= '4' ? "NOQUEUE: reject" : "reply", s->stage, s->client.text, strna(text),
                 s->esmtp ? "ESMTP" : "SMTP", strempty(ehelo));
}

/* Queues one reply; CRLF is added. Process only while there is room (SMTPD_OUT_PAUSE) for this and one
 * more (a 421 or cleanup's answer). */
_printf_(2, 3) static void session_reply(SmtpdSession *s, const char *fmt, ...) {
        char *p = s->out + s->out_len;
        va_list ap;
        int n;

        if (sizeof s->out - s->out_len < SMTPD_REPLY_MAX) {
                log_error("Reply buffer full, dropping a reply to %s.", s->client.text);
                return;
        }
        va_start(ap, fmt);
        n = vsnprintf(p, SMTPD_REPLY_MAX - 2, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        n = MIN(n, (int) SMTPD_REPLY_MAX - 3);
        memcpy(p + n, "\r\n", 2);
        s->out_len += (size_t) n + 2;
        s->reply_code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if (p[0] == '5')
                s->errors++;
        if ((p[0] == '4' || p[0] == '5') && !s->in_reject)
                session_log_reply(s, p, (size_t) n);
        else if (p[0] < '4' && log_get_max_level() >= LOG_DEBUG)
                session_log_reply(s, p, (size_t) n);
}

static char *escape(const char *s) {
        return s ? log_escape(s, strlen(s)) : NULL;
}

/* Sends a rejection and logs it as Postfix does: "NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 550 5.1.1
 * <u@h>: ...; from=<s> to=<u@h> proto=ESMTP helo=<h>". sender and rcpt may be NULL. */
_printf_(4, 5) static void session_reject(SmtpdSession *s, const char *sender, const char *rcpt,
                                          const char *fmt, ...) {
        _cleanup_free_ char *esender = escape(sender), *ercpt = escape(rcpt), *ehelo = escape(s->helo);
        char reply[SMTPD_REPLY_LINE_MAX], dsn[16] = "";
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(reply, sizeof reply, fmt, ap);
        va_end(ap);
        s->in_reject = true;
        session_reply(s, "%s", reply);
        s->in_reject = false;
        (void) sscanf(reply, "%*3d %15[0-9.]", dsn);

        _cleanup_free_ char *ereply = escape(reply);
        log_mail(LOG_INFO, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SMTP_COMMAND", s->stage },
                            { "SENDER", esender }, { "RECIPIENT", ercpt }, { "DSN", dsn }),
                 "NOQUEUE: reject: %s from unknown[%s]: %s;%s%s%s%s%s%s proto=%s helo=<%s>",
                 s->stage, s->client.text, strna(ereply),
                 esender ? " from=<" : "", strempty(esender), esender ? ">" : "",
                 ercpt ? " to=<" : "", strempty(ercpt), ercpt ? ">" : "",
                 s->esmtp ? "ESMTP" : "SMTP", strempty(ehelo));
}

/* Why a session ends early: "lost connection after DATA from unknown[192.0.2.1]". */
static void session_log_end(SmtpdSession *s, const char *why) {
        log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                 "%s after %s from unknown[%s]", why, s->stage, s->client.text);
}

static void session_lost(SmtpdSession *s) {
        session_log_end(s, "lost connection");
        s->state = SMTPD_SESSION_CLOSED;
}

static void session_junk(SmtpdSession *s) {
        if (++s->junk > (unsigned) s->server->config->smtpd_junk_command_limit)
                s->errors++;
}

/* --- Restrictions (smtpd-restrictions.c): the session's side. --- */

static SmtpdCheckInput session_check_input(SmtpdSession *s, const char *helo, const char *sender, const char *rcpt) {
        return (SmtpdCheckInput) {
                .client = &s->client,
                .helo = helo,
                .sender = sender,
                .recipient = rcpt,
                .authenticated = s->authenticated,
        };
}

/* The greeting, once the DNS lookups it needs are in. With smtpd_delay_reject = no the client restrictions
 * answer it, as in Postfix: a refusal replaces the 220, and every command but QUIT then gets 503. */
static void session_greet(SmtpdSession *s) {
        SmtpdCheckInput in = session_check_input(s, NULL, NULL, NULL);
        char reply[SMTPD_REPLY_LINE_MAX];
        int r;

        r = smtpd_check_client(s->checks, &in, reply);
        s->greet_pending = r == -EAGAIN;
        if (s->greet_pending)
                return;
        if (r > 0) {
                session_reject(s, NULL, NULL, "%s", reply);
                s->access_denied = true;
                return;
        }
        session_reply(s, "220 %s", s->listener->config->smtpd_banner);
}

/* All DNS lookups of the session are in: what waited for them goes on. */
static void on_checks_done(void *userdata) {
        SmtpdSession *s = userdata;

        s->checks_wait = false;
        if (s->greet_pending)
                session_greet(s);
        session_update(s);
}

/* Whether the command in line must wait for the DNS blocklist lookups: those that evaluate restriction
 * lists (RCPT, VRFY; with smtpd_delay_reject = no also HELO, EHLO and MAIL). Any other is answered at
 * once, while the lookups run; what a client pipelines after a waiting command waits behind it. */
static bool session_checks_wait(SmtpdSession *s, const char *line, size_t len) {
        SmtpdCommand c;

        s->checks_wait = false;
        if (s->state != SMTPD_SESSION_COMMAND || !smtpd_check_session_pending(s->checks))
                return false;
        if (s->greet_pending) {         /* nothing is answered before the greeting */
                s->checks_wait = true;
                return true;
        }
        if (smtpd_command_parse(line, len, &c) < 0)
                return false;
        if (c.type == SMTPD_COMMAND_RCPT || c.type == SMTPD_COMMAND_VRFY)
                s->checks_wait = true;
        else if (!s->listener->config->smtpd_delay_reject)
                s->checks_wait = c.type == SMTPD_COMMAND_HELO || c.type == SMTPD_COMMAND_EHLO ||
                                 c.type == SMTPD_COMMAND_MAIL;
        return s->checks_wait;
}

static bool session_check_helo(SmtpdSession *s, const char *helo) {
        SmtpdCheckInput in = session_check_input(s, helo, NULL, NULL);
        char reply[SMTPD_REPLY_LINE_MAX];

        if (smtpd_check_helo(s->checks, &in, reply) == 0)
                return true;
        session_reject(s, NULL, NULL, "%s", reply);
        return false;
}

static bool session_check_sender(SmtpdSession *s, const char *sender) {
        SmtpdCheckInput in = session_check_input(s, s->helo, sender, NULL);
        char reply[SMTPD_REPLY_LINE_MAX];

        if (smtpd_check_sender(s->checks, &in, reply) == 0)
                return true;
        session_reject(s, sender, NULL, "%s", reply);
        return false;
}

/* Whether addr may be a recipient: the relay and recipient restrictions, a known local recipient
 * (smtpd_reject_unlisted_recipient), and with smtpd_delay_reject the client, HELO and sender restrictions.
 * Queues the rejection if not. */
static bool session_check_recipient(SmtpdSession *s, const char *addr) {
        SmtpdCheckInput in = session_check_input(s, s->helo, s->in_mail ? s->sender : NULL, addr);
        char reply[SMTPD_REPLY_LINE_MAX];

        if (smtpd_check_rcpt(s->checks, &in, reply) == 0)
                return true;
        session_reject(s, s->in_mail ? s->sender : NULL, addr, "%s", reply);
        return false;
}

static void cmd_helo(SmtpdSession *s, const SmtpdCommand *c) {
        const Config *config = s->server->config;
        bool ehlo = c->type == SMTPD_COMMAND_EHLO;
        char *helo;

        if (c->arg_len == 0 || c->arg_len > SMTPD_HELO_MAX) {
                session_reply(s, "501 5.5.4 Syntax: %s hostname", smtpd_command_to_string(c->type));
                return;
        }
        helo = strndup(c->arg, c->arg_len);
        if (!helo) {
                session_reply(s, "451 4.3.0 Error: out of memory");
                return;
        }
        /* smtpd_helo_restrictions, here only with smtpd_delay_reject = no (smtpd-restrictions.c). */
        if (!session_check_helo(s, helo)) {
                free(helo);
                return;
        }
        free(s->helo);
        s->helo = helo;
        s->esmtp = ehlo;
        session_reset(s);
        if (ehlo) {
                /* The extensions, one a line; a hook may add its own (STARTTLS, AUTH) to keywords. */
                const char *keywords[16];
                char size[32], text[SMTPD_REPLY_MAX - 2];
                size_t n = 0, len;

                (void) snprintf(size, sizeof size, "SIZE %" PRIi64, config->message_size_limit);
                keywords[n++] = "PIPELINING";
                keywords[n++] = size;
                if (!config->disable_vrfy_command)
                        keywords[n++] = "VRFY";
                keywords[n++] = "ENHANCEDSTATUSCODES";
                keywords[n++] = "8BITMIME";
                keywords[n++] = "DSN";
                keywords[n++] = "SMTPUTF8";
                keywords[n++] = "CHUNKING";
                if (session_tls_offered(s))
                        keywords[n++] = "STARTTLS";
                if (session_auth_offered(s))
                        keywords[n++] = "AUTH " SMTPD_SASL_MECHANISMS;
                len = (size_t) snprintf(text, sizeof text, "250-%s", config->myhostname);
                for (size_t i = 0; i < n && len < sizeof text; i++)
                        len += (size_t) snprintf(text + len, sizeof text - len, "\r\n250%c%s",
                                                 i + 1 < n ? '-' : ' ', keywords[i]);
                session_reply(s, "%s", text);
        } else
                session_reply(s, "250 %s", config->myhostname);
}

/* Replies to a MAIL or RCPT argument that smtpd_{mail,rcpt}_parse() refused. */
static void reply_path_error(SmtpdSession *s, int r, const char *syntax, const char *bad_address) {
        if (r == -EPROTO)
                session_reply(s, "501 5.5.4 Syntax: %s", syntax);
        else if (r == -EBADMSG)
                session_reply(s, "%s", bad_address);
        else if (r == -EOPNOTSUPP)
                session_reply(s, "555 5.5.4 Unsupported option");
        else
                session_reply(s, "501 5.5.4 Syntax error in parameters");
}

/* smtpd_client_message_rate_limit and smtpd_client_recipient_rate_limit, counted per client address over
 * anvil_rate_time_unit as Postfix's anvil does; over the limit, 450 4.7.1 as Postfix answers. */
static bool session_rate_ok(SmtpdSession *s, SmtpdCommandType t) {
        const Config *config = s->server->config;
        int64_t limit = t == SMTPD_COMMAND_MAIL ? config->smtpd_client_message_rate_limit
                                                : config->smtpd_client_recipient_rate_limit;
        unsigned n;

        if (!s->anvil || limit <= 0)
                return true;
        n = t == SMTPD_COMMAND_MAIL ? smtpd_anvil_message(s->server->anvil, s->anvil, now_monotonic_usec())
                                    : smtpd_anvil_recipient(s->server->anvil, s->anvil, now_monotonic_usec());
        if (n <= (uint64_t) limit)
                return true;
        log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                 "%s rate limit exceeded: %u from unknown[%s] (limit %" PRIi64 " per %" PRIi64 "s)",
                 t == SMTPD_COMMAND_MAIL ? "Message delivery request" : "Recipient address", n, s->client.text,
                 limit, config->anvil_rate_time_unit);
        if (t == SMTPD_COMMAND_MAIL)
                session_reply(s, "450 4.7.1 Error: too much mail from %s", s->client.text);
        else
                session_reply(s, "450 4.7.1 Error: too many recipients from %s", s->client.text);
        return false;
}

static void cmd_mail(SmtpdSession *s, const SmtpdCommand *c) {
        SmtpdPath p;
        int r;

        if (!s->helo) {
                session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
                return;
        }
        if (s->in_mail) {
                session_reply(s, "503 5.5.1 Error: nested MAIL command");
                return;
        }
        /* smtpd_tls_security_level = encrypt (smtpd-tls.c). */
        if (s->listener->tls_level == SMTPD_TLS_ENCRYPT && !s->tls) {
                session_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
                return;
        }
        r = smtpd_mail_parse(c->arg, c->arg_len, &p);
        if (r < 0) {
                reply_path_error(s, r, "MAIL FROM:<address>", "501 5.1.7 Bad sender address syntax");
                return;
        }
        /* RFC 6531 3.4: an address beyond ASCII only in a transaction that declared SMTPUTF8. */
        if (!p.smtputf8 && !ascii_only(p.address, strlen(p.address))) {
                session_reject(s, p.address, NULL, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
                return;
        }
        if (p.size > (uint64_t) s->server->config->message_size_limit) {
                session_reject(s, p.address, NULL, "552 5.3.4 Message size exceeds fixed limit");
                return;
        }
        /* smtpd_sender_restrictions, here only with smtpd_delay_reject = no (smtpd-restrictions.c). */
        if (!session_check_sender(s, p.address))
                return;
        if (!session_rate_ok(s, SMTPD_COMMAND_MAIL))
                return;
        memcpy(s->sender, p.address, sizeof s->sender);
        s->smtputf8 = p.smtputf8;
        s->body = p.body_given ? (p.body_8bitmime ? "8BITMIME" : "7BIT") : NULL;
        s->dsn_ret = p.dsn_ret;
        memcpy(s->dsn_envid, p.dsn_envid, sizeof s->dsn_envid);
        s->in_mail = true;
        session_reply(s, "250 2.1.0 Ok");
}

static int session_add_recipient(SmtpdSession *s, const SmtpdPath *p) {
        char *copy, *orcpt;

        if (s->n_recipients + 1 >= s->n_allocated) {
                size_t n = MAX(s->n_allocated * 2, (size_t) 8);
                char **l = realloc(s->recipients, n * sizeof(char *));
                if (!l)
                        return -ENOMEM;
                s->recipients = l;
                l = realloc(s->rcpt_orcpt, n * sizeof(char *));
                if (!l)
                        return -ENOMEM;
                s->rcpt_orcpt = l;
                unsigned *nl = realloc(s->rcpt_notify, n * sizeof(unsigned));
                if (!nl)
                        return -ENOMEM;
                s->rcpt_notify = nl;
                s->n_allocated = n;
        }
        copy = strdup(p->address);
        orcpt = strdup(p->dsn_orcpt);
        if (!copy || !orcpt) {
                free(copy);
                free(orcpt);
                return -ENOMEM;
        }
        s->rcpt_notify[s->n_recipients] = p->dsn_notify;
        s->rcpt_orcpt[s->n_recipients] = orcpt;
        s->rcpt_orcpt[s->n_recipients + 1] = NULL;
        s->recipients[s->n_recipients++] = copy;
        s->recipients[s->n_recipients] = NULL;
        return 0;
}

static void cmd_rcpt(SmtpdSession *s, const SmtpdCommand *c) {
        SmtpdPath p;
        int r;

        if (!s->in_mail) {
                session_reply(s, "503 5.5.1 Error: need MAIL command");
                return;
        }
        r = smtpd_rcpt_parse(c->arg, c->arg_len, &p);
        if (r < 0) {
                reply_path_error(s, r, "RCPT TO:<address>", "501 5.1.3 Bad recipient address syntax");
                return;
        }
        if (!s->smtputf8 && !ascii_only(p.address, strlen(p.address))) {
                session_reject(s, s->sender, p.address, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
                return;
        }
        /* A 4xx the client must expect (RFC 5321 4.5.3.1.8), so it is not counted as an error. */
        if (s->n_recipients >= (size_t) s->server->config->smtpd_recipient_limit) {
                session_reply(s, "452 4.5.3 Error: too many recipients");
                return;
        }
        if (!session_rate_ok(s, SMTPD_COMMAND_RCPT))
                return;
        if (!session_check_recipient(s, p.address))
                return;
        if (session_add_recipient(s, &p) < 0) {
                session_reply(s, "451 4.3.0 Error: out of memory");
                return;
        }
        session_reply(s, "250 2.1.5 Ok");
}

/* The memory file a message is received into. */
static int session_data_open(SmtpdSession *s) {
        s->data_fd = memfd_create("postbus-smtpd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (s->data_fd < 0)
                return log_warning_errno(errno, "Failed to create a memory file for a message: %m");
        s->data_failed = false;
        return 0;
}

static void cmd_data(SmtpdSession *s, const SmtpdCommand *c) {
        const Config *config = s->server->config;

        if (c->arg_len > 0) {
                session_reply(s, "501 5.5.4 Syntax: DATA");
                return;
        }
        if (!s->in_mail) {
                session_reply(s, "503 5.5.1 Error: need RCPT command");
                return;
        }
        if (s->n_recipients == 0) {
                session_reply(s, "554 5.5.1 Error: no valid recipients");
                return;
        }
        /* RFC 3030 2: BDAT and DATA are not mixed in one transaction. */
        if (s->bdat) {
                session_reply(s, "503 5.5.1 Error: DATA after BDAT");
                return;
        }
        if (session_data_open(s) < 0) {
                session_reply(s, REPLY_QUEUE_WRITE_ERROR);
                return;
        }
        smtpd_data_reader_init(&s->data, (size_t) config->line_length_limit,
                               (uint64_t) config->message_size_limit,
                               SMTPD_DATA_DOT_STUFFED |
                               (s->reject_bare_lf ? SMTPD_DATA_REJECT_BARE_LF : 0) |
                               (s->lines.bare_lf ? SMTPD_DATA_AFTER_BARE_LF : 0));
        s->state = SMTPD_SESSION_DATA;
        session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(SmtpdSession *s, const SmtpdCommand *c) {
        session_junk(s);
        if (c->arg_len > 0) {
                session_reply(s, "501 5.5.4 Syntax: RSET");
                return;
        }
        session_reset(s);
        session_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(SmtpdSession *s, const SmtpdCommand *c) {
        session_junk(s);
        session_reply(s, "250 2.0.0 Ok");
}

/* BDAT size [LAST] (RFC 3030): the chunk's bytes follow the command at once and are always read, also
 * when the chunk is refused, so that they are never taken for commands. */
static void cmd_bdat(SmtpdSession *s, const SmtpdCommand *c) {
        const Config *config = s->server->config;
        uint64_t size;
        bool last;

        if (smtpd_bdat_parse(c->arg, c->arg_len, &size, &last) < 0) {
                session_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
                return;
        }
        s->bdat_size = s->bdat_remaining = size;
        s->bdat_last = last;
        s->bdat_error = NULL;
        s->state = SMTPD_SESSION_BDAT;
        if (!s->in_mail)
                s->bdat_error = "503 5.5.1 Error: need MAIL command";
        else if (s->n_recipients == 0)
                s->bdat_error = "554 5.5.1 Error: no valid recipients";
        else if (s->bdat_failed)
                s->bdat_error = "503 5.5.1 Error: this mail transaction failed, send RSET";
        else if (!s->bdat) {
                if (session_data_open(s) < 0) {
                        s->bdat_error = REPLY_QUEUE_WRITE_ERROR;
                        s->bdat_failed = true;
                }
                smtpd_data_reader_init(&s->data, (size_t) config->line_length_limit,
                                       (uint64_t) config->message_size_limit,
                                       s->reject_bare_lf ? SMTPD_DATA_REJECT_BARE_LF : 0);
                s->bdat = true;
        }
}

/* VRFY per disable_vrfy_command: when allowed, it tells only what RCPT would (RFC 5321 3.5.3: 252 for an
 * address that would be accepted, without promising delivery). */
static void cmd_vrfy(SmtpdSession *s, const SmtpdCommand *c) {
        char address[ADDRESS_MAX + 1];

        session_junk(s);
        if (s->server->config->disable_vrfy_command) {
                session_reply(s, "502 5.5.1 VRFY command is disabled");
                return;
        }
        if (smtpd_vrfy_parse(c->arg, c->arg_len, address) < 0) {
                session_reply(s, "501 5.1.3 Syntax: VRFY address");
                return;
        }
        if (!ascii_only(address, strlen(address))) {
                session_reject(s, NULL, address, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
                return;
        }
        if (!session_check_recipient(s, address))
                return;
        session_reply(s, "252 2.0.0 <%s>", address);
}

static void cmd_quit(SmtpdSession *s, const SmtpdCommand *c) {
        session_reply(s, "221 2.0.0 Bye");
        s->state = SMTPD_SESSION_CLOSING;
}

/* --- TLS and AUTH (smtpd-tls.c, smtpd-sasl.c): the session's side. --- */

/* Whether the EHLO reply offers STARTTLS: a certificate, a level other than none, no TLS yet. */
static bool session_tls_offered(const SmtpdSession *s) {
        const SmtpdListener *l = s->listener;

        return l->tls && l->tls_level != SMTPD_TLS_NONE && !l->wrappermode && !s->tls;
}

/* AUTH only ever over TLS: a password never crosses the network in plaintext. */
static bool session_auth_offered(const SmtpdSession *s) {
        return s->listener->sasl && s->tls && !s->authenticated;
}

/* RFC 3848: the protocol in the Received header says whether TLS and AUTH were used. */
static const char *session_protocol(const SmtpdSession *s) {
        if (!s->esmtp)
                return "SMTP";
        return s->tls ? (s->authenticated ? "ESMTPSA" : "ESMTPS") : (s->authenticated ? "ESMTPA" : "ESMTP");
}

static void session_tls_handshake(SmtpdSession *s) {
        int r;

        r = smtpd_tls_handshake(s->tls);
        if (r == 0)
                return;
        if (r < 0) {
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "SSL_accept error from unknown[%s]: %s", s->client.text, smtpd_tls_error(s->tls));
                session_lost(s);
                return;
        }
        log_mail(LOG_INFO, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "TLS_PROTOCOL", smtpd_tls_version(s->tls) },
                            { "TLS_CIPHER", smtpd_tls_cipher(s->tls) }),
                 "Anonymous TLS connection established from unknown[%s]: %s with cipher %s (%d/%d bits)",
                 s->client.text, smtpd_tls_version(s->tls), smtpd_tls_cipher(s->tls), smtpd_tls_bits(s->tls),
                 smtpd_tls_bits(s->tls));
        /* RFC 3207 4.2: the client starts over, and nothing said before the handshake counts. */
        s->helo = mfree(s->helo);
        s->esmtp = false;
        session_reset(s);
        s->state = SMTPD_SESSION_COMMAND;
        s->last_io_usec = now_monotonic_usec();
        if (s->listener->wrappermode)
                session_greet(s);       /* the restrictions' side (smtpd-restrictions.c) */
}

/* Starts the handshake: after the 220 to STARTTLS has gone out in plaintext, or at connect on port 465.
 * smtpd_timeout bounds the whole handshake: last_io_usec is not moved until it is complete. */
static void session_tls_start(SmtpdSession *s) {
        int r;

        r = smtpd_tls_new(s->listener->tls, s->fd, &s->tls);
        if (r < 0) {
                log_warning_errno(r, "Failed to start TLS with %s, closing: %m", s->client.text);
                s->state = SMTPD_SESSION_CLOSED;
                return;
        }
        s->state = SMTPD_SESSION_TLS_HANDSHAKE;
        s->last_io_usec = now_monotonic_usec();
        session_tls_handshake(s);
}

static void cmd_starttls(SmtpdSession *s, const SmtpdCommand *c) {
        if (c->arg_len > 0) {
                session_reply(s, "501 5.5.4 Syntax: STARTTLS");
                return;
        }
        if (s->tls) {
                session_reply(s, "554 5.5.1 Error: TLS already active");
                return;
        }
        if (!session_tls_offered(s)) {
                /* Postfix's own answer to STARTTLS where TLS is not offered (no certificate, or level none). */
                session_reply(s, "502 5.5.1 Error: command not implemented");
                return;
        }
        if (s->in_mail) {
                session_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
                return;
        }
        session_reply(s, "220 2.0.0 Ready to start TLS");
        /* Whatever the client pipelined after STARTTLS came in plaintext: executed after the handshake
         * it would pass for the client's word over TLS (CVE-2011-0411). It is dropped. */
        if (s->in_end > s->in_start)
                log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "unknown[%s]: discarding %zu bytes of plaintext pipelined after STARTTLS",
                         s->client.text, s->in_end - s->in_start);
        s->in_start = s->in_end;
        smtpd_line_reader_init(&s->lines, (size_t) s->server->config->line_length_limit);
        s->state = SMTPD_SESSION_STARTTLS;
}

static void session_auth_end(SmtpdSession *s) {
        s->sasl = smtpd_sasl_free(s->sasl);
        if (s->state == SMTPD_SESSION_AUTH_RESPONSE || s->state == SMTPD_SESSION_AUTH_CHECK)
                s->state = SMTPD_SESSION_COMMAND;
}

/* Dovecot's answer: a challenge to pass on, or the outcome. */
static void on_sasl(SmtpdSasl *a, SmtpdSaslResult result, const char *text, void *userdata) {
        SmtpdSession *s = userdata;
        char *user;

        switch (result) {
        case SMTPD_SASL_CONTINUE:
                /* PLAIN and LOGIN challenges are a few bytes; one that does not fit a reply line is
                 * not passed on cut short. */
                if (strlen(text) > SMTPD_REPLY_LINE_MAX - 6) {
                        session_auth_end(s);
                        session_reply(s, "454 4.7.0 Temporary authentication failure: challenge too long");
                        break;
                }
                session_reply(s, "334 %s", text);
                s->state = SMTPD_SESSION_AUTH_RESPONSE;
                break;
        case SMTPD_SASL_OK:
                session_auth_end(s);
                user = strdup(text);
                if (!user) {
                        session_reply(s, "454 4.7.0 Temporary authentication failure: out of memory");
                        break;
                }
                free(s->sasl_username);
                s->sasl_username = user;
                s->authenticated = true;
                s->counters[SMTPD_COMMAND_AUTH].ok++;
                session_reply(s, "235 2.7.0 Authentication successful");
                break;
        case SMTPD_SASL_FAIL:
                session_auth_end(s);
                log_mail(LOG_WARNING, NULL,
                         LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SASL_METHOD", s->sasl_method }),
                         "unknown[%s]: SASL %s authentication failed", s->client.text, s->sasl_method);
                session_reply(s, "535 5.7.8 Error: authentication failed");
                break;
        default:
                session_auth_end(s);
                log_mail(LOG_WARNING, NULL,
                         LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SASL_METHOD", s->sasl_method }),
                         "unknown[%s]: SASL %s authentication aborted: %s", s->client.text, s->sasl_method, text);
                session_reply(s, "454 4.7.0 Temporary authentication failure: %s", text);
                break;
        }
        session_update(s);
}

/* AUTH mechanism [initial-response] (RFC 4954). */
static void cmd_auth(SmtpdSession *s, const SmtpdCommand *c) {
        const SmtpdListener *l = s->listener;
        _cleanup_free_ char *initial = NULL;
        size_t mlen = 0, ilen;
        const char *mech, *resp = NULL;
        int r;

        if (!l->sasl) {
                session_reply(s, "503 5.5.1 Error: authentication not enabled");
                return;
        }
        if (!s->tls) {
                session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
                return;
        }
        if (!s->esmtp) {
                session_reply(s, "503 5.5.1 Error: send EHLO first");
                return;
        }
        if (s->authenticated) {
                session_reply(s, "503 5.5.1 Error: already authenticated");
                return;
        }
        if (s->in_mail) {
                session_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
                return;
        }
        while (mlen < c->arg_len && c->arg[mlen] != ' ' && c->arg[mlen] != '\t')
                mlen++;
        mech = smtpd_sasl_mechanism(c->arg, mlen);
        if (!mech) {
                session_reply(s, mlen == 0 ? "501 5.5.4 Syntax: AUTH mechanism"
                                           : "504 5.5.4 Unsupported authentication mechanism");
                return;
        }
        ilen = c->arg_len - mlen;
        if (ilen > 0) {
                const char *p = c->arg + mlen;

                while (ilen > 0 && (*p == ' ' || *p == '\t'))
                        p++, ilen--;
                /* "=" is an empty initial response (RFC 4954 4). */
                if (ilen == 1 && p[0] == '=')
                        ilen = 0;
                else if (!smtpd_sasl_base64_valid(p, ilen)) {
                        session_reply(s, "501 5.5.2 Cannot decode response");
                        return;
                }
                initial = strndup(p, ilen);
                if (!initial) {
                        session_reply(s, "451 4.3.0 Error: out of memory");
                        return;
                }
                resp = initial;
        }

        SmtpdSaslRequest req = {
                .mechanism = mech,
                .initial_response = resp,
                .client_address = s->client.text,
                .secured = true,
        };
        r = smtpd_sasl_new(s->server->daemon->event, l->config->smtpd_sasl_path,
                           sec_to_usec(s->server->config->smtpd_timeout), &req, on_sasl, s, &s->sasl);
        if (r < 0) {
                log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "unknown[%s]: SASL authentication unavailable: cannot talk to %s: %s", s->client.text,
                         l->config->smtpd_sasl_path, strerror(-r));
                session_reply(s, "454 4.7.0 Temporary authentication failure: authentication server unavailable");
                return;
        }
        s->sasl_method = mech;
        s->state = SMTPD_SESSION_AUTH_CHECK;
}

/* A line of the client in the AUTH exchange: the answer to a 334 challenge, or "*" to give up. */
static void session_auth_response(SmtpdSession *s, const char *line, size_t len) {
        if (len == 1 && line[0] == '*') {
                session_auth_end(s);
                session_reply(s, "501 5.7.0 Authentication aborted");
                return;
        }
        if (!smtpd_sasl_base64_valid(line, len)) {
                session_auth_end(s);
                session_reply(s, "501 5.5.2 Cannot decode response");
                return;
        }
        if (smtpd_sasl_respond(s->sasl, line, len) < 0) {
                session_auth_end(s);
                session_reply(s, "454 4.7.0 Temporary authentication failure: authentication server unavailable");
                return;
        }
        s->state = SMTPD_SESSION_AUTH_CHECK;
}

/* Reading and writing the client's connection, in plaintext or through TLS: like read(2) and send(2),
 * with errno set on failure. */
static ssize_t session_recv(SmtpdSession *s, void *buf, size_t n) {
        ssize_t k;

        if (!s->tls)
                return read(s->fd, buf, n);
        k = smtpd_tls_read(s->tls, buf, n);
        if (k >= 0)
                return k;
        if (k != -EAGAIN)
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "TLS read error from unknown[%s]: %s", s->client.text, smtpd_tls_error(s->tls));
        errno = (int) -k;
        return -1;
}

static ssize_t session_send(SmtpdSession *s, const void *buf, size_t n) {
        ssize_t k;

        if (!s->tls)
                return send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        k = smtpd_tls_write(s->tls, buf, n);
        if (k >= 0)
                return k;
        errno = (int) -k;
        return -1;
}

/* --- end of TLS and AUTH --- */

static void (*const command_handlers[_SMTPD_COMMAND_MAX])(SmtpdSession *s, const SmtpdCommand *c) = {
        [SMTPD_COMMAND_HELO] = cmd_helo,
        [SMTPD_COMMAND_EHLO] = cmd_helo,
        [SMTPD_COMMAND_MAIL] = cmd_mail,
        [SMTPD_COMMAND_RCPT] = cmd_rcpt,
        [SMTPD_COMMAND_DATA] = cmd_data,
        [SMTPD_COMMAND_RSET] = cmd_rset,
        [SMTPD_COMMAND_NOOP] = cmd_noop,
        [SMTPD_COMMAND_VRFY] = cmd_vrfy,
        [SMTPD_COMMAND_QUIT] = cmd_quit,
        [SMTPD_COMMAND_STARTTLS] = cmd_starttls,
        [SMTPD_COMMAND_AUTH] = cmd_auth,
        [SMTPD_COMMAND_BDAT] = cmd_bdat,
};

static void session_command(SmtpdSession *s, const char *line, size_t len) {
        SmtpdCommand c;
        int r;

        r = smtpd_command_parse(line, len, &c);
        if (r < 0) {
                s->counters[_SMTPD_COMMAND_MAX].total++;
                s->stage = "UNKNOWN";
                session_reply(s, r == -EBADMSG ? "500 5.5.2 Error: bad character in command"
                                               : "500 5.5.2 Error: command not recognized");
                return;
        }
        s->stage = smtpd_command_to_string(c.type);
        s->counters[c.type].total++;
        s->reply_code = 0;
        if (s->access_denied && c.type != SMTPD_COMMAND_QUIT) {      /* session_greet() */
                session_reply(s, "503 5.7.0 Error: access denied for unknown[%s]", s->client.text);
                return;
        }
        command_handlers[c.type](s, &c);
        /* DATA and BDAT succeed only when the chunk is read or cleanup has the message. */
        if (c.type != SMTPD_COMMAND_DATA && c.type != SMTPD_COMMAND_BDAT && s->reply_code > 0 &&
            s->reply_code < 400)
                s->counters[c.type].ok++;
}

/* cleanup's answer: the queue ID once the message is durable, or a rejection ("554 5.4.6 Too many hops" or
 * "5.4.6 Too many hops") that is passed on, or a temporary failure. */
static int on_submit_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        SmtpdSession *s = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        char reply[SMTPD_REPLY_LINE_MAX];
        const char *id;

        s->submit = sd_bus_slot_unref(s->submit);
        s->state = SMTPD_SESSION_COMMAND;
        if (e && sd_bus_error_has_name(e, POSTBUS_ERROR_REJECTED) && e->message &&
            smtpd_status_reply(e->message, '5', "554", reply) >= 0)
                session_reject(s, s->sender, s->recipients[0], "%s", reply);
        else if (e) {
                _cleanup_free_ char *text = escape(e->message);

                log_warning("cleanup did not take a message from unknown[%s]: %s: %s", s->client.text,
                            e->name, strna(text));
                if (!sd_bus_error_has_name(e, POSTBUS_ERROR_TEMPORARY) || !e->message ||
                    smtpd_status_reply(e->message, '4', "451", reply) < 0)
                        strcpy(reply, REPLY_QUEUE_WRITE_ERROR);
                session_reply(s, "%s", reply);
        } else if (sd_bus_message_read(m, "s", &id) < 0 || !queue_id_valid(id)) {
                log_warning("cleanup answered with a malformed queue ID.");
                session_reply(s, REPLY_QUEUE_WRITE_ERROR);
        } else {
                if (s->authenticated)
                        log_mail(LOG_INFO, id,
                                 LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SASL_METHOD", s->sasl_method },
                                            { "SASL_USERNAME", s->sasl_username }),
                                 "client=unknown[%s], sasl_method=%s, sasl_username=%s", s->client.text,
                                 s->sasl_method, s->sasl_username);
                else
                        log_mail(LOG_INFO, id, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                                 "client=unknown[%s]", s->client.text);
                s->counters[s->bdat ? SMTPD_COMMAND_BDAT : SMTPD_COMMAND_DATA].ok++;
                s->errors = 0;
                session_reply(s, "250 2.0.0 Ok: queued as %s", id);
        }

        session_reset(s);
        session_update(s);
        return 0;
}

/* The recipients as Cleanup1.Submit takes them: (address, NOTIFY, ORCPT), "" where not given. */
static int session_append_recipients(SmtpdSession *s, sd_bus_message *m) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "(sss)");
        for (size_t i = 0; r >= 0 && i < s->n_recipients; i++) {
                char notify[DSN_NOTIFY_TEXT_MAX] = "";

                if (s->rcpt_notify[i] != 0)
                        dsn_notify_format(s->rcpt_notify[i], notify);
                r = sd_bus_message_append(m, "(sss)", s->recipients[i], notify, s->rcpt_orcpt[i]);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* Sends the message to cleanup over a connection that is set up. */
static int session_submit_send(SmtpdSession *s, sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const Config *config = s->server->config;
        char port[8];
        int r;

        (void) snprintf(port, sizeof port, "%u", (unsigned) s->client.port);
        r = sd_bus_message_new_method_call(bus, &m, NULL, CLEANUP_OBJECT, CLEANUP_INTERFACE, "Submit");
        if (r >= 0)
                r = sd_bus_message_append(m, "hs", s->data_fd, s->sender);
        if (r >= 0)
                r = session_append_recipients(s, m);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{ss}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{ss}{ss}{ss}{ss}{ss}",
                                          "client_address", s->client.text,
                                          "client_name", "unknown",
                                          "client_port", port,
                                          "helo_name", s->helo,
                                          "protocol", session_protocol(s));
        /* AUTH: cleanup writes "(Authenticated sender: NAME)" into the Received header. */
        if (r >= 0 && s->authenticated)
                r = sd_bus_message_append(m, "{ss}{ss}", "sasl_method", s->sasl_method, "sasl_username",
                                          s->sasl_username);
        /* What the queue keeps for the smtp client (SMTPUTF8, BODY=) and for bounces (RFC 3461 RET, ENVID). */
        if (r >= 0 && s->smtputf8)
                r = sd_bus_message_append(m, "{ss}", "smtputf8", "yes");
        if (r >= 0 && s->body)
                r = sd_bus_message_append(m, "{ss}", "body_type", s->body);
        if (r >= 0 && s->dsn_ret)
                r = sd_bus_message_append(m, "{ss}", "dsn_ret", s->dsn_ret);
        if (r >= 0 && s->dsn_envid[0])
                r = sd_bus_message_append(m, "{ss}", "dsn_envid", s->dsn_envid);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call_async(bus, &s->submit, m, on_submit_reply, s,
                                      sec_to_usec(config->daemon_timeout));
        if (r < 0)
                return log_warning_errno(r, "Failed to send a message to cleanup: %m");

        /* The bus message holds its own copy of the descriptor. */
        s->data_fd = safe_close(s->data_fd);
        s->state = SMTPD_SESSION_SUBMIT;
        return 0;
}

static void session_submit_failed(SmtpdSession *s) {
        session_reply(s, REPLY_QUEUE_WRITE_ERROR);
        session_reset(s);
        s->state = SMTPD_SESSION_COMMAND;
}

/* The answer to a Ping sent over a new connection to cleanup: the connection is set up, or failed. */
static int on_cleanup_ping(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        SmtpdSession *s = userdata;
        sd_bus *bus = sd_bus_message_get_bus(m);

        s->submit = sd_bus_slot_unref(s->submit);
        if (sd_bus_is_ready(bus) <= 0) {
                const sd_bus_error *e = sd_bus_message_get_error(m);
                log_warning("The connection to cleanup failed: %s", e ? strna(e->message) : "not ready");
                session_submit_failed(s);
        } else if (session_submit_send(s, bus) < 0)
                session_submit_failed(s);
        session_update(s);
        return 0;
}

static int session_submit(SmtpdSession *s) {
        BusClient *cleanup = s->server->cleanup;
        sd_bus *bus;
        int r;

        /* cleanup maps the file: sealed, it cannot change while cleanup reads it. */
        if (fcntl(s->data_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return log_warning_errno(errno, "Failed to seal a message file: %m");

        r = bus_client_get_ready(cleanup, on_cleanup_ping, s, &s->submit, &bus);
        if (r == -EAGAIN)
                return log_warning_errno(r, "Cannot reach cleanup at %s: waiting before the next attempt.",
                                         bus_client_path(cleanup));
        if (r < 0)
                return log_warning_errno(r, "Cannot reach cleanup at %s: %m", bus_client_path(cleanup));
        if (r > 0)
                return session_submit_send(s, bus);
        s->state = SMTPD_SESSION_CONNECT;
        return 0;
}

static void session_data_write(SmtpdSession *s, const char *p, size_t n) {
        while (n > 0 && !s->data_failed) {
                ssize_t k = write(s->data_fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        log_warning_errno(errno, "Failed to write to a message file: %m");
                        s->data_failed = true;
                        break;
                }
                p += k;
                n -= (size_t) k;
        }
}

static void session_data_end(SmtpdSession *s) {
        const char *rcpt = s->recipients[0];

        s->stage = "END-OF-MESSAGE";
        s->state = SMTPD_SESSION_COMMAND;
        /* RFC 5322 2.1.1 limits lines; RFC 5321 4.5.3.1.10 names 552 for too much mail data. */
        if (s->data.line_too_long)
                session_reject(s, s->sender, rcpt, "554 5.6.0 Error: message line too long");
        else if (s->data.too_big)
                session_reject(s, s->sender, rcpt, "552 5.3.4 Error: message file too big");
        else if (s->data_failed || session_submit(s) < 0)
                session_reply(s, REPLY_QUEUE_WRITE_ERROR);
        else
                return;
        session_reset(s);
}

/* smtpd_forbid_bare_newline = reject: Postfix 3.9's answer, and the end of the session. */
static void session_bare_lf(SmtpdSession *s) {
        session_reply(s, "521 5.5.2 %s Error: bare <LF> received", s->server->config->myhostname);
        session_log_end(s, "bare <LF> received");
        session_reset(s);
        s->state = SMTPD_SESSION_CLOSING;
}

/* Feeds buffered input to the DATA reader. Returns true when the message has ended. */
static bool session_data(SmtpdSession *s) {
        char *out = s->server->data_buf;

        while (s->in_start < s->in_end && !smtpd_data_done(&s->data) && !smtpd_data_bare_lf(&s->data)) {
                size_t n;

                s->in_start += smtpd_data_read(&s->data, s->in + s->in_start, s->in_end - s->in_start, out,
                                               sizeof s->server->data_buf, &n);
                session_data_write(s, out, n);
        }
        if (smtpd_data_bare_lf(&s->data)) {
                session_bare_lf(s);
                return false;
        }
        if (!smtpd_data_done(&s->data))
                return false;
        session_data_end(s);
        return true;
}

/* A BDAT chunk has been read: answer it; after the last one, hand the message to cleanup. A chunk that
 * fails fails the transaction: the chunks after it are read and refused up to LAST (RFC 3030 2). */
static void session_bdat_end(SmtpdSession *s) {
        const char *rcpt = s->recipients ? s->recipients[0] : NULL;
        bool in_transaction = s->in_mail && s->n_recipients > 0;

        s->state = SMTPD_SESSION_COMMAND;
        if (s->bdat_error)
                session_reply(s, "%s", s->bdat_error);
        else {
                if (s->bdat_last) {
                        size_t n = smtpd_data_finish(&s->data, s->server->data_buf, sizeof s->server->data_buf);
                        session_data_write(s, s->server->data_buf, n);
                }
                if (s->data.line_too_long)
                        session_reject(s, s->sender, rcpt, "554 5.6.0 Error: message line too long");
                else if (s->data.too_big)
                        session_reject(s, s->sender, rcpt, "552 5.3.4 Error: message file too big");
                else if (s->data_failed)
                        session_reply(s, REPLY_QUEUE_WRITE_ERROR);
                else if (!s->bdat_last) {
                        s->counters[SMTPD_COMMAND_BDAT].ok++;
                        session_reply(s, "250 2.0.0 Ok: %" PRIu64 " bytes", s->bdat_size);
                        return;
                } else if (session_submit(s) < 0)
                        session_reply(s, REPLY_QUEUE_WRITE_ERROR);
                else
                        return;
        }
        if (s->bdat_last)
                session_reset(s);
        else if (in_transaction)
                s->bdat_failed = true;
}

/* Feeds buffered input to the BDAT chunk being read, which bounds it: nothing more than one read is
 * held, and content goes to the memory file (or nowhere once the chunk is refused). Returns true when the
 * chunk is complete. */
static bool session_bdat(SmtpdSession *s) {
        char *out = s->server->data_buf;

        while (s->bdat_remaining > 0 && s->in_start < s->in_end) {
                size_t avail = (size_t) MIN((uint64_t) (s->in_end - s->in_start), s->bdat_remaining), used, n = 0;

                if (s->bdat_error)
                        used = avail;
                else {
                        used = smtpd_data_read(&s->data, s->in + s->in_start, avail, out,
                                               sizeof s->server->data_buf, &n);
                        if (smtpd_data_bare_lf(&s->data)) {
                                session_bare_lf(s);
                                return false;
                        }
                        session_data_write(s, out, n);
                }
                s->in_start += used;
                s->bdat_remaining -= used;
        }
        if (s->bdat_remaining > 0)
                return false;
        session_bdat_end(s);
        return true;
}

static int on_session_delay(sd_event_source *source, uint64_t usec, void *userdata) {
        SmtpdSession *s = userdata;

        s->delaying = false;
        s->delay_done = true;
        session_update(s);
        return 0;
}

/* smtpd_soft_error_limit: once a session has made that many errors, each command waits
 * smtpd_error_sleep_time before it is answered, on a timer, so that the other sessions go on. Returns
 * true while the next command must wait. */
static bool session_must_wait(SmtpdSession *s) {
        const Config *config = s->server->config;
        uint64_t when;
        int r;

        if (config->smtpd_error_sleep_time <= 0 || s->errors < (unsigned) config->smtpd_soft_error_limit)
                return false;
        if (s->delay_done) {
                s->delay_done = false;
                return false;
        }
        if (s->delaying)
                return true;
        when = now_monotonic_usec() + sec_to_usec(config->smtpd_error_sleep_time);
        if (s->delay) {
                r = sd_event_source_set_time(s->delay, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(s->delay, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(s->server->daemon->event, &s->delay, CLOCK_MONOTONIC, when, 0,
                                      on_session_delay, s);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the error delay timer, answering at once: %m");
                return false;
        }
        s->delaying = true;
        return true;
}

/* Handles buffered input as far as the state and the room for replies allow. */
static void session_process(SmtpdSession *s) {
        const Config *config = s->server->config;

        while (s->out_len <= SMTPD_OUT_PAUSE) {
                size_t line_len = 0, consumed;
                int r;

                if (s->state != SMTPD_SESSION_COMMAND && s->state != SMTPD_SESSION_DATA &&
                    s->state != SMTPD_SESSION_BDAT && s->state != SMTPD_SESSION_AUTH_RESPONSE)
                        return;
                if (s->errors >= (unsigned) config->smtpd_hard_error_limit) {
                        session_reply(s, "421 4.7.0 %s Error: too many errors", config->myhostname);
                        session_log_end(s, "too many errors");
                        s->state = SMTPD_SESSION_CLOSING;
                        return;
                }
                if (s->state == SMTPD_SESSION_DATA) {
                        if (!session_data(s))
                                return;
                        continue;
                }
                if (s->state == SMTPD_SESSION_BDAT) {
                        if (!session_bdat(s))
                                return;
                        continue;
                }

                const char *line = s->in + s->in_start;
                r = smtpd_line_next(&s->lines, line, s->in_end - s->in_start, &line_len, &consumed);
                /* A complete line stays where it is while it waits (the reader finds it again): for the
                 * DNS blocklist lookups (smtpd-restrictions.c) or the error delay. */
                if (r == 1 && (session_checks_wait(s, line, line_len) || session_must_wait(s)))
                        return;
                s->in_start += consumed;
                if (r == 0)
                        return;
                if (s->lines.bare_lf && s->reject_bare_lf) {
                        session_bare_lf(s);
                        return;
                }
                if (r == -E2BIG && s->state == SMTPD_SESSION_AUTH_RESPONSE) {
                        session_auth_end(s);
                        session_reply(s, "500 5.5.6 Authentication exchange line is too long");
                } else if (r == -E2BIG)
                        s->stage = "UNKNOWN", session_reply(s, "500 5.5.2 Error: line too long");
                else if (s->state == SMTPD_SESSION_AUTH_RESPONSE)
                        session_auth_response(s, line, line_len);
                else
                        session_command(s, line, line_len);
        }
}

static void session_read(SmtpdSession *s) {
        ssize_t n;

        if (s->in_start > 0) {
                memmove(s->in, s->in + s->in_start, s->in_end - s->in_start);
                s->in_end -= s->in_start;
                s->in_start = 0;
        }
        if (s->in_end >= s->in_size)
                return;
        n = session_recv(s, s->in + s->in_end, s->in_size - s->in_end);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                session_lost(s);
                return;
        }
        s->in_end += (size_t) n;
        s->last_io_usec = now_monotonic_usec();
}

static void session_flush(SmtpdSession *s) {
        while (s->out_len > 0 && s->state != SMTPD_SESSION_CLOSED) {
                ssize_t n = session_send(s, s->out, s->out_len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                session_lost(s);
                        return;
                }
                memmove(s->out, s->out + n, s->out_len - (size_t) n);
                s->out_len -= (size_t) n;
                s->last_io_usec = now_monotonic_usec();
        }
}

/* After any event: handle what input is buffered, send what replies are queued, then wait for what
 * the state needs. Frees the session when it is over. */
static void session_update(SmtpdSession *s) {
        const Config *config = s->server->config;
        uint32_t events = 0;
        uint64_t when;
        int r;

        session_process(s);
        /* TLS: input that OpenSSL has decrypted already is invisible to epoll; read it now. */
        while (s->tls && (s->state == SMTPD_SESSION_COMMAND || s->state == SMTPD_SESSION_DATA ||
                          s->state == SMTPD_SESSION_AUTH_RESPONSE || s->state == SMTPD_SESSION_BDAT) &&
               s->out_len <= SMTPD_OUT_PAUSE && smtpd_tls_pending(s->tls)) {
                size_t before = s->in_end - s->in_start;

                session_read(s);
                if (s->state == SMTPD_SESSION_CLOSED || s->in_end - s->in_start == before)
                        break;
                session_process(s);
        }
        session_flush(s);
        /* STARTTLS: the handshake begins once the 220 has gone out in plaintext. */
        if (s->state == SMTPD_SESSION_STARTTLS && s->out_len == 0)
                session_tls_start(s);
        if (s->state == SMTPD_SESSION_CLOSED || (s->state == SMTPD_SESSION_CLOSING && s->out_len == 0)) {
                session_free(s);
                return;
        }

        if ((s->state == SMTPD_SESSION_COMMAND || s->state == SMTPD_SESSION_DATA ||
             s->state == SMTPD_SESSION_BDAT) &&
            s->out_len <= SMTPD_OUT_PAUSE && !s->delaying &&
            !s->checks_wait)  /* on_checks_done() goes on */
                events |= EPOLLIN;
        if (s->state == SMTPD_SESSION_AUTH_RESPONSE && s->out_len <= SMTPD_OUT_PAUSE)
                events |= EPOLLIN;
        if (s->out_len > 0)
                events |= EPOLLOUT;
        if (s->tls)
                events = smtpd_tls_events(s->tls, events);
        r = sd_event_source_set_io_events(s->io, events);
        if (r < 0) {
                log_warning_errno(r, "Failed to watch the connection of %s, closing it: %m", s->client.text);
                session_free(s);
                return;
        }

        /* While cleanup works, the client is not expected to send anything. */
        when = s->deadline_usec;
        if (s->state != SMTPD_SESSION_CONNECT && s->state != SMTPD_SESSION_SUBMIT &&
            s->state != SMTPD_SESSION_AUTH_CHECK)      /* the Dovecot client has its own timeout */
                when = MIN(when, s->last_io_usec + sec_to_usec(config->smtpd_timeout));
        (void) sd_event_source_set_time(s->timer, when);
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

static int on_session_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        SmtpdSession *s = userdata;

        if (s->state == SMTPD_SESSION_TLS_HANDSHAKE) {
                session_tls_handshake(s);
                /* The client's first command may already be there. */
                if (s->state == SMTPD_SESSION_COMMAND)
                        session_read(s);
        } else if ((revents & EPOLLIN) || (s->tls && (revents & EPOLLOUT) && smtpd_tls_read_wants_write(s->tls)))
                session_read(s);
        else if (revents & (EPOLLHUP | EPOLLERR))
                session_lost(s);
        session_update(s);
        return 0;
}

static int on_session_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        SmtpdSession *s = userdata;

        if (s->state == SMTPD_SESSION_TLS_HANDSHAKE)
                /* No 421: there is no channel to send it on. */
                session_log_end(s, "timeout during the TLS handshake");
        else if (s->state != SMTPD_SESSION_CLOSING) {
                session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->server->config->myhostname);
                session_log_end(s, usec >= s->deadline_usec ? "session deadline exceeded" : "timeout");
                /* One try to send the 421, without waiting for the client. */
                s->state = SMTPD_SESSION_CLOSING;
                session_flush(s);
        }
        session_free(s);
        return 0;
}

static int session_new(SmtpdListener *listener, int fd, const SmtpdAddress *client, SmtpdAnvilClient *anvil) {
        Smtpd *server = listener->server;
        _cleanup_(session_freep) SmtpdSession *s = NULL;
        const Config *config = server->config;
        uint64_t now = now_monotonic_usec();
        int r;

        s = calloc(1, sizeof(SmtpdSession));
        if (!s) {
                smtpd_anvil_disconnect(server->anvil, anvil, now);
                return -ENOMEM;
        }
        s->anvil = anvil;               /* released by session_free() from here on */
        s->server = server;
        s->listener = listener;
        s->fd = -EBADF;
        s->data_fd = -EBADF;
        s->client = *client;
        s->reject_bare_lf = server->reject_bare_lf &&
                            !smtpd_networks_match(&server->bare_newline_exclusions, client);
        s->stage = "CONNECT";
        s->last_io_usec = now;
        s->deadline_usec = now + sec_to_usec(config->smtpd_session_deadline);
        smtpd_line_reader_init(&s->lines, (size_t) config->line_length_limit);
        s->in_size = (size_t) config->line_length_limit + 2 + SMTPD_READ_CHUNK;
        s->in = malloc(s->in_size);
        if (!s->in)
                return -ENOMEM;
        r = sd_event_add_io(server->daemon->event, &s->io, fd, EPOLLIN, on_session_io, s);
        if (r < 0)
                return r;
        r = sd_event_add_time(server->daemon->event, &s->timer, CLOCK_MONOTONIC, s->deadline_usec,
                              USEC_PER_SEC, on_session_timer, s);
        if (r < 0)
                return r;
        r = smtpd_check_session_new(listener->checks, client, on_checks_done, s, &s->checks);
        if (r < 0)
                return r;

        s->fd = fd;
        s->linked = true;
        s->next = server->sessions;
        if (s->next)
                s->next->prev = s;
        server->sessions = s;
        server->n_sessions++;
        daemon_busy_inc(server->daemon);

        log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", client->text }), "connect from unknown[%s]",
                 client->text);
        if (listener->wrappermode)
                session_tls_start(s);   /* port 465: the 220 follows the handshake */
        else
                session_greet(s);
        session_update(TAKE_PTR(s));
        return 0;
}

static void accept_enable(Smtpd *server, int enabled) {
        for (size_t i = 0; i < server->n_listen; i++)
                (void) sd_event_source_set_enabled(server->listen_sources[i], enabled);
}

static int on_accept_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        accept_enable(userdata, SD_EVENT_ON);
        return 0;
}

/* Out of file descriptors or memory: the pending connection stays readable, so stop polling for a
 * second rather than spin. */
static void accept_pause(Smtpd *server) {
        uint64_t when = now_monotonic_usec() + USEC_PER_SEC;
        int r;

        accept_enable(server, SD_EVENT_OFF);
        if (server->accept_retry) {
                (void) sd_event_source_set_time(server->accept_retry, when);
                r = sd_event_source_set_enabled(server->accept_retry, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(server->daemon->event, &server->accept_retry, CLOCK_MONOTONIC, when, 0,
                                      on_accept_retry, server);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the accept timer, accepting again at once: %m");
                accept_enable(server, SD_EVENT_ON);
        }
}

static void refuse(Smtpd *server, int fd, const SmtpdAddress *client) {
        char reply[SMTPD_REPLY_LINE_MAX];
        int n;

        log_mail(LOG_WARNING, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", client->text }, { "SMTP_COMMAND", "CONNECT" }, { "DSN", "4.7.0" }),
                 "Too many connections (smtpd_session_limit=%" PRIi64 "), refused unknown[%s]",
                 server->config->smtpd_session_limit, client->text);
        n = snprintf(reply, sizeof reply, "421 4.7.0 %s Error: too many connections\r\n",
                     server->config->myhostname);
        if (n > 0)
                (void) send(fd, reply, MIN((size_t) n, sizeof reply - 1), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int on_anvil_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Smtpd *server = userdata;
        uint64_t now = now_monotonic_usec();

        if (smtpd_anvil_expire(server->anvil, now) == 0) {
                server->anvil_busy = false;
                daemon_busy_dec(server->daemon);
                return 0;
        }
        (void) sd_event_source_set_time(source, now + sec_to_usec(server->config->anvil_rate_time_unit));
        (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        return 0;
}

/* With a rate limit on, the counters must outlive the sessions: were smtpd to exit idle, a client could
 * start its rates again by waiting max_idle. So smtpd counts as busy while it keeps any, and a timer
 * drops them once their time unit is over. */
static void anvil_hold(Smtpd *server) {
        const Config *config = server->config;
        uint64_t when = now_monotonic_usec() + sec_to_usec(config->anvil_rate_time_unit);
        int r;

        if (server->anvil_busy || smtpd_anvil_size(server->anvil) == 0 ||
            (config->smtpd_client_connection_rate_limit <= 0 && config->smtpd_client_message_rate_limit <= 0 &&
             config->smtpd_client_recipient_rate_limit <= 0))
                return;
        if (server->anvil_timer) {
                r = sd_event_source_set_time(server->anvil_timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(server->anvil_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(server->daemon->event, &server->anvil_timer, CLOCK_MONOTONIC, when,
                                      USEC_PER_SEC, on_anvil_timer, server);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the rate counter timer, ignoring: %m");
                return;
        }
        server->anvil_busy = true;
        daemon_busy_inc(server->daemon);
}

/* smtpd_client_connection_count_limit and smtpd_client_connection_rate_limit, per client address, except
 * for smtpd_client_event_limit_exceptions. Returns false when the client was refused (answered, logged);
 * else *ret is its counters (NULL when it is exempt), for the session to hold. */
static bool anvil_admit(Smtpd *server, int fd, const SmtpdAddress *client, SmtpdAnvilClient **ret) {
        const Config *config = server->config;
        uint64_t now = now_monotonic_usec();
        char reply[SMTPD_REPLY_LINE_MAX];
        SmtpdAnvilClient *c;
        const char *what;
        unsigned count;
        int64_t limit;
        int r, n;

        *ret = NULL;
        if (smtpd_networks_match(&server->limit_exceptions, client))
                return true;
        r = smtpd_anvil_connect(server->anvil, client->text, now, &c);
        anvil_hold(server);
        if (r < 0) {
                log_warning_errno(r, "Failed to count a connection from %s, not limiting it: %m", client->text);
                return true;
        }
        if (config->smtpd_client_connection_count_limit > 0 &&
            c->connections > (uint64_t) config->smtpd_client_connection_count_limit) {
                what = "Connection concurrency";
                count = c->connections;
                limit = config->smtpd_client_connection_count_limit;
        } else if (config->smtpd_client_connection_rate_limit > 0 &&
                   c->connection_rate > (uint64_t) config->smtpd_client_connection_rate_limit) {
                what = "Connection rate";
                count = c->connection_rate;
                limit = config->smtpd_client_connection_rate_limit;
        } else {
                *ret = c;
                return true;
        }
        smtpd_anvil_disconnect(server->anvil, c, now);

        n = snprintf(reply, sizeof reply, "421 4.7.0 %s Error: too many connections from %s",
                     config->myhostname, client->text);
        log_mail(LOG_WARNING, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", client->text }, { "SMTP_COMMAND", "CONNECT" }, { "DSN", "4.7.0" }),
                 "NOQUEUE: reject: CONNECT from unknown[%s]: %s; %s limit exceeded: %u (limit %" PRIi64 ")",
                 client->text, reply, what, count, limit);
        if (n > 0 && (size_t) n < sizeof reply - 2) {
                memcpy(reply + n, "\r\n", 2);
                (void) send(fd, reply, (size_t) n + 2, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        return false;
}

static int on_accept(sd_event_source *source, int listen_fd, uint32_t revents, void *userdata) {
        SmtpdListener *listener = userdata;
        Smtpd *server = listener->server;
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        SmtpdAddress client;
        int r;

        fd = accept4(listen_fd, (struct sockaddr *) &sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        log_warning_errno(errno, "Failed to accept a connection: %m");
                        accept_pause(server);
                } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_debug_errno(errno, "Failed to accept a connection, ignoring: %m");
                return 0;
        }
        r = smtpd_address_from_sockaddr((struct sockaddr *) &sa, salen, &client);
        if (r < 0) {
                log_warning_errno(r, "Failed to format a client address, closing: %m");
                return 0;
        }

        if (server->n_sessions >= (unsigned) server->config->smtpd_session_limit) {
                refuse(server, fd, &client);
                return 0;
        }
        /* Port 465 without a certificate cannot speak at all (smtpd.c warned at start). */
        if (listener->wrappermode && !listener->tls) {
                log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", client.text }),
                         "%s: no TLS certificate (smtpd_tls_cert_file), refused unknown[%s]", listener->name,
                         client.text);
                return 0;
        }
        SmtpdAnvilClient *anvil;
        if (!anvil_admit(server, fd, &client, &anvil))
                return 0;
        r = session_new(listener, fd, &client, anvil);
        if (r < 0) {
                log_warning_errno(r, "Failed to set up a session for %s, closing: %m", client.text);
                return 0;
        }
        TAKE_FD(fd);
        return 0;
}

int smtpd_listen(SmtpdListener *listener, int fd) {
        Smtpd *server = listener->server;
        int flags, r;

        /* A connection that is reset between poll and accept must not block the loop. */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_error_errno(errno, "Failed to make a listening socket non-blocking: %m");
        r = sd_event_add_io(server->daemon->event, &server->listen_sources[server->n_listen], fd, EPOLLIN,
                            on_accept, listener);
        if (r < 0)
                return log_error_errno(r, "Failed to watch a listening socket: %m");
        server->n_listen++;
        return 0;
}
