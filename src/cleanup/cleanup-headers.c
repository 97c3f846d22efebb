/* cleanup-headers.c: finding the header section of a message and the headers it lacks, the phrase of a
 * From header cleanup adds, and what MIME structure a header gives (Content-Type's kind and boundary). Pure
 * helpers of the cleanup process. */
#include <ctype.h>
#include <stdbool.h>
#include <strings.h>

#include "cleanup.h"
#include "string-util.h"

/* A header line starts with a field name (printable ASCII except ':') followed by ':'. */
bool cleanup_is_header_start(const char *p, size_t len) {
        size_t i = 0;

        while (i < len && p[i] > ' ' && p[i] < 0x7F && p[i] != ':')
                i++;
        return i > 0 && i < len && p[i] == ':';
}

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
                if ((line_len == 1 && line[0] == '\n') || !cleanup_is_header_start(line, line_len)) {
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

/* The headers that Postfix's header_checks(5) calls MIME related, wherever they are. */
bool cleanup_header_is_mime(const char *h, size_t len) {
        static const char *const names[] = {
                "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
                "Content-Description", "Content-ID",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                size_t n = strlen(names[i]);
                if (len > n && h[n] == ':' && strncasecmp(h, names[i], n) == 0)
                        return true;
        }
        return false;
}

static const char *skip_blanks_and_comments(const char *p) {
        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p != '(')
                        return p;
                for (unsigned depth = 0; *p; p++) {     /* RFC 822 comments nest */
                        if (*p == '\\' && p[1])
                                p++;
                        else if (*p == '(')
                                depth++;
                        else if (*p == ')' && --depth == 0) {
                                p++;
                                break;
                        }
                }
        }
}

/* A token of RFC 2045: up to blanks, controls or tspecials. */
static size_t token_len(const char *p) {
        size_t n = 0;

        while (p[n] > ' ' && p[n] < 0x7F && !strchr("()<>@,;:\\\"/[]?=", p[n]))
                n++;
        return n;
}

int cleanup_content_type_parse(const char *logical, CleanupContentType *ret_kind, char **ret_boundary) {
        const char *p = strchr(logical, ':');
        CleanupContentType kind = CLEANUP_CONTENT_OTHER;
        size_t n;

        *ret_boundary = NULL;
        if (!p)
                return -EINVAL;
        p = skip_blanks_and_comments(p + 1);
        n = token_len(p);
        if (n == 9 && strncasecmp(p, "multipart", n) == 0)
                kind = CLEANUP_CONTENT_MULTIPART;
        else if (n == 7 && strncasecmp(p, "message", n) == 0) {
                const char *sub = skip_blanks_and_comments(p + n);
                if (*sub == '/') {
                        sub = skip_blanks_and_comments(sub + 1);
                        if (token_len(sub) == 6 && strncasecmp(sub, "rfc822", 6) == 0)
                                kind = CLEANUP_CONTENT_MESSAGE;
                }
        }
        *ret_kind = kind;
        if (kind != CLEANUP_CONTENT_MULTIPART)
                return 0;

        /* The parameters: ; name = value, the value a token or a quoted string. */
        while ((p = strchr(p, ';'))) {
                const char *name = skip_blanks_and_comments(p + 1), *v;
                size_t name_len = token_len(name);

                v = skip_blanks_and_comments(name + name_len);
                p = v;
                if (*v != '=')
                        continue;
                v = skip_blanks_and_comments(v + 1);
                if (!(name_len == 8 && strncasecmp(name, "boundary", 8) == 0))
                        continue;
                _cleanup_free_ char *b = malloc(strlen(v) + 1);
                char *o = b;
                if (!b)
                        return -ENOMEM;
                if (*v == '"') {
                        for (v++; *v && *v != '"'; v++) {
                                if (*v == '\\' && v[1])
                                        v++;
                                *o++ = *v;
                        }
                } else
                        for (n = token_len(v); n > 0; n--)
                                *o++ = *v++;
                *o = '\0';
                if (o > b && o - b <= CLEANUP_BOUNDARY_MAX)
                        *ret_boundary = TAKE_PTR(b);
                return 0;
        }
        return 0;
}

int cleanup_boundary_match(const char *line, size_t len, const char *boundary) {
        size_t n = strlen(boundary);

        if (len < 2 + n || line[0] != '-' || line[1] != '-' || memcmp(line + 2, boundary, n) != 0)
                return 0;
        /* What follows may be blanks (RFC 2046 transport padding); "--" after it closes the multipart. */
        return len >= 4 + n && line[2 + n] == '-' && line[3 + n] == '-' ? 2 : 1;
}
