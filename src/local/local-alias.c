/* local-alias.c: pure helpers of alias and .forward expansion: destination lists of aliases(5) values and
 * of :include: and .forward files, forward_path expansion, the command environment filter, and the scan
 * of a message's Delivered-To headers. */
#include <assert.h>
#include <stdarg.h>
#include <strings.h>

#include "local.h"

static const char *const local_target_type_names[_LOCAL_TARGET_TYPE_MAX] = {
        [LOCAL_TARGET_ADDRESS] = "address",
        [LOCAL_TARGET_MAILBOX] = "mailbox",
        [LOCAL_TARGET_COMMAND] = "command",
        [LOCAL_TARGET_FILE] = "file",
        [LOCAL_TARGET_INCLUDE] = "include",
};

const char *local_target_type_to_string(LocalTargetType t) {
        return t >= 0 && t < _LOCAL_TARGET_TYPE_MAX ? local_target_type_names[t] : NULL;
}

void local_target_list_done(LocalTargetList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i].value);
        l->items = mfree(l->items);
        l->n = 0;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One destination, blanks around it already removed; quotes are still in it. */
static int target_add(const char *s, size_t len, size_t max, LocalTargetList *l) {
        _cleanup_free_ char *v = NULL;
        LocalTargetType type;
        size_t n = 0, skip = 0;
        bool quoted = false;

        /* Quotes go, except around a local part before "@": "john doe"@example.org stays as it is. */
        bool keep_quotes = len > 0 && s[0] == '"' && memchr(s, '@', len) &&
                           s[len - 1] != '"';
        v = malloc(len + 1);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!keep_quotes && c == '"') {
                        quoted = !quoted;
                        continue;
                }
                if (!keep_quotes && quoted && c == '\\' && i + 1 < len) {
                        v[n++] = s[++i];
                        continue;
                }
                v[n++] = c;
        }
        v[n] = '\0';

        if (v[0] == '|') {
                type = LOCAL_TARGET_COMMAND;
                skip = 1;
        } else if (strncasecmp(v, ":include:", STRLEN(":include:")) == 0) {
                type = LOCAL_TARGET_INCLUDE;
                skip = STRLEN(":include:");
        } else if (v[0] == '/') {
                type = LOCAL_TARGET_FILE;
        } else if (v[0] == '\\') {
                type = LOCAL_TARGET_MAILBOX;
                skip = 1;
        } else {
                type = LOCAL_TARGET_ADDRESS;
                if (v[0] == '<' && n >= 2 && v[n - 1] == '>') {
                        v[n - 1] = '\0';
                        skip = 1;
                }
        }
        while (v[skip] && is_blank(v[skip]))
                skip++;
        n = strlen(v + skip);
        while (n > 0 && is_blank(v[skip + n - 1]))
                v[skip + --n] = '\0';
        if (n == 0)
                return -EINVAL;
        if (type == LOCAL_TARGET_INCLUDE && v[skip] != '/')
                return -EINVAL;
        if (l->n >= max)
                return -E2BIG;

        LocalTarget *items = realloc(l->items, (l->n + 1) * sizeof(LocalTarget));
        if (!items)
                return -ENOMEM;
        l->items = items;
        memmove(v, v + skip, n + 1);
        l->items[l->n++] = (LocalTarget) { .type = type, .value = TAKE_PTR(v) };
        return 0;
}

int local_targets_parse(const char *s, size_t len, size_t max, LocalTargetList *l) {
        size_t start = 0;
        bool quoted = false;
        int r;

        for (size_t i = 0; i <= len; i++) {
                if (i < len) {
                        if (s[i] == '\0')
                                return -EINVAL;
                        if (quoted && s[i] == '\\' && i + 1 < len) {
                                i++;
                                continue;
                        }
                        if (s[i] == '"')
                                quoted = !quoted;
                        if (quoted || s[i] != ',')
                                continue;
                }
                if (quoted)
                        return -EINVAL;

                size_t b = start, e = i;
                while (b < e && is_blank(s[b]))
                        b++;
                while (e > b && is_blank(s[e - 1]))
                        e--;
                if (e > b) {
                        r = target_add(s + b, e - b, max, l);
                        if (r < 0)
                                return r;
                }
                start = i + 1;
        }
        return 0;
}

int local_targets_parse_file(const char *buf, size_t len, size_t max, LocalTargetList *l) {
        size_t start = 0;
        int r;

        while (start < len) {
                const char *nl = memchr(buf + start, '\n', len - start);
                size_t end = nl ? (size_t) (nl - buf) : len;
                size_t b = start;

                if (end - start > LOCAL_LIST_LINE_MAX)
                        return -EINVAL;
                while (b < end && is_blank(buf[b]))
                        b++;
                if (b < end && buf[b] != '#') {
                        r = local_targets_parse(buf + b, end - b, max, l);
                        if (r < 0)
                                return r;
                }
                start = end + 1;
        }
        return 0;
}

void local_sanitize(char *s) {
        static const char allowed[] = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

        for (; *s; s++)
                if (!strchr(allowed, *s))
                        *s = '_';
}

void local_header_scan_init(LocalHeaderScan *s, size_t max_values) {
        *s = (LocalHeaderScan) { .line_start = true, .max_values = max_values };
}

/* The header collected in s->buf is complete. */
static int header_end(LocalHeaderScan *s) {
        static const char name[] = "delivered-to:";
        size_t b = STRLEN(name), e = s->len;
        char *v;

        if (s->truncated || s->len < STRLEN(name) || strncasecmp(s->buf, name, STRLEN(name)) != 0 ||
            s->n_values >= s->max_values)
                return 0;
        while (b < e && is_blank(s->buf[b]))
                b++;
        while (e > b && is_blank(s->buf[e - 1]))
                e--;
        if (e - b >= 2 && s->buf[b] == '<' && s->buf[e - 1] == '>') {
                b++;
                e--;
        }
        if (e == b || memchr(s->buf + b, '\0', e - b))
                return 0;       /* no address */
        v = strndup(s->buf + b, e - b);
        if (!v)
                return -ENOMEM;
        for (char *p = v; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char) (*p - 'A' + 'a');
        char **values = realloc(s->values, (s->n_values + 1) * sizeof(char *));
        if (!values) {
                free(v);
                return -ENOMEM;
        }
        s->values = values;
        s->values[s->n_values++] = v;
        return 0;
}

static void header_put(LocalHeaderScan *s, char c) {
        if (s->len < sizeof s->buf)
                s->buf[s->len++] = c;
        else
                s->truncated = true;
}

int local_header_scan_feed(LocalHeaderScan *s, const char *data, size_t len) {
        int r;

        for (size_t i = 0; i < len && !s->done; i++) {
                char c = data[i];

                if (s->line_start) {
                        s->line_start = false;
                        if (c == ' ' || c == '\t') {    /* a folded header goes on */
                                header_put(s, ' ');
                                continue;
                        }
                        r = header_end(s);
                        if (r < 0)
                                return r;
                        s->len = 0;
                        s->truncated = false;
                        if (c == '\n' || (c == '\r' && i + 1 < len && data[i + 1] == '\n')) {
                                s->done = true;
                                break;
                        }
                }
                if (c == '\n')
                        s->line_start = true;
                else
                        header_put(s, c);
        }
        return s->done;
}

int local_header_scan_finish(LocalHeaderScan *s) {
        int r = 0;

        if (!s->done)
                r = header_end(s);
        s->len = 0;
        s->done = true;
        return r;
}

bool local_header_scan_has(const LocalHeaderScan *s, const char *address) {
        for (size_t i = 0; i < s->n_values; i++)
                if (strcasecmp(s->values[i], address) == 0)
                        return true;
        return false;
}

void local_header_scan_done(LocalHeaderScan *s) {
        for (size_t i = 0; i < s->n_values; i++)
                free(s->values[i]);
        s->values = mfree(s->values);
        s->n_values = 0;
}
