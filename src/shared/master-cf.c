/* master-cf.c: master.cf parsing (Postfix's service table). Used by qmgr for its transports; any role
 * may read it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "logical-lines.h"
#include "master-cf.h"
#include "string-util.h"

#define MASTER_FILE_SIZE_MAX (1024U * 1024U)
#define MASTER_COLUMNS 8

static bool word_in(const char *w, const char *const *list) {
        for (; *list; list++)
                if (streq(w, *list))
                        return true;
        return false;
}
#define STRV_CONTAINS(w, ...) word_in((w), (const char *const[]) { __VA_ARGS__, NULL })

static const char *startswith(const char *s, const char *prefix) {
        size_t len = strlen(prefix);
        return strncmp(s, prefix, len) == 0 ? s + len : NULL;
}

static const char *const command_names[_MASTER_COMMAND_MAX] = {
        [MASTER_COMMAND_LOCAL] = "local",
        [MASTER_COMMAND_SMTP] = "smtp",
        [MASTER_COMMAND_LMTP] = "lmtp",
        [MASTER_COMMAND_PIPE] = "pipe",
        [MASTER_COMMAND_ERROR] = "error",
        [MASTER_COMMAND_DISCARD] = "discard",
        [MASTER_COMMAND_RETRY] = "retry",
        [MASTER_COMMAND_VIRTUAL] = "virtual",
        [MASTER_COMMAND_OTHER] = "other",
};

/* Postfix's daemons that deliver nothing: accepted in master.cf, not transports. */
static const char *const other_daemons[] = {
        "smtpd", "cleanup", "qmgr", "oqmgr", "pickup", "bounce", "trivial-rewrite", "tlsmgr", "showq",
        "flush", "proxymap", "verify", "anvil", "scache", "postlogd", "spawn", "postscreen", "dnsblog",
        "tlsproxy", "qmqpd",
};

const char *master_command_to_string(MasterCommand c) {
        return c >= 0 && c < _MASTER_COMMAND_MAX ? command_names[c] : NULL;
}

MasterCommand master_command_from_string(const char *s) {
        for (MasterCommand c = 0; c < MASTER_COMMAND_OTHER; c++)
                if (streq(command_names[c], s))
                        return c;
        for (size_t i = 0; i < ELEMENTSOF(other_daemons); i++)
                if (streq(other_daemons[i], s))
                        return MASTER_COMMAND_OTHER;
        return _MASTER_COMMAND_INVALID;
}

static void master_service_done(MasterService *s) {
        free(s->name);
        free(s->type);
        free(s->command);
        strv_free(s->args);
        strv_free(s->overrides);
}

MasterConfig *master_config_free(MasterConfig *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_services; i++)
                master_service_done(m->services + i);
        free(m->services);
        free(m->path);
        free(m);
        return NULL;
}

/* Splits one logical line into words; "{ a b }" is one word "a b" (Postfix 3's grouping). */
static int split_words(const char *line, char ***ret) {
        _cleanup_strv_free_ char **words = NULL;
        size_t n = 0;
        int r;

        for (const char *p = line;;) {
                const char *start, *end;

                while (isspace((unsigned char) *p))
                        p++;
                if (*p == '\0')
                        break;
                if (*p == '{') {
                        start = ++p;
                        end = strchr(p, '}');
                        if (!end)
                                return -EINVAL;
                        p = end + 1;
                        strstrip_span(&start, &end);
                } else {
                        start = p;
                        while (*p && !isspace((unsigned char) *p))
                                p++;
                        end = p;
                }
                char *w = strndup(start, (size_t) (end - start));
                if (!w)
                        return -ENOMEM;
                r = strv_push(&words, &n, w);
                if (r < 0)
                        return r;
        }
        if (!words) {
                words = calloc(1, sizeof(char *));
                if (!words)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(words);
        return 0;
}

static bool valid_name(const char *s) {
        if (isempty(s))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("-_.:/[]", *s))
                        return false;
        return true;
}

static int parse_service(MasterConfig *m, const char *line, unsigned lineno) {
        _cleanup_strv_free_ char **w = NULL;
        _cleanup_strv_free_ char **args = NULL, **overrides = NULL;
        size_t n_words = 0, n_args = 0, n_overrides = 0;
        MasterService *l, s = {};
        int r;

        r = split_words(line, &w);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_error("%s:%u: a '{' without its '}'", m->path, lineno);
                return -EINVAL;
        }
        n_words = strv_length(w);
        if (n_words < MASTER_COLUMNS) {
                log_error("%s:%u: a service needs 8 columns (service type private unpriv chroot wakeup "
                          "maxproc command), found %zu", m->path, lineno, n_words);
                return -EINVAL;
        }
        if (!valid_name(w[0])) {
                log_error("%s:%u: bad service name \"%s\"", m->path, lineno, w[0]);
                return -EINVAL;
        }
        if (!STRV_CONTAINS(w[1], "inet", "unix", "unix-dgram", "fifo", "pass")) {
                log_error("%s:%u: bad service type \"%s\" (inet, unix, unix-dgram, fifo or pass)", m->path,
                          lineno, w[1]);
                return -EINVAL;
        }
        for (size_t i = 2; i <= 4; i++)
                if (!STRV_CONTAINS(w[i], "-", "y", "n")) {
                        log_error("%s:%u: column %zu must be y, n or -, not \"%s\"", m->path, lineno, i + 1,
                                  w[i]);
                        return -EINVAL;
                }
        s.maxproc = -1;
        if (!streq(w[6], "-")) {
                char *end;
                long v = strtol(w[6], &end, 10);
                if (*end != '\0' || v < 0 || v > 100000 || end == w[6]) {
                        log_error("%s:%u: bad process limit \"%s\"", m->path, lineno, w[6]);
                        return -EINVAL;
                }
                s.maxproc = (int) v;
        }
        if (!streq(w[5], "-") && !streq(w[5], "0") && !STRV_CONTAINS(w[7], "pickup", "qmgr", "oqmgr", "flush",
                                                                    "tlsmgr"))
                log_warning("%s:%u: wakeup column \"%s\" of %s ignored: systemd starts postbus's roles",
                            m->path, lineno, w[5], w[0]);

        for (size_t i = MASTER_COLUMNS; i < n_words; i++) {
                if (streq(w[i], "-o")) {
                        if (i + 1 >= n_words || !strchr(w[i + 1], '=') || w[i + 1][0] == '=') {
                                log_error("%s:%u: -o needs name=value", m->path, lineno);
                                return -EINVAL;
                        }
                        /* "-o { name = value }" comes out as "name = value": drop the spaces. */
                        char *o = w[i + 1], *eq = strchr(o, '=');
                        _cleanup_free_ char *name = strndup(o, (size_t) (eq - o));
                        if (!name)
                                return log_oom();
                        char *joined = NULL;
                        if (asprintf(&joined, "%s=%s", strstrip(name), strstrip(eq + 1)) < 0 ||
                            strv_push(&overrides, &n_overrides, joined) < 0)
                                return log_oom();
                        i++;
                        continue;
                }
                char *a = strdup(w[i]);
                if (!a || strv_push(&args, &n_args, a) < 0)
                        return log_oom();
        }

        s.kind = master_command_from_string(w[7]);
        if (s.kind == MASTER_COMMAND_ERROR && streq(w[0], "retry"))
                s.kind = MASTER_COMMAND_RETRY;  /* Postfix runs error(8) as "retry": it defers */
        if (s.kind < 0) {
                log_warning("%s:%u: unknown command \"%s\" of service %s, ignoring", m->path, lineno, w[7], w[0]);
                s.kind = MASTER_COMMAND_OTHER;
        }

        for (size_t i = 0; i < m->n_services; i++)
                if (streq(m->services[i].name, w[0]) && streq(m->services[i].type, w[1])) {
                        log_error("%s:%u: service %s/%s is already defined on line %u", m->path, lineno, w[0],
                                  w[1], m->services[i].line);
                        return -EINVAL;
                }

        /* Copies: taking words out of w would end the vector early, and strv_free() would miss the rest. */
        s.name = strdup(w[0]);
        s.type = strdup(w[1]);
        s.command = strdup(w[7]);
        s.args = TAKE_PTR(args);
        s.overrides = TAKE_PTR(overrides);
        s.line = lineno;
        if (!s.args)
                s.args = calloc(1, sizeof(char *));
        if (!s.overrides)
                s.overrides = calloc(1, sizeof(char *));
        if (!s.args || !s.overrides || !s.name || !s.type || !s.command) {
                master_service_done(&s);
                return log_oom();
        }
        if (s.kind == MASTER_COMMAND_PIPE && streq(s.type, "unix")) {
                _cleanup_free_ char *argv = NULL;
                if (master_service_argv(&s, &argv) < 0 || isempty(argv) || argv[0] != '/') {
                        log_error("%s:%u: pipe service %s needs argv=/absolute/command ...", m->path, lineno,
                                  s.name);
                        master_service_done(&s);
                        return -EINVAL;
                }
        }

        l = realloc(m->services, (m->n_services + 1) * sizeof(MasterService));
        if (!l) {
                master_service_done(&s);
                return log_oom();
        }
        m->services = l;
        m->services[m->n_services++] = s;
        return 0;
}

static int parse_line(char *line, unsigned lineno, void *userdata) {
        return parse_service(userdata, line, lineno);
}

int master_config_parse(const char *text, const char *path, MasterConfig **ret) {
        _cleanup_(master_config_freep) MasterConfig *m = NULL;
        int r;

        m = calloc(1, sizeof(MasterConfig));
        if (!m)
                return -ENOMEM;
        m->path = strdup(path);
        if (!m->path)
                return -ENOMEM;
        r = logical_lines_foreach(text, path, "service", parse_line, m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* What Postfix's default master.cf declares for delivery, for a machine without a master.cf. */
static const char builtin_master_cf[] =
        "smtp      unix  -       -       n       -       -       smtp\n"
        "relay     unix  -       -       n       -       -       smtp\n"
        "lmtp      unix  -       -       n       -       -       lmtp\n"
        "local     unix  -       n       n       -       -       local\n"
        "virtual   unix  -       n       n       -       -       virtual\n"
        "error     unix  -       -       n       -       -       error\n"
        "retry     unix  -       -       n       -       -       error\n"
        "discard   unix  -       -       n       -       -       discard\n";

int master_config_load(const char *path, MasterConfig **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *text = NULL;
        size_t n;

        f = fopen(path, "re");
        if (!f) {
                if (errno != ENOENT)
                        return log_error_errno(errno, "Failed to open %s: %m", path);
                return master_config_parse(builtin_master_cf, "built-in master.cf", ret);
        }
        text = malloc(MASTER_FILE_SIZE_MAX + 1);
        if (!text)
                return log_oom();
        n = fread(text, 1, MASTER_FILE_SIZE_MAX + 1, f);
        if (ferror(f))
                return log_error_errno(EIO, "Failed to read %s.", path);
        if (n > MASTER_FILE_SIZE_MAX)
                return log_error_errno(EFBIG, "%s is larger than %u bytes.", path, MASTER_FILE_SIZE_MAX);
        if (memchr(text, '\0', n)) {
                log_error("%s contains a NUL byte.", path);
                return -EINVAL;
        }
        text[n] = '\0';
        return master_config_parse(text, path, ret);
}

const MasterService *master_config_transport(const MasterConfig *m, const char *name) {
        for (size_t i = 0; i < m->n_services; i++)
                if (streq(m->services[i].type, "unix") && streq(m->services[i].name, name) &&
                    m->services[i].kind != MASTER_COMMAND_OTHER)
                        return m->services + i;
        return NULL;
}

const char *master_service_arg(const MasterService *s, const char *name) {
        size_t len = strlen(name);

        for (char **a = s->args; *a; a++) {
                if (strncmp(*a, name, len) == 0 && (*a)[len] == '=')
                        return *a + len + 1;
                if (startswith(*a, "argv="))
                        break;          /* the rest is the command's */
        }
        return NULL;
}

int master_service_argv(const MasterService *s, char **ret) {
        char **a = s->args;
        size_t size = 1;
        char *out, *p;

        while (*a && !startswith(*a, "argv="))
                a++;
        if (!*a)
                return -ENOENT;
        for (char **i = a; *i; i++)
                size += strlen(*i) + 1;
        out = p = malloc(size);
        if (!out)
                return -ENOMEM;
        p = stpcpy(p, *a + STRLEN("argv="));
        for (char **i = a + 1; *i; i++) {
                if (p > out)
                        *p++ = ' ';
                p = stpcpy(p, *i);
        }
        *ret = out;
        return 0;
}

int master_service_smtpd_socket(const MasterService *s, char *ret_name, char *ret_listen) {
        static const char *const builtin[][2] = { { "smtp", "25" }, { "submission", "587" }, { "smtps", "465" } };
        const char *colon = strrchr(s->name, ':'), *port = colon ? colon + 1 : s->name;
        size_t host_len = colon ? (size_t) (colon - s->name) : 0;
        char number[8];

        if (!streq(s->type, "inet") || !streq(s->command, "smtpd"))
                return -ENOENT;
        if (*port == '\0' || host_len >= MASTER_LISTEN_MAX - 8)
                return -EINVAL;
        if (strspn(port, "0123456789") == strlen(port)) {
                if (strlen(port) > 5 || atoi(port) < 1 || atoi(port) > 65535)
                        return -EINVAL;
                (void) snprintf(number, sizeof number, "%d", atoi(port));
        } else {
                struct servent *e = getservbyname(port, "tcp");
                if (!e)
                        return -EINVAL;
                (void) snprintf(number, sizeof number, "%d", ntohs((uint16_t) e->s_port));
        }
        for (size_t i = 0; i < ELEMENTSOF(builtin); i++)
                if (streq(port, builtin[i][0]) || streq(number, builtin[i][1])) {
                        strcpy(ret_name, builtin[i][0]);
                        if (host_len == 0)
                                ret_listen[0] = '\0';
                        else
                                (void) snprintf(ret_listen, MASTER_LISTEN_MAX, "%.*s:%s", (int) host_len, s->name,
                                                number);
                        return 0;
                }
        /* systemd's FileDescriptorName=: printable, no ':' (LISTEN_FDNAMES separates with it). */
        size_t n = (size_t) snprintf(ret_name, MASTER_SOCKET_NAME_MAX, "smtpd-%s", s->name);
        if (n >= MASTER_SOCKET_NAME_MAX)
                return -EINVAL;
        for (char *p = ret_name; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.' && *p != '_')
                        *p = '_';
        (void) snprintf(ret_listen, MASTER_LISTEN_MAX, "%.*s%s%s", (int) host_len, s->name, host_len ? ":" : "",
                        number);
        return 0;
}

int master_config_load_beside(const char *main_cf, MasterConfig **ret) {
        _cleanup_free_ char *path = NULL;
        const char *slash = strrchr(main_cf, '/');

        if (asprintf(&path, "%.*s/master.cf", slash ? (int) (slash - main_cf) : 1, slash ? main_cf : ".") < 0)
                return log_oom();
        return master_config_load(path, ret);
}

/* Appends key and value to a NULL-terminated key/value vector. */
static int options_add(char ***l, size_t *n, const char *key, const char *value) {
        char **nl = realloc(*l, (*n + 3) * sizeof(char *));

        if (!nl)
                return -ENOMEM;
        *l = nl;
        nl[*n] = strdup(key);
        nl[*n + 1] = strdup(value);
        nl[*n + 2] = NULL;
        if (!nl[*n] || !nl[*n + 1]) {
                free(nl[*n]);
                free(nl[*n + 1]);
                nl[*n] = NULL;
                return -ENOMEM;
        }
        *n += 2;
        return 0;
}

int master_service_delivery_options(const MasterService *s, int64_t time_limit, char ***ret) {
        static const char *const pipe_args[] = { "flags", "user", "size", "eol", "directory", "null_sender" };
        _cleanup_strv_free_ char **options = calloc(1, sizeof(char *));
        char buf[32];
        size_t n = 0;
        int r;

        if (!options)
                return -ENOMEM;
        if (s->kind == MASTER_COMMAND_PIPE) {
                _cleanup_free_ char *argv = NULL;
                r = master_service_argv(s, &argv);
                if (r < 0)
                        return r;
                r = options_add(&options, &n, "argv", argv);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < ELEMENTSOF(pipe_args); i++) {
                        const char *v = master_service_arg(s, pipe_args[i]);
                        if (v && (r = options_add(&options, &n, pipe_args[i], v)) < 0)
                                return r;
                }
        }
        (void) snprintf(buf, sizeof buf, "%" PRIi64, time_limit);
        r = options_add(&options, &n, "time_limit", buf);
        if (r < 0)
                return r;
        for (char **o = s->overrides; *o; o++) {
                _cleanup_free_ char *key = NULL;
                const char *eq = strchr(*o, '=');
                if (asprintf(&key, "o:%.*s", (int) (eq - *o), *o) < 0)
                        return -ENOMEM;
                r = options_add(&options, &n, key, eq + 1);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(options);
        return 0;
}
