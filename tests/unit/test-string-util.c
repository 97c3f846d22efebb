/* test-string-util.c: stripping white space, growing string vectors, and the growing byte buffer. */
#include <stdint.h>

#include "tests.h"
#include "macro.h"
#include "string-util.h"

TEST(strstrip) {
        char a[] = "  \t name = value \r\n", b[] = "", c[] = " \t\n\v\f\r ", d[] = "x", e[] = "a b";

        ASSERT_STREQ(strstrip(a), "name = value");
        ASSERT_STREQ(strstrip(b), "");
        ASSERT_STREQ(strstrip(c), "");
        ASSERT_TRUE(strstrip(d) == d);
        ASSERT_STREQ(strstrip(e), "a b");
}

TEST(strstrip_span) {
        const char *s = "  <a@b> \n", *start = s, *end = s + strlen(s);

        strstrip_span(&start, &end);
        ASSERT_TRUE(start == s + 2 && end == s + 7);
        /* Nothing is written: the same span narrows again inside the brackets. */
        start++;
        end--;
        strstrip_span(&start, &end);
        ASSERT_EQ(end - start, 3);
        ASSERT_TRUE(strncmp(start, "a@b", 3) == 0);

        const char *blank = "   ";
        start = blank;
        end = blank + 3;
        strstrip_span(&start, &end);
        ASSERT_TRUE(start == end);
        /* Only the span is looked at, not what lies beyond it. */
        start = end = blank + 1;
        strstrip_span(&start, &end);
        ASSERT_TRUE(start == blank + 1 && end == blank + 1);
}

TEST(strv_push) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        for (int i = 0; i < 100; i++) {
                char s[16];
                (void) snprintf(s, sizeof s, "s%d", i);
                ASSERT_OK(strv_push(&l, &n, strdup(s)));
                ASSERT_EQ(n, (size_t) i + 1);
                ASSERT_TRUE(l[n] == NULL);
        }
        ASSERT_STREQ(l[0], "s0");
        ASSERT_STREQ(l[99], "s99");
        ASSERT_EQ(strv_length(l), 100);
        ASSERT_EQ(strv_length(NULL), 0);

        /* A failed strdup() arrives as NULL: -ENOMEM, and the vector is left as it was. */
        ASSERT_ERR(strv_push(&l, &n, NULL), ENOMEM);
        ASSERT_EQ(n, 100);
        ASSERT_TRUE(l[100] == NULL);
}

/* Bytes appended in pieces come back whole; the buffer grows, and a size that cannot be held is refused
 * with the buffer unchanged. */
TEST(buffer_append) {
        Buffer b = {};
        char piece[1000];

        ASSERT_OK(buffer_append(&b, "", 0));
        ASSERT_TRUE(b.data == NULL && b.len == 0);
        for (size_t k = 0; k < 10; k++) {
                memset(piece, 'a' + (int) k, sizeof piece);
                ASSERT_OK(buffer_append(&b, piece, sizeof piece));
        }
        ASSERT_EQ(b.len, 10000U);
        ASSERT_TRUE(b.allocated >= b.len);
        for (size_t k = 0; k < 10; k++)
                ASSERT_TRUE(b.data[k * 1000] == 'a' + (int) k && b.data[k * 1000 + 999] == 'a' + (int) k);
        ASSERT_ERR(buffer_append(&b, piece, SIZE_MAX - 10), ENOMEM);
        ASSERT_EQ(b.len, 10000U);
        buffer_done(&b);
        ASSERT_TRUE(b.data == NULL && b.len == 0 && b.allocated == 0);
}

static size_t byte_set_count(const ByteSet *s) {
        size_t n = 0;
        for (size_t i = 0; i < 256; i++)
                n += s->has[i];
        return n;
}

TEST(byte_set_parse) {
        ByteSet s;

        ASSERT_OK(byte_set_parse("", &s));
        ASSERT_TRUE(!s.any && byte_set_count(&s) == 0);

        ASSERT_OK(byte_set_parse("\\0", &s));
        ASSERT_TRUE(s.any && s.has[0] && byte_set_count(&s) == 1);

        /* The named escapes, octal of one to three digits, a backslash, and plain bytes. */
        ASSERT_OK(byte_set_parse("\\a\\b\\f\\n\\r\\t\\v\\\\x\\177\\0021\\6", &s));
        ASSERT_TRUE(s.has['\a'] && s.has['\b'] && s.has['\f'] && s.has['\n'] && s.has['\r'] && s.has['\t'] &&
                    s.has['\v'] && s.has['\\'] && s.has['x'] && s.has[0177] && s.has[2] && s.has['1'] &&
                    s.has[6]);
        ASSERT_EQ(byte_set_count(&s), 13U);
        /* An escape that is not one of those is the character itself. */
        ASSERT_OK(byte_set_parse("\\q\\%", &s));
        ASSERT_TRUE(s.has['q'] && s.has['%'] && byte_set_count(&s) == 2);
        ASSERT_OK(byte_set_parse("\\377", &s));
        ASSERT_TRUE(s.has[0xFF] && byte_set_count(&s) == 1);

        ASSERT_ERR(byte_set_parse("ab\\", &s), EINVAL);
        ASSERT_ERR(byte_set_parse("\\400", &s), EINVAL);
}

int main(void) {
        RUN(strstrip);
        RUN(strstrip_span);
        RUN(strv_push);
        RUN(buffer_append);
        RUN(byte_set_parse);
        return 0;
}
