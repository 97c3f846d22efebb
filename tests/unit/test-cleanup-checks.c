/* test-cleanup-checks.c: header_checks rules in regexp_table(5) syntax: parsing, errors, matching. */
#include "tests.h"
#include "../../src/cleanup/cleanup-checks.h"

TEST(parse_and_match) {
        CleanupChecks *c = NULL;
        const char *text =
                "# comment\n"
                "/^Subject: .*viagra/ REJECT no spam here\n"
                "\n"
                "/^X-Hold:/ HOLD held for review\n"
                "/^X-Drop:/\n"
                "    DISCARD\n"
                "/^X-Secret:/ IGNORE\n"
                "/^Subject: Case/i REJECT case sensitive\n"
                "!/^(From|To|Subject|Date|Message-ID|X-[A-Za-z-]+):/ WARN odd header\n"
                "/^X-Fine:/ OK\n"
                "/^X-Scan:/ FILTER smtp:[127.0.0.1]:10026\n";
        const CleanupCheckRule *r;

        ASSERT_OK(cleanup_checks_parse(text, "/etc/postbus/header_checks", &c));
        ASSERT_EQ(c->n_rules, 8);

        r = cleanup_checks_match(c, "Subject: buy VIAGRA now");
        ASSERT_TRUE(r && r->action == CLEANUP_CHECK_REJECT);
        ASSERT_STREQ(r->text, "no spam here");
        ASSERT_EQ(r->line, 2);
        r = cleanup_checks_match(c, "x-hold: yes");
        ASSERT_TRUE(r && r->action == CLEANUP_CHECK_HOLD);
        r = cleanup_checks_match(c, "X-Drop: 1");
        ASSERT_TRUE(r && r->action == CLEANUP_CHECK_DISCARD && r->line == 5 && !r->text);
        r = cleanup_checks_match(c, "X-Secret: 1");
        ASSERT_TRUE(r && r->action == CLEANUP_CHECK_IGNORE);
        /* "i" turns case-insensitive matching off */
        ASSERT_TRUE(cleanup_checks_match(c, "Subject: Case") != NULL);
        r = cleanup_checks_match(c, "Subject: case");
        ASSERT_TRUE(r == NULL);
        r = cleanup_checks_match(c, "Received: from x");
        ASSERT_TRUE(r && r->action == CLEANUP_CHECK_WARN);
        r = cleanup_checks_match(c, "X-Fine: 1");
        ASSERT_TRUE(r && r->action == CLEANUP_CHECK_DUNNO);
        r = cleanup_checks_match(c, "X-Scan: yes");
        ASSERT_TRUE(r && r->action == CLEANUP_CHECK_FILTER);
        ASSERT_STREQ(r->text, "smtp:[127.0.0.1]:10026");
        cleanup_checks_free(c);
}

TEST(errors) {
        CleanupChecks *c = NULL;

        ASSERT_ERR(cleanup_checks_parse("/a/ REJECT\n/(unclosed/ REJECT\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a/ EXPLODE\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a/q REJECT\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a REJECT\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("a REJECT\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("  /a/ REJECT\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a++/ REJECT\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a*{2}/ REJECT\n", "f", &c), EINVAL);
        /* FILTER needs transport:destination */
        ASSERT_ERR(cleanup_checks_parse("/a/ FILTER\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a/ FILTER amavis\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a/ FILTER :[127.0.0.1]:10024\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a/ FILTER smtp:x y\n", "f", &c), EINVAL);
        ASSERT_ERR(cleanup_checks_parse("/a/ FILTER sm/tp:x\n", "f", &c), EINVAL);
        ASSERT_OK(cleanup_checks_parse("/a/ FILTER amavis:\n", "f", &c));
        c = cleanup_checks_free(c);
        ASSERT_OK(cleanup_checks_parse("/a\\++ [*+]+ (b+)+ x{1,2}y?/ REJECT\n", "f", &c));
        c = cleanup_checks_free(c);
        ASSERT_TRUE(c == NULL);
        ASSERT_OK(cleanup_checks_parse("", "f", &c));
        ASSERT_EQ(c->n_rules, 0);
        ASSERT_TRUE(cleanup_checks_match(c, "Subject: x") == NULL);
        cleanup_checks_free(c);
}

int main(void) {
        RUN(parse_and_match);
        RUN(errors);
        return 0;
}
