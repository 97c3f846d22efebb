/* test-addrlist.c: RFC 5322 address lists as cleanup parses them for sendmail -t. */
#include "tests.h"
#include "addrlist.h"

/* Parses in and checks the addresses against want (joined with '|'). */
static void check(const char *in, const char *want) {
        AddressItem *l = NULL;
        char got[4096] = "";
        int n = addrlist_parse(in, strlen(in), 100, &l);

        ASSERT_OK(n);
        for (int i = 0; i < n; i++) {
                if (i > 0)
                        strcat(got, "|");
                strcat(got, l[i].address);
                /* start/end point at the addr-spec in the input */
                ASSERT_TRUE(l[i].start < l[i].end && l[i].end <= strlen(in));
        }
        ASSERT_STREQ(got, want);
        addrlist_free(l, (size_t) n);
}

TEST(simple) {
        check(" alice@example.org", "alice@example.org");
        check("alice@example.org, bob@example.org", "alice@example.org|bob@example.org");
        check("Alice Example <alice@example.org>", "alice@example.org");
        check("\"Example, Alice\" <alice@example.org>, bob", "alice@example.org|bob");
        check("alice@example.org (Alice Example)", "alice@example.org");
        check("(comment (nested) here) alice @ example . org", "alice@example.org");
        check("=?utf-8?q?Al=C3=AFce?= <alice@example.org>", "alice@example.org");
        check("\"john smith\"@example.org", "\"john smith\"@example.org");
        check("<\"a,b\"@example.org>", "\"a,b\"@example.org");
        check("user@[192.0.2.1]", "user@[192.0.2.1]");
        check("", "");
        check("  ,, ,", "");
}

TEST(groups) {
        check("undisclosed-recipients:;", "");
        check("friends: alice@example.org, Bob <bob@example.org>;, carol@example.org",
              "alice@example.org|bob@example.org|carol@example.org");
        check("team: a@x (A), \"B, b\" <b@x>; c@x", "a@x|b@x|c@x");
}

TEST(obsolete_and_broken) {
        check("<@relay1.example,@relay2.example:alice@example.org>", "alice@example.org");
        check("Alice <alice@example.org", "alice@example.org");
        check("\"unterminated <alice@example.org>", "\"unterminated <alice@example.org>");
        check("(unterminated comment alice@example.org", "");
        check("<alice@example.org> trailing words, bob@x", "alice@example.org|bob@x");
        check("<>", "");
        check("a@x; b@x", "a@x|b@x");
}

TEST(offsets) {
        const char *in = "Alice <alice@example.org>, bob@x";
        AddressItem *l = NULL;
        int n = addrlist_parse(in, strlen(in), 10, &l);

        ASSERT_EQ(n, 2);
        ASSERT_EQ(l[0].start, 7);
        ASSERT_EQ(l[0].end, 24);
        ASSERT_EQ(l[1].start, 27);
        ASSERT_EQ(l[1].end, strlen(in));
        addrlist_free(l, 2);

        ASSERT_ERR(addrlist_parse("a@x, b@x, c@x", 13, 2, &l), E2BIG);
}

int main(void) {
        RUN(simple);
        RUN(groups);
        RUN(obsolete_and_broken);
        RUN(offsets);
        return 0;
}
