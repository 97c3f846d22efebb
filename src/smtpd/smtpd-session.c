/* smtpd-session.c: an SMTP session's life in the smtpd process: set up at accept, greeted, driven by its
 * socket's events and its timers (smtpd_timeout, smtpd_session_deadline), its replies queued and sent, and
 * closed. Sessions share one event loop; a session never blocks it. */
#include <ctype.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dsn.h"
#include "format-util.h"
#include "log.h"
#include "smtpd-session.h"

/* Resets the mail transaction (RSET, HELO, and after each message). */
void smtpd_session_reset(SmtpdSession *s) {
        s->in_mail = false;
        s->sender[0] = '\0';
        smtpd_message_actions_clear(&s->actions);
        s->recipients = strv_free(s->recipients);
        s->rcpt_orcpt = strv_free(s->rcpt_orcpt);
        s->rcpt_notify = mfree(s->rcpt_notify);
        s->n_recipients = s->n_allocated = 0;
        s->smtputf8 = false;
        s->body = s->dsn_ret = NULL;
        s->dsn_envid[0] = '\0';
        s->verp_delims[0] = '\0';
        s->instance[0] = '\0';
        s->mail_size = 0;
        s->bdat = s->bdat_last = s->bdat_failed = false;
        s->bdat_remaining = 0;
        s->bdat_error = NULL;
        s->data_fd = safe_close(s->data_fd);
        s->data_mem.len = 0;            /* its memory serves the session's next message */
        /* An answer still due from cleanup is dropped: the outcome is unknown to the client, which will
         * retry, so the worst case is a duplicate. */
        s->submit = sd_bus_slot_unref(s->submit);
        smtpd_milter_reset(s);
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
                         "disconnect from %s[%s]%s commands=%u", s->peer.name, s->client.text, stats, total);
        else
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "disconnect from %s[%s]%s commands=%u/%u", s->peer.name, s->client.text, stats, ok, total);
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
        smtpd_milter_free(s);
        smtpd_session_reset(s);
        smtpd_check_session_free(s->checks);
        smtpd_peer_lookup_free(s->peer_lookup);
        sd_event_source_disable_unref(s->delay);
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->timer);
        buffer_done(&s->data_mem);
        free(s->helo);
        free(s->in);
        smtpd_sasl_free(s->sasl);
        free(s->sasl_username);
        if (s->tls)
                smtpd_tls_shutdown(s->tls);
        smtpd_tls_free(s->tls);
        safe_close(s->fd);
        smtpd_conf_unref(s->conf);      /* last: the listener, its checks and milters are the conf's */
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdSession *, session_free);

void smtpd_sessions_free(Smtpd *server) {
        while (server->sessions)
                session_free(server->sessions);
}

static char *escape(const char *s) {
        return s ? log_escape(s, strlen(s)) : NULL;
}

/* Journals a 4xx or 5xx reply that smtpd_session_reject() did not: every refusal leaves a record with the
 * client, the command and the enhanced status code, in the shape Postfix administrators grep for. Other
 * replies are journaled too, at debug level (POSTBUS_LOG_LEVEL=debug). */
static void session_log_reply(SmtpdSession *s, const char *reply, size_t len) {
        _cleanup_free_ char *text = log_escape(reply, len), *ehelo = escape(s->helo);
        char dsn[16] = "";

        (void) sscanf(reply, "%*3d%*[ -]%15[0-9.]", dsn);
        log_mail(reply[0] >= '4' ? LOG_INFO : LOG_DEBUG, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SMTP_COMMAND", s->stage },
                            { "DSN", dsn[0] ? dsn : NULL }),
                 "%s: %s from %s[%s]: %s; proto=%s helo=<%s>",
                 reply[0] >= '4' ? "NOQUEUE: reject" : "reply", s->stage, s->peer.name, s->client.text, strna(text),
                 s->esmtp ? "ESMTP" : "SMTP", strempty(ehelo));
}

/* smtpd_reject_footer_maps (by the whole reply) or smtpd_reject_footer after a 4xx or 5xx reply of n bytes at p,
 * with room for SMTPD_REPLY_MAX - 3; its $names are those Postfix has for it. Returns the new length. */
static size_t session_reply_footer(SmtpdSession *s, char *p, size_t n) {
        const Config *config = s->listener->config;
        _cleanup_free_ char *found = NULL, *key = NULL, *footer = NULL;
        const char *template = config->smtpd_reject_footer;
        char port[8], localtime_text[32] = "";
        struct tm tm;
        time_t now;
        int r;

        if (isempty(template) && table_list_is_empty(s->listener->reject_footer_maps))
                return n;       /* the common case: no copy of the reply */
        key = strndup(p, n);
        if (!key)
                return n;
        r = table_list_lookup(s->listener->reject_footer_maps, key, &found);
        if (r < 0)
                log_warning_errno(r, "Failed to look up a reply in smtpd_reject_footer_maps, ignoring: %m");
        else if (r > 0)
                template = found;
        if (isempty(template))
                return n;
        (void) snprintf(port, sizeof port, "%u", s->client.port);
        now = time(NULL);
        if (localtime_r(&now, &tm))
                (void) strftime(localtime_text, sizeof localtime_text, "%b %d %H:%M:%S", &tm);
        /* What the client chose (its HELO name, its DNS names) must not add lines or join them: the footer's
         * own \n and \c are read after the expansion, so a backslash of theirs becomes '_'. */
        _cleanup_free_ char *helo = strdup(strempty(s->helo)), *name = strdup(strempty(s->peer.name)),
                            *reverse = strdup(strempty(s->peer.reverse_name));
        if (!helo || !name || !reverse) {
                log_oom();
                return n;
        }
        for (char *v[] = { helo, name, reverse }, **k = v; k < v + ELEMENTSOF(v); k++)
                for (char *c = *k; (c = strchr(c, '\\')); c++)
                        *c = '_';
        const char *vars[] = {
                "client_address", s->client.text,
                "client_port", port,
                "client_name", name,
                "reverse_client_name", reverse,
                "helo_name", helo,
                "localtime", localtime_text,
                "server_name", config->myhostname,
                NULL,
        };
        r = format_expand_vars(template, vars, &footer);
        if (r == -ENOMEM)
                return n;
        if (r < 0) {
                log_warning("Bad $name in the reject footer \"%s\", ignoring.", template);
                return n;
        }
        smtpd_reply_censor(footer);     /* the HELO name is the client's, in any bytes it likes */
        r = smtpd_reply_add_footer(p, n, SMTPD_REPLY_MAX - 3, footer);
        if (r < 0) {
                log_warning("The reject footer \"%s\" does not fit in a reply, ignoring.", footer);
                return n;
        }
        return (size_t) r;
}

/* Queues one reply; CRLF is added. Process only while there is room (SMTPD_OUT_PAUSE) for this and one
 * more (a 421 or cleanup's answer). */
void smtpd_session_reply(SmtpdSession *s, const char *fmt, ...) {
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
        p[n] = '\0';
        /* Counted as the error it is, whatever soft_bounce makes of its code. */
        if (p[0] == '5')
                s->errors++;
        /* soft_bounce: every permanent refusal, the restrictions', cleanup's and the protocol's, goes out as
         * a temporary one, as Postfix's safety net has it. */
        if (s->listener->config->soft_bounce)
                (void) dsn_soft_bounce(p);
        s->reply_code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if ((p[0] == '4' || p[0] == '5') && !s->in_reject)
                session_log_reply(s, p, (size_t) n);
        else if (p[0] < '4' && log_get_max_level() >= LOG_DEBUG)
                session_log_reply(s, p, (size_t) n);
        /* After the journal, which does not get it (as Postfix's). */
        if (p[0] == '4' || p[0] == '5')
                n = (int) session_reply_footer(s, p, (size_t) n);
        /* A client not offered ENHANCEDSTATUSCODES is not sent them (as Postfix's smtpd_chat). */
        if (s->ehlo_discard & SMTPD_EHLO_ENHANCEDSTATUSCODES)
                n = (int) smtpd_reply_strip_enhanced(p, (size_t) n);
        memcpy(p + n, "\r\n", 2);
        s->out_len += (size_t) n + 2;
}

/* Sends a rejection and logs it as Postfix does: "NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 550 5.1.1
 * <u@h>: ...; from=<s> to=<u@h> proto=ESMTP helo=<h>". sender and rcpt may be NULL. */
void smtpd_session_reject(SmtpdSession *s, const char *sender, const char *rcpt, const char *fmt, ...) {
        _cleanup_free_ char *esender = escape(sender), *ercpt = escape(rcpt),
                            *ehelo = escape(s->check_helo ?: s->helo);
        char reply[SMTPD_REPLY_LINE_MAX], dsn[16] = "";
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(reply, sizeof reply, fmt, ap);
        va_end(ap);
        /* The journal says what the client is told, 450 under soft_bounce, as Postfix logs it. */
        if (s->listener->config->soft_bounce)
                (void) dsn_soft_bounce(reply);
        s->in_reject = true;
        smtpd_session_reply(s, "%s", reply);
        s->in_reject = false;
        (void) sscanf(reply, "%*3d %15[0-9.]", dsn);

        _cleanup_free_ char *ereply = escape(reply);
        log_mail(LOG_INFO, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SMTP_COMMAND", s->stage },
                            { "SENDER", esender }, { "RECIPIENT", ercpt }, { "DSN", dsn }),
                 "NOQUEUE: reject: %s from %s[%s]: %s;%s%s%s%s%s%s proto=%s helo=<%s>",
                 s->stage, s->peer.name, s->client.text, strna(ereply),
                 esender ? " from=<" : "", strempty(esender), esender ? ">" : "",
                 ercpt ? " to=<" : "", strempty(ercpt), ercpt ? ">" : "",
                 s->esmtp ? "ESMTP" : "SMTP", strempty(ehelo));
}

/* Why a session ends early: "lost connection after DATA from unknown[192.0.2.1]". */
void smtpd_session_log_end(SmtpdSession *s, const char *why) {
        log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                 "%s after %s from %s[%s]", why, s->stage, s->peer.name, s->client.text);
}

void smtpd_session_lost(SmtpdSession *s) {
        smtpd_session_log_end(s, "lost connection");
        s->state = SMTPD_SESSION_CLOSED;
}

/* Restrictions (smtpd-restrictions.c): the session's side. */

int smtpd_session_check(SmtpdSession *s, int (*check)(SmtpdCheckSession *, const SmtpdCheckInput *, char *),
                        const char *helo, const char *sender, const char *rcpt) {
        static unsigned instances;
        static pid_t pid;       /* smtpd does not fork */
        char reply[SMTPD_REPLY_LINE_MAX];
        int r;

        /* Postfix's "instance": one value for all the requests of a mail transaction, so that a policy
         * service can tell a message's recipients from the next message's. */
        if (!s->instance[0]) {
                if (pid == 0)
                        pid = getpid();
                (void) snprintf(s->instance, sizeof s->instance, "%x.%x", (unsigned) pid, ++instances);
        }

        SmtpdCheckInput in = {
                .client = &s->client,
                .peer = &s->peer,
                .helo = helo,
                .sender = sender,
                .recipient = rcpt,
                .authenticated = s->authenticated,
                .actions = &s->actions,
                .protocol_state = s->stage && streq(s->stage, "VRFY") ? "VRFY" : NULL,
                .protocol_name = s->esmtp ? "ESMTP" : "SMTP",
                .sasl_method = s->authenticated ? s->sasl_method : NULL,
                .sasl_username = s->authenticated ? s->sasl_username : NULL,
                .instance = s->instance,
                .recipient_count = (unsigned) s->n_recipients,
                .ill_pipelining = s->ill_pipelining,
                .size = s->mail_size,
                .tls_protocol = s->tls ? smtpd_tls_version(s->tls) : NULL,
                .tls_cipher = s->tls ? smtpd_tls_cipher(s->tls) : NULL,
                .tls_bits = s->tls ? smtpd_tls_bits(s->tls) : 0,
                .server_fd = s->fd,
                .command = s->stage,
        };

        r = check(s->checks, &in, reply);
        s->check_helo = helo;
        if (r > 0)
                smtpd_session_reject(s, sender, rcpt, "%s", reply);
        s->check_helo = NULL;
        /* A command waits for its policy service; the greeting has its own wait (greet_pending). */
        if (r == -EAGAIN && check != smtpd_check_client)
                s->command_wait = true;
        return r;
}

/* The greeting, once the DNS lookups it needs are in. With smtpd_delay_reject = no the client restrictions
 * answer it, as in Postfix: a refusal replaces the 220, and every command but QUIT then gets 503. */
void smtpd_session_greet(SmtpdSession *s) {
        int r;

        r = smtpd_session_check(s, smtpd_check_client, NULL, NULL, NULL);
        s->greet_pending = r == -EAGAIN;
        if (s->greet_pending)
                return;
        if (r > 0) {
                s->access_denied = true;
                return;
        }
        smtpd_session_reply(s, "220 %s", s->listener->config->smtpd_banner);
}

/* All DNS lookups of the session are in: what waited for them goes on. */
static void on_checks_done(void *userdata) {
        SmtpdSession *s = userdata;

        s->checks_wait = false;
        if (s->greet_pending)
                smtpd_session_greet(s);
        if (s->state == SMTPD_SESSION_EOD_CHECK && !smtpd_check_session_pending(s->checks))
                smtpd_session_eod_resume(s);
        smtpd_session_update(s);
}

/* The milters have seen the connection (or there are none): TLS on port 465, or the greeting. */
void smtpd_session_begin(SmtpdSession *s) {
        if (s->listener->wrappermode)
                smtpd_session_tls_start(s);     /* port 465: the 220 follows the handshake */
        else
                smtpd_session_greet(s);
}

/* The client's name is known (or will stay "unknown"): the session begins, once the milters have seen it. */
static void session_connected(SmtpdSession *s) {
        log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "CLIENT_NAME", s->peer.name }),
                 "connect from %s[%s]", s->peer.name, s->client.text);
        if (!smtpd_milter_connect(s))
                smtpd_session_begin(s);
}

static void on_peer_name(const SmtpdPeerName *peer, void *userdata) {
        SmtpdSession *s = userdata;

        s->peer = *peer;
        s->peer_lookup = smtpd_peer_lookup_free(s->peer_lookup);
        session_connected(s);
        smtpd_session_update(s);
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
        n = smtpd_session_recv(s, s->in + s->in_end, s->in_size - s->in_end);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                smtpd_session_lost(s);
                return;
        }
        s->in_end += (size_t) n;
        s->last_io_usec = now_monotonic_usec();
}

static void session_flush(SmtpdSession *s) {
        while (s->out_len > 0 && s->state != SMTPD_SESSION_CLOSED) {
                ssize_t n = smtpd_session_send(s, s->out, s->out_len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                smtpd_session_lost(s);
                        return;
                }
                memmove(s->out, s->out + n, s->out_len - (size_t) n);
                s->out_len -= (size_t) n;
                s->last_io_usec = now_monotonic_usec();
        }
}

/* The session waits for the milters or for cleanup, and reads nothing meanwhile. (Not under TLS, whose reads
 * may want the socket writable: there the watch is off during the wait.) */
static bool session_waiting(const SmtpdSession *s) {
        return !s->tls && (s->state == SMTPD_SESSION_MILTER || s->state == SMTPD_SESSION_SUBMIT ||
                           s->state == SMTPD_SESSION_EOD_CHECK);
}

/* After any event: handle what input is buffered, send what replies are queued, then wait for what
 * the state needs. Frees the session when it is over. */
void smtpd_session_update(SmtpdSession *s) {
        const Config *config = s->conf->config;
        uint32_t events = 0;
        uint64_t when;
        int r;

        smtpd_session_process(s);
        /* TLS: input that OpenSSL has decrypted already is invisible to epoll; read it now. */
        while (s->tls && (s->state == SMTPD_SESSION_COMMAND || s->state == SMTPD_SESSION_DATA ||
                          s->state == SMTPD_SESSION_AUTH_RESPONSE || s->state == SMTPD_SESSION_BDAT) &&
               s->out_len <= SMTPD_OUT_PAUSE && smtpd_tls_pending(s->tls)) {
                size_t before = s->in_end - s->in_start;

                session_read(s);
                if (s->state == SMTPD_SESSION_CLOSED || s->in_end - s->in_start == before)
                        break;
                smtpd_session_process(s);
        }
        session_flush(s);
        /* STARTTLS: the handshake begins once the 220 has gone out in plaintext. */
        if (s->state == SMTPD_SESSION_STARTTLS && s->out_len == 0)
                smtpd_session_tls_start(s);
        if (s->state == SMTPD_SESSION_CLOSED || (s->state == SMTPD_SESSION_CLOSING && s->out_len == 0)) {
                session_free(s);
                return;
        }

        if ((s->state == SMTPD_SESSION_COMMAND || s->state == SMTPD_SESSION_DATA ||
             s->state == SMTPD_SESSION_BDAT) &&
            s->out_len <= SMTPD_OUT_PAUSE && !s->delaying &&
            !s->checks_wait &&  /* on_checks_done() goes on */
            !s->peer_lookup)    /* nothing is read before the greeting (or the TLS handshake on port 465) */
                events |= EPOLLIN;
        if (s->state == SMTPD_SESSION_AUTH_RESPONSE && s->out_len <= SMTPD_OUT_PAUSE)
                events |= EPOLLIN;
        /* While the milters or cleanup work, nothing is read, but the watch for input stays on: a client
         * that waits for the reply sends nothing meanwhile, and turning the watch off and on again around
         * each command cost two epoll_ctl() a command. Input that comes all the same turns it off
         * (on_session_io()) until the wait is over. */
        if (session_waiting(s)) {
                if (!s->input_held && s->out_len <= SMTPD_OUT_PAUSE && !s->delaying && !s->checks_wait &&
                    !s->peer_lookup)
                        events |= EPOLLIN;
        } else
                s->input_held = false;
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
            s->state != SMTPD_SESSION_AUTH_CHECK &&     /* the Dovecot client has its own timeout */
            s->state != SMTPD_SESSION_MILTER &&         /* so do the milters */
            s->state != SMTPD_SESSION_EOD_CHECK)        /* and DNS and policy services */
                when = MIN(when, s->last_io_usec + sec_to_usec(config->smtpd_timeout));
        (void) sd_event_source_set_time(s->timer, when);
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

static int on_session_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        SmtpdSession *s = userdata;

        if (session_waiting(s) && (revents & EPOLLIN))
                s->input_held = true;   /* read once the wait is over */
        else if (s->state == SMTPD_SESSION_TLS_HANDSHAKE) {
                smtpd_session_tls_handshake(s);
                /* The client's first command may already be there. */
                if (s->state == SMTPD_SESSION_COMMAND)
                        session_read(s);
        } else if ((revents & EPOLLIN) || (s->tls && (revents & EPOLLOUT) && smtpd_tls_read_wants_write(s->tls)))
                session_read(s);
        else if (revents & (EPOLLHUP | EPOLLERR))
                smtpd_session_lost(s);
        smtpd_session_update(s);
        return 0;
}

static int on_session_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        SmtpdSession *s = userdata;

        if (s->state == SMTPD_SESSION_TLS_HANDSHAKE)
                /* No 421: there is no channel to send it on. */
                smtpd_session_log_end(s, "timeout during the TLS handshake");
        else if (s->state != SMTPD_SESSION_CLOSING) {
                smtpd_session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->config->myhostname);
                smtpd_session_log_end(s, usec >= s->deadline_usec ? "session deadline exceeded" : "timeout");
                /* One try to send the 421, without waiting for the client. */
                s->state = SMTPD_SESSION_CLOSING;
                session_flush(s);
        }
        session_free(s);
        return 0;
}

int smtpd_session_new(SmtpdListener *listener, int fd, const SmtpdAddress *client, SmtpdAnvilClient *anvil) {
        Smtpd *server = listener->server;
        _cleanup_(session_freep) SmtpdSession *s = NULL;
        const Config *config = listener->conf->config;
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
        s->conf = smtpd_conf_ref(listener->conf);
        s->fd = -EBADF;
        s->data_fd = -EBADF;
        s->client = *client;
        s->reject_bare_lf = s->conf->reject_bare_lf &&
                            !smtpd_networks_match(&s->conf->bare_newline_exclusions, client);
        s->stage = "CONNECT";
        smtpd_session_ehlo_discard_init(s);
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
        /* As Postfix: the client's name before the greeting, so that the first log line and every check
         * have it. Only this session waits for it, no longer than the resolver's deadline, twice. */
        smtpd_peer_name_unknown(&s->peer, SMTPD_PEER_PERM);
        if (listener->config->smtpd_peername_lookup && (client->family == AF_INET || client->family == AF_INET6)) {
                r = smtpd_peer_lookup_start(server->resolver, client, on_peer_name, s, &s->peer_lookup);
                if (r < 0) {
                        log_warning_errno(r, "Failed to look up the name of %s, using \"unknown\": %m",
                                          client->text);
                        s->peer.name_status = s->peer.reverse_status = SMTPD_PEER_TEMP;
                }
        }

        s->fd = fd;
        s->linked = true;
        s->next = server->sessions;
        if (s->next)
                s->next->prev = s;
        server->sessions = s;
        server->n_sessions++;
        daemon_busy_inc(server->daemon);

        if (!s->peer_lookup)
                session_connected(s);
        smtpd_session_update(TAKE_PTR(s));
        return 0;
}
