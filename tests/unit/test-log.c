/* test-log.c: the fields of a mail record, and escaping of peer text. */
#include "tests.h"
#include "log.h"

TEST(fields) {
        _cleanup_strv_free_ char **l = NULL;

        log_setup("local");
        ASSERT_OK(log_mail_fields(LOG_INFO, "6A1B2C3D0F423FA7",
                                  LOG_FIELDS({ "RECIPIENT", "bob@example.org" }, { "RELAY", NULL }, { "DSN", "2.0.0" }),
                                  "to=<bob@example.org>, status=sent", &l));
        ASSERT_STREQ(l[0], "MESSAGE=6A1B2C3D0F423FA7: to=<bob@example.org>, status=sent");
        ASSERT_STREQ(l[1], "PRIORITY=6");
        ASSERT_STREQ(l[2], "SYSLOG_IDENTIFIER=postbus/local");
        ASSERT_STREQ(l[3], "POSTBUS_ROLE=local");
        ASSERT_STREQ(l[4], "QUEUE_ID=6A1B2C3D0F423FA7");
        ASSERT_STREQ(l[5], "RECIPIENT=bob@example.org");
        ASSERT_STREQ(l[6], "DSN=2.0.0");  /* a NULL value is left out */
        ASSERT_TRUE(l[7] == NULL);
}

TEST(no_queue_id) {
        _cleanup_strv_free_ char **l = NULL;
        ASSERT_OK(log_mail_fields(LOG_INFO, NULL, LOG_NO_FIELDS, "connect from x", &l));
        ASSERT_STREQ(l[0], "MESSAGE=connect from x");
        ASSERT_TRUE(l[4] == NULL);
}

TEST(escape) {
        _cleanup_free_ char *a = log_escape("ok text", 7);
        _cleanup_free_ char *b = log_escape("a\r\nb\x01\\", 6);
        _cleanup_free_ char *c = log_escape("caf\xc3\xa9 \xc3\x28 \xff", 10);
        ASSERT_STREQ(a, "ok text");
        ASSERT_STREQ(b, "a\\x0d\\x0ab\\x01\\\\");
        ASSERT_STREQ(c, "caf\xc3\xa9 \\xc3( \\xff");
        _cleanup_free_ char *d = log_escape("x\0y", 3);
        ASSERT_STREQ(d, "x\\x00y");
}

int main(void) {
        RUN(fields);
        RUN(no_queue_id);
        RUN(escape);
        return 0;
}
