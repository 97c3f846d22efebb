/* config.c: main.cf parsing (comments, continuation lines, $name / ${name} expansion) and typed values. */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "logical-lines.h"
#include "string-util.h"

/* A parameter's main.cf name: its field name, unless CONFIG_PARAM_SPELLING_<field> exists (Postfix's
 * 2bounce_notice_recipient). That macro expands to two arguments, "~" and the spelling, which moves the
 * spelling into the place CONFIG_SECOND_() picks; any other name stays one argument, and #n is second. */
#define CONFIG_SECOND_(a, b, ...) b
#define CONFIG_SECOND(...) CONFIG_SECOND_(__VA_ARGS__)
#define CONFIG_PARAM_NAME(n) CONFIG_SECOND(CONFIG_PARAM_SPELLING_##n, #n, ~)

const ConfigParam config_params[_CONFIG_PARAM_MAX] = {
#define X(n, t, d, lo, hi, r, doc) [CONFIG_PARAM_##n] = { CONFIG_PARAM_NAME(n), CONFIG_##t, d, lo, hi, r, doc },
        POSTBUS_CONFIG_PARAMS(X)
#undef X
};

#define CONFIG_EXPAND_DEPTH_MAX 32
#define CONFIG_FILE_SIZE_MAX (4U * 1024U * 1024U)

/* Every name = value pair seen, known or not: unknown names may still be used in $expansions. */
typedef struct RawParam {
        char *name;
        char *value;
        unsigned line;
} RawParam;

typedef struct RawSet {
        RawParam *items;
        size_t n;
} RawSet;

static void raw_set_done(RawSet *s) {
        for (size_t i = 0; i < s->n; i++) {
                free(s->items[i].name);
                free(s->items[i].value);
        }
        free(s->items);
}

static RawParam *raw_set_find(RawSet *s, const char *name, size_t len) {
        for (size_t i = 0; i < s->n; i++)
                if (strlen(s->items[i].name) == len && strncmp(s->items[i].name, name, len) == 0)
                        return s->items + i;
        return NULL;
}

static int raw_set_put(RawSet *s, const char *name, const char *value, unsigned line) {
        RawParam *p = raw_set_find(s, name, strlen(name));
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        if (p) {        /* the last definition wins, as in Postfix */
                free(p->value);
                p->value = v;
                p->line = line;
                return 0;
        }
        RawParam *n = realloc(s->items, (s->n + 1) * sizeof(RawParam));
        if (!n) {
                free(v);
                return -ENOMEM;
        }
        s->items = n;
        s->items[s->n] = (RawParam) { .name = strdup(name), .value = v, .line = line };
        if (!s->items[s->n].name) {
                free(v);
                return -ENOMEM;
        }
        s->n++;
        return 0;
}

const ConfigParam *config_param_find(const char *name) {
        for (size_t i = 0; i < _CONFIG_PARAM_MAX; i++)
                if (streq(config_params[i].name, name))
                        return config_params + i;
        return NULL;
}

static bool is_name_char(char c) {
        return isalnum((unsigned char) c) || c == '_';
}

/* A growing string buffer for expansion. */
typedef struct Buf {
        char *s;
        size_t len, size;
} Buf;

static int buf_append(Buf *b, const char *s, size_t n) {
        if (n > SIZE_MAX - b->len - 1)
                return -ENOMEM;
        if (b->len + n + 1 > b->size) {
                size_t ns = MAX(b->size * 2, b->len + n + 1);
                char *p = realloc(b->s, MAX(ns, (size_t) 64));
                if (!p)
                        return -ENOMEM;
                b->s = p;
                b->size = MAX(ns, (size_t) 64);
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
        return 0;
}

static int expand(RawSet *raw, const char *value, unsigned depth, const char *where, Buf *out);

static int expand_name(RawSet *raw, const char *name, size_t len, unsigned depth, const char *where, Buf *out) {
        RawParam *p = raw_set_find(raw, name, len);

        if (!p)         /* an undefined name expands to nothing, as in Postfix */
                return 0;
        return expand(raw, p->value, depth + 1, where, out);
}

static int expand(RawSet *raw, const char *value, unsigned depth, const char *where, Buf *out) {
        int r;

        if (depth > CONFIG_EXPAND_DEPTH_MAX) {
                log_error("%s: parameter expansion is nested too deeply (a loop?)", where);
                return -ELOOP;
        }
        for (const char *p = value; *p;) {
                const char *d = strchr(p, '$');
                if (!d)
                        return buf_append(out, p, strlen(p));
                r = buf_append(out, p, (size_t) (d - p));
                if (r < 0)
                        return r;
                p = d + 1;

                if (*p == '{' || *p == '(') {
                        char close = *p == '{' ? '}' : ')';
                        const char *name = ++p, *e;
                        size_t len;

                        while (is_name_char(*p))
                                p++;
                        len = (size_t) (p - name);
                        if (len == 0) {
                                log_error("%s: empty name after '$%c'", where, close == '}' ? '{' : '(');
                                return -EINVAL;
                        }
                        if (*p == close) {
                                r = expand_name(raw, name, len, depth, where, out);
                                if (r < 0)
                                        return r;
                                p++;
                                continue;
                        }
                        if ((*p != '?' && *p != ':') || close != '}') {
                                log_error("%s: malformed parameter reference", where);
                                return -EINVAL;
                        }
                        /* ${name?text}: text if name is non-empty; ${name:text}: text if it is empty. */
                        char op = *p++;
                        e = strchr(p, '}');
                        if (!e) {
                                log_error("%s: missing '}' in parameter reference", where);
                                return -EINVAL;
                        }
                        Buf v = {};
                        r = expand_name(raw, name, len, depth, where, &v);
                        bool set = v.len > 0;
                        free(v.s);
                        if (r < 0)
                                return r;
                        if (set == (op == '?')) {
                                _cleanup_free_ char *text = strndup(p, (size_t) (e - p));
                                if (!text)
                                        return -ENOMEM;
                                r = expand(raw, text, depth + 1, where, out);
                                if (r < 0)
                                        return r;
                        }
                        p = e + 1;
                        continue;
                }

                const char *name = p;
                while (is_name_char(*p))
                        p++;
                if (p == name) {
                        log_error("%s: '$' not followed by a parameter name", where);
                        return -EINVAL;
                }
                r = expand_name(raw, name, (size_t) (p - name), depth, where, out);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Decimal digits at the start of s (no blank, no sign); *ret_end points after them. */
static int parse_digits(const char *s, long long *ret, char **ret_end) {
        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        *ret = strtoll(s, ret_end, 10);
        return errno != 0 ? -ERANGE : 0;
}

int config_parse_time(const char *s, int64_t *ret) {
        char *end;
        long long v;
        int64_t mult = 1;
        int r;

        r = parse_digits(s, &v, &end);
        if (r < 0)
                return r;
        if (*end != '\0') {
                switch (*end) {
                case 's': mult = 1; break;
                case 'm': mult = 60; break;
                case 'h': mult = 3600; break;
                case 'd': mult = 86400; break;
                case 'w': mult = 7 * 86400; break;
                default: return -EINVAL;
                }
                if (end[1] != '\0')
                        return -EINVAL;
        }
        if (v > INT64_MAX / mult)
                return -ERANGE;
        *ret = v * mult;
        return 0;
}

/* As Postfix: a TIME value without a unit is in the unit of the parameter's default ("5d": days). */
static int parse_time_param(const ConfigParam *p, const char *value, int64_t *ret) {
        size_t len = strlen(value), dl = strlen(p->def);
        char buf[64];

        if (len > 0 && len < sizeof buf - 1 && isdigit((unsigned char) value[len - 1]) && dl > 0 &&
            isalpha((unsigned char) p->def[dl - 1])) {
                memcpy(buf, value, len);
                buf[len] = p->def[dl - 1];
                buf[len + 1] = '\0';
                return config_parse_time(buf, ret);
        }
        return config_parse_time(value, ret);
}

static int parse_int(const char *s, int64_t *ret) {
        char *end;
        long long v;
        int r;

        r = parse_digits(s, &v, &end);
        if (r < 0)
                return r;
        if (*end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int config_param_parse_int(const ConfigParam *p, const char *value, int64_t *ret) {
        int64_t v;
        int r;

        assert(p->type == CONFIG_INT || p->type == CONFIG_SIZE || p->type == CONFIG_TIME);
        r = p->type == CONFIG_TIME ? parse_time_param(p, value, &v) : parse_int(value, &v);
        if (r < 0)
                return -EINVAL;
        if (v < p->min || v > p->max)
                return -ERANGE;
        *ret = v;
        return 0;
}

const char *config_where(const Config *c, ConfigParamId id, char *buf, size_t size) {
        if (c && c->lines[id] > 0)
                (void) snprintf(buf, size, "%s:%u", c->path, c->lines[id]);
        else
                (void) snprintf(buf, size, "default of %s", config_params[id].name);
        return buf;
}

static int config_set_value(Config *c, ConfigParamId id, char *value) {
        const ConfigParam *p = config_params + id;
        char where[PATH_MAX + 32];
        int64_t v = 0;
        int r = 0;

        (void) config_where(c, id, where, sizeof where);
        switch (p->type) {
        case CONFIG_STRING:
                break;
        case CONFIG_INT:
        case CONFIG_SIZE:
        case CONFIG_TIME:
                r = config_param_parse_int(p, value, &v);
                break;
        case CONFIG_BOOL:
                if (streq(value, "yes") || streq(value, "true"))
                        v = 1;
                else if (streq(value, "no") || streq(value, "false"))
                        v = 0;
                else
                        r = -EINVAL;
                break;
        default:

                return -EINVAL;
        }
        if (r == -ERANGE) {
                log_error("%s: %s = %s is out of range (%" PRIi64 "..%" PRIi64 ")", where, p->name, value,
                          p->min, p->max);
                free(value);
                return -ERANGE;
        }
        if (r < 0) {
                log_error("%s: bad value for %s: \"%s\"", where, p->name, value);
                free(value);
                return -EINVAL;
        }

        switch (id) {
#define X(n, t, d, lo, hi, roles, doc)                                                                  \
        case CONFIG_PARAM_##n:                                                                          \
                if (CONFIG_##t == CONFIG_STRING) {                                                      \
                        free(*(char **) (void *) &c->n);                                                \
                        *(char **) (void *) &c->n = value;                                              \
                        value = NULL;                                                                   \
                } else if (CONFIG_##t == CONFIG_BOOL)                                                   \
                        *(bool *) (void *) &c->n = v != 0;                                              \
                else                                                                                    \
                        *(int64_t *) (void *) &c->n = v;                                                \
                break;
                POSTBUS_CONFIG_PARAMS(X)
#undef X
        default:
                break;
        }
        free(value);
        return 0;
}

int config_set(Config *c, ConfigParamId id, const char *value) {
        char *v = strdup(value);

        assert(c->n_ref == 1);
        if (!v)
                return -ENOMEM;
        c->lines[id] = 0;
        return config_set_value(c, id, v);
}

Config *config_ref(Config *c) {
        if (c)
                c->n_ref++;
        return c;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        assert(c->n_ref > 0);
        if (--c->n_ref > 0)
                return NULL;
#define X(n, t, d, lo, hi, roles, doc)                          \
        if (CONFIG_##t == CONFIG_STRING)                        \
                free(*(char **) (void *) &c->n);
        POSTBUS_CONFIG_PARAMS(X)
#undef X
        for (size_t i = 0; i < c->n_extras; i++) {
                free(c->extras[i].name);
                free(c->extras[i].value);
        }
        free(c->extras);
        free(c->path);
        free(c);
        return NULL;
}

/* The value of a string parameter; NULL for the others. */
static const char *config_string_value(const Config *c, ConfigParamId id) {
        switch (id) {
#define X(n, t, d, lo, hi, roles, doc)                                                                  \
        case CONFIG_PARAM_##n:                                                                          \
                return CONFIG_##t == CONFIG_STRING ? *(char *const *) (const void *) &c->n : NULL;
                POSTBUS_CONFIG_PARAMS(X)
#undef X
        default:
                return NULL;
        }
}

/* Postfix's "raw" parameters keep their $names: local expands forward_path and luser_relay per use ($home,
 * $user), mailbox_command's are the shell's ($EXTENSION from local's command environment), and smtpd fills in
 * smtpd_reject_footer's ($client_address) and default_rbl_reply's ($rbl_domain) per reply. */
static bool param_is_raw(const char *name) {
        return streq(name, "forward_path") || streq(name, "mailbox_command") || streq(name, "luser_relay") ||
               streq(name, "smtpd_reject_footer") || streq(name, "default_rbl_reply");
}

/* "$name" and "${name}" of a string parameter, as in an -o value ("-o smtpd_banner=$myhostname ESMTP"). */
static int service_value_expand(const Config *c, const char *value, const char *where, char **ret) {
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        FILE *f;

        f = open_memstream(&out, &len);
        if (!f)
                return -ENOMEM;
        for (const char *p = value; *p;) {
                char name[128];
                size_t n;

                if (*p != '$') {
                        fputc(*p++, f);
                        continue;
                }
                bool brace = p[1] == '{';
                const char *start = p + 1 + brace;
                n = strspn(start, "abcdefghijklmnopqrstuvwxyz0123456789_");
                const ConfigParam *param = NULL;
                if (n > 0 && n < sizeof name && (!brace || start[n] == '}')) {
                        memcpy(name, start, n);
                        name[n] = '\0';
                        param = config_param_find(name);
                }
                if (!param || param->type != CONFIG_STRING) {
                        fclose(f);
                        log_error("%s: cannot expand \"%s\": only $name of a parameter postbus knows and that "
                                  "holds text", where, value);
                        return -EINVAL;
                }
                fputs(strempty(config_string_value(c, (ConfigParamId) (param - config_params))), f);
                p = start + n + brace;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(out);
        return 0;
}

int config_for_service(const Config *c, const char *const *builtin, char *const *overrides, const char *where,
                       Config **ret) {
        _cleanup_(config_freep) Config *s = NULL;
        int r;

        s = calloc(1, sizeof(Config));
        if (!s)
                return -ENOMEM;
        *s = *c;
        s->n_ref = 1;
        s->extras = NULL;
        s->n_extras = 0;
        /* Deep copies of the strings, so that each Config owns its own. Every field is made its own or NULL
         * before a failure is answered, so that freeing s never frees c's. */
        bool failed = false;
#define X(n, t, d, lo, hi, roles, doc)                                                  \
        if (CONFIG_##t == CONFIG_STRING) {                                              \
                char **f = (char **) (void *) &s->n;                                    \
                if (*f && !(*f = strdup(*f)))                                           \
                        failed = true;                                                  \
        }
        POSTBUS_CONFIG_PARAMS(X)
#undef X
        s->path = strdup(c->path);
        if (failed || !s->path)
                return -ENOMEM;
        /* The extras are qmgr's per-transport parameters and smtpd's restriction classes: a service keeps
         * them. */
        if (c->n_extras > 0) {
                s->extras = calloc(c->n_extras, sizeof(ConfigExtra));
                if (!s->extras)
                        return -ENOMEM;
                for (size_t i = 0; i < c->n_extras; i++) {
                        s->extras[i] = (ConfigExtra) { .name = strdup(c->extras[i].name),
                                                       .value = strdup(c->extras[i].value),
                                                       .line = c->extras[i].line };
                        s->n_extras++;
                        if (!s->extras[i].name || !s->extras[i].value)
                                return -ENOMEM;
                }
        }

        for (const char *const *b = builtin; b && b[0]; b += 2) {
                const ConfigParam *p = config_param_find(b[0]);

                assert(p && b[1]);
                r = config_set(s, (ConfigParamId) (p - config_params), b[1]);
                if (r < 0)
                        return r;
        }
        for (char *const *o = overrides; o && *o; o++) {
                const char *eq = strchr(*o, '=');
                char name[128], *v;
                const ConfigParam *p = NULL;

                if (eq && (size_t) (eq - *o) < sizeof name) {
                        memcpy(name, *o, (size_t) (eq - *o));
                        name[eq - *o] = '\0';
                        p = config_param_find(name);
                }
                if (!p) {
                        log_warning("%s: -o %s: not a parameter postbus uses, ignoring", where, *o);
                        continue;
                }
                if (param_is_raw(name))
                        r = (v = strdup(eq + 1)) ? 0 : -ENOMEM;
                else
                        r = service_value_expand(s, eq + 1, where, &v);
                if (r < 0)
                        return r;
                s->lines[p - config_params] = 0;
                r = config_set_value(s, (ConfigParamId) (p - config_params), v);
                if (r < 0) {
                        log_error("%s: -o %s: the value above is from here", where, *o);
                        return r;
                }
        }
        *ret = TAKE_PTR(s);
        return 0;
}

typedef struct ParseContext {
        RawSet *raw;
        const char *path;
} ParseContext;

/* Adds one logical line "name = value" to raw. */
static int parse_logical_line(char *line, unsigned lineno, void *userdata) {
        const ParseContext *ctx = userdata;
        RawSet *raw = ctx->raw;
        const char *path = ctx->path;
        char *eq = strchr(line, '='), *name, *value;

        if (!eq) {
                log_error("%s:%u: missing '=' after parameter name", path, lineno);
                return -EINVAL;
        }
        *eq = '\0';
        name = strstrip(line);
        value = strstrip(eq + 1);
        if (isempty(name)) {
                log_error("%s:%u: missing parameter name before '='", path, lineno);
                return -EINVAL;
        }
        for (char *p = name; *p; p++)
                if (!is_name_char(*p)) {
                        log_error("%s:%u: bad parameter name \"%s\"", path, lineno, name);
                        return -EINVAL;
                }
        return raw_set_put(raw, name, value, lineno);
}

static int parse_text(RawSet *raw, const char *text, const char *path) {
        return logical_lines_foreach(text, path, "parameter", parse_logical_line,
                                     &(ParseContext) { .raw = raw, .path = path });
}

static int compute_defaults(RawSet *raw) {
        RawParam *h = raw_set_find(raw, "myhostname", STRLEN("myhostname"));
        RawParam *d = raw_set_find(raw, "mydomain", STRLEN("mydomain"));
        int r;

        if (isempty(h->value)) {
                char name[256] = {};
                if (gethostname(name, sizeof name - 1) < 0)
                        return log_error_errno(errno, "Failed to get host name: %m");
                r = raw_set_put(raw, "myhostname", name, 0);
                if (r < 0)
                        return r;
                h = raw_set_find(raw, "myhostname", STRLEN("myhostname"));
        }
        if (isempty(d->value)) {
                Buf b = {};
                r = expand(raw, h->value, 0, "myhostname", &b);
                if (r < 0)
                        return r;
                const char *dot = b.s ? strchr(b.s, '.') : NULL;
                r = raw_set_put(raw, "mydomain", dot && dot[1] ? dot + 1 : "localdomain", 0);
                free(b.s);
        }
        return r < 0 ? r : 0;
}

static bool config_transport_suffix(const char *name) {
        static const char *const suffixes[] = { CONFIG_TRANSPORT_SUFFIXES };
        size_t len = strlen(name);

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                size_t sl = strlen(suffixes[i]);
                if (len > sl + 1 && name[len - sl - 1] == '_' && streq(name + len - sl, suffixes[i]))
                        return true;
        }
        return false;
}

static int config_add_extra(Config *c, RawSet *raw, const RawParam *p, const char *path) {
        char where[PATH_MAX + 32];
        ConfigExtra *l;
        Buf v = {};
        int r;

        (void) snprintf(where, sizeof where, "%s:%u", path, p->line);
        r = expand(raw, p->value, 0, where, &v);
        if (r >= 0 && !v.s)
                r = buf_append(&v, "", 0);
        if (r < 0) {
                free(v.s);
                return r;
        }
        l = realloc(c->extras, (c->n_extras + 1) * sizeof(ConfigExtra));
        if (!l) {
                free(v.s);
                return -ENOMEM;
        }
        c->extras = l;
        l[c->n_extras] = (ConfigExtra) { .name = strdup(p->name), .value = v.s, .line = p->line };
        if (!l[c->n_extras].name) {
                free(v.s);
                return -ENOMEM;
        }
        c->n_extras++;
        return 0;
}

const char *config_extra(const Config *c, const char *name, unsigned *ret_line) {
        for (size_t i = 0; i < c->n_extras; i++)
                if (streq(c->extras[i].name, name)) {
                        if (ret_line)
                                *ret_line = c->extras[i].line;
                        return c->extras[i].value;
                }
        return NULL;
}

/* Whether name is one of the restriction classes that smtpd_restriction_classes names: their lists are
 * main.cf lines of their own, kept as extras. */
static bool config_restriction_class(RawSet *raw, const char *name) {
        RawParam *p = raw_set_find(raw, "smtpd_restriction_classes", strlen("smtpd_restriction_classes"));
        _cleanup_strv_free_ char **names = NULL;
        Buf v = {};
        bool found = false;

        if (!p || expand(raw, p->value, 0, "smtpd_restriction_classes", &v) < 0 || !v.s) {
                free(v.s);
                return false;
        }
        if (config_split_list(v.s, &names) >= 0)
                for (char **n = names; *n && !found; n++)
                        found = streq(*n, name);
        free(v.s);
        return found;
}

int config_param_int(const Config *c, ConfigParamId id, int64_t *ret) {
        switch (id) {
#define X(n, t, d, lo, hi, roles, doc)                                                                  \
        case CONFIG_PARAM_##n:                                                                          \
                if (CONFIG_##t == CONFIG_INT || CONFIG_##t == CONFIG_SIZE || CONFIG_##t == CONFIG_TIME) { \
                        *ret = *(const int64_t *) (const void *) &c->n;                                 \
                        return 0;                                                                       \
                }                                                                                       \
                break;
                POSTBUS_CONFIG_PARAMS(X)
#undef X
        default:
                break;
        }
        return -EINVAL;
}

int config_transport_int(const Config *c, const char *transport, const char *suffix, ConfigParamId fallback,
                         int64_t *ret) {
        const ConfigParam *fp = config_params + fallback;
        _cleanup_free_ char *name = NULL;
        const ConfigParam *p;
        int64_t v;
        int r;

        assert(fp->type == CONFIG_INT || fp->type == CONFIG_TIME);
        if (asprintf(&name, "%s_%s", transport, suffix) < 0)
                return -ENOMEM;
        p = config_param_find(name);
        if (p && p->type == fp->type)
                return config_param_int(c, (ConfigParamId) (p - config_params), ret);
        for (size_t i = 0; i < c->n_extras; i++) {
                if (!streq(c->extras[i].name, name))
                        continue;
                r = config_param_parse_int(fp, c->extras[i].value, &v);
                if (r < 0) {
                        log_error("%s:%u: bad value for %s: \"%s\" (%" PRIi64 "..%" PRIi64 ")", c->path,
                                  c->extras[i].line, name, c->extras[i].value, fp->min, fp->max);
                        return -EINVAL;
                }
                *ret = v;
                return 0;
        }
        return config_param_int(c, fallback, ret);
}

/* As Postfix: a myorigin that starts with "/" names a file (Debian's /etc/mailname) whose first line is it. */
static int config_read_myorigin(Config *c) {
        _cleanup_fclose_ FILE *f = NULL;
        char line[256], where[PATH_MAX + 32];
        char *v;

        if (!c->myorigin || c->myorigin[0] != '/')
                return 0;
        (void) config_where(c, CONFIG_PARAM_myorigin, where, sizeof where);
        f = fopen(c->myorigin, "re");
        if (!f)
                return log_error_errno(errno, "%s: myorigin = %s: %m", where, c->myorigin);
        if (!fgets(line, sizeof line, f)) {
                log_error("%s: myorigin = %s: the file is empty or unreadable", where, c->myorigin);
                return -EINVAL;
        }
        v = strstrip(line);
        if (isempty(v)) {
                log_error("%s: myorigin = %s: the first line is empty", where, c->myorigin);
                return -EINVAL;
        }
        v = strdup(v);
        if (!v)
                return -ENOMEM;
        free(c->myorigin);
        c->myorigin = v;
        return 0;
}

int config_parse(const char *text, const char *path, Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;
        RawSet raw = {};
        int r;

        c = calloc(1, sizeof(Config));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->path = strdup(path);
        if (!c->path)
                return -ENOMEM;

        for (size_t i = 0; i < _CONFIG_PARAM_MAX; i++) {
                r = raw_set_put(&raw, config_params[i].name, config_params[i].def, 0);
                if (r < 0)
                        goto finish;
        }
        r = parse_text(&raw, text, path);
        if (r < 0)
                goto finish;
        r = compute_defaults(&raw);
        if (r < 0)
                goto finish;

        for (size_t i = 0; i < raw.n; i++) {
                const ConfigParam *p = config_param_find(raw.items[i].name);
                if (!p) {
                        if (config_transport_suffix(raw.items[i].name) ||
                            config_restriction_class(&raw, raw.items[i].name)) {
                                r = config_add_extra(c, &raw, raw.items + i, path);
                                if (r < 0)
                                        goto finish;
                                continue;
                        }
                        log_warning("%s:%u: unknown parameter \"%s\", ignoring", path, raw.items[i].line,
                                    raw.items[i].name);
                        continue;
                }
                ConfigParamId id = (ConfigParamId) (p - config_params);
                char where[PATH_MAX + 32];
                Buf v = {};

                c->lines[id] = raw.items[i].line;
                if (param_is_raw(p->name))
                        r = buf_append(&v, raw.items[i].value, strlen(raw.items[i].value));
                else
                        r = expand(&raw, raw.items[i].value, 0, config_where(c, id, where, sizeof where), &v);
                if (r >= 0 && !v.s)
                        r = buf_append(&v, "", 0);
                if (r < 0) {
                        free(v.s);
                        goto finish;
                }
                r = config_set_value(c, id, v.s);
                if (r < 0)
                        goto finish;
        }
        r = config_read_myorigin(c);
        if (r < 0)
                goto finish;
        if (c->biff)
                log_warning("%s:%u: biff = yes: postbus sends no comsat notices of new mail, ignoring", path,
                            c->lines[CONFIG_PARAM_biff]);
        if (!c->smtpd_tls_auth_only)
                log_warning("%s:%u: smtpd_tls_auth_only = no: postbus offers AUTH only over TLS, ignoring", path,
                            c->lines[CONFIG_PARAM_smtpd_tls_auth_only]);
        if (strstr(c->smtpd_sasl_security_options, "noplaintext"))
                log_warning("%s:%u: smtpd_sasl_security_options = %s: postbus's mechanisms are PLAIN and LOGIN, "
                            "ignoring", path, c->lines[CONFIG_PARAM_smtpd_sasl_security_options],
                            c->smtpd_sasl_security_options);
        *ret = TAKE_PTR(c);
        r = 0;
finish:
        raw_set_done(&raw);
        return r;
}

int config_read(const char *path, char **ret_text, struct stat *ret_st) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *text = NULL;
        size_t n;

        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? -ENOENT : log_error_errno(errno, "Failed to open %s: %m", path);
        if (ret_st && fstat(fileno(f), ret_st) < 0)
                return log_error_errno(errno, "Failed to read %s: %m", path);
        text = malloc(CONFIG_FILE_SIZE_MAX + 1);
        if (!text)
                return log_oom();
        n = fread(text, 1, CONFIG_FILE_SIZE_MAX + 1, f);
        if (ferror(f))
                return log_error_errno(EIO, "Failed to read %s.", path);
        if (n > CONFIG_FILE_SIZE_MAX)
                return log_error_errno(EFBIG, "%s is larger than %u bytes.", path, CONFIG_FILE_SIZE_MAX);
        if (memchr(text, '\0', n))
                return log_error_errno(EINVAL, "%s contains a NUL byte.", path);
        text[n] = '\0';
        *ret_text = TAKE_PTR(text);
        return 0;
}

int config_load(const char *path, Config **ret) {
        _cleanup_free_ char *text = NULL;
        const char *p = path ?: POSTBUS_CONFDIR "/main.cf";
        int r;

        r = config_read(p, &text, NULL);
        if (r == -ENOENT) {
                log_debug("%s does not exist, using defaults.", p);
                return config_parse("", p, ret);
        }
        if (r < 0)
                return r;
        return config_parse(text, p, ret);
}

int config_parse_flags(const char *value, const ConfigFlagName *names, size_t n_names, bool ignore_case,
                       unsigned *ret_mask, char **ret_bad) {
        unsigned mask = 0;

        *ret_bad = NULL;
        for (const char *p = strempty(value); *p;) {
                size_t n;
                bool found = false;

                p += strspn(p, ", \t\r\n");
                n = strcspn(p, ", \t\r\n");
                if (n == 0)
                        break;
                for (size_t i = 0; i < n_names; i++)
                        if (strlen(names[i].name) == n &&
                            (ignore_case ? strncasecmp(p, names[i].name, n) : strncmp(p, names[i].name, n)) == 0) {
                                mask |= names[i].flag;
                                found = true;
                        }
                if (!found) {
                        *ret_bad = strndup(p, n);
                        return *ret_bad ? -EINVAL : -ENOMEM;
                }
                p += n;
        }
        *ret_mask = mask;
        return 0;
}

int config_split_list(const char *value, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (const char *p = value ?: ""; *p;) {
                size_t len, depth;

                p += strspn(p, ", \t\r\n");
                /* "{ ... }" keeps its separators, as in Postfix: "inline:{ a=b, c=d }" is one item. */
                for (len = 0, depth = 0; p[len] && (depth > 0 || !strchr(", \t\r\n", p[len])); len++)
                        if (p[len] == '{')
                                depth++;
                        else if (p[len] == '}' && depth > 0)
                                depth--;
                if (len == 0)
                        break;
                if (strv_push(&l, &n, strndup(p, len)) < 0)
                        return -ENOMEM;
                p += len;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

bool config_list_contains_domain(char **list, const char *domain) {
        size_t len = strlen(domain);

        if (len > 0 && domain[len - 1] == '.')
                len--;
        for (char **i = list; i && *i; i++)
                if (strlen(*i) == len && strncasecmp(*i, domain, len) == 0)
                        return true;
        return false;
}
