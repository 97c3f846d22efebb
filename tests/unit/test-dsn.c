/* test-dsn.c: RFC 3461 DSN parameters (NOTIFY, RET, ENVID, ORCPT) and UTF-8 validation. */
#include <errno.h>

#include "tests.h"
#include "dsn.h"
#include "macro.h"
#include "utf8.h"

static unsigned notify(const char *s, int expected) {
        unsigned mask = 0;
        ASSERT_EQ(dsn_notify_parse(s, strlen(s), &mask), expected);
        return mask;
}

TEST(notify) {
        char t[DSN_NOTIFY_TEXT_MAX];

        ASSERT_EQ(notify("NEVER", 0), DSN_NOTIFY_NEVER);
        ASSERT_EQ(notify("never", 0), DSN_NOTIFY_NEVER);
        ASSERT_EQ(notify("delay,Success", 0), DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS);
        dsn_notify_format(notify("DELAY,FAILURE,SUCCESS", 0), t);
        ASSERT_STREQ(t, "SUCCESS,FAILURE,DELAY");
        dsn_notify_format(DSN_NOTIFY_NEVER, t);
        ASSERT_STREQ(t, "NEVER");
        notify("", -EINVAL);
        notify(",", -EINVAL);
        notify("NEVER,DELAY", -EINVAL);
        notify("DELAY,NEVER", -EINVAL);
        notify("DELAY,DELAY", -EINVAL);
        notify("DELAY,", -EINVAL);
        notify("DELAY,,FAILURE", -EINVAL);
        notify("DELAY FAILURE", -EINVAL);
        notify("SUCCES", -EINVAL);
}

TEST(ret_envid) {
        ASSERT_STREQ(dsn_ret_parse("hdrs", 4), "HDRS");
        ASSERT_STREQ(dsn_ret_parse("Full", 4), "FULL");
        ASSERT_TRUE(dsn_ret_parse("FULLY", 5) == NULL);
        ASSERT_TRUE(dsn_ret_parse("", 0) == NULL);

        ASSERT_TRUE(xtext_valid("abc+2B+3D!~", 11));
        ASSERT_TRUE(!xtext_valid("", 0));
        ASSERT_TRUE(!xtext_valid("a b", 3));
        ASSERT_TRUE(!xtext_valid("a=b", 3));
        ASSERT_TRUE(!xtext_valid("a+", 2));
        ASSERT_TRUE(!xtext_valid("a+2", 3));
        ASSERT_TRUE(!xtext_valid("a+2b", 4));
        ASSERT_TRUE(!xtext_valid("a\x7f", 2));
        ASSERT_TRUE(!xtext_valid("\xc3\xa9", 2));

        char envid[DSN_ENVID_MAX + 2];
        memset(envid, 'e', sizeof envid);
        ASSERT_TRUE(dsn_envid_valid(envid, DSN_ENVID_MAX));
        ASSERT_TRUE(!dsn_envid_valid(envid, DSN_ENVID_MAX + 1));
}

TEST(orcpt) {
        const char *ok[] = { "rfc822;bob@example.org", "RFC822;a+2Bb", "x-type;v", "utf-8;\xe7\x94\xa8@x",
                             "utf-8;a\\x{1F600}b", "UTF-8;plain" };
        const char *bad[] = { "", ";a", "rfc822", "rfc822;", "rfc 822;a", "rfc822;a b", "rfc822;a=b",
                              "rfc822;\xe7\x94\xa8", "utf-8;a\\x{}", "utf-8;a\\x{1234567}", "utf-8;a\\y",
                              "utf-8;a+b", "utf-8;\xc3", "utf-8;a\\x{12" };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++)
                ASSERT_TRUE(dsn_orcpt_valid(ok[i], strlen(ok[i])));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (dsn_orcpt_valid(bad[i], strlen(bad[i])))
                        fprintf(stderr, "accepted: %s\n", bad[i]);
                ASSERT_TRUE(!dsn_orcpt_valid(bad[i], strlen(bad[i])));
        }
        char big[DSN_ORCPT_MAX + 1];
        memcpy(big, "rfc822;", 7);
        memset(big + 7, 'a', sizeof big - 7);
        ASSERT_TRUE(dsn_orcpt_valid(big, DSN_ORCPT_MAX - 1));
        ASSERT_TRUE(!dsn_orcpt_valid(big, DSN_ORCPT_MAX));
}

TEST(utf8) {
        ASSERT_TRUE(utf8_valid("plain", 5));
        ASSERT_TRUE(utf8_valid("caf\xc3\xa9 \xe6\x9d\xb1 \xf0\x9f\x98\x80", 14));
        ASSERT_TRUE(!utf8_valid("\xc3", 1));
        ASSERT_TRUE(!utf8_valid("\x80", 1));
        ASSERT_TRUE(!utf8_valid("\xc0\xaf", 2));                /* overlong '/' */
        ASSERT_TRUE(!utf8_valid("\xe0\x80\xaf", 3));
        ASSERT_TRUE(!utf8_valid("\xed\xb0\x80", 3));            /* a surrogate */
        ASSERT_TRUE(!utf8_valid("\xf4\x90\x80\x80", 4));        /* beyond U+10FFFF */
        ASSERT_TRUE(!utf8_valid("\xff", 1));
        ASSERT_EQ(utf8_sequence_len("\xe6\x9d\xb1", 3), 3);
        ASSERT_EQ(utf8_sequence_len("\xe6\x9d\xb1", 2), 0);
        ASSERT_EQ(utf8_sequence_len("", 0), 0);
        ASSERT_TRUE(ascii_only("abc", 3));
        ASSERT_TRUE(!ascii_only("a\xc3\xa9", 3));
}

TEST(soft_bounce) {
        const struct {
                const char *in, *out;
                bool changed;
        } cases[] = {
                { "5.1.1", "4.1.1", true },
                { "4.4.1", "4.4.1", false },
                { "2.0.0", "2.0.0", false },
                { "550 5.1.1 <u@h>: Recipient address rejected", "450 4.1.1 <u@h>: Recipient address rejected", true },
                { "554 Transaction failed", "454 Transaction failed", true },
                { "550 5.x.1 not a status", "450 5.x.1 not a status", true },
                { "552-5.3.4 first\r\n552 5.3.4 second", "452-4.3.4 first\r\n452 4.3.4 second", true },
                { "250 2.0.0 Ok", "250 2.0.0 Ok", false },
                { "421 4.4.2 timeout", "421 4.4.2 timeout", false },
                { "5000 not a code", "5000 not a code", false },
                { "", "", false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char buf[128];
                snprintf(buf, sizeof buf, "%s", cases[i].in);
                ASSERT_EQ(dsn_soft_bounce(buf), cases[i].changed);
                ASSERT_STREQ(buf, cases[i].out);
        }
}

int main(void) {
        RUN(soft_bounce);
        RUN(notify);
        RUN(ret_envid);
        RUN(orcpt);
        RUN(utf8);
        return 0;
}
