/* local-mbox.c: the report a delivery child of local writes for its parent, one line per final delivery,
 * warning or ignored file, and its parser. Runs in local and its delivery processes. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "dsn.h"
#include "io-util.h"
#include "local.h"
#include "log.h"

/* A report field: tabs, newlines and other control characters become blanks. */
static void report_clean(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7F)
                        *s = ' ';
}

static int report_write(LocalReport *rep, const char *line, size_t len) {
        struct stat st;

        /* The parent reads no more than this; what does not fit is dropped rather than cut. */
        if (rep->fd < 0) {
                if (len > LOCAL_REPORT_MAX || rep->buf.len > LOCAL_REPORT_MAX - len)
                        return -E2BIG;
                return buffer_append(&rep->buf, line, len);
        }
        if (fstat(rep->fd, &st) < 0)
                return -errno;
        if (len > LOCAL_REPORT_MAX || (uint64_t) st.st_size > LOCAL_REPORT_MAX - len)
                return -E2BIG;
        return write_full(rep->fd, line, len);
}

void local_report_done(LocalReport *r) {
        buffer_done(&r->buf);
}

int local_report_delivery(LocalReport *rep, const char *to, const char *orig_to, const MailboxResult *r) {
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
        return report_write(rep, line, (size_t) n);
}

int local_report_warning(LocalReport *rep, const char *fmt, ...) {
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
        return report_write(rep, line, (size_t) n);
}

int local_report_ignored(LocalReport *rep, const char *path, const char *fmt, ...) {
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
        return report_write(rep, line, (size_t) n);
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
        if (n == 0 || n >= MAILBOX_DSN_SIZE || p + n >= end || p[n] != ' ')
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
        if ((size_t) (end - text) >= MAILBOX_TEXT_SIZE)
                return -EBADMSG;

        l.type = 'D';
        memcpy(l.result.dsn, p, n);
        l.result.dsn[n] = '\0';
        l.result.status = mailbox_status_from_dsn(l.result.dsn);
        _cleanup_free_ char *t = log_escape(text, (size_t) (end - text));
        l.to = log_escape(to, (size_t) (tab1 - to));
        l.orig_to = log_escape(orig, (size_t) (tab2 - orig));
        if (!t || !l.to || !l.orig_to) {
                local_report_line_done(&l);
                return -ENOMEM;
        }
        (void) snprintf(l.result.text, sizeof l.result.text, "%s", t);
        mailbox_truncate_utf8(l.result.text, MAILBOX_TEXT_SIZE - 1);
        *ret = l;
        return 0;
}
