/* pipe-options.c: a pipe transport's settings, in the pipe process: the options qmgr passes from the
 * master.cf line (argv=, flags=, user=, size=, eol=, null_sender=, directory=, the time limit and -o
 * overrides) checked as Postfix's pipe(8) checks its attributes, the user looked up and refused when it is
 * privileged, and the environment a command gets. */
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>

#include "pipe.h"

/* The command search path of every command, as Postfix sets it (_PATH_DEFPATH). */
#define PIPE_PATH "/usr/bin:/bin"

void pipe_settings_done(PipeSettings *s) {
        s->argv = strv_free(s->argv);
        s->user = mfree(s->user);
        s->group = mfree(s->group);
        s->groups = mfree(s->groups);
        s->home = mfree(s->home);
        s->eol = mfree(s->eol);
        s->null_sender = mfree(s->null_sender);
        s->directory = mfree(s->directory);
        s->recipient_delimiter = mfree(s->recipient_delimiter);
        s->export_environment = mfree(s->export_environment);
}

static int settings_error(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int settings_error(char **ret_error, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(ret_error, fmt, ap);
        va_end(ap);
        return n < 0 ? -ENOMEM : -EINVAL;
}

static size_t strv_count(char **l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

static bool has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7F)
                        return true;
        return false;
}

/* The words of argv=, separated by blanks. */
static int split_words(const char *s, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        for (const char *p = s; *p;) {
                size_t k;

                p += strspn(p, " \t");
                k = strcspn(p, " \t");
                if (k == 0)
                        break;
                if (n >= PIPE_WORDS_MAX)
                        return -E2BIG;
                char **nl = realloc(l, (n + 2) * sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n] = strndup(p, k);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
                p += k;
        }
        *ret = TAKE_PTR(l);
        return (int) n;
}

static int replace(char **p, const char *value) {
        char *n = strdup(value);

        if (!n)
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

int pipe_settings_parse(const char *const *options, const Config *c, PipeSettings *ret, char **ret_error) {
        _cleanup_(pipe_settings_done) PipeSettings s = {
                .time_limit_usec = (uint64_t) c->command_time_limit * USEC_PER_SEC,
        };
        int r;

        if (replace(&s.eol, "\n") < 0 || replace(&s.null_sender, PIPE_NULL_SENDER) < 0 ||
            replace(&s.recipient_delimiter, strempty(c->recipient_delimiter)) < 0 ||
            replace(&s.export_environment, strempty(c->export_environment)) < 0)
                return -ENOMEM;

        for (const char *const *kv = options; kv && kv[0] && kv[1]; kv += 2) {
                const char *name = kv[0], *value = kv[1];

                if (streq(name, "argv")) {
                        s.argv = strv_free(s.argv);
                        r = split_words(value, &s.argv);
                        if (r == -E2BIG)
                                return settings_error(ret_error, "argv= has more than %u words", PIPE_WORDS_MAX);
                        if (r < 0)
                                return r;
                } else if (streq(name, "flags")) {
                        char bad = '\0';
                        if (pipe_flags_parse(value, &s.flags, &bad) < 0) {
                                /* Only a whole character may go into a result, which must be UTF-8. */
                                if ((unsigned char) bad > ' ' && (unsigned char) bad < 0x7F)
                                        return settings_error(ret_error, "unknown flag in flags=: '%c'", bad);
                                return settings_error(ret_error, "unknown flag in flags=: byte 0x%02x",
                                                      (unsigned char) bad);
                        }
                } else if (streq(name, "user")) {
                        const char *colon = strchr(value, ':');
                        s.user = mfree(s.user);
                        s.group = mfree(s.group);
                        s.user = colon ? strndup(value, (size_t) (colon - value)) : strdup(value);
                        if (!s.user)
                                return -ENOMEM;
                        if (colon && colon[1] && replace(&s.group, colon + 1) < 0)
                                return -ENOMEM;
                } else if (streq(name, "size")) {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(value, &end, 10);
                        if (errno != 0 || isempty(value) || *end != '\0' || value[0] == '-')
                                return settings_error(ret_error, "bad size= value: \"%s\"", value);
                        s.size_limit = v;
                } else if (streq(name, "eol")) {
                        s.eol = mfree(s.eol);
                        r = pipe_eol_parse(value, &s.eol);
                        if (r == -EINVAL)
                                return settings_error(ret_error, "bad eol= value: \"%s\"", value);
                        if (r < 0)
                                return r;
                } else if (streq(name, "time_limit")) {
                        int64_t t;
                        if (config_parse_time(value, &t) < 0 || t < 1 || t > 7 * 86400)
                                return settings_error(ret_error, "bad time limit: \"%s\"", value);
                        s.time_limit_usec = (uint64_t) t * USEC_PER_SEC;
                } else if (streq(name, "null_sender")) {
                        if (has_control(value) || strchr(value, ' '))
                                return settings_error(ret_error, "bad null_sender= value");
                        if (replace(&s.null_sender, value) < 0)
                                return -ENOMEM;
                } else if (streq(name, "directory")) {
                        if (value[0] != '/' || has_control(value))
                                return settings_error(ret_error, "directory= must be an absolute path: \"%s\"", value);
                        if (replace(&s.directory, value) < 0)
                                return -ENOMEM;
                } else if (streq(name, "o:recipient_delimiter")) {
                        if (replace(&s.recipient_delimiter, value) < 0)
                                return -ENOMEM;
                } else if (streq(name, "o:export_environment")) {
                        if (replace(&s.export_environment, value) < 0)
                                return -ENOMEM;
                } else if (strncmp(name, "o:", 2) == 0)
                        continue;       /* a main.cf parameter pipe does not use */
                else if (strncmp(name, "q:", 2) == 0)
                        continue;       /* qmgr's hints (q:backlog: more waits for this next hop), for smtp */
                else
                        /* chroot= among them: running a command outside it would be worse than not at all. */
                        return settings_error(ret_error, "unknown or unsupported attribute: %s=", name);
        }

        if (strv_count(s.argv) == 0)
                return settings_error(ret_error, "missing argv= attribute");
        if (isempty(s.user))
                return settings_error(ret_error, "missing user= attribute");
        if (has_control(s.user) || (s.group && has_control(s.group)))
                return settings_error(ret_error, "bad user= value");
        *ret = s;
        s = (PipeSettings) {};
        return 0;
}

int pipe_settings_resolve_user(PipeSettings *s, const PipeForbidden *forbidden, char **ret_error) {
        _cleanup_free_ gid_t *groups = NULL;
        _cleanup_free_ char *who = NULL;
        struct passwd *pw;
        gid_t gid;
        int n = 16;

        /* How the transport names the identity, for the messages: "user=vmail" or "user=vmail:mail". */
        if (asprintf(&who, "user=%s%s%s", s->user, s->group ? ":" : "", strempty(s->group)) < 0)
                return -ENOMEM;
        errno = 0;
        pw = getpwnam(s->user);
        if (!pw)
                return errno > 0 ? settings_error(ret_error, "cannot look up user %s: %s", s->user, strerror(errno))
                                 : settings_error(ret_error, "unknown user name: %s", s->user);
        if (pw->pw_uid == 0)
                return settings_error(ret_error, "%s: refusing to run a command as root", who);
        if (pw->pw_uid == forbidden->owner_uid)
                return settings_error(ret_error, "%s: refusing to run a command as the mail system owner", who);
        /* The users of the other roles (units/sysusers-postbus.conf): their sockets admit them by uid. */
        if (strncmp(pw->pw_name, "postbus-", STRLEN("postbus-")) == 0)
                return settings_error(ret_error, "%s: refusing to run a command as a mail system role's user", who);
        gid = pw->pw_gid;
        if (s->group) {
                struct group *gr;

                errno = 0;
                gr = getgrnam(s->group);
                if (!gr)
                        return settings_error(ret_error, "unknown group name: %s", s->group);
                gid = gr->gr_gid;
        }
        if (gid == 0)
                return settings_error(ret_error, "%s: refusing to run a command with group id 0", who);
        if (gid == forbidden->owner_gid || gid == forbidden->setgid_gid)
                return settings_error(ret_error, "%s: refusing to run a command with a mail system group", who);

        char *home = strdup(strempty(pw->pw_dir));
        if (!home)
                return -ENOMEM;
        free(s->home);
        s->home = home;
        s->uid = pw->pw_uid;
        s->gid = gid;

        /* The user's groups, as initgroups() would set them, looked up here rather than in each child. */
        for (;;) {
                gid_t *g = realloc(groups, (size_t) n * sizeof(gid_t));
                int want = n;

                if (!g)
                        return -ENOMEM;
                groups = g;
                if (getgrouplist(pw->pw_name, gid, groups, &want) >= 0) {
                        n = want;
                        break;
                }
                if (want <= n || want > 65536)
                        return settings_error(ret_error, "cannot look up the groups of user %s", s->user);
                n = want;
        }
        free(s->groups);
        s->groups = TAKE_PTR(groups);
        s->n_groups = (size_t) n;
        return 0;
}

int pipe_environment(const char *export_environment, char ***ret) {
        _cleanup_strv_free_ char **names = NULL, **env = NULL;
        size_t n = 0;
        int r;

        r = config_split_list(export_environment, &names);
        if (r < 0)
                return r;
        env = calloc(1 + strv_count(names) + 1, sizeof(char *));
        if (!env)
                return -ENOMEM;
        env[n] = strdup("PATH=" PIPE_PATH);
        if (!env[n++])
                return -ENOMEM;
        for (char **name = names; name && *name; name++) {
                const char *v = getenv(*name);

                if (!v || streq(*name, "PATH") || strchr(*name, '='))
                        continue;
                if (asprintf(&env[n], "%s=%s", *name, v) < 0) {
                        env[n] = NULL;
                        return -ENOMEM;
                }
                n++;
        }
        *ret = TAKE_PTR(env);
        return 0;
}
