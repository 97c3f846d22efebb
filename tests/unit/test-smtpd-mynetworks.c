/* test-smtpd-mynetworks.c: client addresses and the CIDR matching of $mynetworks. */
#include <netinet/in.h>
#include <sys/un.h>

#include "tests.h"
#include "../../src/smtpd/smtpd-mynetworks.h"

static SmtpdAddress v4(const char *s) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(2525) };
        SmtpdAddress a;

        ASSERT_EQ(inet_pton(AF_INET, s, &sa.sin_addr), 1);
        ASSERT_OK(smtpd_address_from_sockaddr((struct sockaddr *) &sa, sizeof sa, &a));
        return a;
}

static SmtpdAddress v6(const char *s) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(25) };
        SmtpdAddress a;

        ASSERT_EQ(inet_pton(AF_INET6, s, &sa.sin6_addr), 1);
        ASSERT_OK(smtpd_address_from_sockaddr((struct sockaddr *) &sa, sizeof sa, &a));
        return a;
}

TEST(address) {
        SmtpdAddress a = v4("192.0.2.1");

        ASSERT_EQ(a.family, AF_INET);
        ASSERT_STREQ(a.text, "192.0.2.1");
        ASSERT_EQ(a.port, 2525);

        a = v6("2001:db8::1");
        ASSERT_EQ(a.family, AF_INET6);
        ASSERT_STREQ(a.text, "2001:db8::1");
        ASSERT_EQ(a.port, 25);

        /* From a dual-stack socket, an IPv4 client is an IPv4 address. */
        a = v6("::ffff:127.0.0.1");
        ASSERT_EQ(a.family, AF_INET);
        ASSERT_STREQ(a.text, "127.0.0.1");
        ASSERT_EQ(a.port, 25);

        /* Not IPv4-mapped: an IPv4-compatible address and a NAT64 one stay IPv6. */
        ASSERT_EQ(v6("::127.0.0.1").family, AF_INET6);
        ASSERT_EQ(v6("64:ff9b::7f00:1").family, AF_INET6);

        struct sockaddr_un un = { .sun_family = AF_UNIX };
        ASSERT_OK(smtpd_address_from_sockaddr((struct sockaddr *) &un, sizeof un, &a));
        ASSERT_EQ(a.family, AF_UNSPEC);
        ASSERT_STREQ(a.text, "unknown");

        /* A truncated address is not read past its length. */
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
        ASSERT_OK(smtpd_address_from_sockaddr((struct sockaddr *) &in6, sizeof(struct sockaddr_in), &a));
        ASSERT_EQ(a.family, AF_UNSPEC);
}

static SmtpdNetwork network(const char *s, int expected) {
        SmtpdNetwork n = {};
        ASSERT_EQ(smtpd_network_parse(s, &n), expected);
        return n;
}

TEST(network_parse) {
        SmtpdNetwork n;

        n = network("127.0.0.0/8", 0);
        ASSERT_EQ(n.family, AF_INET);
        ASSERT_EQ(n.prefixlen, 8);
        ASSERT_EQ(n.bytes[0], 127);
        ASSERT_EQ(network("192.0.2.1", 0).prefixlen, 32);
        ASSERT_EQ(network("0.0.0.0/0", 0).prefixlen, 0);
        n = network("[::1]/128", 0);
        ASSERT_EQ(n.family, AF_INET6);
        ASSERT_EQ(n.prefixlen, 128);
        ASSERT_EQ(n.bytes[15], 1);
        ASSERT_EQ(network("[::1]", 0).prefixlen, 128);
        ASSERT_EQ(network("::1", 0).prefixlen, 128);
        ASSERT_EQ(network("[2001:db8::]/32", 0).prefixlen, 32);
        ASSERT_EQ(network("2001:db8::/32", 0).prefixlen, 32);
        ASSERT_EQ(network("::/0", 0).prefixlen, 0);
        ASSERT_EQ(network("192.168.4.0/22", 0).prefixlen, 22);
        n = network("[::ffff:127.0.0.0]/104", 0);
        ASSERT_EQ(n.family, AF_INET);
        ASSERT_EQ(n.prefixlen, 8);
        ASSERT_EQ(n.bytes[0], 127);
        ASSERT_EQ(network("[::ffff:0.0.0.0]/96", 0).prefixlen, 0);
        ASSERT_EQ(network("[::ffff:0:0]/96", 0).family, AF_INET);
        ASSERT_EQ(network("[::fffe:0:0]/95", 0).family, AF_INET6);
        network("[::ffff:127.0.0.1]/104", -EDOM);

        network("10.0.0.1/8", -EDOM);
        network("192.168.5.0/22", -EDOM);
        network("[2001:db8::1]/64", -EDOM);
        network("10.0.0.0/33", -EINVAL);
        network("[::]/129", -EINVAL);
        network("10.0.0.0/", -EINVAL);
        network("10.0.0.0/8/8", -EINVAL);
        network("10.0.0.0/+8", -EINVAL);
        network("10.0.0.0/0008", -EINVAL);
        network("/8", -EINVAL);
        network("", -EINVAL);
        network("[]", -EINVAL);
        network("[::1", -EINVAL);
        network("::1]", -EINVAL);
        network("[127.0.0.1]", -EINVAL);
        network("10.0.0", -EINVAL);
        network("localhost", -EINVAL);
        network("hash:/etc/postbus/network_table", -EINVAL);
}

TEST(networks_parse) {
        SmtpdNetworks l;

        ASSERT_OK(smtpd_networks_parse("127.0.0.0/8 [::1]/128, 192.168.0.0/16,,", "test", &l));
        ASSERT_EQ(l.n, 3);
        smtpd_networks_done(&l);
        ASSERT_TRUE(l.items == NULL && l.n == 0);

        ASSERT_OK(smtpd_networks_parse("", "test", &l));
        ASSERT_EQ(l.n, 0);
        ASSERT_TRUE(!smtpd_networks_match(&l, &(SmtpdAddress) { .family = AF_INET }));
        smtpd_networks_done(&l);

        ASSERT_EQ(smtpd_networks_parse("127.0.0.0/8 example.org", "test", &l), -EINVAL);
        ASSERT_EQ(smtpd_networks_parse("127.0.0.1/8", "test", &l), -EDOM);
}

static bool match(const char *list, SmtpdAddress a) {
        SmtpdNetworks l;
        bool r;

        ASSERT_OK(smtpd_networks_parse(list, "test", &l));
        r = smtpd_networks_match(&l, &a);
        smtpd_networks_done(&l);
        return r;
}

TEST(match) {
        const char *def = "127.0.0.0/8 [::1]/128";

        ASSERT_TRUE(match(def, v4("127.0.0.1")));
        ASSERT_TRUE(match(def, v4("127.255.255.255")));
        ASSERT_TRUE(!match(def, v4("128.0.0.1")));
        ASSERT_TRUE(!match(def, v4("126.255.255.255")));
        ASSERT_TRUE(match(def, v6("::1")));
        ASSERT_TRUE(!match(def, v6("::2")));
        ASSERT_TRUE(!match(def, v6("::")));
        /* IPv4-mapped addresses match IPv4 networks, and only those. */
        ASSERT_TRUE(match(def, v6("::ffff:127.0.0.1")));
        ASSERT_TRUE(!match(def, v6("::ffff:10.0.0.1")));
        ASSERT_TRUE(!match("::/0", v6("::ffff:10.0.0.1")));
        ASSERT_TRUE(match("0.0.0.0/0", v6("::ffff:10.0.0.1")));

        /* Debian's mynetworks: an IPv4-mapped network matches the IPv4 clients it maps, however they came. */
        const char *debian = "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128";
        ASSERT_TRUE(match("[::ffff:127.0.0.0]/104", v6("::ffff:127.0.0.9")));
        ASSERT_TRUE(match("[::ffff:127.0.0.0]/104", v4("127.1.2.3")));
        ASSERT_TRUE(!match("[::ffff:127.0.0.0]/104", v6("::ffff:10.0.0.1")));
        ASSERT_TRUE(!match("[::ffff:127.0.0.0]/104", v4("128.0.0.1")));
        ASSERT_TRUE(!match("[::ffff:127.0.0.0]/104", v6("::127.0.0.1")));
        ASSERT_TRUE(match("[::ffff:192.0.2.8]", v4("192.0.2.8")));
        ASSERT_TRUE(match(debian, v6("::1")));
        ASSERT_TRUE(!match(debian, v4("192.0.2.1")));

        /* Prefixes that end inside a byte. */
        ASSERT_TRUE(match("192.168.4.0/22", v4("192.168.4.0")));
        ASSERT_TRUE(match("192.168.4.0/22", v4("192.168.7.255")));
        ASSERT_TRUE(!match("192.168.4.0/22", v4("192.168.8.0")));
        ASSERT_TRUE(!match("192.168.4.0/22", v4("192.168.3.255")));
        ASSERT_TRUE(match("10.128.0.0/9", v4("10.200.1.1")));
        ASSERT_TRUE(!match("10.128.0.0/9", v4("10.127.1.1")));
        ASSERT_TRUE(match("[2001:db8:8000::]/33", v6("2001:db8:ffff::1")));
        ASSERT_TRUE(!match("[2001:db8:8000::]/33", v6("2001:db8:7fff::1")));
        ASSERT_TRUE(match("2001:db8::1", v6("2001:db8::1")));
        ASSERT_TRUE(!match("2001:db8::1", v6("2001:db8::2")));

        /* /0 matches its whole family, not the other. */
        ASSERT_TRUE(match("0.0.0.0/0", v4("203.0.113.9")));
        ASSERT_TRUE(!match("0.0.0.0/0", v6("2001:db8::1")));
        ASSERT_TRUE(match("::/0", v6("2001:db8::1")));
        ASSERT_TRUE(!match("::/0", v4("203.0.113.9")));

        /* An address that is neither IPv4 nor IPv6 matches nothing. */
        ASSERT_TRUE(!match("0.0.0.0/0 ::/0", (SmtpdAddress) { .family = AF_UNSPEC }));
}

int main(void) {
        RUN(address);
        RUN(network_parse);
        RUN(networks_parse);
        RUN(match);
        return 0;
}
