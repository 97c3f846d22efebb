/* smtpd-access.c: access(5) tables in the smtpd process: check_client_access, check_helo_access,
 * check_sender_access, check_recipient_access and check_reverse_client_hostname_access look up their keys,
 * most specific first, and the value found (OK, REJECT, 4NN/5NN text, a list of restrictions or restriction
 * classes, ...) decides. */
#include <ctype.h>
#include <sys/socket.h>

#include "log.h"
#include "string-util.h"
#include "smtpd-restrictions-internal.h"

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
                a.keyword = true;
                strcpy(a.dsn, defer ? "4.7.1" : "5.7.1");
                copy_printable(a.text, sizeof a.text, *text ? text : "Access denied");
                *ret = a;
                return 0;
        }

        static const struct {
                const char *name;
                SmtpdAccessAction action;
        } message_actions[] = {
                { "HOLD", SMTPD_ACCESS_HOLD },       { "DISCARD", SMTPD_ACCESS_DISCARD },
                { "FILTER", SMTPD_ACCESS_FILTER },   { "REDIRECT", SMTPD_ACCESS_REDIRECT },
                { "PREPEND", SMTPD_ACCESS_PREPEND }, { "WARN", SMTPD_ACCESS_WARN },
        };
        for (size_t i = 0; i < ELEMENTSOF(message_actions); i++) {
                if (strlen(message_actions[i].name) != word || strncasecmp(value, message_actions[i].name, word) != 0)
                        continue;
                a.action = message_actions[i].action;
                copy_printable(a.text, sizeof a.text, text);
                size_t end = strlen(a.text);
                while (end > 0 && a.text[end - 1] == ' ')
                        a.text[--end] = '\0';
                size_t blank = strcspn(a.text, " ");
                switch (a.action) {
                case SMTPD_ACCESS_FILTER:
                        /* transport:nexthop, the transport a name of master.cf */
                        if (blank != end || strcspn(a.text, ":") == 0 || !strchr(a.text, ':'))
                                return -EINVAL;
                        break;
                case SMTPD_ACCESS_REDIRECT:
                        if (end == 0 || blank != end || !strchr(a.text, '@'))
                                return -EINVAL;
                        break;
                case SMTPD_ACCESS_PREPEND: {
                        /* "Name: value", the name printable ASCII without ':' or space (RFC 5322 2.2) */
                        size_t n = strcspn(a.text, ": ");
                        if (n == 0 || a.text[n] != ':')
                                return -EINVAL;
                        break;
                }
                default:
                        break;
                }
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

char *smtpd_strdup_lower(const char *s, size_t len) {
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
                        r = strv_push(&l, &n, smtpd_strdup_lower(client->text, len));
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

                r = strv_push(l, n, smtpd_strdup_lower(p, len));
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
        r = strv_push(&l, &n, smtpd_strdup_lower(address, strlen(address)));
        if (r >= 0 && at && at[1])
                r = push_domain_keys(&l, &n, at + 1);
        if (r >= 0) {
                size_t local = at ? (size_t) (at - address) : strlen(address);
                char *k = smtpd_strdup_lower(address, local);

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

/* A table value may also be a list of restrictions without arguments ("permit_mynetworks, reject") and of
 * restriction classes, as in Postfix; they are evaluated in place of the lookup. Returns how many (at most
 * max), or -EINVAL when the value is not such a list. */
static int value_restrictions(const SmtpdChecks *c, const char *value, SmtpdRestriction *ret, size_t max) {
        _cleanup_strv_free_ char **words = NULL;
        size_t n = 0;

        if (config_split_list(value, &words) < 0)
                return -ENOMEM;
        for (char **w = words; *w; w++) {
                SmtpdRestrictionType t = smtpd_restriction_type_from_string(*w);

                if (n >= max)
                        return -EINVAL;
                ret[n] = (SmtpdRestriction) { .type = t };
                if (t < 0) {
                        size_t k = 0;

                        while (k < c->n_classes && !strcaseeq(c->class_names[k], *w))
                                k++;
                        if (k == c->n_classes)
                                return -EINVAL;
                        ret[n] = (SmtpdRestriction) { .type = SMTPD_RESTRICTION_CLASS_NAME, .class_index = k };
                } else if (smtpd_restriction_type_has_arg(t))
                        return -EINVAL;
                n++;
        }
        return n > 0 ? (int) n : -EINVAL;
}

void smtpd_message_actions_clear(SmtpdMessageActions *a) {
        a->hold = mfree(a->hold);
        a->discard = mfree(a->discard);
        a->filter = mfree(a->filter);
        a->redirect = mfree(a->redirect);
        for (size_t i = 0; i < a->n_prepend; i++)
                free(a->prepend[i]);
        a->prepend = mfree(a->prepend);
        a->n_prepend = 0;
}

static int replace_string(char **s, const char *v) {
        char *n = strdup(v);

        if (!n)
                return -ENOMEM;
        free(*s);
        *s = n;
        return 0;
}

/* A message-wide action: noted for the message, logged as Postfix does ("<action>: RCPT from client: <key>:
 * <class> triggers <ACTION> action"). */
static SmtpdCheckStatus message_action(SmtpdCheckContext *ctx, const SmtpdAccessResult *a, const char *name,
                                       const char *class, const char *source, const char *key) {
        static const char *const names[_SMTPD_ACCESS_ACTION_MAX] = {
                [SMTPD_ACCESS_HOLD] = "HOLD",         [SMTPD_ACCESS_DISCARD] = "DISCARD",
                [SMTPD_ACCESS_FILTER] = "FILTER",     [SMTPD_ACCESS_REDIRECT] = "REDIRECT",
                [SMTPD_ACCESS_PREPEND] = "PREPEND",   [SMTPD_ACCESS_WARN] = "WARN",
        };
        SmtpdMessageActions *m = ctx->in->actions;
        _cleanup_free_ char *ename = log_escape(name, strlen(name)), *ekey = log_escape(key, strlen(key)),
                            *sender = log_escape(strempty(ctx->in->sender), strlen(strempty(ctx->in->sender)));
        int r = 0;

        log_mail(LOG_INFO, NULL, LOG_FIELDS({ "SMTPD_ACTION", names[a->action] }),
                 "%s: client %s: <%s>: %s triggers %s action%s%s (key \"%s\" in %s); from=<%s>", names[a->action],
                 ctx->client_name, strempty(ename), class, names[a->action], a->text[0] ? ": " : "", a->text,
                 strempty(ekey), source, strempty(sender));
        switch (a->action) {
        case SMTPD_ACCESS_HOLD:
                if (!m->hold)
                        r = replace_string(&m->hold, a->text[0] ? a->text : "");
                break;
        case SMTPD_ACCESS_DISCARD:
                if (!m->discard)
                        r = replace_string(&m->discard, a->text);
                if (r >= 0)
                        return SMTPD_CHECK_OK;  /* the lists end here: everything is accepted */
                break;
        case SMTPD_ACCESS_FILTER:
                r = replace_string(&m->filter, a->text);
                break;
        case SMTPD_ACCESS_REDIRECT:
                r = replace_string(&m->redirect, a->text);
                break;
        case SMTPD_ACCESS_PREPEND:
                for (size_t i = 0; i < m->n_prepend; i++)
                        if (streq(m->prepend[i], a->text))
                                return SMTPD_CHECK_DUNNO;       /* once, though asked at every RCPT */
                if (m->n_prepend >= 64)
                        return smtpd_restriction_reject(ctx, "451 4.3.5 <%s>: %s rejected: Too many headers to add",
                                                        name, class);
                r = strv_push(&m->prepend, &m->n_prepend, strdup(a->text));
                break;
        default:
                break;
        }
        if (r < 0) {
                log_oom();
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary failure", name);
        }
        return SMTPD_CHECK_DUNNO;
}

SmtpdCheckStatus smtpd_access_action(SmtpdCheckContext *ctx, const char *value, const char *name, const char *class,
                                     const char *source, const char *key) {
        SmtpdAccessResult a;
        int r;

        r = smtpd_access_result_parse(value, &a);
        if (r == -EOPNOTSUPP) {
                SmtpdRestriction items[16];
                int n = value_restrictions(ctx->cs->checks, value, items, ELEMENTSOF(items));

                if (n > 0)
                        return smtpd_restriction_check_items(ctx, items, (size_t) n);
        }
        /* Without a message to note them for, the message-wide actions cannot be honoured: said, not ignored. */
        if (r >= 0 && a.action >= SMTPD_ACCESS_HOLD && !ctx->in->actions)
                r = -EOPNOTSUPP;
        if (r < 0) {
                _cleanup_free_ char *v = log_escape(value, strlen(value)), *k = log_escape(key, strlen(key));
                log_warning("%s: key \"%s\": %s action \"%s\"", source, strna(k),
                            r == -EOPNOTSUPP ? "unsupported" : "malformed", strna(v));
                return smtpd_restriction_reject(ctx, "451 4.3.5 <%s>: %s rejected: Server configuration error", name,
                                                class);
        }
        switch (a.action) {
        case SMTPD_ACCESS_PERMIT:
                return SMTPD_CHECK_OK;
        case SMTPD_ACCESS_DUNNO:
                return SMTPD_CHECK_DUNNO;
        case SMTPD_ACCESS_REJECT:
                if (a.keyword) {
                        const Config *config = ctx->cs->checks->config;

                        a.code = (unsigned) (a.code < 500 ? config->access_map_defer_code
                                                          : config->access_map_reject_code);
                        (void) smtpd_reply_dsn(a.code, "7.1", a.dsn);
                }
                return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: %s", a.code, a.dsn, name, class, a.text);
        default:
                return message_action(ctx, &a, name, class, source, key);
        }
}

/* Looks the keys up in the table in order; the first one found decides. n_full: how many of the first keys
 * are whole ones (the address, the domain); full_also: one more whole key further on (the client address
 * after its names), or SIZE_MAX. The others are partial keys, which a pattern table (regexp:, pcre:, cidr:)
 * is not asked, as in Postfix. */
static SmtpdCheckStatus check_access(SmtpdCheckContext *ctx, const SmtpdRestriction *item, char **keys,
                                     size_t n_full, size_t full_also, const char *name, const char *class) {
        for (char **k = keys; *k; k++) {
                _cleanup_free_ char *value = NULL;
                size_t pos = (size_t) (k - keys);
                int r;

                if (pos < n_full || pos == full_also)
                        r = table_lookup(item->table, *k, &value);
                else
                        r = table_lookup_partial(item->table, *k, &value);
                if (r < 0) {
                        log_warning_errno(r, "%s: lookup of \"%s\" in %s failed: %m",
                                          smtpd_restriction_type_to_string(item->type), *k, item->arg);
                        return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", name);
                }
                if (r == 0)
                        continue;
                return smtpd_access_action(ctx, value, name, class, item->arg, *k);
        }
        return SMTPD_CHECK_DUNNO;
}

/* The list a check_*_access restriction takes its subject from: its name in the reply and the keys. */
static SmtpdRestrictionClass access_subject(SmtpdRestrictionType t) {
        switch (t) {
        case SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS:
                return SMTPD_RESTRICTION_CLIENT;
        case SMTPD_RESTRICTION_CHECK_HELO_ACCESS:
                return SMTPD_RESTRICTION_HELO;
        case SMTPD_RESTRICTION_CHECK_SENDER_ACCESS:
                return SMTPD_RESTRICTION_SENDER;
        default:
                return SMTPD_RESTRICTION_RECIPIENT;
        }
}

/* check_client_access, as Postfix: the client's (confirmed) name and its parent domains, then the address;
 * *ret_n_names: how many names come first. */
static int client_keys(const SmtpdCheckInput *in, char ***ret, size_t *ret_n_names) {
        _cleanup_strv_free_ char **names = NULL, **addresses = NULL;
        char **l;
        size_t n = 0, m = 0;
        int r;

        if (in->peer && in->peer->name_status == SMTPD_PEER_OK) {
                r = smtpd_access_domain_keys(in->peer->name, &names);
                if (r < 0)
                        return r;
        }
        r = smtpd_access_client_keys(in->client, &addresses);
        if (r < 0 || !names) {
                if (r >= 0) {
                        *ret = TAKE_PTR(addresses);
                        *ret_n_names = 0;
                }
                return r;
        }
        while (names[n])
                n++;
        while (addresses[m])
                m++;
        l = reallocarray(names, n + m + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        names = l;
        memcpy(l + n, addresses, (m + 1) * sizeof(char *));
        addresses = mfree(addresses);   /* the strings moved */
        *ret = TAKE_PTR(names);
        *ret_n_names = n;
        return 0;
}

/* check_reverse_client_hostname_access, as Postfix: the client's name from its PTR record, verified or not,
 * and its parent domains, then the address; the reply names the PTR name. OK would let a name anyone can
 * put in their PTR record pass everything: it is refused as a configuration error, DUNNO being the way to
 * make an exception. */
static SmtpdCheckStatus check_reverse_client_access(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        const SmtpdCheckInput *in = ctx->in;
        _cleanup_strv_free_ char **keys = NULL, **addresses = NULL;
        const char *name = in->peer ? in->peer->reverse_name : SMTPD_PEER_UNKNOWN;
        size_t n = 0, m = 0;
        SmtpdCheckStatus s;
        int r;

        r = streq(name, SMTPD_PEER_UNKNOWN) ? 0 : smtpd_access_domain_keys(name, &keys);
        if (r >= 0)
                r = smtpd_access_client_keys(in->client, &addresses);
        n = strv_length(keys);
        for (; r >= 0 && addresses[m]; m++)
                r = strv_push(&keys, &n, strdup(addresses[m]));
        if (r < 0) {
                log_oom();
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", name);
        }
        if (!keys)
                return SMTPD_CHECK_DUNNO;       /* neither a name nor an address (a local socket) */
        s = check_access(ctx, item, keys, 1, n > m ? n - m : SIZE_MAX, name, "Unverified Client host");
        if (s == SMTPD_CHECK_OK && ctx->warn_depth == 0) {
                log_warning("Restriction check_reverse_client_hostname_access (%s) returns OK for %s: this is not "
                            "allowed, as the name is the client's to choose; use DUNNO to make an exception.",
                            item->arg, name);
                return smtpd_restriction_reject(ctx, "451 4.3.5 Server configuration error");
        }
        return s;
}

SmtpdCheckStatus smtpd_restriction_check_access(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        SmtpdRestrictionClass subject = access_subject(item->type);
        const SmtpdCheckInput *in = ctx->in;
        _cleanup_strv_free_ char **keys = NULL;
        const char *name, *class, *address;
        int r;

        size_t n_full = 1, full_also = SIZE_MAX, n_names = 0;

        if (item->type == SMTPD_RESTRICTION_CHECK_REVERSE_CLIENT_HOSTNAME_ACCESS)
                return check_reverse_client_access(ctx, item);
        smtpd_restriction_subject(ctx, subject, &name, &class);
        if (subject == SMTPD_RESTRICTION_CLIENT) {
                r = client_keys(in, &keys, &n_names);
                /* The name, then the address, are whole keys. */
                full_also = n_names > 0 ? n_names : SIZE_MAX;
        } else if (subject == SMTPD_RESTRICTION_HELO) {
                if (!in->helo)
                        return SMTPD_CHECK_DUNNO;
                r = smtpd_access_domain_keys(in->helo, &keys);
        } else {
                address = subject == SMTPD_RESTRICTION_SENDER ? in->sender : in->recipient;
                if (!address)
                        return SMTPD_CHECK_DUNNO;
                r = smtpd_access_address_keys(address, &keys);
                /* The address and its domain are whole keys; parent domains and "user@" partial ones. */
                const char *at = strrchr(address, '@');
                n_full = at && at[1] ? 2 : 1;
        }
        if (r < 0) {
                log_oom();
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", name);
        }
        return check_access(ctx, item, keys, n_full, full_also, name, class);
}
