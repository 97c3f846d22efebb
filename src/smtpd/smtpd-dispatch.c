/* smtpd-dispatch.c: the smtpd process's command dispatcher: reads the client's lines as far as the state and
 * pipelining allow, holds a command back for DNS blocklist lookups or the error delay, and hands it to its
 * handler. A session buffers no more than one line and one read of input. */
#include "log.h"
#include "smtpd-session.h"

static int on_session_delay(sd_event_source *source, uint64_t usec, void *userdata) {
        SmtpdSession *s = userdata;

        s->delaying = false;
        s->delay_done = true;
        smtpd_session_update(s);
        return 0;
}

/* smtpd_soft_error_limit: once a session has made that many errors, each command waits
 * smtpd_error_sleep_time before it is answered, on a timer, so that the other sessions go on. Returns
 * true while the next command must wait. */
static bool session_must_wait(SmtpdSession *s) {
        const Config *config = s->conf->config;
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

/* Notes improper pipelining for reject_unauth_pipelining, as Postfix does: input that came before the reply
 * to the command it follows (the greeting: "CONNECT"), where the client was to wait for it. Said once a
 * session, with the first bytes of what came early. */
static void session_ill_pipelining(SmtpdSession *s, const char *after) {
        _cleanup_free_ char *early = NULL;

        if (s->ill_pipelining)
                return;
        s->ill_pipelining = true;
        early = log_escape(s->in + s->in_start, MIN(s->in_end - s->in_start, (size_t) 100));
        log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                 "improper command pipelining after %s from %s[%s]: %s", after, s->peer.name, s->client.text,
                 strna(early));
}

/* Whether input after command t, already there, is improper: after any command of a client that has not
 * said EHLO (it cannot know of PIPELINING), and after those that must end a group of commands (RFC 2920
 * 3.1; STARTTLS and AUTH too, RFC 3207 and 4954). A BDAT chunk's bytes follow their command by design. */
static bool pipelining_improper(const SmtpdSession *s, SmtpdCommandType t) {
        if (s->in_start >= s->in_end || t == SMTPD_COMMAND_BDAT)
                return false;
        if (!s->esmtp)
                return true;
        switch (t) {
        case SMTPD_COMMAND_HELO:
        case SMTPD_COMMAND_EHLO:
        case SMTPD_COMMAND_DATA:
        case SMTPD_COMMAND_VRFY:
        case SMTPD_COMMAND_NOOP:
        case SMTPD_COMMAND_QUIT:
        case SMTPD_COMMAND_STARTTLS:
        case SMTPD_COMMAND_AUTH:
                return true;
        default:
                return false;
        }
}

/* Whether the command in line must wait for the DNS blocklist lookups: those that evaluate restriction
 * lists (RCPT, VRFY; with smtpd_delay_reject = no also HELO, EHLO and MAIL). Any other is answered at
 * once, while the lookups run; what a client pipelines after a waiting command waits behind it. */
static bool session_checks_wait(SmtpdSession *s, const char *line, size_t len) {
        SmtpdCommand c;

        s->checks_wait = false;
        if (s->peer_lookup) {           /* the client spoke before the greeting */
                session_ill_pipelining(s, "CONNECT");
                s->checks_wait = true;
                return true;
        }
        if (s->state != SMTPD_SESSION_COMMAND || !smtpd_check_session_pending(s->checks))
                return false;
        if (s->greet_pending) {         /* nothing is answered before the greeting */
                session_ill_pipelining(s, "CONNECT");
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

static void (*const command_handlers[_SMTPD_COMMAND_MAX])(SmtpdSession *s, const SmtpdCommand *c) = {
        [SMTPD_COMMAND_HELO] = smtpd_cmd_helo,
        [SMTPD_COMMAND_EHLO] = smtpd_cmd_helo,
        [SMTPD_COMMAND_MAIL] = smtpd_cmd_mail,
        [SMTPD_COMMAND_RCPT] = smtpd_cmd_rcpt,
        [SMTPD_COMMAND_DATA] = smtpd_cmd_data,
        [SMTPD_COMMAND_RSET] = smtpd_cmd_rset,
        [SMTPD_COMMAND_NOOP] = smtpd_cmd_noop,
        [SMTPD_COMMAND_VRFY] = smtpd_cmd_vrfy,
        [SMTPD_COMMAND_QUIT] = smtpd_cmd_quit,
        [SMTPD_COMMAND_STARTTLS] = smtpd_cmd_starttls,
        [SMTPD_COMMAND_AUTH] = smtpd_cmd_auth,
        [SMTPD_COMMAND_BDAT] = smtpd_cmd_bdat,
};

static void session_command(SmtpdSession *s, const char *line, size_t len) {
        SmtpdCommand c;
        int r;

        r = smtpd_command_parse(line, len, &c);
        if (r < 0) {
                s->counters[_SMTPD_COMMAND_MAX].total++;
                s->stage = "UNKNOWN";
                smtpd_session_reply(s, r == -EBADMSG ? "500 5.5.2 Error: bad character in command"
                                                     : "500 5.5.2 Error: command not recognized");
                return;
        }
        s->stage = smtpd_command_to_string(c.type);
        if (!s->command_resumed)
                s->counters[c.type].total++;
        if (!s->command_resumed && pipelining_improper(s, c.type))
                session_ill_pipelining(s, s->stage);
        s->reply_code = 0;
        if (s->access_denied && c.type != SMTPD_COMMAND_QUIT) {      /* smtpd_session_greet() */
                smtpd_session_reply(s, "503 5.7.0 Error: access denied for %s[%s]", s->peer.name, s->client.text);
                return;
        }
        /* The milters refused the connection (smtpd-milter.c). */
        if (s->milter_deny && c.type != SMTPD_COMMAND_QUIT && c.type != SMTPD_COMMAND_RSET &&
            c.type != SMTPD_COMMAND_NOOP) {
                smtpd_session_reply(s, "%s", s->milter_deny);
                return;
        }
        command_handlers[c.type](s, &c);
        /* DATA and BDAT succeed only when the chunk is read or cleanup has the message. */
        if (c.type != SMTPD_COMMAND_DATA && c.type != SMTPD_COMMAND_BDAT && s->reply_code > 0 &&
            s->reply_code < 400)
                s->counters[c.type].ok++;
}

/* Handles buffered input as far as the state and the room for replies allow. */
void smtpd_session_process(SmtpdSession *s) {
        const Config *config = s->conf->config;

        while (s->out_len <= SMTPD_OUT_PAUSE) {
                size_t line_len = 0, consumed;
                int r;

                if (s->state != SMTPD_SESSION_COMMAND && s->state != SMTPD_SESSION_DATA &&
                    s->state != SMTPD_SESSION_BDAT && s->state != SMTPD_SESSION_AUTH_RESPONSE)
                        return;
                if (s->errors >= (unsigned) config->smtpd_hard_error_limit) {
                        smtpd_session_reply(s, "421 4.7.0 %s Error: too many errors", config->myhostname);
                        smtpd_session_log_end(s, "too many errors");
                        s->state = SMTPD_SESSION_CLOSING;
                        return;
                }
                if (s->state == SMTPD_SESSION_DATA) {
                        if (!smtpd_session_data(s))
                                return;
                        continue;
                }
                if (s->state == SMTPD_SESSION_BDAT) {
                        if (!smtpd_session_bdat(s))
                                return;
                        continue;
                }

                const char *line = s->in + s->in_start;
                r = smtpd_line_next(&s->lines, line, s->in_end - s->in_start, &line_len, &consumed);
                /* A complete line stays where it is while it waits (the reader finds it again): for the
                 * DNS blocklist lookups (smtpd-restrictions.c) or the error delay. */
                if (r == 1 && (session_checks_wait(s, line, line_len) || (!s->command_resumed && session_must_wait(s))))
                        return;
                s->in_start += consumed;
                if (r == 0)
                        return;
                if (s->lines.bare_lf && s->reject_bare_lf) {
                        smtpd_session_bare_lf(s);
                        return;
                }
                if (r == -E2BIG && s->state == SMTPD_SESSION_AUTH_RESPONSE) {
                        smtpd_session_auth_end(s);
                        smtpd_session_reply(s, "500 5.5.6 Authentication exchange line is too long");
                } else if (r == -E2BIG)
                        s->stage = "UNKNOWN", smtpd_session_reply(s, "500 5.5.2 Error: line too long");
                else if (s->state == SMTPD_SESSION_AUTH_RESPONSE)
                        smtpd_session_auth_response(s, line, line_len);
                else {
                        session_command(s, line, line_len);
                        /* It asked a policy service: the line goes back, and is handled again (now with
                         * the answer) once on_checks_done() sees the answer in. */
                        if (s->command_wait) {
                                s->command_wait = false;
                                s->command_resumed = true;
                                s->in_start -= consumed;
                                return;
                        }
                        s->command_resumed = false;
                }
        }
}
