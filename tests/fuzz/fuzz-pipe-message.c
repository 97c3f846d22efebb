/* fuzz-pipe-message.c: what reaches the pipe role from mail and from commands: the input as message content
 * copied with every flag combination the second byte picks (in pieces whose size the first byte picks, which
 * must not change the result), as headers for the Delivered-To loop check, as a command's output for the
 * result text, and as a recipient address and an argv= word for the macro expansion. */
#include <sys/wait.h>

#include "../../src/pipe/pipe.h"
#include "fuzz.h"

static char *copy(unsigned flags, const char *data, size_t size, size_t step, size_t *ret_len) {
        Buffer b = {};
        PipeCopy c;

        pipe_copy_init(&c, flags, flags & PIPE_FLAG_FINAL ? "\r\n" : "\n");
        for (size_t off = 0; off < size; off += step)
                CHECK(pipe_copy_feed(&c, data + off, size - off < step ? size - off : step, &b) >= 0);
        CHECK(pipe_copy_finish(&c, &b) >= 0);
        *ret_len = b.len;
        return b.data;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        size_t step, n1, n2;
        unsigned flags;

        if (size < 2)
                return 0;
        step = (size_t) data[0] % 64 + 1;
        flags = (unsigned) data[1] << 3 | (data[1] & 1u);   /* B, and O R X h q u . > */
        buf += 2;
        size -= 2;

        char *whole = copy(flags, buf, size, size ? size : 1, &n1);
        char *pieces = copy(flags, buf, size, step, &n2);
        CHECK(n1 == n2 && (n1 == 0 || memcmp(whole, pieces, n1) == 0));
        CHECK(n1 >= size);
        free(whole);
        free(pieces);

        PipeHeaderScan s;
        pipe_header_scan_init(&s, "bob@example.org");
        for (size_t off = 0; off < size; off += step)
                if (pipe_header_scan_feed(&s, buf + off, size - off < step ? size - off : step))
                        break;
        pipe_header_scan_finish(&s);
        CHECK(s.done);

        PipeResult r;
        const PipeEnd end = { .code = CLD_EXITED, .status = data[1] };
        pipe_command_result(&end, "/bin/x", "t", buf, size, &r);
        CHECK(r.dsn[0] == '2' || r.dsn[0] == '4' || r.dsn[0] == '5');
        CHECK(strlen(r.text) < PIPE_TEXT_SIZE);
        for (const char *p = r.text; *p; p++)
                CHECK((unsigned char) *p >= ' ' && *p != 0x7F);

        char *text = strndup(buf, size);
        if (text && !memchr(buf, '\0', size)) {
                const PipeAddress a[] = { { text, text }, { "x@y", NULL } };
                const PipeExpand x = {
                        .flags = flags, .delimiter = "+-", .sender = text, .null_sender = "", .nexthop = text,
                        .recipients = a, .n_recipients = 2,
                };
                char *argv[] = { (char *) "/bin/x", (char *) "${recipient}", (char *) "$user.$extension@$domain",
                                 text, NULL };
                char **out = NULL, *error = NULL;
                int k = pipe_argv_expand(argv, &x, &out, &error);
                CHECK(k >= 0 || k == -EINVAL || k == -ENOMEM);
                CHECK((k >= 0) == (out != NULL));
                CHECK(k != -EINVAL || error != NULL);
                strv_free(out);
                free(error);

                char *q = NULL, *u = NULL;
                if (pipe_address_unquote(text, &u) >= 0 && pipe_address_quote(u, &q) >= 0)
                        CHECK(strlen(q) <= 2 * strlen(u) + 2);
                free(q);
                free(u);
        }
        free(text);
        return 0;
}
