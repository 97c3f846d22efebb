/* test-header-checks.c: header_checks: the actions a matching rule gives, and a regexp: rule file as the
 * cleanup and smtp processes use it (a plain path meaning regexp:). */
#include <fcntl.h>

#include "tests.h"
#include "header-checks.h"

static void action_is(const char *value, HeaderCheckAction action, const char *text) {
        HeaderCheckAction a;
        const char *t;

        ASSERT_OK(header_check_action_parse(value, &a, &t));
        ASSERT_EQ(a, action);
        if (text)
                ASSERT_STREQ(t, text);
        else
                ASSERT_TRUE(t == NULL);
}

TEST(actions) {
        HeaderCheckAction a;
        const char *t;

        action_is("REJECT no spam here", HEADER_CHECK_REJECT, "no spam here");
        action_is("reject", HEADER_CHECK_REJECT, NULL);
        action_is("HOLD  held for review", HEADER_CHECK_HOLD, "held for review");
        action_is("DISCARD", HEADER_CHECK_DISCARD, NULL);
        action_is("IGNORE", HEADER_CHECK_IGNORE, NULL);
        action_is("WARN odd header", HEADER_CHECK_WARN, "odd header");
        action_is("OK", HEADER_CHECK_DUNNO, NULL);
        action_is("dunno", HEADER_CHECK_DUNNO, NULL);
        ASSERT_ERR(header_check_action_parse("EXPLODE now", &a, &t), EOPNOTSUPP);
        ASSERT_ERR(header_check_action_parse("REJECTED", &a, &t), EOPNOTSUPP);
        ASSERT_ERR(header_check_action_parse("", &a, &t), EOPNOTSUPP);
        /* FILTER needs transport:destination */
        action_is("FILTER smtp:[127.0.0.1]:10026", HEADER_CHECK_FILTER, "smtp:[127.0.0.1]:10026");
        action_is("FILTER amavis:", HEADER_CHECK_FILTER, "amavis:");
        ASSERT_ERR(header_check_action_parse("FILTER", &a, &t), EINVAL);
        ASSERT_ERR(header_check_action_parse("FILTER amavis", &a, &t), EINVAL);
        ASSERT_ERR(header_check_action_parse("FILTER :[127.0.0.1]:10024", &a, &t), EINVAL);
        /* PREPEND and REPLACE need their text */
        action_is("PREPEND X-Checked: yes", HEADER_CHECK_PREPEND, "X-Checked: yes");
        action_is("replace [link removed]", HEADER_CHECK_REPLACE, "[link removed]");
        ASSERT_ERR(header_check_action_parse("PREPEND", &a, &t), EINVAL);
        ASSERT_ERR(header_check_action_parse("REPLACE  ", &a, &t), EINVAL);
        ASSERT_ERR(header_check_action_parse("FILTER smtp:x y", &a, &t), EINVAL);
        ASSERT_ERR(header_check_action_parse("FILTER sm/tp:x", &a, &t), EINVAL);
}

TEST(plain_path_is_regexp) {
        char path[] = "/tmp/test-header-checks-XXXXXX";
        int fd = mkstemp(path);
        const char *rules = "/^Subject: .*viagra/ REJECT no spam here\n"
                            "/^X-Hold:/ HOLD held for review\n"
                            "/^Subject: Case/i REJECT case sensitive\n"
                            "!/^(From|To|Subject|Date|Message-ID|X-[A-Za-z-]+):/ WARN odd header\n";
        TableList *l = NULL;
        char *v = NULL;

        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, rules, strlen(rules)), (long long) strlen(rules));
        close(fd);

        ASSERT_OK(header_checks_open(path, &l));
        ASSERT_EQ(table_list_lookup(l, "Subject: buy VIAGRA now", &v), 1);
        ASSERT_STREQ(v, "REJECT no spam here");
        free(v);
        ASSERT_EQ(table_list_lookup(l, "x-hold: yes", &v), 1);
        ASSERT_STREQ(v, "HOLD held for review");
        free(v);
        /* "i" turns case-insensitive matching off */
        ASSERT_EQ(table_list_lookup(l, "Subject: case", NULL), 0);
        ASSERT_EQ(table_list_lookup(l, "Subject: Case", NULL), 1);
        ASSERT_EQ(table_list_lookup(l, "Received: from x", &v), 1);
        ASSERT_STREQ(v, "WARN odd header");
        free(v);
        table_list_free(l);
        unlink(path);

        /* Any table type will do, as in Postfix. */
        ASSERT_OK(header_checks_open("inline:{ { Subject: exact = DISCARD } }", &l));
        ASSERT_EQ(table_list_lookup(l, "subject: EXACT", &v), 1);
        ASSERT_STREQ(v, "DISCARD");
        free(v);
        table_list_free(l);
}

int main(void) {
        RUN(actions);
        RUN(plain_path_is_regexp);
        return 0;
}
