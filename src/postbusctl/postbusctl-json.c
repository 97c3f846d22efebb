/* postbusctl-json.c: JSON output of text that peers supplied (senders, recipients): always valid JSON. */
#include <stdint.h>

#include "macro.h"
#include "postbusctl-json.h"
#include "utf8.h"

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
                } else if ((n = utf8_sequence_len(s + i, len - i)) > 0) {
                        fwrite(s + i, 1, n, f);
                        i += n;
                } else {
                        fputs("\\ufffd", f);
                        i++;
                }
        }
        fputc('"', f);
}
