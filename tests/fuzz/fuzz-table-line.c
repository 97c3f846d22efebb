/* fuzz-table-line.c: one logical line of a text table, as table_parse_line() splits it. The first byte
 * picks the format (even: map, odd: aliases); the rest, up to a NUL, is the line. A parsed entry must
 * have a lower-case key within the limit and a trimmed, non-empty value, and its canonical form must
 * parse back to the same entry. */
#include "fuzz.h"
#include "macro.h"
#include "table.h"

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static void check_entry(TableFormat format, const char *key, const char *value) {
        size_t klen = strlen(key), vlen = strlen(value);
        _cleanup_free_ char *line = NULL, *k2 = NULL, *v2 = NULL;
        bool needs_quotes;

        CHECK(klen > 0 && klen <= TABLE_KEY_MAX);
        CHECK(vlen > 0 && vlen <= TABLE_LINE_MAX);
        CHECK(!is_blank(value[0]) && !is_blank(value[vlen - 1]));
        for (const char *c = key; *c; c++)
                CHECK(!(*c >= 'A' && *c <= 'Z'));

        /* The canonical line of the entry reads back as the same entry. */
        if (format == TABLE_FORMAT_MAP) {
                CHECK(!strpbrk(key, " \t\r\n\v\f"));
                if (asprintf(&line, "%s\t%s", key, value) < 0)
                        abort();
        } else {
                needs_quotes = strpbrk(key, " \t\r\n\v\f:") || key[0] == '"';
                if (needs_quotes && strchr(key, '"'))
                        return;         /* a quoted name cannot hold a quote */
                if (asprintf(&line, needs_quotes ? "\"%s\": %s" : "%s: %s", key, value) < 0)
                        abort();
        }
        if (strlen(line) > TABLE_LINE_MAX)
                return;         /* the canonical form may be a little longer than the input */
        CHECK(table_parse_line(line, format, &k2, &v2) == 0);
        CHECK(streq(k2, key));
        CHECK(streq(v2, value));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *line = NULL, *key = NULL, *value = NULL;
        TableFormat format;
        int r;

        if (size < 1)
                return 0;
        format = data[0] % 2 == 0 ? TABLE_FORMAT_MAP : TABLE_FORMAT_ALIASES;
        line = strndup((const char *) data + 1, size - 1);
        CHECK(line);

        r = table_parse_line(line, format, &key, &value);
        if (r < 0) {
                CHECK(r == -EINVAL || r == -ENAMETOOLONG || r == -E2BIG || r == -ENOMEM);
                CHECK(!key && !value);
                return 0;
        }
        CHECK(r == 0);
        check_entry(format, key, value);
        return 0;
}
