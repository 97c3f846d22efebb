/* table.h: lookup tables (aliases, access, canonical, virtual, transport, header_checks, ...) behind one
 * interface, as Postfix's: the spec "type:arg" names the type and its source:
 *   gdbm:/path (hash:/path, or a plain absolute path): a GDBM file /path.gdbm compiled from the text /path
 *     by `postbusctl map build` (or newaliases); keys are folded to lower case (ASCII);
 *   texthash:/path: the same text read at open, no database;
 *   regexp:/path, pcre:/path: regexp_table(5) and pcre_table(5) rules, tried in order on the whole key;
 *   cidr:/path: cidr_table(5), network/len rules tried in order on an IP address;
 *   static:value (static:{ value }): every key gives value;
 *   inline:{ key=value, { key = value } }: a table in the spec itself;
 *   unix:passwd.byname, unix:group.byname: the system's users and groups.
 * "proxy:" before a spec is accepted and ignored. A rebuilt database or edited text file is seen by running
 * roles at their next lookup, without a restart. A file that does not exist makes lookups fail (-ENOENT),
 * which callers answer with a temporary failure, as Postfix does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Longest logical line of a text table (continuation lines joined), and longest key, in bytes. Both
 * are properties of the administrator's source file; a lookup key longer than TABLE_KEY_MAX simply
 * is not found. */
#define TABLE_LINE_MAX (64U * 1024U)
#define TABLE_KEY_MAX 1024U

/* The suffix of the database file next to the text file. */
#define TABLE_DB_SUFFIX ".gdbm"

typedef struct Table Table;
typedef struct TableList TableList;

typedef enum TableFormat {
        TABLE_FORMAT_MAP,       /* "key  value": white space separates key and value */
        TABLE_FORMAT_ALIASES,   /* "name: value, value": aliases(5) */
        _TABLE_FORMAT_MAX,
        _TABLE_FORMAT_INVALID = -EINVAL,
} TableFormat;

/* Parses spec (see above) and, for a text table, reads and parses its file. -EPROTONOSUPPORT for an unknown
 * type, -EINVAL for a relative or empty path or a file with a mistake in it; each logged with the spec. A
 * missing file or database is not an error here: lookups fail with -ENOENT until it exists. */
int table_open(const char *spec, Table **ret);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
/* The spec as given to table_open(), for messages. */
const char *table_name(const Table *t);
/* The type, "gdbm", "regexp", ... */
const char *table_type_name(const Table *t);
/* The database file, "/etc/postbus/access.gdbm", of a gdbm: table; NULL for other types. */
const char *table_db_path(const Table *t);
/* The file the table is made from (the text source of a gdbm: table), or NULL for a table that is not
 * a file (static:, inline:, unix:). */
const char *table_source_path(const Table *t);
/* Whether the table matches keys against patterns (regexp:, pcre:, cidr:): such a table is asked only
 * for whole keys, never the partial ones (parent domains, "user@", shorter networks). */
bool table_is_pattern(const Table *t);

/* 1 and the value (if ret_value is not NULL) when key is found, 0 when not, negative errno when the
 * table cannot be read (the caller answers with a temporary failure): -ENOENT when the database does
 * not exist, -EBADMSG when it is not a valid database. Reopens the database when its file was
 * replaced. */
int table_lookup(Table *t, const char *key, char **ret_value);
/* The same for a partial key (a parent domain, "user@", a shorter network): 0 for a pattern table. */
int table_lookup_partial(Table *t, const char *key, char **ret_value);

/* A list of tables as main.cf writes it ("gdbm:/a, hash:/b"; NULL or "" is an empty list): the first
 * table holding the key wins; an error in a table before that is the list's error. */
int table_list_open(const char *value, TableList **ret);
TableList *table_list_free(TableList *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(TableList *, table_list_free);
bool table_list_is_empty(const TableList *l);
int table_list_lookup(TableList *l, const char *key, char **ret_value);
int table_list_lookup_partial(TableList *l, const char *key, char **ret_value);

/* Compiles the text table at source into source.gdbm, atomically (temporary file, fsync, rename, fsync
 * of the directory); the database gets the source's mode (and owner, when run as root). Errors are
 * logged naming the file and line, and leave an existing database as it was. A duplicate key is
 * warned about, and its last value wins. Returns the number of entries. */
int table_build(const char *source, TableFormat format);

/* One logical line of a text table (continuation lines already joined, no comment). Pure, for tests
 * and fuzzing: splits into key and value, lower-cases the key, trims white space around the value.
 * -EINVAL when the line is not of the format (no key, no separator, no value), -ENAMETOOLONG for a
 * key longer than TABLE_KEY_MAX, -E2BIG for a line longer than TABLE_LINE_MAX. */
int table_parse_line(const char *line, TableFormat format, char **ret_key, char **ret_value);

/* "map" or "aliases". */
const char *table_format_to_string(TableFormat f);
