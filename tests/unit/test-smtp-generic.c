/* test-smtp-generic.c: smtp_generic_maps on a header section: which headers, each addr-spec in place. */
#include "tests.h"
#include "src/smtp/smtp.h"

/* carol@host.test -> carol@example.com, anything else @host.test -> @example.net. */
static int fake_map(const char *addr, char **ret, void *userdata) {
        unsigned *calls = userdata;
        const char *at = strrchr(addr, '@');

        (*calls)++;
        if (strcmp(addr, "fail@host.test") == 0)
                return -EIO;
        if (strcmp(addr, "carol@host.test") == 0)
                return (*ret = strdup("carol@example.com")) ? 1 : -ENOMEM;
        if (at && strcmp(at, "@host.test") == 0)
                return asprintf(ret, "%.*s@example.net", (int) (at - addr), addr) < 0 ? -ENOMEM : 1;
        return 0;
}

static void check(const char *in, const char *want) {
        char *out = NULL;
        size_t n = 0;
        unsigned calls = 0;
        int r = smtp_generic_headers(in, strlen(in), fake_map, &calls, &out, &n);

        ASSERT_OK(r);
        if (want) {
                ASSERT_EQ(r, 1);
                ASSERT_EQ(n, strlen(want));
                ASSERT_TRUE(memcmp(out, want, n) == 0);
        } else
                ASSERT_EQ(r, 0);
        free(out);
}

TEST(headers) {
        /* sender and recipient headers, names, comments, groups and folding kept */
        check("From: Carol <carol@host.test>\n"
              "To: x@remote.test, Dan <dan@host.test>,\n group: eve@host.test, zed@remote.test;\n"
              "Cc: dan@host.test (Dan)\n"
              "Reply-To: carol@host.test\nSender: dan@host.test\nResent-From: carol@host.test\n"
              "Errors-To: carol@host.test\nDisposition-Notification-To: carol@host.test\n",
              "From: Carol <carol@example.com>\n"
              "To: x@remote.test, Dan <dan@example.net>,\n group: eve@example.net, zed@remote.test;\n"
              "Cc: dan@example.net (Dan)\n"
              "Reply-To: carol@example.com\nSender: dan@example.net\nResent-From: carol@example.com\n"
              "Errors-To: carol@example.com\nDisposition-Notification-To: carol@example.com\n");
        /* other headers are never looked at, nor a header name that only begins like one */
        check("Delivered-To: carol@host.test\nX-Original-To: carol@host.test\nMessage-ID: <carol@host.test>\n"
              "Subject: carol@host.test\nFromage: carol@host.test\n", NULL);
        /* nothing in the table: unchanged */
        check("From: a@remote.test\nTo: b@remote.test\n", NULL);
        check("", NULL);
}

TEST(failure) {
        char *out = NULL;
        size_t n = 0;
        unsigned calls = 0;
        const char *in = "To: fail@host.test, carol@host.test\n";

        ASSERT_EQ(smtp_generic_headers(in, strlen(in), fake_map, &calls, &out, &n), -EIO);
        ASSERT_TRUE(out == NULL);
}

int main(void) {
        RUN(headers);
        RUN(failure);
        return 0;
}
