/* local-expand.c: runs in local, the long-lived process (root): what it does with one recipient, as Postfix's
 * local(8) does: the tree of its destinations and the walk over it, with the Delivered-To and loop checks.
 * Aliases, :include:, .forward and the final deliveries are in local-expand-*.c; the result is a plan of
 * final deliveries for the per-user workers and the command process, and a report line per failure. */
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>

#include "address.h"
#include "local.h"
#include "passwd-cache.h"

/* Who acts as whom: local is root. Alias tables are only read by root; a .forward file is opened as its user,
 * an :include: file as the owner of the context that names it (effective ids, switched back at once: local
 * has no threads). Commands and files run as the owner of the alias table, of the :include: file or of the
 * .forward, and never as root: root-owned tables and files, and root's own .forward, give default_privs
 * instead. A mailbox is written by the worker of its user, which is that user for good; a file or command
 * by a process that takes on its identity. */

/* As Postfix: deeper nesting of aliases, :include: and .forward is taken to be a loop. */
#define LOCAL_DEPTH_MAX 100U

static const char *const local_source_names[_LOCAL_SOURCE_MAX] = {
        [LOCAL_SOURCE_RECIPIENT] = "recipient",
        [LOCAL_SOURCE_ALIAS] = "alias",
        [LOCAL_SOURCE_INCLUDE] = "include",
        [LOCAL_SOURCE_FORWARD] = "forward",
};

bool local_source_allowed(const char *list, LocalSource source) {
        _cleanup_strv_free_ char **l = NULL;

        if (config_split_list(list, &l) < 0)
                return false;
        for (char **s = l; s && *s; s++)
                if (strcaseeq(*s, local_source_names[source]))
                        return true;
        return false;
}

void local_lowercase(char *s) {
        for (; *s; s++)
                if (*s >= 'A' && *s <= 'Z')
                        *s = (char) (*s - 'A' + 'a');
}

/* Whether two local addresses name the same local recipient: every domain in mydestination is the same
 * to local, which looks up the local part alone. */
static bool same_local_part(const char *a, const char *b) {
        const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');
        size_t la = at_a ? (size_t) (at_a - a) : strlen(a), lb = at_b ? (size_t) (at_b - b) : strlen(b);

        return la == lb && strncasecmp(a, b, la) == 0;
}

int local_propagate_extension(const LocalExpand *e, const char *word, const char *unmatched, LocalTargetList *l) {
        _cleanup_strv_free_ char **words = NULL;
        bool listed = false;

        if (isempty(unmatched))
                return 0;
        if (config_split_list(e->c->propagate_unmatched_extensions, &words) < 0)
                return -ENOMEM;
        for (char **w = words; *w && !listed; w++)
                listed = streq(*w, word);
        if (!listed)
                return 0;
        for (size_t k = 0; k < l->n; k++) {
                LocalTarget *t = l->items + k;
                char *at, *s;

                if (t->type != LOCAL_TARGET_ADDRESS)
                        continue;
                at = strrchr(t->value, '@');
                if (asprintf(&s, "%.*s%s%s", (int) (at ? (size_t) (at - t->value) : strlen(t->value)), t->value,
                             unmatched, at ?: "") < 0)
                        return -ENOMEM;
                free(t->value);
                t->value = s;
        }
        return 1;
}

int local_expand_mark_unmatched(LocalExpand *e, size_t first, const char *unmatched) {
        for (size_t k = first; k < e->n_items; k++) {
                if (e->items[k].type != LOCAL_TARGET_INCLUDE || e->items[k].unmatched)
                        continue;
                e->items[k].unmatched = strdup(unmatched);
                if (!e->items[k].unmatched)
                        return -ENOMEM;
        }
        return 0;
}

LocalExtension local_extension_split(const Config *c, const char *local) {
        size_t k = isempty(c->recipient_delimiter) ? strlen(local) : strcspn(local, c->recipient_delimiter);

        if (k == 0 || !local[k])
                return (LocalExtension) { .user_len = strlen(local) };
        /* owner_request_special: owner-foo and foo-request are names of their own, not split at '-'. */
        size_t n = strlen(local);
        if (c->owner_request_special && local[k] == '-' &&
            (strncmp(local, "owner-", 6) == 0 || (n > 8 && streq(local + n - 8, "-request"))))
                return (LocalExtension) { .user_len = n };
        return (LocalExtension) { .user_len = k, .delimiter = { local[k], '\0' }, .extension = local + k + 1 };
}

const char *local_expand_item_address(const LocalExpand *e, size_t i) {
        for (; i != SIZE_MAX; i = e->items[i].parent)
                if (e->items[i].type == LOCAL_TARGET_ADDRESS)
                        return e->items[i].value;
        return e->m->recipient;
}

void local_expand_report(LocalExpand *e, const char *to, const MailboxResult *r) {
        const char *orig = e->m->recipient;

        (void) local_report_delivery(e->report, to, strcaseeq(to, orig) ? NULL : orig, r);
}

void local_expand_report_item(LocalExpand *e, size_t i, const MailboxResult *r) {
        local_expand_report(e, local_expand_item_address(e, i), r);
}

void local_expand_fail(LocalExpand *e, size_t i, const char *dsn, const char *fmt, ...) {
        MailboxResult r;
        char text[MAILBOX_TEXT_SIZE];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        mailbox_result_set(&r, dsn, "%s", text);
        local_expand_report_item(e, i, &r);
}

int local_expand_privs_for_owner(LocalExpand *e, uid_t uid, LocalPrivs *ret) {
        struct passwd *pw;

        errno = 0;
        pw = uid == 0 ? getpwnam(e->c->default_privs) : getpwuid(uid);
        if (!pw)
                return errno > 0 ? -errno : -ESRCH;
        if (pw->pw_uid == 0)
                return -EPERM;          /* default_privs must not be root */
        return local_privs_from_pw(pw, ret);
}

/* Adds a destination below parent; addresses without a domain get @$myorigin. */
static int item_add(LocalExpand *e, size_t parent, LocalSource source, const LocalPrivs *privs, LocalTargetType type,
                    const char *value) {
        _cleanup_free_ char *v = NULL;
        LocalItem *items;
        int r;

        if (e->n_items >= (size_t) e->c->duplicate_filter_limit)
                return -E2BIG;
        if (type == LOCAL_TARGET_ADDRESS && !strchr(value, '@')) {
                if (asprintf(&v, "%s@%s", value, e->c->myorigin) < 0)
                        return -ENOMEM;
        } else {
                v = strdup(value);
                if (!v)
                        return -ENOMEM;
        }
        items = realloc(e->items, (e->n_items + 1) * sizeof(LocalItem));
        if (!items)
                return -ENOMEM;
        e->items = items;
        LocalItem *it = e->items + e->n_items;
        *it = (LocalItem) {
                .type = type,
                .parent = parent,
                .depth = parent == SIZE_MAX ? 0 : e->items[parent].depth + 1,
                .source = source,
                .luser = parent != SIZE_MAX && e->items[parent].luser,
        };
        r = local_privs_copy(privs, &it->privs);
        if (r < 0)
                return r;
        it->value = TAKE_PTR(v);
        e->n_items++;
        return 0;
}

void local_expand_limit_exceeded(LocalExpand *e, size_t i) {
        if (e->limit_reported)
                return;
        e->limit_reported = true;
        local_expand_fail(e, i, "5.3.0",
                          "too many destinations in the expansion of %s (duplicate_filter_limit = %" PRIi64 ")",
                          e->m->recipient, e->c->duplicate_filter_limit);
}

void local_expand_add_children(LocalExpand *e, size_t i, LocalSource source, const LocalPrivs *privs,
                               const LocalTargetList *l) {
        for (size_t k = 0; k < l->n; k++) {
                int r = item_add(e, i, source, privs, l->items[k].type, l->items[k].value);
                if (r == -E2BIG) {
                        local_expand_limit_exceeded(e, i);
                        return;
                }
                if (r < 0) {
                        local_expand_fail(e, i, "4.3.0", "cannot expand %s: %s", local_expand_item_address(e, i),
                                          strerror(-r));
                        return;
                }
        }
}

bool local_expand_seen(LocalExpand *e, LocalTargetType type, uid_t uid, const char *value) {
        _cleanup_free_ char *key = NULL;

        if (asprintf(&key, "%s\n%u\n%s", local_target_type_to_string(type), (unsigned) uid, value) < 0)
                return false;
        for (size_t k = 0; k < e->n_seen; k++)
                if (streq(e->seen[k], key))
                        return true;
        char **l = realloc(e->seen, (e->n_seen + 1) * sizeof(char *));
        if (!l)
                return false;
        e->seen = l;
        e->seen[e->n_seen++] = TAKE_PTR(key);
        return false;
}

struct passwd *local_expand_getpwnam(LocalExpand *e, size_t i, const char *user) {
        struct passwd *pw;

        pw = getpwnam_recent(user);
        if (!pw) {
                if (passwd_not_found(errno))
                        local_expand_fail(e, i, "5.1.1", "unknown user: \"%s\"", user);
                else
                        local_expand_fail(e, i, "4.3.0", "user lookup error: %m");
        }
        return pw;
}

/* luser_relay, as Postfix: a recipient with neither alias nor user account goes to this address instead of
 * bouncing (expanded per recipient: $user, $local, $extension, $domain, $recipient). Only once: an unknown
 * user below the relay address bounces. 1 when it took the recipient, 0 when it does not apply. */
static int luser_relay(LocalExpand *e, size_t i, const char *local, const char *user, const char *domain,
                       const LocalExtension *x) {
        const LocalPrivs none = { .uid = (uid_t) -1, .gid = (gid_t) -1 };
        _cleanup_free_ char *l = strdup(local), *u = strdup(user), *d = strdup(strempty(domain)),
                            *ext = strdup(strempty(x->extension)), *rcpt = strdup(e->items[i].value),
                            *delim = strdup(x->delimiter), *to = NULL;
        LocalTargetList list = {};
        int r;

        if (isempty(e->c->luser_relay) || e->items[i].luser)
                return 0;
        if (!l || !u || !d || !ext || !rcpt || !delim) {
                local_expand_fail(e, i, "4.3.0", "out of memory");
                return 1;
        }
        local_sanitize(l);
        local_sanitize(u);
        local_sanitize(d);
        local_sanitize(ext);
        local_sanitize(rcpt);
        local_sanitize(delim);
        const char *vars[] = {
                "user", u, "local", l, "domain", d, "extension", ext, "recipient", rcpt,
                "recipient_delimiter", delim, "home", "", "shell", "", NULL,
        };
        r = format_expand_vars(e->c->luser_relay, vars, &to);
        if (r >= 0)
                r = local_targets_parse(to, strlen(to), 1, &list);
        if (r < 0 || list.n != 1 || list.items[0].type != LOCAL_TARGET_ADDRESS) {
                local_target_list_done(&list);
                local_expand_fail(e, i, "4.3.5", "luser_relay = %s: not one address", e->c->luser_relay);
                return 1;
        }
        size_t first = e->n_items;
        local_expand_add_children(e, i, LOCAL_SOURCE_RECIPIENT, &none, &list);
        local_target_list_done(&list);
        for (size_t k = first; k < e->n_items; k++)
                e->items[k].luser = true;
        return 1;
}

/* An address: a loop, another domain, an alias, a .forward, or else the mailbox of its user. */
static void expand_address(LocalExpand *e, size_t i) {
        _cleanup_free_ char *local = NULL, *domain = NULL;
        LocalItem *it = e->items + i;
        const char *addr = it->value;
        struct passwd *pw;
        int r;

        if (!address_valid(addr) || !strchr(addr, '@')) {
                local_expand_fail(e, i, "5.1.3", "bad address syntax: %s", addr);
                return;
        }
        if (it->parent != SIZE_MAX && !address_is_local(e->mydestination, addr)) {
                local_expand_forward_add(e, i);
                return;
        }
        if (local_header_scan_has(&e->scan, addr)) {
                local_expand_fail(e, i, "5.4.6", "mail forwarding loop for %s", addr);
                return;
        }
        for (size_t j = it->parent; j != SIZE_MAX; j = e->items[j].parent) {
                if (e->items[j].type != LOCAL_TARGET_ADDRESS || !same_local_part(e->items[j].value, addr))
                        continue;
                if (j != it->parent) {
                        local_expand_fail(e, i, "5.4.6", "%s loop for %s",
                                          it->source == LOCAL_SOURCE_ALIAS ? "alias database" : "mail forwarding",
                                          addr);
                        return;
                }
                /* A name that expands to itself: "alice: alice, bob" is alice's own delivery, and so is
                 * "alice" in alice's .forward (without a second look at the .forward). */
                it->skip_alias = true;
                if (it->source != LOCAL_SOURCE_ALIAS)
                        it->skip_forward = true;
        }
        if (it->depth > LOCAL_DEPTH_MAX) {
                local_expand_fail(e, i, "5.4.6", "possible mail forwarding loop for %s", addr);
                return;
        }

        r = address_split(addr, &local, &domain);
        if (r < 0) {
                local_expand_fail(e, i, "4.3.0", "out of memory");
                return;
        }
        local_lowercase(local);
        const LocalExtension x = local_extension_split(e->c, local);
        _cleanup_free_ char *user = strndup(local, x.user_len);
        if (!user) {
                local_expand_fail(e, i, "4.3.0", "out of memory");
                return;
        }

        if (!it->skip_alias && local_expand_alias(e, i, local, user, &x) > 0)
                return;

        /* A user without an account: as Postfix, mailbox_transport takes it all the same (the server behind
         * it may know users that the password database does not), then fallback_transport, then
         * luser_relay; else it bounces. */
        pw = getpwnam_recent(user);
        if (!pw && passwd_not_found(errno)) {
                _cleanup_free_ char *transport = NULL;

                r = local_expand_transport(e, false, user, addr, &transport);
                if (r == 0)
                        r = local_expand_transport(e, true, user, addr, &transport);
                if (r > 0)
                        local_expand_pass(e, addr, transport);
                if (r != 0 || luser_relay(e, i, local, user, domain, &x) > 0)
                        return;
        }
        if (!pw)
                pw = local_expand_getpwnam(e, i, user);
        if (!pw)
                return;

        if (!it->skip_forward && local_expand_forward(e, i, pw, local, domain, &x) > 0)
                return;
        local_expand_deliver_user(e, pw, addr);
}

static int scan_piece(const char *data, size_t len, void *userdata) {
        int r = local_header_scan_feed(userdata, data, len);

        return r < 0 ? r : r > 0 ? -ECANCELED : 0;
}

static void expand_done(LocalExpand *e) {
        local_header_scan_done(&e->scan);
        for (size_t k = 0; k < e->n_items; k++) {
                free(e->items[k].value);
                free(e->items[k].owner);
                free(e->items[k].unmatched);
                local_privs_done(&e->items[k].privs);
        }
        free(e->items);
        for (size_t k = 0; k < e->n_seen; k++)
                free(e->seen[k]);
        free(e->seen);
        strv_free(e->mydestination);
}

typedef void (*ExpandTargetFunc)(LocalExpand *e, size_t i);

static const ExpandTargetFunc expand_target[_LOCAL_TARGET_TYPE_MAX] = {
        [LOCAL_TARGET_ADDRESS] = expand_address,
        [LOCAL_TARGET_MAILBOX] = local_expand_mailbox,
        [LOCAL_TARGET_COMMAND] = local_expand_command,
        [LOCAL_TARGET_FILE] = local_expand_file,
        [LOCAL_TARGET_INCLUDE] = local_expand_include,
};

int local_aliases_open(LocalAliases *a, const Config *c) {
        _cleanup_strv_free_ char **specs = NULL;
        int r;

        if (a->config == c)
                return 0;
        local_aliases_done(a);
        r = config_split_list(c->alias_maps, &specs);
        if (r < 0)
                return r;
        for (char **s = specs; s && *s; s++) {
                Table **l = realloc(a->tables, (a->n_tables + 1) * sizeof(Table *));
                if (!l)
                        return -ENOMEM;
                a->tables = l;
                r = table_open(*s, &a->tables[a->n_tables]);
                if (r < 0)
                        return r;
                a->n_tables++;
        }
        if ((r = table_list_open(c->mailbox_transport_maps, &a->mailbox_transport_maps)) < 0 ||
            (r = table_list_open(c->mailbox_command_maps, &a->mailbox_command_maps)) < 0 ||
            (r = table_list_open(c->fallback_transport_maps, &a->fallback_transport_maps)) < 0)
                return r;
        a->config = c;
        return 0;
}

void local_aliases_done(LocalAliases *a) {
        for (size_t k = 0; k < a->n_tables; k++)
                table_free(a->tables[k]);
        free(a->tables);
        table_list_free(a->mailbox_transport_maps);
        table_list_free(a->mailbox_command_maps);
        table_list_free(a->fallback_transport_maps);
        *a = (LocalAliases) {};
}

void local_expand(const MailboxMessage *m, const Config *c, LocalAliases *aliases, LocalReport *report,
                  LocalPlan *plan) {
        LocalExpand e = { .m = m, .c = c, .report = report, .plan = plan, .aliases = aliases };
        const LocalPrivs none = { .uid = (uid_t) -1, .gid = (gid_t) -1 };
        int r;

        local_header_scan_init(&e.scan, (size_t) c->duplicate_filter_limit);
        r = queue_file_content_foreach(m->queue_fd, m->envelope, scan_piece, &e.scan);
        if (r >= 0)
                r = local_header_scan_finish(&e.scan);
        if (r < 0 && r != -ECANCELED) {
                local_expand_fail(&e, SIZE_MAX, "4.3.0", "%s",
                                  r == -EBADMSG ? "queue file is corrupt" : "cannot read the queue file");
                goto finish;
        }
        r = config_split_list(c->mydestination, &e.mydestination);
        if (r >= 0)
                r = local_aliases_open(aliases, c);
        if (r < 0) {
                local_expand_fail(&e, SIZE_MAX, "4.3.0", "cannot open alias_maps: %s", strerror(-r));
                goto finish;
        }
        r = item_add(&e, SIZE_MAX, LOCAL_SOURCE_RECIPIENT, &none, LOCAL_TARGET_ADDRESS, m->recipient);
        if (r < 0) {
                local_expand_fail(&e, SIZE_MAX, "4.3.0", "out of memory");
                goto finish;
        }
        for (size_t i = 0; i < e.n_items; i++) {
                LocalTargetType t = e.items[i].type;
                if (t >= 0 && t < _LOCAL_TARGET_TYPE_MAX && expand_target[t])
                        expand_target[t](&e, i);
        }
finish:
        expand_done(&e);
}

