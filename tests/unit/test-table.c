/* test-table.c: the text formats of lookup tables, building GDBM files, lookups, reopening a replaced
 * database, table lists, and errors that name the file and line. */
#include <fcntl.h>
#include <gdbm.h>
#include <sys/stat.h>

#include "tests.h"
#include "log.h"
#include "table.h"

static char tmpdir[] = "/tmp/test-table-XXXXXX";

static void parse_ok(const char *line, TableFormat format, const char *key, const char *value) {
        _cleanup_free_ char *k = NULL, *v = NULL;

        if (table_parse_line(line, format, &k, &v) != 0) {
                fprintf(stderr, "failed to parse \"%s\"\n", line);
                abort();
        }
        ASSERT_STREQ(k, key);
        ASSERT_STREQ(v, value);
}

static void parse_fail(const char *line, TableFormat format, int error) {
        char *k = NULL, *v = NULL;

        ASSERT_ERR(table_parse_line(line, format, &k, &v), error);
        ASSERT_TRUE(!k && !v);
}

TEST(parse_map) {
        parse_ok("Example.ORG REJECT", TABLE_FORMAT_MAP, "example.org", "REJECT");
        parse_ok("user@example.org\t  550 5.7.1 Go away  \t", TABLE_FORMAT_MAP, "user@example.org",
                 "550 5.7.1 Go away");
        parse_ok("  192.168.1 OK", TABLE_FORMAT_MAP, "192.168.1", "OK");
        parse_ok("a: b", TABLE_FORMAT_MAP, "a:", "b");
        parse_ok("K\xc3\x89Y  v\xc3\xa9", TABLE_FORMAT_MAP, "k\xc3\x89y", "v\xc3\xa9");
        parse_fail("lonely-key", TABLE_FORMAT_MAP, EINVAL);
        parse_fail("lonely-key   \t", TABLE_FORMAT_MAP, EINVAL);
        parse_fail("", TABLE_FORMAT_MAP, EINVAL);
        parse_fail("   ", TABLE_FORMAT_MAP, EINVAL);
}

TEST(parse_aliases) {
        parse_ok("Postmaster: root", TABLE_FORMAT_ALIASES, "postmaster", "root");
        parse_ok("team:alice, bob,  carol@example.org ", TABLE_FORMAT_ALIASES, "team",
                 "alice, bob,  carol@example.org");
        parse_ok("news : \"|/usr/bin/filter a,b\"", TABLE_FORMAT_ALIASES, "news", "\"|/usr/bin/filter a,b\"");
        parse_ok("\"Odd Name\": alice", TABLE_FORMAT_ALIASES, "odd name", "alice");
        parse_ok("list: :include:/etc/postbus/list", TABLE_FORMAT_ALIASES, "list", ":include:/etc/postbus/list");
        parse_fail("no colon here", TABLE_FORMAT_ALIASES, EINVAL);
        parse_fail("two words: x", TABLE_FORMAT_ALIASES, EINVAL);
        parse_fail("empty:", TABLE_FORMAT_ALIASES, EINVAL);
        parse_fail(": nobody", TABLE_FORMAT_ALIASES, EINVAL);
        parse_fail("\"unterminated: x", TABLE_FORMAT_ALIASES, EINVAL);
}

TEST(parse_limits) {
        _cleanup_free_ char *key = malloc(TABLE_KEY_MAX + 8), *line = malloc(TABLE_LINE_MAX + 8);

        memset(key, 'k', TABLE_KEY_MAX);
        strcpy(key + TABLE_KEY_MAX, " v");
        {
                _cleanup_free_ char *expect = strndup(key, TABLE_KEY_MAX);
                parse_ok(key, TABLE_FORMAT_MAP, expect, "v");
        }
        memset(key, 'k', TABLE_KEY_MAX + 1);
        strcpy(key + TABLE_KEY_MAX + 1, " v");
        parse_fail(key, TABLE_FORMAT_MAP, ENAMETOOLONG);

        memset(line, 'v', TABLE_LINE_MAX);
        memcpy(line, "k ", 2);
        line[TABLE_LINE_MAX] = '\0';
        {
                _cleanup_free_ char *k = NULL, *v = NULL;
                ASSERT_OK(table_parse_line(line, TABLE_FORMAT_MAP, &k, &v));
                ASSERT_EQ(strlen(v), TABLE_LINE_MAX - 2);
        }
        line[TABLE_LINE_MAX] = 'v';
        line[TABLE_LINE_MAX + 1] = '\0';
        parse_fail(line, TABLE_FORMAT_MAP, E2BIG);
}

static char *path_in_tmp(const char *name) {
        char *p = NULL;
        ASSERT_TRUE(asprintf(&p, "%s/%s", tmpdir, name) > 0);
        return p;
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        ASSERT_TRUE(f);
        ASSERT_EQ(fputs(text, f) >= 0, 1);
        ASSERT_EQ(fclose(f), 0);
}

static char *lookup(Table *t, const char *key) {
        char *v = NULL;
        int r = table_lookup(t, key, &v);
        ASSERT_TRUE(r >= 0);
        ASSERT_EQ(r == 1, v != NULL);
        return v;
}

/* Runs table_build with stderr captured, so that its messages can be checked. */
static int build_capture(const char *source, TableFormat format, char **ret_log) {
        _cleanup_free_ char *log_path = path_in_tmp("stderr");
        _cleanup_close_ int fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int saved, r;
        char buf[4096];
        ssize_t n;

        ASSERT_TRUE(fd >= 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        ASSERT_TRUE(saved >= 0);
        ASSERT_TRUE(dup2(fd, STDERR_FILENO) >= 0);
        r = table_build(source, format);
        fflush(stderr);
        ASSERT_TRUE(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        n = pread(fd, buf, sizeof buf - 1, 0);
        ASSERT_TRUE(n >= 0);
        buf[n] = '\0';
        fputs(buf, stderr);
        *ret_log = strdup(buf);
        ASSERT_TRUE(*ret_log);
        return r;
}

TEST(build_and_lookup) {
        _cleanup_free_ char *src = path_in_tmp("access"), *db = NULL, *spec = NULL, *log = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct stat st;

        write_file(src,
                   "# access table\n"
                   "\n"
                   "Example.ORG    REJECT\n"
                   "   # an indented comment continues nothing\n"
                   "spam@example.net 550 5.7.1\n"
                   "    no spam\r\n"
                   "\t\n"
                   "192.168.1 OK\n"
                   "example.org    OK\n"
                   "last-line-without-newline DISCARD");
        ASSERT_EQ(chmod(src, 0640), 0);
        ASSERT_TRUE(asprintf(&spec, "gdbm:%s", src) > 0);
        ASSERT_OK(table_open(spec, &t));
        ASSERT_STREQ(table_name(t), spec);

        /* No database yet. */
        ASSERT_ERR(table_lookup(t, "example.org", NULL), ENOENT);

        ASSERT_EQ(build_capture(src, TABLE_FORMAT_MAP, &log), 4);
        ASSERT_TRUE(strstr(log, "access:9: duplicate entry \"example.org\""));

        db = path_in_tmp("access.gdbm");
        ASSERT_STREQ(table_db_path(t), db);
        ASSERT_EQ(stat(db, &st), 0);
        ASSERT_EQ(st.st_mode & 07777, 0640);

        {
                _cleanup_free_ char *v1 = lookup(t, "EXAMPLE.org"), *v2 = lookup(t, "spam@example.net"),
                                    *v3 = lookup(t, "192.168.1"), *v4 = lookup(t, "nothere.example"),
                                    *v5 = lookup(t, "last-line-without-newline");
                ASSERT_STREQ(v1, "OK");         /* the last duplicate wins */
                ASSERT_STREQ(v2, "550 5.7.1 no spam");
                ASSERT_STREQ(v3, "OK");
                ASSERT_TRUE(v4 == NULL);
                ASSERT_STREQ(v5, "DISCARD");
        }
        ASSERT_EQ(table_lookup(t, "example.org", NULL), 1);
        ASSERT_EQ(table_lookup(t, "", NULL), 0);

        /* No temporary file is left behind. */
        {
                _cleanup_free_ char *tmp = NULL;
                ASSERT_TRUE(asprintf(&tmp, "%s.gdbm.tmp.%d", src, (int) getpid()) > 0);
                ASSERT_TRUE(access(tmp, F_OK) < 0 && errno == ENOENT);
        }

        /* Rebuilt with other content: the same open Table sees it. */
        write_file(src, "example.org REJECT\nnew.example OK\n");
        ASSERT_EQ(table_build(src, TABLE_FORMAT_MAP), 2);
        {
                _cleanup_free_ char *v1 = lookup(t, "example.org"), *v2 = lookup(t, "new.example"),
                                    *v3 = lookup(t, "192.168.1");
                ASSERT_STREQ(v1, "REJECT");
                ASSERT_STREQ(v2, "OK");
                ASSERT_TRUE(v3 == NULL);
        }

        /* A bad line: the error names file and line, and the old database stays. */
        free(log);
        write_file(src, "good.example OK\n# comment\n\nbad-line-without-value\n");
        ASSERT_ERR(build_capture(src, TABLE_FORMAT_MAP, &log), EINVAL);
        ASSERT_TRUE(strstr(log, "access:4: expected format: key whitespace value"));
        {
                _cleanup_free_ char *v1 = lookup(t, "example.org"), *v2 = lookup(t, "good.example");
                ASSERT_STREQ(v1, "REJECT");
                ASSERT_TRUE(v2 == NULL);
        }

        /* A continuation line with nothing to continue. */
        free(log);
        write_file(src, "# header\n  indented first line\n");
        ASSERT_ERR(build_capture(src, TABLE_FORMAT_MAP, &log), EINVAL);
        ASSERT_TRUE(strstr(log, "access:2: continuation line"));

        /* The database removed: an error, not "not found". */
        ASSERT_EQ(unlink(db), 0);
        ASSERT_ERR(table_lookup(t, "example.org", NULL), ENOENT);

        /* Not a database. */
        write_file(db, "this is not a gdbm file, but it is long enough to look at its header ............\n");
        ASSERT_ERR(table_lookup(t, "example.org", NULL), EBADMSG);
        ASSERT_EQ(unlink(db), 0);
}

TEST(build_aliases) {
        _cleanup_free_ char *src = path_in_tmp("aliases"), *log = NULL;
        _cleanup_(table_freep) Table *t = NULL;

        write_file(src,
                   "# aliases\n"
                   "postmaster: root\n"
                   "Team: alice,\n"
                   "      bob,\n"
                   "\n"
                   "# a comment inside\n"
                   "\tcarol@example.org\n"
                   "root: admin\n");
        ASSERT_EQ(build_capture(src, TABLE_FORMAT_ALIASES, &log), 3);
        ASSERT_OK(table_open(src, &t));        /* a plain path means gdbm: */
        {
                _cleanup_free_ char *v1 = lookup(t, "team"), *v2 = lookup(t, "POSTMASTER");
                ASSERT_STREQ(v1, "alice, bob, carol@example.org");
                ASSERT_STREQ(v2, "root");
        }

        free(log);
        write_file(src, "postmaster: root\nroot admin\n");
        ASSERT_ERR(build_capture(src, TABLE_FORMAT_ALIASES, &log), EINVAL);
        ASSERT_TRUE(strstr(log, "aliases:2: expected format: name: value"));

        free(log);
        write_file(src, "postmaster: root\nlong: x");
        {
                /* An overlong physical line. */
                FILE *f = fopen(src, "ae");
                ASSERT_TRUE(f);
                for (unsigned i = 0; i < TABLE_LINE_MAX; i++)
                        fputc('x', f);
                fputs("\n", f);
                ASSERT_EQ(fclose(f), 0);
        }
        ASSERT_ERR(build_capture(src, TABLE_FORMAT_ALIASES, &log), E2BIG);
        ASSERT_TRUE(strstr(log, "aliases:2: line longer than"));

        /* The failed builds left the first database in place. */
        {
                _cleanup_free_ char *v = lookup(t, "team");
                ASSERT_STREQ(v, "alice, bob, carol@example.org");
        }
}

TEST(open_errors) {
        Table *t = NULL;

        ASSERT_ERR(table_open("ldap:/etc/postbus/x", &t), EPROTONOSUPPORT);
        ASSERT_ERR(table_open("Hash:/etc/postbus/x", &t), EPROTONOSUPPORT);
        ASSERT_ERR(table_open("unix:shadow.byname", &t), EPROTONOSUPPORT);
        ASSERT_ERR(table_open("regexp:relative", &t), EINVAL);
        ASSERT_ERR(table_open("cidr:", &t), EINVAL);
        ASSERT_ERR(table_open("gdbm:relative/path", &t), EINVAL);
        ASSERT_ERR(table_open("relative", &t), EINVAL);
        ASSERT_ERR(table_open("hash:", &t), EINVAL);
        ASSERT_ERR(table_open("/etc/postbus/", &t), EINVAL);
        ASSERT_TRUE(t == NULL);
        ASSERT_ERR(table_build("/nonexistent/postbus-table", TABLE_FORMAT_MAP), ENOENT);
}

TEST(list) {
        _cleanup_free_ char *a = path_in_tmp("first"), *b = path_in_tmp("second"), *c = path_in_tmp("missing"),
                            *value = NULL, *value2 = NULL;
        _cleanup_(table_list_freep) TableList *l = NULL, *l2 = NULL, *empty = NULL;
        char *v = NULL;

        write_file(a, "shared FIRST\nonly-a A\n");
        write_file(b, "shared SECOND\nonly-b B\n");
        ASSERT_EQ(table_build(a, TABLE_FORMAT_MAP), 2);
        ASSERT_EQ(table_build(b, TABLE_FORMAT_MAP), 2);

        ASSERT_TRUE(asprintf(&value, "gdbm:%s,\n hash:%s", a, b) > 0);
        ASSERT_OK(table_list_open(value, &l));
        ASSERT_TRUE(!table_list_is_empty(l));
        ASSERT_EQ(table_list_lookup(l, "Shared", &v), 1);
        ASSERT_STREQ(v, "FIRST");
        free(v);
        ASSERT_EQ(table_list_lookup(l, "only-b", &v), 1);
        ASSERT_STREQ(v, "B");
        free(v);
        v = NULL;
        ASSERT_EQ(table_list_lookup(l, "nowhere", &v), 0);
        ASSERT_TRUE(v == NULL);

        /* A missing database in the list is an error, not a miss. */
        ASSERT_TRUE(asprintf(&value2, "gdbm:%s gdbm:%s", c, b) > 0);
        ASSERT_OK(table_list_open(value2, &l2));
        ASSERT_ERR(table_list_lookup(l2, "only-b", NULL), ENOENT);

        ASSERT_OK(table_list_open("", &empty));
        ASSERT_TRUE(table_list_is_empty(empty));
        ASSERT_EQ(table_list_lookup(empty, "x", NULL), 0);
        ASSERT_TRUE(table_list_is_empty(NULL));
        ASSERT_ERR(table_list_open("gdbm:/ok, nis:/etc/x", &l), EPROTONOSUPPORT);
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        char *text = NULL;
        size_t size = 0;

        ASSERT_TRUE(f);
        ASSERT_TRUE(getdelim(&text, &size, '\0', f) >= 0);
        fclose(f);
        return text;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Builds tests/data/table/<name>.in and compares every stored entry, as "key<TAB>value" read back with
 * GDBM's own API, with <name>.out: the on-disk form is part of the contract (keys lower-case, no NUL). */
static void golden(const char *name, TableFormat format) {
        const char *data = getenv("POSTBUS_TEST_DATA");
        _cleanup_free_ char *in = NULL, *out = NULL, *text = NULL, *expected = NULL, *src = path_in_tmp(name),
                            *db_path = NULL, *got = NULL, *log = NULL;
        char **entries = NULL;
        size_t n = 0, len = 0;
        GDBM_FILE db;

        ASSERT_TRUE(data);
        ASSERT_TRUE(asprintf(&in, "%s/table/%s.in", data, name) > 0);
        ASSERT_TRUE(asprintf(&out, "%s/table/%s.out", data, name) > 0);
        text = read_file(in);
        write_file(src, text);
        expected = read_file(out);

        ASSERT_TRUE(asprintf(&db_path, "%s.gdbm", src) > 0);
        int r = build_capture(src, format, &log);
        ASSERT_TRUE(r > 0);

        db = gdbm_open(db_path, 0, GDBM_READER | GDBM_NOLOCK, 0, NULL);
        ASSERT_TRUE(db);
        for (datum k = gdbm_firstkey(db); k.dptr;) {
                datum v = gdbm_fetch(db, k), next;
                char *e = NULL;

                ASSERT_TRUE(v.dptr);
                ASSERT_TRUE(!memchr(k.dptr, 0, (size_t) k.dsize) && !memchr(v.dptr, 0, (size_t) v.dsize));
                ASSERT_TRUE(asprintf(&e, "%.*s\t%.*s\n", k.dsize, k.dptr, v.dsize, v.dptr) > 0);
                entries = realloc(entries, (n + 1) * sizeof(char *));
                ASSERT_TRUE(entries);
                entries[n++] = e;
                len += strlen(e);
                next = gdbm_nextkey(db, k);
                free(k.dptr);
                free(v.dptr);
                k = next;
        }
        gdbm_close(db);
        ASSERT_EQ(n, (size_t) r);

        qsort(entries, n, sizeof(char *), cmp_str);
        got = calloc(1, len + 1);
        ASSERT_TRUE(got);
        for (size_t i = 0; i < n; i++) {
                strcat(got, entries[i]);
                free(entries[i]);
        }
        free(entries);

        /* The .out file without its comment lines. */
        {
                char *w = expected;
                for (const char *p = expected; *p;) {
                        const char *eol = strchrnul(p, '\n');
                        size_t l = (size_t) (eol - p) + (*eol ? 1 : 0);
                        if (*p != '#') {
                                memmove(w, p, l);
                                w += l;
                        }
                        p += l;
                }
                *w = '\0';
        }
        if (!streq(got, expected)) {
                fprintf(stderr, "%s: entries differ from %s:\n--- got\n%s--- expected\n%s", name, out, got, expected);
                abort();
        }
}

TEST(golden_map) {
        golden("map", TABLE_FORMAT_MAP);
}

TEST(golden_aliases) {
        golden("aliases", TABLE_FORMAT_ALIASES);
}

static void cleanup_tmpdir(void) {
        _cleanup_free_ char *cmd = NULL;
        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", tmpdir) > 0);
        (void) system(cmd);
}

int main(void) {
        log_setup("test-table");
        ASSERT_TRUE(mkdtemp(tmpdir));

        RUN(parse_map);
        RUN(parse_aliases);
        RUN(parse_limits);
        RUN(build_and_lookup);
        RUN(build_aliases);
        RUN(golden_map);
        RUN(golden_aliases);
        RUN(open_errors);
        RUN(list);

        cleanup_tmpdir();
        return EXIT_SUCCESS;
}
