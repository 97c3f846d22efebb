/* postbusctl-json.c: JSON output of text that peers supplied (senders, recipients): always valid JSON. */
#include <stdint.h>

#include "macro.h"
#include "postbusctl-json.h"

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t len) {
        size_t n;
        uint32_t c;

        if (s[0] < 0x80)
                return 1;
        if ((s[0] & 0xE0) == 0xC0)
                n = 2, c = s[0] & 0x1F;
        else if ((s[0] & 0xF0) == 0xE0)
                n = 3, c = s[0] & 0x0F;
        else if ((s[0] & 0xF8) == 0xF0)
                n = 4, c = s[0] & 0x07;
        else
                return 0;
        if (n > len)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3F);
        }
        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10FFFF ||
            (c >= 0xD800 && c <= 0xDFFF))
                return 0;
        return n;
}

void json_string(FILE *f, const char *s) {
        size_t len = strlen(s);

        fputc('"', f);
        for (size_t i = 0; i < len;) {
                unsigned char c = (unsigned char) s[i];
                size_t n;

                if (c == '"' || c == '\\') {
                        fputc('\\', f);
                        fputc(c, f);
                        i++;
                } else if (c < 0x20 || c == 0x7F) {
                        fprintf(f, "\\u%04x", c);
                        i++;
                } else if ((n = utf8_sequence((const unsigned char *) s + i, len - i)) > 0) {
                        fwrite(s + i, 1, n, f);
                        i += n;
                } else {
                        fputs("\\ufffd", f);
                        i++;
                }
        }
        fputc('"', f);
}
