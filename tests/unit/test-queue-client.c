/* test-queue-client.c: the listing formats that mailq, postqueue and postbusctl share are Postfix's to the
 * byte (postqueue -p with long queue IDs, postqueue -j), and the small parsers of the queue commands. */
#include <stdlib.h>
#include <time.h>

#include "tests.h"
#include "macro.h"
#include "../../src/postbusctl/queue-client.h"

static ListedRecipient rcpts1[] = {
        { (char *) "bob@example.org", (char *) "connect to mx.example.org[192.0.2.1]:25: Connection refused" },
        { (char *) "carol@example.org", (char *) "connect to mx.example.org[192.0.2.1]:25: Connection refused" },
        { (char *) "dave@example.org", (char *) "mailbox full" },
};
static ListedRecipient rcpts2[] = {
        { (char *) "carol@example.org", (char *) "" },
};
static ListedMessage messages[] = {
        { (char *) "6925A7F30B81C3A4D2E1", (char *) "deferred", (char *) "alice@example.org", 1700000000000000ULL, 1500,
          rcpts1, 3 },
        { (char *) "6925A7F30B81C3A5D2E1", (char *) "active", (char *) "", 1700000000654321ULL, 10, rcpts2, 1 },
};

static char *print(void (*f)(FILE *, const QueueList *), const QueueList *l) {
        char *buf = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&buf, &size);

        ASSERT_TRUE(out);
        f(out, l);
        ASSERT_OK(fclose(out));
        return buf;
}

static void test_table(void) {
        QueueList empty = {}, l = { messages, ELEMENTSOF(messages) };
        char *out;

        out = print(queue_print_table, &empty);
        ASSERT_STREQ(out, "Mail queue is empty\n");
        free(out);

        out = print(queue_print_table, &l);
        ASSERT_STREQ(out,
                "------Queue ID------- --Size-- ----Arrival Time---- --Sender/Recipient------\n"
                "6925A7F30B81C3A4D2E1      1500 Tue Nov 14 22:13:20 alice@example.org\n"
                "                 (connect to mx.example.org[192.0.2.1]:25: Connection refused)\n"
                "                                                   bob@example.org\n"
                "                                                   carol@example.org\n"
                "                                                                (mailbox full)\n"
                "                                                   dave@example.org\n"
                "\n"
                "6925A7F30B81C3A5D2E1*       10 Tue Nov 14 22:13:20 MAILER-DAEMON\n"
                "                                                   carol@example.org\n"
                "\n"
                "-- 1 Kbytes in 2 Requests.\n");
        free(out);

        /* One message: "Request", singular; a reason too long for the line starts at its left edge. */
        char long_reason[200];
        memset(long_reason, 'x', sizeof long_reason - 1);
        long_reason[sizeof long_reason - 1] = '\0';
        ListedRecipient r = { (char *) "bob@example.org", long_reason };
        ListedMessage m = { (char *) "6925A7F30B81C3A4D2E1", (char *) "hold", (char *) "a@b", 1700000000000000ULL, 2048,
                           &r, 1 };
        QueueList one = { &m, 1 };
        out = print(queue_print_table, &one);
        ASSERT_TRUE(strstr(out, "\n6925A7F30B81C3A4D2E1!     2048 "));
        ASSERT_TRUE(strstr(out, "\n(xxxxxxxx"));
        ASSERT_TRUE(strstr(out, "\n-- 2 Kbytes in 1 Request.\n"));
        free(out);
}

static void test_json(void) {
        QueueList l = { messages, ELEMENTSOF(messages) };
        char *out = print(queue_print_json, &l);

        ASSERT_STREQ(out,
                "{\"queue_name\": \"deferred\", \"queue_id\": \"6925A7F30B81C3A4D2E1\", \"arrival_time\": 1700000000, "
                "\"message_size\": 1500, \"forced_expire\": false, \"sender\": \"alice@example.org\", \"recipients\": "
                "[{\"address\": \"bob@example.org\", \"delay_reason\": \"connect to mx.example.org[192.0.2.1]:25: "
                "Connection refused\"}, {\"address\": \"carol@example.org\", \"delay_reason\": \"connect to "
                "mx.example.org[192.0.2.1]:25: Connection refused\"}, {\"address\": \"dave@example.org\", "
                "\"delay_reason\": \"mailbox full\"}]}\n"
                "{\"queue_name\": \"active\", \"queue_id\": \"6925A7F30B81C3A5D2E1\", \"arrival_time\": 1700000000, "
                "\"message_size\": 10, \"forced_expire\": false, \"sender\": \"MAILER-DAEMON\", \"recipients\": "
                "[{\"address\": \"carol@example.org\"}]}\n");
        free(out);
}

static void test_read_ids(void) {
        const char *in = "  6925A7F30B81C3A4D2E1\n\n6925A7F30B81C3A5D2E1  \n\t\nlast-without-newline";
        FILE *f = fmemopen((void *) in, strlen(in), "r");
        char **ids = NULL;

        ASSERT_TRUE(f);
        ASSERT_OK(queue_read_ids(f, &ids));
        ASSERT_OK(fclose(f));
        ASSERT_STREQ(ids[0], "6925A7F30B81C3A4D2E1");
        ASSERT_STREQ(ids[1], "6925A7F30B81C3A5D2E1");
        ASSERT_STREQ(ids[2], "last-without-newline");
        ASSERT_TRUE(ids[3] == NULL);
        strv_free(ids);

        f = fmemopen((void *) "\n\n", 2, "r");
        ASSERT_TRUE(f);
        ASSERT_OK(queue_read_ids(f, &ids));
        ASSERT_OK(fclose(f));
        ASSERT_TRUE(ids && ids[0] == NULL);
        strv_free(ids);
}

static void test_parse_age(void) {
        uint64_t usec = 0;

        ASSERT_OK(queue_parse_age("90", &usec));
        ASSERT_EQ(usec, 90000000ULL);
        ASSERT_OK(queue_parse_age("2h", &usec));
        ASSERT_EQ(usec, 7200000000ULL);
        ASSERT_TRUE(queue_parse_age("soon", &usec) < 0);
        ASSERT_TRUE(queue_parse_age("", &usec) < 0);
}

int main(void) {
        /* The table shows local time, as Postfix's does. */
        ASSERT_OK(setenv("TZ", "UTC", 1));
        tzset();
        RUN(table);
        RUN(json);
        RUN(read_ids);
        RUN(parse_age);
        return EXIT_SUCCESS;
}
