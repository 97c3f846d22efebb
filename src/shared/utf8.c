/* utf8.c: UTF-8 validation over (buf, len). */
#include <stdint.h>

#include "utf8.h"

size_t utf8_sequence_len(const char *s, size_t len) {
        const unsigned char *u = (const unsigned char *) s;
        size_t n;
        uint32_t c;

        if (len == 0)
                return 0;
        if (u[0] < 0x80)
                return 1;
        if ((u[0] & 0xE0) == 0xC0)
                n = 2, c = u[0] & 0x1F;
        else if ((u[0] & 0xF0) == 0xE0)
                n = 3, c = u[0] & 0x0F;
        else if ((u[0] & 0xF8) == 0xF0)
                n = 4, c = u[0] & 0x07;
        else
                return 0;
        if (n > len)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((u[i] & 0xC0) != 0x80)
                        return 0;
                c = (c << 6) | (u[i] & 0x3F);
        }
        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10FFFF ||
            (c >= 0xD800 && c <= 0xDFFF))
                return 0;
        return n;
}

bool utf8_valid(const char *s, size_t len) {
        for (size_t i = 0; i < len;) {
                if ((unsigned char) s[i] < 0x80) {
                        i++;
                        continue;
                }
                size_t n = utf8_sequence_len(s + i, len - i);
                if (n == 0)
                        return false;
                i += n;
        }
        return true;
}

bool ascii_only(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] >= 0x80)
                        return false;
        return true;
}
