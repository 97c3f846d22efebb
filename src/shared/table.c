/* table.c: lookup tables behind one interface: the spec "type:arg" picks the type (table-<type>.c), the
 * list of tables a parameter names, and the Postfix text format that gdbm: and texthash: tables share.
 * Every role that reads a table runs this code in its own process. */
#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "table-internal.h"

struct TableList {
        Table **tables;
        size_t n;
};

static const char *const table_format_names[_TABLE_FORMAT_MAX] = {
        [TABLE_FORMAT_MAP] = "map",
        [TABLE_FORMAT_ALIASES] = "aliases",
};

const char *table_format_to_string(TableFormat f) {
        if (f < 0 || f >= _TABLE_FORMAT_MAX)
                return NULL;
        return table_format_names[f];
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

void table_ascii_lower(char *s) {
        for (; *s; s++)
                *s = ascii_lower(*s);
}

/* ---- the text format ---- */

static int parse_map(const char *p, const char **ret_key, size_t *ret_key_len, const char **ret_value) {
        const char *key = p;

        while (*p && !is_blank(*p))
                p++;
        *ret_key = key;
        *ret_key_len = (size_t) (p - key);
        if (!is_blank(*p))      /* a key without a value */
                return -EINVAL;
        *ret_value = p;
        return 0;
}

static int parse_aliases(const char *p, const char **ret_key, size_t *ret_key_len, const char **ret_value) {
        const char *key, *end;

        if (*p == '"') {        /* "name with: odd characters": value */
                key = ++p;
                end = strchr(p, '"');
                if (!end)
                        return -EINVAL;
                p = end + 1;
        } else {
                key = p;
                while (*p && *p != ':' && !is_blank(*p))
                        p++;
                end = p;
        }
        while (is_blank(*p))
                p++;
        if (*p != ':')
                return -EINVAL;
        *ret_key = key;
        *ret_key_len = (size_t) (end - key);
        *ret_value = p + 1;
        return 0;
}

int table_parse_line(const char *line, TableFormat format, char **ret_key, char **ret_value) {
        const char *key, *value, *value_end;
        size_t key_len, len;
        char *k, *v;
        int r;

        assert(line);
        assert(format >= 0 && format < _TABLE_FORMAT_MAX);

        len = strnlen(line, TABLE_LINE_MAX + 1);
        if (len > TABLE_LINE_MAX)
                return -E2BIG;

        while (is_blank(*line))
                line++;
        r = format == TABLE_FORMAT_MAP ? parse_map(line, &key, &key_len, &value)
                                       : parse_aliases(line, &key, &key_len, &value);
        if (r < 0)
                return r;
        if (key_len == 0)
                return -EINVAL;
        if (key_len > TABLE_KEY_MAX)
                return -ENAMETOOLONG;

        while (is_blank(*value))
                value++;
        value_end = value + strlen(value);
        while (value_end > value && is_blank(value_end[-1]))
                value_end--;
        if (value_end == value)
                return -EINVAL;

        k = strndup(key, key_len);
        if (!k)
                return -ENOMEM;
        for (char *c = k; *c; c++)
                *c = ascii_lower(*c);
        v = strndup(value, (size_t) (value_end - value));
        if (!v) {
                free(k);
                return -ENOMEM;
        }
        *ret_key = k;
        *ret_value = v;
        return 0;
}

/* ---- opening tables ---- */

static const TableType *const table_types[] = {
        &table_type_gdbm, &table_type_regexp, &table_type_pcre, &table_type_cidr, &table_type_static,
        &table_type_inline, &table_type_texthash, &table_type_unix,
};

/* The type named by spec[0..len), "hash" being gdbm's other name. */
static const TableType *table_type_find(const char *name, size_t len) {
        if (len == 4 && strncmp(name, "hash", 4) == 0)
                return &table_type_gdbm;
        for (size_t i = 0; i < ELEMENTSOF(table_types); i++)
                if (strlen(table_types[i]->name) == len && strncmp(name, table_types[i]->name, len) == 0)
                        return table_types[i];
        return NULL;
}

int table_open(const char *spec, Table **ret) {
        _cleanup_(table_freep) Table *t = NULL;
        const TableType *type = &table_type_gdbm;
        const char *arg = spec;
        int r;

        assert(spec);
        assert(ret);

        /* proxy:type:arg asks Postfix's proxymap to read the table; every role here reads its own. */
        if (strncmp(arg, "proxy:", 6) == 0)
                arg += 6;
        size_t n = strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
        if (n > 0 && arg[n] == ':') {
                type = table_type_find(arg, n);
                if (!type) {
                        _cleanup_free_ char *e = log_escape(spec, strlen(spec));
                        log_error("Unsupported table type in \"%s\" (gdbm:, hash:, regexp:, pcre:, cidr:, static:, "
                                  "inline:, texthash: or unix: expected).", strna(e));
                        return -EPROTONOSUPPORT;
                }
                arg += n + 1;
        }

        t = calloc(1, sizeof(Table));
        if (!t)
                return -ENOMEM;
        t->type = type;
        t->spec = strdup(spec);
        t->arg = strdup(arg);
        if (!t->spec || !t->arg)
                return -ENOMEM;
        r = type->open(t);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        if (t->data && t->type->free_data)
                t->type->free_data(t->data);
        free(t->spec);
        free(t->arg);
        free(t->db_path);
        return mfree(t);
}

const char *table_name(const Table *t) {
        return t->spec;
}

const char *table_type_name(const Table *t) {
        return t->type->name;
}

const char *table_db_path(const Table *t) {
        return t->db_path;
}

const char *table_source_path(const Table *t) {
        return t->type == &table_type_static || t->type == &table_type_inline || t->type == &table_type_unix
                       ? NULL
                       : t->arg;
}

bool table_is_pattern(const Table *t) {
        return t->type->pattern;
}

int table_lookup(Table *t, const char *key, char **ret_value) {
        assert(t);
        assert(key);

        return t->type->lookup(t, key, ret_value);
}

int table_lookup_partial(Table *t, const char *key, char **ret_value) {
        assert(t);

        if (t->type->pattern)
                return 0;
        return table_lookup(t, key, ret_value);
}

/* ---- text tables read whole ---- */

static int read_text_file(int fd, const char *path, size_t size, char **ret) {
        _cleanup_free_ char *text = NULL;
        size_t n = 0;

        text = malloc(size + 1);
        if (!text)
                return -ENOMEM;
        while (n < size) {
                ssize_t k = read(fd, text + n, size - n);
                if (k < 0)
                        return log_error_errno(errno, "Failed to read %s: %m", path);
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        text[n] = '\0';
        if (strlen(text) != n) {
                log_error("%s: contains a NUL byte", path);
                return -EBADMSG;
        }
        *ret = TAKE_PTR(text);
        return 0;
}

int table_file_refresh(Table *t, TableParseFunc parse) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        struct stat st;
        void *data = NULL;
        int r;

        if (stat(t->arg, &st) < 0) {
                if (errno == ENOENT && t->loaded)
                        log_warning("%s: the file is gone, lookups fail until it is back.", t->spec);
                t->loaded = false;
                return -errno;
        }
        if (t->loaded && st.st_dev == t->dev && st.st_ino == t->ino && st.st_size == t->size &&
            st.st_mtim.tv_sec == t->mtim.tv_sec && st.st_mtim.tv_nsec == t->mtim.tv_nsec)
                return 0;

        fd = open(t->arg, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size > TABLE_FILE_MAX) {
                log_error("%s: not a regular file of at most %u bytes", t->arg, TABLE_FILE_MAX);
                return -EBADMSG;
        }
        r = read_text_file(fd, t->arg, (size_t) st.st_size, &text);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        r = parse(text, t->arg, &data);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* The error names the line; the old contents, if any, are not used any more. */
                log_error("%s: cannot be used until it is fixed.", t->spec);
                t->loaded = false;
                return -EBADMSG;
        }
        if (t->data)
                t->type->free_data(t->data);
        t->data = data;
        t->dev = st.st_dev;
        t->ino = st.st_ino;
        t->size = st.st_size;
        t->mtim = st.st_mtim;
        t->loaded = true;
        return 0;
}

/* A file table's open: the path must be absolute; the file is read now, so that a mistake in it stops
 * the role at its start, as in Postfix. A file that does not exist (yet) is a lookup failure later. */
int table_file_open(Table *t, TableParseFunc parse) {
        int r;

        if (t->arg[0] != '/' || t->arg[strlen(t->arg) - 1] == '/' || strlen(t->arg) >= PATH_MAX) {
                _cleanup_free_ char *e = log_escape(t->spec, strlen(t->spec));
                log_error("Table \"%s\" does not name an absolute file path.", strna(e));
                return -EINVAL;
        }
        r = table_file_refresh(t, parse);
        if (r == -ENOENT)
                return 0;
        if (r == -EBADMSG)
                return -EINVAL;
        return r;
}

/* ---- lists of tables ---- */

int table_list_open(const char *value, TableList **ret) {
        _cleanup_(table_list_freep) TableList *l = NULL;
        _cleanup_strv_free_ char **specs = NULL;
        size_t n = 0;
        int r;

        assert(ret);

        r = config_split_list(value, &specs);
        if (r < 0)
                return r;
        for (char **s = specs; *s; s++)
                n++;

        l = calloc(1, sizeof(TableList));
        if (!l)
                return -ENOMEM;
        if (n > 0) {
                l->tables = calloc(n, sizeof(Table *));
                if (!l->tables)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = table_open(specs[i], &l->tables[i]);
                if (r < 0)
                        return r;
                l->n++;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

TableList *table_list_free(TableList *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n; i++)
                table_free(l->tables[i]);
        free(l->tables);
        return mfree(l);
}

bool table_list_is_empty(const TableList *l) {
        return !l || l->n == 0;
}

int table_list_lookup(TableList *l, const char *key, char **ret_value) {
        int r;

        if (!l)
                return 0;
        for (size_t i = 0; i < l->n; i++) {
                r = table_lookup(l->tables[i], key, ret_value);
                if (r != 0)
                        return r;
        }
        return 0;
}


int table_list_lookup_partial(TableList *l, const char *key, char **ret_value) {
        int r;

        if (!l)
                return 0;
        for (size_t i = 0; i < l->n; i++) {
                r = table_lookup_partial(l->tables[i], key, ret_value);
                if (r != 0)
                        return r;
        }
        return 0;
}

bool table_word_is(const char *p, const char *word) {
        size_t n = strlen(word);

        return strncasecmp(p, word, n) == 0 && (p[n] == '\0' || isspace((unsigned char) p[n]));
}

int table_if_line(TableIfs *ifs, char **p, const char *path, unsigned lineno, size_t *ret_closed) {
        if (table_word_is(*p, "endif")) {
                if ((*p)[5] != '\0' || ifs->n == 0) {
                        log_error("%s:%u: %s", path, lineno, (*p)[5] ? "text after endif" : "endif without an if");
                        return -EINVAL;
                }
                *ret_closed = ifs->open[--ifs->n];
                return TABLE_RULE_ENDIF;
        }
        if (!table_word_is(*p, "if"))
                return TABLE_RULE_MATCH;
        if (ifs->n >= ELEMENTSOF(ifs->open)) {
                log_error("%s:%u: if nested deeper than %zu", path, lineno, ELEMENTSOF(ifs->open));
                return -EINVAL;
        }
        *p += 2;
        while (isspace((unsigned char) **p))
                (*p)++;
        return TABLE_RULE_IF;
}

int table_rule_rest(TableIfs *ifs, TableRuleKind kind, const char *rest, const char *what, const char *path,
                    unsigned lineno, size_t index) {
        if (kind == TABLE_RULE_IF) {
                if (*rest != '\0') {
                        log_error("%s:%u: text after the %s of an if", path, lineno, what);
                        return -EINVAL;
                }
                ifs->open[ifs->n++] = index;
        } else if (*rest == '\0') {
                log_error("%s:%u: a %s without a value", path, lineno, what);
                return -EINVAL;
        }
        return 0;
}

int table_rule_append(void *rules_ptr, size_t *n, void *rule, size_t size) {
        void *rules, *grown;

        /* The pointer is copied, not read through a void **: the array is of rules of either kind. */
        memcpy(&rules, rules_ptr, sizeof rules);
        grown = reallocarray(rules, *n + 1, size);
        if (!grown)
                return -ENOMEM;
        memcpy((char *) grown + *n * size, rule, size);
        memset(rule, 0, size);
        (*n)++;
        memcpy(rules_ptr, &grown, sizeof grown);
        return 0;
}
