/* string-util.c: stripping white space, and string vectors. */
#include <ctype.h>

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
