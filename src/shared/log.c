/* log.c: diagnostics and mail records, to the journal (native protocol) or to stderr. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "log.h"
#include "utf8.h"

static const char *log_role_name = "postbus";
static LogTarget log_target = LOG_TARGET_STDERR;
static int log_max_level = LOG_INFO;

#define LOG_FIELDS_MAX 64

void log_setup(const char *role) {
        const char *e;

        log_role_name = role;
        log_target = getenv("INVOCATION_ID") ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
        e = getenv("POSTBUS_LOG_LEVEL");
        if (e && streq(e, "debug"))
                log_max_level = LOG_DEBUG;
}

void log_set_target(LogTarget target) {
        log_target = target;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

const char *log_role(void) {
        return log_role_name;
}

static void log_write(int level, char **fields, const char *message) {
        if (log_target == LOG_TARGET_JOURNAL) {
                struct iovec iov[LOG_FIELDS_MAX];
                size_t n = 0;
                for (char **f = fields; *f && n < ELEMENTSOF(iov); f++)
                        iov[n++] = (struct iovec) { .iov_base = *f, .iov_len = strlen(*f) };
                if (sd_journal_sendv(iov, (int) n) >= 0)
                        return;
        }
        fprintf(stderr, "postbus/%s: %s\n", log_role_name, message);
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        errno = error;
        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);

        if (log_target == LOG_TARGET_JOURNAL) {
                char prio[16], code_line[32], ident[64], err[32];
                (void) snprintf(prio, sizeof prio, "PRIORITY=%i", level);
                (void) snprintf(code_line, sizeof code_line, "CODE_LINE=%i", line);
                (void) snprintf(ident, sizeof ident, "SYSLOG_IDENTIFIER=postbus/%s", log_role_name);
                (void) snprintf(err, sizeof err, "ERRNO=%i", error);
                _cleanup_free_ char *msg = NULL, *cf = NULL, *cfn = NULL, *role = NULL;
                if (asprintf(&msg, "MESSAGE=%s", buf) >= 0 && asprintf(&cf, "CODE_FILE=%s", file) >= 0 &&
                    asprintf(&cfn, "CODE_FUNC=%s", func) >= 0 && asprintf(&role, "POSTBUS_ROLE=%s", log_role_name) >= 0) {
                        char *fields[] = { msg, prio, ident, role, cf, code_line, cfn, error ? err : NULL, NULL };
                        log_write(level, fields, buf);
                } else
                        fprintf(stderr, "postbus/%s: %s\n", log_role_name, buf);
        } else
                fprintf(stderr, "postbus/%s: %s\n", log_role_name, buf);

        errno = saved;
        return -error;
}

int log_mail_fields(int level, const char *queue_id, const LogField *fields, const char *message, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0, k = 0;

        for (const LogField *f = fields; f && f->name; f++)
                n++;
        l = calloc(n + 6, sizeof(char *));
        if (!l)
                return -ENOMEM;

        if (asprintf(&l[k++], "MESSAGE=%s%s%s", strempty(queue_id), queue_id ? ": " : "", message) < 0 ||
            asprintf(&l[k++], "PRIORITY=%i", level) < 0 ||
            asprintf(&l[k++], "SYSLOG_IDENTIFIER=postbus/%s", log_role_name) < 0 ||
            asprintf(&l[k++], "POSTBUS_ROLE=%s", log_role_name) < 0)
                return -ENOMEM;
        if (queue_id && asprintf(&l[k++], "QUEUE_ID=%s", queue_id) < 0)
                return -ENOMEM;
        for (const LogField *f = fields; f && f->name; f++)
                if (f->value && asprintf(&l[k++], "%s=%s", f->name, f->value) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

int log_mail(int level, const char *queue_id, const LogField *fields, const char *fmt, ...) {
        _cleanup_strv_free_ char **l = NULL;
        char buf[2048];
        va_list ap;

        if (level > log_max_level)
                return 0;
        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);

        if (log_mail_fields(level, queue_id, fields, buf, &l) < 0) {
                fprintf(stderr, "postbus/%s: %s: %s\n", log_role_name, strempty(queue_id), buf);
                return 0;
        }
        log_write(level, l, l[0] + STRLEN("MESSAGE="));
        return 0;
}

/* Postfix's delay= format: two digits, more only where the whole seconds need them. */
static void format_total(double s, char buf[static 32]) {
        (void) snprintf(buf, 32, s < 1 ? "%.2f" : s < 10 ? "%.1f" : "%.0f", s);
}

/* A delays= figure as Postfix writes it: "0" below 10 ms, else at most two decimals, no trailing zeros. */
static void format_delay(double seconds, char buf[static 32]) {
        if (seconds < 0.005) {
                strcpy(buf, "0");
                return;
        }
        (void) snprintf(buf, 32, "%.2f", seconds);
        char *dot = strchr(buf, '.');
        char *end = buf + strlen(buf);
        while (dot && end > dot + 1 && end[-1] == '0')
                *--end = '\0';
        if (dot && end == dot + 1)
                *dot = '\0';
}

static double span(uint64_t from, uint64_t to) {
        return from > 0 && to > from ? (double) (to - from) / 1e6 : 0;
}

void log_delivery_record(const char *queue_id, const LogDelivery *d) {
        struct timespec ts;
        uint64_t now;
        _cleanup_free_ char *to = log_escape(strempty(d->recipient), strlen(strempty(d->recipient)));
        _cleanup_free_ char *why = log_escape(strempty(d->text), strlen(strempty(d->text)));
        bool orig = d->original_recipient && !streq(d->original_recipient, strempty(d->recipient));
        _cleanup_free_ char *orig_to = orig ? log_escape(d->original_recipient, strlen(d->original_recipient)) : NULL;
        LogField fields[16] = {
                { "RECIPIENT", to }, { "RELAY", d->relay }, { "DSN", d->dsn }, { "DELIVERY_STATUS", d->status },
        };
        size_t n = 4;
        char a[32], b[32], c[32], t[32], total[32], use[32] = "", use_field[16];
        uint64_t start;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000U;
        if (orig_to)
                fields[n++] = (LogField) { "ORIGINAL_RECIPIENT", orig_to };
        /* As Postfix: conn_use= only for a connection used before. */
        if (d->conn_use > 1) {
                (void) snprintf(use, sizeof use, ", conn_use=%u", d->conn_use);
                (void) snprintf(use_field, sizeof use_field, "%u", d->conn_use);
                fields[n++] = (LogField) { "CONN_USE", use_field };
        }
        for (const LogField *f = d->fields; f && f->name && n < ELEMENTSOF(fields) - 1; f++)
                fields[n++] = *f;
        fields[n] = (LogField) { NULL, NULL };

        /* What is not known counts to the step after it, so that the four add up to delay=. */
        start = d->connected_usec ?: d->sent_usec ?: d->active_usec ?: d->arrival_usec;
        format_delay(span(d->arrival_usec, d->active_usec ?: start), a);
        format_delay(span(d->active_usec, d->sent_usec), b);
        format_delay(span(d->sent_usec, d->connected_usec), c);
        format_delay(span(start, now), t);
        format_total(span(d->arrival_usec, now), total);
        log_mail(LOG_INFO, queue_id, fields,
                 "to=<%s>%s%s%s, relay=%s%s, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)", strempty(to),
                 orig_to ? ", orig_to=<" : "", strempty(orig_to), orig_to ? ">" : "", strna(d->relay), use,
                 total, a, b, c, t, strna(d->dsn), strna(d->status), strempty(why));
}

char *log_escape(const char *s, size_t len) {
        char *r, *p;

        if (len > (SIZE_MAX - 1) / 4)
                return NULL;
        r = p = malloc(len * 4 + 1);
        if (!r)
                return NULL;
        for (size_t i = 0; i < len;) {
                const unsigned char c = (unsigned char) s[i];
                size_t n = c >= 0x80 ? utf8_sequence_len(s + i, len - i) : 0;

                if (n > 0) {
                        memcpy(p, s + i, n);
                        p += n;
                        i += n;
                        continue;
                }
                if (c >= 0x20 && c < 0x7F && c != '\\')
                        *p++ = (char) c;
                else if (c == '\\') {
                        *p++ = '\\';
                        *p++ = '\\';
                } else
                        p += sprintf(p, "\\x%02x", c);
                i++;
        }
        *p = '\0';
        return r;
}
