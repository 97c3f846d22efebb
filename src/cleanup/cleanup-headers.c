/* cleanup-headers.c: finding the header section of a message and the headers it lacks, and the phrase of a
 * From header cleanup adds. Pure helpers of the cleanup process. */
#include <ctype.h>
#include <stdbool.h>
#include <strings.h>

#include "cleanup.h"
#include "mime.h"
#include "string-util.h"

static bool header_is(const char *p, size_t len, const char *name) {
        size_t n = strlen(name);
        return len > n && p[n] == ':' && strncasecmp(p, name, n) == 0;
}

/* The value of a header (trimmed, continuation lines joined) as a string. */
static char *header_value(const char *p, size_t len) {
        const char *colon = memchr(p, ':', len);
        const char *v = colon + 1, *e = p + len;
        char *r, *o;

        strstrip_span(&v, &e);
        r = o = malloc((size_t) (e - v) + 1);
        if (!r)
                return NULL;
        for (; v < e; v++)
                if (*v != '\n')
                        *o++ = *v;
        *o = '\0';
        return r;
}

void cleanup_header_scan_done(CleanupHeaderScan *s) {
        free(s->message_id);
        s->message_id = NULL;
}

int cleanup_header_scan(const char *buf, size_t len, CleanupHeaderScan *ret) {
        CleanupHeaderScan s = {};
        size_t off = 0, hdr = 0;        /* hdr: start of the header being read */
        bool in_header = false;

        for (;;) {
                const char *nl = off < len ? memchr(buf + off, '\n', len - off) : NULL;
                size_t line_end = nl ? (size_t) (nl - buf) + 1 : len;
                const char *line = buf + off;
                size_t line_len = line_end - off;

                /* A header ends where a line does not continue it. */
                bool continues = in_header && line_len > 0 && (line[0] == ' ' || line[0] == '\t');
                if (in_header && !continues) {
                        const char *h = buf + hdr;
                        size_t hlen = off - hdr;
                        if (header_is(h, hlen, "From"))
                                s.has_from = true;
                        else if (header_is(h, hlen, "Date"))
                                s.has_date = true;
                        else if (header_is(h, hlen, "To") || header_is(h, hlen, "Cc") ||
                                 header_is(h, hlen, "Resent-To") || header_is(h, hlen, "Resent-Cc"))
                                s.has_to_or_cc = true;
                        else if (header_is(h, hlen, "Received"))
                                s.received++;
                        else if (header_is(h, hlen, "Message-ID")) {
                                s.has_message_id = true;
                                if (!s.message_id) {
                                        s.message_id = header_value(h, hlen);
                                        if (!s.message_id)
                                                return -ENOMEM;
                                }
                        }
                        in_header = false;
                }
                if (off >= len || line_len == 0) {
                        s.header_end = off;
                        s.needs_separator = true;
                        break;
                }
                if (continues) {
                        off = line_end;
                        continue;
                }
                if ((line_len == 1 && line[0] == '\n') || !mime_is_header_start(line, line_len)) {
                        /* The empty line ends the headers; a non-header line starts the body. */
                        s.header_end = off;
                        s.needs_separator = !(line_len == 1 && line[0] == '\n');
                        break;
                }
                in_header = true;
                hdr = off;
                off = line_end;
        }
        *ret = s;
        return 0;
}

char *cleanup_phrase(const char *name) {
        bool atoms = true;
        char *out, *o;

        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr(" !#$%&'*+-/=?^_`{|}~", *p) && (unsigned char) *p < 0x80)
                        atoms = false;
        if (atoms && name[0] != ' ') {
                out = strdup(name);
                if (out)
                        for (o = out; *o; o++)
                                if ((unsigned char) *o < 0x20)
                                        *o = ' ';
                return out;
        }
        out = o = malloc(strlen(name) * 2 + 3);
        if (!out)
                return NULL;
        *o++ = '"';
        for (const char *p = name; *p; p++) {
                if ((unsigned char) *p < 0x20 || *p == 0x7F)
                        continue;
                if (*p == '"' || *p == '\\')
                        *o++ = '\\';
                *o++ = *p;
        }
        *o++ = '"';
        *o = '\0';
        return out;
}
