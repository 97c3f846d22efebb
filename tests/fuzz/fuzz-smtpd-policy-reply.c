/* fuzz-smtpd-policy-reply.c: a policy server's reply as smtpd reads it (check_policy_service): whatever
 * the bytes, the reader stays within them, and an action it accepts came whole from an "action=" line of
 * the reply, non-empty, printable, within its room. */
#include <errno.h>
#include <string.h>

#include "../../src/smtpd/smtpd-policy.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        char action[SMTPD_POLICY_ACTION_MAX];
        size_t consumed = 0;
        int k;

        if (!data || size > 2 * SMTPD_POLICY_REPLY_MAX)
                return 0;
        k = smtpd_policy_reply_parse(buf, size, action, &consumed);
        CHECK(k == 0 || k == 1 || k == -EBADMSG || k == -E2BIG);
        if (k == 0)
                CHECK(size < SMTPD_POLICY_REPLY_MAX);
        if (k == 1) {
                size_t len = strlen(action);

                CHECK(len > 0 && len < SMTPD_POLICY_ACTION_MAX);
                CHECK(consumed >= len + 9 && consumed <= size && consumed <= SMTPD_POLICY_REPLY_MAX);
                CHECK(buf[consumed - 1] == '\n');
                CHECK(memmem(buf, consumed, "action=", 7) != NULL);
                CHECK(memmem(buf, consumed, action, len) != NULL);
                for (const char *p = action; *p; p++)
                        CHECK((*p >= 0x20 && *p < 0x7F) || *p == '\t');
        }
        return 0;
}
