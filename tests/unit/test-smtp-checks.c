/* test-smtp-checks.c: smtp_*_checks on the content as the queue file gives it, in pieces of any size: which
 * table each header and line goes to, and what IGNORE, REPLACE, PREPEND and an unsupported action do. */
#include "tests.h"
#include "log.h"
#include "string-util.h"
#include "src/smtp/smtp.h"

static int collect(const char *data, size_t len, void *userdata) {
        return buffer_append(userdata, data, len);
}

/* The message fed in pieces of step bytes: what goes out. */
static char *run(const char *message, size_t step) {
        SmtpChecksSpec spec = {
                .tables = {
                        [SMTP_CHECKS_HEADER] = "inline:{ { X-Secret: s = IGNORE }, { X-Folded: one two = REPLACE X-Folded: joined }, "
                                               "{ X-Reject: r = REJECT no }, { X-Tag: t = PREPEND X-Added: 1 } }",
                        [SMTP_CHECKS_MIME_HEADER] = "inline:{ { Content-Type: text/secret = REPLACE Content-Type: text/plain } }",
                        [SMTP_CHECKS_NESTED_HEADER] = "inline:{ { Subject: inner = IGNORE } }",
                        [SMTP_CHECKS_BODY] = "inline:{ { X-Secret: s = REPLACE body line }, { drop = IGNORE }, { last = REPLACE final } }",
                },
                .header_limit = 1000,
                .body_limit = 1000,
                .nesting_limit = 10,
                .queue_id = "TEST",
        };
        Buffer out = {};
        SmtpChecks *k = NULL;

        ASSERT_EQ(smtp_checks_new(&spec, collect, &out, &k), 1);
        for (size_t off = 0, len = strlen(message); off < len; off += step)
                ASSERT_OK(smtp_checks_feed(k, message + off, MIN(step, len - off)));
        ASSERT_OK(smtp_checks_finish(k));
        smtp_checks_free(k);
        ASSERT_OK(buffer_append(&out, "", 1));
        return out.data;
}

TEST(pieces) {
        const char *message = "X-Secret: s\n"
                              "X-Folded: one\n two\n"
                              "X-Reject: r\n"
                              "X-Tag: t\n"
                              "Content-Type: multipart/mixed; boundary=b\n"
                              "\n"
                              "X-Secret: s\n"
                              "--b\n"
                              "Content-Type: text/secret\n"
                              "\n"
                              "drop\n"
                              "kept\n"
                              "--b\n"
                              "Content-Type: message/rfc822\n"
                              "\n"
                              "Subject: inner\n"
                              "X-Secret: s\n"
                              "\n"
                              "--b--\n"
                              "last";
        const char *expected = "X-Folded: joined\n"
                               "X-Reject: r\n"
                               "X-Added: 1\nX-Tag: t\n"
                               "Content-Type: multipart/mixed; boundary=b\n"
                               "\n"
                               "body line\n"
                               "--b\n"
                               "Content-Type: text/plain\n"
                               "\n"
                               "kept\n"
                               "--b\n"
                               "Content-Type: message/rfc822\n"
                               "\n"
                               "X-Secret: s\n"        /* the attached message's: nested, not header, checks */
                               "\n"
                               "--b--\n"
                               "final\n";

        log_set_max_level(LOG_CRIT);
        for (size_t step = 1; step <= strlen(message); step++) {
                char *out = run(message, step);
                ASSERT_STREQ(out, expected);
                free(out);
        }
        smtp_checks_cleanup();
}

TEST(none) {
        SmtpChecksSpec spec = { .tables = { "", NULL, "", "" } };
        SmtpChecks *k = (SmtpChecks *) 1;

        ASSERT_EQ(smtp_checks_new(&spec, collect, NULL, &k), 0);
        ASSERT_TRUE(k == NULL);
}

int main(void) {
        RUN(pieces);
        RUN(none);
        return 0;
}
