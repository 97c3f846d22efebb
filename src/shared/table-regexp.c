/* table-regexp.c: regexp: and pcre: tables (regexp_table(5), pcre_table(5)): the rule file both share,
 * "[!]/pattern/flags value", "if [!]/pattern/flags" ... "endif", and $N substitution in the value; and
 * the POSIX regular expressions of regexp:. Every role that reads such a table runs this code. */
#include <ctype.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <strings.h>

#include "log.h"
#include "logical-lines.h"
#include "table-internal.h"

/* ---- POSIX extended regular expressions (regexp:) ---- */

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

static int posix_compile(const char *pattern, const char *flags, const char *path, unsigned line, void **ret,
                         unsigned *ret_nsub) {
        int cflags = REG_EXTENDED | REG_ICASE, r;
        regex_t *re;

        for (const char *f = flags; *f; f++)
                switch (*f) {
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
                        log_error("%s:%u: unknown regular expression flag '%c'", path, line, *f);
                        return -EINVAL;
                }
        if ((cflags & REG_EXTENDED) && stacked_repetition(pattern)) {
                log_error("%s:%u: bad regular expression /%s/: repetition operators one after another", path, line,
                          pattern);
                return -EINVAL;
        }
        re = malloc(sizeof(regex_t));
        if (!re)
                return -ENOMEM;
        r = regcomp(re, pattern, cflags);
        if (r != 0) {
                char err[256];

                (void) regerror(r, re, err, sizeof err);
                log_error("%s:%u: bad regular expression /%s/: %s", path, line, pattern, err);
                free(re);
                return r == REG_ESPACE ? -ENOMEM : -EINVAL;
        }
        *ret_nsub = (unsigned) MIN(re->re_nsub, (size_t) UINT_MAX);
        *ret = re;
        return 0;
}

static int posix_exec(void *re, unsigned nsub, const char *key, size_t *ovec) {
        regmatch_t m[TABLE_REGEXP_SUB_MAX + 1];
        size_t n = MIN(nsub, TABLE_REGEXP_SUB_MAX) + 1;

        if (regexec(re, key, n, m, 0) != 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                ovec[2 * i] = m[i].rm_so < 0 ? SIZE_MAX : (size_t) m[i].rm_so;
                ovec[2 * i + 1] = m[i].rm_so < 0 ? SIZE_MAX : (size_t) m[i].rm_eo;
        }
        return 1;
}

static void posix_free(void *re) {
        if (!re)
                return;
        regfree(re);
        free(re);
}

const TableRegexpEngine table_regexp_engine_posix = {
        .name = "regexp",
        .compile = posix_compile,
        .exec = posix_exec,
        .free = posix_free,
};

/* ---- the rule file ---- */

TableRegexp *table_regexp_free(TableRegexp *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n; i++) {
                r->engine->free(r->rules[i].re);
                free(r->rules[i].value);
        }
        free(r->rules);
        return mfree(r);
}

typedef struct RegexpParser {
        TableRegexp *table;
        const char *path;
        TableIfs ifs;
} RegexpParser;

/* Checks the $N references of value against nsub groups: $$ is a dollar, $N and ${N} a group. */
static int check_value(const char *value, unsigned nsub, bool negate, const char *path, unsigned line) {
        for (const char *p = value; (p = strchr(p, '$')); ) {
                unsigned long n;
                char *end;

                p++;
                if (*p == '$') {
                        p++;
                        continue;
                }
                bool brace = *p == '{';
                if (!isdigit((unsigned char) p[brace])) {
                        log_error("%s:%u: '$' not followed by a group number (write $$ for a dollar)", path, line);
                        return -EINVAL;
                }
                n = strtoul(p + brace, &end, 10);
                if (brace && *end != '}') {
                        log_error("%s:%u: unterminated ${", path, line);
                        return -EINVAL;
                }
                if (negate) {
                        log_error("%s:%u: $%lu in the value of a negated pattern, which has no groups", path, line, n);
                        return -EINVAL;
                }
                if (n > nsub || n > TABLE_REGEXP_SUB_MAX) {
                        log_error("%s:%u: $%lu refers to a group the pattern does not have", path, line, n);
                        return -EINVAL;
                }
                p = end + brace;
        }
        return 0;
}

/* "[!]/pattern/flags" at *p: compiles it, leaves *p after the flags. */
static int parse_pattern(RegexpParser *ps, char **p, unsigned line, TableRegexpRule *rule) {
        char *s = *p, *pattern, *end, *flags, delim, saved;
        int r;

        if (*s == '!') {
                rule->negate = true;
                s++;
        }
        delim = *s;
        /* Postfix takes any delimiter; one that could be part of a word would make the line ambiguous. */
        if (delim == '\0' || isalnum((unsigned char) delim) || isspace((unsigned char) delim) || delim == '\\') {
                log_error("%s:%u: a rule starts with /pattern/", ps->path, line);
                return -EINVAL;
        }
        pattern = ++s;
        /* The pattern ends at the next delimiter not escaped by a backslash. */
        for (end = pattern; *end && *end != delim; end++)
                if (*end == '\\' && end[1])
                        end++;
        if (*end != delim) {
                log_error("%s:%u: missing closing %c of the pattern", ps->path, line, delim);
                return -EINVAL;
        }
        *end = '\0';
        flags = end + 1;
        for (s = flags; *s && !isspace((unsigned char) *s); s++)
                ;
        saved = *s;
        *s = '\0';
        r = ps->table->engine->compile(pattern, flags, ps->path, line, &rule->re, &rule->nsub);
        *s = saved;
        if (r < 0)
                return r;
        while (isspace((unsigned char) *s))
                s++;
        *p = s;
        return 0;
}

static int parse_line(char *line, unsigned lineno, void *userdata) {
        RegexpParser *ps = userdata;
        TableRegexpRule rule = { .kind = TABLE_RULE_MATCH, .line = lineno };
        char *p = line;
        size_t closed;
        int r;

        r = table_if_line(&ps->ifs, &p, ps->path, lineno, &closed);
        if (r < 0)
                return r;
        rule.kind = (TableRuleKind) r;
        if (rule.kind == TABLE_RULE_ENDIF) {
                ps->table->rules[closed].endif = ps->table->n;
                return table_rule_append(&ps->table->rules, &ps->table->n, &rule, sizeof rule);
        }
        r = parse_pattern(ps, &p, lineno, &rule);
        if (r < 0)
                return r;
        r = table_rule_rest(&ps->ifs, rule.kind, p, "pattern", ps->path, lineno, ps->table->n);
        if (r < 0)
                goto fail;
        if (rule.kind == TABLE_RULE_MATCH) {
                r = check_value(p, rule.nsub, rule.negate, ps->path, lineno);
                if (r < 0)
                        goto fail;
                rule.value = strdup(p);
                if (!rule.value) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        r = table_rule_append(&ps->table->rules, &ps->table->n, &rule, sizeof rule);
        if (r >= 0)
                return 0;
fail:
        ps->table->engine->free(rule.re);
        free(rule.value);
        return r;
}

int table_regexp_parse(const char *text, const char *path, const TableRegexpEngine *engine, TableRegexp **ret) {
        _cleanup_(table_regexp_freep) TableRegexp *t = NULL;
        RegexpParser ps = { .path = path };
        int r;

        t = calloc(1, sizeof(TableRegexp));
        if (!t)
                return -ENOMEM;
        t->engine = engine;
        ps.table = t;
        r = logical_lines_foreach(text, path, "rule", parse_line, &ps);
        if (r < 0)
                return r;
        if (ps.ifs.n > 0) {
                log_error("%s:%u: if without an endif", path, t->rules[ps.ifs.open[ps.ifs.n - 1]].line);
                return -EINVAL;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

/* The value with $N replaced by group N of the match in key. */
static int substitute(const char *value, const char *key, const size_t *ovec, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (const char *p = value; *p; p++) {
                if (*p != '$') {
                        fputc(*p, f);
                        continue;
                }
                if (p[1] == '$') {
                        fputc('$', f);
                        p++;
                        continue;
                }
                bool brace = p[1] == '{';
                char *end;
                unsigned long n = strtoul(p + 1 + brace, &end, 10);     /* checked at parse time */

                if (ovec[2 * n] != SIZE_MAX)
                        fwrite(key + ovec[2 * n], 1, ovec[2 * n + 1] - ovec[2 * n], f);
                p = end + brace - 1;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

int table_regexp_match(const TableRegexp *t, const char *key, char **ret_value) {
        size_t ovec[2 * (TABLE_REGEXP_SUB_MAX + 1)];

        for (size_t i = 0; t && i < t->n; i++) {
                const TableRegexpRule *rule = t->rules + i;
                int m;

                if (rule->kind == TABLE_RULE_ENDIF)
                        continue;
                m = t->engine->exec(rule->re, rule->nsub, key, ovec);
                if (m < 0)
                        return m;
                if ((m > 0) == rule->negate) {
                        if (rule->kind == TABLE_RULE_IF)
                                i = rule->endif;        /* skip the block */
                        continue;
                }
                if (rule->kind == TABLE_RULE_IF)
                        continue;
                if (!ret_value)
                        return 1;
                if (rule->negate) {
                        char *v = strdup(rule->value);
                        if (!v)
                                return -ENOMEM;
                        *ret_value = v;
                        return 1;
                }
                int r = substitute(rule->value, key, ovec, ret_value);
                return r < 0 ? r : 1;
        }
        return 0;
}

/* ---- the regexp: table type ---- */

static int regexp_parse_data(const char *text, const char *path, void **ret) {
        return table_regexp_parse(text, path, &table_regexp_engine_posix, (TableRegexp **) ret);
}

static int regexp_table_open(Table *t) {
        return table_file_open(t, regexp_parse_data);
}

static int regexp_table_lookup(Table *t, const char *key, char **ret_value) {
        int r = table_file_refresh(t, regexp_parse_data);

        return r < 0 ? r : table_regexp_match(t->data, key, ret_value);
}

static void regexp_table_free_data(void *data) {
        table_regexp_free(data);
}

const TableType table_type_regexp = {
        .name = "regexp",
        .pattern = true,
        .open = regexp_table_open,
        .lookup = regexp_table_lookup,
        .free_data = regexp_table_free_data,
};
