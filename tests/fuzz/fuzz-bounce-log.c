/* fuzz-bounce-log.c: a delivery status log as bounce reads it back (bounce_log_parse()). Whatever the
 * bytes, the good prefix is no longer than the input, every record in it passes the checks that guard
 * Append, writing the records out again reads back the same, and a failure report can be made of them
 * with the input as the returned message. */
#include <sys/mman.h>

#include "fuzz.h"
#include "src/bounce/bounce.h"

static void check_same(const BounceRecord *a, const BounceRecord *b) {
        CHECK(streq(a->recipient, b->recipient) && streq(a->original_recipient, b->original_recipient));
        CHECK(streq(a->orcpt, b->orcpt) && streq(a->notify, b->notify) && streq(a->action, b->action));
        CHECK(streq(a->status, b->status) && streq(a->relay, b->relay) && streq(a->text, b->text));
        CHECK(a->time_usec == b->time_usec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(bounce_log_freep) BounceLog *l = NULL, *again = NULL;
        _cleanup_free_ QueueWriter *w = NULL;
        _cleanup_free_ char *copy = NULL, *report = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *why;
        size_t valid, valid2, report_size;

        if (bounce_log_parse((const char *) data, size, &l, &valid) < 0)
                return 0;       /* out of memory */
        CHECK(valid <= size);
        for (size_t i = 0; i < l->n_records; i++)
                CHECK(bounce_record_check(l->records + i, &why) == 0);

        /* What was read writes out and reads back the same. */
        fd = memfd_create("fuzz", MFD_CLOEXEC);
        w = malloc(sizeof(QueueWriter));
        if (fd < 0 || !w)
                return 0;
        queue_writer_init(w, fd);
        CHECK(bounce_log_write(w, true, l->records, l->n_records, l->warned) == 0);
        off_t n = lseek(fd, 0, SEEK_END);
        CHECK(n >= 0);
        copy = malloc((size_t) n + 1);
        if (!copy)
                return 0;
        CHECK(pread(fd, copy, (size_t) n, 0) == n);
        CHECK(bounce_log_parse(copy, (size_t) n, &again, &valid2) == 0);
        CHECK(valid2 == (size_t) n && again->n_records == l->n_records && again->warned == l->warned);
        for (size_t i = 0; i < l->n_records; i++)
                check_same(l->records + i, again->records + i);

        BounceReport r = {
                .kind = BOUNCE_REPORT_FAILURE,
                .myhostname = "mail.example.org",
                .queue_id = "6553F1000000A0B1",
                .sender = "alice@example.org",
                .to = "alice@example.org",
                .message_id = "<x@mail.example.org>",
                .records = l->records,
                .n_records = l->n_records,
                .content = (const char *) data,
                .content_size = size,
                .original_size = size,
                .size_limit = size % 2 ? size : 0,
        };
        int k = bounce_report_compose(&r, &report, &report_size);
        CHECK(k == 0 || k == -ENOMEM);
        return 0;
}
