/* format-util.c: formatted strings, RFC 5322 dates and Message-IDs for the messages roles make, and Postfix's
 * $name templates. Runs in cleanup, bounce, local and smtpd. */
#include <stdarg.h>
#include <stdbool.h>

#include "format-util.h"
#include "string-util.h"

char *strprintf(const char *fmt, ...) {
        char *s;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : s;
}

void format_rfc5322_date(time_t t, char *buf, size_t size) {
        struct tm tm;

        (void) localtime_r(&t, &tm);
        /* Postfix's form: the day of the month padded with a blank ("Mon,  7 Dec 2026 ..."). */
        (void) strftime(buf, size, "%a, %e %b %Y %H:%M:%S %z (%Z)", &tm);
}

int format_message_id(time_t now, const char *unique, const char *tag, const char *host, char **ret) {
        char stamp[32], *s;
        struct tm tm;

        (void) gmtime_r(&now, &tm);
        (void) strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
        s = strprintf("<%s.%s%s%s@%s>", stamp, unique, tag ? "." : "", strempty(tag), host);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static bool is_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static const char *var_find(const char *const *vars, const char *name, size_t len) {
        for (const char *const *v = vars; v && v[0]; v += 2)
                if (strlen(v[0]) == len && strncmp(v[0], name, len) == 0)
                        return v[1];
        return NULL;
}

int format_expand_vars(const char *text, const char *const *vars, char **ret) {
        Buffer o = {};
        int r = 0;

        for (const char *p = text; r >= 0 && *p;) {
                const char *d = strchr(p, '$');
                if (!d) {
                        r = buffer_append(&o, p, strlen(p));
                        break;
                }
                r = buffer_append(&o, p, (size_t) (d - p));
                if (r < 0)
                        break;
                p = d + 1;
                if (*p == '$') {                /* $$: a dollar sign */
                        r = buffer_append(&o, "$", 1);
                        p++;
                        continue;
                }
                bool braced = *p == '{';
                if (braced)
                        p++;
                const char *name = p;
                while (is_name_char(*p))
                        p++;
                size_t len = (size_t) (p - name);
                if (len == 0) {
                        r = -EINVAL;
                        break;
                }
                const char *value = strempty(var_find(vars, name, len));
                if (!braced) {
                        r = buffer_append(&o, value, strlen(value));
                        continue;
                }
                if (*p == '}') {
                        r = buffer_append(&o, value, strlen(value));
                        p++;
                        continue;
                }
                if (*p != '?' && *p != ':') {
                        r = -EINVAL;
                        break;
                }
                char op = *p++;
                const char *e = strchr(p, '}');
                if (!e) {
                        r = -EINVAL;
                        break;
                }
                if ((op == '?') == !isempty(value)) {
                        _cleanup_free_ char *inner = strndup(p, (size_t) (e - p)), *x = NULL;
                        if (!inner) {
                                r = -ENOMEM;
                                break;
                        }
                        r = format_expand_vars(inner, vars, &x);
                        if (r >= 0)
                                r = buffer_append(&o, x, strlen(x));
                }
                p = e + 1;
        }
        if (r >= 0)
                r = buffer_append(&o, "", 1);   /* the result's NUL, also for an empty one */
        if (r < 0) {
                buffer_done(&o);
                return r;
        }
        *ret = o.data;
        return 0;
}
