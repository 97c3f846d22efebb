/* fuzz-smtpd-restrictions.c: what a client controls in the restriction checks: a HELO name or a mail
 * address (their validity, and the access(5) lookup keys made from them), and what a table may hold (its
 * result text, which goes into a reply). The first byte picks which. */
#include "../../src/smtpd/smtpd-restrictions.h"
#include "fuzz.h"

static void check_keys(char **keys) {
        CHECK(keys && keys[0]);
        for (char **k = keys; *k; k++) {
                CHECK(strlen(*k) > 0);
                for (const char *p = *k; *p; p++)
                        CHECK(!(*p >= 'A' && *p <= 'Z'));
        }
        strv_free(keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[ADDRESS_MAX + 1], **keys = NULL;
        SmtpdAccessResult a;
        SmtpdDnsblFilter f;
        size_t n;

        if (size < 1)
                return 0;
        n = MIN(size - 1, sizeof text - 1);
        memcpy(text, data + 1, n);
        text[n] = '\0';
        if (strlen(text) == 0)
                return 0;

        switch (data[0] % 4) {
        case 0:
                /* a HELO name: fully qualified implies valid; the keys are the name and its parents */
                CHECK(!smtpd_helo_fqdn(text) || smtpd_helo_valid(text));
                if (smtpd_access_domain_keys(text, &keys) >= 0 && keys[0])
                        check_keys(keys);
                else
                        strv_free(keys);
                break;
        case 1:
                /* a sender or recipient address */
                (void) smtpd_address_fqdn(text);
                CHECK(smtpd_access_address_keys(text, &keys) >= 0);
                check_keys(keys);
                break;
        case 2:
                /* a table's value: a reply made of it is printable ASCII of a known class; the argument of a
                 * message-wide action is printable ASCII too, in the form its action needs */
                if (smtpd_access_result_parse(text, &a) >= 0) {
                        CHECK(a.action >= 0 && a.action < _SMTPD_ACCESS_ACTION_MAX);
                        for (const char *p = a.text; *p; p++)
                                CHECK(*p >= 0x20 && *p < 0x7F);
                        if (a.action == SMTPD_ACCESS_REJECT) {
                                CHECK(a.code >= 400 && a.code <= 599);
                                CHECK(a.dsn[0] == (char) ('0' + a.code / 100));
                        }
                        if (a.action == SMTPD_ACCESS_FILTER)
                                CHECK(strchr(a.text, ':') && a.text[0] != ':' && !strchr(a.text, ' '));
                        if (a.action == SMTPD_ACCESS_REDIRECT)
                                CHECK(strchr(a.text, '@') && !strchr(a.text, ' '));
                        if (a.action == SMTPD_ACCESS_PREPEND)
                                CHECK(strchr(a.text, ':') && a.text[0] != ':' && a.text[0] != ' ');
                }
                break;
        default:
                if (smtpd_dnsbl_filter_parse(text, &f) >= 0)
                        for (unsigned i = 0; i < 4; i++)
                                CHECK(f.n[i] >= 1 && f.n[i] <= SMTPD_DNSBL_FILTER_RANGES);
                break;
        }
        return 0;
}
