/* logical-lines.c: joining continuation lines of Postfix-style text files; used by every role that
 * reads main.cf, master.cf or a regexp table. */
#include <ctype.h>

#include "log.h"
#include "logical-lines.h"
#include "macro.h"

int logical_lines_foreach(const char *text, const char *path, const char *what, LogicalLineFunc f,
                          void *userdata) {
        _cleanup_free_ char *logical = malloc(strlen(text) + 1);
        size_t len = 0;
        unsigned lineno = 0, start = 0;
        int r;

        if (!logical)
                return -ENOMEM;
        for (const char *p = text; *p;) {
                const char *eol = strchrnul(p, '\n'), *q = p, *end = eol;

                lineno++;
                while (q < end && isspace((unsigned char) *q))
                        q++;
                while (end > q && isspace((unsigned char) end[-1]))
                        end--;
                if (q < end && *q != '#') {
                        if (q != p) {
                                if (len == 0) {
                                        log_error("%s:%u: continuation line without a %s before it", path,
                                                  lineno, what);
                                        return -EINVAL;
                                }
                                logical[len++] = ' ';
                        } else if (len > 0) {
                                logical[len] = '\0';
                                r = f(logical, start, userdata);
                                if (r < 0)
                                        return r;
                                len = 0;
                        }
                        if (len == 0)
                                start = lineno;
                        memcpy(logical + len, q, (size_t) (end - q));
                        len += (size_t) (end - q);
                }
                p = *eol ? eol + 1 : eol;
        }
        if (len > 0) {
                logical[len] = '\0';
                return f(logical, start, userdata);
        }
        return 0;
}
