/* smtpd-commands.c: the SMTP dialogue in the smtpd process: HELO and EHLO, MAIL, RCPT, VRFY, NOOP, RSET and
 * QUIT, with their per-client rate limits and restriction checks. */
#include <inttypes.h>
#include <sys/statvfs.h>

#include "log.h"
#include "smtpd-session.h"
#include "utf8.h"
#include "verp.h"

static void session_junk(SmtpdSession *s) {
        if (++s->junk > (unsigned) s->conf->config->smtpd_junk_command_limit)
                s->errors++;
}

/* Whether addr may be a recipient: the relay and recipient restrictions, a known local recipient
 * (smtpd_reject_unlisted_recipient), and with smtpd_delay_reject the client, HELO and sender restrictions.
 * Queues the rejection if not. */
static bool session_check_recipient(SmtpdSession *s, const char *addr) {
        return smtpd_session_check(s, smtpd_check_rcpt, s->helo, s->in_mail ? s->sender : NULL, addr) == 0;
}

void smtpd_session_ehlo_discard_init(SmtpdSession *s) {
        const char *words = s->listener->config->smtpd_discard_ehlo_keywords;
        _cleanup_free_ char *value = NULL;
        int r;

        /* As Postfix: by the address alone, never the name, which the client controls. */
        r = table_list_lookup(s->listener->ehlo_discard_maps, s->client.text, &value);
        if (r < 0) {
                log_warning_errno(r, "Failed to look up %s in smtpd_discard_ehlo_keyword_address_maps: %m",
                                  s->client.text);
                s->ehlo_discard_failed = true;
        } else if (r > 0)
                words = value;
        s->ehlo_discard = smtpd_ehlo_discard_parse(words, strlen(words));
}

static bool discarded(const SmtpdSession *s, SmtpdEhloKeyword k) {
        return s->ehlo_discard & k;
}

void smtpd_cmd_helo(SmtpdSession *s, const SmtpdCommand *c) {
        const Config *config = s->conf->config;
        bool ehlo = c->type == SMTPD_COMMAND_EHLO;
        char *helo;

        if (c->arg_len == 0 || c->arg_len > SMTPD_HELO_MAX) {
                smtpd_session_reply(s, "501 5.5.4 Syntax: %s hostname", smtpd_command_to_string(c->type));
                return;
        }
        helo = strndup(c->arg, c->arg_len);
        if (!helo) {
                smtpd_session_reply(s, "451 4.3.0 Error: out of memory");
                return;
        }
        /* smtpd_helo_restrictions, here only with smtpd_delay_reject = no (smtpd-restrictions.c). */
        if (smtpd_session_check(s, smtpd_check_helo, helo, NULL, NULL) != 0) {
                free(helo);
                return;
        }
        free(s->helo);
        s->helo = helo;
        s->esmtp = ehlo;
        smtpd_session_reset(s);
        if (ehlo && s->ehlo_discard_failed) {
                /* Postfix's answer when it cannot tell what to announce: a local data error, and the end. */
                log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "don't know what EHLO features to announce to %s[%s]", s->peer.name, s->client.text);
                smtpd_session_reply(s, "421 4.3.0 %s Server local data error", config->myhostname);
                s->state = SMTPD_SESSION_CLOSING;
                return;
        }
        if (ehlo) {
                /* The extensions, one a line; a hook may add its own (STARTTLS, AUTH) to keywords. */
                const char *keywords[16];
                char size[32], text[SMTPD_REPLY_MAX - 2];
                size_t n = 0, len;

                if (s->ehlo_discard && !discarded(s, SMTPD_EHLO_SILENT_DISCARD)) {
                        char words[256];

                        smtpd_ehlo_discard_to_string(s->ehlo_discard, words, sizeof words);
                        log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                                 "discarding EHLO keywords: %s", words);
                }
                (void) snprintf(size, sizeof size, "SIZE %" PRIi64, config->message_size_limit);
                if (!discarded(s, SMTPD_EHLO_PIPELINING))
                        keywords[n++] = "PIPELINING";
                if (!discarded(s, SMTPD_EHLO_SIZE))
                        keywords[n++] = size;
                if (!config->disable_vrfy_command && !discarded(s, SMTPD_EHLO_VRFY))
                        keywords[n++] = "VRFY";
                if (!discarded(s, SMTPD_EHLO_ENHANCEDSTATUSCODES))
                        keywords[n++] = "ENHANCEDSTATUSCODES";
                if (!discarded(s, SMTPD_EHLO_8BITMIME))
                        keywords[n++] = "8BITMIME";
                if (!discarded(s, SMTPD_EHLO_DSN))
                        keywords[n++] = "DSN";
                if (config->smtputf8_enable && !discarded(s, SMTPD_EHLO_SMTPUTF8))
                        keywords[n++] = "SMTPUTF8";
                /* As Postfix: announced only to the clients that may use it. */
                if (smtpd_networks_match(&s->conf->verp_clients, &s->client) && !discarded(s, SMTPD_EHLO_VERP))
                        keywords[n++] = "XVERP";
                if (!discarded(s, SMTPD_EHLO_CHUNKING))
                        keywords[n++] = "CHUNKING";
                if (smtpd_session_tls_offered(s))
                        keywords[n++] = "STARTTLS";
                if (smtpd_session_auth_offered(s)) {
                        keywords[n++] = "AUTH " SMTPD_SASL_MECHANISMS;
                        /* Clients from before RFC 2554 (old Outlook) look for this form only. */
                        if (s->listener->config->broken_sasl_auth_clients)
                                keywords[n++] = "AUTH=" SMTPD_SASL_MECHANISMS;
                }
                len = (size_t) snprintf(text, sizeof text, "250-%s", config->myhostname);
                for (size_t i = 0; i < n && len < sizeof text; i++)
                        len += (size_t) snprintf(text + len, sizeof text - len, "\r\n250%c%s",
                                                 i + 1 < n ? '-' : ' ', keywords[i]);
                if (!smtpd_milter_command(s, NULL, c->type, helo, text))
                        smtpd_session_reply(s, "%s", text);
        } else {
                char text[SMTPD_REPLY_MAX];

                (void) snprintf(text, sizeof text, "250 %s", config->myhostname);
                if (!smtpd_milter_command(s, NULL, c->type, helo, text))
                        smtpd_session_reply(s, "%s", text);
        }
}

/* Replies to a MAIL or RCPT argument that smtpd_{mail,rcpt}_parse() refused. */
static void reply_path_error(SmtpdSession *s, int r, const SmtpdPath *p, const char *syntax,
                             const char *bad_address) {
        if (r == -EPROTO)
                smtpd_session_reply(s, "501 5.5.4 Syntax: %s", syntax);
        else if (r == -EBADMSG)
                smtpd_session_reply(s, "%s", bad_address);
        else if (r == -EOPNOTSUPP)
                smtpd_session_reply(s, "555 5.5.4 Unsupported option: %s", p->unsupported);
        else
                smtpd_session_reply(s, "501 5.5.4 Syntax error in parameters");
}

/* smtpd_client_message_rate_limit and smtpd_client_recipient_rate_limit, counted per client address over
 * anvil_rate_time_unit as Postfix's anvil does; over the limit, 450 4.7.1 as Postfix answers. */
static bool session_rate_ok(SmtpdSession *s, SmtpdCommandType t) {
        const Config *config = s->conf->config;
        int64_t limit = t == SMTPD_COMMAND_MAIL ? config->smtpd_client_message_rate_limit
                                                : config->smtpd_client_recipient_rate_limit;
        unsigned n;

        if (!s->anvil || limit <= 0 || s->command_resumed)      /* counted on the first run */
                return true;
        n = t == SMTPD_COMMAND_MAIL ? smtpd_anvil_message(s->server->anvil, s->anvil, now_monotonic_usec())
                                    : smtpd_anvil_recipient(s->server->anvil, s->anvil, now_monotonic_usec());
        if (n <= (uint64_t) limit)
                return true;
        log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                 "%s rate limit exceeded: %u from %s[%s] (limit %" PRIi64 " per %" PRIi64 "s)",
                 t == SMTPD_COMMAND_MAIL ? "Message delivery request" : "Recipient address", n, s->peer.name,
                 s->client.text, limit, config->anvil_rate_time_unit);
        if (t == SMTPD_COMMAND_MAIL)
                smtpd_session_reply(s, "450 4.7.1 Error: too much mail from %s", s->client.text);
        else
                smtpd_session_reply(s, "450 4.7.1 Error: too many recipients from %s", s->client.text);
        return false;
}

/* queue_minfree as Postfix has it: MAIL is refused while the queue file system has less free space than
 * queue_minfree or 1.5 x message_size_limit, or too little for 1.5 x the size that the client announced. A
 * file system that cannot be asked is not a reason to refuse: cleanup's write will tell. */
static bool queue_space_ok(SmtpdSession *s, uint64_t size) {
        const Config *config = s->conf->config;
        uint64_t avail, minfree = (uint64_t) config->queue_minfree;
        struct statvfs sv;

        if (statvfs(config->queue_directory, &sv) < 0) {
                log_warning_errno(errno, "Failed to get the free space of %s, ignoring: %m", config->queue_directory);
                return true;
        }
        avail = (uint64_t) sv.f_bavail * (uint64_t) sv.f_frsize;
        if (avail < minfree || avail / 3 * 2 < (uint64_t) config->message_size_limit) {
                log_warning("Not enough free space in the mail queue: %" PRIu64 " bytes, less than queue_minfree (%"
                            PRIu64 ") or 1.5*message_size_limit (%" PRIu64 ")",
                            avail, minfree, (uint64_t) config->message_size_limit / 2 * 3);
                return false;
        }
        if (size > (avail - minfree) / 3 * 2) {
                log_warning("Not enough free space in the mail queue for a message of %" PRIu64 " bytes: %" PRIu64
                            " bytes free, queue_minfree %" PRIu64, size, avail, minfree);
                return false;
        }
        return true;
}

void smtpd_cmd_mail(SmtpdSession *s, const SmtpdCommand *c) {
        SmtpdPath p;
        int r;

        /* Without smtpd_helo_required, as in Postfix, MAIL may come first: s->helo stays NULL, which the
         * restrictions, the log lines and the Received header (the client's name instead) allow for. */
        if (!s->helo && s->conf->config->smtpd_helo_required) {
                smtpd_session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
                return;
        }
        if (s->in_mail) {
                smtpd_session_reply(s, "503 5.5.1 Error: nested MAIL command");
                return;
        }
        /* smtpd_tls_security_level = encrypt (smtpd-tls.c). */
        if (s->listener->tls_level == SMTPD_TLS_ENCRYPT && !s->tls) {
                smtpd_session_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
                return;
        }
        r = smtpd_mail_parse(c->arg, c->arg_len, s->conf->config->strict_rfc821_envelopes, &p);
        if (r < 0) {
                reply_path_error(s, r, &p, "MAIL FROM:<address>", "501 5.1.7 Bad sender address syntax");
                return;
        }
        /* smtputf8_enable = no or the keyword discarded: the extension is not announced, and its parameter is an
         * unknown option. */
        if (p.smtputf8 && (!s->conf->config->smtputf8_enable || discarded(s, SMTPD_EHLO_SMTPUTF8))) {
                smtpd_session_reply(s, "555 5.5.4 Unsupported option: SMTPUTF8");
                return;
        }
        /* DSN discarded (smtpd_discard_ehlo_keywords): its parameters are refused, in Postfix's words. */
        if ((p.dsn_ret || p.dsn_envid[0]) && discarded(s, SMTPD_EHLO_DSN)) {
                smtpd_session_reply(s, "501 5.7.1 DSN support is disabled");
                return;
        }
        /* XVERP, with Postfix's replies: to a client outside smtpd_authorized_verp_clients it is an unknown
         * option; delimiters must be two of verp_delimiter_filter; the null sender cannot have them. */
        if (p.verp) {
                const Config *config = s->conf->config;
                if (!smtpd_networks_match(&s->conf->verp_clients, &s->client)) {
                        smtpd_session_reply(s, "555 5.5.4 Unsupported option: XVERP%s%s", p.verp_given ? "=" : "",
                                            p.verp_delims);
                        return;
                }
                if (p.verp_given && !verp_delimiters_valid(p.verp_delims, config->verp_delimiter_filter)) {
                        smtpd_session_reply(s, "501 5.5.4 Error: XVERP needs two characters from %s",
                                            config->verp_delimiter_filter);
                        return;
                }
                if (!p.address[0]) {
                        smtpd_session_reply(s, "503 5.5.4 Error: XVERP requires non-null sender");
                        return;
                }
        }
        /* RFC 6531 3.4: an address beyond ASCII only in a transaction that declared SMTPUTF8. */
        if (!p.smtputf8 && !ascii_only(p.address, strlen(p.address))) {
                smtpd_session_reject(s, p.address, NULL, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
                return;
        }
        if (p.size > (uint64_t) s->conf->config->message_size_limit) {
                smtpd_session_reject(s, p.address, NULL, "552 5.3.4 Message size exceeds fixed limit");
                return;
        }
        if (!queue_space_ok(s, p.size)) {
                smtpd_session_reject(s, p.address, NULL, "452 4.3.1 Insufficient system storage");
                return;
        }
        /* smtpd_sender_restrictions, here only with smtpd_delay_reject = no (smtpd-restrictions.c). */
        s->mail_size = p.size;
        if (smtpd_session_check(s, smtpd_check_sender, s->helo, p.address, NULL) != 0)
                return;
        if (!session_rate_ok(s, SMTPD_COMMAND_MAIL))
                return;
        memcpy(s->sender, p.address, sizeof s->sender);
        s->smtputf8 = p.smtputf8;
        s->body = p.body_given ? (p.body_8bitmime ? "8BITMIME" : "7BIT") : NULL;
        s->dsn_ret = p.dsn_ret;
        memcpy(s->dsn_envid, p.dsn_envid, sizeof s->dsn_envid);
        if (p.verp) {
                /* Checked above, or the configured default, which cleanup checks again. */
                const char *d = p.verp_given ? p.verp_delims : s->conf->config->default_verp_delimiters;
                size_t n = MIN(strlen(d), sizeof s->verp_delims - 1);
                memcpy(s->verp_delims, d, n);
                s->verp_delims[n] = '\0';
        }
        s->in_mail = true;
        if (!smtpd_milter_command(s, c, SMTPD_COMMAND_MAIL, s->sender, "250 2.1.0 Ok"))
                smtpd_session_reply(s, "250 2.1.0 Ok");
}

int smtpd_session_add_recipient(SmtpdSession *s, const SmtpdPath *p) {
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

void smtpd_cmd_rcpt(SmtpdSession *s, const SmtpdCommand *c) {
        SmtpdPath p;
        int r;

        if (!s->in_mail) {
                smtpd_session_reply(s, "503 5.5.1 Error: need MAIL command");
                return;
        }
        r = smtpd_rcpt_parse(c->arg, c->arg_len, s->conf->config->strict_rfc821_envelopes, &p);
        if (r < 0) {
                reply_path_error(s, r, &p, "RCPT TO:<address>", "501 5.1.3 Bad recipient address syntax");
                return;
        }
        if ((p.dsn_notify || p.dsn_orcpt[0]) && discarded(s, SMTPD_EHLO_DSN)) {
                smtpd_session_reply(s, "501 5.7.1 DSN support is disabled");
                return;
        }
        if (!s->smtputf8 && !ascii_only(p.address, strlen(p.address))) {
                smtpd_session_reject(s, s->sender, p.address,
                                     "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
                return;
        }
        /* A 4xx the client must expect (RFC 5321 4.5.3.1.8), so it is not counted as an error. */
        if (s->n_recipients >= (size_t) s->conf->config->smtpd_recipient_limit) {
                smtpd_session_reply(s, "452 4.5.3 Error: too many recipients");
                return;
        }
        if (!session_rate_ok(s, SMTPD_COMMAND_RCPT))
                return;
        if (!session_check_recipient(s, p.address))
                return;
        if (smtpd_session_add_recipient(s, &p) < 0) {
                smtpd_session_reply(s, "451 4.3.0 Error: out of memory");
                return;
        }
        if (!smtpd_milter_command(s, c, SMTPD_COMMAND_RCPT, s->recipients[s->n_recipients - 1],
                                  "250 2.1.5 Ok"))
                smtpd_session_reply(s, "250 2.1.5 Ok");
}

void smtpd_cmd_rset(SmtpdSession *s, const SmtpdCommand *c) {
        session_junk(s);
        if (c->arg_len > 0) {
                smtpd_session_reply(s, "501 5.5.4 Syntax: RSET");
                return;
        }
        smtpd_session_reset(s);
        smtpd_session_reply(s, "250 2.0.0 Ok");
}

void smtpd_cmd_noop(SmtpdSession *s, const SmtpdCommand *c) {
        session_junk(s);
        smtpd_session_reply(s, "250 2.0.0 Ok");
}

/* VRFY per disable_vrfy_command: when allowed, it tells only what RCPT would (RFC 5321 3.5.3: 252 for an
 * address that would be accepted, without promising delivery). */
void smtpd_cmd_vrfy(SmtpdSession *s, const SmtpdCommand *c) {
        char address[ADDRESS_MAX + 1];

        if (!s->command_resumed)
                session_junk(s);
        if (s->conf->config->disable_vrfy_command) {
                smtpd_session_reply(s, "502 5.5.1 VRFY command is disabled");
                return;
        }
        if (smtpd_vrfy_parse(c->arg, c->arg_len, address) < 0) {
                smtpd_session_reply(s, "501 5.1.3 Syntax: VRFY address");
                return;
        }
        if (!ascii_only(address, strlen(address))) {
                smtpd_session_reject(s, NULL, address, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
                return;
        }
        if (!session_check_recipient(s, address))
                return;
        smtpd_session_reply(s, "252 2.0.0 %s", address);    /* the address as Postfix echoes it, bare */
}

void smtpd_cmd_quit(SmtpdSession *s, const SmtpdCommand *c) {
        smtpd_session_reply(s, "221 2.0.0 Bye");
        s->state = SMTPD_SESSION_CLOSING;
}
