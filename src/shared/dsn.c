/* dsn.c: checking RFC 3461 DSN parameters. All input is untrusted: every index is checked against len. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "dsn.h"
#include "utf8.h"

static const struct {
        const char *name;
        DsnNotify flag;
} notify_words[] = {
        { "SUCCESS", DSN_NOTIFY_SUCCESS },
        { "FAILURE", DSN_NOTIFY_FAILURE },
        { "DELAY", DSN_NOTIFY_DELAY },
};

int dsn_notify_parse(const char *s, size_t len, unsigned *ret_mask) {
        unsigned mask = 0;
        size_t i = 0;

        if (len == 5 && strncasecmp(s, "NEVER", 5) == 0) {
                *ret_mask = DSN_NOTIFY_NEVER;
                return 0;
        }
        while (i < len) {
                const char *comma = memchr(s + i, ',', len - i);
                size_t n = comma ? (size_t) (comma - (s + i)) : len - i;
                unsigned flag = 0;

                for (size_t k = 0; k < sizeof notify_words / sizeof notify_words[0]; k++)
                        if (strlen(notify_words[k].name) == n && strncasecmp(s + i, notify_words[k].name, n) == 0)
                                flag = notify_words[k].flag;
                if (flag == 0 || (mask & flag))
                        return -EINVAL;
                mask |= flag;
                i += n;
                if (comma) {
                        i++;
                        if (i == len)
                                return -EINVAL;         /* a trailing comma */
                }
        }
        if (mask == 0)
                return -EINVAL;
        *ret_mask = mask;
        return 0;
}

void dsn_notify_format(unsigned mask, char ret[static DSN_NOTIFY_TEXT_MAX]) {
        ret[0] = '\0';
        if (mask & DSN_NOTIFY_NEVER) {
                strcpy(ret, "NEVER");
                return;
        }
        for (size_t k = 0; k < sizeof notify_words / sizeof notify_words[0]; k++)
                if (mask & notify_words[k].flag) {
                        if (ret[0])
                                strcat(ret, ",");
                        strcat(ret, notify_words[k].name);
                }
}

const char *dsn_ret_parse(const char *s, size_t len) {
        if (len == 4 && strncasecmp(s, "FULL", 4) == 0)
                return "FULL";
        if (len == 4 && strncasecmp(s, "HDRS", 4) == 0)
                return "HDRS";
        return NULL;
}

static bool is_upper_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

bool xtext_valid(const char *s, size_t len) {
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '+') {
                        if (len - i < 3 || !is_upper_hex(s[i + 1]) || !is_upper_hex(s[i + 2]))
                                return false;
                        i += 2;
                } else if (c < 0x21 || c > 0x7E || c == '=')
                        return false;
        }
        return true;
}

/* utf-8-addr-xtext (RFC 6533 3): UTF-8 beyond ASCII, printable ASCII but '+', '=' and '\', and
 * "\x{HEX}" with 1 to 6 hex digits. */
static bool utf8_xtext_valid(const char *s, size_t len) {
        if (len == 0 || !utf8_valid(s, len))
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c >= 0x80)
                        continue;
                if (c == '\\') {
                        size_t k = i + 3, digits = 0;

                        if (len - i < 5 || s[i + 1] != 'x' || s[i + 2] != '{')
                                return false;
                        while (k < len && digits < 7 && is_upper_hex(s[k]))
                                k++, digits++;
                        if (digits == 0 || digits > 6 || k >= len || s[k] != '}')
                                return false;
                        i = k;
                } else if (c < 0x21 || c > 0x7E || c == '+' || c == '=')
                        return false;
        }
        return true;
}

bool dsn_orcpt_valid(const char *s, size_t len) {
        const char *semi;
        size_t tlen;

        if (len == 0 || len >= DSN_ORCPT_MAX)
                return false;
        semi = memchr(s, ';', len);
        if (!semi || semi == s)
                return false;
        tlen = (size_t) (semi - s);
        for (size_t i = 0; i < tlen; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
                        return false;
        }
        if (tlen == 5 && strncasecmp(s, "utf-8", 5) == 0)
                return utf8_xtext_valid(semi + 1, len - tlen - 1);
        return xtext_valid(semi + 1, len - tlen - 1);
}

bool dsn_envid_valid(const char *s, size_t len) {
        return len <= DSN_ENVID_MAX && xtext_valid(s, len);
}

size_t dsn_status_length(const char *s, size_t len) {
        size_t i = 2;

        if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
                return 0;
        for (int part = 0; part < 2; part++) {
                size_t start = i;

                while (i < len && i - start < 4 && s[i] >= '0' && s[i] <= '9')
                        i++;
                if (i == start || i - start > 3)
                        return 0;
                if (part == 0) {
                        if (i >= len || s[i] != '.')
                                return 0;
                        i++;
                }
        }
        return i;
}

bool dsn_soft_bounce(char *s) {
        bool changed = false;

        if (dsn_status_length(s, strlen(s)) > 0) {
                if (s[0] == '5') {
                        s[0] = '4';
                        changed = true;
                }
                return changed;
        }
        for (char *line = s; *line;) {
                size_t len = strcspn(line, "\r\n");

                if (len >= 3 && line[0] == '5' && isdigit((unsigned char) line[1]) && isdigit((unsigned char) line[2]) &&
                    (len == 3 || line[3] == ' ' || line[3] == '-')) {
                        line[0] = '4';
                        changed = true;
                        if (len > 4 && line[4] == '5' && dsn_status_length(line + 4, len - 4) > 0)
                                line[4] = '4';
                }
                line += len;
                line += strspn(line, "\r\n");
        }
        return changed;
}
