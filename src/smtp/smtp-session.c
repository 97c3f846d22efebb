/* smtp-session.c: one SMTP or LMTP session of postbus-smtp with one server address, on sd-event: a
 * non-blocking connect, the greeting, EHLO (HELO fallback) or LHLO, STARTTLS, the content streamed from the
 * queue file, and QUIT; each stage under its Postfix timeout (the envelope is smtp-transaction.c's). Results
 * go to the call (smtp-bus.c); timeouts and refusals before the greeting to the host cache. */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "smtp-session.h"

/* The end of Postfix's "lost connection with host[addr] while ..." and "... timed out while ...". */
static const char *const stage_doing[_SMTP_STAGE_MAX] = {
        [SMTP_STAGE_CONNECT] = "connecting",
        [SMTP_STAGE_GREETING] = "receiving the initial server greeting",
        [SMTP_STAGE_EHLO] = "performing the EHLO handshake",
        [SMTP_STAGE_HELO] = "performing the HELO handshake",
        [SMTP_STAGE_STARTTLS] = "sending STARTTLS",
        [SMTP_STAGE_TLS_HANDSHAKE] = "performing the TLS handshake",
        [SMTP_STAGE_AUTH] = "authenticating",
        [SMTP_STAGE_MAIL] = "sending MAIL FROM",
        [SMTP_STAGE_RCPT] = "sending RCPT TO",
        [SMTP_STAGE_DATA] = "sending DATA command",
        [SMTP_STAGE_CONTENT] = "sending message body",
        [SMTP_STAGE_DATA_DONE] = "sending end of data -- message may be sent more than once",
        [SMTP_STAGE_QUIT] = "sending QUIT",
        [SMTP_STAGE_IDLE] = "waiting in the connection cache",
        [SMTP_STAGE_RSET] = "sending RSET",
};

/* Sessions whose results are in and which wait for the reply to QUIT. */
static SmtpSession *lingering;

static void linger_remove(SmtpSession *s) {
        if (s->linger_prev)
                s->linger_prev->linger_next = s->linger_next;
        else if (lingering == s)
                lingering = s->linger_next;
        if (s->linger_next)
                s->linger_next->linger_prev = s->linger_prev;
        s->linger_next = s->linger_prev = NULL;
}

static int head_add(SmtpSession *s, const char *data, size_t len);
static int session_checks_new(SmtpSession *s);

SmtpSession *smtp_session_free(SmtpSession *s) {
        if (!s)
                return NULL;
        linger_remove(s);
        smtp_cache_remove(s);
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->timer);
        /* A TLS session that ended well (QUIT went out, or it waited unused in the connection cache) says so
         * with close_notify: OpenSSL marks the session of a connection freed without it as not resumable, and
         * the TLS session cache would lose it. One try: no wait for the peer's. */
        if (s->ssl && !s->broken && (s->stage == SMTP_STAGE_QUIT || s->stage == SMTP_STAGE_IDLE)) {
                (void) SSL_shutdown(s->ssl);
                ERR_clear_error();
        }
        safe_close(s->fd);
        smtp_reply_done(&s->reply);
        session_sasl_forget(s);
        SSL_free(s->ssl);
        free(s->rcpts);
        free(s->accepted);
        free(s->out);
        buffer_done(&s->head);
        smtp_checks_free(s->checks);
        record_reader_done(&s->content);
        if (s->daemon)
                daemon_busy_dec(s->daemon);
        free(s);
        return NULL;
}

void smtp_sessions_free_lingering(void) {
        while (lingering)
                smtp_session_free(lingering);
        smtp_cache_free_all();
}

void session_set_timeout(SmtpSession *s, uint64_t usec) {
        (void) sd_event_source_set_time(s->timer, now_monotonic_usec() + usec);
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

/* EPOLLOUT only while connecting or while the socket did not take all that is to be sent: commands and
 * content are written at once (session_flush()), so on a fast peer the io source's events never change and
 * no epoll_ctl() is made per command. */
static void update_events(SmtpSession *s) {
        uint32_t events = EPOLLIN;

        if (s->stage == SMTP_STAGE_CONNECT || s->out_off < s->out_len)
                events |= EPOLLOUT;
        if (s->ssl)
                events |= s->tls_wants;
        (void) sd_event_source_set_io_events(s->io, events);
}

static int out_reserve(SmtpSession *s, size_t n) {
        if (s->out_off == s->out_len)
                s->out_off = s->out_len = 0;
        if (n <= s->out_size - s->out_len)
                return 0;
        size_t size = MAX(s->out_size * 2, s->out_len + n + 1024);
        char *p = realloc(s->out, size);
        if (!p)
                return -ENOMEM;
        s->out = p;
        s->out_size = size;
        return 0;
}

int session_command(SmtpSession *s, const char *fmt, ...) {
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        r = out_reserve(s, (size_t) n + 3);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        (void) vsnprintf(s->out + s->out_len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        s->out_len += (size_t) n;
        memcpy(s->out + s->out_len, "\r\n", 2);
        s->out_len += 2;
        return 0;
}

/* Whether the session may wait in the connection cache: it ended a transaction in step with the server
 * (every reply read, nothing unsent), the server did not say 421, and it is within its reuse limits. */
static bool session_keep(SmtpSession *s) {
        const SmtpSettings *set = settings(s);

        if (s->broken || s->reply.code == 421 || s->in_len > 0 || s->in_overlong || s->out_off < s->out_len)
                return false;
        if (set->reuse_count_limit > 0 && s->n_use >= set->reuse_count_limit)
                return false;
        if (now_monotonic_usec() - s->started >= set->reuse_time_limit)
                return false;
        return smtp_call_keep_session(s->call, &s->address);
}

static int do_write(SmtpSession *s);
static void session_flush(SmtpSession *s);

/* Hands the session's end to the call; then the session waits in the connection cache, or sends QUIT and
 * goes away on its own, or is freed when the event handler returns. */
void session_end(SmtpSession *s, SmtpSessionEnd end, const char *dsn, const char *text, bool quit) {
        SmtpCall *c = s->call;
        bool keep = quit && session_keep(s);

        s->call = NULL;
        if (keep) {
                smtp_reply_done(&s->reply);
                smtp_cache_put(s, smtp_call_cache_key(c), smtp_call_settings(c)->cache_time_limit);
                update_events(s);
        } else if (quit && session_command(s, "QUIT") >= 0) {
                s->stage = SMTP_STAGE_QUIT;
                /* As Postfix's default smtp_skip_quit_response = yes: once QUIT is out, the connection
                 * closes without waiting for the reply, so it is gone before qmgr hears of the result and
                 * starts the next delivery to this destination. */
                if (do_write(s) >= 0 && s->out_off == s->out_len) {
                        s->finished = true;
                        smtp_call_session_done(c, end, s->connected ? s->relay : NULL, dsn, text);
                        return;
                }
                session_set_timeout(s, smtp_call_settings(c)->quit_timeout);
                update_events(s);
                s->linger_next = lingering;
                if (lingering)
                        lingering->linger_prev = s;
                lingering = s;
        } else
                s->finished = true;
        smtp_call_session_done(c, end, s->connected ? s->relay : NULL, dsn, text);
}

bool session_any_pending(SmtpSession *s) {
        size_t n;
        SmtpRecipient *r = smtp_call_recipients(s->call, &n);

        for (size_t i = 0; i < n; i++)
                if (r[i].state != SMTP_RCPT_DONE)
                        return true;
        return false;
}

/* A failure of this server as a whole (greeting, EHLO, lost connection, timeout): the recipients not yet
 * done may go to the next server. */
void session_site_fail(SmtpSession *s, const char *dsn, const char *text, bool quit) {
        s->broken = true;
        /* Recipients that this session had accepted go back to waiting. */
        for (size_t i = 0; i < s->n_rcpts; i++)
                if (s->rcpts[i]->state == SMTP_RCPT_ACCEPTED)
                        s->rcpts[i]->state = SMTP_RCPT_PENDING;
        session_end(s, SMTP_SESSION_TRY_NEXT, dsn, text, quit);
}

/* Postfix's text for a greeting or HELO that is not 2xx. */
static void site_fail_reply(SmtpSession *s) {
        char dsn[16], text[SMTP_REPLY_TEXT_MAX + 600];
        _cleanup_free_ char *escaped = log_escape(s->reply.text, s->reply.text_len);

        (void) snprintf(text, sizeof text, "host %s refused to talk to me: %s", s->namaddr, strna(escaped));
        session_site_fail(s, smtp_reply_dsn(&s->reply, dsn), text, true);
}

/* A timeout or refusal before the greeting: the host cache tries the address last for a while. */
static void host_failed(SmtpSession *s, const char *reason) {
        smtp_hostcache_fail(&s->address, settings(s)->host_failure_cache_time, smtp_call_queue_id(s->call), reason);
}

static void lost_connection(SmtpSession *s, bool timed_out) {
        char text[700];

        if (s->stage == SMTP_STAGE_QUIT || s->stage == SMTP_STAGE_IDLE) {
                s->finished = true;
                return;
        }
        if (s->stage == SMTP_STAGE_RSET) {
                /* The cached session is no good: the call goes on with a new one. */
                session_end(s, SMTP_SESSION_STALE, NULL, NULL, false);
                return;
        }
        if (s->stage <= SMTP_STAGE_GREETING)
                host_failed(s, s->stage == SMTP_STAGE_CONNECT ? "connection timed out"
                               : timed_out ? "timed out while receiving the initial server greeting"
                               : "lost connection while receiving the initial server greeting");
        if (timed_out && s->stage == SMTP_STAGE_CONNECT) {
                (void) snprintf(text, sizeof text, "connect to %s: Connection timed out", s->relay);
                session_site_fail(s, "4.4.1", text, false);
                return;
        }
        if (timed_out)
                (void) snprintf(text, sizeof text, "conversation with %s timed out while %s", s->namaddr,
                                stage_doing[s->stage]);
        else
                (void) snprintf(text, sizeof text, "lost connection with %s while %s", s->namaddr,
                                stage_doing[s->stage]);
        session_site_fail(s, "4.4.2", text, false);
}

/* encrypt: a server that does not offer STARTTLS gets no mail, never clear text. */
static bool tls_required(SmtpSession *s) {
        char text[700];

        if (s->ssl || settings(s)->tls_level < SMTP_TLS_ENCRYPT)
                return false;
        (void) snprintf(text, sizeof text, "TLS is required, but was not offered by host %s", s->namaddr);
        session_site_fail(s, "4.7.4", text, true);
        return true;
}

/* The session's TLS connection, with a session of the cache for this next hop, server and policy. */
static int session_tls_new(SmtpSession *s) {
        _cleanup_free_ char *server = NULL;

        if (asprintf(&server, "%s %s", smtp_call_nexthop(s->call), s->relay) < 0)
                return -ENOMEM;
        return smtp_tls_new(s->fd, settings(s), s->address.host, server, &s->ssl);
}

static void tls_handshake(SmtpSession *s) {
        ssize_t r = smtp_tls_result(s->ssl, SSL_do_handshake(s->ssl), &s->tls_wants);
        char text[700];

        if (r == -EAGAIN) {
                update_events(s);
                return;
        }
        if (r <= 0) {
                (void) snprintf(text, sizeof text, "Cannot start TLS: handshake failure with host %s", s->namaddr);
                session_site_fail(s, "4.7.5", text, false);
                return;
        }
        s->tls_wants = 0;
        SmtpTlsTrust trust = smtp_tls_trust(s->ssl, settings(s)->tls_level);
        if (settings(s)->tls_loglevel > 0)
                smtp_tls_log(s->ssl, trust, smtp_call_queue_id(s->call), s->relay);
        smtp_tls_describe(s->ssl, trust, text, sizeof text);
        (void) snprintf(s->tls_text, sizeof s->tls_text, "%s", text);
        smtp_call_set_tls(s->call, text);
        /* verify and secure: as Postfix, no mail without a verified certificate (QUIT goes over TLS). */
        if (settings(s)->tls_level >= SMTP_TLS_VERIFY && trust != SMTP_TLS_VERIFIED) {
                session_site_fail(s, "4.7.5", "Server certificate not verified", true);
                return;
        }
        if (settings(s)->tls_wrappermode && !s->greeted) {
                /* Wrapper mode: the greeting comes over TLS. */
                s->stage = SMTP_STAGE_GREETING;
                session_set_timeout(s, settings(s)->helo_timeout);
                update_events(s);
                return;
        }
        if (session_command(s, "%s %s", s->lmtp ? "LHLO" : "EHLO", settings(s)->helo_name) < 0) {
                session_site_fail(s, "4.3.0", "out of memory", false);
                return;
        }
        s->stage = SMTP_STAGE_EHLO;
        session_set_timeout(s, settings(s)->helo_timeout);
}

static void handle_reply(SmtpSession *s) {
        switch (s->stage) {
        case SMTP_STAGE_GREETING:
                if (s->reply.code / 100 != 2) {
                        site_fail_reply(s);
                        return;
                }
                smtp_hostcache_ok(&s->address, now_monotonic_usec() - s->started);
                s->greeted = true;
                if (session_command(s, "%s %s", s->lmtp ? "LHLO" : "EHLO", settings(s)->helo_name) < 0)
                        break;
                s->stage = SMTP_STAGE_EHLO;
                session_set_timeout(s, settings(s)->helo_timeout);
                return;
        case SMTP_STAGE_EHLO:
                if (s->reply.code / 100 != 2) {
                        /* As Postfix: 421, or LMTP, ends here; else the server may know only HELO. */
                        if (s->reply.code == 421 || s->lmtp) {
                                site_fail_reply(s);
                                return;
                        }
                        if (session_command(s, "HELO %s", settings(s)->helo_name) < 0)
                                break;
                        s->stage = SMTP_STAGE_HELO;
                        session_set_timeout(s, settings(s)->helo_timeout);
                        return;
                }
                s->features = smtp_ehlo_features(&s->reply, &s->size_limit);
                /* What AUTH offers is kept for after a refused STARTTLS, when this reply is gone. */
                s->auth_offered = smtp_ehlo_auth(&s->reply, settings(s)->sasl_mechanism_filter, &s->auth_mechanisms,
                                                 &s->auth_n_passed) > 0;
                if (!s->ssl && settings(s)->tls_level >= SMTP_TLS_MAY && (s->features & SMTP_FEATURE_STARTTLS)) {
                        if (session_command(s, "STARTTLS") < 0)
                                break;
                        s->stage = SMTP_STAGE_STARTTLS;
                        session_set_timeout(s, settings(s)->helo_timeout);
                        return;
                }
                if (tls_required(s))
                        return;
                if (session_sasl_begin(s))
                        return;
                session_after_hello(s);
                return;
        case SMTP_STAGE_AUTH:
                session_sasl_reply(s);
                return;
        case SMTP_STAGE_HELO:
                if (s->reply.code / 100 != 2) {
                        site_fail_reply(s);
                        return;
                }
                s->features = 0;
                if (tls_required(s))
                        return;
                session_after_hello(s);
                return;
        case SMTP_STAGE_STARTTLS:
                if (s->reply.code != 220) {
                        if (settings(s)->tls_level >= SMTP_TLS_ENCRYPT) {
                                char dsn[16], text[SMTP_REPLY_TEXT_MAX + 600];
                                _cleanup_free_ char *escaped = log_escape(s->reply.text, s->reply.text_len);
                                (void) snprintf(text, sizeof text, "TLS is required, but host %s refused to start TLS: %s",
                                                s->namaddr, strna(escaped));
                                session_site_fail(s, smtp_reply_dsn(&s->reply, dsn), text, true);
                                return;
                        }
                        /* may: on in clear text */
                        if (!session_sasl_begin(s))
                                session_after_hello(s);
                        return;
                }
                if (session_tls_new(s) < 0)
                        break;
                s->in_len = 0;
                s->stage = SMTP_STAGE_TLS_HANDSHAKE;
                s->tls_wants = EPOLLOUT;
                session_set_timeout(s, settings(s)->helo_timeout);
                update_events(s);
                return;
        case SMTP_STAGE_MAIL:
        case SMTP_STAGE_RCPT:
                session_envelope_reply(s);
                return;
        case SMTP_STAGE_DATA:
                if (s->reply.code != 354) {
                        /* Pipelined after a failed MAIL FROM or with no recipient accepted, a refusal is what
                         * RFC 2920 asks of the server; no recipient is failed by it then. */
                        session_fail_accepted(s, "DATA");
                        session_end(s, session_any_pending(s) ? SMTP_SESSION_TRY_NEXT : SMTP_SESSION_FINISHED, NULL, NULL,
                                    true);
                        return;
                }
                if (s->mail_failed || s->n_accepted == 0) {
                        /* A server that invites content for no recipient: every recipient has its result
                         * already, and a dropped connection ends the empty transaction without a message. */
                        s->broken = true;
                        session_end(s, session_any_pending(s) ? SMTP_SESSION_TRY_NEXT : SMTP_SESSION_FINISHED,
                                    NULL, NULL, false);
                        return;
                }
                s->stage = SMTP_STAGE_CONTENT;
                /* One reader for the whole content: a small file is in memory since the request came. */
                record_reader_done(&s->content);
                queue_file_content_reader(&s->content, smtp_call_queue_fd(s->call), smtp_call_envelope(s->call),
                                          smtp_call_envelope(s->call)->content_offset);
                smtp_encoder_init(&s->encoder, settings(s)->line_length_limit);
                buffer_done(&s->head);
                s->head_pending = !isempty(settings(s)->generic_maps);
                s->checks = smtp_checks_free(s->checks);
                if (session_checks_new(s) < 0) {
                        session_site_fail(s, "4.3.0", "cannot open smtp_header_checks or smtp_body_checks", false);
                        return;
                }
                session_set_timeout(s, settings(s)->data_xfer_timeout);
                return;
        case SMTP_STAGE_DATA_DONE:
                session_data_done_reply(s);
                return;
        case SMTP_STAGE_QUIT:
                s->finished = true;
                return;
        case SMTP_STAGE_RSET:
                if (s->reply.code / 100 != 2) {
                        session_end(s, SMTP_SESSION_STALE, NULL, NULL, false);
                        return;
                }
                if (s->envelope_after_rset) {
                        /* The replies to MAIL FROM and RCPT TO come next. */
                        s->stage = SMTP_STAGE_MAIL;
                        session_set_timeout(s, settings(s)->mail_timeout);
                        return;
                }
                session_after_hello(s);
                return;
        default:
                /* A reply nobody asked for, while connecting or sending the message. */
                session_site_fail(s, "4.4.2", "unexpected server reply", false);
                return;
        }
        session_site_fail(s, "4.3.0", "out of memory", false);
}

static int content_feed(SmtpSession *s, const char *data, size_t len) {
        int r = out_reserve(s, smtp_encoder_bound(&s->encoder, len));

        if (r < 0)
                return r;
        s->out_len += smtp_encoder_feed(&s->encoder, data, len, s->out + s->out_len);
        return 0;
}

/* What smtp_*_checks let through, on to smtp_generic_maps or straight out. */
static int checks_output(const char *data, size_t len, void *userdata) {
        SmtpSession *s = userdata;

        return s->head_pending ? head_add(s, data, len) : content_feed(s, data, len);
}

static int session_checks_new(SmtpSession *s) {
        const Config *cfg = smtp_call_daemon(s->call)->config;
        SmtpChecksSpec spec = {
                .header_limit = (size_t) cfg->header_size_limit,
                .body_limit = (size_t) cfg->body_checks_size_limit,
                .nesting_limit = (size_t) cfg->mime_nesting_limit,
                .queue_id = smtp_call_queue_id(s->call),
        };

        for (size_t i = 0; i < _SMTP_CHECKS_MAX; i++)
                spec.tables[i] = settings(s)->checks[i];
        return smtp_checks_new(&spec, checks_output, s, &s->checks);
}

static int generic_map(const char *addr, char **ret, void *userdata) {
        SmtpSession *s = userdata;

        return smtp_generic_address(smtp_call_daemon(s->call)->config, settings(s)->generic_maps, addr, ret);
}

/* The header section is s->head[0..end) (the rest is body): sent with smtp_generic_maps applied, then the rest. */
static int head_flush(SmtpSession *s, size_t end) {
        _cleanup_free_ char *rewritten = NULL;
        size_t n = 0;
        int r;

        s->head_pending = false;
        r = smtp_generic_headers(s->head.data, end, generic_map, s, &rewritten, &n);
        if (r < 0)
                return r;
        r = r > 0 ? content_feed(s, rewritten, n) : content_feed(s, s->head.data, end);
        if (r >= 0)
                r = content_feed(s, s->head.data + end, s->head.len - end);
        buffer_done(&s->head);
        return r;
}

/* A piece of the content while the header section is read: sent on once its end (the empty line) is in, or
 * as it is when the section is longer than SMTP_GENERIC_HEADERS_MAX. */
static int head_add(SmtpSession *s, const char *data, size_t len) {
        size_t from = s->head.len > 0 ? s->head.len - 1 : 0;
        int r;

        r = buffer_append(&s->head, data, len);
        if (r < 0)
                return r;
        if (s->head.data[0] == '\n')
                return head_flush(s, 0);        /* no headers at all */
        const char *p = memmem(s->head.data + from, s->head.len - from, "\n\n", 2);
        if (p)
                return head_flush(s, (size_t) (p - s->head.data) + 1);
        if (s->head.len > SMTP_GENERIC_HEADERS_MAX) {
                s->head_pending = false;
                r = content_feed(s, s->head.data, s->head.len);
                buffer_done(&s->head);
                return r;
        }
        return 0;
}

/* Refills the output with the next pieces of the message, until SMTP_CONTENT_BATCH octets wait, or with its
 * end: a small message and its final dot go out in one write. */
static int fill_content(SmtpSession *s) {
        while (s->out_len - s->out_off < SMTP_CONTENT_BATCH) {
                const char *data;
                Record rec;
                int r;

                r = record_reader_next(&s->content, &rec);
                if (r < 0)
                        return r;
                if (r == 0 || rec.type == QUEUE_REC_END) {
                        if (s->checks) {
                                r = smtp_checks_finish(s->checks);
                                if (r < 0)
                                        return r;
                        }
                        /* A message of headers only. */
                        if (s->head_pending) {
                                r = head_flush(s, s->head.len);
                                if (r < 0)
                                        return r;
                        }
                        record_reader_done(&s->content);
                        r = out_reserve(s, 8);
                        if (r < 0)
                                return r;
                        s->out_len += smtp_encoder_finish(&s->encoder, s->out + s->out_len);
                        s->stage = SMTP_STAGE_DATA_DONE;
                        session_set_timeout(s, settings(s)->data_done_timeout);
                        return 0;
                }
                if (rec.len == 0)
                        continue;       /* nothing writes them, but they must not read as the end */
                r = record_reader_data(&s->content, &rec, &data);
                if (r < 0)
                        return r;
                r = s->checks ? smtp_checks_feed(s->checks, data, rec.len) : checks_output(data, rec.len, s);
                if (r < 0)
                        return r;
        }
        session_set_timeout(s, settings(s)->data_xfer_timeout);
        return 0;
}

static int do_write(SmtpSession *s) {
        if (s->out_off == s->out_len && s->stage != SMTP_STAGE_CONTENT)
                return 0;
        for (;;) {
                if (s->out_off == s->out_len && s->stage == SMTP_STAGE_CONTENT) {
                        int r = fill_content(s);
                        if (r < 0)
                                return r;
                }
                if (s->out_off == s->out_len)
                        return 0;
                ssize_t n = smtp_io_send(s->ssl, s->fd, s->out + s->out_off, s->out_len - s->out_off, &s->tls_wants);
                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int) n;
                s->out_off += (size_t) n;
        }
}

/* Sends what is pending, as far as the socket takes it: EPOLLOUT is waited for only when it did not take all. */
static void session_flush(SmtpSession *s) {
        int r = do_write(s);

        if (r == -EBADMSG || r == -ENOMEM) {
                session_site_fail(s, "4.3.0", r == -ENOMEM ? "out of memory" : "queue file is corrupt", false);
                return;
        }
        if (r == -EIO && s->stage == SMTP_STAGE_CONTENT && s->checks) {
                /* A table of smtp_*_checks failed (logged): the message waits for it, as Postfix's. */
                session_site_fail(s, "4.3.0", "smtp_header_checks or smtp_body_checks lookup failure", false);
                return;
        }
        if (r < 0) {
                lost_connection(s, false);
                return;
        }
        update_events(s);
}

/* Splits what arrived into lines and replies; returns -EBADMSG on a protocol error. */
static int do_read(SmtpSession *s, bool *ret_eof) {
        ssize_t n = smtp_io_recv(s->ssl, s->fd, s->in + s->in_len, sizeof s->in - s->in_len, &s->tls_wants);

        if (n == -EAGAIN)
                return 0;
        if (n < 0)
                return (int) n;
        if (n == 0) {
                *ret_eof = true;
                return 0;
        }
        s->in_len += (size_t) n;
        for (;;) {
                char *nl = memchr(s->in, '\n', s->in_len);
                if (!nl) {
                        if (s->in_len == sizeof s->in) {
                                /* An overlong line: keep its start, drop the rest up to its end. */
                                if (!s->in_overlong) {
                                        int r = smtp_reply_add_line(&s->reply, s->in, SMTP_REPLY_LINE_MAX);
                                        if (r != 0)
                                                return -EBADMSG;
                                }
                                s->in_overlong = true;
                                s->in_len = 0;
                        }
                        return 0;
                }
                size_t len = (size_t) (nl - s->in), consumed = len + 1;
                if (len > 0 && s->in[len - 1] == '\r')
                        len--;
                int r = 1;
                if (s->in_overlong)
                        s->in_overlong = false;
                else
                        r = smtp_reply_add_line(&s->reply, s->in, len);
                memmove(s->in, s->in + consumed, s->in_len - consumed);
                s->in_len -= consumed;
                if (r < 0)
                        return -EBADMSG;
                if (r == 0 || !s->reply.done)
                        continue;
                if (s->stage == SMTP_STAGE_CONNECT || s->stage == SMTP_STAGE_CONTENT || s->stage == SMTP_STAGE_IDLE)
                        return -EBADMSG;
                handle_reply(s);
                smtp_reply_done(&s->reply);
                /* Ended: what else arrived is of no interest. */
                if (s->finished || !s->call)
                        return 1;
        }
}

static void session_io(SmtpSession *s, int fd, uint32_t revents) {
        bool eof = false;
        int r;

        if (s->stage == SMTP_STAGE_IDLE) {
                /* A cached session has nothing to hear: the server timed out or went away. */
                s->finished = true;
                return;
        }
        if (s->stage == SMTP_STAGE_CONNECT) {
                int error = 0;
                socklen_t len = sizeof error;
                char text[700];

                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0) {
                        (void) snprintf(text, sizeof text, "connect to %s: %s", s->relay, strerror(error));
                        host_failed(s, strerror(error));
                        session_site_fail(s, "4.4.1", text, false);
                        return;
                }
                s->connected = true;
                if (settings(s)->tls_wrappermode && s->address.sockaddr.sa.sa_family != AF_UNIX) {
                        /* smtp_tls_wrappermode (port 465): TLS before the greeting. */
                        if (session_tls_new(s) < 0) {
                                session_site_fail(s, "4.3.0", "out of memory", false);
                                return;
                        }
                        s->stage = SMTP_STAGE_TLS_HANDSHAKE;
                        s->tls_wants = EPOLLOUT;
                        session_set_timeout(s, settings(s)->helo_timeout);
                        update_events(s);
                        return;
                }
                s->stage = SMTP_STAGE_GREETING;
                session_set_timeout(s, settings(s)->helo_timeout);
                update_events(s);
                return;
        }
        if (s->stage == SMTP_STAGE_TLS_HANDSHAKE) {
                tls_handshake(s);
                /* Done: EHLO goes out at once. */
                if (!s->finished && s->call && s->stage != SMTP_STAGE_TLS_HANDSHAKE)
                        session_flush(s);
                return;
        }
        if (revents & (EPOLLIN | (s->ssl ? EPOLLOUT : 0))) {
                r = do_read(s, &eof);
                /* TLS may hold decrypted bytes that no event announces. */
                while (r == 0 && !eof && s->ssl && SSL_pending(s->ssl) > 0)
                        r = do_read(s, &eof);
                if (r == 1)
                        return;
                if (r == -EBADMSG && s->stage != SMTP_STAGE_QUIT && s->stage != SMTP_STAGE_RSET) {
                        char text[700];
                        (void) snprintf(text, sizeof text, "host %s said: malformed reply while %s", s->namaddr,
                                        stage_doing[s->stage]);
                        session_site_fail(s, "4.5.0", text, false);
                        return;
                }
                if (r < 0 || eof) {
                        lost_connection(s, false);
                        return;
                }
        }
        /* What the replies called for (or what waited for EPOLLOUT) goes out now. */
        session_flush(s);
}

static int on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        SmtpSession *s = userdata;

        session_io(s, fd, revents);
        if (s->finished)
                smtp_session_free(s);
        return 0;
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        SmtpSession *s = userdata;

        lost_connection(s, true);
        if (s->finished)
                smtp_session_free(s);
        return 0;
}

int smtp_session_start(SmtpCall *call, const SmtpAddress *address, bool final_server, SmtpSession **ret) {
        _cleanup_(smtp_session_freep) SmtpSession *s = NULL;
        const SmtpSettings *set = smtp_call_settings(call);
        int r;

        s = calloc(1, sizeof(SmtpSession));
        if (!s)
                return -ENOMEM;
        s->daemon = NULL;
        s->fd = -EBADF;
        s->call = call;
        s->address = *address;
        s->final_server = final_server;
        s->lmtp = set->lmtp;
        smtp_reply_init(&s->reply);
        (void) snprintf(s->namaddr, sizeof s->namaddr, "%s[%s]", address->host, address->text);
        if (address->sockaddr.sa.sa_family == AF_UNIX)
                (void) snprintf(s->relay, sizeof s->relay, "%s", s->namaddr);
        else
                (void) snprintf(s->relay, sizeof s->relay, "%s:%u", s->namaddr,
                                ntohs(address->sockaddr.sa.sa_family == AF_INET ? address->sockaddr.in.sin_port
                                                                                : address->sockaddr.in6.sin6_port));

        s->started = now_monotonic_usec();
        s->fd = socket(address->sockaddr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0)
                return -errno;
        /* The session writes each command group and each piece of content whole, from its own buffer: Nagle's
         * algorithm would only hold the next write back until the server's delayed ACK (40 ms) comes. */
        if (address->sockaddr.sa.sa_family != AF_UNIX)
                (void) setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
        if (connect(s->fd, &address->sockaddr.sa, address->socklen) < 0 && errno != EINPROGRESS)
                return -errno;
        r = sd_event_add_io(smtp_call_event(call), &s->io, s->fd, EPOLLOUT, on_io, s);
        if (r < 0)
                return r;
        /* Timeouts are Postfix's, in seconds: a second of slack lets sd-event keep its timerfd armed while the
         * deadline moves on with each command, instead of re-arming it each time. */
        r = sd_event_add_time(smtp_call_event(call), &s->timer, CLOCK_MONOTONIC,
                              now_monotonic_usec() + set->connect_timeout, USEC_PER_SEC, on_timer, s);
        if (r < 0)
                return r;
        s->daemon = smtp_call_daemon(call);
        daemon_busy_inc(s->daemon);
        s->stage = SMTP_STAGE_CONNECT;
        s->n_use = 1;
        smtp_call_set_conn_use(call, 1);
        *ret = TAKE_PTR(s);
        return 0;
}

const SmtpAddress *smtp_session_address(const SmtpSession *s) {
        return &s->address;
}

int smtp_session_reuse(SmtpSession *s, SmtpCall *call) {
        int r;

        assert(s->stage == SMTP_STAGE_IDLE && !s->call);
        s->call = call;
        /* Its server is tried again only if the call has other addresses to go to after it. */
        s->final_server = false;
        s->rcpts = mfree(s->rcpts);
        s->accepted = mfree(s->accepted);
        s->n_rcpts = s->n_rcpt_sent = s->n_rcpt_replies = s->n_accepted = s->n_lmtp_replies = 0;
        s->mail_failed = s->data_pipelined = false;
        smtp_reply_done(&s->reply);
        r = session_command(s, "RSET");
        if (r >= 0)
                r = session_pipeline_envelope(s);
        if (r < 0) {
                s->call = NULL;
                return r;
        }
        s->envelope_after_rset = r > 0;
        s->stage = SMTP_STAGE_RSET;
        r = do_write(s);
        if (r < 0) {
                s->call = NULL;
                return r;
        }
        update_events(s);
        s->n_use++;
        session_set_timeout(s, settings(s)->rset_timeout);
        smtp_call_set_tls(call, s->tls_text);
        smtp_call_set_conn_use(call, s->n_use);
        return 0;
}
