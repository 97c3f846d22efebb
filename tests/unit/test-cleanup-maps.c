/* test-cleanup-maps.c: canonical(5)/virtual(5) lookup order (address-map.c) and masquerading. */
#include "tests.h"
#include "../../src/cleanup/cleanup-maps.h"
#include "address-map.h"

static int fake_lookup(void *table, const char *key, bool partial, char **ret_value) {
        const char *const *t = table;

        for (size_t i = 0; t[i]; i += 2)
                if (strcasecmp(t[i], key) == 0) {
                        *ret_value = strdup(t[i + 1]);
                        return 1;
                }
        return 0;
}

static void check_map(const char *const *table, const char *addr, const char *want) {
        char *mydest[] = { "host.example.org", "localhost", NULL };
        char *out = NULL;
        int r = address_map_find(fake_lookup, (void *) table, addr, mydest, "host.example.org", NULL, false, &out);

        ASSERT_OK(r);
        if (want) {
                ASSERT_EQ(r, 1);
                ASSERT_STREQ(out, want);
        } else
                ASSERT_EQ(r, 0);
        free(out);
}

TEST(lookup_order) {
        const char *table[] = {
                "alice@example.org", "Alice.Example@example.org",
                "bob", "robert@example.org",
                "@old.example", "@new.example",
                "@catch.example", "postmaster@example.org",
                NULL,
        };

        check_map(table, "alice@example.org", "Alice.Example@example.org");
        check_map(table, "bob@host.example.org", "robert@example.org");
        check_map(table, "bob@localhost", "robert@example.org");
        check_map(table, "bob@elsewhere.example", NULL);        /* "user" only for local domains */
        check_map(table, "carol@old.example", "carol@new.example");
        check_map(table, "carol@catch.example", "postmaster@example.org");
        check_map(table, "nobody@example.org", NULL);
        check_map(table, "", NULL);
}

static void check_ext(const char *const *table, const char *addr, bool propagate, const char *want) {
        char *mydest[] = { "host.example.org", "localhost", NULL };
        char *out = NULL;
        int r = address_map_find(fake_lookup, (void *) table, addr, mydest, "host.example.org", "+-",
                                       propagate, &out);

        ASSERT_OK(r);
        if (want) {
                ASSERT_EQ(r, 1);
                ASSERT_STREQ(out, want);
        } else
                ASSERT_EQ(r, 0);
        free(out);
}

/* recipient_delimiter and propagate_unmatched_extensions, as Postfix's mail_addr_find() and mail_addr_map(). */
TEST(extensions) {
        const char *table[] = {
                "joe@example.com", "joe.user@example.net",
                "joe+list@example.com", "lists@example.net",
                "team@example.com", "a@example.net, b,\tc@example.net",
                "bob", "robert@example.org",
                "@old.example", "@new.example",
                NULL,
        };

        check_ext(table, "joe+foo@example.com", true, "joe.user+foo@example.net");
        check_ext(table, "joe+foo@example.com", false, "joe.user@example.net");
        check_ext(table, "joe-foo@example.com", true, "joe.user-foo@example.net");
        check_ext(table, "joe+list@example.com", true, "lists@example.net");     /* matched with it */
        check_ext(table, "joe@example.com", true, "joe.user@example.net");
        check_ext(table, "team+x@example.com", true, "a+x@example.net, b+x, c+x@example.net");
        check_ext(table, "bob+x@localhost", true, "robert+x@example.org");
        check_ext(table, "bob+x@elsewhere.example", true, NULL);
        check_ext(table, "carol+x@old.example", true, "carol+x@new.example");
        check_ext(table, "+joe@example.com", true, NULL);         /* no user before the delimiter */
}

/* A regexp: table is asked the whole address only, as in Postfix: "bob" does not match bob@localhost. */
TEST(pattern_table) {
        char path[] = "/tmp/test-cleanup-maps-XXXXXX";
        const char *rules = "/^bob$/ wrong@example.org\n"
                            "/^@old\\.example$/ wrong@example.org\n"
                            "/^(.+)@old\\.example$/ $1@new.example\n";
        char *mydest[] = { "localhost", NULL }, *spec = NULL, *out = NULL;
        TableList *l = NULL;
        int fd = mkstemp(path);

        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, rules, strlen(rules)), (long long) strlen(rules));
        close(fd);
        ASSERT_TRUE(asprintf(&spec, "regexp:%s", path) > 0);
        ASSERT_OK(table_list_open(spec, &l));
        ASSERT_EQ(address_map_find(address_map_table_lookup, l, "bob@localhost", mydest, "localhost", NULL, false,
                                   &out),
                  0);
        ASSERT_EQ(address_map_find(address_map_table_lookup, l, "carol@old.example", mydest, "localhost", NULL, false,
                                   &out),
                  1);
        ASSERT_STREQ(out, "carol@new.example");
        free(out);
        ASSERT_EQ(address_map_find(address_map_table_lookup, l, "dave@else.example", mydest, "localhost", NULL, false,
                                   &out),
                  0);
        table_list_free(l);
        free(spec);
        unlink(path);
}

static void check_masq(const char *addr, const char *want) {
        char *domains[] = { "!internal.example.org", "example.org", "example.com", NULL };
        char *exceptions[] = { "root", NULL };
        char *out = NULL;
        int r = cleanup_masquerade(domains, exceptions, addr, &out);

        ASSERT_OK(r);
        if (want) {
                ASSERT_EQ(r, 1);
                ASSERT_STREQ(out, want);
        } else
                ASSERT_EQ(r, 0);
        free(out);
}

TEST(masquerade) {
        check_masq("alice@host.sub.example.org", "alice@example.org");
        check_masq("alice@HOST.Example.ORG", "alice@example.org");
        check_masq("alice@example.org", NULL);
        check_masq("alice@notexample.org", NULL);
        check_masq("alice@internal.example.org", NULL);
        check_masq("alice@a.internal.example.org", NULL);
        check_masq("root@host.example.org", NULL);
        check_masq("bob@mail.example.com", "bob@example.com");
        check_masq("bob", NULL);
        check_masq("\"a@b\"@x.example.com", "\"a@b\"@example.com");
}

int main(void) {
        RUN(lookup_order);
        RUN(extensions);
        RUN(pattern_table);
        RUN(masquerade);
        return 0;
}
