/* make-queue-file-corpus.c: writes the seed corpus of fuzz-queue-file, real queue files made with the queue
 * writer (attributes, DSN options, several and done recipients, content in many records) and a few
 * truncated or corrupt ones. Built on demand:
 *   meson compile -C build make-queue-file-corpus && build/tests/fuzz/make-queue-file-corpus DIR */
#include <fcntl.h>
#include <sys/mman.h>

#include "queue-file.h"

static const char *dir;

static int save(const char *name, const void *buf, size_t len) {
        char path[4096];
        _cleanup_close_ int fd = -EBADF;

        (void) snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, buf, len) != (ssize_t) len) {
                fprintf(stderr, "Failed to write %s: %m\n", path);
                return -EIO;
        }
        return 0;
}

typedef struct Message {
        const char *sender;
        const char *const *attrs;
        const char *const *recipients;  /* address, NOTIFY, ORCPT, "R" or "D" (done) */
        const char *const *content;     /* one record each */
} Message;

/* The queue file of m, read back by queue_file_read() to be sure it is one. */
static int build(const Message *m, char **ret, size_t *ret_len) {
        _cleanup_free_ QueueWriter *w = malloc(sizeof(QueueWriter));
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        _cleanup_close_ int fd = memfd_create("corpus", MFD_CLOEXEC);
        uint64_t done[8];
        size_t n_done = 0;
        int r = 0;

        if (fd < 0 || !w)
                return -ENOMEM;
        queue_writer_init(w, fd);
        if ((r = queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, STRLEN(QUEUE_MAGIC))) < 0 ||
            (r = queue_writer_recordf(w, QUEUE_REC_TIME, "%llu", 1733450000123456ULL)) < 0)
                return r;
        for (const char *const *a = m->attrs; a && *a && r >= 0; a++)
                r = queue_writer_record(w, QUEUE_REC_ATTR, *a, strlen(*a));
        if (r >= 0)
                r = queue_writer_record(w, QUEUE_REC_SENDER, m->sender, strlen(m->sender));
        for (const char *const *rc = m->recipients; *rc && r >= 0; rc += 4) {
                if (rc[3][0] == 'D' && n_done < ELEMENTSOF(done))
                        done[n_done++] = queue_writer_offset(w);
                r = queue_writer_recipient(w, rc[0], rc[1], rc[2]);
        }
        if (r >= 0)
                r = queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0);
        for (const char *const *c = m->content; *c && r >= 0; c++)
                r = queue_writer_record(w, QUEUE_REC_CONTENT, *c, strlen(*c));
        if (r >= 0)
                r = queue_writer_record(w, QUEUE_REC_END, NULL, 0);
        if (r >= 0)
                r = queue_writer_flush(w);
        for (size_t i = 0; i < n_done && r >= 0; i++)
                r = queue_file_mark_done(fd, done[i]);
        if (r >= 0)
                r = queue_file_read(fd, &e);
        if (r < 0)
                return r;

        char *buf = malloc(e->file_size);
        if (!buf)
                return -ENOMEM;
        r = pread(fd, buf, e->file_size, 0) == (ssize_t) e->file_size ? 0 : -EIO;
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        *ret_len = e->file_size;
        return 0;
}

#define LIST(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define BODY "From: alice@example.org\nTo: bob@example.org\nSubject: hello\n\nHi Bob.\n"

static const Message messages[] = {
        { "alice@example.org", NULL, LIST("bob@example.org", NULL, NULL, "R"), LIST(BODY) },
        { "alice@example.org",
          LIST("client_address=192.0.2.10", "client_name=mail.example.net", "helo_name=mail.example.net",
               "protocol=ESMTPSA", "sasl_username=alice", "origin=smtpd", "hold=held by the admin"),
          LIST("bob@example.org", NULL, NULL, "R"), LIST(BODY) },
        { "alice@example.org", LIST("dsn_ret=HDRS", "dsn_envid=QQ314159"),
          LIST("bob@example.org", "SUCCESS,FAILURE,DELAY", "rfc822;bob@example.org", "R",
               "carol@example.org", "NEVER", NULL, "R",
               "dave@example.org", NULL, "utf-8;d\\x{E9}ve@example.org", "R"),
          LIST(BODY) },
        { "", LIST("origin=bounce"),
          LIST("r1@example.org", NULL, NULL, "D",
               "r2@example.org", "FAILURE", "rfc822;r2@example.org", "D",
               "r3@example.org", NULL, NULL, "R",
               "r4@example.net", "DELAY,FAILURE", NULL, "R",
               "postmaster", NULL, NULL, "R"),
          LIST(BODY) },
        { "alice@example.org", NULL, LIST("bob@example.org", NULL, NULL, "R"),
          LIST("Received: from x\n", "From: alice@example.org\nSubject: in pieces\n", "", "\n",
               "From the start of a line\n", ">From quoted\n", "line without end") },
        { "alice@example.org", NULL, LIST("bob@example.org", NULL, NULL, "R"), LIST("") },
};
static const char *const names[ELEMENTSOF(messages)] = {
        "plain", "attrs", "dsn-options", "done-recipients-null-sender", "content-records", "empty-content",
};

int main(int argc, char **argv) {
        char *plain = NULL, *buf = NULL;
        size_t plain_len = 0, len = 0;
        int r;

        if (argc != 2) {
                fprintf(stderr, "Usage: %s DIRECTORY\n", argv[0]);
                return EXIT_FAILURE;
        }
        dir = argv[1];
        for (size_t i = 0; i < ELEMENTSOF(messages); i++) {
                r = build(messages + i, &buf, &len);
                if (r < 0) {
                        fprintf(stderr, "Failed to build %s: %s\n", names[i], strerror(-r));
                        return EXIT_FAILURE;
                }
                if (save(names[i], buf, len) < 0)
                        return EXIT_FAILURE;
                if (i == 0) {
                        plain = buf;
                        plain_len = len;
                } else
                        free(buf);
        }

        /* Truncated and corrupt variants of the plain one; the queue reader refuses each. */
        buf = malloc(plain_len + 8);
        if (!buf)
                return EXIT_FAILURE;
        if (save("truncated-content", plain, plain_len - 30) < 0 ||
            save("truncated-before-end", plain, plain_len - QUEUE_RECORD_HEADER) < 0)
                return EXIT_FAILURE;
        memcpy(buf, plain, plain_len);
        memcpy(buf + plain_len, "trailing", 8);
        if (save("trailing-bytes", buf, plain_len + 8) < 0)
                return EXIT_FAILURE;
        buf[plain_len - QUEUE_RECORD_HEADER] = 'Z';     /* an unknown type for the end marker */
        if (save("bad-end-type", buf, plain_len) < 0)
                return EXIT_FAILURE;
        memcpy(buf, plain, plain_len);
        buf[1] = 0x7f;                                  /* the magic's length far beyond the file */
        if (save("huge-length", buf, plain_len) < 0)
                return EXIT_FAILURE;
        free(buf);

        /* A maildrop file's magic in a queue file. */
        buf = malloc(plain_len + 3);
        if (!buf)
                return EXIT_FAILURE;
        memcpy(buf, plain, QUEUE_RECORD_HEADER);
        buf[4] = (char) STRLEN("postbus-maildrop-1");
        memcpy(buf + QUEUE_RECORD_HEADER, "postbus-maildrop-1", STRLEN("postbus-maildrop-1"));
        size_t rest = QUEUE_RECORD_HEADER + STRLEN(QUEUE_MAGIC);
        memcpy(buf + QUEUE_RECORD_HEADER + STRLEN("postbus-maildrop-1"), plain + rest, plain_len - rest);
        if (save("maildrop-magic", buf, plain_len + 3) < 0)
                return EXIT_FAILURE;
        free(buf);
        free(plain);
        return EXIT_SUCCESS;
}
