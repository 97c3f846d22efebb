/* smtpd-restriction-checks.c: the smtpd process's restrictions one by one, as a list names them:
 * permit_mynetworks, permit_sasl_authenticated, permit_auth_destination and reject_unauth_destination
 * (relay_domains), reject_plaintext_session, reject_non_fqdn_*,
 * reject_unauth_pipelining, reject_multi_recipient_bounce, reject_*sender_login_mismatch (smtpd_sender_login_maps),
 * the HELO name checks, reject_unlisted_recipient and reject_unlisted_sender (local_recipient_maps,
 * virtual_mailbox_maps, relay_recipient_maps), the DNS blocklists reject_rbl_client and reject_rhsbl_*, and the
 * client name checks reject_unknown_client_hostname and reject_unknown_reverse_client_hostname. */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>

#include "address-map.h"
#include "address.h"
#include "format-util.h"
#include "log.h"
#include "passwd-cache.h"
#include "smtpd-restrictions-internal.h"

static bool address_literal_valid(const char *s) {
        size_t len = strlen(s);
        char buf[INET6_ADDRSTRLEN + 8];
        unsigned char addr[16];

        if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof buf)
                return false;
        memcpy(buf, s + 1, len - 2);
        buf[len - 2] = '\0';
        if (strncasecmp(buf, "IPv6:", 5) == 0)
                return inet_pton(AF_INET6, buf + 5, addr) == 1;
        return inet_pton(AF_INET, buf, addr) == 1;
}

/* Postfix's valid_hostname(): labels of letters, digits and hyphens (not at either end), at most 63
 * octets each and 255 in all, and not all numeric (that is an address, not a name). */
static bool hostname_valid(const char *s) {
        size_t len = strlen(s), label = 0;
        bool non_numeric = false;

        if (len == 0 || len > 255)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!isalnum((unsigned char) c) && c != '-')
                        return false;
                if (c == '-' && label == 0)
                        return false;
                if (!isdigit((unsigned char) c))
                        non_numeric = true;
                if (++label > 63)
                        return false;
        }
        return label > 0 && s[len - 1] != '-' && non_numeric;
}

bool smtpd_helo_valid(const char *helo) {
        return helo[0] == '[' ? address_literal_valid(helo) : hostname_valid(helo);
}

bool smtpd_helo_fqdn(const char *helo) {
        return helo[0] == '[' ? address_literal_valid(helo) : hostname_valid(helo) && strchr(helo, '.');
}

bool smtpd_address_fqdn(const char *address) {
        const char *at = strrchr(address, '@');

        if (!at || !at[1])
                return false;
        return smtpd_helo_fqdn(at + 1);
}

/* Looks one name up as local_recipient_maps says: 1 found, 0 not, negative errno when it cannot be read. */
static int local_name_known(SmtpdChecks *c, const char *user, const char *full) {
        int error = 0, r;

        if (c->local_passwd && user[0] && !strpbrk(user, "\"\\")) {
                if (getpwnam_recent(user))
                        return 1;
                if (!passwd_not_found(errno))
                        error = -errno;
        }
        for (size_t i = 0; i < c->n_local_tables; i++) {
                Table *t = c->local_tables[i];

                r = full ? table_lookup(t, full, NULL) : 0;
                if (r == 0 && user[0])
                        r = full ? table_lookup_partial(t, user, NULL) : table_lookup(t, user, NULL);
                if (r > 0)
                        return 1;
                if (r == -ENOENT && !(table_db_path(t) && access(table_source_path(t), F_OK) >= 0)) {
                        /* Neither text nor database: no such table, empty, as local takes it when it expands
                         * aliases, so that smtpd refuses exactly the recipients local would bounce. Said once. */
                        if (!c->local_warned[i])
                                log_warning("Table %s of local_recipient_maps does not exist; taking it as empty.",
                                            table_name(t));
                        c->local_warned[i] = true;
                        continue;
                }
                if (r == -ENOENT && !c->local_warned[i]) {
                        /* Written but never built: a temporary failure, as in local and in Postfix. */
                        log_warning("Table %s of local_recipient_maps has not been built (%s is missing): run "
                                    "newaliases or postbusctl map build.", table_name(t), table_db_path(t));
                        c->local_warned[i] = true;
                }
                if (r < 0) {
                        log_warning_errno(r, "Failed to look up %s in %s: %m", full ?: user, table_name(t));
                        error = error ?: r;
                }
        }
        return error;
}

/* 1 if a local address is a user or a key of a local_recipient_maps table (the whole address, or its
 * local part), also once its extension is taken off (user+ext, recipient_delimiter, split as local
 * splits it); 0 if not; negative errno if a table cannot be read. */
static int local_recipient_known(SmtpdChecks *c, const char *addr) {
        const char *at = strrchr(addr, '@'), *delims = c->config->recipient_delimiter;
        size_t n = at ? (size_t) (at - addr) : strlen(addr), k;
        _cleanup_free_ char *full = smtpd_strdup_lower(addr, strlen(addr)), *user = smtpd_strdup_lower(addr, n),
                            *base = NULL;
        int r;

        if (!full || !user)
                return -ENOMEM;
        r = local_name_known(c, user, full);
        if (r != 0)
                return r;
        k = isempty(delims) ? n : strcspn(user, delims);
        if (k == 0 || k >= n)
                return 0;
        base = strndup(user, k);
        if (!base)
                return -ENOMEM;
        return local_name_known(c, base, NULL);
}

int smtpd_address_hosted(SmtpdChecks *c, const char *addr) {
        const char *at = strrchr(addr, '@');

        if (!at || virtual_domains_is_empty(&c->virtual_domains) || address_is_local(c->mydestination, addr))
                return 0;
        return virtual_domains_contain(&c->virtual_domains, at + 1);
}

int smtpd_address_relayed(SmtpdChecks *c, const char *addr) {
        const char *at = strrchr(addr, '@');

        if (!at || virtual_domains_is_empty(&c->relay_domains))
                return 0;
        return virtual_domains_contain_parent(&c->relay_domains, at + 1);
}

/* Whether this server takes mail for rcpt's domain from anyone: local (mydestination), hosted
 * (virtual_mailbox_domains) or relayed (relay_domains): 1, 0, or a negative errno. permit_auth_destination
 * and reject_unauth_destination ask it. */
static int auth_destination(SmtpdChecks *c, const char *rcpt) {
        int r;

        if (address_is_local(c->mydestination, rcpt))
                return 1;
        r = smtpd_address_hosted(c, rcpt);
        if (r == 0)
                r = smtpd_address_relayed(c, rcpt);
        return r;
}

const char *smtpd_reply_dsn(unsigned code, const char *detail, char buf[static 16]) {
        (void) snprintf(buf, 16, "%u.%s", code / 100, detail);
        return buf;
}

#define CODE(c, param) ((unsigned) (c)->config->param)

/* How an unlisted address is named in the reply: "Recipient address" and 5.1.1, or "Sender address" and 5.1.0
 * (reject_unlisted_sender), as Postfix. */
static const char *unlisted_class(bool sender) {
        return sender ? "Sender address" : "Recipient address";
}

static const char *unlisted_detail(bool sender) {
        return sender ? "1.0" : "1.1";
}

/* A recipient in a relay domain must be a key of relay_recipient_maps (user+ext@domain, user@domain,
 * @domain), when it is set. */
static SmtpdCheckStatus check_unlisted_relay(SmtpdCheckContext *ctx, const char *rcpt, bool sender) {
        SmtpdChecks *c = ctx->cs->checks;
        _cleanup_free_ char *lower = NULL;
        unsigned code = CODE(c, unknown_relay_recipient_reject_code);
        char dsn[16];
        int r;

        if (virtual_map_is_empty(&c->relay_recipients))
                return SMTPD_CHECK_DUNNO;
        r = smtpd_address_relayed(c, rcpt);
        if (r == 0)
                return SMTPD_CHECK_DUNNO;
        if (r > 0) {
                lower = smtpd_strdup_lower(rcpt, strlen(rcpt));
                r = lower ? virtual_map_lookup_address(&c->relay_recipients, lower, c->config->recipient_delimiter,
                                                       NULL)
                          : -ENOMEM;
        }
        if (r > 0)
                return SMTPD_CHECK_DUNNO;
        if (r < 0) {
                log_warning_errno(r, "Failed to look up a relay recipient (relay_domains = %s, "
                                  "relay_recipient_maps = %s): %m", c->config->relay_domains,
                                  c->config->relay_recipient_maps);
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", rcpt);
        }
        return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: User unknown in relay recipient table", code,
                                        smtpd_reply_dsn(code, unlisted_detail(sender), dsn), rcpt,
                                        unlisted_class(sender));
}

/* A recipient in a hosted domain must be a key of virtual_mailbox_maps, as virtual(8) looks it up (an empty
 * virtual_mailbox_maps checks nothing, as in Postfix). */
static SmtpdCheckStatus check_unlisted_hosted(SmtpdCheckContext *ctx, const char *rcpt, bool sender) {
        SmtpdChecks *c = ctx->cs->checks;
        _cleanup_free_ char *lower = NULL;
        int r;

        r = smtpd_address_hosted(c, rcpt);
        if (r == 0)
                return check_unlisted_relay(ctx, rcpt, sender);
        if ((r > 0 && virtual_map_is_empty(&c->virtual_mailboxes)))
                return SMTPD_CHECK_DUNNO;
        if (r > 0) {
                lower = smtpd_strdup_lower(rcpt, strlen(rcpt));
                r = lower ? virtual_map_lookup_address(&c->virtual_mailboxes, lower, c->config->recipient_delimiter,
                                                       NULL)
                          : -ENOMEM;
        }
        if (r > 0)
                return SMTPD_CHECK_DUNNO;
        if (r < 0) {
                log_warning_errno(r, "Failed to look up a hosted recipient (virtual_mailbox_domains = %s, "
                                  "virtual_mailbox_maps = %s): %m", c->config->virtual_mailbox_domains,
                                  c->config->virtual_mailbox_maps);
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", rcpt);
        }
        unsigned code = CODE(c, unknown_virtual_mailbox_reject_code);
        char dsn[16];
        return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: User unknown in virtual mailbox table", code,
                                        smtpd_reply_dsn(code, unlisted_detail(sender), dsn), rcpt,
                                        unlisted_class(sender));
}

/* Whether cleanup would rewrite addr: a key of canonical_maps, recipient_canonical_maps (sender_canonical_maps
 * for a sender) or virtual_alias_maps, in Postfix's key order. 1, 0, or a negative errno. */
static int address_mapped(SmtpdChecks *c, const char *addr, bool sender) {
        TableList *maps[] = { sender ? c->sender_canonical_maps : c->recipient_canonical_maps, c->canonical_maps,
                              c->virtual_alias_maps };
        int r = 0;

        if (!c->mapped_known)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(maps) && r == 0; i++) {
                _cleanup_free_ char *value = NULL;

                if (table_list_is_empty(maps[i]))
                        continue;
                r = address_map_find(address_map_table_lookup, maps[i], addr, c->mydestination, c->config->myorigin,
                                     c->config->recipient_delimiter, false, &value);
        }
        return r;
}

SmtpdCheckStatus smtpd_restriction_check_unlisted(SmtpdCheckContext *ctx, bool sender) {
        SmtpdChecks *c = ctx->cs->checks;
        const char *rcpt = sender ? ctx->in->sender : ctx->in->recipient;
        int r;

        /* The null sender is nobody's address; no_unknown_recipient_checks knows every recipient. */
        if (!rcpt || (sender && !rcpt[0]) || (!sender && !c->check_recipients))
                return SMTPD_CHECK_DUNNO;
        r = address_mapped(c, rcpt, sender);
        if (r > 0)
                return SMTPD_CHECK_DUNNO;
        if (r < 0) {
                log_warning_errno(r, "Failed to look <%s> up in the canonical and virtual alias maps: %m", rcpt);
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", rcpt);
        }
        if (!address_is_local(c->mydestination, rcpt))
                return check_unlisted_hosted(ctx, rcpt, sender);
        if (!c->local_check)
                return SMTPD_CHECK_DUNNO;
        r = local_recipient_known(c, rcpt);
        if (r > 0)
                return SMTPD_CHECK_DUNNO;
        if (r < 0)
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", rcpt);
        unsigned code = CODE(c, unknown_local_recipient_reject_code);
        char dsn[16];
        return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: User unknown in local recipient table", code,
                                        smtpd_reply_dsn(code, unlisted_detail(sender), dsn), rcpt,
                                        unlisted_class(sender));
}

/* The local part and the domain of an address as rbl reply templates name them: "<>" and "" for the null
 * address, "" for a missing domain. */
static void address_parts(const char *addr, char **ret_name, const char **ret_domain) {
        const char *at = addr ? strrchr(addr, '@') : NULL;

        *ret_name = !addr ? NULL : !addr[0] ? strdup("<>") : strndup(addr, at ? (size_t) (at - addr) : strlen(addr));
        *ret_domain = at ? at + 1 : "";
}

/* The reply to a listed client, from rbl_reply_maps (by the list's domain) or default_rbl_reply, with Postfix's
 * $names; "$rbl_code [d.d.d] text" with 5.7.1 (or 4.7.1) where the template gives no enhanced status code. */
static SmtpdCheckStatus rbl_reply(SmtpdCheckContext *ctx, const SmtpdDnsblLookup *l, const char *class,
                                  const char *what) {
        SmtpdChecks *c = ctx->cs->checks;
        const SmtpdCheckInput *in = ctx->in;
        unsigned code = CODE(c, maps_rbl_reject_code);
        _cleanup_free_ char *found = NULL, *reply = NULL, *sender_name = NULL, *rcpt_name = NULL;
        const char *template = c->config->default_rbl_reply, *sender_domain, *rcpt_domain, *text;
        char code_text[8], dsn[16];
        unsigned reply_code;
        int r, n = 0;

        r = table_list_lookup(c->rbl_reply_maps, l->domain, &found);
        if (r < 0) {
                log_warning_errno(r, "Failed to look up %s in rbl_reply_maps: %m", l->domain);
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", what);
        }
        if (r > 0)
                template = found;
        address_parts(in->sender, &sender_name, &sender_domain);
        address_parts(in->recipient, &rcpt_name, &rcpt_domain);
        (void) snprintf(code_text, sizeof code_text, "%u", code);
        const char *vars[] = {
                "client", ctx->client_name,
                "client_address", in->client->text,
                "client_name", in->peer ? in->peer->name : SMTPD_PEER_UNKNOWN,
                "reverse_client_name", in->peer ? in->peer->reverse_name : SMTPD_PEER_UNKNOWN,
                "helo_name", strempty(in->helo),
                "rbl_class", class,
                "rbl_code", code_text,
                "rbl_domain", l->domain,
                "rbl_reason", l->text,
                "rbl_txt", l->text,
                "rbl_what", what,
                "recipient", in->recipient ? (in->recipient[0] ? in->recipient : "<>") : "",
                "recipient_domain", rcpt_domain,
                "recipient_name", strempty(rcpt_name),
                "sender", in->sender ? (in->sender[0] ? in->sender : "<>") : "",
                "sender_domain", sender_domain,
                "sender_name", strempty(sender_name),
                NULL,
        };
        r = format_expand_vars(template, vars, &reply);
        if (r == -ENOMEM) {
                log_oom();
                return smtpd_restriction_reject(ctx, "451 4.3.0 Error: out of memory");
        }
        if (r >= 0)
                smtpd_reply_censor(reply);      /* HELO name and addresses are the client's */
        /* As Postfix: the template must begin with a 4xx or 5xx code; else it is a configuration error. */
        if (r < 0 || sscanf(reply, "%3u%n", &reply_code, &n) != 1 || n != 3 || reply_code < 400 ||
            reply_code > 599 || (reply[3] != ' ' && reply[3] != '\0')) {
                log_warning("%s for %s: \"%s\" is not a reply template (a 4xx or 5xx code first).",
                            found ? "rbl_reply_maps" : "default_rbl_reply", l->domain, template);
                return smtpd_restriction_reject(ctx, "451 4.3.5 Server configuration error");
        }
        text = reply[3] ? reply + 4 : "";
        /* An enhanced status code of the template's is kept, its class made the code's (as Postfix's
         * smtpd_dsn_fix()); without one, X.7.1. */
        size_t k = smtpd_reply_enhanced_len(reply, strlen(reply));
        if (k > 0) {
                (void) snprintf(dsn, sizeof dsn, "%u%.*s", reply_code / 100, (int) k - 1, text + 1);
                text += k + (text[k] == ' ');
        } else
                (void) smtpd_reply_dsn(reply_code, "7.1", dsn);
        return smtpd_restriction_reject(ctx, "%u %s %s", reply_code, dsn, *text ? text : "Service unavailable");
}

/* A DNS blocklist's answer: listed (with domain=d.d.d.d, by a matching A record); the reply is rbl_reply()'s. */
static bool dnsbl_listed(const SmtpdRestriction *item, const SmtpdDnsblLookup *l) {
        bool match = !item->filter;

        if (l->status != SMTPD_DNSBL_LISTED)
                return false;
        for (unsigned k = 0; k < l->n_addresses && !match; k++)
                match = smtpd_dnsbl_filter_match(item->filter, l->addresses[k]);
        return match;
}

static SmtpdCheckStatus dnsbl_reply(SmtpdCheckContext *ctx, const SmtpdRestriction *item, const SmtpdDnsblLookup *l,
                                    const char *class, const char *what) {
        return dnsbl_listed(item, l) ? rbl_reply(ctx, l, class, what) : SMTPD_CHECK_DUNNO;
}

/* reject_rbl_client: the client's address, whose lookups started at connect (smtpd-restrictions.c). */
static SmtpdCheckStatus check_rbl_client(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        for (size_t i = 0; i < ctx->cs->n_lookups; i++) {
                SmtpdDnsblLookup *l = ctx->cs->lookups + i;

                if (!strcaseeq(l->domain, item->arg))
                        continue;
                SmtpdCheckStatus s = dnsbl_reply(ctx, item, l, "Client host", ctx->in->client->text);
                if (s != SMTPD_CHECK_DUNNO)
                        return s;
        }
        return SMTPD_CHECK_DUNNO;
}

/* permit_dnswl_client (the client's address, looked up at connect) and permit_rhswl_client (its verified name): a
 * listed client is permitted, as in Postfix, unless that would let a recipient past reject_unauth_destination
 * (in the relay and recipient lists, a destination that is not ours): then it is as if not listed. A lookup that
 * failed is Postfix's defer_if_reject. */
static SmtpdCheckStatus check_allowlist(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        SmtpdCheckSession *cs = ctx->cs;
        const SmtpdCheckInput *in = ctx->in;
        SmtpdDnsblLookup *l = NULL;
        const char *what;

        if (item->type == SMTPD_RESTRICTION_PERMIT_DNSWL_CLIENT) {
                what = in->client->text;
                for (size_t i = 0; i < cs->n_lookups && !l; i++)
                        if (strcaseeq(cs->lookups[i].domain, item->arg))
                                l = cs->lookups + i;
                if (!l)         /* not an address a list can hold */
                        return SMTPD_CHECK_DUNNO;
        } else {
                if (!in->peer || in->peer->name_status != SMTPD_PEER_OK || !cs->checks->resolver)
                        return SMTPD_CHECK_DUNNO;
                what = in->peer->name;
                l = smtpd_rhsbl_lookup_get(cs, what, item->arg);
                if (!l) {
                        log_oom();
                        return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", what);
                }
                if (l->status == SMTPD_DNSBL_PENDING)
                        return SMTPD_CHECK_WAIT;
        }
        if (l->status == SMTPD_DNSBL_FAILED) {
                if (!ctx->defer_if_reject.active) {
                        ctx->defer_if_reject.active = true;
                        (void) snprintf(ctx->defer_if_reject.reply, sizeof ctx->defer_if_reject.reply - 2,
                                        "450 4.7.1 <%s>: Client host rejected: Service unavailable", what);
                }
                return SMTPD_CHECK_DUNNO;
        }
        if (!dnsbl_listed(item, l))
                return SMTPD_CHECK_DUNNO;
        if ((ctx->cls == SMTPD_RESTRICTION_RELAY || ctx->cls == SMTPD_RESTRICTION_RECIPIENT) && in->recipient &&
            auth_destination(cs->checks, in->recipient) <= 0)
                return SMTPD_CHECK_DUNNO;
        return SMTPD_CHECK_OK;
}

/* reject_rhsbl_*: what Postfix asks a right-hand side list about, and how its reply names it: the client's
 * (verified) name, its PTR name ("Unverified Client host"), the HELO name, the sender's or recipient's domain
 * (the reply names the whole address). Nothing when it is unknown. */
static SmtpdCheckStatus check_rhsbl(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        const SmtpdCheckInput *in = ctx->in;
        const char *what = NULL, *class;
        SmtpdDnsblLookup *l;

        switch (item->type) {
        case SMTPD_RESTRICTION_REJECT_RHSBL_CLIENT:
                if (in->peer && in->peer->name_status == SMTPD_PEER_OK)
                        what = in->peer->name;
                class = "Client host";
                break;
        case SMTPD_RESTRICTION_REJECT_RHSBL_REVERSE_CLIENT:
                if (in->peer && !streq(in->peer->reverse_name, SMTPD_PEER_UNKNOWN))
                        what = in->peer->reverse_name;
                class = "Unverified Client host";
                break;
        case SMTPD_RESTRICTION_REJECT_RHSBL_HELO:
                what = in->helo;
                class = "Helo command";
                break;
        case SMTPD_RESTRICTION_REJECT_RHSBL_SENDER:
                what = in->sender && in->sender[0] ? in->sender : NULL;
                class = "Sender address";
                break;
        default:
                what = in->recipient;
                class = "Recipient address";
                break;
        }
        /* An address without a domain has nothing to look up (as Postfix): no query the client chose. */
        bool address = item->type == SMTPD_RESTRICTION_REJECT_RHSBL_SENDER ||
                       item->type == SMTPD_RESTRICTION_REJECT_RHSBL_RECIPIENT;
        if (!what || (address && !strrchr(what, '@')) || !ctx->cs->checks->resolver)
                return SMTPD_CHECK_DUNNO;
        l = smtpd_rhsbl_lookup_get(ctx->cs, what, item->arg);
        if (!l) {
                log_oom();
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", what);
        }
        if (l->status == SMTPD_DNSBL_PENDING)
                return SMTPD_CHECK_WAIT;
        return dnsbl_reply(ctx, item, l, class, what);
}

/* The owners of a sender address in smtpd_sender_login_maps, searched as Postfix searches them: the address,
 * the address without its extension, the local part alone (with and without extension) when the domain is
 * local, then @domain. 1 and the value, 0 when no key is there, or a negative errno. */
static int sender_owners(SmtpdChecks *c, const char *sender, char **ret_value) {
        const char *delims = c->config->recipient_delimiter, *at = strrchr(sender, '@');
        _cleanup_free_ char *full = smtpd_strdup_lower(sender, strlen(sender)), *base = NULL, *user = NULL,
                            *user_base = NULL, *domain = NULL;
        size_t n = at ? (size_t) (at - sender) : strlen(sender), k;
        const char *keys[5];
        size_t n_keys = 0;
        int r;

        if (!full)
                return -ENOMEM;
        keys[n_keys++] = full;
        k = isempty(delims) ? n : strcspn(full, delims);
        if (k > 0 && k < n) {
                if (asprintf(&base, "%.*s%s", (int) k, full, full + n) < 0) {
                        base = NULL;
                        return -ENOMEM;
                }
                keys[n_keys++] = base;
        }
        if (at && address_is_local(c->mydestination, sender)) {
                user = strndup(full, n);
                if (!user)
                        return -ENOMEM;
                keys[n_keys++] = user;
                if (k > 0 && k < n) {
                        user_base = strndup(full, k);
                        if (!user_base)
                                return -ENOMEM;
                        keys[n_keys++] = user_base;
                }
        }
        if (at) {
                domain = strdup(full + n);
                if (!domain)
                        return -ENOMEM;
                keys[n_keys++] = domain;
        }
        for (size_t i = 0; i < n_keys; i++) {
                r = virtual_map_lookup(&c->sender_logins, keys[i], ret_value);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* Whether name is one of owners (a list separated by commas and white space), case-insensitively. */
static bool owner_listed(const char *owners, const char *name) {
        size_t len = strlen(name);

        for (const char *p = owners; *p;) {
                size_t w;

                p += strspn(p, ", \t");
                w = strcspn(p, ", \t");
                if (w == len && strncasecmp(p, name, len) == 0)
                        return true;
                p += w;
        }
        return false;
}

/* reject_*sender_login_mismatch, as Postfix: an authenticated client whose login name does not own the sender
 * address (with reject_known_..., only an address that has owners), and a client not authenticated that
 * sends as an address that has owners ("553 5.7.1 <addr>: Sender address rejected: not owned by user NAME",
 * "... not logged in"). The null sender is never checked. */
static SmtpdCheckStatus check_sender_login(SmtpdCheckContext *ctx, SmtpdRestrictionType t) {
        SmtpdChecks *c = ctx->cs->checks;
        const SmtpdCheckInput *in = ctx->in;
        const char *sender = in->sender, *login = in->authenticated ? in->sasl_username : NULL;
        _cleanup_free_ char *owners = NULL;
        bool auth_check = t != SMTPD_RESTRICTION_REJECT_UNAUTHENTICATED_SENDER_LOGIN_MISMATCH,
             unauth_check = t != SMTPD_RESTRICTION_REJECT_AUTHENTICATED_SENDER_LOGIN_MISMATCH;
        int r;

        if (!sender || !sender[0] || virtual_map_is_empty(&c->sender_logins))
                return SMTPD_CHECK_DUNNO;
        if (login ? !auth_check : !unauth_check)
                return SMTPD_CHECK_DUNNO;
        r = sender_owners(c, sender, &owners);
        if (r < 0) {
                log_warning_errno(r, "Failed to look up the owners of %s in smtpd_sender_login_maps (%s): %m", sender,
                                  c->config->smtpd_sender_login_maps);
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", sender);
        }
        if (!login)
                return r > 0 ? smtpd_restriction_reject(ctx, "553 5.7.1 <%s>: Sender address rejected: not logged in",
                                                        sender)
                             : SMTPD_CHECK_DUNNO;
        if (r == 0 && t == SMTPD_RESTRICTION_REJECT_KNOWN_SENDER_LOGIN_MISMATCH)
                return SMTPD_CHECK_DUNNO;
        if (r > 0 && owner_listed(owners, login))
                return SMTPD_CHECK_DUNNO;
        return smtpd_restriction_reject(ctx, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s", sender,
                                        login);
}

/* reject_unknown_client_hostname and reject_unknown_reverse_client_hostname: 450 when DNS failed
 * temporarily, unknown_client_reject_code otherwise (RFC 7372's 4.7.25, its class following the code). */
static SmtpdCheckStatus check_unknown_client(SmtpdCheckContext *ctx, bool reverse) {
        const SmtpdPeerName *p = ctx->in->peer;
        SmtpdPeerStatus st = p ? (reverse ? p->reverse_status : p->name_status) : SMTPD_PEER_PERM;
        unsigned code = 450;

        if (st == SMTPD_PEER_OK)
                return SMTPD_CHECK_DUNNO;
        if (st != SMTPD_PEER_TEMP)
                code = (unsigned) ctx->cs->checks->config->unknown_client_reject_code;
        return smtpd_restriction_reject(ctx, "%u %u.7.25 Client host rejected: cannot find your %shostname, [%s]", code,
                                        code / 100, reverse ? "reverse " : "", ctx->in->client->text);
}

SmtpdCheckStatus smtpd_restriction_check(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        SmtpdChecks *c = ctx->cs->checks;
        const SmtpdCheckInput *in = ctx->in;
        const char *name, *class;
        unsigned code;
        char dsn[16];
        int r;

        smtpd_restriction_subject(ctx, ctx->cls, &name, &class);
        switch (item->type) {
        case SMTPD_RESTRICTION_PERMIT:
                return SMTPD_CHECK_OK;
        case SMTPD_RESTRICTION_REJECT:
                code = CODE(c, reject_code);
                return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: Access denied", code,
                                                smtpd_reply_dsn(code, "7.1", dsn), name, class);
        case SMTPD_RESTRICTION_DEFER:
                code = CODE(c, defer_code);
                return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: Try again later", code,
                                                smtpd_reply_dsn(code, "3.2", dsn), name, class);
        case SMTPD_RESTRICTION_PERMIT_MYNETWORKS:
                return smtpd_networks_match(c->mynetworks, in->client) ? SMTPD_CHECK_OK : SMTPD_CHECK_DUNNO;
        case SMTPD_RESTRICTION_PERMIT_SASL_AUTHENTICATED:
                return in->authenticated ? SMTPD_CHECK_OK : SMTPD_CHECK_DUNNO;
        case SMTPD_RESTRICTION_PERMIT_AUTH_DESTINATION:
                if (!in->recipient)
                        return SMTPD_CHECK_DUNNO;
                r = auth_destination(c, in->recipient);
                if (r < 0)
                        return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure",
                                                        in->recipient);
                return r > 0 ? SMTPD_CHECK_OK : SMTPD_CHECK_DUNNO;
        case SMTPD_RESTRICTION_REJECT_UNAUTH_DESTINATION:
        case SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION:
                if (!in->recipient)
                        return SMTPD_CHECK_DUNNO;
                r = auth_destination(c, in->recipient);
                if (r > 0)
                        return SMTPD_CHECK_DUNNO;
                if (r < 0)
                        return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure",
                                                        in->recipient);
                code = CODE(c, relay_domains_reject_code);
                /* As Postfix: defer_unauth_destination answers relay_domains_reject_code less 100 (454 by
                 * default, 450 with 550), the same words as a temporary failure. */
                if (item->type == SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION && code >= 500)
                        code -= 100;
                return smtpd_restriction_reject(ctx, "%u %s <%s>: Relay access denied", code,
                                                smtpd_reply_dsn(code, "7.1", dsn), in->recipient);
        case SMTPD_RESTRICTION_REJECT_UNLISTED_RECIPIENT:
                return smtpd_restriction_check_unlisted(ctx, false);
        case SMTPD_RESTRICTION_REJECT_UNLISTED_SENDER:
                return smtpd_restriction_check_unlisted(ctx, true);
        case SMTPD_RESTRICTION_WARN_IF_REJECT:
        case SMTPD_RESTRICTION_DEFER_IF_PERMIT:
        case SMTPD_RESTRICTION_DEFER_IF_REJECT:
        case SMTPD_RESTRICTION_CLASS_NAME:
                return smtpd_restriction_check_items(ctx, item, 1);    /* smtpd-restrictions.c */
        case SMTPD_RESTRICTION_REJECT_NON_FQDN_SENDER:
                if (isempty(in->sender) || smtpd_address_fqdn(in->sender))
                        return SMTPD_CHECK_DUNNO;
                code = CODE(c, non_fqdn_reject_code);
                return smtpd_restriction_reject(ctx, "%u %s <%s>: Sender address rejected: need fully-qualified address",
                                                code, smtpd_reply_dsn(code, "5.2", dsn), in->sender);
        case SMTPD_RESTRICTION_REJECT_NON_FQDN_RECIPIENT:
                if (!in->recipient || smtpd_address_fqdn(in->recipient))
                        return SMTPD_CHECK_DUNNO;
                code = CODE(c, non_fqdn_reject_code);
                return smtpd_restriction_reject(ctx, "%u %s <%s>: Recipient address rejected: need fully-qualified address",
                                                code, smtpd_reply_dsn(code, "5.2", dsn), in->recipient);
        case SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME:
                if (!in->helo || smtpd_helo_fqdn(in->helo))
                        return SMTPD_CHECK_DUNNO;
                code = CODE(c, non_fqdn_reject_code);
                return smtpd_restriction_reject(ctx, "%u %s <%s>: Helo command rejected: need fully-qualified "
                                                "hostname", code, smtpd_reply_dsn(code, "5.2", dsn), in->helo);
        case SMTPD_RESTRICTION_REJECT_INVALID_HELO_HOSTNAME:
                if (!in->helo || smtpd_helo_valid(in->helo))
                        return SMTPD_CHECK_DUNNO;
                code = CODE(c, invalid_hostname_reject_code);
                return smtpd_restriction_reject(ctx, "%u %s <%s>: Helo command rejected: Invalid name", code,
                                                smtpd_reply_dsn(code, "5.2", dsn), in->helo);
        case SMTPD_RESTRICTION_REJECT_UNKNOWN_CLIENT_HOSTNAME:
                return check_unknown_client(ctx, false);
        case SMTPD_RESTRICTION_REJECT_UNKNOWN_REVERSE_CLIENT_HOSTNAME:
                return check_unknown_client(ctx, true);
        case SMTPD_RESTRICTION_REJECT_UNKNOWN_SENDER_DOMAIN:
                return smtpd_restriction_check_unknown_domain(ctx, true);       /* smtpd-domain-check.c */
        case SMTPD_RESTRICTION_REJECT_UNKNOWN_RECIPIENT_DOMAIN:
                return smtpd_restriction_check_unknown_domain(ctx, false);
        case SMTPD_RESTRICTION_REJECT_UNKNOWN_HELO_HOSTNAME:
                return smtpd_restriction_check_unknown_helo(ctx);  /* smtpd-domain-check.c */
        case SMTPD_RESTRICTION_REJECT_UNAUTH_PIPELINING:
                /* Postfix's fixed reply: a protocol error, not a policy code. */
                if (!in->ill_pipelining)
                        return SMTPD_CHECK_DUNNO;
                return smtpd_restriction_reject(ctx, "503 5.5.0 <%s>: %s rejected: Improper use of SMTP command "
                                                "pipelining", name, class);
        case SMTPD_RESTRICTION_REJECT_PLAINTEXT_SESSION:
                if (in->tls_protocol)
                        return SMTPD_CHECK_DUNNO;
                code = CODE(c, plaintext_reject_code);
                return smtpd_restriction_reject(ctx, "%u %s Session encryption is required", code,
                                                smtpd_reply_dsn(code, "7.1", dsn));
        case SMTPD_RESTRICTION_REJECT_MULTI_RECIPIENT_BOUNCE:
                /* At RCPT the recipients accepted so far and this one; later, those of the message. */
                if (!in->sender || in->sender[0] ||
                    in->recipient_count <= (streq(ctx->protocol_state, "RCPT") ? 0U : 1U))
                        return SMTPD_CHECK_DUNNO;
                code = CODE(c, multi_recipient_bounce_reject_code);
                return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: Multi-recipient bounce", code,
                                                smtpd_reply_dsn(code, "5.3", dsn), name, class);
        case SMTPD_RESTRICTION_REJECT_SENDER_LOGIN_MISMATCH:
        case SMTPD_RESTRICTION_REJECT_AUTHENTICATED_SENDER_LOGIN_MISMATCH:
        case SMTPD_RESTRICTION_REJECT_KNOWN_SENDER_LOGIN_MISMATCH:
        case SMTPD_RESTRICTION_REJECT_UNAUTHENTICATED_SENDER_LOGIN_MISMATCH:
                return check_sender_login(ctx, item->type);
        case SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS:
        case SMTPD_RESTRICTION_CHECK_HELO_ACCESS:
        case SMTPD_RESTRICTION_CHECK_SENDER_ACCESS:
        case SMTPD_RESTRICTION_CHECK_RECIPIENT_ACCESS:
        case SMTPD_RESTRICTION_CHECK_REVERSE_CLIENT_HOSTNAME_ACCESS:
                return smtpd_restriction_check_access(ctx, item);      /* smtpd-access.c */
        case SMTPD_RESTRICTION_REJECT_RBL_CLIENT:
                return check_rbl_client(ctx, item);
        case SMTPD_RESTRICTION_REJECT_RHSBL_CLIENT:
        case SMTPD_RESTRICTION_REJECT_RHSBL_REVERSE_CLIENT:
        case SMTPD_RESTRICTION_REJECT_RHSBL_SENDER:
        case SMTPD_RESTRICTION_REJECT_RHSBL_HELO:
        case SMTPD_RESTRICTION_REJECT_RHSBL_RECIPIENT:
                return check_rhsbl(ctx, item);
        case SMTPD_RESTRICTION_PERMIT_DNSWL_CLIENT:
        case SMTPD_RESTRICTION_PERMIT_RHSWL_CLIENT:
                return check_allowlist(ctx, item);
        case SMTPD_RESTRICTION_CHECK_POLICY_SERVICE:
                return smtpd_restriction_check_policy(ctx, item);     /* smtpd-policy-check.c */
        case SMTPD_RESTRICTION_SLEEP:
                return smtpd_restriction_check_sleep(ctx, item);      /* smtpd-restrictions.c */
        default:
                assert(false);
                return SMTPD_CHECK_DUNNO;
        }
}
