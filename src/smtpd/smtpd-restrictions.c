/* smtpd-restrictions.c: Postfix's restriction lists, evaluated as Postfix's smtpd evaluates them.
 *
 * At RCPT (with smtpd_delay_reject = yes, the default) the client, HELO and sender lists run first, then
 * the relay list, then the recipient list; in each, the first restriction that decides ends that list: a
 * rejection ends everything, a permission moves on to the next list. Afterwards, unless rejected, the
 * recipient of a local domain must be known (smtpd_reject_unlisted_recipient, local_recipient_maps).
 * Reply codes are Postfix's defaults (access_map_reject_code 554, access_map_defer_code 450,
 * relay_domains_reject_code 554, unknown_local_recipient_reject_code 550, non_fqdn_reject_code 504,
 * invalid_hostname_reject_code 501, maps_rbl_reject_code 554). A DNS blocklist that cannot be reached
 * lists nobody, as in Postfix: the mail is not held up by a third party's outage. */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <pwd.h>
#include <stdarg.h>

#include "address.h"
#include "log.h"
#include "smtpd-restrictions.h"

static const char *const restriction_names[_SMTPD_RESTRICTION_TYPE_MAX] = {
        [SMTPD_RESTRICTION_PERMIT] = "permit",
        [SMTPD_RESTRICTION_REJECT] = "reject",
        [SMTPD_RESTRICTION_DEFER] = "defer",
        [SMTPD_RESTRICTION_PERMIT_MYNETWORKS] = "permit_mynetworks",
        [SMTPD_RESTRICTION_PERMIT_SASL_AUTHENTICATED] = "permit_sasl_authenticated",
        [SMTPD_RESTRICTION_REJECT_UNAUTH_DESTINATION] = "reject_unauth_destination",
        [SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION] = "defer_unauth_destination",
        [SMTPD_RESTRICTION_REJECT_UNLISTED_RECIPIENT] = "reject_unlisted_recipient",
        [SMTPD_RESTRICTION_REJECT_NON_FQDN_SENDER] = "reject_non_fqdn_sender",
        [SMTPD_RESTRICTION_REJECT_NON_FQDN_RECIPIENT] = "reject_non_fqdn_recipient",
        [SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME] = "reject_non_fqdn_helo_hostname",
        [SMTPD_RESTRICTION_REJECT_INVALID_HELO_HOSTNAME] = "reject_invalid_helo_hostname",
        [SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS] = "check_client_access",
        [SMTPD_RESTRICTION_CHECK_HELO_ACCESS] = "check_helo_access",
        [SMTPD_RESTRICTION_CHECK_SENDER_ACCESS] = "check_sender_access",
        [SMTPD_RESTRICTION_CHECK_RECIPIENT_ACCESS] = "check_recipient_access",
        [SMTPD_RESTRICTION_REJECT_RBL_CLIENT] = "reject_rbl_client",
};

const char *smtpd_restriction_type_to_string(SmtpdRestrictionType t) {
        return t >= 0 && t < _SMTPD_RESTRICTION_TYPE_MAX ? restriction_names[t] : NULL;
}

SmtpdRestrictionType smtpd_restriction_type_from_string(const char *s) {
        for (size_t i = 0; i < _SMTPD_RESTRICTION_TYPE_MAX; i++)
                if (strcaseeq(restriction_names[i], s))
                        return (SmtpdRestrictionType) i;
        /* Postfix's older names, still common in main.cf files. */
        if (strcaseeq(s, "reject_non_fqdn_hostname"))
                return SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME;
        if (strcaseeq(s, "reject_invalid_hostname"))
                return SMTPD_RESTRICTION_REJECT_INVALID_HELO_HOSTNAME;
        return _SMTPD_RESTRICTION_TYPE_INVALID;
}

bool smtpd_restriction_type_has_arg(SmtpdRestrictionType t) {
        return t >= SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS && t <= SMTPD_RESTRICTION_REJECT_RBL_CLIENT;
}

void smtpd_restriction_list_done(SmtpdRestrictionList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].arg);
                table_free(l->items[i].table);
                free(l->items[i].filter);
        }
        l->items = mfree(l->items);
        l->n = 0;
}

int smtpd_restriction_list_parse(const char *value, const char *param, const char *where,
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
                                          t == SMTPD_RESTRICTION_REJECT_RBL_CLIENT ? "a DNS domain" : "a table");
                                smtpd_restriction_list_done(&l);
                                return -EINVAL;
                        }
                        item->arg = strdup(words[++i]);
                        if (!item->arg) {
                                smtpd_restriction_list_done(&l);
                                return -ENOMEM;
                        }
                        char *eq = t == SMTPD_RESTRICTION_REJECT_RBL_CLIENT ? strchr(item->arg, '=') : NULL;
                        if (eq) {
                                *eq = '\0';
                                item->filter = malloc(sizeof(SmtpdDnsblFilter));
                                if (!item->filter) {
                                        smtpd_restriction_list_done(&l);
                                        return -ENOMEM;
                                }
                                if (item->arg[0] == '\0' || smtpd_dnsbl_filter_parse(eq + 1, item->filter) < 0) {
                                        log_error("%s: %s: reject_rbl_client %s=%s: expected domain=d.d.d.d, each d "
                                                  "a number or [n;n..m]", where, param, item->arg, eq + 1);
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
                if (l->items[i].type == t)
                        return true;
        return false;
}

/* Copies text as printable ASCII: it goes into an SMTP reply. */
static void copy_printable(char *dst, size_t size, const char *src) {
        size_t n = 0;

        for (; *src && n + 1 < size; src++)
                dst[n++] = *src == '\t'                                                  ? ' '
                           : (unsigned char) *src >= 0x20 && (unsigned char) *src < 0x7F ? *src
                                                                                          : '?';
        dst[n] = '\0';
}

int smtpd_access_result_parse(const char *value, SmtpdAccessResult *ret) {
        SmtpdAccessResult a = {};
        size_t word = strcspn(value, " \t");
        const char *text = value + word;

        text += strspn(text, " \t");
        if (word == 0)
                return -EINVAL;
        if ((word == 2 && strncasecmp(value, "OK", 2) == 0) || (word == 6 && strncasecmp(value, "PERMIT", 6) == 0)) {
                a.action = SMTPD_ACCESS_PERMIT;
                *ret = a;
                return 0;
        }
        if (word == 5 && strncasecmp(value, "DUNNO", 5) == 0) {
                a.action = SMTPD_ACCESS_DUNNO;
                *ret = a;
                return 0;
        }
        if ((word == 6 && strncasecmp(value, "REJECT", 6) == 0) || (word == 5 && strncasecmp(value, "DEFER", 5) == 0)) {
                bool defer = word == 5;

                a.action = SMTPD_ACCESS_REJECT;
                a.code = defer ? 450 : 554;
                strcpy(a.dsn, defer ? "4.7.1" : "5.7.1");
                copy_printable(a.text, sizeof a.text, *text ? text : "Access denied");
                *ret = a;
                return 0;
        }

        /* All digits: OK, for compatibility with Postfix's old tables. */
        if (strspn(value, "0123456789") == strlen(value)) {
                a.action = SMTPD_ACCESS_PERMIT;
                *ret = a;
                return 0;
        }
        if (word == 3 && isdigit((unsigned char) value[0]) && isdigit((unsigned char) value[1]) &&
            isdigit((unsigned char) value[2])) {
                if ((value[0] != '4' && value[0] != '5') || *text == '\0')
                        return -EINVAL;
                a.action = SMTPD_ACCESS_REJECT;
                a.code = (unsigned) ((value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0'));
                /* "5.7.1 text": an enhanced status code of the same class, else the default one. */
                size_t dsn_len = strcspn(text, " \t");
                unsigned x, y, z;
                char tail;
                if (dsn_len < sizeof a.dsn && sscanf(text, "%1u.%3u.%3u%c", &x, &y, &z, &tail) >= 3 &&
                    (tail == ' ' || tail == '\t' || text[dsn_len] == '\0') && isdigit((unsigned char) text[0])) {
                        if (text[0] != value[0])
                                return -EINVAL;
                        memcpy(a.dsn, text, dsn_len);
                        a.dsn[dsn_len] = '\0';
                        text += dsn_len;
                        text += strspn(text, " \t");
                } else
                        strcpy(a.dsn, value[0] == '4' ? "4.7.1" : "5.7.1");
                copy_printable(a.text, sizeof a.text, *text ? text : "Access denied");
                *ret = a;
                return 0;
        }
        return -EOPNOTSUPP;
}

static int strv_push(char ***l, size_t *n, char *s) {
        char **nl;

        if (!s)
                return -ENOMEM;
        nl = realloc(*l, (*n + 2) * sizeof(char *));
        if (!nl) {
                free(s);
                return -ENOMEM;
        }
        nl[(*n)++] = s;
        nl[*n] = NULL;
        *l = nl;
        return 0;
}

static char *strdup_lower(const char *s, size_t len) {
        char *d = strndup(s, len);

        if (d)
                for (char *p = d; *p; p++)
                        *p = (char) tolower((unsigned char) *p);
        return d;
}

int smtpd_access_client_keys(const SmtpdAddress *client, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        char delim = client->family == AF_INET6 ? ':' : '.';
        size_t n = 0, len = strlen(client->text);
        int r;

        if (!l)
                return -ENOMEM;
        if (client->family == AF_INET || client->family == AF_INET6)
                /* The address, then without its last part, again and again (Postfix's way, also for
                 * IPv6, whose keys are in the compressed form inet_ntop() gives). */
                while (len > 0) {
                        r = strv_push(&l, &n, strdup_lower(client->text, len));
                        if (r < 0)
                                return r;
                        const char *d = memrchr(client->text, delim, len);
                        if (!d)
                                break;
                        len = (size_t) (d - client->text);
                }
        *ret = TAKE_PTR(l);
        return 0;
}

static int push_domain_keys(char ***l, size_t *n, const char *domain) {
        size_t len = strlen(domain);
        int r;

        if (len > 0 && domain[len - 1] == '.')
                len--;
        for (const char *p = domain; len > 0;) {
                const char *dot;

                r = strv_push(l, n, strdup_lower(p, len));
                if (r < 0)
                        return r;
                /* An address literal has no parents. */
                if (*p == '[')
                        break;
                dot = memchr(p, '.', len);
                if (!dot)
                        break;
                len -= (size_t) (dot + 1 - p);
                p = dot + 1;
        }
        return 0;
}

int smtpd_access_domain_keys(const char *domain, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t n = 0;
        int r;

        if (!l)
                return -ENOMEM;
        r = push_domain_keys(&l, &n, domain);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

int smtpd_access_address_keys(const char *address, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        const char *at = strrchr(address, '@');
        size_t n = 0;
        int r;

        if (!l)
                return -ENOMEM;
        if (address[0] == '\0') {
                r = strv_push(&l, &n, strdup("<>"));
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(l);
                return 0;
        }
        r = strv_push(&l, &n, strdup_lower(address, strlen(address)));
        if (r >= 0 && at && at[1])
                r = push_domain_keys(&l, &n, at + 1);
        if (r >= 0) {
                size_t local = at ? (size_t) (at - address) : strlen(address);
                char *k = strdup_lower(address, local);

                if (k) {
                        char *kk = NULL;
                        if (asprintf(&kk, "%s@", k) < 0)
                                kk = NULL;
                        free(k);
                        k = kk;
                }
                r = strv_push(&l, &n, k);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

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

/* The server. */

struct SmtpdChecks {
        const Config *config;
        const SmtpdNetworks *mynetworks;
        char **mydestination;
        SmtpdRestrictionList lists[_SMTPD_RESTRICTION_CLASS_MAX];
        /* local_recipient_maps: the password database and tables; an empty value turns the check off. */
        bool local_check, local_passwd;
        Table **local_tables;
        bool *local_warned;             /* "not built" logged for this table */
        size_t n_local_tables;
        char **dnsbl_domains;           /* the domains of every reject_rbl_client, once each */
        SmtpdResolver *resolver;
};

static const ConfigParamId list_params[_SMTPD_RESTRICTION_CLASS_MAX] = {
        [SMTPD_RESTRICTION_CLIENT] = CONFIG_PARAM_smtpd_client_restrictions,
        [SMTPD_RESTRICTION_HELO] = CONFIG_PARAM_smtpd_helo_restrictions,
        [SMTPD_RESTRICTION_SENDER] = CONFIG_PARAM_smtpd_sender_restrictions,
        [SMTPD_RESTRICTION_RELAY] = CONFIG_PARAM_smtpd_relay_restrictions,
        [SMTPD_RESTRICTION_RECIPIENT] = CONFIG_PARAM_smtpd_recipient_restrictions,
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
        for (size_t i = 0; i < c->n_local_tables; i++)
                table_free(c->local_tables[i]);
        free(c->local_tables);
        free(c->local_warned);
        strv_free(c->dnsbl_domains);
        smtpd_resolver_free(c->resolver);
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

int smtpd_checks_new(const Config *config, const SmtpdNetworks *mynetworks, char **mydestination,
                     sd_event *event, SmtpdChecks **ret) {
        _cleanup_(smtpd_checks_freep) SmtpdChecks *c = NULL;
        char where[512];
        int r;

        c = calloc(1, sizeof(SmtpdChecks));
        if (!c)
                return log_oom();
        c->config = config;
        c->mynetworks = mynetworks;
        c->mydestination = mydestination;

        for (SmtpdRestrictionClass cls = 0; cls < _SMTPD_RESTRICTION_CLASS_MAX; cls++) {
                const char *param = config_params[list_params[cls]].name;
                SmtpdRestrictionList *l = c->lists + cls;

                (void) config_where(config, list_params[cls], where, sizeof where);
                r = smtpd_restriction_list_parse(list_value(config, cls), param, where, l);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return r;
                for (size_t i = 0; i < l->n; i++) {
                        SmtpdRestriction *item = l->items + i;

                        if (item->type == SMTPD_RESTRICTION_REJECT_RBL_CLIENT) {
                                if (strlen(item->arg) > SMTPD_DNS_NAME_MAX - 64) {
                                        log_error("%s: %s: reject_rbl_client: unsupported domain \"%s\"", where,
                                                  param, item->arg);
                                        return -EINVAL;
                                }
                                if (dnsbl_domain_add(c, item->arg) < 0)
                                        return log_oom();
                        } else if (item->arg) {
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
        }

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

        if (c->dnsbl_domains) {
                r = smtpd_resolver_new(event, &c->resolver);
                if (r < 0)
                        return r == -ENOMEM ? log_oom() : r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

/* A session. */

typedef enum DnsblStatus {
        DNSBL_PENDING,
        DNSBL_LISTED,
        DNSBL_NOT_LISTED,
        DNSBL_FAILED,
        _DNSBL_STATUS_MAX,
        _DNSBL_STATUS_INVALID = -EINVAL,
} DnsblStatus;

typedef struct DnsblLookup {
        SmtpdCheckSession *session;
        const char *domain;
        char name[SMTPD_DNS_NAME_MAX + 1];
        SmtpdDnsQuery *a, *txt;
        DnsblStatus status;
        uint8_t addresses[SMTPD_DNS_A_MAX][4];  /* the A records of a listed client */
        unsigned n_addresses;
        char text[SMTPD_DNS_TXT_MAX];
} DnsblLookup;

struct SmtpdCheckSession {
        SmtpdChecks *checks;
        SmtpdAddress client;
        DnsblLookup *lookups;
        size_t n_lookups;
        unsigned pending;               /* queries in flight */
        void (*done)(void *userdata);
        void *userdata;
};

SmtpdCheckSession *smtpd_check_session_free(SmtpdCheckSession *cs) {
        if (!cs)
                return NULL;
        for (size_t i = 0; i < cs->n_lookups; i++) {
                smtpd_dns_query_free(cs->lookups[i].a);
                smtpd_dns_query_free(cs->lookups[i].txt);
        }
        free(cs->lookups);
        free(cs);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdCheckSession *, smtpd_check_session_free);

bool smtpd_check_session_pending(const SmtpdCheckSession *cs) {
        return cs && cs->pending > 0;
}

static void on_dnsbl_reply(SmtpdDnsQuery *q, int error, const SmtpdDnsReply *reply, void *userdata) {
        DnsblLookup *l = userdata;
        SmtpdCheckSession *cs = l->session;

        if (q == l->a) {
                l->a = NULL;
                if (error < 0 || (reply->rcode != SMTPD_DNS_RCODE_NOERROR && reply->rcode != SMTPD_DNS_RCODE_NXDOMAIN)) {
                        if (error < 0)
                                log_warning_errno(error, "DNS blocklist lookup of %s failed, not listed: %m", l->name);
                        else
                                log_warning("DNS blocklist lookup of %s failed (rcode %u), not listed.", l->name,
                                            reply->rcode);
                        l->status = DNSBL_FAILED;
                } else {
                        l->status = reply->n_a > 0 ? DNSBL_LISTED : DNSBL_NOT_LISTED;
                        l->n_addresses = reply->n_a;
                        memcpy(l->addresses, reply->a, sizeof l->addresses);
                }
                /* The text matters only for a listed client. */
                if (l->status != DNSBL_LISTED && l->txt) {
                        l->txt = smtpd_dns_query_free(l->txt);
                        cs->pending--;
                }
        } else {
                l->txt = NULL;
                if (error == 0 && reply->has_txt)
                        memcpy(l->text, reply->txt, sizeof l->text);
        }
        cs->pending--;
        if (cs->pending == 0)
                cs->done(cs->userdata);
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
                cs->lookups = calloc(n, sizeof(DnsblLookup));
                if (!cs->lookups)
                        return -ENOMEM;
                cs->n_lookups = n;
        }
        /* Every lookup starts now, at connect, so that the answers are in by the time they are needed. */
        for (size_t i = 0; i < cs->n_lookups; i++) {
                DnsblLookup *l = cs->lookups + i;

                l->session = cs;
                l->domain = c->dnsbl_domains[i];
                l->status = DNSBL_FAILED;
                r = smtpd_dnsbl_query_name(client, l->domain, l->name, sizeof l->name);
                if (r < 0) {
                        log_warning_errno(r, "Cannot make a DNS blocklist query for %s under %s, not listed: %m",
                                          client->text, l->domain);
                        continue;
                }
                r = smtpd_dns_query_start(c->resolver, l->name, SMTPD_DNS_TYPE_A, on_dnsbl_reply, l, &l->a);
                if (r < 0) {
                        log_warning_errno(r, "Failed to start a DNS blocklist lookup of %s, not listed: %m", l->name);
                        continue;
                }
                l->status = DNSBL_PENDING;
                cs->pending++;
                r = smtpd_dns_query_start(c->resolver, l->name, SMTPD_DNS_TYPE_TXT, on_dnsbl_reply, l, &l->txt);
                if (r < 0)
                        log_warning_errno(r, "Failed to start a DNS TXT lookup of %s, ignoring: %m", l->name);
                else
                        cs->pending++;
        }
        *ret = TAKE_PTR(cs);
        return 0;
}

/* Evaluation. */

typedef enum CheckStatus {
        CHECK_DUNNO,                    /* no decision: the next restriction */
        CHECK_OK,                       /* permitted: the end of this list */
        CHECK_REJECT,                   /* the reply is set: the end of everything */
} CheckStatus;

typedef struct CheckContext {
        SmtpdCheckSession *cs;
        const SmtpdCheckInput *in;
        char *reply;
        SmtpdRestrictionClass cls;
        char client_name[INET6_ADDRSTRLEN + 16];        /* "unknown[192.0.2.1]" */
} CheckContext;

_printf_(2, 3) static CheckStatus check_reject(CheckContext *ctx, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(ctx->reply, SMTPD_REPLY_LINE_MAX - 2, fmt, ap);
        va_end(ap);
        return CHECK_REJECT;
}

/* What "<name>: <class> rejected" names in a reply of this list. */
static void list_subject(CheckContext *ctx, SmtpdRestrictionClass cls, const char **ret_name,
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
        default:
                *ret_name = strempty(ctx->in->recipient);
                *ret_class = "Recipient address";
                break;
        }
}

/* Looks one name up as local_recipient_maps says: 1 found, 0 not, negative errno when it cannot be read. */
static int local_name_known(SmtpdChecks *c, const char *user, const char *full) {
        int error = 0, r;

        if (c->local_passwd && user[0] && !strpbrk(user, "\"\\")) {
                errno = 0;
                if (getpwnam(user))
                        return 1;
                /* getpwnam(3): these mean that there is no such user. */
                if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM)
                        error = -errno;
        }
        for (size_t i = 0; i < c->n_local_tables; i++) {
                Table *t = c->local_tables[i];

                r = full ? table_lookup(t, full, NULL) : 0;
                if (r == 0 && user[0])
                        r = table_lookup(t, user, NULL);
                if (r > 0)
                        return 1;
                if (r == -ENOENT) {
                        /* Not built (yet): empty, as local treats it when it expands aliases, so that
                         * smtpd refuses exactly the recipients local would bounce. Said once. */
                        if (!c->local_warned[i])
                                log_warning("Table %s of local_recipient_maps has not been built (%s is missing): "
                                            "run newaliases or postbusctl map build; taking it as empty.",
                                            table_name(t), table_db_path(t));
                        c->local_warned[i] = true;
                        continue;
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
        _cleanup_free_ char *full = strdup_lower(addr, strlen(addr)), *user = strdup_lower(addr, n),
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

static CheckStatus check_unlisted_recipient(CheckContext *ctx) {
        SmtpdChecks *c = ctx->cs->checks;
        const char *rcpt = ctx->in->recipient;
        int r;

        if (!rcpt || !c->local_check || !address_is_local(c->mydestination, rcpt))
                return CHECK_DUNNO;
        r = local_recipient_known(c, rcpt);
        if (r > 0)
                return CHECK_DUNNO;
        if (r < 0)
                return check_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", rcpt);
        return check_reject(ctx, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table",
                            rcpt);
}

static CheckStatus check_one(CheckContext *ctx, SmtpdRestriction *item);

/* A table value may also be a list of restrictions without arguments ("permit_mynetworks, reject"), as in
 * Postfix; they are evaluated in place of the lookup. Returns how many (at most max), or -EINVAL when the
 * value is not such a list. */
static int value_restrictions(const char *value, SmtpdRestrictionType *ret, size_t max) {
        _cleanup_strv_free_ char **words = NULL;
        size_t n = 0;

        if (config_split_list(value, &words) < 0)
                return -ENOMEM;
        for (char **w = words; *w; w++) {
                SmtpdRestrictionType t = smtpd_restriction_type_from_string(*w);

                if (t < 0 || smtpd_restriction_type_has_arg(t) || n >= max)
                        return -EINVAL;
                ret[n++] = t;
        }
        return n > 0 ? (int) n : -EINVAL;
}

/* Looks the keys up in the table in order; the first one found decides. */
static CheckStatus check_access(CheckContext *ctx, SmtpdRestriction *item, char **keys, const char *name,
                                const char *class) {
        for (char **k = keys; *k; k++) {
                _cleanup_free_ char *value = NULL;
                SmtpdAccessResult a;
                int r;

                r = table_lookup(item->table, *k, &value);
                if (r < 0) {
                        log_warning_errno(r, "%s: lookup of \"%s\" in %s failed: %m", restriction_names[item->type],
                                          *k, item->arg);
                        return check_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", name);
                }
                if (r == 0)
                        continue;
                r = smtpd_access_result_parse(value, &a);
                if (r == -EOPNOTSUPP) {
                        SmtpdRestrictionType types[16];
                        int n = value_restrictions(value, types, ELEMENTSOF(types));

                        for (int i = 0; i < n; i++) {
                                SmtpdRestriction nested = { .type = types[i] };
                                CheckStatus st = check_one(ctx, &nested);

                                if (st != CHECK_DUNNO)
                                        return st;
                        }
                        if (n > 0)
                                return CHECK_DUNNO;
                }
                if (r < 0) {
                        _cleanup_free_ char *v = log_escape(value, strlen(value));
                        log_warning("%s: %s: key \"%s\": %s action \"%s\"", restriction_names[item->type], item->arg,
                                    *k, r == -EOPNOTSUPP ? "unsupported" : "malformed", strna(v));
                        return check_reject(ctx, "451 4.3.5 <%s>: %s rejected: Server configuration error", name,
                                            class);
                }
                switch (a.action) {
                case SMTPD_ACCESS_PERMIT:
                        return CHECK_OK;
                case SMTPD_ACCESS_DUNNO:
                        return CHECK_DUNNO;
                default:
                        return check_reject(ctx, "%u %s <%s>: %s rejected: %s", a.code, a.dsn, name, class, a.text);
                }
        }
        return CHECK_DUNNO;
}

static CheckStatus check_one(CheckContext *ctx, SmtpdRestriction *item) {
        SmtpdChecks *c = ctx->cs->checks;
        const SmtpdCheckInput *in = ctx->in;
        _cleanup_strv_free_ char **keys = NULL;
        const char *name, *class;
        int r = 0;

        list_subject(ctx, ctx->cls, &name, &class);
        switch (item->type) {
        case SMTPD_RESTRICTION_PERMIT:
                return CHECK_OK;
        case SMTPD_RESTRICTION_REJECT:
                return check_reject(ctx, "554 5.7.1 <%s>: %s rejected: Access denied", name, class);
        case SMTPD_RESTRICTION_DEFER:
                return check_reject(ctx, "450 4.3.2 <%s>: %s rejected: Try again later", name, class);
        case SMTPD_RESTRICTION_PERMIT_MYNETWORKS:
                return smtpd_networks_match(c->mynetworks, in->client) ? CHECK_OK : CHECK_DUNNO;
        case SMTPD_RESTRICTION_PERMIT_SASL_AUTHENTICATED:
                return in->authenticated ? CHECK_OK : CHECK_DUNNO;
        case SMTPD_RESTRICTION_REJECT_UNAUTH_DESTINATION:
        case SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION:
                if (!in->recipient || address_is_local(c->mydestination, in->recipient))
                        return CHECK_DUNNO;
                if (item->type == SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION)
                        return check_reject(ctx, "454 4.7.1 <%s>: Relay access denied", in->recipient);
                return check_reject(ctx, "554 5.7.1 <%s>: Relay access denied", in->recipient);
        case SMTPD_RESTRICTION_REJECT_UNLISTED_RECIPIENT:
                return check_unlisted_recipient(ctx);
        case SMTPD_RESTRICTION_REJECT_NON_FQDN_SENDER:
                if (isempty(in->sender) || smtpd_address_fqdn(in->sender))
                        return CHECK_DUNNO;
                return check_reject(ctx, "504 5.5.2 <%s>: Sender address rejected: need fully-qualified address",
                                    in->sender);
        case SMTPD_RESTRICTION_REJECT_NON_FQDN_RECIPIENT:
                if (!in->recipient || smtpd_address_fqdn(in->recipient))
                        return CHECK_DUNNO;
                return check_reject(ctx, "504 5.5.2 <%s>: Recipient address rejected: need fully-qualified address",
                                    in->recipient);
        case SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME:
                if (!in->helo || smtpd_helo_fqdn(in->helo))
                        return CHECK_DUNNO;
                return check_reject(ctx, "504 5.5.2 <%s>: Helo command rejected: need fully-qualified hostname",
                                    in->helo);
        case SMTPD_RESTRICTION_REJECT_INVALID_HELO_HOSTNAME:
                if (!in->helo || smtpd_helo_valid(in->helo))
                        return CHECK_DUNNO;
                return check_reject(ctx, "501 5.5.2 <%s>: Helo command rejected: Invalid name", in->helo);
        case SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS:
                r = smtpd_access_client_keys(in->client, &keys);
                name = ctx->client_name;
                class = "Client host";
                break;
        case SMTPD_RESTRICTION_CHECK_HELO_ACCESS:
                if (!in->helo)
                        return CHECK_DUNNO;
                r = smtpd_access_domain_keys(in->helo, &keys);
                name = in->helo;
                class = "Helo command";
                break;
        case SMTPD_RESTRICTION_CHECK_SENDER_ACCESS:
                if (!in->sender)
                        return CHECK_DUNNO;
                r = smtpd_access_address_keys(in->sender, &keys);
                name = in->sender;
                class = "Sender address";
                break;
        case SMTPD_RESTRICTION_CHECK_RECIPIENT_ACCESS:
                if (!in->recipient)
                        return CHECK_DUNNO;
                r = smtpd_access_address_keys(in->recipient, &keys);
                name = in->recipient;
                class = "Recipient address";
                break;
        case SMTPD_RESTRICTION_REJECT_RBL_CLIENT:
                for (size_t i = 0; i < ctx->cs->n_lookups; i++) {
                        DnsblLookup *l = ctx->cs->lookups + i;

                        bool match = !item->filter;

                        if (!strcaseeq(l->domain, item->arg) || l->status != DNSBL_LISTED)
                                continue;
                        for (unsigned k = 0; k < l->n_addresses && !match; k++)
                                match = smtpd_dnsbl_filter_match(item->filter, l->addresses[k]);
                        if (!match)
                                continue;
                        return check_reject(ctx, "554 5.7.1 Service unavailable; Client host [%s] blocked using %s%s%s",
                                            in->client->text, l->domain, l->text[0] ? "; " : "", l->text);
                }
                return CHECK_DUNNO;
        default:
                assert(false);
                return CHECK_DUNNO;
        }
        if (r < 0) {
                log_oom();
                return check_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", name);
        }
        return check_access(ctx, item, keys, name, class);
}

static CheckStatus check_list(CheckContext *ctx, SmtpdRestrictionClass cls) {
        SmtpdRestrictionList *l = &ctx->cs->checks->lists[cls];

        ctx->cls = cls;
        for (size_t i = 0; i < l->n; i++) {
                CheckStatus s = check_one(ctx, l->items + i);
                if (s != CHECK_DUNNO)
                        return s;
        }
        return CHECK_DUNNO;
}

static void context_init(CheckContext *ctx, SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        *ctx = (CheckContext) { .cs = cs, .in = in, .reply = reply };
        (void) snprintf(ctx->client_name, sizeof ctx->client_name, "unknown[%s]", in->client->text);
        reply[0] = '\0';
}

int smtpd_check_client(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        CheckContext ctx;

        if (cs->checks->config->smtpd_delay_reject)
                return 0;
        if (smtpd_check_session_pending(cs))
                return -EAGAIN;
        context_init(&ctx, cs, in, reply);
        return check_list(&ctx, SMTPD_RESTRICTION_CLIENT) == CHECK_REJECT;
}

int smtpd_check_helo(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        CheckContext ctx;

        if (cs->checks->config->smtpd_delay_reject)
                return 0;
        context_init(&ctx, cs, in, reply);
        return check_list(&ctx, SMTPD_RESTRICTION_HELO) == CHECK_REJECT;
}

int smtpd_check_sender(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        CheckContext ctx;

        if (cs->checks->config->smtpd_delay_reject)
                return 0;
        context_init(&ctx, cs, in, reply);
        return check_list(&ctx, SMTPD_RESTRICTION_SENDER) == CHECK_REJECT;
}

int smtpd_check_rcpt(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply) {
        const Config *config = cs->checks->config;
        CheckContext ctx;

        context_init(&ctx, cs, in, reply);
        if (config->smtpd_delay_reject)
                for (SmtpdRestrictionClass cls = SMTPD_RESTRICTION_CLIENT; cls <= SMTPD_RESTRICTION_SENDER; cls++)
                        if (check_list(&ctx, cls) == CHECK_REJECT)
                                return 1;
        for (SmtpdRestrictionClass cls = SMTPD_RESTRICTION_RELAY; cls <= SMTPD_RESTRICTION_RECIPIENT; cls++)
                if (check_list(&ctx, cls) == CHECK_REJECT)
                        return 1;
        if (config->smtpd_reject_unlisted_recipient && check_unlisted_recipient(&ctx) == CHECK_REJECT)
                return 1;
        return 0;
}
