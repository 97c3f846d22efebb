/* smtpd-restrictions.c: the restriction engine of the smtpd process: Postfix's restriction lists parsed from
 * main.cf, the tables they name opened, each session's DNS blocklist lookups started at connect, and the
 * lists evaluated as Postfix's smtpd evaluates them.
 *
 * At RCPT (with smtpd_delay_reject = yes, the default) the client, HELO and sender lists run first, then
 * the relay list, then the recipient list; in each, the first restriction that decides ends that list: a
 * rejection ends everything, a permission moves on to the next list. Afterwards, unless rejected, the
 * recipient of a local domain must be known (smtpd_reject_unlisted_recipient, local_recipient_maps).
 * Reply codes are Postfix's parameters (access_map_reject_code, access_map_defer_code,
 * relay_domains_reject_code, unknown_local_recipient_reject_code, non_fqdn_reject_code, ...), a 4xx code
 * making the enhanced status code 4.x.x. A name of smtpd_restriction_classes stands for its own list;
 * warn_if_reject, defer_if_permit and defer_if_reject change what a later refusal does, with Postfix's
 * bookkeeping across the stages (stage_begin()). A DNS blocklist that cannot be reached
 * lists nobody, as in Postfix: the mail is not held up by a third party's outage. The restrictions
 * themselves are in smtpd-restriction-checks.c, the access(5) maps in smtpd-access.c. */
#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "daemon.h"
#include "log.h"
#include "receive-override.h"
#include "smtpd-restrictions-internal.h"

static const char *const restriction_names[_SMTPD_RESTRICTION_TYPE_MAX] = {
        [SMTPD_RESTRICTION_PERMIT] = "permit",
        [SMTPD_RESTRICTION_REJECT] = "reject",
        [SMTPD_RESTRICTION_DEFER] = "defer",
        [SMTPD_RESTRICTION_PERMIT_MYNETWORKS] = "permit_mynetworks",
        [SMTPD_RESTRICTION_PERMIT_SASL_AUTHENTICATED] = "permit_sasl_authenticated",
        [SMTPD_RESTRICTION_PERMIT_AUTH_DESTINATION] = "permit_auth_destination",
        [SMTPD_RESTRICTION_REJECT_UNAUTH_DESTINATION] = "reject_unauth_destination",
        [SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION] = "defer_unauth_destination",
        [SMTPD_RESTRICTION_REJECT_UNLISTED_RECIPIENT] = "reject_unlisted_recipient",
        [SMTPD_RESTRICTION_REJECT_NON_FQDN_SENDER] = "reject_non_fqdn_sender",
        [SMTPD_RESTRICTION_REJECT_NON_FQDN_RECIPIENT] = "reject_non_fqdn_recipient",
        [SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME] = "reject_non_fqdn_helo_hostname",
        [SMTPD_RESTRICTION_REJECT_INVALID_HELO_HOSTNAME] = "reject_invalid_helo_hostname",
        [SMTPD_RESTRICTION_REJECT_UNKNOWN_CLIENT_HOSTNAME] = "reject_unknown_client_hostname",
        [SMTPD_RESTRICTION_REJECT_UNKNOWN_REVERSE_CLIENT_HOSTNAME] = "reject_unknown_reverse_client_hostname",
        [SMTPD_RESTRICTION_REJECT_UNKNOWN_SENDER_DOMAIN] = "reject_unknown_sender_domain",
        [SMTPD_RESTRICTION_REJECT_UNKNOWN_RECIPIENT_DOMAIN] = "reject_unknown_recipient_domain",
        [SMTPD_RESTRICTION_REJECT_UNKNOWN_HELO_HOSTNAME] = "reject_unknown_helo_hostname",
        [SMTPD_RESTRICTION_REJECT_UNAUTH_PIPELINING] = "reject_unauth_pipelining",
        [SMTPD_RESTRICTION_REJECT_MULTI_RECIPIENT_BOUNCE] = "reject_multi_recipient_bounce",
        [SMTPD_RESTRICTION_REJECT_PLAINTEXT_SESSION] = "reject_plaintext_session",
        [SMTPD_RESTRICTION_REJECT_SENDER_LOGIN_MISMATCH] = "reject_sender_login_mismatch",
        [SMTPD_RESTRICTION_REJECT_AUTHENTICATED_SENDER_LOGIN_MISMATCH] = "reject_authenticated_sender_login_mismatch",
        [SMTPD_RESTRICTION_REJECT_KNOWN_SENDER_LOGIN_MISMATCH] = "reject_known_sender_login_mismatch",
        [SMTPD_RESTRICTION_REJECT_UNAUTHENTICATED_SENDER_LOGIN_MISMATCH] =
                "reject_unauthenticated_sender_login_mismatch",
        [SMTPD_RESTRICTION_REJECT_UNLISTED_SENDER] = "reject_unlisted_sender",
        [SMTPD_RESTRICTION_WARN_IF_REJECT] = "warn_if_reject",
        [SMTPD_RESTRICTION_DEFER_IF_PERMIT] = "defer_if_permit",
        [SMTPD_RESTRICTION_DEFER_IF_REJECT] = "defer_if_reject",
        [SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS] = "check_client_access",
        [SMTPD_RESTRICTION_CHECK_HELO_ACCESS] = "check_helo_access",
        [SMTPD_RESTRICTION_CHECK_SENDER_ACCESS] = "check_sender_access",
        [SMTPD_RESTRICTION_CHECK_RECIPIENT_ACCESS] = "check_recipient_access",
        [SMTPD_RESTRICTION_CHECK_REVERSE_CLIENT_HOSTNAME_ACCESS] = "check_reverse_client_hostname_access",
        [SMTPD_RESTRICTION_REJECT_RBL_CLIENT] = "reject_rbl_client",
        [SMTPD_RESTRICTION_REJECT_RHSBL_CLIENT] = "reject_rhsbl_client",
        [SMTPD_RESTRICTION_REJECT_RHSBL_REVERSE_CLIENT] = "reject_rhsbl_reverse_client",
        [SMTPD_RESTRICTION_REJECT_RHSBL_SENDER] = "reject_rhsbl_sender",
        [SMTPD_RESTRICTION_REJECT_RHSBL_HELO] = "reject_rhsbl_helo",
        [SMTPD_RESTRICTION_REJECT_RHSBL_RECIPIENT] = "reject_rhsbl_recipient",
        [SMTPD_RESTRICTION_PERMIT_DNSWL_CLIENT] = "permit_dnswl_client",
        [SMTPD_RESTRICTION_PERMIT_RHSWL_CLIENT] = "permit_rhswl_client",
        [SMTPD_RESTRICTION_CHECK_POLICY_SERVICE] = "check_policy_service",
        [SMTPD_RESTRICTION_SLEEP] = "sleep",
};

const char *smtpd_restriction_type_to_string(SmtpdRestrictionType t) {
        return t >= 0 && t < _SMTPD_RESTRICTION_TYPE_MAX ? restriction_names[t] : NULL;
}

SmtpdRestrictionType smtpd_restriction_type_from_string(const char *s) {
        for (size_t i = 0; i < _SMTPD_RESTRICTION_TYPE_MAX; i++)
                if (restriction_names[i] && strcaseeq(restriction_names[i], s))
                        return (SmtpdRestrictionType) i;
        /* Postfix's older names, still common in main.cf files. */
        if (strcaseeq(s, "reject_non_fqdn_hostname"))
                return SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME;
        if (strcaseeq(s, "reject_invalid_hostname"))
                return SMTPD_RESTRICTION_REJECT_INVALID_HELO_HOSTNAME;
        if (strcaseeq(s, "reject_unknown_client"))
                return SMTPD_RESTRICTION_REJECT_UNKNOWN_CLIENT_HOSTNAME;
        if (strcaseeq(s, "reject_unknown_hostname"))
                return SMTPD_RESTRICTION_REJECT_UNKNOWN_HELO_HOSTNAME;
        return _SMTPD_RESTRICTION_TYPE_INVALID;
}

bool smtpd_restriction_type_has_arg(SmtpdRestrictionType t) {
        return t >= SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS && t <= SMTPD_RESTRICTION_SLEEP;
}

bool smtpd_restriction_type_is_dnsbl(SmtpdRestrictionType t) {
        return t >= SMTPD_RESTRICTION_REJECT_RBL_CLIENT && t <= SMTPD_RESTRICTION_PERMIT_RHSWL_CLIENT;
}

void smtpd_restriction_list_done(SmtpdRestrictionList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].arg);
                table_free(l->items[i].table);
                free(l->items[i].filter);
                free(l->items[i].endpoint);
        }
        l->items = mfree(l->items);
        l->n = 0;
}

/* The index of name among the restriction classes, or -ENOENT. */
static ssize_t class_find(char *const *classes, const char *name) {
        for (size_t i = 0; classes && classes[i]; i++)
                if (strcaseeq(classes[i], name))
                        return (ssize_t) i;
        return -ENOENT;
}

int smtpd_restriction_list_parse(const char *value, const char *param, const char *where, char *const *classes,
                                 SmtpdRestrictionList *ret) {
        _cleanup_strv_free_ char **words = NULL;
        SmtpdRestrictionList l = {};
        size_t n_words = 0;
        int r;

        r = config_split_list(value, &words);
        if (r < 0)
                return r;
        while (words[n_words])
                n_words++;
        if (n_words > 0) {
                l.items = calloc(n_words, sizeof(SmtpdRestriction));
                if (!l.items)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n_words; i++) {
                SmtpdRestrictionType t = smtpd_restriction_type_from_string(words[i]);
                SmtpdRestriction *item = l.items + l.n;
                ssize_t k = t < 0 ? class_find(classes, words[i]) : -ENOENT;

                if (k >= 0) {
                        item->type = SMTPD_RESTRICTION_CLASS_NAME;
                        item->class_index = (size_t) k;
                        item->arg = strdup(classes[k]);
                        l.n++;
                        if (!item->arg) {
                                smtpd_restriction_list_done(&l);
                                return -ENOMEM;
                        }
                        continue;
                }
                if (t < 0) {
                        log_error("%s: %s: unknown restriction \"%s\"", where, param, words[i]);
                        smtpd_restriction_list_done(&l);
                        return -EINVAL;
                }
                item->type = t;
                l.n++;          /* from here on, smtpd_restriction_list_done() frees what it holds */
                if (smtpd_restriction_type_has_arg(t)) {
                        if (!words[i + 1] || smtpd_restriction_type_from_string(words[i + 1]) >= 0) {
                                log_error("%s: %s: %s needs %s", where, param, words[i],
                                          smtpd_restriction_type_is_dnsbl(t)            ? "a DNS domain"
                                          : t == SMTPD_RESTRICTION_CHECK_POLICY_SERVICE ? "a policy service"
                                          : t == SMTPD_RESTRICTION_SLEEP                ? "a number of seconds"
                                                                                        : "a table");
                                smtpd_restriction_list_done(&l);
                                return -EINVAL;
                        }
                        item->arg = strdup(words[++i]);
                        if (!item->arg) {
                                smtpd_restriction_list_done(&l);
                                return -ENOMEM;
                        }
                        char *eq = smtpd_restriction_type_is_dnsbl(t) ? strchr(item->arg, '=') : NULL;
                        if (eq) {
                                *eq = '\0';
                                item->filter = malloc(sizeof(SmtpdDnsblFilter));
                                if (!item->filter) {
                                        smtpd_restriction_list_done(&l);
                                        return -ENOMEM;
                                }
                                if (item->arg[0] == '\0' || smtpd_dnsbl_filter_parse(eq + 1, item->filter) < 0) {
                                        log_error("%s: %s: %s %s=%s: expected domain=d.d.d.d, each d a number or "
                                                  "[n;n..m]", where, param, words[i - 1], item->arg, eq + 1);
                                        smtpd_restriction_list_done(&l);
                                        return -EINVAL;
                                }
                        }
                }
        }
        *ret = l;
        return 0;
}

bool smtpd_restriction_list_has(const SmtpdRestrictionList *l, SmtpdRestrictionType t) {
        for (size_t i = 0; i < l->n; i++)
                /* One right after warn_if_reject only logs its refusal: it does not count. */
                if (l->items[i].type == t && !(i > 0 && l->items[i - 1].type == SMTPD_RESTRICTION_WARN_IF_REJECT))
                        return true;
        return false;
}

/* The server: the lists and their tables, built at start. */

static const ConfigParamId list_params[_SMTPD_RESTRICTION_CLASS_MAX] = {
        [SMTPD_RESTRICTION_CLIENT] = CONFIG_PARAM_smtpd_client_restrictions,
        [SMTPD_RESTRICTION_HELO] = CONFIG_PARAM_smtpd_helo_restrictions,
        [SMTPD_RESTRICTION_SENDER] = CONFIG_PARAM_smtpd_sender_restrictions,
        [SMTPD_RESTRICTION_RELAY] = CONFIG_PARAM_smtpd_relay_restrictions,
        [SMTPD_RESTRICTION_RECIPIENT] = CONFIG_PARAM_smtpd_recipient_restrictions,
        [SMTPD_RESTRICTION_DATA] = CONFIG_PARAM_smtpd_data_restrictions,
        [SMTPD_RESTRICTION_END_OF_DATA] = CONFIG_PARAM_smtpd_end_of_data_restrictions,
};

static const char *list_value(const Config *config, SmtpdRestrictionClass cls) {
        switch (cls) {
        case SMTPD_RESTRICTION_CLIENT:
                return config->smtpd_client_restrictions;
        case SMTPD_RESTRICTION_HELO:
                return config->smtpd_helo_restrictions;
        case SMTPD_RESTRICTION_SENDER:
                return config->smtpd_sender_restrictions;
        case SMTPD_RESTRICTION_RELAY:
                return config->smtpd_relay_restrictions;
        case SMTPD_RESTRICTION_RECIPIENT:
                return config->smtpd_recipient_restrictions;
        case SMTPD_RESTRICTION_DATA:
                return config->smtpd_data_restrictions;
        case SMTPD_RESTRICTION_END_OF_DATA:
                return config->smtpd_end_of_data_restrictions;
        default:
                assert(false);
                return NULL;
        }
}

SmtpdChecks *smtpd_checks_free(SmtpdChecks *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < _SMTPD_RESTRICTION_CLASS_MAX; i++)
                smtpd_restriction_list_done(&c->lists[i]);
        for (size_t i = 0; i < c->n_classes; i++)
                smtpd_restriction_list_done(&c->classes[i]);
        free(c->classes);
        strv_free(c->class_names);
        for (size_t i = 0; i < c->n_local_tables; i++)
                table_free(c->local_tables[i]);
        free(c->local_tables);
        free(c->local_warned);
        virtual_domains_done(&c->virtual_domains);
        virtual_map_done(&c->virtual_mailboxes);
        virtual_domains_done(&c->relay_domains);
        virtual_map_done(&c->relay_recipients);
        virtual_map_done(&c->sender_logins);
        table_list_free(c->canonical_maps);
        table_list_free(c->recipient_canonical_maps);
        table_list_free(c->sender_canonical_maps);
        table_list_free(c->virtual_alias_maps);
        strv_free(c->dnsbl_domains);
        table_list_free(c->rbl_reply_maps);
        free(c);
        return NULL;
}

static int dnsbl_domain_add(SmtpdChecks *c, const char *domain) {
        size_t n = 0;
        char **l;

        for (; c->dnsbl_domains && c->dnsbl_domains[n]; n++)
                if (strcaseeq(c->dnsbl_domains[n], domain))
                        return 0;
        l = realloc(c->dnsbl_domains, (n + 2) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        c->dnsbl_domains = l;
        l[n] = strdup(domain);
        l[n + 1] = NULL;
        return l[n] ? 0 : -ENOMEM;
}

static int local_maps_open(SmtpdChecks *c, const char *where) {
        _cleanup_strv_free_ char **specs = NULL;
        int r;

        r = config_split_list(c->config->local_recipient_maps, &specs);
        if (r < 0)
                return log_oom();
        c->local_check = specs[0] != NULL;
        for (char **s = specs; *s; s++) {
                Table *t, **l;

                if (strcaseeq(*s, "unix:passwd.byname") || strcaseeq(*s, "proxy:unix:passwd.byname")) {
                        c->local_passwd = true;
                        continue;
                }
                r = table_open(*s, &t);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        log_error("%s: local_recipient_maps: cannot use table \"%s\"", where, *s);
                        return -EINVAL;
                }
                l = realloc(c->local_tables, (c->n_local_tables + 1) * sizeof(Table *));
                if (!l) {
                        table_free(t);
                        return log_oom();
                }
                c->local_tables = l;
                c->local_tables[c->n_local_tables++] = t;
                bool *w = realloc(c->local_warned, c->n_local_tables * sizeof(bool));
                if (!w)
                        return log_oom();
                c->local_warned = w;
                w[c->n_local_tables - 1] = false;
        }
        return 0;
}

/* Opens what the restrictions of a list need: tables, policy services, DNS blocklists. */
static int list_prepare(SmtpdChecks *c, SmtpdRestrictionList *l, const char *param, const char *where) {
        int r;

        for (size_t i = 0; i < l->n; i++) {
                SmtpdRestriction *item = l->items + i;

                if (smtpd_restriction_type_is_dnsbl(item->type)) {
                        if (strlen(item->arg) > RESOLVER_NAME_MAX - 64 || resolver_name_valid(item->arg) < 0) {
                                log_error("%s: %s: %s: unsupported domain \"%s\"", where, param,
                                          restriction_names[item->type], item->arg);
                                return -EINVAL;
                        }
                        /* The client's address is known at connect: its lookups start then. The
                         * names a right-hand side list is asked about come later (rhsbl_lookup_get()). */
                        if ((item->type == SMTPD_RESTRICTION_REJECT_RBL_CLIENT ||
                             item->type == SMTPD_RESTRICTION_PERMIT_DNSWL_CLIENT) &&
                            dnsbl_domain_add(c, item->arg) < 0)
                                return log_oom();
                } else if (item->type == SMTPD_RESTRICTION_SLEEP) {
                        unsigned sec;
                        int n = 0;

                        if (sscanf(item->arg, "%u%n", &sec, &n) != 1 || (size_t) n != strlen(item->arg) ||
                            !isdigit((unsigned char) item->arg[0]) || sec > SMTPD_SLEEP_MAX) {
                                log_error("%s: %s: sleep %s: expected a number of seconds, at most %u", where, param,
                                          item->arg, SMTPD_SLEEP_MAX);
                                return -EINVAL;
                        }
                } else if (item->type == SMTPD_RESTRICTION_CHECK_POLICY_SERVICE) {
                        item->endpoint = malloc(sizeof(SmtpdPolicyEndpoint));
                        if (!item->endpoint)
                                return log_oom();
                        r = smtpd_policy_endpoint_resolve(item->arg, item->endpoint);
                        if (r < 0) {
                                log_error("%s: %s: check_policy_service: %s \"%s\" (expected inet:host:port "
                                          "or unix:/path)", where, param,
                                          r == -EADDRNOTAVAIL ? "cannot resolve" : "malformed", item->arg);
                                return -EINVAL;
                        }
                } else if (smtpd_restriction_type_has_arg(item->type)) {
                        /* A table that is not built yet is a lookup failure later, not an error
                         * now: only a spec we cannot use at all stops the role. */
                        r = table_open(item->arg, &item->table);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0) {
                                log_error("%s: %s: %s: cannot use table \"%s\"", where, param,
                                          restriction_names[item->type], item->arg);
                                return -EINVAL;
                        }
                }
        }
        return 0;
}

/* smtpd_restriction_classes: each name's list is a main.cf line of that name. A class may name classes,
 * but not itself, however indirectly. */
static int class_cycle(const SmtpdChecks *c, size_t k, unsigned *state) {
        if (state[k] == 1)
                return -ELOOP;
        if (state[k] == 2)
                return 0;
        state[k] = 1;
        for (size_t i = 0; i < c->classes[k].n; i++)
                if (c->classes[k].items[i].type == SMTPD_RESTRICTION_CLASS_NAME &&
                    class_cycle(c, c->classes[k].items[i].class_index, state) < 0)
                        return -ELOOP;
        state[k] = 2;
        return 0;
}

static int classes_parse(SmtpdChecks *c) {
        const Config *config = c->config;
        _cleanup_free_ unsigned *state = NULL;
        char where[512];
        size_t n = 0;
        int r;

        (void) config_where(config, CONFIG_PARAM_smtpd_restriction_classes, where, sizeof where);
        r = config_split_list(config->smtpd_restriction_classes, &c->class_names);
        if (r < 0)
                return log_oom();
        while (c->class_names[n])
                n++;
        for (size_t i = 0; i < n; i++)
                if (smtpd_restriction_type_from_string(c->class_names[i]) >= 0) {
                        log_error("%s: smtpd_restriction_classes: \"%s\" is the name of a restriction", where,
                                  c->class_names[i]);
                        return -EINVAL;
                }
        if (n == 0)
                return 0;
        c->classes = calloc(n, sizeof(SmtpdRestrictionList));
        state = calloc(n, sizeof(unsigned));
        if (!c->classes || !state)
                return log_oom();
        for (size_t i = 0; i < n; i++) {
                char class_where[PATH_MAX + 32];
                unsigned line = 0;
                const char *value = config_extra(config, c->class_names[i], &line);

                if (!value) {
                        log_error("%s: smtpd_restriction_classes: class \"%s\" has no definition (a line "
                                  "\"%s = restrictions\")", where, c->class_names[i], c->class_names[i]);
                        return -EINVAL;
                }
                (void) snprintf(class_where, sizeof class_where, "%s:%u", config->path, line);
                r = smtpd_restriction_list_parse(value, c->class_names[i], class_where, c->class_names,
                                                 c->classes + i);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return r;
                c->n_classes++;
                r = list_prepare(c, c->classes + i, c->class_names[i], class_where);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++)
                if (class_cycle(c, i, state) < 0) {
                        unsigned line = 0;
                        (void) config_extra(config, c->class_names[i], &line);
                        log_error("%s:%u: %s: restriction class \"%s\" includes itself", config->path, line,
                                  c->class_names[i], c->class_names[i]);
                        return -EINVAL;
                }
        return 0;
}

static int tempfail_action_parse(const Config *config, ConfigParamId id, const char *value,
                                 SmtpdTempfailAction *ret) {
        char where[512];

        if (strcaseeq(value, "defer_if_permit"))
                *ret = SMTPD_TEMPFAIL_DEFER_IF_PERMIT;
        else if (strcaseeq(value, "defer"))
                *ret = SMTPD_TEMPFAIL_DEFER;
        else {
                (void) config_where(config, id, where, sizeof where);
                log_error("%s: %s = %s: expected defer or defer_if_permit", where, config_params[id].name, value);
                return -EINVAL;
        }
        return 0;
}

int smtpd_checks_new(const Config *config, const SmtpdNetworks *mynetworks, char **mydestination,
                     Resolver *resolver, SmtpdChecks **ret) {
        _cleanup_(smtpd_checks_freep) SmtpdChecks *c = NULL;
        char where[512];
        int r;

        c = calloc(1, sizeof(SmtpdChecks));
        if (!c)
                return log_oom();
        c->config = config;
        c->mynetworks = mynetworks;
        c->mydestination = mydestination;
        c->resolver = resolver;

        r = classes_parse(c);
        if (r < 0)
                return r;
        for (SmtpdRestrictionClass cls = 0; cls < _SMTPD_RESTRICTION_CLASS_MAX; cls++) {
                const char *param = config_params[list_params[cls]].name;
                SmtpdRestrictionList *l = c->lists + cls;

                (void) config_where(config, list_params[cls], where, sizeof where);
                r = smtpd_restriction_list_parse(list_value(config, cls), param, where, c->class_names, l);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return r;
                r = list_prepare(c, l, param, where);
                if (r < 0)
                        return r;
        }
        r = tempfail_action_parse(config, CONFIG_PARAM_unknown_helo_hostname_tempfail_action,
                                  config->unknown_helo_hostname_tempfail_action, &c->unknown_helo_tempfail);
        if (r < 0)
                return r;
        r = tempfail_action_parse(config, CONFIG_PARAM_unknown_address_tempfail_action,
                                  config->unknown_address_tempfail_action, &c->unknown_address_tempfail);
        if (r < 0)
                return r;

        /* Postfix's safety net against an open relay: one of the two lists must be able to say no. */
        bool can_refuse = false;
        for (SmtpdRestrictionClass cls = SMTPD_RESTRICTION_RELAY; cls <= SMTPD_RESTRICTION_RECIPIENT; cls++)
                can_refuse = can_refuse || smtpd_restriction_list_has(&c->lists[cls], SMTPD_RESTRICTION_REJECT) ||
                             smtpd_restriction_list_has(&c->lists[cls], SMTPD_RESTRICTION_DEFER) ||
                             smtpd_restriction_list_has(&c->lists[cls], SMTPD_RESTRICTION_REJECT_UNAUTH_DESTINATION) ||
                             smtpd_restriction_list_has(&c->lists[cls], SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION);
        if (!can_refuse) {
                (void) config_where(config, config->lines[CONFIG_PARAM_smtpd_relay_restrictions] > 0
                                                    ? CONFIG_PARAM_smtpd_relay_restrictions
                                                    : CONFIG_PARAM_smtpd_recipient_restrictions,
                                    where, sizeof where);
                log_error("%s: smtpd_relay_restrictions or smtpd_recipient_restrictions must contain one of "
                          "reject_unauth_destination, defer_unauth_destination, reject, defer "
                          "(or this server relays mail for anyone)", where);
                return -EINVAL;
        }

        (void) config_where(config, CONFIG_PARAM_local_recipient_maps, where, sizeof where);
        r = local_maps_open(c, where);
        if (r < 0)
                return r;
        r = virtual_domains_open(config->virtual_mailbox_domains, &c->virtual_domains);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                (void) config_where(config, CONFIG_PARAM_virtual_mailbox_domains, where, sizeof where);
                log_error("%s: virtual_mailbox_domains: cannot use \"%s\"", where, config->virtual_mailbox_domains);
                return -EINVAL;
        }
        r = virtual_map_open(config->virtual_mailbox_maps, &c->virtual_mailboxes);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                (void) config_where(config, CONFIG_PARAM_virtual_mailbox_maps, where, sizeof where);
                log_error("%s: virtual_mailbox_maps: cannot use \"%s\"", where, config->virtual_mailbox_maps);
                return -EINVAL;
        }

        r = virtual_domains_open(config->relay_domains, &c->relay_domains);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                (void) config_where(config, CONFIG_PARAM_relay_domains, where, sizeof where);
                log_error("%s: relay_domains: cannot use \"%s\"", where, config->relay_domains);
                return -EINVAL;
        }
        r = virtual_map_open(config->relay_recipient_maps, &c->relay_recipients);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                (void) config_where(config, CONFIG_PARAM_relay_recipient_maps, where, sizeof where);
                log_error("%s: relay_recipient_maps: cannot use \"%s\"", where, config->relay_recipient_maps);
                return -EINVAL;
        }

        /* As Postfix's smtpd, unless the service has no_address_mappings: an address that cleanup will rewrite
         * is known to reject_unlisted_recipient and reject_unlisted_sender, whatever its domain's table says. */
        unsigned override = 0;
        _cleanup_free_ char *bad = NULL;
        (void) receive_override_parse(config->receive_override_options, &override, &bad);  /* checked at start */
        c->check_recipients = !(override & RECEIVE_OVERRIDE_NO_UNKNOWN_RECIPIENT_CHECKS);
        c->mapped_known = !(override & RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS);
        const struct {
                ConfigParamId id;
                const char *value;
                TableList **list;
        } mapped[] = {
                { CONFIG_PARAM_canonical_maps, config->canonical_maps, &c->canonical_maps },
                { CONFIG_PARAM_recipient_canonical_maps, config->recipient_canonical_maps, &c->recipient_canonical_maps },
                { CONFIG_PARAM_sender_canonical_maps, config->sender_canonical_maps, &c->sender_canonical_maps },
                { CONFIG_PARAM_virtual_alias_maps, config->virtual_alias_maps, &c->virtual_alias_maps },
        };
        for (size_t i = 0; c->mapped_known && i < ELEMENTSOF(mapped); i++) {
                r = table_list_open(mapped[i].value, mapped[i].list);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        (void) config_where(config, mapped[i].id, where, sizeof where);
                        log_error("%s: %s: cannot use \"%s\"", where, config_params[mapped[i].id].name, mapped[i].value);
                        return -EINVAL;
                }
        }

        r = table_list_open(config->rbl_reply_maps, &c->rbl_reply_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                (void) config_where(config, CONFIG_PARAM_rbl_reply_maps, where, sizeof where);
                log_error("%s: rbl_reply_maps: cannot use \"%s\"", where, config->rbl_reply_maps);
                return -EINVAL;
        }

        r = virtual_map_open(config->smtpd_sender_login_maps, &c->sender_logins);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                (void) config_where(config, CONFIG_PARAM_smtpd_sender_login_maps, where, sizeof where);
                log_error("%s: smtpd_sender_login_maps: cannot use \"%s\"", where, config->smtpd_sender_login_maps);
                return -EINVAL;
        }
        /* As Postfix: not an error, but the restriction can then refuse nobody. */
        for (SmtpdRestrictionClass cls = 0; cls < _SMTPD_RESTRICTION_CLASS_MAX; cls++)
                for (size_t i = 0; i < c->lists[cls].n && virtual_map_is_empty(&c->sender_logins); i++) {
                        SmtpdRestrictionType t = c->lists[cls].items[i].type;

                        if (t < SMTPD_RESTRICTION_REJECT_SENDER_LOGIN_MISMATCH ||
                            t > SMTPD_RESTRICTION_REJECT_UNAUTHENTICATED_SENDER_LOGIN_MISMATCH)
                                continue;
                        (void) config_where(config, list_params[cls], where, sizeof where);
                        log_warning("%s: %s: %s without smtpd_sender_login_maps refuses nothing, ignoring", where,
                                    config_params[list_params[cls]].name, restriction_names[t]);
                }

        if (!c->resolver)
                for (SmtpdRestrictionClass cls = 0; cls < _SMTPD_RESTRICTION_CLASS_MAX; cls++)
                        for (size_t i = 0; i < c->lists[cls].n; i++)
                                if (smtpd_restriction_type_is_dnsbl(c->lists[cls].items[i].type))
                                        return log_error_errno(EINVAL, "A DNS blocklist is used, but smtpd has no "
                                                               "resolver.");
        *ret = TAKE_PTR(c);
        return 0;
}

void smtpd_checks_set_policy_pool(SmtpdChecks *c, SmtpdPolicyPool *pool) {
        c->policy = pool;
}

void smtpd_checks_set_event(SmtpdChecks *c, sd_event *event) {
        c->event = event;
}

/* A session: its DNS blocklist lookups, all started at connect. */

SmtpdCheckSession *smtpd_check_session_free(SmtpdCheckSession *cs) {
        if (!cs)
                return NULL;
        smtpd_policy_request_cancel(cs->policy);
        free(cs->answers);
        sd_event_source_disable_unref(cs->sleep);
        free(cs->slept);
        for (size_t i = 0; i < cs->n_lookups; i++) {
                resolver_query_cancel(cs->lookups[i].a);
                resolver_query_cancel(cs->lookups[i].txt);
        }
        free(cs->lookups);
        for (size_t i = 0; i < cs->n_rhsbl; i++) {
                resolver_query_cancel(cs->rhsbl[i]->a);
                resolver_query_cancel(cs->rhsbl[i]->txt);
                free(cs->rhsbl[i]);
        }
        free(cs->rhsbl);
        smtpd_domain_lookups_free(cs);
        free(cs);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdCheckSession *, smtpd_check_session_free);

bool smtpd_check_session_pending(const SmtpdCheckSession *cs) {
        return cs && (cs->pending > 0 || cs->policy || cs->sleep);
}

static void dnsbl_lookup_done(SmtpdCheckSession *cs) {
        cs->pending--;
        if (!smtpd_check_session_pending(cs))
                cs->done(cs->userdata);
}

static int on_sleep_done(sd_event_source *source, uint64_t usec, void *userdata) {
        SmtpdCheckSession *cs = userdata;
        const SmtpdRestriction **l;

        cs->sleep = sd_event_source_disable_unref(cs->sleep);
        l = reallocarray(cs->slept, cs->n_slept + 1, sizeof(SmtpdRestriction *));
        if (l) {
                cs->slept = l;
                l[cs->n_slept++] = cs->sleep_item;
        } else
                /* The evaluation sleeps again: slower, not wrong. */
                log_oom();
        if (!smtpd_check_session_pending(cs))
                cs->done(cs->userdata);
        return 0;
}

SmtpdCheckStatus smtpd_restriction_check_sleep(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        SmtpdCheckSession *cs = ctx->cs;
        unsigned sec = (unsigned) strtoul(item->arg, NULL, 10);        /* checked by smtpd_checks_new() */
        int r;

        for (size_t i = 0; i < cs->n_slept; i++)
                if (cs->slept[i] == item)
                        return SMTPD_CHECK_DUNNO;
        if (sec == 0)
                return SMTPD_CHECK_DUNNO;
        /* Postfix's one-client process calls sleep(3); here the session's evaluation waits on a timer. */
        r = cs->checks->event ? 0 : -ENXIO;
        if (r >= 0)
                r = sd_event_add_time_relative(cs->checks->event, &cs->sleep, CLOCK_MONOTONIC,
                                               (uint64_t) sec * USEC_PER_SEC, 0, on_sleep_done, cs);
        if (r < 0) {
                log_warning_errno(r, "Failed to start the timer of \"sleep %u\", not sleeping: %m", sec);
                return SMTPD_CHECK_DUNNO;
        }
        cs->sleep_item = item;
        return SMTPD_CHECK_WAIT;
}

static void on_dnsbl_a(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        SmtpdDnsblLookup *l = userdata;
        SmtpdCheckSession *cs = l->session;

        l->a = NULL;
        switch (reply->status) {
        case RESOLVER_FOUND:
                l->status = SMTPD_DNSBL_LISTED;
                l->n_addresses = 0;
                for (size_t i = 0; i < reply->n_addresses && l->n_addresses < SMTPD_DNSBL_A_MAX; i++)
                        if (reply->addresses[i].family == AF_INET)
                                memcpy(l->addresses[l->n_addresses++], reply->addresses[i].bytes, 4);
                break;
        case RESOLVER_NXDOMAIN:
        case RESOLVER_NODATA:
                l->status = SMTPD_DNSBL_NOT_LISTED;
                break;
        default:
                log_warning("DNS blocklist lookup of %s failed (%s), not listed.", l->name, reply->detail);
                l->status = SMTPD_DNSBL_FAILED;
                break;
        }
        /* The text matters only for a listed client. */
        if (l->status != SMTPD_DNSBL_LISTED && l->txt) {
                l->txt = resolver_query_cancel(l->txt);
                cs->pending--;
        }
        dnsbl_lookup_done(cs);
}

static void on_dnsbl_txt(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        SmtpdDnsblLookup *l = userdata;

        l->txt = NULL;
        if (reply->status == RESOLVER_FOUND && reply->n_txt > 0)
                (void) snprintf(l->text, sizeof l->text, "%s", reply->txt[0]);
        dnsbl_lookup_done(l->session);
}

/* The A and TXT lookups of l->name: SMTPD_DNSBL_PENDING until they are in, SMTPD_DNSBL_FAILED (listing
 * nobody) if they cannot start. */
static void dnsbl_lookup_start(SmtpdDnsblLookup *l) {
        SmtpdCheckSession *cs = l->session;
        Resolver *resolver = cs->checks->resolver;
        int r;

        l->status = SMTPD_DNSBL_FAILED;
        r = resolver_lookup(resolver, l->name, RESOLVER_TYPE_A, on_dnsbl_a, l, &l->a);
        if (r < 0) {
                log_warning_errno(r, "Failed to start a DNS blocklist lookup of %s, not listed: %m", l->name);
                return;
        }
        l->status = SMTPD_DNSBL_PENDING;
        cs->pending++;
        r = resolver_lookup(resolver, l->name, RESOLVER_TYPE_TXT, on_dnsbl_txt, l, &l->txt);
        if (r < 0)
                log_warning_errno(r, "Failed to start a DNS TXT lookup of %s, ignoring: %m", l->name);
        else
                cs->pending++;
}

int smtpd_check_session_new(SmtpdChecks *c, const SmtpdAddress *client, void (*done)(void *userdata),
                            void *userdata, SmtpdCheckSession **ret) {
        _cleanup_(smtpd_check_session_freep) SmtpdCheckSession *cs = NULL;
        size_t n = 0;
        int r;

        cs = calloc(1, sizeof(SmtpdCheckSession));
        if (!cs)
                return -ENOMEM;
        cs->checks = c;
        cs->client = *client;
        cs->done = done;
        cs->userdata = userdata;

        while (c->dnsbl_domains && c->dnsbl_domains[n])
                n++;
        if (n > 0 && client->family != AF_UNSPEC) {
                cs->lookups = calloc(n, sizeof(SmtpdDnsblLookup));
                if (!cs->lookups)
                        return -ENOMEM;
                cs->n_lookups = n;
        }
        /* Every lookup starts now, at connect, so that the answers are in by the time they are needed. */
        for (size_t i = 0; i < cs->n_lookups; i++) {
                SmtpdDnsblLookup *l = cs->lookups + i;

                l->session = cs;
                l->domain = c->dnsbl_domains[i];
                l->status = SMTPD_DNSBL_FAILED;
                r = smtpd_dnsbl_query_name(client, l->domain, l->name, sizeof l->name);
                if (r < 0) {
                        log_warning_errno(r, "Cannot make a DNS blocklist query for %s under %s, not listed: %m",
                                          client->text, l->domain);
                        continue;
                }
                dnsbl_lookup_start(l);
        }
        *ret = TAKE_PTR(cs);
        return 0;
}

SmtpdDnsblLookup *smtpd_rhsbl_lookup_get(SmtpdCheckSession *cs, const char *what, const char *domain) {
        _cleanup_free_ SmtpdDnsblLookup *l = NULL;
        SmtpdDnsblLookup **list;
        char name[RESOLVER_NAME_MAX + 1];
        int r;

        r = smtpd_rhsbl_query_name(what, domain, name, sizeof name);
        if (r < 0) {
                /* An address literal, a name too long to ask about: nothing a list could name. */
                static SmtpdDnsblLookup none = { .status = SMTPD_DNSBL_NOT_LISTED };
                return &none;
        }
        for (size_t i = 0; i < cs->n_rhsbl; i++)
                if (strcaseeq(cs->rhsbl[i]->name, name))
                        return cs->rhsbl[i];
        if (cs->n_rhsbl >= SMTPD_SESSION_LOOKUPS_MAX) {
                /* As a lookup that failed: the list's answer is not known. */
                static SmtpdDnsblLookup full = { .status = SMTPD_DNSBL_FAILED };
                log_warning("More than %u names looked up in DNS lists in one session: %s is not.",
                            SMTPD_SESSION_LOOKUPS_MAX, name);
                return &full;
        }
        list = reallocarray(cs->rhsbl, cs->n_rhsbl + 1, sizeof(SmtpdDnsblLookup *));
        if (!list)
                return NULL;
        cs->rhsbl = list;
        l = calloc(1, sizeof(SmtpdDnsblLookup));
        if (!l)
                return NULL;
        l->session = cs;
        l->domain = domain;
        memcpy(l->name, name, sizeof l->name);
        dnsbl_lookup_start(l);
        list[cs->n_rhsbl++] = l;
        return TAKE_PTR(l);
}

/* Evaluation: a session asks at HELO, MAIL or RCPT, and smtpd_delay_reject decides which lists answer when. */

/* "NOQUEUE: reject_warning: RCPT from unknown[192.0.2.1]: 554 5.7.1 ...; from=<s> to=<r> proto=ESMTP
 * helo=<h>", the session's "reject" line with another word, as Postfix logs what warn_if_reject let pass. */
static void log_reject_warning(SmtpdCheckContext *ctx) {
        const SmtpdCheckInput *in = ctx->in;
        const char *sender = in->sender, *rcpt = in->recipient, *helo = strempty(in->helo);
        _cleanup_free_ char *esender = sender ? log_escape(sender, strlen(sender)) : NULL,
                            *ercpt = rcpt ? log_escape(rcpt, strlen(rcpt)) : NULL,
                            *ehelo = log_escape(helo, strlen(helo)),
                            *ereply = log_escape(ctx->reply, strlen(ctx->reply));
        const char *command = in->command ?: ctx->protocol_state;
        char dsn[16] = "";

        (void) sscanf(ctx->reply, "%*3d %15[0-9.]", dsn);
        log_mail(LOG_INFO, NULL,
                 LOG_FIELDS({ "CLIENT_ADDRESS", in->client->text }, { "SMTP_COMMAND", command },
                            { "SENDER", esender }, { "RECIPIENT", ercpt }, { "DSN", dsn }),
                 "NOQUEUE: reject_warning: %s from %s: %s;%s%s%s%s%s%s proto=%s helo=<%s>", command,
                 ctx->client_name, strna(ereply), esender ? " from=<" : "", strempty(esender), esender ? ">" : "",
                 ercpt ? " to=<" : "", strempty(ercpt), ercpt ? ">" : "", strempty(in->protocol_name),
                 strempty(ehelo));
}

SmtpdCheckStatus smtpd_restriction_reject(SmtpdCheckContext *ctx, const char *fmt, ...) {
        bool own_failure;
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(ctx->reply, SMTPD_REPLY_LINE_MAX - 2, fmt, ap);
        va_end(ap);
        /* This server's own trouble is no verdict on the client: it is never only a warning, and it stays
         * what it is after defer_if_reject. */
        own_failure = strncmp(ctx->reply, "451 4.3.", 8) == 0;
        if (ctx->warn_depth > 0 && !own_failure) {
                log_reject_warning(ctx);
                ctx->reply[0] = '\0';
                return SMTPD_CHECK_DUNNO;
        }
        if (ctx->defer_if_reject.active && ctx->reply[0] == '5') {
                ctx->defer_if_reject.active = false;
                memcpy(ctx->reply, ctx->defer_if_reject.reply, SMTPD_REPLY_LINE_MAX);
        }
        return SMTPD_CHECK_REJECT;
}

/* Keeps the first reply of a deferral. */
static void deferral_raise(SmtpdDeferral *d, const char *fmt, va_list ap) {
        if (d->active)
                return;
        d->active = true;
        (void) vsnprintf(d->reply, sizeof d->reply - 2, fmt, ap);
}

SmtpdCheckStatus smtpd_restriction_tempfail(SmtpdCheckContext *ctx, SmtpdTempfailAction action, const char *fmt,
                                            ...) {
        va_list ap;

        /* Under warn_if_reject, as Postfix: the refusal it would become is logged now, as a warning. */
        if (action == SMTPD_TEMPFAIL_DEFER || ctx->warn_depth > 0) {
                char reply[SMTPD_REPLY_LINE_MAX];

                va_start(ap, fmt);
                (void) vsnprintf(reply, sizeof reply - 2, fmt, ap);
                va_end(ap);
                return smtpd_restriction_reject(ctx, "%s", reply);
        }
        va_start(ap, fmt);
        deferral_raise(&ctx->cs->defer_if_permit, fmt, ap);
        va_end(ap);
        return SMTPD_CHECK_DUNNO;
}

/* What "<name>: <class> rejected" names in a reply of this list. */
void smtpd_restriction_subject(SmtpdCheckContext *ctx, SmtpdRestrictionClass cls, const char **ret_name,
                               const char **ret_class) {
        switch (cls) {
        case SMTPD_RESTRICTION_CLIENT:
                *ret_name = ctx->client_name;
                *ret_class = "Client host";
                break;
        case SMTPD_RESTRICTION_HELO:
                *ret_name = strempty(ctx->in->helo);
                *ret_class = "Helo command";
                break;
        case SMTPD_RESTRICTION_SENDER:
                *ret_name = strempty(ctx->in->sender);
                *ret_class = "Sender address";
                break;
        case SMTPD_RESTRICTION_DATA:
                *ret_name = "DATA";
                *ret_class = "Data command";
                break;
        case SMTPD_RESTRICTION_END_OF_DATA:
                *ret_name = "END-OF-DATA";
                *ret_class = "End-of-data";
                break;
        default:
                *ret_name = strempty(ctx->in->recipient);
                *ret_class = "Recipient address";
                break;
        }
}

/* DISCARD, as Postfix: once a message is to be thrown away, nothing refuses it any more. */
static bool discarding(const SmtpdCheckContext *ctx) {
        return ctx->in->actions && ctx->in->actions->discard;
}

/* The explicit defer_if_permit and defer_if_reject: "450 4.7.0 <name>: <class> rejected: defer_if_permit
 * requested", kept for the end of the evaluation (defer_if_permit, unless under warn_if_reject, where it is
 * the warning it would become) or for the next 5xx refusal (defer_if_reject, which warn_if_reject leaves
 * alone). */
static SmtpdCheckStatus check_defer_if(SmtpdCheckContext *ctx, SmtpdRestrictionType t) {
        const char *name, *class;

        smtpd_restriction_subject(ctx, ctx->cls, &name, &class);
        if (t == SMTPD_RESTRICTION_DEFER_IF_PERMIT)
                return smtpd_restriction_tempfail(ctx, SMTPD_TEMPFAIL_DEFER_IF_PERMIT,
                                                  "450 4.7.0 <%s>: %s rejected: defer_if_permit requested", name,
                                                  class);
        if (!ctx->defer_if_reject.active) {
                ctx->defer_if_reject.active = true;
                (void) snprintf(ctx->defer_if_reject.reply, sizeof ctx->defer_if_reject.reply - 2,
                                "450 4.7.0 <%s>: %s rejected: defer_if_reject requested", name, class);
        }
        return SMTPD_CHECK_DUNNO;
}

SmtpdCheckStatus smtpd_restriction_check_items(SmtpdCheckContext *ctx, const SmtpdRestriction *items, size_t n) {
        SmtpdCheckStatus s = SMTPD_CHECK_DUNNO;

        /* Classes cannot name themselves (smtpd_checks_new()), but an access table's value may name the
         * class that looked it up. */
        if (ctx->depth >= SMTPD_RESTRICTION_DEPTH_MAX) {
                log_warning("Restriction classes and access table values nest more than %u deep: a class includes "
                            "itself through a table?", SMTPD_RESTRICTION_DEPTH_MAX);
                return smtpd_restriction_reject(ctx, "451 4.3.5 Server configuration error");
        }
        ctx->depth++;
        for (size_t i = 0; i < n && !discarding(ctx); i++) {
                const SmtpdRestriction *item = items + i;

                switch (item->type) {
                case SMTPD_RESTRICTION_WARN_IF_REJECT:
                        /* For the next restriction, whatever it evaluates within itself. */
                        if (ctx->warn_depth == 0)
                                ctx->warn_depth = ctx->depth;
                        continue;
                case SMTPD_RESTRICTION_DEFER_IF_PERMIT:
                case SMTPD_RESTRICTION_DEFER_IF_REJECT:
                        s = check_defer_if(ctx, item->type);
                        break;
                case SMTPD_RESTRICTION_CLASS_NAME:
                        assert(item->class_index < ctx->cs->checks->n_classes);
                        s = smtpd_restriction_check_items(ctx, ctx->cs->checks->classes[item->class_index].items,
                                                          ctx->cs->checks->classes[item->class_index].n);
                        break;
                default:
                        s = smtpd_restriction_check(ctx, item);
                        break;
                }
                if (ctx->warn_depth >= ctx->depth)
                        ctx->warn_depth = 0;
                if (s != SMTPD_CHECK_DUNNO)
                        break;
        }
        ctx->depth--;
        return s;
}

static SmtpdCheckStatus check_list(SmtpdCheckContext *ctx, SmtpdRestrictionClass cls) {
        SmtpdRestrictionList *l = &ctx->cs->checks->lists[cls];

        ctx->cls = cls;
        return smtpd_restriction_check_items(ctx, l->items, l->n);
}

/* Postfix's bookkeeping of deferrals at the start of a stage: defer_if_reject and warn_if_reject start
 * afresh; a defer_if_permit raised by the client list holds at HELO, MAIL and RCPT, one by the HELO list at
 * MAIL and RCPT, one by the sender list at RCPT, whether those lists run at their own commands or all at
 * RCPT (smtpd_delay_reject). DATA and the end of the message start without. */
static void stage_begin(SmtpdCheckContext *ctx, SmtpdRestrictionClass cls) {
        SmtpdCheckSession *cs = ctx->cs;

        ctx->warn_depth = 0;
        ctx->defer_if_reject.active = false;
        switch (cls) {
        case SMTPD_RESTRICTION_CLIENT:
                cs->defer_if_permit.active = false;
                break;
        case SMTPD_RESTRICTION_HELO:
                cs->defer_if_permit.active = cs->defer_client;
                break;
        case SMTPD_RESTRICTION_SENDER:
                cs->defer_if_permit.active = cs->defer_client || cs->defer_helo;
                break;
        case SMTPD_RESTRICTION_RELAY:
        case SMTPD_RESTRICTION_RECIPIENT:
                cs->defer_if_permit.active = cs->defer_sender;
                break;
        default:
                cs->defer_if_permit.active = false;
                break;
        }
}

/* The client, HELO or sender list as one stage, with what it leaves for the later ones; the sender's ends
 * with smtpd_reject_unlisted_sender, unless refused or discarded already. */
static SmtpdCheckStatus check_stage(SmtpdCheckContext *ctx, SmtpdRestrictionClass cls) {
        SmtpdCheckSession *cs = ctx->cs;
        SmtpdCheckStatus s;

        stage_begin(ctx, cls);
        s = check_list(ctx, cls);
        if (cls == SMTPD_RESTRICTION_CLIENT)
                cs->defer_client = cs->defer_if_permit.active;
        else if (cls == SMTPD_RESTRICTION_HELO)
                cs->defer_helo = cs->defer_if_permit.active;
        else if (cls == SMTPD_RESTRICTION_SENDER) {
                cs->defer_sender = cs->defer_if_permit.active;
                if (s != SMTPD_CHECK_REJECT && s != SMTPD_CHECK_WAIT &&
                    cs->checks->config->smtpd_reject_unlisted_sender && !discarding(ctx)) {
                        ctx->warn_depth = 0;
                        SmtpdCheckStatus u = smtpd_restriction_check_unlisted(ctx, true);
                        if (u != SMTPD_CHECK_DUNNO)
                                s = u;
                }
        }
        return s;
}

/* The end of an evaluation that would let the command pass: a defer_if_permit kept refuses it now. */
static SmtpdCheckStatus stage_end(SmtpdCheckContext *ctx, SmtpdCheckStatus s) {
        if (s == SMTPD_CHECK_REJECT || s == SMTPD_CHECK_WAIT || !ctx->cs->defer_if_permit.active)
                return s;
        ctx->warn_depth = 0;
        return smtpd_restriction_reject(ctx, "%s", ctx->cs->defer_if_permit.reply);
}

static void context_init(SmtpdCheckContext *ctx, SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply,
                         const char *protocol_state) {
        *ctx = (SmtpdCheckContext) {
                .cs = cs,
                .in = in,
                .reply = reply,
                .protocol_state = in->protocol_state ?: protocol_state,
        };
        (void) snprintf(ctx->client_name, sizeof ctx->client_name, "%s[%s]",
                        in->peer ? in->peer->name : SMTPD_PEER_UNKNOWN, in->client->text);
        reply[0] = '\0';
}

/* What an evaluation ends in: 1 rejected, 0 not, -EAGAIN to be resumed once a policy service answers; the
 * answers it was given are forgotten when it is over. */
static int check_result(SmtpdCheckSession *cs, SmtpdCheckStatus s) {
        if (s == SMTPD_CHECK_WAIT)
                return -EAGAIN;
        smtpd_policy_answers_clear(cs);
        cs->slept = mfree(cs->slept);
        cs->n_slept = 0;
        return s == SMTPD_CHECK_REJECT;
}

/* DATA and the end of the message: one list, at its own command. */
static int check_now(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply, SmtpdRestrictionClass cls,
                     const char *protocol_state) {
        SmtpdCheckContext ctx;

        context_init(&ctx, cs, in, reply, protocol_state);
        stage_begin(&ctx, cls);
        return check_result(cs, stage_end(&ctx, check_list(&ctx, cls)));
}

/* smtpd_delay_reject = no: a list is evaluated at its own command (and the client list at connect); with
 * yes, smtpd_check_rcpt() evaluates them all, and this says nothing. A defer_if_permit they raise refuses
 * only at RCPT, as in Postfix. */
static int check_undelayed(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply, SmtpdRestrictionClass cls,
                           const char *protocol_state) {
        SmtpdCheckContext ctx;

        if (cs->checks->config->smtpd_delay_reject)
                return 0;
        context_init(&ctx, cs, in, reply, protocol_state);
        return check_result(cs, check_stage(&ctx, cls));
}

int smtpd_check_client(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        if (!cs->checks->config->smtpd_delay_reject && smtpd_check_session_pending(cs))
                return -EAGAIN;
        return check_undelayed(cs, in, reply, SMTPD_RESTRICTION_CLIENT, "CONNECT");
}

int smtpd_check_helo(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        return check_undelayed(cs, in, reply, SMTPD_RESTRICTION_HELO, "HELO");
}

int smtpd_check_sender(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        return check_undelayed(cs, in, reply, SMTPD_RESTRICTION_SENDER, "MAIL");
}

int smtpd_check_rcpt(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        const Config *config = cs->checks->config;
        SmtpdCheckContext ctx;
        SmtpdCheckStatus s;

        context_init(&ctx, cs, in, reply, "RCPT");
        if (config->smtpd_delay_reject)
                for (SmtpdRestrictionClass cls = SMTPD_RESTRICTION_CLIENT; cls <= SMTPD_RESTRICTION_SENDER; cls++) {
                        s = check_stage(&ctx, cls);
                        if (s == SMTPD_CHECK_REJECT || s == SMTPD_CHECK_WAIT)
                                return check_result(cs, s);
                }
        stage_begin(&ctx, SMTPD_RESTRICTION_RELAY);
        for (SmtpdRestrictionClass cls = SMTPD_RESTRICTION_RELAY; cls <= SMTPD_RESTRICTION_RECIPIENT; cls++) {
                s = check_list(&ctx, cls);
                if (s == SMTPD_CHECK_REJECT || s == SMTPD_CHECK_WAIT)
                        return check_result(cs, s);
        }
        s = stage_end(&ctx, SMTPD_CHECK_DUNNO);
        /* A DISCARD accepts everything after it, unlisted recipients too. */
        if (s != SMTPD_CHECK_REJECT && config->smtpd_reject_unlisted_recipient && !discarding(&ctx))
                s = smtpd_restriction_check_unlisted(&ctx, false);
        return check_result(cs, s);
}

/* smtpd_delay_reject does not touch these two: they are about the message, known only now. */
int smtpd_check_data(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        return check_now(cs, in, reply, SMTPD_RESTRICTION_DATA, "DATA");
}

int smtpd_check_eod(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        return check_now(cs, in, reply, SMTPD_RESTRICTION_END_OF_DATA, "END-OF-MESSAGE");
}
