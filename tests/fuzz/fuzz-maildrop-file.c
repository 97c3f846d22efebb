/* fuzz-maildrop-file.c: pickup's reader of maildrop files, the files any local user can shape. Whatever
 * it accepts must hold exactly the content it counted, and must survive being written again by the
 * writer sendmail uses and read back unchanged. */
#include <sys/mman.h>
#include <sys/stat.h>

#include "maildrop-file.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        MaildropEnvelope *e = NULL, *again = NULL;
        FuzzSink content = {};
        static QueueWriter w;
        struct stat st;
        int r;

        r = maildrop_parse(data, size, 1U << 20, &e);
        CHECK(r == 0 || r == -EBADMSG || r == -E2BIG || r == -EFBIG);
        if (r < 0)
                return 0;
        CHECK(e->sender && e->recipients && !e->recipients[e->n_recipients]);
        CHECK(e->n_recipients > 0 || e->extract_recipients);
        CHECK(e->content_offset <= size);
        CHECK(maildrop_content_foreach(data, size, e, fuzz_sink, &content) == 0);
        CHECK(content.len == e->content_size);

        int fd = memfd_create("fuzz", MFD_CLOEXEC);
        CHECK(fd >= 0);
        queue_writer_init(&w, fd);
        CHECK(maildrop_write_envelope(&w, e) == 0);
        CHECK(queue_writer_content(&w, content.buf, content.len) == 0);
        CHECK(maildrop_write_end(&w) == 0);
        CHECK(fstat(fd, &st) == 0);
        void *copy = st.st_size > 0 ? mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
        CHECK(copy != MAP_FAILED);
        CHECK(maildrop_parse(copy, (size_t) st.st_size, 1U << 20, &again) == 0);
        CHECK(again->time_usec == e->time_usec && streq(again->sender, e->sender));
        CHECK(again->n_recipients == e->n_recipients && again->extract_recipients == e->extract_recipients);
        for (size_t i = 0; i < e->n_recipients; i++)
                CHECK(streq(again->recipients[i], e->recipients[i]));
        CHECK(streq_null(again->full_name, e->full_name) && streq_null(again->dsn_notify, e->dsn_notify));
        CHECK(streq_null(again->dsn_ret, e->dsn_ret) && streq_null(again->dsn_envid, e->dsn_envid));
        CHECK(streq_null(again->body_type, e->body_type) && again->content_size == e->content_size);

        munmap(copy, (size_t) st.st_size);
        close(fd);
        free(content.buf);
        maildrop_envelope_free(again);
        maildrop_envelope_free(e);
        return 0;
}
