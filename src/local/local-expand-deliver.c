/* local-expand-deliver.c: runs in local, the long-lived process: the final destinations of an expansion, put
 * into its plan with the identity each is owed: a user's mailbox (\user too), a /file or Maildir/, and a
 * |command. The plan is carried out by the per-user workers and the command process. */
#include "address.h"
#include "local.h"

void local_plan_done(LocalPlan *p) {
        for (size_t k = 0; k < p->n_jobs; k++) {
                free(p->jobs[k].address);
                free(p->jobs[k].value);
                local_privs_done(&p->jobs[k].privs);
                strv_free(p->jobs[k].env);
        }
        free(p->jobs);
        for (size_t k = 0; k < p->n_groups; k++) {
                free(p->groups[k].delivered_to);
                free(p->groups[k].sender);
                strv_free(p->groups[k].recipients);
        }
        free(p->groups);
        *p = (LocalPlan) {};
}

bool local_plan_needs_child(const LocalPlan *p) {
        if (p->n_groups > 0)
                return true;
        for (size_t k = 0; k < p->n_jobs; k++)
                if (p->jobs[k].type != LOCAL_JOB_MAILBOX && p->jobs[k].type != LOCAL_JOB_PASS)
                        return true;
        return false;
}

/* Adds a job; env is taken over. On failure the destination is reported as deferred. */
static void plan_add(LocalExpand *e, LocalJobType type, const char *address, const char *value,
                     const LocalPrivs *privs, char ***env) {
        LocalPlan *p = e->plan;
        LocalJob *l, j = { .type = type };
        MailboxResult r;

        l = realloc(p->jobs, (p->n_jobs + 1) * sizeof(LocalJob));
        if (l)
                p->jobs = l;
        j.address = strdup(address);
        j.value = value ? strdup(value) : NULL;
        if (!l || !j.address || (value && !j.value) || local_privs_copy(privs, &j.privs) < 0) {
                free(j.address);
                free(j.value);
                mailbox_result_set(&r, "4.3.0", "out of memory");
                local_expand_report(e, address, &r);
                return;
        }
        if (env)
                j.env = TAKE_PTR(*env);
        p->jobs[p->n_jobs++] = j;
}

static int command_env(LocalExpand *e, const char *recipient, const LocalPrivs *privs, char ***ret);

/* mailbox_command (Debian's procmail -a "$EXTENSION"), or mailbox_command_maps' for the user: the mailbox is
 * the command's business. It runs as the user (root's mail: as default_privs) with /bin/sh -c and local's
 * command environment, as in Postfix, in the command process. */
static void plan_mailbox_command(LocalExpand *e, const struct passwd *pw, const char *address, const char *command) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_strv_free_ char **env = NULL;
        MailboxResult r;
        int k;

        k = local_expand_privs_for_owner(e, pw->pw_uid, &privs);
        if (k < 0) {
                mailbox_result_set(&r, "4.3.0", "no identity to run mailbox_command as: %s", strerror(-k));
                local_expand_report(e, address, &r);
                return;
        }
        k = command_env(e, address, &privs, &env);
        if (k < 0) {
                mailbox_result_set(&r, "4.3.0", "cannot set up the command environment: %s", strerror(-k));
                local_expand_report(e, address, &r);
                return;
        }
        plan_add(e, LOCAL_JOB_COMMAND, address, command, &privs, &env);
}

void local_expand_pass(LocalExpand *e, const char *address, const char *transport) {
        const LocalPrivs none = { .uid = (uid_t) -1, .gid = (gid_t) -1 };

        /* Once for each address, as a mailbox is written once for its user. */
        if (!local_expand_seen(e, LOCAL_TARGET_MAILBOX, 0, address))
                plan_add(e, LOCAL_JOB_PASS, address, transport, &none, NULL);
}

/* A user's value in one of local's per-user maps: 1 and *ret, 0 when there is none; a lookup failure is
 * reported for address (negative errno). As Postfix, the key is the user name, and a value found is taken
 * as it is (no $number or $name expansion). */
static int user_map(LocalExpand *e, TableList *map, const char *name, const char *user, const char *address,
                    char **ret) {
        MailboxResult r;
        int k;

        if (table_list_is_empty(map))
                return 0;
        k = table_list_lookup(map, user, ret);
        if (k < 0) {
                mailbox_result_set(&r, "4.3.0", "%s lookup failure: %s", name, strerror(-k));
                local_expand_report(e, address, &r);
        }
        return k;
}

int local_expand_transport(LocalExpand *e, bool fallback, const char *user, const char *address, char **ret) {
        const LocalAliases *a = e->aliases;
        const char *fixed = fallback ? e->c->fallback_transport : e->c->mailbox_transport;
        int k;

        k = user_map(e, fallback ? a->fallback_transport_maps : a->mailbox_transport_maps,
                     fallback ? "fallback_transport_maps" : "mailbox_transport_maps", user, address, ret);
        if (k != 0 || isempty(fixed))
                return k;
        *ret = strdup(fixed);
        return *ret ? 1 : -ENOMEM;
}

void local_expand_deliver_user(LocalExpand *e, const struct passwd *pw, const char *address) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_free_ char *transport = NULL, *command = NULL;
        MailboxResult r;
        int k;

        /* As Postfix: mailbox_transport_maps and mailbox_transport come before mailbox_command_maps and
         * mailbox_command, and they before the mailbox itself. */
        k = local_expand_transport(e, false, pw->pw_name, address, &transport);
        if (k > 0)
                local_expand_pass(e, address, transport);
        if (k != 0)
                return;
        if (local_expand_seen(e, LOCAL_TARGET_MAILBOX, 0, pw->pw_name))
                return;
        k = user_map(e, e->aliases->mailbox_command_maps, "mailbox_command_maps", pw->pw_name, address, &command);
        if (k < 0)
                return;
        if (k > 0 || !isempty(e->c->mailbox_command)) {
                plan_mailbox_command(e, pw, address, k > 0 ? command : e->c->mailbox_command);
                return;
        }
        if (local_privs_from_pw(pw, &privs) < 0) {
                mailbox_result_set(&r, "4.3.0", "out of memory");
                local_expand_report(e, address, &r);
                return;
        }
        plan_add(e, LOCAL_JOB_MAILBOX, address, NULL, &privs, NULL);
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
        const LocalItem *it = e->items + i;
        MailboxResult r;

        if (!item_prepare(e, i, LOCAL_TARGET_FILE, &privs))
                return;
        if (streq(it->value, "/dev/null")) {
                /* As in Postfix: the usual way to discard mail, delivered without opening anything. */
                mailbox_result_set(&r, "2.0.0", "delivered to file: /dev/null");
                local_expand_report_item(e, i, &r);
                return;
        }
        plan_add(e, LOCAL_JOB_FILE, local_expand_item_address(e, i), it->value, &privs, NULL);
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
        const LocalItem *it = e->items + i;
        const char *address = local_expand_item_address(e, i);
        int k;

        if (!item_prepare(e, i, LOCAL_TARGET_COMMAND, &privs))
                return;
        k = command_env(e, address, &privs, &env);
        if (k < 0) {
                local_expand_fail(e, i, "4.3.0", "cannot set up the command environment: %s", strerror(-k));
                return;
        }
        plan_add(e, LOCAL_JOB_COMMAND, address, it->value, &privs, &env);
}
