/* local-expand.c: what the delivery child does with one recipient, as Postfix's local(8) does it: the
 * Delivered-To loop check, alias_maps, :include: files and ~/.forward, each destination delivered once
 * (mailbox, |command, /file) or forwarded through cleanup, one report line per final delivery.
 *
 * Who acts as whom: the child is root. Alias tables and files are only read by root; a .forward file is
 * opened as its user, an :include: file as the owner of the context that names it. Commands and files
 * run as the owner of the alias table, of the :include: file or of the .forward, and never as root:
 * root-owned tables and files, and root's own .forward, give default_privs instead. Each mailbox or file
 * delivery runs in a process of its own that takes on that identity; a command is such a process. */
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "address.h"
#include "local.h"
#include "table.h"

/* As Postfix: deeper nesting of aliases, :include: and .forward is taken to be a loop. */
#define LOCAL_DEPTH_MAX 100U

typedef enum LocalSource {
        LOCAL_SOURCE_RECIPIENT,
        LOCAL_SOURCE_ALIAS,
        LOCAL_SOURCE_INCLUDE,
        LOCAL_SOURCE_FORWARD,
        _LOCAL_SOURCE_MAX,
} LocalSource;

static const char *const local_source_names[_LOCAL_SOURCE_MAX] = {
        [LOCAL_SOURCE_RECIPIENT] = "recipient",
        [LOCAL_SOURCE_ALIAS] = "alias",
        [LOCAL_SOURCE_INCLUDE] = "include",
        [LOCAL_SOURCE_FORWARD] = "forward",
};

typedef struct Item {
        LocalTargetType type;
        char *value;                    /* ADDRESS: qualified; MAILBOX: user; else command or path */
        size_t parent;                  /* SIZE_MAX: the recipient itself */
        unsigned depth;
        LocalSource source;
        LocalPrivs privs;               /* for commands, files and :include: (uid (uid_t) -1: none yet) */
        bool skip_alias, skip_forward;
} Item;

typedef struct ForwardGroup {
        char *delivered_to;
        char **recipients;              /* NULL-terminated */
        size_t n;
} ForwardGroup;

typedef struct Expand {
        const LocalMessage *m;
        const Config *c;
        int report_fd;
        LocalHeaderScan scan;
        Item *items;
        size_t n_items;
        char **seen;                    /* final deliveries done, as "type\nidentity\nvalue" */
        size_t n_seen;
        ForwardGroup *groups;
        size_t n_groups;
        char **mydestination;
        Table **tables;
        size_t n_tables;
        bool limit_reported;
} Expand;

static void lower(char *s) {
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

/* user+extension: the length of the user part of local and the extension with its delimiter, as Postfix
 * splits at the first of the recipient_delimiter characters (not at the very start). */
typedef struct Extension {
        size_t user_len;
        char delimiter[2];
        const char *extension;          /* NULL: none */
} Extension;

static Extension split_extension(const Config *c, const char *local) {
        size_t k = isempty(c->recipient_delimiter) ? strlen(local) : strcspn(local, c->recipient_delimiter);

        if (k == 0 || !local[k])
                return (Extension) { .user_len = strlen(local) };
        return (Extension) { .user_len = k, .delimiter = { local[k], '\0' }, .extension = local + k + 1 };
}

/* The local address an item belongs to: itself or its nearest address ancestor. */
static const char *item_address(const Expand *e, size_t i) {
        for (; i != SIZE_MAX; i = e->items[i].parent)
                if (e->items[i].type == LOCAL_TARGET_ADDRESS)
                        return e->items[i].value;
        return e->m->recipient;
}

static void report(Expand *e, const char *to, const LocalResult *r) {
        const char *orig = e->m->recipient;

        (void) local_report_delivery(e->report_fd, to, strcaseeq(to, orig) ? NULL : orig, r);
}

static void report_item(Expand *e, size_t i, const LocalResult *r) {
        report(e, item_address(e, i), r);
}

_printf_(4, 5) static void fail_item(Expand *e, size_t i, const char *dsn, const char *fmt, ...) {
        LocalResult r;
        char text[LOCAL_TEXT_SIZE];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        local_result_set(&r, dsn, "%s", text);
        report_item(e, i, &r);
}

static int privs_from_pw(const struct passwd *pw, LocalPrivs *ret) {
        LocalPrivs p = {
                .uid = pw->pw_uid,
                .gid = pw->pw_gid,
                .user = strdup(pw->pw_name),
                .home = strdup(strempty(pw->pw_dir)),
                .shell = strdup(isempty(pw->pw_shell) ? "/bin/sh" : pw->pw_shell),
        };

        if (!p.user || !p.home || !p.shell) {
                local_privs_done(&p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

/* The identity of files and commands named by something uid owns: uid, or default_privs for root. */
static int privs_for_owner(Expand *e, uid_t uid, LocalPrivs *ret) {
        struct passwd *pw;

        errno = 0;
        pw = uid == 0 ? getpwnam(e->c->default_privs) : getpwuid(uid);
        if (!pw)
                return errno > 0 ? -errno : -ESRCH;
        if (pw->pw_uid == 0)
                return -EPERM;          /* default_privs must not be root */
        return privs_from_pw(pw, ret);
}

static int privs_copy(const LocalPrivs *p, LocalPrivs *ret) {
        if (p->uid == (uid_t) -1) {
                *ret = (LocalPrivs) { .uid = (uid_t) -1, .gid = (gid_t) -1 };
                return 0;
        }
        struct passwd pw = {
                .pw_name = p->user, .pw_uid = p->uid, .pw_gid = p->gid, .pw_dir = p->home, .pw_shell = p->shell,
        };
        return privs_from_pw(&pw, ret);
}

/* Adds a destination below parent; addresses without a domain get @$myorigin. */
static int item_add(Expand *e, size_t parent, LocalSource source, const LocalPrivs *privs, LocalTargetType type,
                    const char *value) {
        _cleanup_free_ char *v = NULL;
        Item *items;
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
        items = realloc(e->items, (e->n_items + 1) * sizeof(Item));
        if (!items)
                return -ENOMEM;
        e->items = items;
        Item *it = e->items + e->n_items;
        *it = (Item) {
                .type = type,
                .parent = parent,
                .depth = parent == SIZE_MAX ? 0 : e->items[parent].depth + 1,
                .source = source,
        };
        r = privs_copy(privs, &it->privs);
        if (r < 0)
                return r;
        it->value = TAKE_PTR(v);
        e->n_items++;
        return 0;
}

static void limit_exceeded(Expand *e, size_t i) {
        if (e->limit_reported)
                return;
        e->limit_reported = true;
        fail_item(e, i, "5.3.0", "too many destinations in the expansion of %s (duplicate_filter_limit = %" PRIi64 ")",
                  e->m->recipient, e->c->duplicate_filter_limit);
}

static void add_children(Expand *e, size_t i, LocalSource source, const LocalPrivs *privs, const LocalTargetList *l) {
        for (size_t k = 0; k < l->n; k++) {
                int r = item_add(e, i, source, privs, l->items[k].type, l->items[k].value);
                if (r == -E2BIG) {
                        limit_exceeded(e, i);
                        return;
                }
                if (r < 0) {
                        fail_item(e, i, "4.3.0", "cannot expand %s: %s", item_address(e, i), strerror(-r));
                        return;
                }
        }
}

/* Whether this final delivery was done already; remembers it otherwise. */
static bool seen(Expand *e, LocalTargetType type, uid_t uid, const char *value) {
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

/* Runs f in a process of its own (which may give up root for good) and returns its result. */
typedef void (*IsolatedFunc)(const void *userdata, LocalResult *ret);

static void run_isolated(IsolatedFunc f, const void *userdata, LocalResult *ret) {
        char buf[LOCAL_RESULT_WIRE_MAX + 1];
        int p[2], status = 0;
        size_t len = 0;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0) {
                local_result_set(ret, "4.3.0", "cannot create a pipe: %m");
                return;
        }
        pid = fork();
        if (pid < 0) {
                local_result_set(ret, "4.3.0", "cannot fork: %m");
                safe_close(p[0]);
                safe_close(p[1]);
                return;
        }
        if (pid == 0) {
                LocalResult r = {};
                safe_close(p[0]);
                f(userdata, &r);
                size_t n = local_result_format(&r, buf, sizeof buf);
                _exit(write(p[1], buf, n) == (ssize_t) n ? EXIT_SUCCESS : EXIT_FAILURE);
        }
        safe_close(p[1]);
        for (;;) {
                ssize_t n = read(p[0], buf + len, sizeof buf - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
                if (len == sizeof buf)
                        break;
        }
        safe_close(p[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && len > 0 && len < sizeof buf &&
            local_result_parse(buf, len, ret) >= 0)
                return;
        local_result_set(ret, "4.3.0", "delivery process ended without a result");
}

typedef struct UserDelivery {
        const LocalMessage *m;
        const Config *c;
        const struct passwd *pw;
} UserDelivery;

static void user_delivery(const void *userdata, LocalResult *ret) {
        const UserDelivery *u = userdata;

        local_deliver_user(u->m, u->c, u->pw, ret);
}

static void deliver_mailbox(Expand *e, size_t i, const struct passwd *pw, const char *address) {
        LocalMessage m = *e->m;
        LocalResult r;

        if (seen(e, LOCAL_TARGET_MAILBOX, 0, pw->pw_name))
                return;
        m.recipient = address;
        if (isempty(e->c->home_mailbox)) {
                /* The mail spool: written with effective ids only, so root comes back; no process needed. */
                local_deliver_user(&m, e->c, pw, &r);
                if (local_set_eugid(0, 0) < 0) {
                        report(e, address, &r);
                        local_result_set(&r, "4.3.0", "cannot switch back to root: %m");
                        report(e, address, &r);
                        _exit(EXIT_SUCCESS);    /* nothing more can be done safely */
                }
        } else {
                /* Home directory delivery gives up root for good: in a process of its own. */
                const UserDelivery u = { .m = &m, .c = e->c, .pw = pw };
                run_isolated(user_delivery, &u, &r);
        }
        report(e, address, &r);
        (void) i;
}

static bool allowed(const char *list, LocalSource source) {
        _cleanup_strv_free_ char **l = NULL;

        if (config_split_list(list, &l) < 0)
                return false;
        for (char **s = l; s && *s; s++)
                if (strcaseeq(*s, local_source_names[source]))
                        return true;
        return false;
}

/* Commands and files never run as root. */
static int item_privs(Expand *e, size_t i, LocalPrivs *ret) {
        const LocalPrivs *p = &e->items[i].privs;

        if (p->uid == (uid_t) -1 || p->uid == 0)
                return privs_for_owner(e, 0, ret);
        return privs_copy(p, ret);
}

typedef struct FileDelivery {
        const LocalMessage *m;
        const Config *c;
        const LocalPrivs *privs;
        const char *path;
} FileDelivery;

static void file_delivery(const void *userdata, LocalResult *ret) {
        const FileDelivery *f = userdata;
        int r;

        r = local_become_user(f->privs->user, f->privs->uid, f->privs->gid);
        if (r < 0) {
                local_result_set(ret, "4.3.0", "cannot switch to user %s: %s", f->privs->user, strerror(-r));
                return;
        }
        if (f->path[strlen(f->path) - 1] == '/') {
                local_deliver_maildir(f->m, f->path, f->c->myhostname, ret);
                if (ret->status == LOCAL_STATUS_SENT)
                        local_result_set(ret, "2.0.0", "delivered to maildir: %s", f->path);
                return;
        }
        const LocalMbox mb = {
                .path = f->path,
                .uid = f->privs->uid, .gid = f->privs->gid,
                .lock_uid = f->privs->uid, .lock_gid = f->privs->gid,
                .create_gid = f->privs->gid,
                .locking = {
                        .attempts = (unsigned) f->c->deliver_lock_attempts,
                        .delay_usec = (uint64_t) f->c->deliver_lock_delay * USEC_PER_SEC,
                        .stale_usec = (uint64_t) f->c->stale_lock_time * USEC_PER_SEC,
                },
                .file_target = true,
        };
        local_deliver_mbox(f->m, &mb, ret);
        if (ret->status == LOCAL_STATUS_SENT)
                local_result_set(ret, "2.0.0", "delivered to file: %s", f->path);
}

/* What a file or command destination passes first: mail to it is allowed from its source, there is an
 * identity to run as, and this delivery has not done it already. False: the item is settled. */
static bool item_prepare(Expand *e, size_t i, LocalTargetType type, LocalPrivs *privs) {
        const Item *it = e->items + i;
        bool file = type == LOCAL_TARGET_FILE;
        int k;

        if (!allowed(file ? e->c->allow_mail_to_files : e->c->allow_mail_to_commands, it->source)) {
                fail_item(e, i, "5.7.1", "mail to %s is restricted", file ? "file" : "command");
                return false;
        }
        k = item_privs(e, i, privs);
        if (k < 0) {
                fail_item(e, i, "4.3.0", file ? "cannot find the user %s to deliver to %s as: %s"
                                              : "cannot find the user %s to run \"%s\" as: %s",
                          e->c->default_privs, it->value, strerror(-k));
                return false;
        }
        return !seen(e, type, privs->uid, it->value);
}

static void deliver_file(Expand *e, size_t i) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        LocalMessage m = *e->m;
        const Item *it = e->items + i;
        LocalResult r;

        if (!item_prepare(e, i, LOCAL_TARGET_FILE, &privs))
                return;
        if (streq(it->value, "/dev/null")) {
                /* As in Postfix: the usual way to discard mail, delivered without opening anything. */
                local_result_set(&r, "2.0.0", "delivered to file: /dev/null");
                report_item(e, i, &r);
                return;
        }
        m.recipient = item_address(e, i);
        const FileDelivery f = { .m = &m, .c = e->c, .privs = &privs, .path = it->value };
        run_isolated(file_delivery, &f, &r);
        report_item(e, i, &r);
}

static int env_add(char ***env, size_t *n, const char *name, const char *value, bool sanitize) {
        _cleanup_free_ char *s = NULL;
        char **l;

        if (asprintf(&s, "%s=%s", name, strempty(value)) < 0)
                return -ENOMEM;
        if (sanitize)
                local_sanitize(s + strlen(name) + 1);
        l = realloc(*env, (*n + 2) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        *env = l;
        l[(*n)++] = TAKE_PTR(s);
        l[*n] = NULL;
        return 0;
}

/* Postfix's local(8) command environment; every value that comes from mail is filtered. */
static int command_env(Expand *e, const char *recipient, const LocalPrivs *privs, char ***ret) {
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_free_ char *local = NULL, *domain = NULL;
        const QueueEnvelope *q = e->m->envelope;
        size_t n = 0;
        int r;

        r = address_split(recipient, &local, &domain);
        if (r < 0)
                return r;
        const Extension x = split_extension(e->c, local);
        const struct {
                const char *name, *value;
                bool sanitize;
        } vars[] = {
                { "PATH", "/usr/bin:/bin", false },
                { "HOME", privs->home, false },
                { "USER", privs->user, false },
                { "LOGNAME", privs->user, false },
                { "SHELL", privs->shell, false },
                { "SENDER", e->m->sender, true },
                { "RECIPIENT", recipient, true },
                { "ORIGINAL_RECIPIENT", e->m->recipient, true },
                { "LOCAL", local, true },
                { "DOMAIN", domain, true },
                { "EXTENSION", x.extension, true },
                { "CLIENT_ADDRESS", queue_envelope_attr(q, "client_address"), true },
                { "CLIENT_HOSTNAME", queue_envelope_attr(q, "client_name"), true },
                { "CLIENT_HELO", queue_envelope_attr(q, "helo_name"), true },
                { "CLIENT_PROTOCOL", queue_envelope_attr(q, "protocol"), true },
        };
        for (size_t k = 0; k < ELEMENTSOF(vars); k++) {
                if (!vars[k].value && strncmp(vars[k].name, "CLIENT_", 7) == 0)
                        continue;
                r = env_add(&env, &n, vars[k].name, vars[k].value, vars[k].sanitize);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(env);
        return 0;
}

static void deliver_command(Expand *e, size_t i) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_strv_free_ char **env = NULL;
        LocalMessage m = *e->m;
        const Item *it = e->items + i;
        LocalResult r;
        int k;

        if (!item_prepare(e, i, LOCAL_TARGET_COMMAND, &privs))
                return;
        m.recipient = item_address(e, i);
        k = command_env(e, m.recipient, &privs, &env);
        if (k < 0) {
                fail_item(e, i, "4.3.0", "cannot set up the command environment: %s", strerror(-k));
                return;
        }
        local_command_run(&m, it->value, &privs, env, (uint64_t) e->c->command_time_limit * USEC_PER_SEC, &r);
        report_item(e, i, &r);
}

/* Reads a list file opened as uid/gid; -errno from open, with the file's state. */
static int read_list_file(const char *path, uid_t uid, gid_t gid, char **ret, size_t *ret_len, struct stat *ret_st) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        r = local_set_eugid(uid, gid);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        r = fd < 0 ? -errno : 0;
        (void) local_set_eugid(0, 0);
        if (r < 0)
                return r;
        if (fstat(fd, ret_st) < 0)
                return -errno;
        if (!S_ISREG(ret_st->st_mode))
                return -EBADFD;
        if (ret_st->st_size > (off_t) LOCAL_LIST_FILE_MAX)
                return -EFBIG;
        buf = malloc(LOCAL_LIST_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, LOCAL_LIST_FILE_MAX + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > LOCAL_LIST_FILE_MAX)
                        return -EFBIG;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static void expand_include(Expand *e, size_t i) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_free_ char *buf = NULL;
        LocalTargetList l = {};
        const Item *it = e->items + i;
        struct stat st;
        size_t len;
        int r;

        for (size_t j = it->parent; j != SIZE_MAX; j = e->items[j].parent)
                if (e->items[j].type == LOCAL_TARGET_INCLUDE && streq(e->items[j].value, it->value)) {
                        fail_item(e, i, "5.4.6", "include file loop for %s", it->value);
                        return;
                }
        /* Read with the rights of whoever named it: an alias table's owner, or the .forward's user. */
        uid_t uid = it->privs.uid == (uid_t) -1 ? 0 : it->privs.uid;
        gid_t gid = it->privs.uid == (uid_t) -1 ? 0 : it->privs.gid;
        r = read_list_file(it->value, uid, gid, &buf, &len, &st);
        if (r == -EBADFD) {
                fail_item(e, i, "5.3.0", "include file %s is not a regular file", it->value);
                return;
        }
        if (r < 0) {
                fail_item(e, i, "4.3.0", "cannot read include file %s: %s", it->value,
                          r == -EFBIG ? "file too large" : strerror(-r));
                return;
        }
        if (st.st_mode & S_IWOTH) {
                fail_item(e, i, "4.7.0", "include file %s is world writable", it->value);
                return;
        }
        r = privs_for_owner(e, st.st_uid, &privs);
        if (r < 0) {
                fail_item(e, i, "4.3.0", "cannot find the user to act as for %s: %s", it->value, strerror(-r));
                return;
        }
        r = local_targets_parse_file(buf, len, (size_t) e->c->duplicate_filter_limit, &l);
        if (r == -E2BIG)
                limit_exceeded(e, i);
        else if (r < 0)
                fail_item(e, i, "4.3.0", "include file %s: malformed destination list", it->value);
        else if (l.n == 0)
                fail_item(e, i, "5.3.0", "include file %s names no destinations", it->value);
        else
                add_children(e, i, LOCAL_SOURCE_INCLUDE, &privs, &l);
        local_target_list_done(&l);
}

/* Looks local up in the alias tables: 1 and the value with the table's owner, 0, or -errno. */
static int alias_lookup(Expand *e, const char *local, char **ret_value, uid_t *ret_owner) {
        for (size_t k = 0; k < e->n_tables; k++) {
                _cleanup_free_ char *value = NULL;
                struct stat st;
                int r;

                r = table_lookup(e->tables[k], local, &value);
                if (r == -ENOENT) {
                        /* Never built: like an empty table, with a word to the administrator. */
                        const char *db = table_db_path(e->tables[k]);
                        _cleanup_free_ char *source = strndup(db, strlen(db) - STRLEN(TABLE_DB_SUFFIX));
                        if (source && access(source, F_OK) >= 0)
                                (void) local_report_warning(e->report_fd,
                                                            "alias table %s has not been built: run newaliases",
                                                            table_name(e->tables[k]));
                        continue;
                }
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if (stat(table_db_path(e->tables[k]), &st) < 0)
                        return -errno;
                *ret_value = TAKE_PTR(value);
                *ret_owner = st.st_uid;
                return 1;
        }
        return 0;
}

/* Postfix's checks of a .forward: a regular file of the user or root, writable by no one else. Reads the
 * first of forward_path that exists and passes; 1 with its destinations, 0 when there is none. */
static int read_forward(Expand *e, size_t i, const struct passwd *pw, const char *local, const char *domain,
                        const Extension *x, LocalTargetList *ret) {
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *user = strdup(pw->pw_name), *l = strdup(local), *d = strdup(strempty(domain)),
                            *ext = strdup(strempty(x->extension)), *rcpt = strdup(e->items[i].value),
                            *delim = strdup(x->delimiter);
        int r;

        if (!user || !l || !d || !ext || !rcpt || !delim)
                return -ENOMEM;
        local_sanitize(user);
        local_sanitize(l);
        local_sanitize(d);
        local_sanitize(ext);
        local_sanitize(rcpt);
        local_sanitize(delim);
        const char *vars[] = {
                "home", pw->pw_dir, "user", user, "local", l, "domain", d, "extension", ext,
                "recipient", rcpt, "recipient_delimiter", delim, "shell", strempty(pw->pw_shell),
                NULL,
        };
        r = config_split_list(e->c->forward_path, &paths);
        if (r < 0)
                return r;
        for (char **p = paths; p && *p; p++) {
                _cleanup_free_ char *path = NULL, *buf = NULL;
                struct stat st;
                size_t len;

                if (local_expand_vars(*p, vars, &path) < 0 || path[0] != '/')
                        continue;
                r = read_list_file(path, pw->pw_uid, pw->pw_gid, &buf, &len, &st);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r == -EBADFD) {
                        (void) local_report_ignored(e->report_fd, path, "is not a regular file");
                        continue;
                }
                if (r < 0) {
                        (void) local_report_ignored(e->report_fd, path, "cannot be read: %s",
                                                    r == -EFBIG ? "file too large" : strerror(-r));
                        continue;
                }
                if (st.st_uid != pw->pw_uid && st.st_uid != 0) {
                        (void) local_report_ignored(e->report_fd, path, "has bad owner uid %u", (unsigned) st.st_uid);
                        continue;
                }
                if (st.st_mode & (S_IWOTH | S_IWGRP)) {
                        (void) local_report_ignored(e->report_fd, path, "is %s writable",
                                                    st.st_mode & S_IWOTH ? "world" : "group");
                        continue;
                }
                r = local_targets_parse_file(buf, len, (size_t) e->c->duplicate_filter_limit, ret);
                if (r == -E2BIG)
                        return r;
                if (r < 0) {
                        local_target_list_done(ret);
                        (void) local_report_ignored(e->report_fd, path, "has a malformed destination list");
                        continue;
                }
                return ret->n > 0;
        }
        return 0;
}

static void forward_add(Expand *e, size_t i) {
        const char *delivered = e->items[i].parent == SIZE_MAX ? e->m->recipient : item_address(e, e->items[i].parent);
        _cleanup_free_ char *lc = strdup(e->items[i].value);
        ForwardGroup *g = NULL;

        if (!lc) {
                fail_item(e, i, "4.3.0", "out of memory");
                return;
        }
        lower(lc);
        if (seen(e, LOCAL_TARGET_ADDRESS, 0, lc))
                return;
        for (size_t k = 0; k < e->n_groups; k++)
                if (strcaseeq(e->groups[k].delivered_to, delivered))
                        g = e->groups + k;
        if (!g) {
                ForwardGroup *l = realloc(e->groups, (e->n_groups + 1) * sizeof(ForwardGroup));
                if (!l) {
                        fail_item(e, i, "4.3.0", "out of memory");
                        return;
                }
                e->groups = l;
                g = e->groups + e->n_groups;
                *g = (ForwardGroup) { .delivered_to = strdup(delivered), .recipients = calloc(1, sizeof(char *)) };
                if (!g->delivered_to || !g->recipients) {
                        free(g->delivered_to);
                        free(g->recipients);
                        fail_item(e, i, "4.3.0", "out of memory");
                        return;
                }
                e->n_groups++;
        }
        char **r = realloc(g->recipients, (g->n + 2) * sizeof(char *));
        if (!r || !(r[g->n] = strdup(e->items[i].value))) {
                if (r)
                        g->recipients = r;
                fail_item(e, i, "4.3.0", "out of memory");
                return;
        }
        g->recipients = r;
        r[++g->n] = NULL;
}

static void submit_forwards(Expand *e) {
        for (size_t k = 0; k < e->n_groups; k++) {
                ForwardGroup *g = e->groups + k;
                char id[QUEUE_ID_SIZE];
                LocalResult r;

                (void) local_forward_submit(e->m, g->delivered_to, g->recipients,
                                            (uint64_t) e->c->daemon_timeout * USEC_PER_SEC / 10, id, &r);
                for (size_t j = 0; j < g->n; j++)
                        report(e, g->recipients[j], &r);
        }
}

static void expand_address(Expand *e, size_t i) {
        _cleanup_free_ char *local = NULL, *domain = NULL, *value = NULL;
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        Item *it = e->items + i;
        const char *addr = it->value;
        struct passwd *pw;
        uid_t owner = 0;
        int r;

        if (!address_valid(addr) || !strchr(addr, '@')) {
                fail_item(e, i, "5.1.3", "bad address syntax: %s", addr);
                return;
        }
        if (it->parent != SIZE_MAX && !address_is_local(e->mydestination, addr)) {
                forward_add(e, i);
                return;
        }
        if (local_header_scan_has(&e->scan, addr)) {
                fail_item(e, i, "5.4.6", "mail forwarding loop for %s", addr);
                return;
        }
        for (size_t j = it->parent; j != SIZE_MAX; j = e->items[j].parent) {
                if (e->items[j].type != LOCAL_TARGET_ADDRESS || !same_local_part(e->items[j].value, addr))
                        continue;
                if (j != it->parent) {
                        fail_item(e, i, "5.4.6", "%s loop for %s",
                                  it->source == LOCAL_SOURCE_ALIAS ? "alias database" : "mail forwarding", addr);
                        return;
                }
                /* A name that expands to itself: "alice: alice, bob" is alice's own delivery, and so is
                 * "alice" in alice's .forward (without a second look at the .forward). */
                it->skip_alias = true;
                if (it->source != LOCAL_SOURCE_ALIAS)
                        it->skip_forward = true;
        }
        if (it->depth > LOCAL_DEPTH_MAX) {
                fail_item(e, i, "5.4.6", "possible mail forwarding loop for %s", addr);
                return;
        }

        r = address_split(addr, &local, &domain);
        if (r < 0) {
                fail_item(e, i, "4.3.0", "out of memory");
                return;
        }
        lower(local);
        const Extension x = split_extension(e->c, local);
        _cleanup_free_ char *user = strndup(local, x.user_len);
        if (!user) {
                fail_item(e, i, "4.3.0", "out of memory");
                return;
        }

        if (!it->skip_alias) {
                /* user+ext: the whole local part first, then the user part. */
                r = alias_lookup(e, local, &value, &owner);
                if (r == 0 && x.extension)
                        r = alias_lookup(e, user, &value, &owner);
                if (r < 0) {
                        fail_item(e, i, "4.3.0", "alias database unavailable: %s", strerror(-r));
                        return;
                }
                if (r > 0) {
                        LocalTargetList l = {};

                        r = privs_for_owner(e, owner, &privs);
                        if (r < 0) {
                                fail_item(e, i, "4.3.0", "cannot find the user to act as for alias %s: %s", local,
                                          strerror(-r));
                                return;
                        }
                        r = local_targets_parse(value, strlen(value), (size_t) e->c->duplicate_filter_limit, &l);
                        if (r == -E2BIG)
                                limit_exceeded(e, i);
                        else if (r < 0 || l.n == 0)
                                fail_item(e, i, "4.3.0", "alias %s: malformed destination list", local);
                        else
                                add_children(e, i, LOCAL_SOURCE_ALIAS, &privs, &l);
                        local_target_list_done(&l);
                        return;
                }
        }

        errno = 0;
        pw = getpwnam(user);
        if (!pw) {
                if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF || errno == EPERM)
                        fail_item(e, i, "5.1.1", "unknown user: \"%s\"", user);
                else
                        fail_item(e, i, "4.3.0", "user lookup error: %m");
                return;
        }

        if (!it->skip_forward) {
                LocalTargetList l = {};

                r = read_forward(e, i, pw, local, domain, &x, &l);
                if (r == -E2BIG)
                        limit_exceeded(e, i);
                else if (r < 0)
                        fail_item(e, i, "4.3.0", "cannot read the forward file of %s: %s", local, strerror(-r));
                if (r > 0) {
                        if (privs_from_pw(pw, &privs) < 0)
                                fail_item(e, i, "4.3.0", "out of memory");
                        else
                                add_children(e, i, LOCAL_SOURCE_FORWARD, &privs, &l);
                }
                local_target_list_done(&l);
                if (r != 0)
                        return;
        }
        deliver_mailbox(e, i, pw, addr);
}

/* \user: the mailbox, nothing else. */
static void expand_mailbox(Expand *e, size_t i) {
        _cleanup_free_ char *user = strdup(e->items[i].value), *address = NULL;
        struct passwd *pw;

        if (!user || asprintf(&address, "%s@%s", user, e->c->myorigin) < 0) {
                fail_item(e, i, "4.3.0", "out of memory");
                return;
        }
        lower(user);
        errno = 0;
        pw = getpwnam(user);
        if (!pw) {
                if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF || errno == EPERM)
                        fail_item(e, i, "5.1.1", "unknown user: \"%s\"", user);
                else
                        fail_item(e, i, "4.3.0", "user lookup error: %m");
                return;
        }
        deliver_mailbox(e, i, pw, address);
}

static int scan_piece(const char *data, size_t len, void *userdata) {
        int r = local_header_scan_feed(userdata, data, len);

        return r < 0 ? r : r > 0 ? -ECANCELED : 0;
}

static void expand_done(Expand *e) {
        local_header_scan_done(&e->scan);
        for (size_t k = 0; k < e->n_items; k++) {
                free(e->items[k].value);
                local_privs_done(&e->items[k].privs);
        }
        free(e->items);
        for (size_t k = 0; k < e->n_seen; k++)
                free(e->seen[k]);
        free(e->seen);
        for (size_t k = 0; k < e->n_groups; k++) {
                free(e->groups[k].delivered_to);
                strv_free(e->groups[k].recipients);
        }
        free(e->groups);
        strv_free(e->mydestination);
        for (size_t k = 0; k < e->n_tables; k++)
                table_free(e->tables[k]);
        free(e->tables);
}

static int open_tables(Expand *e) {
        _cleanup_strv_free_ char **specs = NULL;
        int r;

        r = config_split_list(e->c->alias_maps, &specs);
        if (r < 0)
                return r;
        for (char **s = specs; s && *s; s++) {
                Table **l = realloc(e->tables, (e->n_tables + 1) * sizeof(Table *));
                if (!l)
                        return -ENOMEM;
                e->tables = l;
                r = table_open(*s, &e->tables[e->n_tables]);
                if (r < 0)
                        return r;
                e->n_tables++;
        }
        return 0;
}

void local_expand_deliver(const LocalMessage *m, const Config *c, int report_fd) {
        Expand e = { .m = m, .c = c, .report_fd = report_fd };
        const LocalPrivs none = { .uid = (uid_t) -1, .gid = (gid_t) -1 };
        LocalResult result;
        int r;

        local_header_scan_init(&e.scan, (size_t) c->duplicate_filter_limit);
        r = queue_file_content_foreach(m->queue_fd, m->envelope, scan_piece, &e.scan);
        if (r >= 0)
                r = local_header_scan_finish(&e.scan);
        if (r < 0 && r != -ECANCELED) {
                local_result_set(&result, "4.3.0", "%s",
                                 r == -EBADMSG ? "queue file is corrupt" : "cannot read the queue file");
                report(&e, m->recipient, &result);
                goto finish;
        }
        r = config_split_list(c->mydestination, &e.mydestination);
        if (r >= 0)
                r = open_tables(&e);
        if (r < 0) {
                local_result_set(&result, "4.3.0", "cannot open alias_maps: %s", strerror(-r));
                report(&e, m->recipient, &result);
                goto finish;
        }
        r = item_add(&e, SIZE_MAX, LOCAL_SOURCE_RECIPIENT, &none, LOCAL_TARGET_ADDRESS, m->recipient);
        if (r < 0) {
                local_result_set(&result, "4.3.0", "out of memory");
                report(&e, m->recipient, &result);
                goto finish;
        }
        for (size_t i = 0; i < e.n_items; i++)
                switch (e.items[i].type) {
                case LOCAL_TARGET_ADDRESS:
                        expand_address(&e, i);
                        break;
                case LOCAL_TARGET_MAILBOX:
                        expand_mailbox(&e, i);
                        break;
                case LOCAL_TARGET_COMMAND:
                        deliver_command(&e, i);
                        break;
                case LOCAL_TARGET_FILE:
                        deliver_file(&e, i);
                        break;
                case LOCAL_TARGET_INCLUDE:
                        expand_include(&e, i);
                        break;
                default:
                        break;
                }
        submit_forwards(&e);
finish:
        expand_done(&e);
}
