/* fuzz-queue-file.c: the queue file reader that qmgr and every delivery agent trust. Whatever it accepts
 * must hold exactly the content it counted, agree with the record reader over the same bytes in memory,
 * and survive being written again by the queue writer and read back unchanged. */
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "queue-file.h"

static int memfd_with(const void *data, size_t size) {
        int fd = memfd_create("fuzz", MFD_CLOEXEC);

        CHECK(fd >= 0);
        CHECK(size == 0 || pwrite(fd, data, size, 0) == (ssize_t) size);
        return fd;
}

/* The record reader over the bytes in memory must come to the same verdict on the structure. */
static int read_buffer(const uint8_t *data, size_t size) {
        RecordReader r;
        Record rec;
        int k;

        record_reader_init(&r, &queue_file_format, data, size);
        while ((k = record_reader_next(&r, &rec)) > 0)
                CHECK(rec.offset + RECORD_HEADER + rec.len <= size);
        return k;
}

/* Writes e and its content again, the done recipients marked as qmgr marks them. */
static int write_again(const QueueEnvelope *e, const FuzzSink *content) {
        static QueueWriter w;
        uint64_t *offsets = calloc(e->n_recipients + 1, sizeof(uint64_t));
        int fd = memfd_create("fuzz-again", MFD_CLOEXEC);

        CHECK(fd >= 0 && offsets);
        queue_writer_init(&w, fd);
        CHECK(queue_writer_record(&w, QUEUE_REC_MAGIC, QUEUE_MAGIC, STRLEN(QUEUE_MAGIC)) == 0);
        CHECK(queue_writer_recordf(&w, QUEUE_REC_TIME, "%" PRIu64, e->arrival_usec) == 0);
        for (char **a = e->attrs; a && *a; a++)
                CHECK(queue_writer_record(&w, QUEUE_REC_ATTR, *a, strlen(*a)) == 0);
        CHECK(queue_writer_record(&w, QUEUE_REC_SENDER, e->sender, strlen(e->sender)) == 0);
        for (size_t i = 0; i < e->n_recipients; i++) {
                const QueueRecipient *rc = e->recipients + i;
                offsets[i] = queue_writer_offset(&w);
                CHECK(queue_writer_recipient(&w, rc->address, rc->notify, rc->orcpt) == 0);
        }
        CHECK(queue_writer_record(&w, QUEUE_REC_MESSAGE, NULL, 0) == 0);
        CHECK(queue_writer_content(&w, content->buf, content->len) == 0);
        CHECK(queue_writer_record(&w, QUEUE_REC_END, NULL, 0) == 0);
        CHECK(queue_writer_flush(&w) == 0);
        for (size_t i = 0; i < e->n_recipients; i++)
                if (e->recipients[i].done)
                        CHECK(queue_file_mark_done(fd, offsets[i]) == 0);
        free(offsets);
        return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        QueueEnvelope *e = NULL, *again = NULL;
        FuzzSink content = {}, content_again = {};
        int fd, fd_again, r;

        fd = memfd_with(data, size);
        r = queue_file_read(fd, &e);
        CHECK(r == 0 || r == -EBADMSG);
        if (r < 0) {
                CHECK(!e);
                /* A structure the record reader accepts may still hold data the queue reader refuses. */
                (void) read_buffer(data, size);
                close(fd);
                return 0;
        }
        CHECK(read_buffer(data, size) == 0);
        CHECK(e->sender && e->n_recipients > 0 && e->file_size == size);
        CHECK(e->content_offset <= size && e->content_size <= size - e->content_offset);
        for (size_t i = 0; i < e->n_recipients; i++) {
                const QueueRecipient *rc = e->recipients + i;
                CHECK(rc->address[0] && rc->offset < e->content_offset);
                CHECK(data[rc->offset] == (rc->done ? QUEUE_REC_DONE : QUEUE_REC_RECIPIENT));
        }
        for (char **a = e->attrs; a && *a; a++)
                CHECK(strchr(*a, '='));
        CHECK(queue_file_content_foreach(fd, e, fuzz_sink, &content) == 0);
        CHECK(content.len == e->content_size);

        fd_again = write_again(e, &content);
        CHECK(queue_file_read(fd_again, &again) == 0);
        CHECK(again->arrival_usec == e->arrival_usec && streq(again->sender, e->sender));
        CHECK(again->n_recipients == e->n_recipients && again->content_size == e->content_size);
        for (size_t i = 0; i < e->n_recipients; i++) {
                CHECK(streq(again->recipients[i].address, e->recipients[i].address));
                CHECK(again->recipients[i].done == e->recipients[i].done);
                CHECK(streq_null(again->recipients[i].notify, e->recipients[i].notify));
                CHECK(streq_null(again->recipients[i].orcpt, e->recipients[i].orcpt));
        }
        size_t n_attrs = 0;
        for (; e->attrs && e->attrs[n_attrs]; n_attrs++)
                CHECK(again->attrs && streq(again->attrs[n_attrs], e->attrs[n_attrs]));
        CHECK(n_attrs == 0 ? !again->attrs : !again->attrs[n_attrs]);
        CHECK(queue_envelope_pending(again) == queue_envelope_pending(e));
        CHECK(queue_file_content_foreach(fd_again, again, fuzz_sink, &content_again) == 0);
        CHECK(content_again.len == content.len);
        CHECK(content.len == 0 || memcmp(content_again.buf, content.buf, content.len) == 0);

        close(fd_again);
        close(fd);
        free(content.buf);
        free(content_again.buf);
        queue_envelope_free(again);
        queue_envelope_free(e);
        return 0;
}
