/* test-smtpd-anvil.c: smtpd's per-client counters: concurrency, rates per time unit, and the bound on
 * the table's size. */
#include <errno.h>

#include "tests.h"
#include "../../src/smtpd/smtpd-anvil.h"

#define SEC 1000000ULL

TEST(counts) {
        SmtpdAnvil *a;
        SmtpdAnvilClient *c1, *c2, *d;

        ASSERT_OK(smtpd_anvil_new(100, 60 * SEC, &a));
        ASSERT_OK(smtpd_anvil_connect(a, "192.0.2.1", 0, &c1));
        ASSERT_OK(smtpd_anvil_connect(a, "192.0.2.1", 1, &c2));
        ASSERT_TRUE(c1 == c2);
        ASSERT_EQ(c1->connections, 2);
        ASSERT_EQ(c1->connection_rate, 2);
        ASSERT_OK(smtpd_anvil_connect(a, "2001:db8::1", 1, &d));
        ASSERT_TRUE(d != c1);
        ASSERT_EQ(d->connections, 1);
        ASSERT_EQ(smtpd_anvil_size(a), 2);

        ASSERT_EQ(smtpd_anvil_message(a, c1, 2), 1);
        ASSERT_EQ(smtpd_anvil_message(a, c1, 3), 2);
        ASSERT_EQ(smtpd_anvil_recipient(a, c1, 3), 1);
        /* A new time unit starts the rates again; the sessions open stay counted. */
        ASSERT_EQ(smtpd_anvil_message(a, c1, 61 * SEC), 1);
        ASSERT_EQ(c1->connection_rate, 0);
        ASSERT_EQ(c1->connections, 2);

        smtpd_anvil_disconnect(a, c1, 62 * SEC);
        ASSERT_EQ(c1->connections, 1);
        smtpd_anvil_disconnect(a, c1, 62 * SEC);
        /* Idle, but its time unit (from 61 s) is not over: kept, and counted on. */
        ASSERT_EQ(smtpd_anvil_size(a), 2);
        ASSERT_OK(smtpd_anvil_connect(a, "192.0.2.1", 63 * SEC, &c1));
        ASSERT_EQ(c1->connection_rate, 1);
        ASSERT_EQ(c1->message_rate, 1);
        smtpd_anvil_disconnect(a, c1, 63 * SEC);
        smtpd_anvil_disconnect(a, d, 63 * SEC);
        /* Both idle and their time units over: the next connection drops them. */
        ASSERT_OK(smtpd_anvil_connect(a, "192.0.2.9", 200 * SEC, &c2));
        ASSERT_EQ(smtpd_anvil_size(a), 1);
        smtpd_anvil_free(a);
}

TEST(bounded) {
        SmtpdAnvil *a;
        SmtpdAnvilClient *c, *busy[100];
        char key[64];

        ASSERT_OK(smtpd_anvil_new(100, 60 * SEC, &a));
        /* Many clients, each idle at once, within one time unit: the table never grows past its limit. */
        for (unsigned i = 0; i < 1000; i++) {
                snprintf(key, sizeof key, "10.0.%u.%u", i / 256, i % 256);
                ASSERT_OK(smtpd_anvil_connect(a, key, i, &c));
                smtpd_anvil_disconnect(a, c, i);
                ASSERT_TRUE(smtpd_anvil_size(a) <= 100);
        }
        ASSERT_EQ(smtpd_anvil_size(a), 100);
        /* The most recent are kept, with their counts. */
        ASSERT_OK(smtpd_anvil_connect(a, "10.0.3.231", 1000, &c));
        ASSERT_EQ(c->connection_rate, 2);
        smtpd_anvil_disconnect(a, c, 1000);
        smtpd_anvil_free(a);

        /* Clients with a session open are never dropped: when all are busy, -ENOBUFS. */
        ASSERT_OK(smtpd_anvil_new(100, 60 * SEC, &a));
        for (unsigned i = 0; i < 100; i++) {
                snprintf(key, sizeof key, "10.1.0.%u", i);
                ASSERT_OK(smtpd_anvil_connect(a, key, 0, &busy[i]));
        }
        ASSERT_EQ(smtpd_anvil_connect(a, "10.2.0.1", 0, &c), -ENOBUFS);
        smtpd_anvil_disconnect(a, busy[7], 0);
        ASSERT_OK(smtpd_anvil_connect(a, "10.2.0.1", 0, &c));
        ASSERT_EQ(smtpd_anvil_size(a), 100);
        ASSERT_EQ(busy[8]->connections, 1);
        smtpd_anvil_free(a);
}

TEST(expire) {
        SmtpdAnvil *a;
        SmtpdAnvilClient *c, *busy;

        ASSERT_OK(smtpd_anvil_new(100, 60 * SEC, &a));
        ASSERT_OK(smtpd_anvil_connect(a, "192.0.2.1", 0, &c));
        smtpd_anvil_disconnect(a, c, 0);
        ASSERT_OK(smtpd_anvil_connect(a, "192.0.2.2", 30 * SEC, &c));
        smtpd_anvil_disconnect(a, c, 30 * SEC);
        ASSERT_OK(smtpd_anvil_connect(a, "192.0.2.3", 0, &busy));
        ASSERT_EQ(smtpd_anvil_expire(a, 59 * SEC), 3);
        /* .1's time unit is over; .2's is not; .3 has a session open. */
        ASSERT_EQ(smtpd_anvil_expire(a, 60 * SEC), 2);
        ASSERT_EQ(smtpd_anvil_expire(a, 90 * SEC), 1);
        smtpd_anvil_disconnect(a, busy, 90 * SEC);
        ASSERT_EQ(smtpd_anvil_expire(a, 90 * SEC), 0);
        smtpd_anvil_free(a);
}

int main(void) {
        RUN(counts);
        RUN(bounded);
        RUN(expire);
        return 0;
}
