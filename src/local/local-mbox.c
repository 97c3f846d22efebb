/* local-mbox.c: pure helpers of local delivery: the mbox From_ line, ">From " quoting of content that
 * arrives in pieces, Maildir file names, and the result a delivery child reports to its parent. */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "dsn.h"
#include "io-util.h"
#include "local.h"
#include "log.h"

static const char *const local_status_names[_LOCAL_STATUS_MAX] = {
        [LOCAL_STATUS_SENT] = "sent",
        [LOCAL_STATUS_DEFERRED] = "deferred",
        [LOCAL_STATUS_BOUNCED] = "bounced",
};

const char *local_status_to_string(LocalStatus s) {
        return s >= 0 && s < _LOCAL_STATUS_MAX ? local_status_names[s] : NULL;
}

static LocalStatus status_from_dsn(const char *dsn) {
        return dsn[0] == '2' ? LOCAL_STATUS_SENT :
               dsn[0] == '5' ? LOCAL_STATUS_BOUNCED : LOCAL_STATUS_DEFERRED;
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static void truncate_utf8(char *s, size_t max) {
        size_t n = strlen(s);

        if (n <= max)
                return;
        n = max;
        while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                n--;
        s[n] = '\0';
}

void local_result_set(LocalResult *r, const char *dsn, const char *fmt, ...) {
        int saved = errno;
        va_list ap;

        assert(dsn_status_length(dsn, strlen(dsn)) == strlen(dsn) && strlen(dsn) < LOCAL_DSN_SIZE);
        r->status = status_from_dsn(dsn);
        (void) snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
        va_start(ap, fmt);
        (void) vsnprintf(r->text, sizeof r->text, fmt, ap);
        va_end(ap);
        truncate_utf8(r->text, sizeof r->text - 1);
        errno = saved;          /* callers format "%m" and then return -errno */
}

size_t local_result_format(const LocalResult *r, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s %s", r->dsn, r->text);
        return n < 0 ? 0 : MIN((size_t) n, size - 1);
}

int local_result_parse(const char *buf, size_t len, LocalResult *ret) {
        _cleanup_free_ char *text = NULL;
        size_t n = dsn_status_length(buf, len);

        if (n == 0 || n >= LOCAL_DSN_SIZE || n >= len || buf[n] != ' ' || len - n - 1 >= LOCAL_TEXT_SIZE)
                return -EBADMSG;
        /* The child runs as the recipient: its text must become valid UTF-8 without control characters. */
        text = log_escape(buf + n + 1, len - n - 1);
        if (!text)
                return -ENOMEM;
        truncate_utf8(text, LOCAL_TEXT_SIZE - 1);

        memcpy(ret->dsn, buf, n);
        ret->dsn[n] = '\0';
        ret->status = status_from_dsn(ret->dsn);
        strcpy(ret->text, text);
        return 0;
}

void mbox_quote_init(MboxQuote *q) {
        *q = (MboxQuote) { .line_start = true };
}

static const char mbox_from[] = "From ";

/* A line that starts with "From " gets a '>'. The bytes of a possible "From " at a line start are held back
 * (they are always a prefix of "From ", so they need no storage) until the line proves to be one or not. */
int mbox_quote_feed(MboxQuote *q, const char *data, size_t len, LocalOutputFunc out, void *userdata) {
        size_t start = 0;       /* first byte of data not yet handed out nor held back */
        int r;

        for (size_t i = 0; i < len; i++) {
                char c = data[i];

                if (!q->line_start) {
                        if (c == '\n')
                                q->line_start = true;
                        continue;
                }
                if (c == mbox_from[q->matched]) {
                        if (q->matched == 0 && i > start) {
                                r = out(data + start, i - start, userdata);
                                if (r < 0)
                                        return r;
                        }
                        start = i + 1;
                        if (++q->matched < STRLEN(mbox_from))
                                continue;
                        r = out(">From ", STRLEN(">From "), userdata);
                        if (r < 0)
                                return r;
                        q->matched = 0;
                        q->line_start = false;
                        continue;
                }
                if (q->matched > 0) {
                        r = out(mbox_from, q->matched, userdata);
                        if (r < 0)
                                return r;
                        q->matched = 0;
                }
                q->line_start = c == '\n';
        }
        if (len > start)
                return out(data + start, len - start, userdata);
        return 0;
}

int mbox_quote_finish(MboxQuote *q, LocalOutputFunc out, void *userdata) {
        size_t n = q->matched;

        q->matched = 0;
        return n > 0 ? out(mbox_from, n, userdata) : 0;
}

int mbox_from_line(const char *sender, const struct tm *tm, char *buf, size_t size) {
        static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        const char *who = isempty(sender) ? "MAILER-DAEMON" : sender;
        size_t who_len = strlen(who);
        int n;

        if (tm->tm_wday < 0 || tm->tm_wday > 6 || tm->tm_mon < 0 || tm->tm_mon > 11)
                return -EINVAL;
        n = snprintf(buf, size, "From %s %s %s %2d %02d:%02d:%02d %d\n", who, days[tm->tm_wday],
                     months[tm->tm_mon], tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec,
                     tm->tm_year + 1900);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        /* Readers split the From_ line at blanks: a quoted local part must not add any. */
        for (size_t i = STRLEN("From "); i < STRLEN("From ") + who_len; i++)
                if ((unsigned char) buf[i] <= ' ' || buf[i] == 0x7F)
                        buf[i] = '_';
        return n;
}

int maildir_unique_name(uint64_t realtime_usec, pid_t pid, uint64_t random, const char *hostname,
                        char **ret) {
        _cleanup_free_ char *host = NULL;
        char *p;

        /* The Maildir convention: '/' and ':' in the host name as octal escapes. */
        host = malloc(strlen(hostname) * 4 + 1);
        if (!host)
                return -ENOMEM;
        p = host;
        for (const char *h = hostname; *h; h++)
                if (*h == '/' || *h == ':')
                        p += sprintf(p, "\\%03o", (unsigned) (unsigned char) *h);
                else
                        *p++ = *h;
        *p = '\0';

        uint64_t sec = realtime_usec / USEC_PER_SEC, usec = realtime_usec % USEC_PER_SEC;
        if (asprintf(ret, "%" PRIu64 ".M%06" PRIu64 "P%iR%016" PRIx64 ".%s", sec, usec, (int) pid, random,
                     host) < 0)
                return -ENOMEM;
        return 0;
}

/* A report field: tabs, newlines and other control characters become blanks. */
static void report_clean(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7F)
                        *s = ' ';
}

static int report_write(int fd, const char *line, size_t len) {
        struct stat st;

        /* The parent reads no more than this; what does not fit is dropped rather than cut. */
        if (fstat(fd, &st) < 0)
                return -errno;
        if (len > LOCAL_REPORT_MAX || (uint64_t) st.st_size > LOCAL_REPORT_MAX - len)
                return -E2BIG;
        return write_full(fd, line, len);
}

int local_report_delivery(int fd, const char *to, const char *orig_to, const LocalResult *r) {
        _cleanup_free_ char *line = NULL, *t = strdup(to), *o = strdup(strempty(orig_to)), *x = strdup(r->text);
        int n;

        if (!t || !o || !x)
                return -ENOMEM;
        report_clean(t);
        report_clean(o);
        report_clean(x);
        n = asprintf(&line, "D %s %s\t%s\t%s\n", r->dsn, t, o, x);
        if (n < 0)
                return -ENOMEM;
        return report_write(fd, line, (size_t) n);
}

int local_report_warning(int fd, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL, *line = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        report_clean(text);
        n = asprintf(&line, "W %s\n", text);
        if (n < 0)
                return -ENOMEM;
        return report_write(fd, line, (size_t) n);
}

int local_report_ignored(int fd, const char *path, const char *fmt, ...) {
        _cleanup_free_ char *why = NULL, *p = strdup(path), *line = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&why, fmt, ap);
        va_end(ap);
        if (n < 0 || !p)
                return -ENOMEM;
        report_clean(p);
        report_clean(why);
        n = asprintf(&line, "I %s\t%s\n", p, why);
        if (n < 0)
                return -ENOMEM;
        return report_write(fd, line, (size_t) n);
}

void local_report_line_done(LocalReportLine *l) {
        l->path = mfree(l->path);
        l->to = mfree(l->to);
        l->orig_to = mfree(l->orig_to);
        l->text = mfree(l->text);
}

int local_report_parse(const char *line, size_t len, LocalReportLine *ret) {
        LocalReportLine l = {};

        if (len < 2 || line[1] != ' ' || memchr(line, '\n', len) || memchr(line, '\0', len))
                return -EBADMSG;
        if (line[0] == 'W') {
                l.type = 'W';
                l.text = log_escape(line + 2, len - 2);
                if (!l.text)
                        return -ENOMEM;
                *ret = l;
                return 0;
        }
        if (line[0] == 'I') {
                const char *tab = memchr(line + 2, '\t', len - 2);
                if (!tab || tab == line + 2)
                        return -EBADMSG;
                l.type = 'I';
                l.path = log_escape(line + 2, (size_t) (tab - line - 2));
                l.text = log_escape(tab + 1, len - (size_t) (tab + 1 - line));
                if (!l.path || !l.text) {
                        local_report_line_done(&l);
                        return -ENOMEM;
                }
                *ret = l;
                return 0;
        }
        if (line[0] != 'D')
                return -EBADMSG;

        const char *p = line + 2, *end = line + len;
        size_t n = dsn_status_length(p, (size_t) (end - p));
        if (n == 0 || n >= LOCAL_DSN_SIZE || p + n >= end || p[n] != ' ')
                return -EBADMSG;
        const char *to = p + n + 1;
        const char *tab1 = memchr(to, '\t', (size_t) (end - to));
        if (!tab1 || tab1 == to)
                return -EBADMSG;
        const char *orig = tab1 + 1;
        const char *tab2 = memchr(orig, '\t', (size_t) (end - orig));
        if (!tab2)
                return -EBADMSG;
        const char *text = tab2 + 1;
        if ((size_t) (end - text) >= LOCAL_TEXT_SIZE)
                return -EBADMSG;

        l.type = 'D';
        memcpy(l.result.dsn, p, n);
        l.result.dsn[n] = '\0';
        l.result.status = status_from_dsn(l.result.dsn);
        _cleanup_free_ char *t = log_escape(text, (size_t) (end - text));
        l.to = log_escape(to, (size_t) (tab1 - to));
        l.orig_to = log_escape(orig, (size_t) (tab2 - orig));
        if (!t || !l.to || !l.orig_to) {
                local_report_line_done(&l);
                return -ENOMEM;
        }
        (void) snprintf(l.result.text, sizeof l.result.text, "%s", t);
        truncate_utf8(l.result.text, LOCAL_TEXT_SIZE - 1);
        *ret = l;
        return 0;
}
