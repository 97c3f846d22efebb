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

int main(void) {
        RUN(complete);
        RUN(case_and_continuation);
        RUN(no_headers);
        RUN(empty_and_unterminated);
        RUN(body_starts_without_empty_line);
        RUN(from_in_body_not_counted);
        return 0;
}
