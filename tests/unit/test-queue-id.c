/* test-queue-id.c: queue IDs are valid, unique and sorted by arrival; bad ones are refused. */
#include "tests.h"
#include "queue-id.h"

TEST(new_ids) {
        char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE];

        ASSERT_OK(queue_id_new(a));
        ASSERT_EQ(strlen(a), QUEUE_ID_LEN);
        ASSERT_TRUE(queue_id_valid(a));
        usleep(2000);
        ASSERT_OK(queue_id_new(b));
        ASSERT_TRUE(strcmp(a, b) < 0);
        ASSERT_TRUE(queue_id_usec(b) > queue_id_usec(a));
}

TEST(validation) {
        ASSERT_TRUE(queue_id_valid("6A1B2C3DF423FA7B"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF4240A7B"));      /* 1000000 microseconds */
        ASSERT_TRUE(!queue_id_valid("6a1b2c3df423fa7b"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF423FA7"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF423FA7B7"));
        ASSERT_TRUE(!queue_id_valid("../../etc/passwd"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF423F/7B"));
        ASSERT_TRUE(!queue_id_valid(""));
        ASSERT_TRUE(!queue_id_valid(NULL));
}

TEST(time) {
        ASSERT_EQ(queue_id_usec("0000000100001FFF"), 1000001);
}

int main(void) {
        RUN(new_ids);
        RUN(validation);
        RUN(time);
        return 0;
}
