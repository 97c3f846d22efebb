/* local-expand-deliver.c: the final destinations of an expansion, in the delivery child: a user's mailbox
 * (\user too), a /file or Maildir/, and a |command, each as the identity it is owed and in a process of its
 * own where that identity is not root's; one report line each. */
#include <fcntl.h>
#include <sys/wait.h>

#include "address.h"
#include "command-util.h"
#include "local.h"

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

static int command_env(LocalExpand *e, const char *recipient, const LocalPrivs *privs, char ***ret);

/* mailbox_command (Debian's procmail -a "$EXTENSION"): the mailbox is the command's business. It runs as the
 * user (root's mail: as default_privs) with /bin/sh -c and local's command environment, as in Postfix. */
static void mailbox_command(LocalExpand *e, const struct passwd *pw, const LocalMessage *m, LocalResult *ret) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_strv_free_ char **env = NULL;
        int k;

        k = local_expand_privs_for_owner(e, pw->pw_uid, &privs);
        if (k < 0) {
                local_result_set(ret, "4.3.0", "no identity to run mailbox_command as: %s", strerror(-k));
                return;
        }
        k = command_env(e, m->recipient, &privs, &env);
        if (k < 0) {
                local_result_set(ret, "4.3.0", "cannot set up the command environment: %s", strerror(-k));
                return;
        }
        local_command_run(m, e->c->mailbox_command, &privs, env,
                          (uint64_t) e->c->command_time_limit * USEC_PER_SEC, ret);
}

void local_expand_deliver_user(LocalExpand *e, const struct passwd *pw, const char *address) {
        LocalMessage m = *e->m;
        LocalResult r;

        if (local_expand_seen(e, LOCAL_TARGET_MAILBOX, 0, pw->pw_name))
                return;
        m.recipient = address;
        if (!isempty(e->c->mailbox_command))
                mailbox_command(e, pw, &m, &r);
        else if (isempty(e->c->home_mailbox)) {
                /* The mail spool: written with effective ids only, so root comes back; no process needed. */
                local_deliver_user(&m, e->c, pw, &r);
                if (local_set_eugid(0, 0) < 0) {
                        local_expand_report(e, address, &r);
                        local_result_set(&r, "4.3.0", "cannot switch back to root: %m");
                        local_expand_report(e, address, &r);
                        _exit(EXIT_SUCCESS);    /* nothing more can be done safely */
                }
        } else {
                /* Home directory delivery gives up root for good: in a process of its own. */
                const UserDelivery u = { .m = &m, .c = e->c, .pw = pw };
                run_isolated(user_delivery, &u, &r);
        }
        local_expand_report(e, address, &r);
}

/* \user: the mailbox, nothing else. */
void local_expand_mailbox(LocalExpand *e, size_t i) {
        _cleanup_free_ char *user = strdup(e->items[i].value), *address = NULL;
        struct passwd *pw;

        if (!user || asprintf(&address, "%s@%s", user, e->c->myorigin) < 0) {
                local_expand_fail(e, i, "4.3.0", "out of memory");
                return;
        }
        local_lowercase(user);
        pw = local_expand_getpwnam(e, i, user);
        if (pw)
                local_expand_deliver_user(e, pw, address);
}

/* Commands and files never run as root. */
static int item_privs(LocalExpand *e, size_t i, LocalPrivs *ret) {
        const LocalPrivs *p = &e->items[i].privs;

        if (p->uid == (uid_t) -1 || p->uid == 0)
                return local_expand_privs_for_owner(e, 0, ret);
        return local_privs_copy(p, ret);
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

        r = become_user(f->privs->user, f->privs->uid, f->privs->gid, NULL, 0);
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
static bool item_prepare(LocalExpand *e, size_t i, LocalTargetType type, LocalPrivs *privs) {
        const LocalItem *it = e->items + i;
        bool file = type == LOCAL_TARGET_FILE;
        int k;

        if (!local_source_allowed(file ? e->c->allow_mail_to_files : e->c->allow_mail_to_commands, it->source)) {
                local_expand_fail(e, i, "5.7.1", "mail to %s is restricted", file ? "file" : "command");
                return false;
        }
        k = item_privs(e, i, privs);
        if (k < 0) {
                local_expand_fail(e, i, "4.3.0",
                                  file ? "cannot find the user %s to deliver to %s as: %s"
                                       : "cannot find the user %s to run \"%s\" as: %s",
                                  e->c->default_privs, it->value, strerror(-k));
                return false;
        }
        return !local_expand_seen(e, type, privs->uid, it->value);
}

void local_expand_file(LocalExpand *e, size_t i) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        LocalMessage m = *e->m;
        const LocalItem *it = e->items + i;
        LocalResult r;

        if (!item_prepare(e, i, LOCAL_TARGET_FILE, &privs))
                return;
        if (streq(it->value, "/dev/null")) {
                /* As in Postfix: the usual way to discard mail, delivered without opening anything. */
                local_result_set(&r, "2.0.0", "delivered to file: /dev/null");
                local_expand_report_item(e, i, &r);
                return;
        }
        m.recipient = local_expand_item_address(e, i);
        const FileDelivery f = { .m = &m, .c = e->c, .privs = &privs, .path = it->value };
        run_isolated(file_delivery, &f, &r);
        local_expand_report_item(e, i, &r);
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
static int command_env(LocalExpand *e, const char *recipient, const LocalPrivs *privs, char ***ret) {
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_free_ char *local = NULL, *domain = NULL;
        const QueueEnvelope *q = e->m->envelope;
        size_t n = 0;
        int r;

        r = address_split(recipient, &local, &domain);
        if (r < 0)
                return r;
        const LocalExtension x = local_extension_split(e->c, local);
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

void local_expand_command(LocalExpand *e, size_t i) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_strv_free_ char **env = NULL;
        LocalMessage m = *e->m;
        const LocalItem *it = e->items + i;
        LocalResult r;
        int k;

        if (!item_prepare(e, i, LOCAL_TARGET_COMMAND, &privs))
                return;
        m.recipient = local_expand_item_address(e, i);
        k = command_env(e, m.recipient, &privs, &env);
        if (k < 0) {
                local_expand_fail(e, i, "4.3.0", "cannot set up the command environment: %s", strerror(-k));
                return;
        }
        local_command_run(&m, it->value, &privs, env, (uint64_t) e->c->command_time_limit * USEC_PER_SEC, &r);
        local_expand_report_item(e, i, &r);
}
