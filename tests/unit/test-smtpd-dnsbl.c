/* test-smtpd-dnsbl.c: the query names of reject_rbl_client (a reversed address) and reject_rhsbl_* (a domain),
 * and the reply filter. */
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
        char name[RESOLVER_NAME_MAX + 1], longdomain[300];
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

TEST(rhsbl_query_name) {
        char name[RESOLVER_NAME_MAX + 1], longname[300];

        ASSERT_OK(smtpd_rhsbl_query_name("bad.example", "rhsbl.test", name, sizeof name));
        ASSERT_STREQ(name, "bad.example.rhsbl.test");
        /* an address: its domain; trailing dots of either go */
        ASSERT_OK(smtpd_rhsbl_query_name("someone@mail.bad.example.", "rhsbl.test.", name, sizeof name));
        ASSERT_STREQ(name, "mail.bad.example.rhsbl.test");
        ASSERT_OK(smtpd_rhsbl_query_name("a@b@bad.example", "rhsbl.test", name, sizeof name));
        ASSERT_STREQ(name, "bad.example.rhsbl.test");
        /* nothing to ask about */
        ASSERT_ERR(smtpd_rhsbl_query_name("user@", "rhsbl.test", name, sizeof name), EINVAL);
        ASSERT_ERR(smtpd_rhsbl_query_name("user@[192.0.2.1]", "rhsbl.test", name, sizeof name), EINVAL);
        ASSERT_ERR(smtpd_rhsbl_query_name("", "rhsbl.test", name, sizeof name), EINVAL);
        ASSERT_ERR(smtpd_rhsbl_query_name("bad.example", "", name, sizeof name), EINVAL);
        ASSERT_ERR(smtpd_rhsbl_query_name("bad..example", "rhsbl.test", name, sizeof name), EINVAL);
        memset(longname, 'a', 250);
        longname[250] = '\0';
        ASSERT_ERR(smtpd_rhsbl_query_name(longname, "rhsbl.test", name, sizeof name), ENAMETOOLONG);
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
        RUN(rhsbl_query_name);
        RUN(filter);
        return 0;
}
