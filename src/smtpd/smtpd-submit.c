/* smtpd-submit.c: the smtpd process hands a received message to cleanup: the sealed memory file and the
 * envelope in one Cleanup1.Submit call over the bus, and cleanup's answer turned into the reply. */
#include <fcntl.h>

#include "io-util.h"
#include "log.h"
#include "queue-id.h"
#include "smtpd-session.h"
#include "smtpd-tls.h"
#include "verp.h"

#define CLEANUP_OBJECT "/org/postbus/Cleanup1"
#define CLEANUP_INTERFACE "org.postbus.Cleanup1"

/* RFC 3848: the protocol in the Received header says whether TLS and AUTH were used. */
static const char *session_protocol(const SmtpdSession *s) {
        if (!s->esmtp)
                return "SMTP";
        return s->tls ? (s->authenticated ? "ESMTPSA" : "ESMTPS") : (s->authenticated ? "ESMTPA" : "ESMTP");
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
                smtpd_session_reject(s, s->sender, s->recipients[0], "%s", reply);
        else if (e) {
                _cleanup_free_ char *text = e->message ? log_escape(e->message, strlen(e->message)) : NULL;

                log_warning("cleanup did not take a message from %s[%s]: %s: %s", s->peer.name, s->client.text,
                            e->name, strna(text));
                if (!sd_bus_error_has_name(e, POSTBUS_ERROR_TEMPORARY) || !e->message ||
                    smtpd_status_reply(e->message, '4', "451", reply) < 0)
                        strcpy(reply, SMTPD_REPLY_QUEUE_WRITE_ERROR);
                smtpd_session_reply(s, "%s", reply);
        } else if (sd_bus_message_read(m, "s", &id) < 0 || !queue_id_valid(id)) {
                log_warning("cleanup answered with a malformed queue ID.");
                smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
        } else {
                if (s->authenticated)
                        log_mail(LOG_INFO, id,
                                 LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "SASL_METHOD", s->sasl_method },
                                            { "SASL_USERNAME", s->sasl_username }),
                                 "client=%s[%s], sasl_method=%s, sasl_username=%s", s->peer.name, s->client.text,
                                 s->sasl_method, s->sasl_username);
                else
                        log_mail(LOG_INFO, id, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                                 "client=%s[%s]", s->peer.name, s->client.text);
                s->counters[s->bdat ? SMTPD_COMMAND_BDAT : SMTPD_COMMAND_DATA].ok++;
                s->errors = 0;
                smtpd_session_reply(s, "250 2.0.0 Ok: queued as %s", id);
        }

        smtpd_session_reset(s);
        smtpd_session_update(s);
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
        const Config *config = s->conf->config;
        char port[8];
        int r;

        (void) snprintf(port, sizeof port, "%u", (unsigned) s->client.port);
        r = sd_bus_message_new_method_call(bus, &m, NULL, CLEANUP_OBJECT, CLEANUP_INTERFACE,
                                           s->data_fd >= 0 ? "Submit" : "SubmitInline");
        if (r >= 0)
                r = s->data_fd >= 0 ? sd_bus_message_append(m, "h", s->data_fd) :
                                      sd_bus_message_append_array(m, 'y', s->data_mem.data, s->data_mem.len);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", s->sender);
        if (r >= 0)
                r = session_append_recipients(s, m);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{ss}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{ss}{ss}{ss}{ss}{ss}",
                                          "client_address", s->client.text,
                                          "client_name", s->peer.name,
                                          "reverse_client_name", s->peer.reverse_name,
                                          "client_port", port,
                                          "protocol", session_protocol(s));
        /* No HELO/EHLO (smtpd_helo_required = no): no helo_name, and cleanup names the client instead. */
        if (r >= 0 && s->helo)
                r = sd_bus_message_append(m, "{ss}", "helo_name", s->helo);
        /* smtpd_tls_received_header: cleanup writes "(using TLSv1.3 with cipher ...)" into the Received header. */
        if (r >= 0 && s->tls && s->listener->config->smtpd_tls_received_header) {
                char cipher[SMTPD_TLS_INFO_MAX], kex[SMTPD_TLS_INFO_MAX];

                smtpd_tls_received_info(s->tls, cipher, kex);
                r = sd_bus_message_append(m, "{ss}", "tls_cipher", cipher);
                if (r >= 0 && kex[0])
                        r = sd_bus_message_append(m, "{ss}", "tls_kex", kex);
        }
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
        /* The queue ID the milters were told ("i"): cleanup names the message so. */
        if (r >= 0 && milter_chain_queue_id(s->milter))
                r = sd_bus_message_append(m, "{ss}", "queue_id", milter_chain_queue_id(s->milter));
        /* A milter's quarantine: cleanup puts the message in hold. */
        if (r >= 0 && s->milter_hold)
                r = sd_bus_message_append(m, "{ss}", "milter_hold", s->milter_hold);
        if (r >= 0 && s->dsn_envid[0])
                r = sd_bus_message_append(m, "{ss}", "dsn_envid", s->dsn_envid);
        /* XVERP: the queue file keeps the delimiters, and qmgr makes each recipient's sender from them. */
        if (r >= 0 && s->verp_delims[0])
                r = sd_bus_message_append(m, "{ss}", VERP_ATTR, s->verp_delims);
        /* The service's content_filter: qmgr sends the message to the filter, not to its recipients (an access
         * table's FILTER, below, wins over it in cleanup). A re-injection service sets it empty, so that
         * filtered mail is not filtered again. */
        if (r >= 0 && !isempty(s->listener->config->content_filter))
                r = sd_bus_message_append(m, "{ss}", "content_filter", s->listener->config->content_filter);
        /* receive_override_options of the service: what cleanup leaves out (no_address_mappings,
         * no_header_body_checks), for mail that has had it done before the content filter. */
        if (r >= 0 && (s->listener->receive_override & RECEIVE_OVERRIDE_CLEANUP)) {
                char text[RECEIVE_OVERRIDE_TEXT_MAX];
                r = sd_bus_message_append(m, "{ss}", RECEIVE_OVERRIDE_ATTR,
                                          receive_override_format(s->listener->receive_override &
                                                                  RECEIVE_OVERRIDE_CLEANUP, text));
        }
        /* What access tables said about the whole message (access(5) HOLD, DISCARD, FILTER, REDIRECT, PREPEND). */
        if (r >= 0 && s->actions.hold)
                r = sd_bus_message_append(m, "{ss}", "smtpd_hold", s->actions.hold);
        if (r >= 0 && s->actions.discard)
                r = sd_bus_message_append(m, "{ss}", "smtpd_discard", s->actions.discard);
        if (r >= 0 && s->actions.filter)
                r = sd_bus_message_append(m, "{ss}", "smtpd_filter", s->actions.filter);
        if (r >= 0 && s->actions.redirect)
                r = sd_bus_message_append(m, "{ss}", "smtpd_redirect", s->actions.redirect);
        for (size_t i = 0; r >= 0 && i < s->actions.n_prepend; i++)
                r = sd_bus_message_append(m, "{ss}", "smtpd_prepend", s->actions.prepend[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call_async(bus, &s->submit, m, on_submit_reply, s,
                                      sec_to_usec(config->daemon_timeout));
        if (r < 0)
                return log_warning_errno(r, "Failed to send a message to cleanup: %m");

        /* The bus message holds its own copy of the descriptor, or of the content. */
        s->data_fd = safe_close(s->data_fd);
        s->data_mem.len = 0;
        s->state = SMTPD_SESSION_SUBMIT;
        return 0;
}

static void session_submit_failed(SmtpdSession *s) {
        smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
        smtpd_session_reset(s);
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
        smtpd_session_update(s);
        return 0;
}

int smtpd_session_submit(SmtpdSession *s) {
        BusClient *cleanup = s->server->cleanup;
        sd_bus *bus;
        int r;

        /* cleanup maps a memory file: sealed, it cannot change while cleanup reads it. */
        r = s->data_fd >= 0 ? memfd_seal(s->data_fd) : 0;
        if (r < 0)
                return log_warning_errno(r, "Failed to seal a message file: %m");

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
