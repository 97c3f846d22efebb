/* address.c: splitting and checking envelope addresses. */
#include "address.h"
#include "utf8.h"

const char *address_domain(const char *addr) {
        const char *at = strrchr(addr, '@');
        return at ? at + 1 : NULL;
}

int address_split(const char *addr, char **ret_local, char **ret_domain) {
        const char *at = strrchr(addr, '@');
        _cleanup_free_ char *local = NULL, *domain = NULL;

        local = at ? strndup(addr, (size_t) (at - addr)) : strdup(addr);
        if (!local)
                return -ENOMEM;
        if (at) {
                domain = strdup(at + 1);
                if (!domain)
                        return -ENOMEM;
        }
        *ret_local = TAKE_PTR(local);
        *ret_domain = TAKE_PTR(domain);
        return 0;
}

bool address_is_local(char **mydestination, const char *addr) {
        const char *d = address_domain(addr);
        return !d || config_list_contains_domain(mydestination, d);
}

bool address_valid(const char *s) {
        size_t len = strlen(s), ats = 0;
        bool quoted = false;

        if (len == 0)
                return true;
        if (len > ADDRESS_MAX)
                return false;
        /* Bytes beyond ASCII only as UTF-8 (RFC 6531 SMTPUTF8 addresses). */
        if (!utf8_valid(s, len))
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c < 0x20 || c == 0x7F)
                        return false;
                if (c == '"')
                        quoted = !quoted;
                else if (c == '\\' && quoted && i + 1 < len)
                        i++;
                else if (!quoted && (c == ' ' || c == '<' || c == '>' || c == '(' || c == ')' || c == ','))
                        return false;
                else if (!quoted && c == '@')
                        ats++;
        }
        if (quoted || ats > 1)
                return false;
        if (ats == 1) {
                const char *at = strrchr(s, '@');
                if (at == s || at[1] == '\0' || at - s > 64 + 2)
                        return false;
        }
        return true;
}
