/* string-util.c: stripping white space, and string vectors. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"
#include "string-util.h"

void strstrip_span(const char **start, const char **end) {
        const char *s = *start, *e = *end;

        while (s < e && isspace((unsigned char) *s))
                s++;
        while (e > s && isspace((unsigned char) e[-1]))
                e--;
        *start = s;
        *end = e;
}

char *strstrip(char *s) {
        const char *start = s, *end = s + strlen(s);

        strstrip_span(&start, &end);
        s[end - s] = '\0';
        return s + (start - s);
}

int strv_push(char ***l, size_t *n, char *s) {
        char **nl;

        if (!s)
                return -ENOMEM;
        nl = realloc(*l, (*n + 2) * sizeof(char *));
        if (!nl) {
                free(s);
                return -ENOMEM;
        }
        nl[(*n)++] = s;
        nl[*n] = NULL;
        *l = nl;
        return 0;
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

int buffer_append(Buffer *b, const void *data, size_t len) {
        if (len == 0)
                return 0;
        if (len > SIZE_MAX / 2 - b->len)
                return -ENOMEM;
        if (len > b->allocated - b->len) {
                size_t want = MAX(b->len + len, MAX(b->allocated * 2, (size_t) 4096));
                char *n = realloc(b->data, want);
                if (!n)
                        return -ENOMEM;
                b->data = n;
                b->allocated = want;
        }
        memcpy(b->data + b->len, data, len);
        b->len += len;
        return 0;
}

void buffer_done(Buffer *b) {
        b->data = mfree(b->data);
        b->len = b->allocated = 0;
}

int byte_set_parse(const char *s, ByteSet *ret) {
        ByteSet set = {};

        for (const char *p = s; *p; p++) {
                unsigned c = (unsigned char) *p;

                if (c == '\\') {
                        static const char escapes[] = "a\ab\bf\fn\nr\rt\tv\v";
                        const char *e;

                        p++;
                        if (!*p)
                                return -EINVAL;
                        c = (unsigned char) *p;
                        if (c >= '0' && c <= '7') {
                                c = 0;
                                for (int i = 0; i < 3 && *p >= '0' && *p <= '7'; i++, p++)
                                        c = c * 8 + (unsigned) (*p - '0');
                                p--;
                                if (c > 0377)
                                        return -EINVAL;
                        } else if (c != 0 && (e = strchr(escapes, (int) c)) && (e - escapes) % 2 == 0)
                                c = (unsigned char) e[1];
                }
                set.has[c] = true;
                set.any = true;
        }
        *ret = set;
        return 0;
}
