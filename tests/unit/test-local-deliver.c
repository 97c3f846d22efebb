/* test-local-deliver.c: delivery into mbox files and Maildirs in a temporary directory as the current user:
 * the bytes written, locking (busy, stale, fcntl), refused mailboxes, and truncation after a failed write. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "tests.h"
#include "src/local/local.h"

static char tmpdir[] = "/tmp/test-local-deliver-XXXXXX";

#define SENDER "alice@example.org"
#define RECIPIENT "bob@example.org"
#define HEADERS "Return-Path: <" SENDER ">\nDelivered-To: " RECIPIENT "\n"

static const MailboxLocking fast_locking = { .attempts = 3, .delay_usec = 1000, .stale_usec = 600 * USEC_PER_SEC };

/* A queue file whose content is the given pieces, each its own content record. */
typedef struct Queue {
        int fd;
        QueueEnvelope *envelope;
} Queue;

static Queue queue_make(const char *sender, const char *const *pieces) {
        QueueWriter *w = malloc(sizeof(QueueWriter));
        char path[PATH_MAX];
        Queue q;

        (void) snprintf(path, sizeof path, "%s/queue-XXXXXX", tmpdir);
        q.fd = mkostemp(path, O_CLOEXEC);
        ASSERT_TRUE(q.fd >= 0 && w);
        ASSERT_OK(unlink(path));
        queue_writer_init(w, q.fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_recordf(w, QUEUE_REC_TIME, "%u", 1234567u));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, sender, strlen(sender)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_RECIPIENT, RECIPIENT, strlen(RECIPIENT)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        for (const char *const *p = pieces; *p; p++)
                ASSERT_OK(queue_writer_record(w, QUEUE_REC_CONTENT, *p, strlen(*p)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        free(w);
        ASSERT_OK(queue_file_read(q.fd, &q.envelope));
        return q;
}

static void queue_done(Queue *q) {
        q->envelope = queue_envelope_free(q->envelope);
        q->fd = safe_close(q->fd);
}

static MailboxMessage message_of(const Queue *q, const char *sender) {
        return (MailboxMessage) { .queue_fd = q->fd, .envelope = q->envelope, .sender = sender, .recipient = RECIPIENT };
}

static MailboxMbox mbox_of(const char *path) {
        return (MailboxMbox) {
                .path = path,
                .uid = geteuid(), .gid = getegid(),
                .lock_uid = geteuid(), .lock_gid = getegid(),
                .create_gid = getegid(),
                .locking = fast_locking,
        };
}

static char *path_in_tmp(const char *name) {
        char *p;
        ASSERT_TRUE(asprintf(&p, "%s/%s", tmpdir, name) > 0);
        return p;
}

static char *read_file(const char *path, size_t *ret_len) {
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        char *buf;

        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(fstat(fd, &st));
        buf = calloc(1, (size_t) st.st_size + 1);
        ASSERT_TRUE(buf);
        ASSERT_EQ(read(fd, buf, (size_t) st.st_size), st.st_size);
        safe_close(fd);
        *ret_len = (size_t) st.st_size;
        return buf;
}

static void write_file(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        safe_close(fd);
}

/* Checks that the message at *p is a From_ line for sender followed by body, and moves past it. */
static void expect_mbox_message(const char **p, const char *from, const char *body) {
        const char *nl = strchr(*p, '\n');
        char prefix[128];

        (void) snprintf(prefix, sizeof prefix, "From %s  ", from);     /* two blanks, as Postfix */
        ASSERT_TRUE(nl);
        ASSERT_TRUE(strncmp(*p, prefix, strlen(prefix)) == 0);
        ASSERT_EQ(nl - *p, strlen(prefix) + 24);        /* "Www Mmm dd hh:mm:ss yyyy" */
        ASSERT_TRUE(strncmp(nl + 1, body, strlen(body)) == 0);
        *p = nl + 1 + strlen(body);
}

TEST(mbox_create_and_append) {
        static const char *const pieces[] = { "Subject: hi\n\nFrom here\nno From\nFr", "om there\n", "From", " x", NULL };
        static const char *const pieces2[] = { "Subject: two\n\nno newline at the end", NULL };
        _cleanup_free_ char *path = path_in_tmp("mbox-a"), *lock = NULL, *data = NULL;
        Queue q = queue_make(SENDER, pieces), q2 = queue_make("", pieces2);
        MailboxMessage m = message_of(&q, SENDER), m2 = message_of(&q2, "");
        MailboxMbox mb = mbox_of(path);
        MailboxResult r = {};
        struct stat st;
        size_t len;

        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_EQ(r.status, MAILBOX_STATUS_SENT);
        ASSERT_STREQ(r.text, "delivered to mailbox");
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_TRUE(asprintf(&lock, "%s.lock", path) > 0);
        ASSERT_ERR(access(lock, F_OK) < 0 ? -errno : 0, ENOENT);

        mailbox_deliver_mbox(&m2, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");

        data = read_file(path, &len);
        const char *p = data;
        expect_mbox_message(&p, SENDER,
                            HEADERS "Subject: hi\n\n>From here\nno From\n>From there\n>From x\n\n");
        expect_mbox_message(&p, "MAILER-DAEMON",
                            "Return-Path: <>\nDelivered-To: " RECIPIENT "\nSubject: two\n\nno newline at the end\n\n");
        ASSERT_EQ(p - data, len);
        queue_done(&q);
        queue_done(&q2);
}

TEST(mbox_large_content) {
        /* More than the write buffer, with "From " lines across record and buffer boundaries. */
        size_t n = 200 * 1024;
        char *content = malloc(n + 1), *want = malloc(2 * n);
        size_t want_len = 0;
        _cleanup_free_ char *path = path_in_tmp("mbox-large"), *data = NULL;

        ASSERT_TRUE(content && want);
        for (size_t i = 0; i < n; i++)
                content[i] = i % 61 == 60 ? '\n' : "From abcdefghij"[i % 61 % 15];
        content[n] = '\0';
        for (size_t i = 0; i < n; i++) {
                if ((i == 0 || content[i - 1] == '\n') && strncmp(content + i, "From ", 5) == 0)
                        want[want_len++] = '>';
                want[want_len++] = content[i];
        }
        /* cut into records of odd sizes */
        char *pieces_buf[64];
        const char *pieces[65];
        size_t k = 0;
        for (size_t off = 0; off < n; k++) {
                size_t len = MIN(n - off, (size_t) 7001 + k * 13);
                pieces_buf[k] = strndup(content + off, len);
                pieces[k] = pieces_buf[k];
                off += len;
        }
        pieces[k] = NULL;
        Queue q = queue_make(SENDER, pieces);
        MailboxMessage m = message_of(&q, SENDER);
        MailboxMbox mb = mbox_of(path);
        MailboxResult r = {};
        size_t len;

        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        data = read_file(path, &len);
        const char *body = strchr(data, '\n') + 1 + strlen(HEADERS);
        ASSERT_EQ(len - (size_t) (body - data), want_len + 2);  /* + the added newline and empty line */
        ASSERT_TRUE(memcmp(body, want, want_len) == 0);
        ASSERT_TRUE(memcmp(body + want_len, "\n\n", 2) == 0);

        for (size_t i = 0; i < k; i++)
                free(pieces_buf[i]);
        free(content);
        free(want);
        queue_done(&q);
}

TEST(maildir) {
        static const char *const pieces[] = { "Subject: hi\n\nFrom here\n", NULL };
        _cleanup_free_ char *dir = path_in_tmp("home/Mail/box/"), *newdir = NULL, *data = NULL, *file = NULL;
        Queue q = queue_make(SENDER, pieces);
        MailboxMessage m = message_of(&q, SENDER);
        MailboxResult r = {};
        struct dirent *de;
        struct stat st;
        size_t len, n = 0;
        DIR *d;

        for (int round = 0; round < 2; round++) {
                mailbox_deliver_maildir(&m, dir, "mx.example.org", &r);
                ASSERT_STREQ(r.dsn, "2.0.0");
                ASSERT_STREQ(r.text, "delivered to maildir");
        }
        static const char *const subdirs[] = { "", "tmp", "new", "cur" };
        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *s = NULL;
                ASSERT_TRUE(asprintf(&s, "%s%s", dir, subdirs[i]) > 0);
                ASSERT_OK(stat(s, &st));
                ASSERT_TRUE(S_ISDIR(st.st_mode));
                ASSERT_EQ(st.st_mode & 07777, 0700);
        }
        ASSERT_TRUE(asprintf(&newdir, "%snew", dir) > 0);
        d = opendir(newdir);
        ASSERT_TRUE(d);
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                n++;
                ASSERT_TRUE(strstr(de->d_name, ".mx.example.org"));
                free(file);
                ASSERT_TRUE(asprintf(&file, "%s/%s", newdir, de->d_name) > 0);
        }
        closedir(d);
        ASSERT_EQ(n, 2);

        data = read_file(file, &len);
        ASSERT_STREQ(data, HEADERS "Subject: hi\n\nFrom here\n");
        free(newdir);
        ASSERT_TRUE(asprintf(&newdir, "%stmp", dir) > 0);
        d = opendir(newdir);
        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                ASSERT_TRUE(de->d_name[0] == '.');
        closedir(d);
        queue_done(&q);
}

/* A batch into one Maildir: a file each in new/, with its own content, all reported delivered. */
TEST(maildir_batch) {
        static const char *const p0[] = { "Subject: a\n\nzero\n", NULL };
        static const char *const p1[] = { "Subject: b\n\none\n", NULL };
        static const char *const p2[] = { "Subject: c\n\ntwo\n", NULL };
        _cleanup_free_ char *dir = path_in_tmp("batch/Maildir/"), *newdir = NULL;
        Queue q[3] = { queue_make(SENDER, p0), queue_make(SENDER, p1), queue_make(SENDER, p2) };
        MailboxMessage m[3] = { message_of(&q[0], SENDER), message_of(&q[1], SENDER), message_of(&q[2], SENDER) };
        MailboxResult r[3] = {};
        unsigned seen = 0;
        struct dirent *de;
        DIR *d;

        mailbox_deliver_maildir_batch(m, 3, dir, "mx.example.org", r);
        for (size_t k = 0; k < 3; k++)
                ASSERT_STREQ(r[k].text, "delivered to maildir");
        ASSERT_TRUE(asprintf(&newdir, "%snew", dir) > 0);
        d = opendir(newdir);
        ASSERT_TRUE(d);
        while ((de = readdir(d))) {
                _cleanup_free_ char *file = NULL, *data = NULL;
                size_t len;

                if (de->d_name[0] == '.')
                        continue;
                ASSERT_TRUE(asprintf(&file, "%s/%s", newdir, de->d_name) > 0);
                data = read_file(file, &len);
                ASSERT_TRUE(strncmp(data, HEADERS "Subject: ", strlen(HEADERS "Subject: ")) == 0);
                seen |= 1U << (data[strlen(HEADERS "Subject: ")] - 'a');
        }
        closedir(d);
        ASSERT_EQ(seen, 7U);
        /* Written together, moved one by one: nothing is left in tmp/. */
        _cleanup_free_ char *tmp_sub = NULL;
        ASSERT_TRUE(asprintf(&tmp_sub, "%stmp", dir) > 0);
        d = opendir(tmp_sub);
        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                ASSERT_TRUE(de->d_name[0] == '.');
        closedir(d);
        for (size_t k = 0; k < 3; k++)
                queue_done(&q[k]);
}

TEST(mbox_lock_busy_and_stale) {
        static const char *const pieces[] = { "x\n", NULL };
        _cleanup_free_ char *path = path_in_tmp("mbox-lock"), *lock = NULL;
        Queue q = queue_make(SENDER, pieces);
        MailboxMessage m = message_of(&q, SENDER);
        MailboxMbox mb = mbox_of(path);
        MailboxResult r = {};

        ASSERT_TRUE(asprintf(&lock, "%s.lock", path) > 0);
        write_file(lock, "");
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "4.2.0");
        ASSERT_EQ(r.status, MAILBOX_STATUS_DEFERRED);
        ASSERT_TRUE(strstr(r.text, "is busy"));
        ASSERT_OK(access(lock, F_OK));          /* someone else's lock stays */
        ASSERT_ERR(access(path, F_OK) < 0 ? -errno : 0, ENOENT);

        /* an hour old: stale, removed, delivered, even when one attempt is all there is */
        const struct timespec old[2] = { { .tv_sec = time(NULL) - 3600 }, { .tv_sec = time(NULL) - 3600 } };
        ASSERT_OK(utimensat(AT_FDCWD, lock, old, 0));
        mb.locking.attempts = 1;
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_ERR(access(lock, F_OK) < 0 ? -errno : 0, ENOENT);

        /* a fresh lock of a process that runs stays; one of a process that is gone is removed at once, and so
         * is one with our own process ID (this process holds no lock while it asks for one) */
        char pid[32];
        (void) snprintf(pid, sizeof pid, "%d\n", (int) getppid());
        write_file(lock, pid);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_TRUE(strstr(r.text, "is busy"));
        (void) snprintf(pid, sizeof pid, "%d\n", (int) getpid());
        write_file(lock, pid);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_ERR(access(lock, F_OK) < 0 ? -errno : 0, ENOENT);
        pid_t child = fork();
        ASSERT_TRUE(child >= 0);
        if (child == 0)
                _exit(0);
        ASSERT_EQ(waitpid(child, NULL, 0), child);
        (void) snprintf(pid, sizeof pid, "%d\n", (int) child);
        write_file(lock, pid);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_ERR(access(lock, F_OK) < 0 ? -errno : 0, ENOENT);
        queue_done(&q);
}

/* A worker keeps its dot-lock file between deliveries (keep_lock_file): renamed to the lock and back, the same
 * file each time, its time set before it becomes the lock; made again when someone removed it; gone after
 * mailbox_dotlock_forget(), or mailbox_dotlock_sweep() once its process is gone. Someone else's lock still makes
 * the mailbox busy. */
TEST(mbox_kept_lock) {
        static const char *const pieces[] = { "x\n", NULL };
        _cleanup_free_ char *path = path_in_tmp("mbox-kept"), *lock = NULL, *kept = NULL, *data = NULL;
        Queue q = queue_make(SENDER, pieces);
        MailboxMessage m = message_of(&q, SENDER);
        MailboxMbox mb = mbox_of(path);
        MailboxResult r = {};
        struct stat st, st2;
        char pid[32];
        size_t len;

        mb.locking.keep_lock_file = true;
        ASSERT_TRUE(asprintf(&lock, "%s.lock", path) > 0);
        ASSERT_TRUE(asprintf(&kept, "%s/.postbus-lock.%d", tmpdir, (int) getpid()) > 0);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_ERR(access(lock, F_OK) < 0 ? -errno : 0, ENOENT);
        ASSERT_OK(stat(kept, &st));
        (void) snprintf(pid, sizeof pid, "%d\n", (int) getpid());
        data = read_file(kept, &len);
        ASSERT_STREQ(data, pid);

        /* an hour old before the next delivery, fresh after it: the time was set before the rename */
        const struct timespec old[2] = { { .tv_sec = time(NULL) - 3600 }, { .tv_sec = time(NULL) - 3600 } };
        ASSERT_OK(utimensat(AT_FDCWD, kept, old, 0));
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_OK(stat(kept, &st2));
        ASSERT_EQ(st2.st_ino, st.st_ino);
        ASSERT_TRUE(st2.st_mtime >= time(NULL) - 60);

        /* someone else's fresh lock: busy, and it stays, and so does the kept file */
        (void) snprintf(pid, sizeof pid, "%d\n", (int) getppid());
        write_file(lock, pid);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_TRUE(strstr(r.text, "is busy"));
        data = mfree(data);
        data = read_file(lock, &len);
        ASSERT_STREQ(data, pid);
        ASSERT_OK(stat(kept, &st2));
        ASSERT_EQ(st2.st_ino, st.st_ino);
        ASSERT_OK(unlink(lock));

        /* removed by someone: made again */
        ASSERT_OK(unlink(kept));
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_OK(access(kept, F_OK));
        ASSERT_ERR(access(lock, F_OK) < 0 ? -errno : 0, ENOENT);

        mailbox_dotlock_forget();
        ASSERT_ERR(access(kept, F_OK) < 0 ? -errno : 0, ENOENT);

        /* local's sweep at its start: the kept files of processes that are gone, and nothing else */
        _cleanup_free_ char *dead = NULL, *alive = NULL, *other = NULL;
        pid_t child = fork();
        ASSERT_TRUE(child >= 0);
        if (child == 0)
                _exit(0);
        ASSERT_EQ(waitpid(child, NULL, 0), child);
        ASSERT_TRUE(asprintf(&dead, "%s/.postbus-lock.%d", tmpdir, (int) child) > 0);
        ASSERT_TRUE(asprintf(&alive, "%s/.postbus-lock.%d", tmpdir, (int) getppid()) > 0);
        ASSERT_TRUE(asprintf(&other, "%s/.postbus-lock.x", tmpdir) > 0);
        write_file(dead, "");
        write_file(alive, "");
        write_file(other, "");
        mailbox_dotlock_sweep(tmpdir);
        ASSERT_ERR(access(dead, F_OK) < 0 ? -errno : 0, ENOENT);
        ASSERT_OK(access(alive, F_OK));
        ASSERT_OK(access(other, F_OK));
        ASSERT_OK(unlink(alive));
        ASSERT_OK(unlink(other));
        data = mfree(data);
        data = read_file(path, &len);
        unsigned from_lines = 0;
        for (const char *p = data; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                from_lines += strncmp(p, "From ", 5) == 0;
        ASSERT_EQ(from_lines, 3u);
        queue_done(&q);
}

TEST(mbox_fcntl_locked) {
        static const char *const pieces[] = { "x\n", NULL };
        _cleanup_free_ char *path = path_in_tmp("mbox-fcntl"), *lock = NULL;
        Queue q = queue_make(SENDER, pieces);
        MailboxMessage m = message_of(&q, SENDER);
        MailboxMbox mb = mbox_of(path);
        MailboxResult r = {};
        int ready[2];
        char c;
        pid_t pid;

        write_file(path, "");
        ASSERT_OK(pipe(ready));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
                int fd = open(path, O_WRONLY);
                if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
                        _exit(1);
                if (write(ready[1], "x", 1) != 1)
                        _exit(1);
                pause();
                _exit(0);
        }
        safe_close(ready[1]);
        ASSERT_EQ(read(ready[0], &c, 1), 1);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "4.2.0");
        ASSERT_TRUE(strstr(r.text, "locked by another process"));
        ASSERT_TRUE(asprintf(&lock, "%s.lock", path) > 0);
        ASSERT_ERR(access(lock, F_OK) < 0 ? -errno : 0, ENOENT);        /* our dot-lock is gone */
        ASSERT_OK(kill(pid, SIGKILL));
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);
        safe_close(ready[0]);
        queue_done(&q);
}

TEST(mbox_refused) {
        static const char *const pieces[] = { "x\n", NULL };
        _cleanup_free_ char *target = path_in_tmp("target"), *link1 = path_in_tmp("mbox-symlink"),
                            *link2 = path_in_tmp("mbox-hardlink"), *fifo = path_in_tmp("mbox-fifo"),
                            *dir = path_in_tmp("mbox-dir"), *data = NULL;
        Queue q = queue_make(SENDER, pieces);
        MailboxMessage m = message_of(&q, SENDER);
        MailboxResult r = {};
        size_t len;

        write_file(target, "precious\n");
        ASSERT_OK(symlink(target, link1));
        MailboxMbox mb = mbox_of(link1);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "5.2.0");
        ASSERT_EQ(r.status, MAILBOX_STATUS_BOUNCED);
        ASSERT_TRUE(strstr(r.text, "symbolic link"));

        ASSERT_OK(link(target, link2));
        mb = mbox_of(link2);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "5.2.0");
        ASSERT_TRUE(strstr(r.text, "hard links"));
        data = read_file(target, &len);
        ASSERT_STREQ(data, "precious\n");

        ASSERT_OK(mkfifo(fifo, 0600));
        mb = mbox_of(fifo);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "5.2.0");
        ASSERT_TRUE(strstr(r.text, "not a regular file"));

        ASSERT_OK(mkdir(dir, 0700));
        mb = mbox_of(dir);
        mailbox_deliver_mbox(&m, &mb, &r);
        ASSERT_STREQ(r.dsn, "5.2.0");

        if (geteuid() == 0) {
                _cleanup_free_ char *other = path_in_tmp("mbox-other");
                write_file(other, "");
                ASSERT_OK(chown(other, 12345, 12345));
                mb = mbox_of(other);
                mailbox_deliver_mbox(&m, &mb, &r);
                ASSERT_STREQ(r.dsn, "4.2.0");
                ASSERT_TRUE(strstr(r.text, "not owned by the recipient"));
        }
        queue_done(&q);
}

/* A write past the file size limit fails: the mailbox is cut back to its size before. Run in a child,
 * since the limit cannot be raised again. */
TEST(mbox_truncated_after_failed_write) {
        static const char *const pieces[] = { "Subject: big\n\n0123456789012345678901234567890123456789\n", NULL };
        _cleanup_free_ char *path = path_in_tmp("mbox-full"), *data = NULL;
        int status;
        size_t len;
        pid_t pid;

        write_file(path, "From old\nold message\n\n");
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                Queue q = queue_make(SENDER, pieces);
                MailboxMessage m = message_of(&q, SENDER);
                MailboxMbox mb = mbox_of(path);
                const struct rlimit rl = { .rlim_cur = 100, .rlim_max = 100 };
                MailboxResult r = {};

                (void) signal(SIGXFSZ, SIG_IGN);
                ASSERT_OK(setrlimit(RLIMIT_FSIZE, &rl));
                mailbox_deliver_mbox(&m, &mb, &r);
                ASSERT_STREQ(r.dsn, "5.2.2");
                ASSERT_EQ(r.status, MAILBOX_STATUS_BOUNCED);
                _exit(0);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        data = read_file(path, &len);
        ASSERT_STREQ(data, "From old\nold message\n\n");
}

/* A batch under one lock and one fsync: each message in order, a failed one cut off (here one too large
 * for the file size limit) and the others kept, each with its own result. */
TEST(mbox_batch) {
        static const char *const small[] = { "Subject: one\n\nfirst\n", NULL };
        static const char *const big[] = { "Subject: big\n\n0123456789012345678901234567890123456789"
                                           "0123456789012345678901234567890123456789\n", NULL };
        static const char *const small2[] = { "Subject: three\n\nthird\n", NULL };
        _cleanup_free_ char *path = path_in_tmp("mbox-batch"), *data = NULL;
        int status;
        size_t len;
        pid_t pid;

        write_file(path, "From old\nold message\n\n");
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                Queue q[3] = { queue_make(SENDER, small), queue_make(SENDER, big), queue_make(SENDER, small2) };
                MailboxMessage m[3] = { message_of(&q[0], SENDER), message_of(&q[1], SENDER),
                                        message_of(&q[2], SENDER) };
                MailboxMbox mb = mbox_of(path);
                /* room for the old message and two small ones, not for the big one */
                const struct rlimit rl = { .rlim_cur = 300, .rlim_max = 300 };
                MailboxResult r[3] = {};

                (void) signal(SIGXFSZ, SIG_IGN);
                ASSERT_OK(setrlimit(RLIMIT_FSIZE, &rl));
                mailbox_deliver_mbox_batch(m, 3, &mb, r);
                ASSERT_EQ(r[0].status, MAILBOX_STATUS_SENT);
                ASSERT_STREQ(r[1].dsn, "5.2.2");
                ASSERT_EQ(r[2].status, MAILBOX_STATUS_SENT);
                _exit(0);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        data = read_file(path, &len);
        const char *p = data + strlen("From old\nold message\n\n");
        ASSERT_TRUE(strncmp(data, "From old\nold message\n\n", p - data) == 0);
        expect_mbox_message(&p, SENDER, HEADERS "Subject: one\n\nfirst\n\n");
        expect_mbox_message(&p, SENDER, HEADERS "Subject: three\n\nthird\n\n");
        ASSERT_EQ(p - data, len);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(tmpdir));
        RUN(mbox_create_and_append);
        RUN(mbox_large_content);
        RUN(maildir);
        RUN(maildir_batch);
        RUN(mbox_lock_busy_and_stale);
        RUN(mbox_kept_lock);
        RUN(mbox_fcntl_locked);
        RUN(mbox_refused);
        RUN(mbox_truncated_after_failed_write);
        RUN(mbox_batch);
        ASSERT_OK(nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS));
        return 0;
}
