/* test-table-types.c: the table types other than gdbm: their parsers (regexp:, pcre:, cidr:, texthash:,
 * inline:, static:), their lookups through table_open(), and unix:passwd.byname. */
#include <pwd.h>
#include <sys/stat.h>

#include "tests.h"
#include "log.h"
#include "table-internal.h"

static char tmpdir[] = "/tmp/test-table-types-XXXXXX";

static char *write_tmp(const char *name, const char *text) {
        char *path = NULL;
        FILE *f;

        ASSERT_TRUE(asprintf(&path, "%s/%s", tmpdir, name) > 0);
        f = fopen(path, "we");
        ASSERT_TRUE(f);
        ASSERT_EQ(fputs(text, f) >= 0, 1);
        ASSERT_EQ(fclose(f), 0);
        return path;
}

static void regexp_is(const TableRegexp *t, const char *key, const char *value) {
        _cleanup_free_ char *v = NULL;
        int r = table_regexp_match(t, key, &v);

        if (!value) {
                if (r != 0) {
                        fprintf(stderr, "\"%s\" matched: \"%s\"\n", key, v);
                        abort();
                }
                return;
        }
        if (r != 1) {
                fprintf(stderr, "\"%s\" did not match\n", key);
                abort();
        }
        ASSERT_STREQ(v, value);
}

static const char regexp_rules[] =
        "# comment\n"
        "/^(.*)@example\\.org$/ relay:[${1}.mx.example.org]\n"
        "/^Subject: .*viagra/ REJECT no spam here\n"
        "if /@sub\\.test$/\n"
        "!/^admin@/ not-admin\n"
        "/^admin@/\n"
        "    admin $$5\n"
        "endif\n"
        "/^Subject: Case/i REJECT case sensitive\n"
        "/^((a)|(b))$/ [$2][$3]\n"
        "#/^commented/ no\n";

static void regexp_common(const TableRegexp *t) {
        regexp_is(t, "alice@example.org", "relay:[alice.mx.example.org]");
        regexp_is(t, "ALICE@EXAMPLE.ORG", "relay:[ALICE.mx.example.org]");
        regexp_is(t, "Subject: buy VIAGRA now", "REJECT no spam here");
        regexp_is(t, "bob@sub.test", "not-admin");
        regexp_is(t, "admin@sub.test", "admin $5");
        regexp_is(t, "admin@other.test", NULL);
        /* "i" turns case-insensitive matching off */
        regexp_is(t, "Subject: case", NULL);
        regexp_is(t, "Subject: Case", "REJECT case sensitive");
        /* a group that took no part is empty */
        regexp_is(t, "b", "[][b]");
        regexp_is(t, "commented", NULL);
}

TEST(regexp_parse_and_match) {
        TableRegexp *t = NULL;

        ASSERT_OK(table_regexp_parse(regexp_rules, "rules", &table_regexp_engine_posix, &t));
        ASSERT_EQ(t->n, 8);
        ASSERT_EQ(t->rules[2].kind, TABLE_RULE_IF);
        ASSERT_EQ(t->rules[2].endif, 5);
        ASSERT_EQ(t->rules[4].line, 6);
        regexp_common(t);
        table_regexp_free(t);
}

TEST(pcre_parse_and_match) {
        TableRegexp *t = NULL;

        ASSERT_OK(table_regexp_parse(regexp_rules, "rules", &table_regexp_engine_pcre, &t));
        regexp_common(t);
        t = table_regexp_free(t);

        /* PCRE's own syntax and flags: \d, lazy quantifiers, x for extended, a delimiter other than '/'. */
        ASSERT_OK(table_regexp_parse("/^X-Spam-Score: (\\d+)\\./ score $1\n"
                                     "/^(\\w+?)(\\w*)@/ lazy $1 $2\n"
                                     "/ ^ free \\s+ money /x  spam\n"
                                     "|^/path/|  slash\n",
                                     "rules", &table_regexp_engine_pcre, &t));
        regexp_is(t, "X-Spam-Score: 12.5", "score 12");
        regexp_is(t, "abc@x", "lazy a bc");
        regexp_is(t, "FREE    money", "spam");
        regexp_is(t, "free money", "spam");
        regexp_is(t, "/path/x", "slash");
        table_regexp_free(t);
}

TEST(regexp_errors) {
        const TableRegexpEngine *engines[] = { &table_regexp_engine_posix, &table_regexp_engine_pcre };

        for (size_t i = 0; i < ELEMENTSOF(engines); i++) {
                const TableRegexpEngine *e = engines[i];
                TableRegexp *t = NULL;

                ASSERT_ERR(table_regexp_parse("/a/ x\n/(unclosed/ x\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("/a/q x\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("/a x\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("a x\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("  /a/ x\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("/a/\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("/(a)/ $2\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("/(a)/ ${1\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("/(a)/ $x\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("!/(a)/ $1\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("if /a/\n/b/ x\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("endif\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("if /a/ x\nendif\n", "f", e, &t), EINVAL);
                ASSERT_ERR(table_regexp_parse("if /a/\nendif x\n", "f", e, &t), EINVAL);
                ASSERT_TRUE(t == NULL);
                ASSERT_OK(table_regexp_parse("", "f", e, &t));
                ASSERT_EQ(t->n, 0);
                ASSERT_EQ(table_regexp_match(t, "x", NULL), 0);
                table_regexp_free(t);
        }
        /* POSIX only: stacked repetitions, which glibc compiles in exponential memory. */
        TableRegexp *t = NULL;
        ASSERT_ERR(table_regexp_parse("/a++/ x\n", "f", &table_regexp_engine_posix, &t), EINVAL);
        ASSERT_ERR(table_regexp_parse("/a*{2}/ x\n", "f", &table_regexp_engine_posix, &t), EINVAL);
        ASSERT_OK(table_regexp_parse("/a\\++ [*+]+ (b+)+ x{1,2}y?/ x\n", "f", &table_regexp_engine_posix, &t));
        t = table_regexp_free(t);
        /* ... which PCRE takes as a possessive quantifier. */
        ASSERT_OK(table_regexp_parse("/^a++b/ x\n", "f", &table_regexp_engine_pcre, &t));
        regexp_is(t, "aaab", "x");
        table_regexp_free(t);
}

static void cidr_is(const TableCidr *t, const char *key, const char *value) {
        const char *v = NULL;
        int r = table_cidr_match(t, key, &v);

        if (!value) {
                if (r != 0) {
                        fprintf(stderr, "\"%s\" matched: \"%s\"\n", key, v);
                        abort();
                }
                return;
        }
        if (r != 1) {
                fprintf(stderr, "\"%s\" did not match\n", key);
                abort();
        }
        ASSERT_STREQ(v, value);
}

TEST(cidr) {
        TableCidr *t = NULL;

        ASSERT_OK(table_cidr_parse("# networks\n"
                                   "192.0.2.1 REJECT one host\n"
                                   "192.0.2.0/24 OK\n"
                                   "10.0.0.0/8\n"
                                   "   554 5.7.1 ten\n"
                                   "if 198.51.100.0/24\n"
                                   "!198.51.100.0/25 upper half\n"
                                   "endif\n"
                                   "[2001:db8::]/32 v6\n"
                                   "::1 loopback6\n"
                                   "0.0.0.0/0 anything4\n",
                                   "cidr", &t));
        cidr_is(t, "192.0.2.1", "REJECT one host");      /* first match in file order */
        cidr_is(t, "192.0.2.77", "OK");
        cidr_is(t, "10.200.3.4", "554 5.7.1 ten");
        cidr_is(t, "198.51.100.200", "upper half");
        cidr_is(t, "198.51.100.5", "anything4");
        cidr_is(t, "2001:db8:1::5", "v6");
        cidr_is(t, "2001:DB8::", "v6");
        cidr_is(t, "::1", "loopback6");
        cidr_is(t, "2001:db9::1", NULL);
        cidr_is(t, "[192.0.2.77]", "OK");
        cidr_is(t, "not-an-address", NULL);
        cidr_is(t, "", NULL);
        cidr_is(t, "192.0.2", NULL);
        t = table_cidr_free(t);

        ASSERT_ERR(table_cidr_parse("10.0.0.1/8 x\n", "f", &t), EINVAL);        /* host bits */
        ASSERT_ERR(table_cidr_parse("10.0.0.0/33 x\n", "f", &t), EINVAL);
        ASSERT_ERR(table_cidr_parse("2001:db8::/129 x\n", "f", &t), EINVAL);
        ASSERT_ERR(table_cidr_parse("10.0.0.0/ x\n", "f", &t), EINVAL);
        ASSERT_ERR(table_cidr_parse("10.0.0.0/8x x\n", "f", &t), EINVAL);
        ASSERT_ERR(table_cidr_parse("10.0.0.0/8\n", "f", &t), EINVAL);
        ASSERT_ERR(table_cidr_parse("example.org x\n", "f", &t), EINVAL);
        ASSERT_ERR(table_cidr_parse("if 10.0.0.0/8\n", "f", &t), EINVAL);
        ASSERT_ERR(table_cidr_parse("endif\n", "f", &t), EINVAL);
        ASSERT_TRUE(t == NULL);
        ASSERT_OK(table_cidr_parse("1.2.3.4 x\n  \n", "f", &t));
        ASSERT_EQ(t->n, 1);
        table_cidr_free(t);
}

static void entries_is(const TableEntries *e, const char *key, const char *value) {
        const char *v = NULL;

        ASSERT_EQ(table_entries_find(e, key, &v), value ? 1 : 0);
        if (value)
                ASSERT_STREQ(v, value);
}

TEST(texthash) {
        TableEntries *e = NULL;

        ASSERT_OK(table_texthash_parse("# comment\n"
                                       "Example.ORG   REJECT go away\n"
                                       "user@example.org\n"
                                       "  OK\n"
                                       "dup first\n"
                                       "dup second\n",
                                       "th", &e));
        ASSERT_EQ(e->n, 3);
        entries_is(e, "example.org", "REJECT go away");
        entries_is(e, "EXAMPLE.org", "REJECT go away");
        entries_is(e, "user@example.org", "OK");
        entries_is(e, "dup", "second");
        entries_is(e, "missing", NULL);
        entries_is(e, "", NULL);
        e = table_entries_free(e);

        ASSERT_ERR(table_texthash_parse("lonely-key\n", "th", &e), EINVAL);
        ASSERT_ERR(table_texthash_parse("  continuation first\n", "th", &e), EINVAL);
        ASSERT_TRUE(e == NULL);
}

TEST(inline_and_static) {
        TableEntries *e = NULL;
        char *s = NULL;

        ASSERT_OK(table_inline_parse("{ Alice=alice@example.org, bob=bob@x  { carol = Carol, Jones },{x=} }", &e));
        ASSERT_EQ(e->n, 4);
        entries_is(e, "alice", "alice@example.org");
        entries_is(e, "bob", "bob@x");
        entries_is(e, "carol", "Carol, Jones");
        entries_is(e, "x", "");
        entries_is(e, "dave", NULL);
        e = table_entries_free(e);
        ASSERT_OK(table_inline_parse("{}", &e));
        ASSERT_EQ(e->n, 0);
        e = table_entries_free(e);

        ASSERT_ERR(table_inline_parse("a=b", &e), EINVAL);
        ASSERT_ERR(table_inline_parse("{ a }", &e), EINVAL);
        ASSERT_ERR(table_inline_parse("{ =b }", &e), EINVAL);
        ASSERT_ERR(table_inline_parse("{ { a=b }", &e), EINVAL);
        ASSERT_ERR(table_inline_parse("{ {a=b}c }", &e), EINVAL);
        ASSERT_TRUE(e == NULL);

        ASSERT_OK(table_static_parse("relay:[mx.example.org]", &s));
        ASSERT_STREQ(s, "relay:[mx.example.org]");
        free(s);
        ASSERT_OK(table_static_parse("{ REJECT no mail here }", &s));
        ASSERT_STREQ(s, "REJECT no mail here");
        free(s);
        ASSERT_ERR(table_static_parse("{ unbalanced", &s), EINVAL);
        ASSERT_ERR(table_static_parse("a}b", &s), EINVAL);
}

static char *lookup(Table *t, const char *key) {
        char *v = NULL;
        int r = table_lookup(t, key, &v);

        ASSERT_TRUE(r >= 0);
        return r > 0 ? v : NULL;
}

TEST(open_and_lookup) {
        _cleanup_free_ char *re = write_tmp("re", "/^(.*)@example\\.org$/ $1\n"),
                            *pc = write_tmp("pcre", "/^(\\w+)@example\\.org$/ pcre:$1\n"),
                            *ci = write_tmp("cidr", "127.0.0.0/8 REJECT loopback\n"),
                            *th = write_tmp("th", "Key value\n"), *bad = write_tmp("bad", "/(/ x\n"),
                            *spec = NULL, *missing = NULL, *v = NULL;
        Table *t = NULL;

        ASSERT_TRUE(asprintf(&spec, "regexp:%s", re) > 0);
        ASSERT_OK(table_open(spec, &t));
        ASSERT_TRUE(table_is_pattern(t));
        ASSERT_TRUE(table_db_path(t) == NULL);
        ASSERT_STREQ(table_type_name(t), "regexp");
        v = lookup(t, "joe@example.org");
        ASSERT_STREQ(v, "joe");
        v = mfree(v);
        ASSERT_EQ(table_lookup_partial(t, "joe@example.org", NULL), 0);
        /* An edited file is read again at the next lookup. */
        {
                FILE *f = fopen(re, "we");
                ASSERT_TRUE(f);
                fputs("/^(.*)@example\\.org$/ new:$1\n/^x/ more\n", f);
                fclose(f);
        }
        v = lookup(t, "joe@example.org");
        ASSERT_STREQ(v, "new:joe");
        v = mfree(v);
        /* A mistake in the edited file makes lookups fail, not silently miss. */
        {
                FILE *f = fopen(re, "we");
                ASSERT_TRUE(f);
                fputs("/(/ broken\n", f);
                fclose(f);
        }
        ASSERT_ERR(table_lookup(t, "joe@example.org", NULL), EBADMSG);
        t = table_free(t);
        spec = mfree(spec);

        ASSERT_TRUE(asprintf(&spec, "pcre:%s", pc) > 0);
        ASSERT_OK(table_open(spec, &t));
        v = lookup(t, "joe@example.org");
        ASSERT_STREQ(v, "pcre:joe");
        v = mfree(v);
        t = table_free(t);
        spec = mfree(spec);

        ASSERT_TRUE(asprintf(&spec, "proxy:cidr:%s", ci) > 0);
        ASSERT_OK(table_open(spec, &t));
        v = lookup(t, "127.0.0.2");
        ASSERT_STREQ(v, "REJECT loopback");
        v = mfree(v);
        ASSERT_TRUE(lookup(t, "128.0.0.1") == NULL);
        t = table_free(t);
        spec = mfree(spec);

        ASSERT_TRUE(asprintf(&spec, "texthash:%s", th) > 0);
        ASSERT_OK(table_open(spec, &t));
        ASSERT_TRUE(!table_is_pattern(t));
        v = lookup(t, "KEY");
        ASSERT_STREQ(v, "value");
        v = mfree(v);
        ASSERT_EQ(table_lookup_partial(t, "key", NULL), 1);
        t = table_free(t);
        spec = mfree(spec);

        /* A file with a mistake stops the role at its start; a missing one fails each lookup. */
        ASSERT_TRUE(asprintf(&spec, "regexp:%s", bad) > 0);
        ASSERT_ERR(table_open(spec, &t), EINVAL);
        spec = mfree(spec);
        ASSERT_TRUE(asprintf(&missing, "%s/missing", tmpdir) > 0);
        ASSERT_TRUE(asprintf(&spec, "cidr:%s", missing) > 0);
        ASSERT_OK(table_open(spec, &t));
        ASSERT_ERR(table_lookup(t, "127.0.0.1", NULL), ENOENT);
        t = table_free(t);
        spec = mfree(spec);
        /* ... as does a gdbm: table never built. */
        ASSERT_TRUE(asprintf(&spec, "hash:%s", missing) > 0);
        ASSERT_OK(table_open(spec, &t));
        ASSERT_ERR(table_lookup(t, "x", NULL), ENOENT);
        t = table_free(t);

        ASSERT_OK(table_open("static:{ OK fine }", &t));
        v = lookup(t, "anything");
        ASSERT_STREQ(v, "OK fine");
        v = mfree(v);
        t = table_free(t);

        ASSERT_OK(table_open("inline:{ a=1, { B = two words } }", &t));
        v = lookup(t, "b");
        ASSERT_STREQ(v, "two words");
        v = mfree(v);
        ASSERT_TRUE(lookup(t, "c") == NULL);
        t = table_free(t);
        ASSERT_ERR(table_open("inline:a=1", &t), EINVAL);
}

TEST(list_with_braces) {
        _cleanup_(table_list_freep) TableList *l = NULL;
        char *v = NULL;

        ASSERT_OK(table_list_open("inline:{ a=1, b=2 }, static:{ default value }", &l));
        ASSERT_EQ(table_list_lookup(l, "b", &v), 1);
        ASSERT_STREQ(v, "2");
        free(v);
        ASSERT_EQ(table_list_lookup(l, "zzz", &v), 1);
        ASSERT_STREQ(v, "default value");
        free(v);
}

TEST(unix_passwd) {
        struct passwd *pw = getpwuid(0);
        _cleanup_free_ char *expected = NULL, *v = NULL;
        Table *t = NULL;

        ASSERT_TRUE(pw);
        ASSERT_TRUE(asprintf(&expected, "%s:%s:0:%ld:%s:%s:%s", pw->pw_name, pw->pw_passwd, (long) pw->pw_gid,
                             pw->pw_gecos, pw->pw_dir, pw->pw_shell) > 0);
        ASSERT_OK(table_open("unix:passwd.byname", &t));
        v = lookup(t, pw->pw_name);
        ASSERT_STREQ(v, expected);
        ASSERT_TRUE(lookup(t, "no-such-user-postbus") == NULL);
        ASSERT_TRUE(lookup(t, "") == NULL);
        table_free(t);
}

int main(void) {
        log_set_max_level(getenv("TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT); /* the errors tested are logged */
        ASSERT_TRUE(mkdtemp(tmpdir));
        RUN(regexp_parse_and_match);
        RUN(pcre_parse_and_match);
        RUN(regexp_errors);
        RUN(cidr);
        RUN(texthash);
        RUN(inline_and_static);
        RUN(open_and_lookup);
        RUN(list_with_braces);
        RUN(unix_passwd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        ASSERT_EQ(system(cmd), 0);
        return 0;
}
