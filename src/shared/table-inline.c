/* table-inline.c: tables written in the spec itself: inline:{ key=value, { key = value } } and
 * static:value (static:{ value }). Every role that reads such a table runs this code. */
#include <ctype.h>

#include "log.h"
#include "table-internal.h"

/* s[0..len) without the white space around it. */
static void trim(const char **s, size_t *len) {
        while (*len > 0 && isspace((unsigned char) (*s)[0])) {
                (*s)++;
                (*len)--;
        }
        while (*len > 0 && isspace((unsigned char) (*s)[*len - 1]))
                (*len)--;
}

/* The text between the outer braces of "{ ... }" (trimmed), or -EINVAL. */
static int unbrace(const char *arg, const char **ret, size_t *ret_len) {
        const char *s = arg;
        size_t len = strlen(arg);

        trim(&s, &len);
        if (len < 2 || s[0] != '{' || s[len - 1] != '}')
                return -EINVAL;
        s++;
        len -= 2;
        trim(&s, &len);
        *ret = s;
        *ret_len = len;
        return 0;
}

/* One item: "key=value", or the inside of "{ key = value }"; added to e. */
static int inline_item(TableEntries *e, const char *s, size_t len) {
        const char *eq = memchr(s, '=', len), *k = s, *v;
        size_t klen, vlen;
        char *key, *value;

        if (!eq)
                return -EINVAL;
        klen = (size_t) (eq - s);
        v = eq + 1;
        vlen = len - klen - 1;
        trim(&k, &klen);
        trim(&v, &vlen);
        if (klen == 0 || klen > TABLE_KEY_MAX || memchr(k, '{', klen) || memchr(k, '}', klen))
                return -EINVAL;
        key = strndup(k, klen);
        value = strndup(v, vlen);
        if (!key || !value) {
                free(key);
                free(value);
                return -ENOMEM;
        }
        table_ascii_lower(key);
        return table_entries_add(e, key, value);
}

int table_inline_parse(const char *arg, TableEntries **ret) {
        _cleanup_(table_entries_freep) TableEntries *e = NULL;
        const char *s;
        size_t len;
        int r;

        if (unbrace(arg, &s, &len) < 0) {
                log_error("inline:%s: expected inline:{ key=value, ... }", arg);
                return -EINVAL;
        }
        e = calloc(1, sizeof(TableEntries));
        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < len;) {
                size_t start, n;

                i += strspn(s + i, ", \t\r\n");
                if (i >= len)
                        break;
                start = i;
                if (s[i] == '{') {
                        /* A group is the item; its inside may hold commas and white space. */
                        const char *close = memchr(s + i, '}', len - i);
                        if (!close) {
                                log_error("inline:%s: unbalanced '{'", arg);
                                return -EINVAL;
                        }
                        start = i + 1;
                        n = (size_t) (close - (s + start));
                        i = (size_t) (close - s) + 1;
                        if (i < len && !strchr(", \t\r\n", s[i])) {
                                log_error("inline:%s: text after '}'", arg);
                                return -EINVAL;
                        }
                } else {
                        n = strcspn(s + i, ", \t\r\n");
                        if (n > len - i)
                                n = len - i;
                        i += n;
                }
                r = inline_item(e, s + start, n);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_error("inline:%s: \"%.*s\" is not key=value", arg, (int) MIN(n, (size_t) 64), s + start);
                        return r;
                }
        }
        table_entries_finish(e, "inline:");
        *ret = TAKE_PTR(e);
        return 0;
}

static int inline_table_open(Table *t) {
        return table_inline_parse(t->arg, (TableEntries **) &t->data);
}

static int inline_table_lookup(Table *t, const char *key, char **ret_value) {
        const char *value;
        int r;

        r = table_entries_find(t->data, key, &value);
        if (r <= 0 || !ret_value)
                return r;
        *ret_value = strdup(value);
        return *ret_value ? 1 : -ENOMEM;
}

static void inline_table_free_data(void *data) {
        table_entries_free(data);
}

const TableType table_type_inline = {
        .name = "inline",
        .open = inline_table_open,
        .lookup = inline_table_lookup,
        .free_data = inline_table_free_data,
};

/* ---- static: ---- */

int table_static_parse(const char *arg, char **ret) {
        const char *s = arg;
        size_t len = strlen(arg);
        char *v;

        if (arg[0] == '{') {
                if (unbrace(arg, &s, &len) < 0) {
                        log_error("static:%s: unbalanced '{'", arg);
                        return -EINVAL;
                }
        } else if (strpbrk(arg, "{}")) {
                log_error("static:%s: a brace only around the whole value", arg);
                return -EINVAL;
        }
        v = strndup(s, len);
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

static int static_table_open(Table *t) {
        return table_static_parse(t->arg, (char **) &t->data);
}

static int static_table_lookup(Table *t, const char *key, char **ret_value) {
        if (ret_value) {
                *ret_value = strdup(t->data);
                if (!*ret_value)
                        return -ENOMEM;
        }
        return 1;
}

static void static_table_free_data(void *data) {
        free(data);
}

const TableType table_type_static = {
        .name = "static",
        .open = static_table_open,
        .lookup = static_table_lookup,
        .free_data = static_table_free_data,
};
