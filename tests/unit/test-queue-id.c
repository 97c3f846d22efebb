/* test-queue-id.c: queue IDs are valid, unique and sorted by arrival; bad ones are refused. */
#include <fcntl.h>
#include <sys/stat.h>

#include "tests.h"
#include "macro.h"
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
        ASSERT_TRUE(queue_id_valid("6A1B2C3DF423FA7B3C91"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF4240A7B3C91"));  /* 1000000 microseconds */
        ASSERT_TRUE(!queue_id_valid("6a1b2c3df423fa7b3c91"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF423FA7B3C9"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF423FA7B3C917"));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF423FA7B"));      /* the old, shorter form */
        ASSERT_TRUE(!queue_id_valid("../../etc/passwd/../..."));
        ASSERT_TRUE(!queue_id_valid("6A1B2C3DF423F/7B3C91"));
        ASSERT_TRUE(!queue_id_valid(""));
        ASSERT_TRUE(!queue_id_valid(NULL));
}

TEST(time) {
        ASSERT_EQ(queue_id_usec("0000000100001FFFFFFF"), 1000001);
}

/* IDs made in one microsecond differ in their 28 random bits: among many, no two are the same. */
static int cmp(const void *a, const void *b) {
        return strcmp(a, b);
}

TEST(random_bits) {
        static char ids[20000][QUEUE_ID_SIZE];
        unsigned same = 0;

        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                ASSERT_OK(queue_id_new(ids[i]));
        qsort(ids, ELEMENTSOF(ids), QUEUE_ID_SIZE, cmp);
        for (size_t i = 1; i < ELEMENTSOF(ids); i++)
                same += streq(ids[i - 1], ids[i]);
        /* 12 random bits, as before, would collide here: many IDs share their microsecond. */
        ASSERT_EQ(same, 0);
}

/* A rename never replaces a file: a taken name gets a fresh ID. */
TEST(rename_noreplace) {
        char tmpl[] = "/tmp/test-queue-id-XXXXXX", id[QUEUE_ID_SIZE], first[QUEUE_ID_SIZE];
        int dfd, fd;

        ASSERT_TRUE(mkdtemp(tmpl));
        dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_TRUE(dfd >= 0);
        ASSERT_OK(queue_id_new(id));
        memcpy(first, id, sizeof id);
        fd = openat(dfd, "a.tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "first", 5), 5);
        close(fd);
        ASSERT_EQ(queue_id_rename(dfd, "a.tmp", dfd, id), 0);
        ASSERT_STREQ(id, first);

        /* a second file wants the same ID */
        fd = openat(dfd, "b.tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        close(fd);
        ASSERT_EQ(queue_id_rename(dfd, "b.tmp", dfd, id), 1);
        ASSERT_TRUE(queue_id_valid(id));
        ASSERT_TRUE(!streq(id, first));
        /* the first is intact */
        char buf[8] = {};
        fd = openat(dfd, first, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(read(fd, buf, sizeof buf), 5);
        ASSERT_STREQ(buf, "first");
        close(fd);

        /* the source may be the ID buffer itself */
        char moved[QUEUE_ID_SIZE];
        memcpy(moved, first, sizeof moved);
        ASSERT_OK(mkdirat(dfd, "sub", 0700));
        int sub = openat(dfd, "sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_TRUE(sub >= 0);
        ASSERT_EQ(queue_id_rename(dfd, moved, sub, moved), 0);
        ASSERT_OK(unlinkat(sub, moved, 0));
        ASSERT_OK(unlinkat(dfd, id, 0));
        ASSERT_OK(unlinkat(dfd, "sub", AT_REMOVEDIR));
        close(sub);
        close(dfd);
        ASSERT_OK(rmdir(tmpl));
}

int main(void) {
        RUN(new_ids);
        RUN(validation);
        RUN(time);
        RUN(random_bits);
        RUN(rename_noreplace);
        return 0;
}
