/* cleanup-checks.c: loading and matching header_checks rules (regexp_table(5) syntax). */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/stat.h>

#include "cleanup-checks.h"
#include "log.h"
#include "logical-lines.h"

/* A rule file is the administrator's, but still bounded: it is read whole. */
#define CLEANUP_CHECKS_FILE_MAX (16U * 1024U * 1024U)

static const char *const action_names[_CLEANUP_CHECK_ACTION_MAX] = {
        [CLEANUP_CHECK_NONE] = "none",
        [CLEANUP_CHECK_DUNNO] = "DUNNO",
        [CLEANUP_CHECK_REJECT] = "REJECT",
        [CLEANUP_CHECK_DISCARD] = "DISCARD",
        [CLEANUP_CHECK_HOLD] = "HOLD",
        [CLEANUP_CHECK_IGNORE] = "IGNORE",
        [CLEANUP_CHECK_WARN] = "WARN",
        [CLEANUP_CHECK_FILTER] = "FILTER",
};

const char *cleanup_check_action_to_string(CleanupCheckAction a) {
        return a >= 0 && a < _CLEANUP_CHECK_ACTION_MAX ? action_names[a] : NULL;
}

CleanupChecks *cleanup_checks_free(CleanupChecks *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_rules; i++) {
                regfree(&c->rules[i].regex);
                free(c->rules[i].text);
        }
        free(c->rules);
        free(c->path);
        free(c);
        return NULL;
}

/* Repetition operators right after another ("a++", "a*{2}") are undefined in POSIX, and glibc's regcomp()
 * takes memory exponential in their number: such a pattern is refused as a configuration error. */
static bool stacked_repetition(const char *p) {
        bool after_repetition = false, bracket = false;

        for (; *p; p++) {
                if (bracket) {
                        if (*p == ']')
                                bracket = false;
                        continue;
                }
                if (*p == '\\' && p[1]) {
                        p++;
                        after_repetition = false;
                        continue;
                }
                bool repetition = *p == '*' || *p == '+' || *p == '?' || *p == '{';
                if (repetition && after_repetition)
                        return true;
                if (*p == '{') {
                        const char *close = strchr(p, '}');
                        if (close)
                                p = close;
                }
                if (*p == '[') {
                        bracket = true;
                        if (p[1] == '^')
                                p++;
                        if (p[1] == ']')
                                p++;
                }
                after_repetition = repetition;
        }
        return false;
}

/* One logical line: "[!]/regex/flags ACTION [text]". */
static int parse_rule(CleanupChecks *c, char *line, unsigned lineno) {
        CleanupCheckRule rule = { .line = lineno };
        char *p = line, *pattern, *end, delim;
        int cflags = REG_EXTENDED | REG_ICASE | REG_NOSUB, r;

        if (*p == '!') {
                rule.negate = true;
                p++;
        }
        delim = *p;
        if (delim != '/') {
                log_error("%s:%u: a rule starts with /regex/", c->path, lineno);
                return -EINVAL;
        }
        pattern = ++p;
        /* The pattern ends at the next delimiter not escaped by a backslash. */
        for (end = pattern; *end && *end != delim; end++)
                if (*end == '\\' && end[1])
                        end++;
        if (*end != delim) {
                log_error("%s:%u: missing closing %c of the regular expression", c->path, lineno, delim);
                return -EINVAL;
        }
        *end = '\0';
        for (p = end + 1; *p && !isspace((unsigned char) *p); p++)
                switch (*p) {
                case 'i':               /* toggles case-insensitive matching, which is on by default */
                        cflags ^= REG_ICASE;
                        break;
                case 'x':               /* extended syntax is on by default; x turns it off */
                        cflags ^= REG_EXTENDED;
                        break;
                case 'm':
                        cflags ^= REG_NEWLINE;
                        break;
                default:
                        log_error("%s:%u: unknown regular expression flag '%c'", c->path, lineno, *p);
                        return -EINVAL;
                }
        while (isspace((unsigned char) *p))
                p++;
        char *action = p;
        while (*p && !isspace((unsigned char) *p))
                p++;
        size_t alen = (size_t) (p - action);
        while (isspace((unsigned char) *p))
                p++;

        rule.action = _CLEANUP_CHECK_ACTION_INVALID;
        for (CleanupCheckAction a = CLEANUP_CHECK_DUNNO; a < _CLEANUP_CHECK_ACTION_MAX; a++)
                if (strlen(action_names[a]) == alen && strncasecmp(action, action_names[a], alen) == 0)
                        rule.action = a;
        if (alen == 2 && strncasecmp(action, "OK", 2) == 0)
                rule.action = CLEANUP_CHECK_DUNNO;
        if (rule.action < 0) {
                log_error("%s:%u: unknown action \"%.*s\" (REJECT, DISCARD, HOLD, IGNORE, WARN, FILTER, DUNNO or OK)",
                          c->path, lineno, (int) MIN(alen, (size_t) 64), action);
                return -EINVAL;
        }
        if (*p) {
                rule.text = strdup(p);
                if (!rule.text)
                        return -ENOMEM;
        }
        /* FILTER needs its transport:destination, a transport name before the colon. */
        if (rule.action == CLEANUP_CHECK_FILTER &&
            (!rule.text || !strchr(rule.text, ':') || rule.text[0] == ':' || strpbrk(rule.text, " \t") ||
             strspn(rule.text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                     (size_t) (strchr(rule.text, ':') - rule.text))) {
                log_error("%s:%u: FILTER needs transport:destination", c->path, lineno);
                free(rule.text);
                return -EINVAL;
        }

        if ((cflags & REG_EXTENDED) && stacked_repetition(pattern)) {
                log_error("%s:%u: bad regular expression /%s/: repetition operators one after another", c->path,
                          lineno, pattern);
                free(rule.text);
                return -EINVAL;
        }
        r = regcomp(&rule.regex, pattern, cflags);
        if (r != 0) {
                char err[256];
                (void) regerror(r, &rule.regex, err, sizeof err);
                log_error("%s:%u: bad regular expression /%s/: %s", c->path, lineno, pattern, err);
                free(rule.text);
                return -EINVAL;
        }
        CleanupCheckRule *nr = realloc(c->rules, (c->n_rules + 1) * sizeof(CleanupCheckRule));
        if (!nr) {
                regfree(&rule.regex);
                free(rule.text);
                return -ENOMEM;
        }
        c->rules = nr;
        c->rules[c->n_rules++] = rule;
        return 0;
}

static int parse_line(char *line, unsigned lineno, void *userdata) {
        return parse_rule(userdata, line, lineno);
}

int cleanup_checks_parse(const char *text, const char *path, CleanupChecks **ret) {
        _cleanup_(cleanup_checks_freep) CleanupChecks *c = NULL;
        int r;

        c = calloc(1, sizeof(CleanupChecks));
        if (!c)
                return -ENOMEM;
        c->path = strdup(path);
        if (!c->path)
                return -ENOMEM;

        r = logical_lines_foreach(text, path, "rule", parse_line, c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int cleanup_checks_load(const char *spec, CleanupChecks **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        const char *path = spec;
        struct stat st;
        size_t n = 0;

        if (strncmp(spec, "regexp:", 7) == 0)
                path = spec + 7;
        else if (strchr(spec, ':') || spec[0] != '/') {
                log_error("header_checks = %s: only regexp:/path tables are supported", spec);
                return -EPROTONOSUPPORT;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Failed to stat %s: %m", path);
        if (!S_ISREG(st.st_mode) || st.st_size > CLEANUP_CHECKS_FILE_MAX) {
                log_error("%s: not a regular file of at most %u bytes", path, CLEANUP_CHECKS_FILE_MAX);
                return -EINVAL;
        }
        text = malloc((size_t) st.st_size + 1);
        if (!text)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, text + n, (size_t) st.st_size - n);
                if (k < 0)
                        return log_error_errno(errno, "Failed to read %s: %m", path);
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        text[n] = '\0';
        if (strlen(text) != n) {
                log_error("%s: contains a NUL byte", path);
                return -EINVAL;
        }
        return cleanup_checks_parse(text, path, ret);
}

const CleanupCheckRule *cleanup_checks_match(const CleanupChecks *c, const char *header) {
        for (size_t i = 0; c && i < c->n_rules; i++) {
                bool m = regexec(&c->rules[i].regex, header, 0, NULL, 0) == 0;
                if (m != c->rules[i].negate)
                        return &c->rules[i];
        }
        return NULL;
}
