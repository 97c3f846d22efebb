/* fuzz-smtpd-data.c: the DATA reader, fed in pieces and with an output buffer whose sizes the first
 * bytes pick, checked against a plain reading of RFC 5321: the message ends at the first CRLF.CRLF
 * (or a first line "."), lines are split on CRLF only and lose one leading dot. */
#include "../../src/smtpd/smtpd-protocol.h"
#include "fuzz.h"

typedef struct Result {
        char *out;
        size_t out_len, consumed;
        bool done, line_too_long, too_big;
} Result;

static Result read_all(const char *in, size_t len, size_t line_limit, uint64_t size_limit, size_t chunk,
                       size_t out_size) {
        Result res = { .out = malloc(len + 1) };
        char out[256];
        SmtpdDataReader r;

        CHECK(res.out && out_size <= sizeof out);
        smtpd_data_reader_init(&r, line_limit, size_limit);
        while (res.consumed < len && !smtpd_data_done(&r)) {
                size_t n, used = smtpd_data_read(&r, in + res.consumed, MIN(chunk, len - res.consumed), out,
                                                 out_size, &n);
                CHECK((used > 0 || n > 0) && n <= out_size && res.out_len + n <= len);
                memcpy(res.out + res.out_len, out, n);
                res.out_len += n;
                res.consumed += used;
        }
        res.done = smtpd_data_done(&r);
        res.line_too_long = r.line_too_long;
        res.too_big = r.too_big;
        return res;
}

static Result read_plainly(const char *in, size_t len, size_t line_limit, uint64_t size_limit) {
        Result res = { .out = malloc(len + 1) };
        const char *p = in, *end = in + len;

        CHECK(res.out);
        for (;;) {
                const char *crlf = memmem(p, (size_t) (end - p), "\r\n", 2);
                if (!crlf) {
                        res.consumed = len;
                        break;
                }
                const char *line = p;
                size_t line_len = (size_t) (crlf - p);
                if (line_len == 1 && line[0] == '.') {
                        res.done = true;
                        res.consumed = (size_t) (crlf + 2 - in);
                        break;
                }
                if (line_len > 0 && line[0] == '.') {
                        line++;
                        line_len--;
                }
                if (line_len > line_limit)
                        res.line_too_long = true;
                memcpy(res.out + res.out_len, line, line_len);
                res.out_len += line_len;
                res.out[res.out_len++] = '\n';
                p = crlf + 2;
        }
        res.too_big = res.out_len > size_limit;
        return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 3)
                return 0;
        size_t line_limit = 1 + data[0] % 32, chunk = 1 + data[2] % 16, out_size = 1 + data[2] / 16;
        uint64_t size_limit = (uint64_t) data[1] * 4;
        const char *in = (const char *) data + 3;
        size_t len = size - 3;

        Result whole = read_all(in, len, line_limit, size_limit, len + 1, 256);
        Result pieces = read_all(in, len, line_limit, size_limit, chunk, out_size);
        Result plain = read_plainly(in, len, line_limit, size_limit);

        /* However the input is cut, the result is the same. */
        CHECK(pieces.done == whole.done && pieces.consumed == whole.consumed);
        CHECK(pieces.line_too_long == whole.line_too_long && pieces.too_big == whole.too_big);
        CHECK(pieces.out_len == whole.out_len && memcmp(pieces.out, whole.out, whole.out_len) == 0);

        /* It is what RFC 5321 says; an unfinished last line is not compared. Content is stored up to
         * where a limit is exceeded. */
        CHECK(plain.done == whole.done && plain.consumed == whole.consumed);
        if (whole.done) {
                CHECK(plain.line_too_long == whole.line_too_long && plain.too_big == whole.too_big);
                CHECK(whole.out_len <= plain.out_len && memcmp(plain.out, whole.out, whole.out_len) == 0);
                if (!whole.line_too_long && !whole.too_big)
                        CHECK(plain.out_len == whole.out_len);
        }

        free(whole.out);
        free(pieces.out);
        free(plain.out);
        return 0;
}
