/* format-util.c: formatted strings, RFC 5322 dates and Message-IDs for the messages roles make. Runs in
 * cleanup and bounce. */
#include <stdarg.h>

#include "format-util.h"

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
