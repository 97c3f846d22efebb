/* table-internal.h: what the table types (table-<type>.c) share with the dispatcher in table.c; private
 * to libpostbus's table code. Every role that reads a table runs this code in its own process. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "table.h"

/* A text table (regexp:, pcre:, cidr:, texthash:) is read whole, and is the administrator's; still bounded. */
#define TABLE_FILE_MAX (16U * 1024U * 1024U)

typedef struct TableType {
        const char *name;
        /* Keys are matched against patterns (regexp:, pcre:, cidr:), not looked up: callers ask such a table
         * only the whole key, never the parent domains or shorter address parts (Postfix's partial keys). */
        bool pattern;
        /* Parses or loads t->arg into t->data. Logs what is wrong with the spec or the file. */
        int (*open)(Table *t);
        /* As table_lookup(). */
        int (*lookup)(Table *t, const char *key, char **ret_value);
        void (*free_data)(void *data);
} TableType;

struct Table {
        const TableType *type;
        char *spec;             /* as given, for messages */
        char *arg;              /* what follows "type:" */
        char *db_path;          /* gdbm: <source>.gdbm; NULL for other types */
        void *data;             /* the type's own */
        /* A text table's file, to notice a replacement: it is read again at the next lookup. */
        dev_t dev;
        ino_t ino;
        struct timespec mtim;
        off_t size;
        bool loaded;
};

extern const TableType table_type_gdbm;
extern const TableType table_type_regexp;
extern const TableType table_type_pcre;
extern const TableType table_type_cidr;
extern const TableType table_type_static;
extern const TableType table_type_inline;
extern const TableType table_type_texthash;
extern const TableType table_type_unix;

/* For file-based text tables: (re)reads t->arg when it is not loaded or its file changed, handing the
 * text (NUL-terminated, no NUL inside, at most TABLE_FILE_MAX) to parse, whose result replaces t->data.
 * 0 when nothing changed or the new contents are in place; -ENOENT when the file does not exist;
 * -EBADMSG (logged) when it cannot be parsed: the lookup is then a temporary failure, as for a missing
 * database. */
typedef int (*TableParseFunc)(const char *text, const char *path, void **ret_data);
int table_file_refresh(Table *t, TableParseFunc parse);
/* The open of such a table: checks that the path is absolute and reads the file. A file that does not
 * exist is not an error here (lookups fail with -ENOENT until it does); one that cannot be parsed is
 * -EINVAL. */
int table_file_open(Table *t, TableParseFunc parse);

/* ASCII lower case, in place. */
void table_ascii_lower(char *s);

/* ---- the types' pure parsers, for table-<type>.c, the unit tests and the fuzz targets ---- */

/* A table held in memory (texthash:, inline:): keys in lower case, sorted, each once. */
typedef struct TableEntry {
        char *key;
        char *value;
        size_t seq;             /* the order of adding, so that the last of equal keys wins */
} TableEntry;

typedef struct TableEntries {
        TableEntry *entries;
        size_t n;
} TableEntries;

TableEntries *table_entries_free(TableEntries *e);
/* Adds an entry, taking key (already in lower case) and value, also on failure. */
int table_entries_add(TableEntries *e, char *key, char *value);
/* Sorts the entries for table_entries_find(); of equal keys the last added stays (warned about, naming
 * what). */
void table_entries_finish(TableEntries *e, const char *what);
DEFINE_TRIVIAL_CLEANUP_FUNC(TableEntries *, table_entries_free);
/* Looks key up (folded to lower case here); the value is borrowed. 1 when found, 0 when not. */
int table_entries_find(const TableEntries *e, const char *key, const char **ret_value);

/* texthash: text in postmap(1) input format ("key value", continuation lines, '#' comments); a duplicate
 * key is warned about and the last one wins, as `postbusctl map build` does. Errors are logged as
 * "path:line: ..." and return -EINVAL (-ENAMETOOLONG, -E2BIG for the limits of table_parse_line()). */
int table_texthash_parse(const char *text, const char *path, TableEntries **ret);
/* inline: "{ key=value, { key = value with, commas }, ... }" (the braces around the whole are required);
 * white space around keys and values is dropped. -EINVAL (logged) when it is not of that form. */
int table_inline_parse(const char *arg, TableEntries **ret);
/* static: "value" or "{ value }", the latter trimmed. -EINVAL for an unbalanced brace. */
int table_static_parse(const char *arg, char **ret);

/* The rule files of regexp: and pcre:, and of cidr:: rules tried in file order, "if PATTERN" ...
 * "endif" blocks that are entered only when PATTERN matches, "!PATTERN" that matches what does not. */
typedef enum TableRuleKind {
        TABLE_RULE_MATCH,
        TABLE_RULE_IF,
        TABLE_RULE_ENDIF,
} TableRuleKind;

/* How regexp: and pcre: differ: the regular expression library. */
#define TABLE_REGEXP_SUB_MAX 99U
typedef struct TableRegexpEngine {
        const char *name;
        /* Compiles pattern with the flags after the closing delimiter; logs "path:line: ..." errors. */
        int (*compile)(const char *pattern, const char *flags, const char *path, unsigned line, void **ret,
                       unsigned *ret_nsub);
        /* 1 when key matches, with ovec[2*i], ovec[2*i+1] the span of group i (SIZE_MAX when it took no
         * part) for i <= MIN(nsub, TABLE_REGEXP_SUB_MAX); 0 when not. */
        int (*exec)(void *re, unsigned nsub, const char *key, size_t *ovec);
        void (*free)(void *re);
} TableRegexpEngine;

extern const TableRegexpEngine table_regexp_engine_posix;
extern const TableRegexpEngine table_regexp_engine_pcre;

typedef struct TableRegexpRule {
        TableRuleKind kind;
        void *re;
        unsigned nsub;
        bool negate;
        char *value;            /* with $N, ${N} and $$ still in it */
        unsigned line;
        size_t endif;           /* of an if: the index of its endif */
} TableRegexpRule;

typedef struct TableRegexp {
        const TableRegexpEngine *engine;
        TableRegexpRule *rules;
        size_t n;
} TableRegexp;

TableRegexp *table_regexp_free(TableRegexp *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(TableRegexp *, table_regexp_free);
/* Parses a regexp_table(5) or pcre_table(5) file. Errors are logged as "path:line: ..." and return -EINVAL:
 * a line that is not a rule, a bad pattern or flag, an if without endif, $N beyond the pattern's groups
 * or in a negated rule. */
int table_regexp_parse(const char *text, const char *path, const TableRegexpEngine *engine, TableRegexp **ret);
/* The value of the first matching rule, $N substituted. 1, 0 when none matches, -ENOMEM. */
int table_regexp_match(const TableRegexp *r, const char *key, char **ret_value);

typedef struct TableCidrRule {
        TableRuleKind kind;
        int family;             /* AF_INET or AF_INET6 */
        uint8_t addr[16];
        unsigned prefix;
        bool negate;
        char *value;
        unsigned line;
        size_t endif;
} TableCidrRule;

typedef struct TableCidr {
        TableCidrRule *rules;
        size_t n;
} TableCidr;

TableCidr *table_cidr_free(TableCidr *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(TableCidr *, table_cidr_free);
/* Parses a cidr_table(5) file: "address/len value" or "address value", IPv4 or IPv6 (optionally in []),
 * with if/endif and '!'. -EINVAL (logged as "path:line: ...") for a bad address or length, host bits set
 * beyond the length, a missing value, unbalanced if/endif. */
int table_cidr_parse(const char *text, const char *path, TableCidr **ret);
/* The value (borrowed) of the first rule matching the address key; 0 when none does or key is not an
 * IPv4 or IPv6 address. */
int table_cidr_match(const TableCidr *c, const char *key, const char **ret_value);

/* unix:passwd.byname's value: the passwd(5) line of the user, "name:passwd:uid:gid:gecos:dir:shell". */
struct passwd;
int table_unix_passwd_format(const struct passwd *pw, char **ret);

/* Whether the line at p starts with the keyword word ("if", "endif") followed by white space or its end,
 * in any case: the if/endif of the pattern tables (regexp:, pcre:, cidr:). */
bool table_word_is(const char *p, const char *word);
/* The ifs of a rule file being parsed that are not closed yet: their indexes in the rules. */
typedef struct TableIfs {
        size_t open[64];
        size_t n;
} TableIfs;
/* The if/endif at the start of a rule line: TABLE_RULE_ENDIF with *ret_closed the index of the if it closes
 * (the line is done), TABLE_RULE_IF with *p past "if" and its white space (the caller adds the if with
 * ifs->open[ifs->n++] once it is parsed), TABLE_RULE_MATCH with *p unchanged. -EINVAL after logging
 * "path:line: ..." for text after endif, an endif without an if, ifs nested too deep. */
int table_if_line(TableIfs *ifs, char **p, const char *path, unsigned lineno, size_t *ret_closed);
/* What follows the pattern (what: "pattern", "network") of a rule of kind: nothing for an if, which is
 * then opened as the rule at index; a value for a rule. -EINVAL after logging "path:line: ...". */
int table_rule_rest(TableIfs *ifs, TableRuleKind kind, const char *rest, const char *what, const char *path,
                    unsigned lineno, size_t index);
/* Appends the rule (size bytes) to the array *rules_ptr of *n rules (rules_ptr: the address of a
 * TableRegexpRule * or TableCidrRule *), grown by one, and zeroes the rule: the array owns what it pointed
 * to. -ENOMEM, the array and the rule unchanged. */
int table_rule_append(void *rules_ptr, size_t *n, void *rule, size_t size);
