/* fuzz-table-inline.c: the table texts held in memory: inline:{ ... } and static: specs, and texthash: files.
 * The first byte picks the parser (0: inline, 1: static, 2: texthash); the rest, up to a NUL, is its input.
 * Parsed entries must be sorted, unique, in lower case, and each found by its own key. */
#include "fuzz.h"
#include "log.h"
#include "table-internal.h"

static void check_entries(const TableEntries *e) {
        for (size_t i = 0; i < e->n; i++) {
                const char *v = NULL;

                if (i > 0)
                        CHECK(strcmp(e->entries[i - 1].key, e->entries[i].key) < 0);
                for (const char *c = e->entries[i].key; *c; c++)
                        CHECK(!(*c >= 'A' && *c <= 'Z'));
                CHECK(e->entries[i].key[0] != '\0');
                CHECK(table_entries_find(e, e->entries[i].key, &v) == 1);
                CHECK(v == e->entries[i].value);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(table_entries_freep) TableEntries *e = NULL;
        _cleanup_free_ char *text = NULL, *value = NULL;
        int r;

        if (size < 1 || size > 16384)
                return 0;
        log_set_max_level(LOG_CRIT);
        text = strndup((const char *) data + 1, size - 1);
        CHECK(text);

        switch (data[0] % 3) {
        case 0:
                r = table_inline_parse(text, &e);
                break;
        case 1:
                r = table_static_parse(text, &value);
                CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
                CHECK((r == 0) == (value != NULL));
                if (value)
                        CHECK(strlen(value) <= strlen(text));
                return 0;
        default:
                r = table_texthash_parse(text, "fuzz", &e);
                break;
        }
        if (r < 0) {
                CHECK(r == -EINVAL || r == -ENAMETOOLONG || r == -E2BIG || r == -ENOMEM);
                CHECK(!e);
                return 0;
        }
        check_entries(e);
        return 0;
}
