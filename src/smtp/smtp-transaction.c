/* smtp-transaction.c: the mail transaction of a postbus-smtp session: MAIL FROM with SIZE, BODY, SMTPUTF8 and
 * DSN parameters, RCPT TO (all at once with PIPELINING), DATA, and the replies judged as Postfix's smtp(8)
 * judges them: 5xx final for a recipient, 4xx kept for the next server (deferred at the last), LMTP's reply
 * per recipient after the final dot. Run by postbus-smtp. */
#include <inttypes.h>

#include "agent-bus.h"
#include "log.h"
#include "smtp-session.h"

/* A temporary failure of one recipient: deferred at the last server, else kept for the next one. */
static void rcpt_soft_fail(SmtpSession *s, SmtpRecipient *rcpt, const char *dsn, const char *text) {
        if (s->final_server)
                smtp_call_result(s->call, rcpt, dsn, s->relay, "%s", text);
        else {
                rcpt->state = SMTP_RCPT_PENDING;
                smtp_call_soft_failure(s->call, rcpt, dsn, s->relay, text);
        }
}

static void rcpt_fail(SmtpSession *s, SmtpRecipient *rcpt, const char *dsn, const char *text) {
        if (dsn[0] == '5')
                smtp_call_result(s->call, rcpt, dsn, s->relay, "%s", text);
        else
                rcpt_soft_fail(s, rcpt, dsn, text);
}

/* A recipient the server took. As Postfix's smtp(8): LMTP delivers it; an SMTP server that announced DSN got
 * the NOTIFY and reports success itself ("passed"); one without DSN ends the sender's NOTIFY=SUCCESS here, so
 * qmgr reports "relayed". */
static void rcpt_sent(SmtpSession *s, SmtpRecipient *rcpt, const char *dsn, const char *text) {
        rcpt->sent_as = s->lmtp ? DELIVERY_STATUS_SENT
                        : (s->features & SMTP_FEATURE_DSN) ? DELIVERY_STATUS_PASSED : DELIVERY_STATUS_RELAYED;
        smtp_call_result(s->call, rcpt, dsn, s->relay, "%s", text);
}

/* "host mx.example[192.0.2.1] said: 550 5.1.1 ... (in reply to RCPT TO command)" */
static void reply_text(SmtpSession *s, const char *in_reply_to, char *buf, size_t size) {
        _cleanup_free_ char *escaped = log_escape(s->reply.text, s->reply.text_len);

        (void) snprintf(buf, size, "host %s said: %s (in reply to %s command)", s->namaddr, strna(escaped),
                        in_reply_to);
}

static bool size_known(SmtpSession *s) {
        return (s->features & SMTP_FEATURE_SIZE) != 0;
}

static int send_rcpt(SmtpSession *s, SmtpRecipient *rcpt) {
        char extra[700] = "";

        if (s->features & SMTP_FEATURE_DSN) {
                size_t n = 0;
                if (rcpt->notify)
                        n += (size_t) snprintf(extra + n, sizeof extra - n, " NOTIFY=%s", rcpt->notify);
                if (rcpt->orcpt && n < sizeof extra)
                        (void) snprintf(extra + n, sizeof extra - n, " ORCPT=%s", rcpt->orcpt);
        }
        return session_command(s, "RCPT TO:<%s>%s", rcpt->rcpt_to ?: rcpt->address, extra);
}

/* MAIL FROM and the recipients that are still to be done; with PIPELINING all in one write. */
static int send_envelope(SmtpSession *s) {
        const QueueEnvelope *e = smtp_call_envelope(s->call);
        const char *body = queue_envelope_attr(e, "body_type");
        const char *ret = queue_envelope_attr(e, "dsn_ret"), *envid = queue_envelope_attr(e, "dsn_envid");
        const char *utf8 = queue_envelope_attr(e, "smtputf8");
        char extra[400] = "";
        size_t n = 0, n_all;
        SmtpRecipient *all = smtp_call_recipients(s->call, &n_all);
        int r;

        if (size_known(s))
                n += (size_t) snprintf(extra + n, sizeof extra - n, " SIZE=%" PRIu64, e->content_size);
        if (body && strcaseeq(body, "8BITMIME") && (s->features & SMTP_FEATURE_8BITMIME))
                n += (size_t) snprintf(extra + n, sizeof extra - n, " BODY=8BITMIME");
        if (utf8 && streq(utf8, "yes") && (s->features & SMTP_FEATURE_SMTPUTF8))
                n += (size_t) snprintf(extra + n, sizeof extra - n, " SMTPUTF8");
        if (s->features & SMTP_FEATURE_DSN) {
                if (ret)
                        n += (size_t) snprintf(extra + n, sizeof extra - n, " RET=%s", ret);
                if (envid)
                        (void) snprintf(extra + n, sizeof extra - n, " ENVID=%s", envid);
        }
        s->n_rcpts = 0;
        s->rcpts = calloc(n_all, sizeof(SmtpRecipient *));
        s->accepted = calloc(n_all, sizeof(SmtpRecipient *));
        if (!s->rcpts || !s->accepted)
                return -ENOMEM;
        for (size_t i = 0; i < n_all; i++)
                if (all[i].state == SMTP_RCPT_PENDING)
                        s->rcpts[s->n_rcpts++] = all + i;

        r = session_command(s, "MAIL FROM:<%s>%s", smtp_call_mail_from(s->call), extra);
        if (r < 0)
                return r;
        s->stage = SMTP_STAGE_MAIL;
        session_set_timeout(s, settings(s)->mail_timeout);
        s->data_pipelined = false;
        if (s->features & SMTP_FEATURE_PIPELINING) {
                for (; s->n_rcpt_sent < s->n_rcpts; s->n_rcpt_sent++) {
                        r = send_rcpt(s, s->rcpts[s->n_rcpt_sent]);
                        if (r < 0)
                                return r;
                }
                /* RFC 2920 lets DATA end the group, as Postfix sends it: its reply comes after the RCPT
                 * replies, and one round trip less a message. */
                if (s->n_rcpts > 0) {
                        r = session_command(s, "DATA");
                        if (r < 0)
                                return r;
                        s->data_pipelined = true;
                }
        }
        return 0;
}

/* What the server offers may rule the mail out: the DSN code and text then, else NULL. */
static const char *envelope_refused(SmtpSession *s, char *text, size_t size) {
        const QueueEnvelope *e = smtp_call_envelope(s->call);
        const char *utf8 = queue_envelope_attr(e, "smtputf8");

        if (utf8 && streq(utf8, "yes") && !(s->features & SMTP_FEATURE_SMTPUTF8)) {
                (void) snprintf(text, size, "SMTPUTF8 is required, but was not offered by host %s", s->namaddr);
                return "5.6.7";
        }
        if (size_known(s) && s->size_limit > 0 && e->content_size > s->size_limit) {
                (void) snprintf(text, size, "message size %" PRIu64 " exceeds size limit %" PRIu64
                                " of server %s: message size exceeds fixed maximum message size",
                                e->content_size, s->size_limit, s->namaddr);
                return "5.3.4";
        }
        return NULL;
}

int session_pipeline_envelope(SmtpSession *s) {
        char text[700];
        int r;

        if (!(s->features & SMTP_FEATURE_PIPELINING) || envelope_refused(s, text, sizeof text))
                return 0;
        r = send_envelope(s);
        if (r < 0)
                return r;
        return 1;
}

/* After EHLO or HELO: what the server offers decides whether the mail can go at all. */
void session_after_hello(SmtpSession *s) {
        char text[700];
        const char *dsn = envelope_refused(s, text, sizeof text);

        if (dsn) {
                size_t n;
                SmtpRecipient *all = smtp_call_recipients(s->call, &n);
                for (size_t i = 0; i < n; i++)
                        if (all[i].state == SMTP_RCPT_PENDING)
                                smtp_call_result(s->call, all + i, dsn, s->relay, "%s", text);
                session_end(s, SMTP_SESSION_FINISHED, NULL, NULL, true);
                return;
        }
        if (send_envelope(s) < 0)
                session_site_fail(s, "4.3.0", "out of memory", false);
}

static void envelope_replies_done(SmtpSession *s) {
        if (s->data_pipelined) {
                /* DATA went out with the envelope: its reply decides (handle_reply()). */
                s->stage = SMTP_STAGE_DATA;
                session_set_timeout(s, settings(s)->data_init_timeout);
                return;
        }
        if (s->mail_failed || s->n_accepted == 0) {
                session_end(s, session_any_pending(s) ? SMTP_SESSION_TRY_NEXT : SMTP_SESSION_FINISHED, NULL, NULL, true);
                return;
        }
        if (session_command(s, "DATA") < 0) {
                session_site_fail(s, "4.3.0", "out of memory", false);
                return;
        }
        s->stage = SMTP_STAGE_DATA;
        session_set_timeout(s, settings(s)->data_init_timeout);
}

void session_fail_accepted(SmtpSession *s, const char *in_reply_to) {
        char dsn[16], text[SMTP_REPLY_TEXT_MAX + 600];

        reply_text(s, in_reply_to, text, sizeof text);
        smtp_reply_dsn(&s->reply, dsn);
        for (size_t i = 0; i < s->n_rcpts; i++)
                if (s->rcpts[i]->state == SMTP_RCPT_ACCEPTED)
                        rcpt_fail(s, s->rcpts[i], dsn, text);
}

void session_envelope_reply(SmtpSession *s) {
        char dsn[16], text[SMTP_REPLY_TEXT_MAX + 600];

        if (s->stage == SMTP_STAGE_MAIL) {
                if (s->reply.code / 100 != 2) {
                        s->mail_failed = true;
                        reply_text(s, "MAIL FROM", text, sizeof text);
                        smtp_reply_dsn(&s->reply, dsn);
                        for (size_t i = 0; i < s->n_rcpts; i++)
                                rcpt_fail(s, s->rcpts[i], dsn, text);
                        /* Without PIPELINING no RCPT was sent; with it, their replies still come. */
                        if (s->n_rcpt_sent == 0) {
                                envelope_replies_done(s);
                                return;
                        }
                }
                s->stage = SMTP_STAGE_RCPT;
                session_set_timeout(s, settings(s)->rcpt_timeout);
                if (!s->mail_failed && s->n_rcpt_sent == 0 && send_rcpt(s, s->rcpts[s->n_rcpt_sent++]) < 0)
                        session_site_fail(s, "4.3.0", "out of memory", false);
                return;
        }

        SmtpRecipient *rcpt = s->rcpts[s->n_rcpt_replies++];
        if (!s->mail_failed) {
                if (s->reply.code / 100 == 2) {
                        rcpt->state = SMTP_RCPT_ACCEPTED;
                        s->accepted[s->n_accepted++] = rcpt;
                } else {
                        reply_text(s, "RCPT TO", text, sizeof text);
                        rcpt_fail(s, rcpt, smtp_reply_dsn(&s->reply, dsn), text);
                }
        }
        if (s->n_rcpt_replies == s->n_rcpts) {
                envelope_replies_done(s);
                return;
        }
        session_set_timeout(s, settings(s)->rcpt_timeout);
        if (s->n_rcpt_sent == s->n_rcpt_replies && send_rcpt(s, s->rcpts[s->n_rcpt_sent++]) < 0)
                session_site_fail(s, "4.3.0", "out of memory", false);
}

/* The reply to the final dot: SMTP's one for every accepted recipient, or LMTP's one per recipient. */
void session_data_done_reply(SmtpSession *s) {
        char dsn[16], text[SMTP_REPLY_TEXT_MAX + 600];

        if (!s->lmtp) {
                if (s->reply.code / 100 == 2) {
                        _cleanup_free_ char *escaped = log_escape(s->reply.text, s->reply.text_len);
                        smtp_reply_dsn(&s->reply, dsn);
                        for (size_t i = 0; i < s->n_rcpts; i++)
                                if (s->rcpts[i]->state == SMTP_RCPT_ACCEPTED)
                                        rcpt_sent(s, s->rcpts[i], dsn, strna(escaped));
                } else
                        session_fail_accepted(s, "end of DATA");
                session_end(s, session_any_pending(s) ? SMTP_SESSION_TRY_NEXT : SMTP_SESSION_FINISHED, NULL, NULL, true);
                return;
        }
        /* The n-th reply is for the n-th recipient that RCPT accepted. */
        SmtpRecipient *rcpt = s->accepted[s->n_lmtp_replies];
        smtp_reply_dsn(&s->reply, dsn);
        if (s->reply.code / 100 == 2) {
                _cleanup_free_ char *escaped = log_escape(s->reply.text, s->reply.text_len);
                rcpt_sent(s, rcpt, dsn, strna(escaped));
        } else {
                reply_text(s, "end of DATA", text, sizeof text);
                rcpt_fail(s, rcpt, dsn, text);
        }
        s->n_lmtp_replies++;
        if (s->n_lmtp_replies < s->n_accepted) {
                session_set_timeout(s, settings(s)->data_done_timeout);
                return;
        }
        session_end(s, session_any_pending(s) ? SMTP_SESSION_TRY_NEXT : SMTP_SESSION_FINISHED, NULL, NULL, true);
}
