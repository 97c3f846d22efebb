/* fuzz-smtpd-dns-reply.c: a datagram from the network as the reply to a DNS blocklist query. The first
 * byte picks the query type and whether the reply's own ID is taken as ours (so that the parser goes past
 * the header); the question is the one smtpd asks. */
#include "../../src/smtpd/smtpd-dnsbl.h"
#include "fuzz.h"

#define QNAME "2.0.0.127.zen.test"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint16_t type, id = 0;
        SmtpdDnsReply r;
        int k;

        if (size < 1)
                return 0;
        type = data[0] & 1 ? SMTPD_DNS_TYPE_TXT : SMTPD_DNS_TYPE_A;
        data++;
        size--;
        if (size >= 2 && !(data[-1] & 2))
                id = (uint16_t) (data[0] << 8 | data[1]);

        k = smtpd_dns_reply_parse(data, size, id, QNAME, type, &r);
        CHECK(k == 0 || k == -EBADMSG || k == -ESRCH);
        if (k == 0) {
                CHECK(r.n_a <= SMTPD_DNS_A_MAX);
                CHECK(r.rcode < 16);
                CHECK(strlen(r.txt) < SMTPD_DNS_TXT_MAX);
                for (const char *p = r.txt; *p; p++)
                        CHECK(*p >= 0x20 && *p < 0x7F);
                CHECK(type == SMTPD_DNS_TYPE_A || r.n_a == 0);
        }
        return 0;
}
