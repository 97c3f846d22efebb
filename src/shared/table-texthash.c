/* table-texthash.c: texthash: tables, postmap(1) input read at open into memory (no database), and the
 * sorted in-memory table that texthash: and inline: share. Every role that reads such a table runs this. */
#include <strings.h>

#include "log.h"
#include "logical-lines.h"
#include "table-internal.h"

TableEntries *table_entries_free(TableEntries *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n; i++) {
                free(e->entries[i].key);
                free(e->entries[i].value);
        }
        free(e->entries);
        return mfree(e);
}

/* Takes key and value (freed on failure). */
int table_entries_add(TableEntries *e, char *key, char *value) {
        TableEntry *n = reallocarray(e->entries, e->n + 1, sizeof(TableEntry));

        if (!n) {
                free(key);
                free(value);
                return -ENOMEM;
        }
        e->entries = n;
        e->entries[e->n] = (TableEntry) { .key = key, .value = value, .seq = e->n };
        e->n++;
        return 0;
}

static int entry_compare(const void *a, const void *b) {
        const TableEntry *x = a, *y = b;
        int c = strcmp(x->key, y->key);

        if (c != 0)
                return c;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorts, and of a key given more than once keeps the last, warning about it. */
void table_entries_finish(TableEntries *e, const char *what) {
        size_t out = 0;

        qsort(e->entries, e->n, sizeof(TableEntry), entry_compare);
        for (size_t i = 0; i < e->n; i++) {
                if (out > 0 && streq(e->entries[out - 1].key, e->entries[i].key)) {
                        _cleanup_free_ char *k = log_escape(e->entries[i].key, strlen(e->entries[i].key));
                        log_warning("%s: duplicate entry \"%s\", the last one wins.", what, strna(k));
                        free(e->entries[out - 1].key);
                        free(e->entries[out - 1].value);
                        e->entries[out - 1] = e->entries[i];
                        continue;
                }
                e->entries[out++] = e->entries[i];
        }
        e->n = out;
}

int table_entries_find(const TableEntries *e, const char *key, const char **ret_value) {
        size_t lo = 0, hi, len = strlen(key);

        if (!e || len == 0 || len > TABLE_KEY_MAX)
                return 0;
        char k[TABLE_KEY_MAX + 1];
        memcpy(k, key, len + 1);
        table_ascii_lower(k);
        hi = e->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(k, e->entries[mid].key);

                if (c == 0) {
                        if (ret_value)
                                *ret_value = e->entries[mid].value;
                        return 1;
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return 0;
}

typedef struct TexthashParser {
        TableEntries *entries;
        const char *path;
} TexthashParser;

static int texthash_line(char *line, unsigned lineno, void *userdata) {
        TexthashParser *ps = userdata;
        char *key = NULL, *value = NULL;
        int r;

        r = table_parse_line(line, TABLE_FORMAT_MAP, &key, &value);
        if (r == -ENOMEM)
                return r;
        if (r == -ENAMETOOLONG)
                log_error("%s:%u: key longer than %u bytes.", ps->path, lineno, TABLE_KEY_MAX);
        else if (r == -E2BIG)
                log_error("%s:%u: logical line longer than %u bytes.", ps->path, lineno, TABLE_LINE_MAX);
        else if (r < 0)
                log_error("%s:%u: expected format: key whitespace value.", ps->path, lineno);
        if (r < 0)
                return r;
        return table_entries_add(ps->entries, key, value);
}

int table_texthash_parse(const char *text, const char *path, TableEntries **ret) {
        _cleanup_(table_entries_freep) TableEntries *e = NULL;
        TexthashParser ps = { .path = path };
        int r;

        e = calloc(1, sizeof(TableEntries));
        if (!e)
                return -ENOMEM;
        ps.entries = e;
        r = logical_lines_foreach(text, path, "table line", texthash_line, &ps);
        if (r < 0)
                return r;
        table_entries_finish(e, path);
        *ret = TAKE_PTR(e);
        return 0;
}

/* ---- the texthash: table type ---- */

static int texthash_parse_data(const char *text, const char *path, void **ret) {
        return table_texthash_parse(text, path, (TableEntries **) ret);
}

static int texthash_table_open(Table *t) {
        return table_file_open(t, texthash_parse_data);
}

static int texthash_table_lookup(Table *t, const char *key, char **ret_value) {
        const char *value;
        int r;

        r = table_file_refresh(t, texthash_parse_data);
        if (r < 0)
                return r;
        r = table_entries_find(t->data, key, &value);
        if (r <= 0 || !ret_value)
                return r;
        *ret_value = strdup(value);
        return *ret_value ? 1 : -ENOMEM;
}

static void texthash_table_free_data(void *data) {
        table_entries_free(data);
}

const TableType table_type_texthash = {
        .name = "texthash",
        .open = texthash_table_open,
        .lookup = texthash_table_lookup,
        .free_data = texthash_table_free_data,
};
