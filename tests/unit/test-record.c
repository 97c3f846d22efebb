/* test-record.c: the typed record reader and writer: the allow-list per section, truncation, records over
 * the maximum length, trailing bytes, the content walk, buffer and file readers alike, and a golden queue
 * file written byte for byte and read back. */
#include <sys/mman.h>
#include <sys/stat.h>

#include "tests.h"
#include "queue-file.h"
#include "record.h"

/* A format of three sections: 'H' first and alone; any of 'a' and 'b', then 'M' (a marker); any 'c', then
 * 'Z' last (a marker). */
static const RecordFormat test_format = {
        .sections = (const RecordSection[]) {
                { .end = 'H' },
                { RECORD_TYPES('a', 'b'), 'M' },
                { RECORD_TYPES('c'), 'Z' },
        },
        .n_sections = 3,
        .empty = RECORD_TYPES('M', 'Z'),
};

/* A log: any number of 'x' or 'y' records, appended, no end record. */
static const RecordFormat log_format = {
        .sections = (const RecordSection[]) {
                { RECORD_TYPES('x', 'y'), '\0' },
        },
        .n_sections = 1,
        .max_len = 8,
};

typedef struct Buf {
        unsigned char data[4096];
        size_t len;
} Buf;

static void put(Buf *b, char type, const char *data, size_t len) {
        ASSERT_TRUE(b->len + RECORD_HEADER + len <= sizeof b->data);
        b->data[b->len++] = (unsigned char) type;
        b->data[b->len++] = (unsigned char) (len >> 24);
        b->data[b->len++] = (unsigned char) (len >> 16);
        b->data[b->len++] = (unsigned char) (len >> 8);
        b->data[b->len++] = (unsigned char) len;
        memcpy(b->data + b->len, data, len);
        b->len += len;
}

static void put_s(Buf *b, char type, const char *s) {
        put(b, type, s, strlen(s));
}

static Buf sample(void) {
        Buf b = {};

        put_s(&b, 'H', "head");
        put_s(&b, 'a', "one");
        put_s(&b, 'b', "");
        put_s(&b, 'a', "two");
        put_s(&b, 'M', "");
        put_s(&b, 'c', "con");
        put_s(&b, 'c', "");
        put_s(&b, 'c', "tent");
        put_s(&b, 'Z', "");
        return b;
}

static int memfd_with(const void *data, size_t len) {
        int fd = memfd_create("record", MFD_CLOEXEC);

        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(pwrite(fd, data, len, 0), (ssize_t) len);
        return fd;
}

/* Reads all records with both readers, which must agree; the result of the last call, and the types seen. */
static int read_all(const RecordFormat *f, const void *data, size_t len, char *ret_types) {
        RecordReader rb, rf;
        int fd = memfd_with(data, len), kb, kf;
        size_t n = 0;

        record_reader_init(&rb, f, data, len);
        record_reader_init_fd(&rf, f, fd, len);
        for (;;) {
                Record b, r;
                kb = record_reader_next(&rb, &b);
                kf = record_reader_next(&rf, &r);
                ASSERT_EQ(kb, kf);
                if (kb <= 0)
                        break;
                ASSERT_TRUE(b.type == r.type && b.len == r.len);
                ASSERT_TRUE(b.offset == r.offset && b.section == r.section);

                const char *db, *df;
                ASSERT_OK(record_reader_data(&rb, &b, &db));
                ASSERT_OK(record_reader_data(&rf, &r, &df));
                ASSERT_TRUE(memcmp(db, df, b.len) == 0);
                if (ret_types)
                        ret_types[n++] = b.type;
        }
        if (ret_types)
                ret_types[n] = '\0';
        record_reader_done(&rb);
        record_reader_done(&rf);
        close(fd);
        return kb;
}

TEST(sections) {
        Buf b = sample();
        char types[32];
        RecordReader r;
        Record rec;

        ASSERT_EQ(read_all(&test_format, b.data, b.len, types), 0);
        ASSERT_STREQ(types, "HabaMcccZ");

        /* Offsets, sections, data and strings of each record. */
        record_reader_init(&r, &test_format, b.data, b.len);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_TRUE(rec.type == 'H' && rec.len == 4 && rec.offset == 0 && rec.section == 0);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_TRUE(rec.type == 'a' && rec.offset == RECORD_HEADER + 4 && rec.section == 1);
        char *s = NULL;
        ASSERT_OK(record_reader_string(&r, &rec, &s));
        ASSERT_STREQ(s, "one");
        free(s);
        record_reader_done(&r);

        /* A string holds no NUL, with either reader. */
        Buf nul = {};
        put(&nul, 'H', "a\0b", 3);
        int fd = memfd_with(nul.data, nul.len);
        for (int mode = 0; mode < 2; mode++) {
                if (mode == 0)
                        record_reader_init(&r, &test_format, nul.data, nul.len);
                else
                        record_reader_init_fd(&r, &test_format, fd, nul.len);
                ASSERT_EQ(record_reader_next(&r, &rec), 1);
                s = NULL;
                ASSERT_ERR(record_reader_string(&r, &rec, &s), EBADMSG);
                ASSERT_TRUE(s == NULL);
                record_reader_done(&r);
        }
        close(fd);

        /* After the end record: 0, and 0 again. */
        record_reader_init(&r, &test_format, b.data, b.len);
        while (record_reader_next(&r, &rec) > 0)
                ;
        ASSERT_EQ(record_reader_next(&r, &rec), 0);
        ASSERT_EQ(r.offset, b.len);
}

TEST(allow_list) {
        static const char *const bad[] = {
                "a",            /* before the first record */
                "HH",           /* the first record twice */
                "Hc",           /* a type of a later section */
                "HaZ",          /* the last section's end before its section */
                "HaMa",         /* a type of an earlier section */
                "HaMcM",        /* an end record of an earlier section */
                "HaMcx",        /* a type of no section */
                "Ha\x01",
                NULL,
        };

        /* The same construction with allowed types passes. */
        Buf ok = {};
        put(&ok, 'H', "d", 1);
        put(&ok, 'b', "d", 1);
        put(&ok, 'a', "d", 1);
        put(&ok, 'M', "", 0);
        put(&ok, 'c', "d", 1);
        put_s(&ok, 'Z', "");
        ASSERT_EQ(read_all(&test_format, ok.data, ok.len, NULL), 0);

        for (const char *const *t = bad; *t; t++) {
                Buf b = {};
                for (const char *p = *t; *p; p++)
                        put(&b, *p, "d", *p == 'M' || *p == 'Z' ? 0 : 1);
                put_s(&b, 'Z', "");
                ASSERT_ERR(read_all(&test_format, b.data, b.len, NULL), EBADMSG);
        }

        /* Type 0 is never allowed, even where a section has no end record. */
        Buf b = {};
        put_s(&b, 'H', "");
        put(&b, '\0', "", 0);
        ASSERT_ERR(read_all(&test_format, b.data, b.len, NULL), EBADMSG);
        b = (Buf) {};
        put_s(&b, 'x', "1");
        put(&b, '\0', "", 0);
        ASSERT_ERR(read_all(&log_format, b.data, b.len, NULL), EBADMSG);

        /* A marker carries no data. */
        b = (Buf) {};
        put_s(&b, 'H', "");
        put_s(&b, 'M', "x");
        put_s(&b, 'Z', "");
        ASSERT_ERR(read_all(&test_format, b.data, b.len, NULL), EBADMSG);
        b = sample();
        b.len -= RECORD_HEADER;
        put_s(&b, 'Z', "x");
        ASSERT_ERR(read_all(&test_format, b.data, b.len, NULL), EBADMSG);
}

TEST(truncation) {
        Buf b = sample();

        for (size_t cut = 0; cut < b.len; cut++)
                ASSERT_ERR(read_all(&test_format, b.data, cut, NULL), EBADMSG);

        /* A file shorter than the size the reader was given: truncated while being read. */
        int fd = memfd_with(b.data, b.len - 3);
        RecordReader r;
        Record rec;
        int k;
        record_reader_init_fd(&r, &test_format, fd, b.len);
        while ((k = record_reader_next(&r, &rec)) > 0) {
                const char *data;
                k = record_reader_data(&r, &rec, &data);
                if (k < 0)
                        break;
        }
        ASSERT_ERR(k, EBADMSG);
        record_reader_done(&r);
        close(fd);

        /* A log may end after any whole record, not inside one. */
        Buf l = {};
        ASSERT_EQ(read_all(&log_format, l.data, 0, NULL), 0);
        put_s(&l, 'x', "first");
        size_t whole = l.len;
        put_s(&l, 'y', "second");
        for (size_t cut = 0; cut <= l.len; cut++) {
                bool boundary = cut == 0 || cut == whole || cut == l.len;
                ASSERT_EQ(read_all(&log_format, l.data, cut, NULL), boundary ? 0 : -EBADMSG);
        }
}

TEST(oversize) {
        Buf b = {};
        char big[16] = "123456789";

        /* Longer than the format allows, although the data is all there. */
        put(&b, 'x', big, 8);
        ASSERT_EQ(read_all(&log_format, b.data, b.len, NULL), 0);
        put(&b, 'x', big, 9);
        ASSERT_ERR(read_all(&log_format, b.data, b.len, NULL), EBADMSG);

        /* RECORD_MAX by default; a length field beyond it fails before any data is read. */
        unsigned char h[] = { 'H', 0x00, 0x01, 0x00, 0x01 };
        ASSERT_ERR(read_all(&test_format, h, sizeof h, NULL), EBADMSG);
        unsigned char huge[] = { 'H', 0xff, 0xff, 0xff, 0xff, 'x' };
        ASSERT_ERR(read_all(&test_format, huge, sizeof huge, NULL), EBADMSG);

        /* Exactly RECORD_MAX is allowed. */
        size_t size = RECORD_HEADER + RECORD_MAX + RECORD_HEADER;
        unsigned char *m = calloc(1, size);
        ASSERT_TRUE(m);
        m[0] = 'H';
        m[2] = 0x01;
        m[RECORD_HEADER + RECORD_MAX] = 'Z';
        const RecordFormat two = {
                .sections = (const RecordSection[]) { { .end = 'H' }, { .end = 'Z' } },
                .n_sections = 2,
        };
        ASSERT_EQ(read_all(&two, m, size, NULL), 0);
        /* Every section but the last within head_max bytes, or -E2BIG. */
        RecordFormat bounded = two;
        bounded.head_max = RECORD_HEADER + RECORD_MAX;
        ASSERT_EQ(read_all(&bounded, m, size, NULL), 0);
        bounded.head_max--;
        ASSERT_ERR(read_all(&bounded, m, size, NULL), E2BIG);
        free(m);
}

TEST(trailing) {
        Buf b = sample();

        b.data[b.len++] = 'Z';
        ASSERT_ERR(read_all(&test_format, b.data, b.len, NULL), EBADMSG);
        b.len--;
        put_s(&b, 'Z', "");
        ASSERT_ERR(read_all(&test_format, b.data, b.len, NULL), EBADMSG);
}

typedef struct Collect {
        char buf[256];
        size_t len;
        unsigned pieces;
        unsigned fail_at;
} Collect;

static int collect(const char *data, size_t len, void *userdata) {
        Collect *c = userdata;

        ASSERT_TRUE(len > 0);   /* empty records are skipped */
        if (++c->pieces == c->fail_at)
                return -ENOSPC;
        memcpy(c->buf + c->len, data, len);
        c->len += len;
        return 0;
}

TEST(content_walk) {
        Buf b = sample();
        /* H "head", a "one", b "", a "two", M */
        size_t content = 5 * RECORD_HEADER + 4 + 3 + 3;
        int fd = memfd_with(b.data, b.len);

        for (int mode = 0; mode < 2; mode++) {
                RecordReader r;
                Collect c = {};

                if (mode == 0)
                        record_reader_init(&r, &test_format, b.data, b.len);
                else
                        record_reader_init_fd(&r, &test_format, fd, b.len);
                record_reader_seek(&r, content, 2);
                ASSERT_OK(record_reader_foreach(&r, collect, &c));
                ASSERT_EQ(c.len, 7);
                ASSERT_TRUE(memcmp(c.buf, "content", 7) == 0);
                ASSERT_EQ(c.pieces, 2);

                /* The first error of the callback ends the walk. */
                c = (Collect) { .fail_at = 2 };
                record_reader_seek(&r, content, 2);
                ASSERT_ERR(record_reader_foreach(&r, collect, &c), ENOSPC);
                ASSERT_EQ(c.len, 3);

                /* The envelope section walked alike ends at its end record. */
                c = (Collect) {};
                record_reader_seek(&r, RECORD_HEADER + 4, 1);
                ASSERT_OK(record_reader_foreach(&r, collect, &c));
                ASSERT_TRUE(c.len == 6 && memcmp(c.buf, "onetwo", 6) == 0);
                ASSERT_EQ(r.offset, content);
                record_reader_done(&r);
        }
        close(fd);

        /* A type that is not content inside the content: refused. */
        b.data[content + RECORD_HEADER + 3] = 'a';
        RecordReader r;
        Collect c = {};
        record_reader_init(&r, &test_format, b.data, b.len);
        record_reader_seek(&r, content, 2);
        ASSERT_ERR(record_reader_foreach(&r, collect, &c), EBADMSG);
}

TEST(writer) {
        int fd = memfd_create("record", MFD_CLOEXEC);
        RecordWriter *w = malloc(sizeof(RecordWriter));
        size_t big = 2 * RECORD_MAX + 10;
        char *data = malloc(big);
        struct stat st;

        ASSERT_TRUE(fd >= 0 && w && data);
        for (size_t i = 0; i < big; i++)
                data[i] = (char) ('a' + i % 26);
        record_writer_init(w, fd);
        ASSERT_OK(record_writer_record(w, 'H', "head", 4));
        ASSERT_EQ(record_writer_offset(w), RECORD_HEADER + 4);
        ASSERT_OK(record_writer_recordf(w, 'a', "%s=%d", "n", 42));
        ASSERT_OK(record_writer_record(w, 'M', NULL, 0));
        ASSERT_ERR(record_writer_record(w, 'c', data, RECORD_MAX + 1), E2BIG);
        uint64_t content = record_writer_offset(w);
        ASSERT_OK(record_writer_split(w, 'c', data, big));
        ASSERT_OK(record_writer_record(w, 'Z', NULL, 0));
        uint64_t end = record_writer_offset(w);
        ASSERT_OK(record_writer_flush(w));
        ASSERT_OK(fstat(fd, &st));
        ASSERT_EQ(st.st_size, end);
        ASSERT_EQ(w->len, 0);
        size_t whole_len;
        ASSERT_TRUE(record_writer_whole(w, &whole_len) == NULL);        /* several flushes wrote it */

        RecordReader r;
        Record rec;
        char *s = NULL;
        unsigned pieces = 0;
        size_t total = 0;
        record_reader_init_fd(&r, &test_format, fd, (uint64_t) st.st_size);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_OK(record_reader_string(&r, &rec, &s));
        ASSERT_STREQ(s, "n=42");
        free(s);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_EQ(r.offset, content);
        /* Split into records of at most RECORD_MAX, the content whole. */
        while (record_reader_next(&r, &rec) > 0 && rec.type == 'c') {
                const char *d;
                ASSERT_TRUE(rec.len > 0 && rec.len <= RECORD_MAX);
                ASSERT_OK(record_reader_data(&r, &rec, &d));
                ASSERT_TRUE(memcmp(d, data + total, rec.len) == 0);
                total += rec.len;
                pieces++;
        }
        ASSERT_EQ(total, big);
        ASSERT_TRUE(pieces >= 3);
        ASSERT_EQ(rec.type, 'Z');
        ASSERT_EQ(record_reader_next(&r, &rec), 0);
        record_reader_done(&r);
        free(data);
        free(w);
        close(fd);
}

/* A file written by one flush is still whole in the buffer, byte for byte what the file holds. */
TEST(writer_whole) {
        int fd = memfd_create("record", MFD_CLOEXEC);
        RecordWriter *w = malloc(sizeof(RecordWriter));
        char file[64];
        const void *whole;
        size_t len;

        ASSERT_TRUE(fd >= 0 && w);
        record_writer_init(w, fd);
        ASSERT_OK(record_writer_record(w, 'H', "head", 4));
        ASSERT_TRUE(record_writer_whole(w, &len) == NULL);              /* not flushed yet */
        ASSERT_OK(record_writer_split(w, 'c', "body\n", 5));
        ASSERT_OK(record_writer_flush(w));
        whole = record_writer_whole(w, &len);
        ASSERT_TRUE(whole != NULL);
        ASSERT_EQ(len, 2 * RECORD_HEADER + 9);
        ASSERT_EQ(pread(fd, file, sizeof file, 0), (ssize_t) len);
        ASSERT_TRUE(memcmp(whole, file, len) == 0);
        /* A second flush: the buffer holds only its part. */
        ASSERT_OK(record_writer_record(w, 'Z', NULL, 0));
        ASSERT_OK(record_writer_flush(w));
        ASSERT_TRUE(record_writer_whole(w, &len) == NULL);
        free(w);
        close(fd);
}

/* A piece of the read_ahead content: the pattern of its data runs on unbroken. */
static int count_pieces(const char *data, size_t len, void *userdata) {
        Collect *c = userdata;

        ASSERT_TRUE(len > 0);
        for (size_t i = 1; i < len; i++)
                ASSERT_EQ(data[i], (char) ('a' + (data[i - 1] - 'a' + 1) % 23));
        c->len++;
        return 0;
}

/* The file reader reads ahead: a small file is one read, so records after the first still come when the
 * file has been emptied since; records larger than the window, and records across its edge, read whole. */
TEST(read_ahead) {
        Buf b = sample();
        int fd = memfd_with(b.data, b.len);
        RecordReader r;
        Record rec;
        const char *d;

        record_reader_init_fd(&r, &test_format, fd, b.len);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_OK(ftruncate(fd, 0));
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_OK(record_reader_data(&r, &rec, &d));
        ASSERT_TRUE(rec.type == 'a' && rec.len == 3 && memcmp(d, "one", 3) == 0);
        record_reader_done(&r);
        /* A fresh reader does read the file, and finds it short. */
        record_reader_init_fd(&r, &test_format, fd, b.len);
        ASSERT_ERR(record_reader_next(&r, &rec), EBADMSG);
        record_reader_done(&r);
        close(fd);

        /* Content records of many lengths, up to RECORD_MAX, so that some cross the edge of the window and
         * some are larger than it; the file and the buffer readers agree on every byte. */
        RecordWriter *w = malloc(sizeof(RecordWriter));
        char *data = malloc(RECORD_MAX);
        struct stat st;
        fd = memfd_create("record", MFD_CLOEXEC);
        ASSERT_TRUE(fd >= 0 && w && data);
        for (size_t i = 0; i < RECORD_MAX; i++)
                data[i] = (char) ('a' + i % 23);
        record_writer_init(w, fd);
        ASSERT_OK(record_writer_record(w, 'H', "head", 4));
        ASSERT_OK(record_writer_record(w, 'M', NULL, 0));
        const size_t lens[] = { 1, 40000, RECORD_MAX, 7, RECORD_READ_AHEAD - 20, 30000, 0, RECORD_MAX, 3 };
        for (size_t k = 0; k < ELEMENTSOF(lens); k++)
                ASSERT_OK(record_writer_record(w, 'c', data + k, lens[k] - (lens[k] == RECORD_MAX ? k : 0)));
        ASSERT_OK(record_writer_record(w, 'Z', NULL, 0));
        ASSERT_OK(record_writer_flush(w));
        ASSERT_OK(fstat(fd, &st));
        ASSERT_TRUE((uint64_t) st.st_size > 3 * RECORD_READ_AHEAD);
        char *copy = malloc((size_t) st.st_size);
        ASSERT_TRUE(copy);
        ASSERT_EQ(pread(fd, copy, (size_t) st.st_size, 0), st.st_size);
        char types[32];
        ASSERT_EQ(read_all(&test_format, copy, (size_t) st.st_size, types), 0);
        ASSERT_STREQ(types, "HMcccccccccZ");

        /* The content walk over the file gives each piece as written. */
        Collect c = {};
        record_reader_init_fd(&r, &test_format, fd, (uint64_t) st.st_size);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_EQ(record_reader_next(&r, &rec), 1);
        ASSERT_OK(record_reader_foreach(&r, count_pieces, &c));
        ASSERT_EQ(c.len, ELEMENTSOF(lens) - 1);        /* the empty one is skipped */
        record_reader_done(&r);
        free(copy);
        free(data);
        free(w);
        close(fd);
}

static char *read_golden(size_t *ret_len) {
        const char *dir = getenv("POSTBUS_TEST_DATA");
        char path[4096];
        struct stat st;
        char *buf;
        FILE *f;

        ASSERT_TRUE(dir);
        (void) snprintf(path, sizeof path, "%s/record/queue-file.golden", dir);
        f = fopen(path, "re");
        ASSERT_TRUE(f);
        ASSERT_OK(fstat(fileno(f), &st));
        buf = malloc((size_t) st.st_size);
        ASSERT_TRUE(buf);
        ASSERT_EQ(fread(buf, 1, (size_t) st.st_size, f), (size_t) st.st_size);
        fclose(f);
        *ret_len = (size_t) st.st_size;
        return buf;
}

static int collect_queue(const char *data, size_t len, void *userdata) {
        Collect *c = userdata;

        ASSERT_TRUE(c->len + len <= sizeof c->buf);
        memcpy(c->buf + c->len, data, len);
        c->len += len;
        return 0;
}

/* tests/data/record/queue-file.golden was made from the format's description, not by this writer. */
TEST(golden_queue_file) {
        static const char content[] = "Subject: golden\n\nline one\nline two\n";
        size_t golden_len;
        char *golden = read_golden(&golden_len);
        int fd = memfd_create("queue", MFD_CLOEXEC);
        QueueWriter *w = malloc(sizeof(QueueWriter));
        QueueEnvelope *e = NULL;
        struct stat st;

        /* The writer writes it byte for byte. */
        ASSERT_TRUE(fd >= 0 && w);
        queue_writer_init(w, fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_recordf(w, QUEUE_REC_TIME, "%llu", 1700000000123456ULL));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_ATTR, "client_address=192.0.2.1", 24));
        ASSERT_OK(queue_writer_recordf(w, QUEUE_REC_ATTR, "helo_name=%s", "client.example"));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, "alice@example.org", 17));
        ASSERT_OK(queue_writer_recipient(w, "bob@example.org", "SUCCESS,FAILURE", "rfc822;bob@example.org"));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_DONE, "carol@example.org", 17));
        ASSERT_OK(queue_writer_recipient(w, "dave@example.org", NULL, NULL));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        ASSERT_OK(queue_writer_content(w, content, strlen(content)));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        ASSERT_OK(fstat(fd, &st));
        ASSERT_EQ(st.st_size, golden_len);
        char *written = malloc(golden_len);
        ASSERT_EQ(pread(fd, written, golden_len, 0), (ssize_t) golden_len);
        ASSERT_TRUE(memcmp(written, golden, golden_len) == 0);
        free(written);
        close(fd);

        /* The reader reads it back, every field. */
        fd = memfd_with(golden, golden_len);
        ASSERT_OK(queue_file_read(fd, &e));
        ASSERT_EQ(e->arrival_usec, 1700000000123456ULL);
        ASSERT_STREQ(e->sender, "alice@example.org");
        ASSERT_STREQ(queue_envelope_attr(e, "client_address"), "192.0.2.1");
        ASSERT_STREQ(queue_envelope_attr(e, "helo_name"), "client.example");
        ASSERT_TRUE(e->attrs[2] == NULL);
        ASSERT_EQ(e->n_recipients, 3);
        ASSERT_STREQ(e->recipients[0].address, "bob@example.org");
        ASSERT_STREQ(e->recipients[0].notify, "SUCCESS,FAILURE");
        ASSERT_STREQ(e->recipients[0].orcpt, "rfc822;bob@example.org");
        ASSERT_TRUE(!e->recipients[0].done && e->recipients[1].done && !e->recipients[2].done);
        ASSERT_TRUE(!e->recipients[1].notify && !e->recipients[2].orcpt);
        ASSERT_EQ(golden[e->recipients[2].offset], 'R');
        ASSERT_EQ(queue_envelope_pending(e), 2);
        ASSERT_EQ(e->content_size, strlen(content));
        ASSERT_EQ(e->file_size, golden_len);
        ASSERT_EQ(e->content_offset, golden_len - (RECORD_HEADER + strlen(content)) - RECORD_HEADER);
        Collect c = {};
        ASSERT_OK(queue_file_content_foreach(fd, e, collect_queue, &c));
        ASSERT_TRUE(c.len == strlen(content) && memcmp(c.buf, content, c.len) == 0);

        /* The same bytes through the buffer reader and the queue file's table. */
        char types[32];
        ASSERT_EQ(read_all(&queue_file_format, golden, golden_len, types), 0);
        ASSERT_STREQ(types, "PTAASRODRMCE");
        queue_envelope_free(e);
        free(golden);
        free(w);
        close(fd);
}

int main(void) {
        RUN(sections);
        RUN(allow_list);
        RUN(truncation);
        RUN(oversize);
        RUN(trailing);
        RUN(content_walk);
        RUN(writer);
        RUN(writer_whole);
        RUN(read_ahead);
        RUN(golden_queue_file);
        return 0;
}
