/* smtpd-milter.c: smtpd_milters in the smtpd process. A session has one milter chain (src/shared/milter.c);
 * connect, HELO, MAIL, RCPT and DATA are asked as the commands come, with the command's reply waiting in
 * the SMTPD_SESSION_MILTER state (other sessions go on); the headers, body and end of message are asked
 * once the whole message is in its memory file, and the changes go into that message and the envelope
 * before it is handed to cleanup, which writes the one queue file (see milter.c for why here). */
#include <stdio.h>

#include "io-util.h"
#include "log.h"
#include "smtpd-session.h"

/* The macros Postfix sends that smtpd knows, besides main.cf's and the queue ID (src/shared/milter*.c). */
static const char *session_macro(const char *name, void *userdata) {
        SmtpdSession *s = userdata;
        const char *v = milter_config_macro(s->conf->config, name);

        if (v)
                return v;
        if (streq(name, "_")) {
                (void) snprintf(s->milter_macro, sizeof s->milter_macro, "%s [%s]", s->peer.name, s->client.text);
                return s->milter_macro;
        }
        if (streq(name, "{client_addr}"))
                return s->client.text;
        if (streq(name, "{client_port}")) {
                (void) snprintf(s->milter_macro, sizeof s->milter_macro, "%u", (unsigned) s->client.port);
                return s->milter_macro;
        }
        if (streq(name, "{client_name}"))
                return s->peer.name;
        if (streq(name, "{client_ptr}"))
                return s->peer.reverse_name;
        if (streq(name, "{auth_type}"))
                return s->authenticated ? s->sasl_method : NULL;
        if (streq(name, "{auth_authen}"))
                return s->authenticated ? s->sasl_username : NULL;
        if (streq(name, "{mail_addr}"))
                return s->in_mail ? s->sender : NULL;
        if (streq(name, "{rcpt_addr}"))
                return s->milter_rcpt;
        if (streq(name, "{tls_version}"))
                return s->tls ? smtpd_tls_version(s->tls) : NULL;
        if (streq(name, "{cipher}"))
                return s->tls ? smtpd_tls_cipher(s->tls) : NULL;
        return NULL;
}

/* Ends a wait for the milters: commands are read again. */
static void session_milter_resume(SmtpdSession *s) {
        s->state = SMTPD_SESSION_COMMAND;
        s->milter_ok = mfree(s->milter_ok);
}

static void on_connect_done(MilterChain *c, MilterVerdict verdict, const char *reply, void *userdata) {
        SmtpdSession *s = userdata;

        session_milter_resume(s);
        /* A refusal of the connection answers every command but QUIT, as Postfix's smtpd does. */
        if (reply)
                s->milter_deny = strdup(reply);
        if (reply && !s->milter_deny)
                s->milter_deny = strdup("451 4.3.0 Error: out of memory");
        if (verdict == MILTER_DISCARD)
                s->milter_discard_session = true;
        smtpd_session_begin(s);
        smtpd_session_update(s);
}

bool smtpd_milter_connect(SmtpdSession *s) {
        const char *addr = s->client.text;
        char family = s->client.family == AF_INET ? '4' : s->client.family == AF_INET6 ? '6' : 'U';
        int r;

        if (!s->listener->milters.milters || !s->listener->milters.milters[0])
                return false;
        r = milter_chain_new(s->server->daemon->event, &s->listener->milters, session_macro, s, &s->milter);
        if (r >= 0)
                r = milter_chain_connect(s->milter, s->peer.name, family, addr, s->client.port, on_connect_done);
        if (r < 0) {
                log_warning_errno(r, "Failed to start the milters for %s, as their default action: %m",
                                  s->client.text);
                s->milter = milter_chain_free(s->milter);
                if (s->listener->milters.default_action == MILTER_ACTION_TEMPFAIL ||
                    s->listener->milters.default_action == MILTER_ACTION_REJECT)
                        s->milter_deny = strdup(s->listener->milters.default_action == MILTER_ACTION_REJECT
                                                ? "550 5.7.1 Command rejected"
                                                : "451 4.7.1 Service unavailable - try again later");
                return false;
        }
        s->state = SMTPD_SESSION_MILTER;
        return true;
}

/* A command's milter step ended: its own reply, or the milters'. */
static void on_command_done(MilterChain *c, MilterVerdict verdict, const char *reply, void *userdata) {
        SmtpdSession *s = userdata;
        SmtpdCommandType cmd = s->milter_cmd;
        _cleanup_free_ char *ok = TAKE_PTR(s->milter_ok);

        session_milter_resume(s);
        s->milter_rcpt = NULL;
        if (verdict == MILTER_DISCARD) {
                /* The message is taken and dropped at its end (at HELO: every message of the session). */
                if (cmd == SMTPD_COMMAND_HELO || cmd == SMTPD_COMMAND_EHLO)
                        s->milter_discard_session = true;
                else
                        s->milter_discard = true;
                verdict = MILTER_CONTINUE;
        }
        if (verdict != MILTER_CONTINUE) {
                smtpd_session_reject(s, s->in_mail ? s->sender : NULL,
                                     cmd == SMTPD_COMMAND_RCPT && s->n_recipients > 0
                                             ? s->recipients[s->n_recipients - 1] : NULL, "%s", reply);
                /* A refused DATA ends the transaction: the milters are done with this message, and a
                 * second DATA must not pass them by. */
                if (cmd == SMTPD_COMMAND_DATA)
                        smtpd_session_reset(s);
                else if (cmd == SMTPD_COMMAND_MAIL)
                        s->in_mail = false;
                else if (cmd == SMTPD_COMMAND_RCPT && s->n_recipients > 0) {
                        s->n_recipients--;
                        s->recipients[s->n_recipients] = mfree(s->recipients[s->n_recipients]);
                        s->rcpt_orcpt[s->n_recipients] = mfree(s->rcpt_orcpt[s->n_recipients]);
                }
        } else if (cmd == SMTPD_COMMAND_DATA)
                smtpd_data_begin(s);
        else {
                s->counters[cmd].ok++;
                smtpd_session_reply(s, "%s", ok);
        }
        smtpd_session_update(s);
}

/* The ESMTP parameters of MAIL or RCPT (what follows the path in the command line), one a string, as
 * Postfix passes them: "SIZE=100", "BODY=8BITMIME". */
#define MILTER_ESMTP_ARGS_MAX 16
static void esmtp_args(const SmtpdCommand *c, char *buf, size_t size, char **args) {
        const char *end = c ? memchr(c->arg, '>', c->arg_len) : NULL;
        size_t n = 0, len;

        *args = NULL;
        if (!end)
                return;
        len = MIN(c->arg_len - (size_t) (end + 1 - c->arg), size - 1);
        memcpy(buf, end + 1, len);
        buf[len] = '\0';
        for (char *p = strtok(buf, " "); p && n < MILTER_ESMTP_ARGS_MAX; p = strtok(NULL, " "))
                args[n++] = p;
        args[n] = NULL;
}

/* Whether the command's reply waits for the milters; ok is the reply if they let it through. */
bool smtpd_milter_command(SmtpdSession *s, const SmtpdCommand *c, SmtpdCommandType cmd, const char *arg,
                          const char *ok) {
        char addr[ADDRESS_MAX + 3], params[SMTPD_REPLY_MAX];
        char *args[MILTER_ESMTP_ARGS_MAX + 2] = { addr };
        int r;

        if (!s->milter)
                return false;
        /* A step that no milter takes (opendkim leaves out HELO and DATA) is answered at once: no wait. */
        if ((cmd == SMTPD_COMMAND_HELO || cmd == SMTPD_COMMAND_EHLO) && !milter_chain_asks(s->milter, MILTER_CMD_HELO))
                return false;
        if (cmd == SMTPD_COMMAND_RCPT && !milter_chain_asks(s->milter, MILTER_CMD_RCPT))
                return false;
        if (cmd == SMTPD_COMMAND_DATA && !milter_chain_asks(s->milter, MILTER_CMD_DATA))
                return false;
        s->milter_cmd = cmd;
        s->milter_ok = ok ? strdup(ok) : NULL;
        if (ok && !s->milter_ok)
                return false;
        switch (cmd) {
        case SMTPD_COMMAND_HELO:
        case SMTPD_COMMAND_EHLO:
                r = milter_chain_helo(s->milter, arg, on_command_done);
                break;
        case SMTPD_COMMAND_MAIL:
                (void) snprintf(addr, sizeof addr, "<%s>", arg);
                esmtp_args(c, params, sizeof params, args + 1);
                r = milter_chain_mail(s->milter, args, on_command_done);
                break;
        case SMTPD_COMMAND_RCPT:
                (void) snprintf(addr, sizeof addr, "<%s>", arg);
                esmtp_args(c, params, sizeof params, args + 1);
                s->milter_rcpt = arg;
                r = milter_chain_rcpt(s->milter, args, on_command_done);
                break;
        case SMTPD_COMMAND_DATA:
                r = milter_chain_data(s->milter, on_command_done);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to ask the milters about %s: %m", smtpd_command_to_string(cmd));
                s->milter_ok = mfree(s->milter_ok);
                s->milter_rcpt = NULL;
                return false;
        }
        s->state = SMTPD_SESSION_MILTER;
        return true;
}

static void message_done(SmtpdSession *s) {
        s->milter_in = milter_input_free(s->milter_in);
}

void smtpd_milter_reset(SmtpdSession *s) {
        message_done(s);
        s->milter_discard = false;
        s->milter_hold = mfree(s->milter_hold);
        if (s->milter && !milter_chain_busy(s->milter))
                milter_chain_abort(s->milter);
}

void smtpd_milter_free(SmtpdSession *s) {
        s->milter = milter_chain_free(s->milter);
        message_done(s);
        s->milter_deny = mfree(s->milter_deny);
        s->milter_ok = mfree(s->milter_ok);
        s->milter_hold = mfree(s->milter_hold);
}

static int recipient_delete(SmtpdSession *s, const char *addr) {
        for (size_t i = 0; i < s->n_recipients; i++) {
                if (strcasecmp(s->recipients[i], addr) != 0)
                        continue;
                free(s->recipients[i]);
                free(s->rcpt_orcpt[i]);
                memmove(s->recipients + i, s->recipients + i + 1, (s->n_recipients - i) * sizeof(char *));
                memmove(s->rcpt_orcpt + i, s->rcpt_orcpt + i + 1, (s->n_recipients - i) * sizeof(char *));
                memmove(s->rcpt_notify + i, s->rcpt_notify + i + 1, (s->n_recipients - i - 1) * sizeof(unsigned));
                s->n_recipients--;
                i--;
        }
        return 0;
}

/* The milters' changes to the envelope and the content, into the session's envelope and a new memory
 * file. */
static int message_apply(SmtpdSession *s) {
        MilterMessage *m = &s->milter_in->message;
        int r;

        if (m->sender) {
                if (strlen(m->sender) > ADDRESS_MAX)
                        return -EINVAL;
                strcpy(s->sender, m->sender);
        }
        for (size_t i = 0; i < m->n_add_rcpt; i++) {
                SmtpdPath p = {};

                if (strlen(m->add_rcpt[i]) > ADDRESS_MAX)
                        return -EINVAL;
                strcpy(p.address, m->add_rcpt[i]);
                r = smtpd_session_add_recipient(s, &p);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->n_del_rcpt; i++)
                (void) recipient_delete(s, m->del_rcpt[i]);
        if (m->quarantine && !(s->milter_hold = strdup(m->quarantine)))
                return -ENOMEM;
        if (m->changed) {
                int fd;

                r = milter_message_memfd(m, "postbus-smtpd", &fd);
                if (r < 0)
                        return r;
                safe_close(s->data_fd);
                s->data_fd = fd;
        }
        return 0;
}

static void end_message(SmtpdSession *s) {
        smtpd_session_reset(s);
        smtpd_session_update(s);
}

static void on_message_done(MilterChain *c, MilterVerdict verdict, const char *reply, void *userdata) {
        SmtpdSession *s = userdata;
        const char *rcpt = s->n_recipients > 0 ? s->recipients[0] : NULL;

        s->state = SMTPD_SESSION_COMMAND;
        if (verdict == MILTER_REJECT || verdict == MILTER_TEMPFAIL) {
                smtpd_session_reject(s, s->sender, rcpt, "%s", reply);
                end_message(s);
                return;
        }
        if (verdict == MILTER_DISCARD || s->milter_discard || s->milter_discard_session) {
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "milter-discard: END-OF-MESSAGE from %s[%s]: milter triggers DISCARD action; from=<%s>",
                         s->peer.name, s->client.text, s->sender);
                smtpd_session_reply(s, "250 2.0.0 Ok: discarded");
                end_message(s);
                return;
        }
        if (message_apply(s) < 0) {
                smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
                end_message(s);
                return;
        }
        /* The memory file is sealed for cleanup: no mapping of it may remain. */
        message_done(s);
        if (s->n_recipients == 0)
                smtpd_session_reply(s, "554 5.5.1 Error: no valid recipients");
        else if (smtpd_session_submit(s) < 0)
                smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
        else {
                smtpd_session_update(s);
                return;
        }
        end_message(s);
}

/* The message is complete: 1 when the milters are asked (the reply follows), 0 when there are none, or
 * negative when they cannot be (the default action has no message to act on: a temporary failure). */
int smtpd_milter_message(SmtpdSession *s) {
        int r;

        if (!s->milter)
                return 0;
        r = smtpd_data_spill(s);
        if (r < 0)
                return r;
        r = milter_input_new(s->data_fd, (size_t) s->conf->config->message_size_limit, &s->milter_in);
        if (r < 0)
                return r;
        r = milter_chain_message(s->milter, &s->milter_in->message, on_message_done);
        if (r < 0)
                return r;
        s->state = SMTPD_SESSION_MILTER;
        return 1;
}
