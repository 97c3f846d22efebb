/* mailbox.c: pure helpers of mailbox delivery, shared by local and virtual: the result of a delivery, the mbox
 * From_ line and the delivery headers, ">From " quoting of content that arrives in pieces, and Maildir file
 * names. Runs in the delivery agents (local, virtual) and their delivery processes. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "dsn.h"
#include "log.h"
#include "mailbox.h"

static const char *const mailbox_status_names[_MAILBOX_STATUS_MAX] = {
        [MAILBOX_STATUS_SENT] = "sent",
        [MAILBOX_STATUS_DEFERRED] = "deferred",
        [MAILBOX_STATUS_BOUNCED] = "bounced",
};

const char *mailbox_status_to_string(MailboxStatus s) {
        return s >= 0 && s < _MAILBOX_STATUS_MAX ? mailbox_status_names[s] : NULL;
}

MailboxStatus mailbox_status_from_dsn(const char *dsn) {
        return dsn[0] == '2' ? MAILBOX_STATUS_SENT :
               dsn[0] == '5' ? MAILBOX_STATUS_BOUNCED : MAILBOX_STATUS_DEFERRED;
}

void mailbox_truncate_utf8(char *s, size_t max) {
        size_t n = strlen(s);

        if (n <= max)
                return;
        n = max;
        while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                n--;
        s[n] = '\0';
}

void mailbox_result_set(MailboxResult *r, const char *dsn, const char *fmt, ...) {
        int saved = errno;
        va_list ap;

        assert(dsn_status_length(dsn, strlen(dsn)) == strlen(dsn) && strlen(dsn) < MAILBOX_DSN_SIZE);
        r->status = mailbox_status_from_dsn(dsn);
        (void) snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
        va_start(ap, fmt);
        (void) vsnprintf(r->text, sizeof r->text, fmt, ap);
        va_end(ap);
        mailbox_truncate_utf8(r->text, sizeof r->text - 1);
        errno = saved;          /* callers format "%m" and then return -errno */
}

size_t mailbox_result_format(const MailboxResult *r, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s %s", r->dsn, r->text);
        return n < 0 ? 0 : MIN((size_t) n, size - 1);
}

int mailbox_result_parse(const char *buf, size_t len, MailboxResult *ret) {
        _cleanup_free_ char *text = NULL;
        size_t n = dsn_status_length(buf, len);

        if (n == 0 || n >= MAILBOX_DSN_SIZE || n >= len || buf[n] != ' ' || len - n - 1 >= MAILBOX_TEXT_SIZE)
                return -EBADMSG;
        /* The child runs as the recipient: its text must become valid UTF-8 without control characters. */
        text = log_escape(buf + n + 1, len - n - 1);
        if (!text)
                return -ENOMEM;
        mailbox_truncate_utf8(text, MAILBOX_TEXT_SIZE - 1);

        memcpy(ret->dsn, buf, n);
        ret->dsn[n] = '\0';
        ret->status = mailbox_status_from_dsn(ret->dsn);
        strcpy(ret->text, text);
        return 0;
}

void mbox_quote_init(MboxQuote *q) {
        *q = (MboxQuote) { .line_start = true };
}

static const char mbox_from[] = "From ";

/* A line that starts with "From " gets a '>'. The bytes of a possible "From " at a line start are held back
 * (they are always a prefix of "From ", so they need no storage) until the line proves to be one or not. */
int mbox_quote_feed(MboxQuote *q, const char *data, size_t len, MailboxOutputFunc out, void *userdata) {
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

int mbox_quote_finish(MboxQuote *q, MailboxOutputFunc out, void *userdata) {
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
        n = snprintf(buf, size, "From %s  %s %s %2d %02d:%02d:%02d %d\n", who, days[tm->tm_wday],
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

int mailbox_lock_parse(const char *value, MailboxLocking *locking) {
        _cleanup_strv_free_ char **words = NULL;
        bool dotlock = false, fcntl_lock = false;
        int r;

        r = config_split_list(value, &words);
        if (r < 0)
                return r;
        for (char **w = words; *w; w++) {
                if (strcaseeq(*w, "dotlock"))
                        dotlock = true;
                else if (strcaseeq(*w, "fcntl"))
                        fcntl_lock = true;
                else
                        return -EINVAL;
        }
        if (!dotlock && !fcntl_lock)
                return -EINVAL;
        locking->no_dotlock = !dotlock;
        locking->no_fcntl = !fcntl_lock;
        return 0;
}

int mailbox_delivery_headers(const MailboxMessage *m, const char *from_line, char **ret) {
        int r;

        if (isempty(m->original))
                r = asprintf(ret, "%sReturn-Path: <%s>\nDelivered-To: %s\n", strempty(from_line), m->sender,
                             m->recipient);
        else
                r = asprintf(ret, "%sReturn-Path: <%s>\nX-Original-To: %s\nDelivered-To: %s\n",
                             strempty(from_line), m->sender, m->original, m->recipient);
        return r < 0 ? -ENOMEM : 0;
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

