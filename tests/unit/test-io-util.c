/* test-io-util.c: whole writes and reads, sealed memory files, directory syncs. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "tests.h"
#include "io-util.h"
#include "macro.h"

TEST(write_read) {
        int fd = memfd_new("test");
        char buf[16];

        ASSERT_OK(fd);
        ASSERT_OK(write_full(fd, "hello ", 6));
        ASSERT_OK(write_full_cb("world", 5, &fd));
        ASSERT_OK(write_full_cb("", 0, &fd));
        ASSERT_OK(pread_full(fd, buf, 11, 0));
        ASSERT_TRUE(memcmp(buf, "hello world", 11) == 0);
        ASSERT_OK(pread_full(fd, buf, 5, 6));
        ASSERT_TRUE(memcmp(buf, "world", 5) == 0);
        ASSERT_ERR(pread_full(fd, buf, 12, 0), EBADMSG);        /* the file ends first */
        ASSERT_ERR(write_full(-EBADF, "x", 1), EBADF);
        close(fd);
}

TEST(memfd) {
        int fd = memfd_new("postbus-test"), seals;
        char c;

        ASSERT_OK(fd);
        ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ASSERT_OK(write_full(fd, "content", 7));
        ASSERT_OK(memfd_seal(fd));
        seals = fcntl(fd, F_GET_SEALS);
        ASSERT_EQ(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
        /* Sealed: no writes, no size changes, no seal removed; reading still works. */
        ASSERT_TRUE(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM);
        ASSERT_TRUE(ftruncate(fd, 1) < 0 && errno == EPERM);
        ASSERT_TRUE(ftruncate(fd, 100) < 0 && errno == EPERM);
        ASSERT_ERR(memfd_seal(fd), EPERM);
        ASSERT_OK(pread_full(fd, &c, 1, 6));
        ASSERT_EQ(c, 't');
        close(fd);

        /* A memory file made without sealing cannot be sealed. */
        fd = memfd_create("plain", MFD_CLOEXEC);
        ASSERT_OK(fd);
        ASSERT_ERR(memfd_seal(fd), EPERM);
        close(fd);
}

TEST(fsync_directory) {
        char dir[] = "/tmp/test-io-util-XXXXXX", path[64], sub[64];
        int fd;

        ASSERT_TRUE(mkdtemp(dir));
        (void) snprintf(path, sizeof path, "%s/file", dir);
        (void) snprintf(sub, sizeof sub, "%s/missing/file", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_OK(fd);
        close(fd);

        ASSERT_OK(fsync_directory(dir));
        ASSERT_ERR(fsync_directory(path), ENOTDIR);
        /* The directory that holds the name, whether the name exists or not ... */
        ASSERT_OK(fsync_directory_of(path));
        path[strlen(path) - 1] = 'X';
        ASSERT_OK(fsync_directory_of(path));
        /* ... and not the name itself, nor a parent further up. */
        ASSERT_ERR(fsync_directory_of(sub), ENOENT);
        ASSERT_OK(fsync_directory_of("/no-such-name-here"));    /* the root */
        ASSERT_OK(fsync_directory_of("no-such-name-here"));     /* the working directory */

        path[strlen(path) - 1] = 'e';
        ASSERT_OK(unlink(path));
        ASSERT_OK(rmdir(dir));
}

TEST(peer_fd_check) {
        char dir[] = "/tmp/test-io-util-XXXXXX", path[64];
        const char *why = NULL;
        struct stat st = {};
        int fd, ro, rw, d;

        /* Sealed at least against shrink, grow and write: accepted as content; less is refused. */
        fd = memfd_new("sealed");
        ASSERT_OK(fd);
        ASSERT_OK(write_full(fd, "abc", 3));
        ASSERT_ERR(peer_fd_check(fd, PEER_FD_SEALED, &st, &why), EPERM);
        ASSERT_TRUE(why && strstr(why, "sealed"));
        ASSERT_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE));
        ASSERT_ERR(peer_fd_check(fd, PEER_FD_SEALED, &st, &why), EPERM);        /* may still grow */
        ASSERT_EQ(st.st_size, 0);                                               /* untouched on refusal */
        ASSERT_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW));
        ASSERT_OK(peer_fd_check(fd, PEER_FD_SEALED, &st, &why));
        ASSERT_EQ(st.st_size, 3);
        /* ...but not as a queue file: a memory file is read-write. */
        ASSERT_ERR(peer_fd_check(fd, PEER_FD_QUEUE_FILE, NULL, &why), EPERM);
        close(fd);

        /* A memory file that cannot be sealed. */
        fd = memfd_create("plain", MFD_CLOEXEC);
        ASSERT_OK(fd);
        ASSERT_ERR(peer_fd_check(fd, PEER_FD_SEALED, NULL, &why), EPERM);
        close(fd);

        /* A regular file: read-only is a queue file, read-write is not, neither is sealed content. */
        ASSERT_TRUE(mkdtemp(dir));
        (void) snprintf(path, sizeof path, "%s/file", dir);
        rw = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_OK(rw);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_OK(ro);
        ASSERT_OK(peer_fd_check(ro, PEER_FD_QUEUE_FILE, NULL, &why));
        ASSERT_ERR(peer_fd_check(rw, PEER_FD_QUEUE_FILE, NULL, &why), EPERM);
        ASSERT_TRUE(strstr(why, "read-only"));
        ASSERT_TRUE(peer_fd_check(ro, PEER_FD_SEALED, NULL, &why) < 0);
        /* A directory, and a closed descriptor. */
        d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_OK(d);
        ASSERT_ERR(peer_fd_check(d, PEER_FD_QUEUE_FILE, NULL, &why), EISDIR);
        ASSERT_ERR(peer_fd_check(d, PEER_FD_SEALED, NULL, &why), EISDIR);
        close(d);
        ASSERT_ERR(peer_fd_check(d, PEER_FD_QUEUE_FILE, NULL, &why), EBADF);
        ASSERT_STREQ(peer_fd_kind_to_string(PEER_FD_SEALED), "sealed memory file");
        ASSERT_TRUE(peer_fd_kind_to_string(_PEER_FD_KIND_MAX) == NULL);
        close(ro);
        close(rw);
        ASSERT_OK(unlink(path));
        ASSERT_OK(rmdir(dir));
}

int main(void) {
        RUN(write_read);
        RUN(memfd);
        RUN(fsync_directory);
        RUN(peer_fd_check);
        return 0;
}
