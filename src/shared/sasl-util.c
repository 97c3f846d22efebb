/* sasl-util.c: the SASL pieces smtpd (server side, relayed to Dovecot) and smtp (client side, PLAIN and
 * LOGIN) share: mechanism names and base64 through OpenSSL's EVP coder. Pure; run by smtpd and smtp. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "macro.h"
#include "sasl-util.h"

/* Longest text either direction codes: SASL lines here are user names and passwords. */
#define SASL_BASE64_MAX (64U * 1024U)

const char *const sasl_mechanisms[SASL_MECHANISMS_MAX] = { "PLAIN", "LOGIN" };

const char *sasl_mechanism(const char *s, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(sasl_mechanisms); i++)
                if (strlen(sasl_mechanisms[i]) == len && strncasecmp(s, sasl_mechanisms[i], len) == 0)
                        return sasl_mechanisms[i];
        return NULL;
}

static bool is_base64_char(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
               c == '/';
}

bool sasl_base64_valid(const char *s, size_t len) {
        size_t pad = 0;

        if (len % 4 != 0)
                return false;
        if (len > 0 && s[len - 1] == '=')
                pad = len > 1 && s[len - 2] == '=' ? 2 : 1;
        for (size_t i = 0; i < len - pad; i++)
                if (!is_base64_char(s[i]))
                        return false;
        return true;
}

int sasl_base64_encode(const void *data, size_t len, char **ret) {
        char *out;

        if (len > SASL_BASE64_MAX)
                return -E2BIG;
        out = malloc((len + 2) / 3 * 4 + 1);
        if (!out)
                return -ENOMEM;
        (void) EVP_EncodeBlock((unsigned char *) out, data, (int) len);
        *ret = out;
        return 0;
}

int sasl_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len) {
        size_t pad = 0;
        char *out;
        int n;

        if (len > SASL_BASE64_MAX / 3 * 4 + 4)
                return -E2BIG;
        if (!sasl_base64_valid(s, len))
                return -EINVAL;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        /* EVP_DecodeBlock() counts the padding as data: its zero octets come off here. */
        n = EVP_DecodeBlock((unsigned char *) out, (const unsigned char *) s, (int) len);
        if (n < 0) {
                free(out);
                return -EINVAL;
        }
        if (len > 0 && s[len - 1] == '=')
                pad = s[len - 2] == '=' ? 2 : 1;
        out[(size_t) n - pad] = '\0';
        *ret = out;
        *ret_len = (size_t) n - pad;
        return 0;
}
