/* test-queue-file.c: queue files written and read back; truncation, unknown records and trailing bytes
 * are refused; marking recipients done. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "tests.h"
#include "queue-file.h"

static int write_sample(const char *content, size_t len) {
        int fd = memfd_create("queue", MFD_CLOEXEC);
        QueueWriter *w = malloc(sizeof(QueueWriter));

        ASSERT_TRUE(fd >= 0 && w);
        queue_writer_init(w, fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_recordf(w, QUEUE_REC_TIME, "%u", 1234567u));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_ATTR, "client_address=127.0.0.1", 24));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, "", 0));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_RECIPIENT, "a@x", 3));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_RECIPIENT, "b@x", 3));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        ASSERT_OK(queue_writer_content(w, content, len));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        free(w);
        return fd;
}

typedef struct Collect {
        char *buf;
        size_t len;
        unsigned pieces;
} Collect;

static int collect(const char *data, size_t len, void *userdata) {
        Collect *c = userdata;
        memcpy(c->buf + c->len, data, len);
        c->len += len;
        c->pieces++;
        return 0;
}

TEST(round_trip) {
        size_t big = 3 * QUEUE_RECORD_MAX + 17;
        char *content = malloc(big);
        for (size_t i = 0; i < big; i++)
                content[i] = (char) ('a' + i % 26);
        int fd = write_sample(content, big);
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;

        ASSERT_OK(queue_file_read(fd, &e));
        ASSERT_EQ(e->arrival_usec, 1234567);
        ASSERT_STREQ(e->sender, "");
        ASSERT_EQ(e->n_recipients, 2);
        ASSERT_STREQ(e->recipients[1].address, "b@x");
        ASSERT_STREQ(queue_envelope_attr(e, "client_address"), "127.0.0.1");
        ASSERT_TRUE(queue_envelope_attr(e, "client") == NULL);
        ASSERT_EQ(e->content_size, big);
        ASSERT_EQ(queue_envelope_pending(e), 2);

        Collect c = { .buf = malloc(big) };
        ASSERT_OK(queue_file_content_foreach(fd, e, collect, &c));
        ASSERT_EQ(c.len, big);
        ASSERT_TRUE(memcmp(c.buf, content, big) == 0);
        ASSERT_TRUE(c.pieces >= 4);
        free(c.buf);

        /* The same content a piece at a time, the cursor moving past each piece; 0 at the end, and again. */
        char *piece = malloc(QUEUE_RECORD_MAX);
        uint64_t off = e->content_offset;
        size_t got = 0;
        int n;
        while ((n = queue_file_content_next(fd, e, &off, piece)) > 0) {
                ASSERT_TRUE((size_t) n <= big - got && memcmp(piece, content + got, (size_t) n) == 0);
                got += (size_t) n;
        }
        ASSERT_EQ(n, 0);
        ASSERT_EQ(got, big);
        ASSERT_EQ(queue_file_content_next(fd, e, &off, piece), 0);
        /* A cursor that points into the envelope is refused. */
        off = e->recipients[0].offset;
        ASSERT_ERR(queue_file_content_next(fd, e, &off, piece), EBADMSG);
        free(piece);

        ASSERT_OK(queue_file_mark_done(fd, e->recipients[0].offset));
        ASSERT_OK(queue_file_mark_done(fd, e->recipients[0].offset));  /* twice is fine */
        ASSERT_ERR(queue_file_mark_done(fd, 0), EBADMSG);                /* not a recipient record */
        queue_envelope_free(TAKE_PTR(e));
        ASSERT_OK(queue_file_read(fd, &e));
        ASSERT_TRUE(e->recipients[0].done && !e->recipients[1].done);
        ASSERT_EQ(queue_envelope_pending(e), 1);
        free(content);
        close(fd);
}

/* A delivery agent's read keeps a small file whole: its content then comes from memory, the same bytes,
 * even when the descriptor no longer reads; a file beyond one read-ahead is read from the descriptor. */
TEST(read_delivery_keeps_small_files) {
        const char content[] = "Subject: kept\n\nbody\n";
        int fd = write_sample(content, sizeof content - 1);
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        struct stat st;

        ASSERT_TRUE(fstat(fd, &st) == 0);
        ASSERT_OK(queue_file_read_delivery(fd, &st, &e));
        ASSERT_TRUE(e->file != NULL);
        ASSERT_EQ(e->n_recipients, 2);
        ASSERT_TRUE(ftruncate(fd, 0) == 0);      /* from here on, only the kept bytes can give the content */
        Collect c = { .buf = malloc(sizeof content) };
        ASSERT_OK(queue_file_content_foreach(fd, e, collect, &c));
        ASSERT_EQ(c.len, sizeof content - 1);
        ASSERT_TRUE(memcmp(c.buf, content, c.len) == 0);
        free(c.buf);
        char *piece = malloc(QUEUE_RECORD_MAX);
        uint64_t off = e->content_offset;
        ASSERT_EQ(queue_file_content_next(fd, e, &off, piece), (int) (sizeof content - 1));
        ASSERT_EQ(queue_file_content_next(fd, e, &off, piece), 0);
        free(piece);
        close(fd);

        size_t big = RECORD_READ_AHEAD + 100;
        char *large = malloc(big);
        memset(large, 'x', big);
        fd = write_sample(large, big);
        queue_envelope_free(TAKE_PTR(e));
        ASSERT_TRUE(fstat(fd, &st) == 0);
        ASSERT_OK(queue_file_read_delivery(fd, &st, &e));
        ASSERT_TRUE(e->file == NULL);
        c = (Collect) { .buf = malloc(big) };
        ASSERT_OK(queue_file_content_foreach(fd, e, collect, &c));
        ASSERT_EQ(c.len, big);
        free(c.buf);
        free(large);
        close(fd);
}

/* Postfix keeps a line longer than its records as continued records and a last one; here content is a byte
 * stream cut into records wherever they fill, so a line longer than a record spans several, and the
 * readers join it: every piece inside the long line has no line end, and the lines read back are the
 * lines written. */
TEST(long_line_spans_records) {
        size_t n = 2 * QUEUE_RECORD_MAX + 1000, len = STRLEN("Subject: x\n\n") + n + STRLEN("\nlast\n");
        _cleanup_free_ char *content = malloc(len), *piece = malloc(QUEUE_RECORD_MAX), *joined = malloc(len);
        unsigned inside = 0;
        size_t got = 0, o;
        int fd, r;

        ASSERT_TRUE(content && piece && joined);
        o = stpcpy(content, "Subject: x\n\n") - content;
        for (size_t i = 0; i < n; i++)
                content[o + i] = (char) ('a' + i % 26);
        memcpy(content + o + n, "\nlast\n", STRLEN("\nlast\n"));
        fd = write_sample(content, len);

        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        ASSERT_OK(queue_file_read(fd, &e));
        ASSERT_EQ(e->content_size, len);
        uint64_t off = e->content_offset;
        while ((r = queue_file_content_next(fd, e, &off, piece)) > 0) {
                if (got >= o && got + (size_t) r <= o + n) {
                        ASSERT_TRUE(!memchr(piece, '\n', (size_t) r));
                        inside++;
                }
                memcpy(joined + got, piece, (size_t) r);
                got += (size_t) r;
        }
        ASSERT_EQ(r, 0);
        ASSERT_EQ(got, len);
        ASSERT_TRUE(inside >= 1);
        ASSERT_TRUE(memcmp(joined, content, len) == 0);

        /* The lines, split at LF only: the header, the empty line, the long line whole, the last. */
        const char *p = joined, *nl;
        size_t lens[4], k = 0;
        while (k < 4 && (nl = memchr(p, '\n', len - (size_t) (p - joined)))) {
                lens[k++] = (size_t) (nl - p);
                p = nl + 1;
        }
        ASSERT_EQ(k, 4);
        ASSERT_EQ(lens[0], STRLEN("Subject: x"));
        ASSERT_EQ(lens[1], 0);
        ASSERT_EQ(lens[2], n);
        ASSERT_EQ(lens[3], STRLEN("last"));
        close(fd);
}

TEST(truncated_anywhere) {
        int fd = write_sample("Subject: x\n\nbody\n", 17);
        off_t size = lseek(fd, 0, SEEK_END);
        char *copy = malloc((size_t) size);
        ASSERT_EQ(pread(fd, copy, (size_t) size, 0), size);

        for (off_t cut = 0; cut < size; cut++) {
                QueueEnvelope *e = NULL;
                ASSERT_OK(ftruncate(fd, cut));
                ASSERT_ERR(queue_file_read(fd, &e), EBADMSG);
                ASSERT_TRUE(e == NULL);
        }
        ASSERT_EQ(pwrite(fd, copy, (size_t) size, 0), size);
        QueueEnvelope *e = NULL;
        ASSERT_OK(queue_file_read(fd, &e));
        queue_envelope_free(e);

        /* trailing garbage */
        ASSERT_EQ(pwrite(fd, "x", 1, size), 1);
        ASSERT_ERR(queue_file_read(fd, &e), EBADMSG);
        ASSERT_OK(ftruncate(fd, size));

        /* an unknown record type where a recipient could be */
        copy[size - 5] = 'Z';
        ASSERT_EQ(pwrite(fd, copy, (size_t) size, 0), size);
        ASSERT_ERR(queue_file_read(fd, &e), EBADMSG);
        free(copy);
        close(fd);
}

/* The bytes of a whole file, as qmgr sends them in DeliverInline: the same envelope and content as the file
 * read by descriptor, from a copy of the envelope's own; a cut anywhere, or bytes after the end, are refused
 * as the file would be. */
TEST(read_delivery_bytes) {
        const char content[] = "Subject: inline\n\nbody\n";
        int fd = write_sample(content, sizeof content - 1);
        off_t size = lseek(fd, 0, SEEK_END);
        char *file = malloc((size_t) size + 1), *scratch = malloc((size_t) size + 1);
        ASSERT_EQ(pread(fd, file, (size_t) size, 0), size);
        close(fd);

        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        memcpy(scratch, file, (size_t) size);
        ASSERT_OK(queue_file_read_delivery_bytes(scratch, (size_t) size, &e));
        ASSERT_EQ(e->file_size, (uint64_t) size);
        ASSERT_EQ(e->n_recipients, 2);
        ASSERT_STREQ(e->sender, "");
        ASSERT_STREQ(e->recipients[1].address, "b@x");
        memset(scratch, 0, (size_t) size);      /* the envelope has a copy of its own */
        Collect c = { .buf = malloc(sizeof content) };
        ASSERT_OK(queue_file_content_foreach(-EBADF, e, collect, &c));
        ASSERT_EQ(c.len, sizeof content - 1);
        ASSERT_TRUE(memcmp(c.buf, content, c.len) == 0);
        free(c.buf);

        for (size_t cut = 0; cut < (size_t) size; cut++) {
                QueueEnvelope *x = NULL;
                ASSERT_ERR(queue_file_read_delivery_bytes(file, cut, &x), EBADMSG);
                ASSERT_TRUE(x == NULL);
        }
        file[size] = 'x';
        QueueEnvelope *x = NULL;
        ASSERT_ERR(queue_file_read_delivery_bytes(file, (size_t) size + 1, &x), EBADMSG);
        free(file);
        free(scratch);
}

TEST(bad_structure) {
        int fd = memfd_create("queue", MFD_CLOEXEC);
        QueueWriter *w = malloc(sizeof(QueueWriter));
        QueueEnvelope *e = NULL;

        /* no recipients */
        queue_writer_init(w, fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_TIME, "1", 1));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, "a@b", 3));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        ASSERT_ERR(queue_file_read(fd, &e), EBADMSG);

        /* a record longer than allowed */
        ASSERT_OK(ftruncate(fd, 0));
        ASSERT_EQ(pwrite(fd, "P\x7f\xff\xff\xff", 5, 0), 5);
        ASSERT_ERR(queue_file_read(fd, &e), EBADMSG);

        /* a NUL inside a text record */
        ASSERT_OK(ftruncate(fd, 0));
        ASSERT_EQ(pwrite(fd, "P\0\0\0\x02" "a\0", 7, 0), 7);
        ASSERT_ERR(queue_file_read(fd, &e), EBADMSG);
        /* ... anywhere in the envelope */
        ASSERT_OK(ftruncate(fd, 0));
        ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
        queue_writer_init(w, fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_TIME, "1", 1));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_ATTR, "a=b\0c", 5));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, "a@b", 3));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_RECIPIENT, "c@d", 3));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        ASSERT_ERR(queue_file_read(fd, &e), EBADMSG);
        ASSERT_ERR(queue_writer_record(w, QUEUE_REC_CONTENT, "", QUEUE_RECORD_MAX + 1), E2BIG);
        free(w);
        close(fd);
}

/* A file with the given recipient records (type, data) after the sender; read back. */
static int read_with_recipients(const char *const *recs, QueueEnvelope **ret) {
        int fd = memfd_create("queue", MFD_CLOEXEC), r;
        QueueWriter *w = malloc(sizeof(QueueWriter));

        ASSERT_TRUE(fd >= 0 && w);
        queue_writer_init(w, fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_TIME, "1", 1));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, "a@b", 3));
        for (size_t i = 0; recs[i]; i += 2)
                ASSERT_OK(queue_writer_record(w, (QueueRecordType) recs[i][0], recs[i + 1], strlen(recs[i + 1])));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        ASSERT_OK(queue_writer_content(w, "x\n", 2));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        free(w);
        r = queue_file_read(fd, ret);
        close(fd);
        return r;
}

TEST(dsn_options) {
        int fd = memfd_create("queue", MFD_CLOEXEC);
        QueueWriter *w = malloc(sizeof(QueueWriter));
        QueueEnvelope *e = NULL;

        /* Written by queue_writer_recipient(), read back per recipient; none when not given. */
        queue_writer_init(w, fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_TIME, "1", 1));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, "a@b", 3));
        ASSERT_OK(queue_writer_recipient(w, "r1@x", "SUCCESS,DELAY", "rfc822;r1+40x"));
        ASSERT_OK(queue_writer_recipient(w, "r2@x", NULL, ""));
        ASSERT_OK(queue_writer_recipient(w, "r3@x", "NEVER", NULL));
        ASSERT_OK(queue_writer_recipient(w, "r4@x", "", "utf-8;\xe7\x94\xa8@x"));
        ASSERT_ERR(queue_writer_recipient(w, "r5@x", "ALWAYS", NULL), EINVAL);
        ASSERT_ERR(queue_writer_recipient(w, "r5@x", NULL, "r5@x"), EINVAL);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        ASSERT_OK(queue_file_read(fd, &e));
        ASSERT_EQ(e->n_recipients, 4);
        ASSERT_STREQ(e->recipients[0].notify, "SUCCESS,DELAY");
        ASSERT_STREQ(e->recipients[0].orcpt, "rfc822;r1+40x");
        ASSERT_TRUE(!e->recipients[1].notify && !e->recipients[1].orcpt);
        ASSERT_STREQ(e->recipients[2].notify, "NEVER");
        ASSERT_TRUE(!e->recipients[2].orcpt);
        ASSERT_TRUE(!e->recipients[3].notify);
        ASSERT_STREQ(e->recipients[3].orcpt, "utf-8;\xe7\x94\xa8@x");
        /* Marking a recipient done leaves its options where they are. */
        ASSERT_OK(queue_file_mark_done(fd, e->recipients[0].offset));
        e = queue_envelope_free(e);
        ASSERT_OK(queue_file_read(fd, &e));
        ASSERT_TRUE(e->recipients[0].done);
        ASSERT_STREQ(e->recipients[0].notify, "SUCCESS,DELAY");
        e = queue_envelope_free(e);
        free(w);
        close(fd);

        /* The reader stays strict: an options record only right after a recipient, once, well-formed. */
        ASSERT_OK(read_with_recipients((const char *const[]) { "R", "a@x", "O", "NOTIFY=FAILURE", NULL }, &e));
        e = queue_envelope_free(e);
        ASSERT_OK(read_with_recipients((const char *const[]) { "D", "a@x", "O", "ORCPT=rfc822;a", NULL }, &e));
        e = queue_envelope_free(e);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "O", "NOTIFY=FAILURE", "R", "a@x", NULL }, &e), EBADMSG);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "R", "a@x", "O", "NOTIFY=FAILURE", "O", "ORCPT=rfc822;a", NULL }, &e), EBADMSG);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "R", "a@x", "O", "", NULL }, &e), EBADMSG);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "R", "a@x", "O", "NOTIFY=SOMETIMES", NULL }, &e), EBADMSG);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "R", "a@x", "O", "NOTIFY=NEVER NOTIFY=NEVER", NULL }, &e), EBADMSG);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "R", "a@x", "O", "NOTIFY=NEVER ", NULL }, &e), EBADMSG);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "R", "a@x", "O", "ORCPT=a@x", NULL }, &e), EBADMSG);
        ASSERT_ERR(read_with_recipients((const char *const[]) { "R", "a@x", "O", "RET=FULL", NULL }, &e), EBADMSG);
}

TEST(names) {
        ASSERT_STREQ(queue_name_to_string(QUEUE_DEFERRED), "deferred");
        ASSERT_EQ(queue_name_from_string("hold"), QUEUE_HOLD);
        ASSERT_EQ(queue_name_from_string("nope"), _QUEUE_NAME_INVALID);
        ASSERT_TRUE(queue_name_to_string(_QUEUE_NAME_MAX) == NULL);
}

int main(void) {
        RUN(round_trip);
        RUN(read_delivery_keeps_small_files);
        RUN(long_line_spans_records);
        RUN(truncated_anywhere);
        RUN(read_delivery_bytes);
        RUN(bad_structure);
        RUN(dsn_options);
        RUN(names);
        return 0;
}
