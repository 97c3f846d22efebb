/* mime.c: what a header says of the MIME structure of what follows it (RFC 2045, 2046): whether a line starts
 * a header, which headers are MIME ones, Content-Type's kind and boundary, boundary lines, and the walk through
 * a message's parts that these make. Pure; used by cleanup's header and body checks and by smtp's. */
#include <stdbool.h>
#include <strings.h>

#include "macro.h"
#include "mime.h"

/* A header line starts with a field name (printable ASCII except ':') followed by ':'. */
bool mime_is_header_start(const char *p, size_t len) {
        size_t i = 0;

        while (i < len && p[i] > ' ' && p[i] < 0x7F && p[i] != ':')
                i++;
        return i > 0 && i < len && p[i] == ':';
}

/* The headers that Postfix's header_checks(5) calls MIME related, wherever they are. */
bool mime_header_is_mime(const char *h, size_t len) {
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

int mime_content_type_parse(const char *logical, MimeContentType *ret_kind, char **ret_boundary) {
        const char *p = strchr(logical, ':');
        MimeContentType kind = MIME_CONTENT_OTHER;
        size_t n;

        *ret_boundary = NULL;
        if (!p)
                return -EINVAL;
        p = skip_blanks_and_comments(p + 1);
        n = token_len(p);
        if (n == 9 && strncasecmp(p, "multipart", n) == 0)
                kind = MIME_CONTENT_MULTIPART;
        else if (n == 7 && strncasecmp(p, "message", n) == 0) {
                const char *sub = skip_blanks_and_comments(p + n);
                if (*sub == '/') {
                        sub = skip_blanks_and_comments(sub + 1);
                        if (token_len(sub) == 6 && strncasecmp(sub, "rfc822", 6) == 0)
                                kind = MIME_CONTENT_MESSAGE;
                }
        }
        *ret_kind = kind;
        if (kind != MIME_CONTENT_MULTIPART)
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
                if (o > b && o - b <= MIME_BOUNDARY_MAX)
                        *ret_boundary = TAKE_PTR(b);
                return 0;
        }
        return 0;
}

int mime_boundary_match(const char *line, size_t len, const char *boundary) {
        size_t n = strlen(boundary);

        if (len < 2 + n || line[0] != '-' || line[1] != '-' || memcmp(line + 2, boundary, n) != 0)
                return 0;
        /* What follows may be blanks (RFC 2046 transport padding); "--" after it closes the multipart. */
        return len >= 4 + n && line[2 + n] == '-' && line[3 + n] == '-' ? 2 : 1;
}

int mime_walk_init(MimeWalk *w, size_t max) {
        *w = (MimeWalk) { .max = max };
        w->boundaries = calloc(MAX(max, (size_t) 1), sizeof(char *));
        return w->boundaries ? 0 : -ENOMEM;
}

char *mime_header_logical(const char *h, size_t len, size_t limit) {
        char *out = malloc(MIN(len, limit) + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len && (size_t) (o - out) < limit; i++)
                if (h[i] != '\n' && h[i] != '\r' && h[i] != '\0')
                        *o++ = h[i];
        *o = '\0';
        return out;
}

void mime_walk_done(MimeWalk *w) {
        for (size_t i = 0; i < w->n_boundaries; i++)
                free(w->boundaries[i]);
        free(w->boundaries);
        free(w->next_boundary);
}

int mime_walk_content_type(MimeWalk *w, size_t limit, const char *h, size_t len) {
        _cleanup_free_ char *logical = NULL;

        if (!(len > 13 && h[12] == ':' && strncasecmp(h, "Content-Type", 12) == 0))
                return 0;
        logical = mime_header_logical(h, len, limit);
        if (!logical)
                return -ENOMEM;
        w->next_boundary = mfree(w->next_boundary);
        return mime_content_type_parse(logical, &w->next, &w->next_boundary) == -ENOMEM ? -ENOMEM : 0;
}

void mime_walk_header_end(MimeWalk *w) {
        w->in_header = false;
        if (w->next == MIME_CONTENT_MULTIPART && w->next_boundary && w->n_boundaries < w->max)
                w->boundaries[w->n_boundaries++] = TAKE_PTR(w->next_boundary);
        else if (w->next == MIME_CONTENT_MESSAGE && w->n_boundaries < w->max) {
                w->in_header = true;
                w->header = MIME_HEADER_NESTED;
        }
        w->next = MIME_CONTENT_OTHER;
        w->next_boundary = mfree(w->next_boundary);
}

bool mime_walk_boundary(MimeWalk *w, const char *line, size_t len) {
        for (size_t i = w->n_boundaries; i > 0; i--) {
                int m = mime_boundary_match(line, len, w->boundaries[i - 1]);
                if (m == 0)
                        continue;
                while (w->n_boundaries > (m == 2 ? i - 1 : i))
                        free(w->boundaries[--w->n_boundaries]);
                w->in_header = m == 1;
                w->header = MIME_HEADER_PART;
                w->next = MIME_CONTENT_OTHER;
                w->next_boundary = mfree(w->next_boundary);
                return true;
        }
        return false;
}

