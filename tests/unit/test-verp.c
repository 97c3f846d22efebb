/* test-verp.c: VERP delimiters and the per-recipient senders of verp.c. */
#include <errno.h>

#include "tests.h"
#include "verp.h"

TEST(delimiters) {
        ASSERT_TRUE(verp_delimiters_valid("+=", "-=+"));
        ASSERT_TRUE(verp_delimiters_valid("-=", "-=+"));
        ASSERT_TRUE(!verp_delimiters_valid("+", "-=+"));
        ASSERT_TRUE(!verp_delimiters_valid("+=+", "-=+"));
        ASSERT_TRUE(!verp_delimiters_valid("@=", "-=+"));
        ASSERT_TRUE(!verp_delimiters_valid("+x", "-=+"));
        ASSERT_TRUE(!verp_delimiters_valid("", "-=+"));
        ASSERT_TRUE(!verp_delimiters_valid(NULL, "-=+"));
}

TEST(sender) {
        char *s;

        ASSERT_OK(verp_sender("owner-list@origin.example", "+=", "user@example.com", &s));
        ASSERT_STREQ(s, "owner-list+user=example.com@origin.example");
        free(s);
        ASSERT_OK(verp_sender("owner-list@origin.example", "-=", "user", &s));
        ASSERT_STREQ(s, "owner-list-user@origin.example");
        free(s);
        ASSERT_OK(verp_sender("owner", "+=", "a@b", &s));
        ASSERT_STREQ(s, "owner+a=b");
        free(s);
        /* The last '@' splits, as for any address. */
        ASSERT_OK(verp_sender("\"a@b\"@origin", "+=", "\"c@d\"@e", &s));
        ASSERT_STREQ(s, "\"a@b\"+\"c@d\"=e@origin");
        free(s);
        ASSERT_TRUE(verp_sender("", "+=", "user@example.com", &s) == -EINVAL);
        ASSERT_TRUE(verp_sender("a@b", "+", "user@example.com", &s) == -EINVAL);
}

int main(void) {
        RUN(delimiters);
        RUN(sender);
        return 0;
}
