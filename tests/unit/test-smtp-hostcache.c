/* test-smtp-hostcache.c: the smtp role's host cache: within one MX preference, addresses that greeted
 * recently come first, fastest first; addresses that timed out or refused go after all others. */
#include <arpa/inet.h>

#include "tests.h"
#include "macro.h"
#include "src/smtp/smtp.h"

#define MINUTES(n) ((uint64_t) (n) * 60 * USEC_PER_SEC)

static SmtpAddress address(const char *ip, unsigned preference) {
        SmtpAddress a = { .preference = preference };

        snprintf(a.host, sizeof a.host, "mx-%s", ip);
        a.sockaddr.in.sin_family = AF_INET;
        a.sockaddr.in.sin_port = htons(25);
        ASSERT_EQ(inet_pton(AF_INET, ip, &a.sockaddr.in.sin_addr), 1);
        a.socklen = sizeof a.sockaddr.in;
        snprintf(a.text, sizeof a.text, "%s", ip);
        return a;
}

static SmtpAddress address6(const char *ip, unsigned preference) {
        SmtpAddress a = { .preference = preference };

        snprintf(a.host, sizeof a.host, "mx-%s", ip);
        a.sockaddr.in6.sin6_family = AF_INET6;
        a.sockaddr.in6.sin6_port = htons(25);
        ASSERT_EQ(inet_pton(AF_INET6, ip, &a.sockaddr.in6.sin6_addr), 1);
        a.socklen = sizeof a.sockaddr.in6;
        snprintf(a.text, sizeof a.text, "%s", ip);
        return a;
}

static void check_order(const SmtpAddress *a, size_t n, const char *const *expected) {
        for (size_t i = 0; i < n; i++)
                ASSERT_STREQ(a[i].text, expected[i]);
}

TEST(unknown_keep_order) {
        SmtpAddress a[3] = { address("192.0.2.1", 10), address("192.0.2.2", 10), address("192.0.2.3", 20) };

        smtp_hostcache_sort(a, 3, MINUTES(5), false);
        check_order(a, 3, (const char *const[]) { "192.0.2.1", "192.0.2.2", "192.0.2.3" });
}

TEST(failing_last_fast_first) {
        SmtpAddress a[4] = { address("198.51.100.1", 10), address("198.51.100.2", 10), address("198.51.100.3", 10),
                             address("198.51.100.4", 20) };

        /* .1 timed out; .3 greeted faster than .2; .4 (a worse preference) greeted fastest of all */
        smtp_hostcache_fail(a + 0, MINUTES(5), "TESTQUEUEID", "connection timed out");
        smtp_hostcache_ok(a + 1, 300 * USEC_PER_MSEC);
        smtp_hostcache_ok(a + 2, 20 * USEC_PER_MSEC);
        smtp_hostcache_ok(a + 3, 1 * USEC_PER_MSEC);
        ASSERT_TRUE(smtp_hostcache_failing(a + 0));
        ASSERT_TRUE(!smtp_hostcache_failing(a + 1));
        /* what qmgr is told: the reason, and the end in CLOCK_REALTIME */
        const char *reason = NULL;
        uint64_t until = smtp_hostcache_failing_until(a + 0, &reason), now = now_realtime_usec();
        ASSERT_TRUE(until > now + MINUTES(4) && until <= now + MINUTES(5));
        ASSERT_TRUE(reason && streq(reason, "connection timed out"));
        ASSERT_TRUE(smtp_hostcache_failing_until(a + 1, NULL) == 0);
        smtp_hostcache_sort(a, 4, MINUTES(5), false);
        check_order(a, 4, (const char *const[]) { "198.51.100.3", "198.51.100.2", "198.51.100.4", "198.51.100.1" });

        /* a success takes it out of the cache; a cache time of 0 changes nothing */
        smtp_hostcache_ok(a + 3, 500 * USEC_PER_MSEC);
        ASSERT_TRUE(!smtp_hostcache_failing(a + 3));
        smtp_hostcache_fail(a + 0, MINUTES(5), "TESTQUEUEID", "Connection refused");
        smtp_hostcache_sort(a, 4, 0, false);
        check_order(a, 4, (const char *const[]) { "198.51.100.3", "198.51.100.2", "198.51.100.4", "198.51.100.1" });
}

TEST(family_bound_keeps_preferred_family_first) {
        /* smtp_address_preference=ipv6 put the IPv6 address first; the IPv4 one greeted fast before */
        SmtpAddress a[2] = { address6("2001:db8::7", 10), address("192.0.2.77", 10) };

        smtp_hostcache_ok(a + 1, 1 * USEC_PER_MSEC);
        smtp_hostcache_sort(a, 2, MINUTES(5), true);
        check_order(a, 2, (const char *const[]) { "2001:db8::7", "192.0.2.77" });
        smtp_hostcache_sort(a, 2, MINUTES(5), false);
        check_order(a, 2, (const char *const[]) { "192.0.2.77", "2001:db8::7" });
}

TEST(cache_time_zero_never_fails) {
        SmtpAddress a = address("203.0.113.9", 0);

        smtp_hostcache_fail(&a, 0, "TESTQUEUEID", "Connection refused");
        ASSERT_TRUE(!smtp_hostcache_failing(&a));
}

int main(void) {
        RUN(unknown_keep_order);
        RUN(failing_last_fast_first);
        RUN(family_bound_keeps_preferred_family_first);
        RUN(cache_time_zero_never_fails);
        return 0;
}
