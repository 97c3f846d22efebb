/* test-smtpd-dnsbl.c: reversed-address query names, DNS queries built, DNS replies parsed. */
#include <arpa/inet.h>

#include "../../src/smtpd/smtpd-dnsbl.h"
#include "tests.h"

static SmtpdAddress addr(const char *text) {
        SmtpdAddress a = {};

        if (strchr(text, ':')) {
                a.family = AF_INET6;
                ASSERT_TRUE(inet_pton(AF_INET6, text, a.bytes) == 1);
        } else {
                a.family = AF_INET;
                ASSERT_TRUE(inet_pton(AF_INET, text, a.bytes) == 1);
        }
        strcpy(a.text, text);
        return a;
}

TEST(query_name) {
        char name[SMTPD_DNS_NAME_MAX + 1], longdomain[300];
        SmtpdAddress a = addr("192.0.2.1"), b = addr("2001:db8::1"), u = { .family = AF_UNSPEC };

        ASSERT_OK(smtpd_dnsbl_query_name(&a, "zen.example", name, sizeof name));
        ASSERT_STREQ(name, "1.2.0.192.zen.example");
        ASSERT_OK(smtpd_dnsbl_query_name(&a, "zen.example.", name, sizeof name));
        ASSERT_STREQ(name, "1.2.0.192.zen.example");
        ASSERT_OK(smtpd_dnsbl_query_name(&b, "bl.test", name, sizeof name));
        ASSERT_STREQ(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test");
        ASSERT_ERR(smtpd_dnsbl_query_name(&u, "bl.test", name, sizeof name), EAFNOSUPPORT);
        ASSERT_ERR(smtpd_dnsbl_query_name(&a, "", name, sizeof name), EINVAL);
        memset(longdomain, 'a', 250);
        longdomain[250] = '\0';
        ASSERT_ERR(smtpd_dnsbl_query_name(&a, longdomain, name, sizeof name), ENAMETOOLONG);
}

TEST(query_build) {
        uint8_t buf[SMTPD_DNS_UDP_MAX];
        static const uint8_t want[] = {
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                1, '2', 1, '0', 1, '0', 3, '1', '2', '7', 3, 'z', 'e', 'n', 4, 't', 'e', 's', 't', 0,
                0, 1, 0, 1,
        };
        char label[80];

        ASSERT_EQ(smtpd_dns_query_build(0x1234, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, buf, sizeof buf),
                  sizeof want);
        ASSERT_TRUE(memcmp(buf, want, sizeof want) == 0);
        ASSERT_ERR(smtpd_dns_query_build(1, "a..b", SMTPD_DNS_TYPE_A, buf, sizeof buf), EINVAL);
        ASSERT_ERR(smtpd_dns_query_build(1, "", SMTPD_DNS_TYPE_A, buf, sizeof buf), EINVAL);
        memset(label, 'x', 64);
        strcpy(label + 64, ".test");
        ASSERT_ERR(smtpd_dns_query_build(1, label, SMTPD_DNS_TYPE_A, buf, sizeof buf), ENAMETOOLONG);
        ASSERT_ERR(smtpd_dns_query_build(1, "a.test", SMTPD_DNS_TYPE_A, buf, 16), ENOBUFS);
}

/* A reply: the query with the header changed, then the given records. */
static size_t make_reply(uint8_t *buf, uint16_t id, const char *name, uint16_t type, uint8_t flags2,
                         uint8_t rcode, unsigned ancount, const uint8_t *records, size_t records_len) {
        int n = smtpd_dns_query_build(id, name, type, buf, SMTPD_DNS_UDP_MAX);

        ASSERT_TRUE(n > 0);
        buf[2] = 0x81 | flags2;
        buf[3] = 0x80 | rcode;
        buf[7] = (uint8_t) ancount;
        if (records_len > 0)
                memcpy(buf + n, records, records_len);
        return (size_t) n + records_len;
}

TEST(reply_a) {
        uint8_t buf[SMTPD_DNS_UDP_MAX];
        /* two A records whose owner is a pointer to the question's name (offset 12) */
        static const uint8_t rr[] = {
                0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2,
                0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 10,
        };
        SmtpdDnsReply r;
        size_t len = make_reply(buf, 7, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, 0, 0, 2, rr, sizeof rr);

        ASSERT_OK(smtpd_dns_reply_parse(buf, len, 7, "2.0.0.127.ZEN.test.", SMTPD_DNS_TYPE_A, &r));
        ASSERT_EQ(r.rcode, 0);
        ASSERT_EQ(r.n_a, 2);
        ASSERT_EQ(r.a[0][3], 2);
        ASSERT_EQ(r.a[1][3], 10);
        ASSERT_TRUE(!r.has_txt);

        /* another id, another name, another type: not our reply */
        ASSERT_ERR(smtpd_dns_reply_parse(buf, len, 8, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r), ESRCH);
        ASSERT_ERR(smtpd_dns_reply_parse(buf, len, 7, "3.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r), ESRCH);
        ASSERT_ERR(smtpd_dns_reply_parse(buf, len, 7, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_TXT, &r), ESRCH);
        /* a query (QR clear) is no reply */
        buf[2] &= 0x7F;
        ASSERT_ERR(smtpd_dns_reply_parse(buf, len, 7, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r), ESRCH);
        buf[2] |= 0x80;
        /* cut short anywhere: malformed */
        for (size_t cut = 0; cut < len; cut++) {
                int k = smtpd_dns_reply_parse(buf, cut, 7, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r);
                ASSERT_TRUE(k == -EBADMSG || k == -ESRCH);
        }
        /* leftover bytes */
        buf[len] = 0;
        ASSERT_ERR(smtpd_dns_reply_parse(buf, len + 1, 7, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r), EBADMSG);
}

TEST(reply_nxdomain_and_loop) {
        uint8_t buf[SMTPD_DNS_UDP_MAX];
        /* an owner name that points at itself */
        size_t n = make_reply(buf, 9, "1.0.0.127.zen.test", SMTPD_DNS_TYPE_A, 0, SMTPD_DNS_RCODE_NXDOMAIN, 0,
                              NULL, 0);
        static const uint8_t loop[] = { 0xC0, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2 };
        SmtpdDnsReply r;

        ASSERT_OK(smtpd_dns_reply_parse(buf, n, 9, "1.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r));
        ASSERT_EQ(r.rcode, SMTPD_DNS_RCODE_NXDOMAIN);
        ASSERT_EQ(r.n_a, 0);

        n = make_reply(buf, 9, "1.0.0.127.zen.test", SMTPD_DNS_TYPE_A, 0, 0, 1, loop, sizeof loop);
        buf[n - sizeof loop + 1] = (uint8_t) (n - sizeof loop);
        ASSERT_ERR(smtpd_dns_reply_parse(buf, n, 9, "1.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r), EBADMSG);
}

TEST(reply_txt) {
        uint8_t buf[SMTPD_DNS_UDP_MAX];
        static const uint8_t rr[] = {
                0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 13,
                5, 'l', 'i', 's', 't', 'e',
                6, 'd', '\n', 'h', 'e', 'r', 'e',
        };
        SmtpdDnsReply r;
        size_t len = make_reply(buf, 3, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_TXT, 0, 0, 1, rr, sizeof rr);

        ASSERT_OK(smtpd_dns_reply_parse(buf, len, 3, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_TXT, &r));
        ASSERT_TRUE(r.has_txt);
        ASSERT_STREQ(r.txt, "listed?here");

        /* a character-string longer than the record */
        buf[len - 7] = 9;
        ASSERT_ERR(smtpd_dns_reply_parse(buf, len, 3, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_TXT, &r), EBADMSG);
}

TEST(reply_truncated) {
        uint8_t buf[SMTPD_DNS_UDP_MAX];
        static const uint8_t rr[] = { 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2, 0xC0, 12, 0 };
        SmtpdDnsReply r;
        /* TC set and the second record cut off: what came whole is kept */
        size_t len = make_reply(buf, 5, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, 0x02, 0, 2, rr, sizeof rr);

        ASSERT_OK(smtpd_dns_reply_parse(buf, len, 5, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r));
        ASSERT_TRUE(r.truncated);
        ASSERT_EQ(r.n_a, 1);
        buf[2] &= (uint8_t) ~0x02;
        ASSERT_ERR(smtpd_dns_reply_parse(buf, len, 5, "2.0.0.127.zen.test", SMTPD_DNS_TYPE_A, &r), EBADMSG);
}

TEST(filter) {
        SmtpdDnsblFilter f;

        ASSERT_OK(smtpd_dnsbl_filter_parse("127.0.0.2", &f));
        ASSERT_TRUE(smtpd_dnsbl_filter_match(&f, (const uint8_t[]) { 127, 0, 0, 2 }));
        ASSERT_TRUE(!smtpd_dnsbl_filter_match(&f, (const uint8_t[]) { 127, 0, 0, 3 }));
        ASSERT_OK(smtpd_dnsbl_filter_parse("127.0.[0;1].[2..11;20]", &f));
        ASSERT_TRUE(smtpd_dnsbl_filter_match(&f, (const uint8_t[]) { 127, 0, 1, 11 }));
        ASSERT_TRUE(smtpd_dnsbl_filter_match(&f, (const uint8_t[]) { 127, 0, 0, 20 }));
        ASSERT_TRUE(!smtpd_dnsbl_filter_match(&f, (const uint8_t[]) { 127, 0, 0, 12 }));
        ASSERT_TRUE(!smtpd_dnsbl_filter_match(&f, (const uint8_t[]) { 127, 0, 2, 2 }));
        ASSERT_TRUE(!smtpd_dnsbl_filter_match(&f, (const uint8_t[]) { 128, 0, 0, 2 }));

        ASSERT_ERR(smtpd_dnsbl_filter_parse("127.0.0", &f), EINVAL);
        ASSERT_ERR(smtpd_dnsbl_filter_parse("127.0.0.256", &f), EINVAL);
        ASSERT_ERR(smtpd_dnsbl_filter_parse("127.0.0.2.", &f), EINVAL);
        ASSERT_ERR(smtpd_dnsbl_filter_parse("127.0.0.[11..2]", &f), EINVAL);
        ASSERT_ERR(smtpd_dnsbl_filter_parse("127.0.0.[2..11", &f), EINVAL);
        ASSERT_ERR(smtpd_dnsbl_filter_parse("127.0.0.2..3", &f), EINVAL);
        ASSERT_ERR(smtpd_dnsbl_filter_parse("127.0.0.[1;2;3;4;5;6;7;8;9]", &f), EINVAL);
        ASSERT_ERR(smtpd_dnsbl_filter_parse("", &f), EINVAL);
}

int main(void) {
        RUN(query_name);
        RUN(filter);
        RUN(query_build);
        RUN(reply_a);
        RUN(reply_nxdomain_and_loop);
        RUN(reply_txt);
        RUN(reply_truncated);
        return 0;
}
