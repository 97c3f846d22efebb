/* test-mime.c: Content-Type's kind and boundary, boundary lines, and which headers are MIME ones. */
#include <errno.h>

#include "tests.h"
#include "mime.h"

static MimeContentType content_type(const char *h, char **boundary) {
        MimeContentType kind = 99;
        ASSERT_OK(mime_content_type_parse(h, &kind, boundary));
        return kind;
}

TEST(content_type) {
        char *b = NULL;

        ASSERT_EQ(content_type("Content-Type: multipart/mixed; boundary=\"frontier one\"", &b), MIME_CONTENT_MULTIPART);
        ASSERT_STREQ(b, "frontier one");
        free(b);
        /* case, comments, blanks around '=', a token value, another parameter first */
        ASSERT_EQ(content_type("content-type: (c) MULTIPART/Alternative; charset=x;  Boundary = abc.123 ;x=y", &b),
                  MIME_CONTENT_MULTIPART);
        ASSERT_STREQ(b, "abc.123");
        free(b);
        ASSERT_EQ(content_type("Content-Type: multipart/mixed; boundary=\"a\\\"b\"", &b), MIME_CONTENT_MULTIPART);
        ASSERT_STREQ(b, "a\"b");
        free(b);
        /* no boundary, an empty one, one longer than RFC 2046 allows */
        ASSERT_EQ(content_type("Content-Type: multipart/mixed", &b), MIME_CONTENT_MULTIPART);
        ASSERT_TRUE(b == NULL);
        ASSERT_EQ(content_type("Content-Type: multipart/mixed; boundary=\"\"", &b), MIME_CONTENT_MULTIPART);
        ASSERT_TRUE(b == NULL);
        char longer[200];
        snprintf(longer, sizeof longer, "Content-Type: multipart/mixed; boundary=%0*d", MIME_BOUNDARY_MAX + 1, 0);
        ASSERT_EQ(content_type(longer, &b), MIME_CONTENT_MULTIPART);
        ASSERT_TRUE(b == NULL);
        ASSERT_EQ(content_type("Content-Type: message/rfc822", &b), MIME_CONTENT_MESSAGE);
        ASSERT_EQ(content_type("Content-Type: message / RFC822 (attached)", &b), MIME_CONTENT_MESSAGE);
        ASSERT_EQ(content_type("Content-Type: message/partial; id=x", &b), MIME_CONTENT_OTHER);
        ASSERT_EQ(content_type("Content-Type: text/plain; boundary=x", &b), MIME_CONTENT_OTHER);
        ASSERT_TRUE(b == NULL);
        ASSERT_EQ(content_type("Content-Type:", &b), MIME_CONTENT_OTHER);
        MimeContentType k;
        ASSERT_EQ(mime_content_type_parse("no colon", &k, &b), -EINVAL);
}

TEST(boundary_match) {
        ASSERT_EQ(mime_boundary_match("--abc", 5, "abc"), 1);
        ASSERT_EQ(mime_boundary_match("--abc  ", 7, "abc"), 1);
        ASSERT_EQ(mime_boundary_match("--abc--", 7, "abc"), 2);
        ASSERT_EQ(mime_boundary_match("--ab", 4, "abc"), 0);
        ASSERT_EQ(mime_boundary_match("-abc", 4, "abc"), 0);
        ASSERT_EQ(mime_boundary_match("abc", 3, "abc"), 0);
}

TEST(mime_headers) {
        ASSERT_TRUE(mime_header_is_mime("Content-Type: x", 15));
        ASSERT_TRUE(mime_header_is_mime("mime-version: 1.0", 17));
        ASSERT_TRUE(mime_header_is_mime("Content-Disposition:", 20));
        ASSERT_TRUE(!mime_header_is_mime("Content-Length: 1", 17));
        ASSERT_TRUE(!mime_header_is_mime("Content-Typo: x", 15));
        ASSERT_TRUE(!mime_header_is_mime("Subject: Content-Type:", 22));
}

int main(void) {
        RUN(content_type);
        RUN(boundary_match);
        RUN(mime_headers);
        return 0;
}
