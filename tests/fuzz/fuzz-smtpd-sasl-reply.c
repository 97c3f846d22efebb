/* fuzz-smtpd-sasl-reply.c: lines from Dovecot's auth server as smtpd parses them, and the base64 check
 * that guards what goes back to it: whatever the bytes, the parser stays within them, and what it accepts
 * is consistent (a challenge that is base64 and within the line, a user name of printable ASCII). */
#include <string.h>

#include "../../src/smtpd/smtpd-sasl.h"
#include "sasl-util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *line = (const char *) data;
        SmtpdSaslReply r;
        int k;

        if (size > SMTPD_SASL_LINE_MAX)
                return 0;
        k = smtpd_sasl_reply_parse(line, size, &r);
        CHECK(k == 0 || k == -EBADMSG || k == -EOPNOTSUPP);
        if (k == 0) {
                CHECK(r.type >= 0 && r.type < _SMTPD_SASL_REPLY_TYPE_MAX);
                CHECK(strlen(r.user) <= SMTPD_SASL_USER_MAX);
                for (const char *p = r.user; *p; p++)
                        CHECK(*p > ' ' && *p < 0x7F);
                if (r.type == SMTPD_SASL_REPLY_CONT) {
                        CHECK(r.challenge >= line && r.challenge + r.challenge_len <= line + size);
                        CHECK(sasl_base64_valid(r.challenge, r.challenge_len));
                        CHECK(!memchr(r.challenge, '\t', r.challenge_len));
                }
                if (r.type == SMTPD_SASL_REPLY_OK && r.user[0])
                        CHECK(memmem(line, size, "user=", 5) != NULL);
        }
        if (sasl_base64_valid(line, size))
                CHECK(size % 4 == 0 && !memchr(line, '\n', size) && !memchr(line, '\t', size));
        (void) sasl_mechanism(line, size);
        return 0;
}
