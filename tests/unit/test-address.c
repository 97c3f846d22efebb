/* test-address.c: envelope address checks and splitting. */
#include "tests.h"
#include "address.h"

TEST(valid) {
        ASSERT_TRUE(address_valid(""));
        ASSERT_TRUE(address_valid("alice@example.org"));
        ASSERT_TRUE(address_valid("alice"));
        ASSERT_TRUE(address_valid("\"john doe\"@example.org"));
        ASSERT_TRUE(address_valid("\"a@b\"@example.org"));
        ASSERT_TRUE(address_valid("用户@例子.测试"));
        ASSERT_TRUE(!address_valid("caf\xc3@example.org"));          /* truncated UTF-8 */
        ASSERT_TRUE(!address_valid("caf\xc0\xa9@example.org"));      /* overlong */
        ASSERT_TRUE(!address_valid("\xed\xa0\x80@example.org"));    /* a surrogate */
        ASSERT_TRUE(!address_valid("a b@example.org"));
        ASSERT_TRUE(!address_valid("a@b@c"));
        ASSERT_TRUE(!address_valid("@example.org"));
        ASSERT_TRUE(!address_valid("alice@"));
        ASSERT_TRUE(!address_valid("al\nice@example.org"));
        ASSERT_TRUE(!address_valid("<alice@example.org>"));
        ASSERT_TRUE(!address_valid("\"unterminated@example.org"));

        char big[ADDRESS_MAX + 2];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        ASSERT_TRUE(!address_valid(big));
}

TEST(split) {
        char *l, *d;

        ASSERT_OK(address_split("Alice@Example.org", &l, &d));
        ASSERT_STREQ(l, "Alice");
        ASSERT_STREQ(d, "Example.org");
        free(l);
        free(d);
        ASSERT_OK(address_split("root", &l, &d));
        ASSERT_STREQ(l, "root");
        ASSERT_TRUE(d == NULL);
        free(l);
        ASSERT_STREQ(address_domain("\"x@y\"@z"), "z");
}

TEST(local) {
        _cleanup_strv_free_ char **l = NULL;

        ASSERT_OK(config_split_list("host.example.org, localhost.example.org  localhost", &l));
        ASSERT_TRUE(address_is_local(l, "a@LOCALHOST"));
        ASSERT_TRUE(address_is_local(l, "a@host.example.org."));
        ASSERT_TRUE(address_is_local(l, "a"));
        ASSERT_TRUE(!address_is_local(l, "a@example.org"));
        ASSERT_TRUE(!address_is_local(l, "a@xlocalhost"));
}

int main(void) {
        RUN(valid);
        RUN(split);
        RUN(local);
        return 0;
}
