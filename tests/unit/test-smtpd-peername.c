/* test-smtpd-peername.c: which PTR names smtpd believes, and the client name lookup when DNS is down. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "../../src/smtpd/smtpd-peername.h"
#include "tests.h"

TEST(name_valid) {
        char longlabel[80];

        ASSERT_TRUE(smtpd_peer_name_valid("mail.example.org"));
        ASSERT_TRUE(smtpd_peer_name_valid("mail.example.org."));
        ASSERT_TRUE(smtpd_peer_name_valid("host-1_a.example"));
        ASSERT_TRUE(smtpd_peer_name_valid("localhost"));
        ASSERT_TRUE(smtpd_peer_name_valid("1.2.3.example"));
        /* names that read as addresses would fool access rules keyed by address */
        ASSERT_TRUE(!smtpd_peer_name_valid("192.0.2.1"));
        ASSERT_TRUE(!smtpd_peer_name_valid("12345"));
        ASSERT_TRUE(!smtpd_peer_name_valid(""));
        ASSERT_TRUE(!smtpd_peer_name_valid("."));
        ASSERT_TRUE(!smtpd_peer_name_valid("a..b"));
        ASSERT_TRUE(!smtpd_peer_name_valid("-a.example"));
        ASSERT_TRUE(!smtpd_peer_name_valid("a-.example"));
        ASSERT_TRUE(!smtpd_peer_name_valid("a.example-"));
        ASSERT_TRUE(!smtpd_peer_name_valid("a b.example"));
        ASSERT_TRUE(!smtpd_peer_name_valid("a\\.example"));
        ASSERT_TRUE(!smtpd_peer_name_valid("a[1].example"));
        ASSERT_TRUE(!smtpd_peer_name_valid("caf\xc3\xa9.example"));
        memset(longlabel, 'a', 64);
        strcpy(longlabel + 64, ".example");
        ASSERT_TRUE(!smtpd_peer_name_valid(longlabel));
        strcpy(longlabel + 63, ".example");     /* 63 octets: the most a label may have */
        ASSERT_TRUE(smtpd_peer_name_valid(longlabel));
}

TEST(unknown) {
        SmtpdPeerName p;

        smtpd_peer_name_unknown(&p, SMTPD_PEER_TEMP);
        ASSERT_STREQ(p.name, "unknown");
        ASSERT_STREQ(p.reverse_name, "unknown");
        ASSERT_EQ(p.name_status, SMTPD_PEER_TEMP);
        ASSERT_EQ(p.reverse_status, SMTPD_PEER_TEMP);
}

static bool called;
static SmtpdPeerName result;

static void on_peer(const SmtpdPeerName *peer, void *userdata) {
        called = true;
        result = *peer;
        *(int *) userdata += 1;
}

TEST(dns_down) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t salen = sizeof sa;
        ResolverAddress lo = { .family = AF_INET };
        SmtpdAddress client = { .family = AF_INET, .bytes = { 192, 0, 2, 1 }, .text = "192.0.2.1" };
        SmtpdAddress unix_client = { .family = AF_UNSPEC, .text = "unknown" };
        SmtpdPeerLookup *l = NULL, *cancelled = NULL;
        sd_event *e = NULL;
        Resolver *r = NULL;
        int calls = 0, cancelled_calls = 0, fd;

        /* A port where nothing answers (bound and closed): the lookup ends, as a temporary failure. */
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(getsockname(fd, (struct sockaddr *) &sa, &salen));
        close(fd);
        memcpy(lo.bytes, &sa.sin_addr, 4);
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(resolver_new_with_server(e, &lo, ntohs(sa.sin_port), 200, 2, &r));

        ASSERT_ERR(smtpd_peer_lookup_start(r, &unix_client, on_peer, &calls, &l), EAFNOSUPPORT);
        ASSERT_OK(smtpd_peer_lookup_start(r, &client, on_peer, &calls, &l));
        ASSERT_OK(smtpd_peer_lookup_start(r, &client, on_peer, &cancelled_calls, &cancelled));
        cancelled = smtpd_peer_lookup_free(cancelled);
        ASSERT_TRUE(!called);   /* never from within the start */
        for (unsigned i = 0; i < 100 && !called; i++)
                ASSERT_OK(sd_event_run(e, 100 * 1000));
        ASSERT_TRUE(called);
        ASSERT_EQ(calls, 1);
        ASSERT_EQ(cancelled_calls, 0);
        ASSERT_STREQ(result.name, "unknown");
        ASSERT_STREQ(result.reverse_name, "unknown");
        ASSERT_EQ(result.reverse_status, SMTPD_PEER_TEMP);
        ASSERT_EQ(result.name_status, SMTPD_PEER_TEMP);
        smtpd_peer_lookup_free(l);
        resolver_free(r);
        sd_event_unref(e);
}

int main(void) {
        RUN(name_valid);
        RUN(unknown);
        RUN(dns_down);
        return 0;
}
