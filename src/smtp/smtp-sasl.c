/* smtp-sasl.c: SASL client authentication of postbus-smtp (Postfix's smtp_sasl_*): after EHLO (and after
 * STARTTLS, its second EHLO), a server that offers AUTH gets AUTH PLAIN or AUTH LOGIN with the user:password
 * of smtp_sasl_password_maps. The security options decide whether a mechanism that sends the password
 * itself may be used: by default only over TLS. A refusal defers the mail with the server's reply, as
 * Postfix's smtp_sasl_auth_soft_bounce does. The password is never logged. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sasl-util.h"
#include "smtp-session.h"
#include "table.h"

/* Most octets of a user:password entry: RFC 4954 allows AUTH lines of 12288 octets. */
#define SMTP_SASL_ENTRY_MAX 4096U

/* The password tables, opened once per spec (the process restarts when main.cf changes). */
static TableList *password_tables;
static char *password_spec;

void smtp_sasl_cleanup(void) {
        password_tables = table_list_free(password_tables);
        password_spec = mfree(password_spec);
}

void smtp_sasl_settings_done(SmtpSettings *set) {
        set->sasl_password_maps = mfree(set->sasl_password_maps);
        set->sasl_mechanism_filter = strv_free(set->sasl_mechanism_filter);
}

static bool setting_bool(char **options, const char *name, bool value) {
        return streq(smtp_setting_string(options, name, value ? "yes" : "no"), "yes");
}

static unsigned setting_options(char **options, const char *name, const char *value) {
        const char *v = smtp_setting_string(options, name, value);
        unsigned flags;

        if (smtp_sasl_options_parse(v, &flags) < 0)
                log_warning("Unknown word in %s = %s, ignoring it.", name, v);
        return flags;
}

int smtp_sasl_settings_load(const Config *cfg, char **options, SmtpSettings *set) {
        int r;

        set->tls_wrappermode = setting_bool(options, "smtp_tls_wrappermode", cfg->smtp_tls_wrappermode);
        /* As Postfix: wrapper mode is TLS or nothing. */
        if (set->tls_wrappermode && set->tls_level < SMTP_TLS_ENCRYPT)
                set->tls_level = SMTP_TLS_ENCRYPT;
        set->sasl_enable = setting_bool(options, "smtp_sasl_auth_enable", cfg->smtp_sasl_auth_enable);
        if (!set->sasl_enable)
                return 0;
        set->sasl_sender_dependent = setting_bool(options, "smtp_sender_dependent_authentication",
                                                  cfg->smtp_sender_dependent_authentication);
        set->sasl_options = setting_options(options, "smtp_sasl_security_options", cfg->smtp_sasl_security_options);
        /* Its default is $smtp_sasl_security_options: a transport's -o of that one counts too. */
        const char *tls_default = cfg->lines[CONFIG_PARAM_smtp_sasl_tls_security_options] == 0
                                          ? smtp_setting_string(options, "smtp_sasl_security_options",
                                                                cfg->smtp_sasl_tls_security_options)
                                          : cfg->smtp_sasl_tls_security_options;
        set->sasl_tls_options = setting_options(options, "smtp_sasl_tls_security_options", tls_default);
        set->sasl_password_maps = strdup(strempty(smtp_setting_string(options, "smtp_sasl_password_maps",
                                                                      cfg->smtp_sasl_password_maps)));
        if (!set->sasl_password_maps)
                return -ENOMEM;
        r = config_split_list(smtp_setting_string(options, "smtp_sasl_mechanism_filter", cfg->smtp_sasl_mechanism_filter),
                              &set->sasl_mechanism_filter);
        return r < 0 ? r : 0;
}

/* The user:password for the session's server: 1 and the two parts, 0 when there is none, or a negative errno
 * when a table cannot be read. */
static int credentials_lookup(SmtpSession *s, char **ret_user, char **ret_password) {
        const SmtpSettings *set = settings(s);
        _cleanup_strv_free_ char **keys = NULL;
        _cleanup_free_ char *value = NULL;
        uint16_t port = 0;
        int r;

        if (isempty(set->sasl_password_maps))
                return 0;
        if (!password_spec || !streq(password_spec, set->sasl_password_maps)) {
                smtp_sasl_cleanup();
                r = table_list_open(set->sasl_password_maps, &password_tables);
                if (r < 0)
                        return r;
                password_spec = strdup(set->sasl_password_maps);
                if (!password_spec)
                        return -ENOMEM;
        }
        if (s->address.sockaddr.sa.sa_family == AF_INET)
                port = ntohs(s->address.sockaddr.in.sin_port);
        else if (s->address.sockaddr.sa.sa_family == AF_INET6)
                port = ntohs(s->address.sockaddr.in6.sin6_port);
        r = smtp_sasl_keys(set->sasl_sender_dependent ? smtp_call_sender(s->call) : NULL, s->address.host, port,
                           smtp_call_nexthop(s->call), s->lmtp, &keys);
        if (r < 0)
                return r;
        r = 0;
        for (char **k = keys; *k && r == 0; k++)
                r = table_list_lookup(password_tables, *k, &value);
        if (r <= 0)
                return r;
        if (strlen(value) > SMTP_SASL_ENTRY_MAX) {
                explicit_bzero(value, strlen(value));
                return -E2BIG;
        }
        /* "user:password"; without a colon, an empty password, as Postfix takes it. */
        char *colon = strchr(value, ':');
        _cleanup_free_ char *user = strndup(value, colon ? (size_t) (colon - value) : strlen(value));
        char *password = strdup(colon ? colon + 1 : "");
        explicit_bzero(value, strlen(value));
        if (!user || !password) {
                free(password);
                return -ENOMEM;
        }
        *ret_user = TAKE_PTR(user);
        *ret_password = password;
        return 1;
}

void session_sasl_forget(SmtpSession *s) {
        if (s->sasl_password) {
                explicit_bzero(s->sasl_password, strlen(s->sasl_password));
                s->sasl_password = mfree(s->sasl_password);
        }
        s->sasl_user = mfree(s->sasl_user);
}

/* Sends base64 of text as one line of the exchange (or the AUTH command with it). */
static int send_encoded(SmtpSession *s, const char *prefix, const char *text) {
        _cleanup_free_ char *b64 = NULL;
        int r;

        r = sasl_base64_encode(text, strlen(text), &b64);
        if (r < 0)
                return r;
        r = session_command(s, "%s%s", prefix, b64);
        explicit_bzero(b64, strlen(b64));
        return r;
}

static void auth_cannot(SmtpSession *s, const char *why) {
        char text[700];

        (void) snprintf(text, sizeof text, "SASL authentication failed; cannot authenticate to server %s: %s",
                        s->namaddr, why);
        session_site_fail(s, "4.7.0", text, true);
}

bool session_sasl_begin(SmtpSession *s) {
        const SmtpSettings *set = settings(s);
        const char *mechanism;
        int r;

        if (!set->sasl_enable || s->authenticated)
                return false;
        /* A server without AUTH gets the mail unauthenticated; its reply to MAIL decides. */
        if (!s->auth_offered)
                return false;
        if (s->auth_n_passed == 0) {
                log_mail(LOG_WARNING, smtp_call_queue_id(s->call), LOG_FIELDS({ "RELAY", s->relay }),
                         "%s offered no supported AUTH mechanisms (smtp_sasl_mechanism_filter)", s->relay);
                return false;
        }
        r = credentials_lookup(s, &s->sasl_user, &s->sasl_password);
        if (r < 0) {
                log_mail(LOG_WARNING, smtp_call_queue_id(s->call), LOG_NO_FIELDS,
                         "smtp_sasl_password_maps %s lookup error: %s", set->sasl_password_maps, strerror(-r));
                session_site_fail(s, "4.3.0", "SASL password table lookup failure", true);
                return true;
        }
        if (r == 0)
                return false;   /* no credentials for this server: no AUTH, as Postfix */
        mechanism = smtp_sasl_choose(s->auth_mechanisms, s->ssl ? set->sasl_tls_options : set->sasl_options);
        if (!mechanism) {
                /* Cyrus SASL's "No worthy mechs found": the password stays here, the mail waits. */
                log_mail(LOG_WARNING, smtp_call_queue_id(s->call), LOG_FIELDS({ "RELAY", s->relay }),
                         "SASL authentication failure: No worthy mechs found");
                session_sasl_forget(s);
                auth_cannot(s, "no mechanism available");
                return true;
        }
        s->sasl_mechanism = mechanism;
        s->sasl_step = 0;
        if (streq(mechanism, "PLAIN")) {
                _cleanup_free_ char *response = NULL;
                r = smtp_sasl_plain_response(s->sasl_user, s->sasl_password, &response);
                if (r >= 0) {
                        r = session_command(s, "AUTH PLAIN %s", response);
                        explicit_bzero(response, strlen(response));
                }
                session_sasl_forget(s);
        } else
                r = session_command(s, "AUTH LOGIN");
        if (r < 0) {
                session_sasl_forget(s);
                session_site_fail(s, "4.3.0", "out of memory", false);
                return true;
        }
        s->stage = SMTP_STAGE_AUTH;
        session_set_timeout(s, set->helo_timeout);
        return true;
}

void session_sasl_reply(SmtpSession *s) {
        char dsn[16], text[SMTP_REPLY_TEXT_MAX + 600];
        int r = 0;

        if (s->reply.code == 235) {
                session_sasl_forget(s);
                s->authenticated = true;
                log_debug("%s: authenticated to %s with %s", smtp_call_queue_id(s->call), s->relay,
                          s->sasl_mechanism);
                session_after_hello(s);
                return;
        }
        if (s->reply.code == 334 && streq(s->sasl_mechanism, "LOGIN") && s->sasl_step < 2 && s->sasl_user) {
                /* The challenges are "Username:" and "Password:"; the order is the mechanism's. */
                r = send_encoded(s, "", s->sasl_step == 0 ? s->sasl_user : s->sasl_password);
                s->sasl_step++;
                if (s->sasl_step == 2)
                        session_sasl_forget(s);
                if (r >= 0) {
                        session_set_timeout(s, settings(s)->helo_timeout);
                        return;
                }
                session_site_fail(s, "4.3.0", "out of memory", false);
                return;
        }
        if (s->reply.code == 334) {
                /* A challenge the mechanism has no answer to: cancel the exchange (RFC 4954 "*"). */
                session_sasl_forget(s);
                (void) session_command(s, "*");
                s->sasl_step = 3;
                return;
        }
        session_sasl_forget(s);
        /* As Postfix with smtp_sasl_auth_soft_bounce = yes: the mail waits for better credentials. */
        (void) smtp_reply_dsn(&s->reply, dsn);
        dsn[0] = '4';
        _cleanup_free_ char *escaped = log_escape(s->reply.text, s->reply.text_len);
        (void) snprintf(text, sizeof text, "SASL authentication failed; server %s said: %s", s->namaddr,
                        strna(escaped));
        session_site_fail(s, dsn, text, true);
}
