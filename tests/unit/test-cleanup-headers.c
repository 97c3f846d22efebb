/* test-cleanup-headers.c: finding the end of the header section and the headers a message lacks. */
#include "tests.h"
#include "../../src/cleanup/cleanup.h"

static CleanupHeaderScan scan(const char *s) {
        CleanupHeaderScan h;
        ASSERT_OK(cleanup_header_scan(s, strlen(s), &h));
        return h;
}

TEST(complete) {
        const char *m = "From: a@b\nDate: x\nMessage-ID: <1@b>\nReceived: one\nReceived: two\n\nbody\n";
        CleanupHeaderScan h = scan(m);
        ASSERT_TRUE(h.has_from && h.has_date && h.has_message_id);
        ASSERT_EQ(h.received, 2);
        ASSERT_EQ(h.header_end, strstr(m, "\n\nbody") - m + 1);
        ASSERT_TRUE(!h.needs_separator);
        ASSERT_STREQ(h.message_id, "<1@b>");
        cleanup_header_scan_done(&h);
}

TEST(case_and_continuation) {
        const char *m = "subject: hi\n there\nMESSAGE-id:\n <2@b>\nfrom: x\n\n";
        CleanupHeaderScan h = scan(m);
        ASSERT_TRUE(h.has_from && !h.has_date && h.has_message_id);
        ASSERT_STREQ(h.message_id, "<2@b>");
        ASSERT_EQ(h.header_end, strlen(m) - 1);
        cleanup_header_scan_done(&h);
}

TEST(no_headers) {
        CleanupHeaderScan h = scan("just a body line\nmore\n");
        ASSERT_EQ(h.header_end, 0);
        ASSERT_TRUE(h.needs_separator);
        ASSERT_TRUE(!h.has_from);
        cleanup_header_scan_done(&h);
}

TEST(empty_and_unterminated) {
        CleanupHeaderScan h = scan("");
        ASSERT_EQ(h.header_end, 0);
        ASSERT_TRUE(h.needs_separator);

        h = scan("Subject: no newline");
        ASSERT_EQ(h.header_end, strlen("Subject: no newline"));
        ASSERT_TRUE(h.needs_separator);
}

TEST(body_starts_without_empty_line) {
        const char *m = "Subject: a\nnot a header\n";
        CleanupHeaderScan h = scan(m);
        ASSERT_EQ(h.header_end, strlen("Subject: a\n"));
        ASSERT_TRUE(h.needs_separator);
}

TEST(from_in_body_not_counted) {
        CleanupHeaderScan h = scan("Subject: a\n\nFrom: not a header\nReceived: nope\n");
        ASSERT_TRUE(!h.has_from);
        ASSERT_EQ(h.received, 0);
}

static CleanupContentType content_type(const char *h, char **boundary) {
        CleanupContentType kind = 99;
        ASSERT_OK(cleanup_content_type_parse(h, &kind, boundary));
        return kind;
}

TEST(content_type) {
        char *b = NULL;

        ASSERT_EQ(content_type("Content-Type: multipart/mixed; boundary=\"frontier one\"", &b), CLEANUP_CONTENT_MULTIPART);
        ASSERT_STREQ(b, "frontier one");
        free(b);
        /* case, comments, blanks around '=', a token value, another parameter first */
        ASSERT_EQ(content_type("content-type: (c) MULTIPART/Alternative; charset=x;  Boundary = abc.123 ;x=y", &b),
                  CLEANUP_CONTENT_MULTIPART);
        ASSERT_STREQ(b, "abc.123");
        free(b);
        ASSERT_EQ(content_type("Content-Type: multipart/mixed; boundary=\"a\\\"b\"", &b), CLEANUP_CONTENT_MULTIPART);
        ASSERT_STREQ(b, "a\"b");
        free(b);
        /* no boundary, an empty one, one longer than RFC 2046 allows */
        ASSERT_EQ(content_type("Content-Type: multipart/mixed", &b), CLEANUP_CONTENT_MULTIPART);
        ASSERT_TRUE(b == NULL);
        ASSERT_EQ(content_type("Content-Type: multipart/mixed; boundary=\"\"", &b), CLEANUP_CONTENT_MULTIPART);
        ASSERT_TRUE(b == NULL);
        char longer[200];
        snprintf(longer, sizeof longer, "Content-Type: multipart/mixed; boundary=%0*d", CLEANUP_BOUNDARY_MAX + 1, 0);
        ASSERT_EQ(content_type(longer, &b), CLEANUP_CONTENT_MULTIPART);
        ASSERT_TRUE(b == NULL);
        ASSERT_EQ(content_type("Content-Type: message/rfc822", &b), CLEANUP_CONTENT_MESSAGE);
        ASSERT_EQ(content_type("Content-Type: message / RFC822 (attached)", &b), CLEANUP_CONTENT_MESSAGE);
        ASSERT_EQ(content_type("Content-Type: message/partial; id=x", &b), CLEANUP_CONTENT_OTHER);
        ASSERT_EQ(content_type("Content-Type: text/plain; boundary=x", &b), CLEANUP_CONTENT_OTHER);
        ASSERT_TRUE(b == NULL);
        ASSERT_EQ(content_type("Content-Type:", &b), CLEANUP_CONTENT_OTHER);
        CleanupContentType k;
        ASSERT_EQ(cleanup_content_type_parse("no colon", &k, &b), -EINVAL);
}

TEST(boundary_match) {
        ASSERT_EQ(cleanup_boundary_match("--abc", 5, "abc"), 1);
        ASSERT_EQ(cleanup_boundary_match("--abc  ", 7, "abc"), 1);
        ASSERT_EQ(cleanup_boundary_match("--abc--", 7, "abc"), 2);
        ASSERT_EQ(cleanup_boundary_match("--ab", 4, "abc"), 0);
        ASSERT_EQ(cleanup_boundary_match("-abc", 4, "abc"), 0);
        ASSERT_EQ(cleanup_boundary_match("abc", 3, "abc"), 0);
}

TEST(mime_headers) {
        ASSERT_TRUE(cleanup_header_is_mime("Content-Type: x", 15));
        ASSERT_TRUE(cleanup_header_is_mime("mime-version: 1.0", 17));
        ASSERT_TRUE(cleanup_header_is_mime("Content-Disposition:", 20));
        ASSERT_TRUE(!cleanup_header_is_mime("Content-Length: 1", 17));
        ASSERT_TRUE(!cleanup_header_is_mime("Content-Typo: x", 15));
        ASSERT_TRUE(!cleanup_header_is_mime("Subject: Content-Type:", 22));
}

int main(void) {
        RUN(complete);
        RUN(case_and_continuation);
        RUN(no_headers);
        RUN(empty_and_unterminated);
        RUN(body_starts_without_empty_line);
        RUN(from_in_body_not_counted);
        RUN(content_type);
        RUN(boundary_match);
        RUN(mime_headers);
        return 0;
}
