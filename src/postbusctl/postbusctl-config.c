/* postbusctl-config.c: "config [NAME...]" prints parameters as main.cf resolves them, in main.cf syntax
 * (name = value), from the declared parameter table: every parameter, or the named ones; "config
 * name=value..." sets them in main.cf, as Postfix's postconf -e. */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#include "config.h"
#include "io-util.h"
#include "string-util.h"
#include "log.h"
#include "postbusctl.h"

static void print_param(const Config *c, ConfigParamId id, const void *field) {
        const ConfigParam *p = config_params + id;

        if (arg_non_default && c->lines[id] == 0)
                return;
        switch (p->type) {
        case CONFIG_STRING: {
                const char *s = *(char *const *) field;
                printf("%s =%s%s\n", p->name, isempty(s) ? "" : " ", strempty(s));
                break;
        }
        case CONFIG_INT:
        case CONFIG_SIZE:
                printf("%s = %" PRIi64 "\n", p->name, *(const int64_t *) field);
                break;
        case CONFIG_TIME:
                printf("%s = %" PRIi64 "s\n", p->name, *(const int64_t *) field);
                break;
        case CONFIG_BOOL:
                printf("%s = %s\n", p->name, *(const bool *) field ? "yes" : "no");
                break;
        default:
                assert(!"unknown parameter type");
        }
}

/* The field of parameter id in c, whatever its type. */
static const void *param_field(const Config *c, ConfigParamId id) {
        switch (id) {
#define X(n, t, d, lo, hi, roles, doc)                  \
        case CONFIG_PARAM_##n:                          \
                return &c->n;
                POSTBUS_CONFIG_PARAMS(X)
#undef X
        default:
                return NULL;
        }
}

/* The physical lines of the setting of name in text: [*start, *end), or false when text does not set it.
 * A setting is a line that starts with the name, then optional blanks and "=", with the lines that
 * start with white space after it. The last setting wins in main.cf, so the last one is found. */
static bool find_setting(const char *text, const char *name, size_t *start, size_t *end) {
        size_t n = strlen(name);
        bool found = false;

        for (const char *line = text; *line;) {
                const char *next = strchrnul(line, '\n');
                next += *next == '\n';
                if (strncmp(line, name, n) == 0 && line[n + strspn(line + n, " \t")] == '=') {
                        const char *e = next;
                        while (*e == ' ' || *e == '\t') {
                                e = strchrnul(e, '\n');
                                e += *e == '\n';
                        }
                        *start = (size_t) (line - text);
                        *end = (size_t) (e - text);
                        found = true;
                        next = e;
                }
                line = next;
        }
        return found;
}

/* text with name set to value: the last setting replaced, or a line added at the end. */
static char *set_param(const char *text, const char *name, const char *value) {
        size_t start = 0, end = 0, len = strlen(text);
        char *out = NULL;

        if (!find_setting(text, name, &start, &end))
                start = end = len;
        const char *sep = start == len && len > 0 && text[len - 1] != '\n' ? "\n" : "";
        if (asprintf(&out, "%.*s%s%s =%s%s\n%s", (int) start, text, sep, name, *value ? " " : "", value,
                     text + end) < 0)
                return NULL;
        return out;
}

/* postconf -e: "config name=value ..." sets parameters in main.cf. The result must parse, or nothing is
 * written; it replaces the file atomically, with the old file's owner and mode. */
static int config_edit(int argc, char **argv) {
        const char *path = arg_config ?: POSTBUS_CONFDIR "/main.cf";
        _cleanup_free_ char *text = NULL, *tmp = NULL;
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st = { .st_mode = S_IFREG | 0644 };
        bool existed = true;
        int r;

        r = config_read(path, &text, &st);
        if (r == -ENOENT) {
                existed = false;
                text = strdup("");
                if (!text)
                        return log_oom(), EX_OSERR;
        } else if (r < 0)
                return r == -ENOMEM ? EX_OSERR : EX_IOERR;      /* config_read() said why */

        for (int i = 1; i < argc; i++) {
                char *eq = strchr(argv[i], '=');
                if (!eq) {
                        log_error("\"%s\" is not name=value: setting and printing do not mix.", argv[i]);
                        return EX_USAGE;
                }
                _cleanup_free_ char *name = strndup(argv[i], (size_t) (eq - argv[i]));
                if (!name)
                        return log_oom(), EX_OSERR;
                strstrip(name);
                if (isempty(name) || name[strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")]) {
                        _cleanup_free_ char *e = log_escape(argv[i], strlen(argv[i]));
                        log_error("Bad parameter name in \"%s\".", strna(e));
                        return EX_USAGE;
                }
                const char *value = eq + 1 + strspn(eq + 1, " \t");
                if (strchr(value, '\n')) {
                        log_error("The value of %s holds a line break.", name);
                        return EX_USAGE;
                }
                char *next = set_param(text, name, value);
                if (!next)
                        return log_oom(), EX_OSERR;
                free(text);
                text = next;
        }

        r = config_parse(text, path, &c);
        if (r < 0)
                return r == -ENOMEM ? (log_oom(), EX_OSERR) : EX_CONFIG;     /* config_parse() said why */

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return log_oom(), EX_OSERR;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Cannot write next to %s: %m", path), EX_CANTCREAT;
        if (fchmod(fd, st.st_mode & 07777) < 0 || (existed && fchown(fd, st.st_uid, st.st_gid) < 0) ||
            write_full(fd, text, strlen(text)) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
                r = log_error_errno(errno, "Cannot write %s: %m", path);
                (void) unlink(tmp);
                return EX_IOERR;
        }
        (void) fsync_directory_of(path);
        return 0;
}

int verb_config(int argc, char **argv) {
        _cleanup_(config_freep) Config *c = NULL;
        int r;

        for (int i = 1; i < argc; i++)
                if (strchr(argv[i], '='))
                        return config_edit(argc, argv);

        /* Check the names first, so that a typo is a usage error whatever main.cf holds. */
        for (int i = 1; i < argc; i++)
                if (!config_param_find(argv[i])) {
                        _cleanup_free_ char *e = log_escape(argv[i], strlen(argv[i]));
                        log_error("Unknown parameter \"%s\".", strna(e));
                        return EX_USAGE;
                }

        /* main.cf may be missing (all defaults), but a file named on the command line must exist. */
        if (arg_config && access(arg_config, R_OK) < 0) {
                r = log_error_errno(errno, "Cannot read %s: %m", arg_config);
                return r == -ENOENT ? EX_NOINPUT : EX_CONFIG;
        }

        if (arg_defaults)
                r = config_parse("", "defaults", &c);
        else
                r = config_load(arg_config, &c);
        if (r < 0) {
                if (r == -ENOMEM)
                        log_oom();
                return r == -ENOMEM ? EX_OSERR : EX_CONFIG;  /* config_load() named file and line */
        }

        if (argc > 1)
                for (int i = 1; i < argc; i++) {
                        ConfigParamId id = (ConfigParamId) (config_param_find(argv[i]) - config_params);
                        print_param(c, id, param_field(c, id));
                }
        else
                for (ConfigParamId id = 0; id < _CONFIG_PARAM_MAX; id++)
                        print_param(c, id, param_field(c, id));

        if (fflush(stdout) != 0) {
                log_error_errno(errno, "Failed to write: %m");
                return EX_IOERR;
        }
        return 0;
}
