/* smtpd-auth.c: AUTH (RFC 4954) in the smtpd process: the session's side of the exchange that
 * smtpd-sasl.c carries on with Dovecot; offered only over TLS. */
#include "log.h"
#include "sasl-util.h"
#include "smtpd-session.h"

/* AUTH only ever over TLS: a password never crosses the network in plaintext. */
bool smtpd_session_auth_offered(const SmtpdSession *s) {
        return s->listener->sasl && s->tls && !s->authenticated && !(s->ehlo_discard & SMTPD_EHLO_AUTH);
}

void smtpd_session_auth_end(SmtpdSession *s) {
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
                        smtpd_session_auth_end(s);
                        smtpd_session_reply(s, "454 4.7.0 Temporary authentication failure: challenge too long");
                        break;
                }
                smtpd_session_reply(s, "334 %s", text);
                s->state = SMTPD_SESSION_AUTH_RESPONSE;
                break;
        case SMTPD_SASL_OK:
                smtpd_session_auth_end(s);
                user = strdup(text);
                if (!user) {
                        smtpd_session_reply(s, "454 4.7.0 Temporary authentication failure: out of memory");
                        break;
                }
                free(s->sasl_username);
                s->sasl_username = user;
                s->authenticated = true;
                s->counters[SMTPD_COMMAND_AUTH].ok++;
                smtpd_session_reply(s, "235 2.7.0 Authentication successful");
                break;
        case SMTPD_SASL_FAIL:
                smtpd_session_auth_end(s);
                log_mail(LOG_WARNING, NULL,
                         LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SASL_METHOD", s->sasl_method }),
                         "%s[%s]: SASL %s authentication failed", s->peer.name, s->client.text, s->sasl_method);
                smtpd_session_reply(s, "535 5.7.8 Error: authentication failed");
                break;
        default:
                smtpd_session_auth_end(s);
                log_mail(LOG_WARNING, NULL,
                         LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SASL_METHOD", s->sasl_method }),
                         "%s[%s]: SASL %s authentication aborted: %s", s->peer.name, s->client.text,
                         s->sasl_method, text);
                smtpd_session_reply(s, "454 4.7.0 Temporary authentication failure: %s", text);
                break;
        }
        smtpd_session_update(s);
}

/* AUTH mechanism [initial-response] (RFC 4954). */
void smtpd_cmd_auth(SmtpdSession *s, const SmtpdCommand *c) {
        const SmtpdListener *l = s->listener;
        _cleanup_free_ char *initial = NULL;
        size_t mlen = 0, ilen;
        const char *mech, *resp = NULL;
        int r;

        if (!l->sasl || (s->ehlo_discard & SMTPD_EHLO_AUTH)) {
                smtpd_session_reply(s, "503 5.5.1 Error: authentication not enabled");
                return;
        }
        if (!s->tls) {
                smtpd_session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
                return;
        }
        if (!s->esmtp) {
                smtpd_session_reply(s, "503 5.5.1 Error: send EHLO first");
                return;
        }
        if (s->authenticated) {
                smtpd_session_reply(s, "503 5.5.1 Error: already authenticated");
                return;
        }
        if (s->in_mail) {
                smtpd_session_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
                return;
        }
        while (mlen < c->arg_len && c->arg[mlen] != ' ' && c->arg[mlen] != '\t')
                mlen++;
        mech = sasl_mechanism(c->arg, mlen);
        if (!mech) {
                smtpd_session_reply(s, mlen == 0 ? "501 5.5.4 Syntax: AUTH mechanism"
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
                else if (!sasl_base64_valid(p, ilen)) {
                        smtpd_session_reply(s, "501 5.5.2 Cannot decode response");
                        return;
                }
                initial = strndup(p, ilen);
                if (!initial) {
                        smtpd_session_reply(s, "451 4.3.0 Error: out of memory");
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
                           sec_to_usec(s->conf->config->smtpd_timeout), &req, on_sasl, s, &s->sasl);
        if (r < 0) {
                log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "%s[%s]: SASL authentication unavailable: cannot talk to %s: %s", s->peer.name, s->client.text,
                         l->config->smtpd_sasl_path, strerror(-r));
                smtpd_session_reply(s, "454 4.7.0 Temporary authentication failure: authentication server unavailable");
                return;
        }
        s->sasl_method = mech;
        s->state = SMTPD_SESSION_AUTH_CHECK;
}

/* A line of the client in the AUTH exchange: the answer to a 334 challenge, or "*" to give up. */
void smtpd_session_auth_response(SmtpdSession *s, const char *line, size_t len) {
        if (len == 1 && line[0] == '*') {
                smtpd_session_auth_end(s);
                smtpd_session_reply(s, "501 5.7.0 Authentication aborted");
                return;
        }
        if (!sasl_base64_valid(line, len)) {
                smtpd_session_auth_end(s);
                smtpd_session_reply(s, "501 5.5.2 Cannot decode response");
                return;
        }
        if (smtpd_sasl_respond(s->sasl, line, len) < 0) {
                smtpd_session_auth_end(s);
                smtpd_session_reply(s, "454 4.7.0 Temporary authentication failure: authentication server unavailable");
                return;
        }
        s->state = SMTPD_SESSION_AUTH_CHECK;
}
