/* test-postbusctl-json.c: JSON strings of peer-supplied text (postbusctl queue --json) are valid JSON
 * whatever bytes the text holds. */
#include "tests.h"
#include "macro.h"
#include "../../src/postbusctl/postbusctl-json.h"

static void check(const char *in, const char *expected) {
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);

        ASSERT_TRUE(f);
        json_string(f, in);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_STREQ(out, expected);
        free(out);
}

TEST(plain) {
        check("", "\"\"");
        check("alice@example.org", "\"alice@example.org\"");
        check("<>/[]{}:,", "\"<>/[]{}:,\"");
}

TEST(escapes) {
        check("\"john\\\"doe\"@example.org", "\"\\\"john\\\\\\\"doe\\\"@example.org\"");
        check("a\x01" "b\nc\td\x1f" "e\x7f", "\"a\\u0001b\\u000ac\\u0009d\\u001fe\\u007f\"");
}

TEST(utf8) {
        check("j\xc3\xbcrgen@b\xc3\xbc" "cher.example", "\"j\xc3\xbcrgen@b\xc3\xbc" "cher.example\"");
        check("\xe2\x82\xac \xf0\x9f\x93\xa7", "\"\xe2\x82\xac \xf0\x9f\x93\xa7\"");
        /* Not UTF-8: each bad byte becomes U+FFFD. */
        check("\xff", "\"\\ufffd\"");
        check("a\xc0\xaf" "b", "\"a\\ufffd\\ufffdb\"");               /* overlong */
        check("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");           /* surrogate */
        check("x\xe2\x82", "\"x\\ufffd\\ufffd\"");                    /* truncated */
        check("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  /* above U+10FFFF */
}

TEST(every_byte) {
        /* Each byte alone: quoted, and nothing below 0x20 or a lone byte above 0x7f left raw. */
        for (int c = 1; c < 256; c++) {
                char in[2] = { (char) c, 0 }, *out = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&out, &size);

                ASSERT_TRUE(f);
                json_string(f, in);
                ASSERT_EQ(fclose(f), 0);
                ASSERT_TRUE(size >= 3 && out[0] == '"' && out[size - 1] == '"');
                for (size_t i = 1; i < size - 1; i++)
                        ASSERT_TRUE((unsigned char) out[i] >= 0x20 && (unsigned char) out[i] < 0x7f);
                free(out);
        }
}

int main(void) {
        RUN(plain);
        RUN(escapes);
        RUN(utf8);
        RUN(every_byte);
        return EXIT_SUCCESS;
}
