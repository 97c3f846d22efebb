/* fuzz-smtpd-data.c: the DATA/BDAT content reader, fed in pieces and with an output buffer whose sizes the
 * first bytes pick, in the mode they pick (DATA or BDAT chunks; bare LF normalized or rejected), checked
 * against a plain line-by-line reading: lines end at CRLF, a bare LF or a bare CR; after DATA they lose
 * one leading dot, and the line "." ends the message only when it and the line before ended in CRLF.
 * Whatever the input, no stored line is "." unless the client sent "..". */
#include "../../src/smtpd/smtpd-protocol.h"
#include "fuzz.h"

typedef struct Result {
        char *out;
        size_t out_len, consumed;
        bool done, bare_lf, too_big;
} Result;

static Result read_all(const char *in, size_t len, uint64_t size_limit, unsigned flags, size_t chunk,
                       size_t out_size) {
        Result res = { .out = malloc(len + 2) };
        char out[256];
        SmtpdDataReader r;

        CHECK(res.out && out_size <= sizeof out);
        smtpd_data_reader_init(&r, size_limit, flags);
        while (res.consumed < len && !smtpd_data_done(&r) && !smtpd_data_bare_lf(&r)) {
                size_t n, used = smtpd_data_read(&r, in + res.consumed, MIN(chunk, len - res.consumed), out,
                                                 out_size, &n);
                CHECK((used > 0 || n > 0 || smtpd_data_bare_lf(&r)) && n <= out_size && res.out_len + n <= len);
                memcpy(res.out + res.out_len, out, n);
                res.out_len += n;
                res.consumed += used;
        }
        if (!(flags & SMTPD_DATA_DOT_STUFFED) && !smtpd_data_bare_lf(&r)) {
                size_t n = smtpd_data_finish(&r, out, out_size);
                CHECK(n <= 1 && res.out_len + n <= len + 1);
                memcpy(res.out + res.out_len, out, n);
                res.out_len += n;
        }
        res.done = smtpd_data_done(&r);
        res.bare_lf = smtpd_data_bare_lf(&r);
        res.too_big = r.too_big;
        return res;
}

static void store(Result *res, const char *p, size_t n) {
        memcpy(res->out + res->out_len, p, n);
        res->out_len += n;
}

static Result read_plainly(const char *in, size_t len, uint64_t size_limit, unsigned flags) {
        bool dots = flags & SMTPD_DATA_DOT_STUFFED, prev_bare = flags & SMTPD_DATA_AFTER_BARE_LF;
        Result res = { .out = malloc(len + 2) };
        size_t i = 0;

        CHECK(res.out);
        for (;;) {
                size_t j = i, next = 0;
                enum { UNFINISHED, CRLF, BARE, CR_AT_END } end;

                while (j < len && in[j] != '\r' && in[j] != '\n')
                        j++;
                const char *line = in + i;
                size_t line_len = j - i, dot = dots && line_len > 0 && line[0] == '.';

                if (j == len)
                        end = UNFINISHED;
                else if (in[j] == '\n')
                        end = BARE, next = j + 1;
                else if (j + 1 < len && in[j + 1] == '\n')
                        end = CRLF, next = j + 2;
                else if (j + 1 < len)
                        end = BARE, next = j + 1;
                else
                        end = CR_AT_END;

                if (end == CRLF && dots && line_len == 1 && line[0] == '.' && !prev_bare) {
                        res.done = true;
                        res.consumed = next;
                        break;
                }
                store(&res, line + dot, line_len - dot);
                if (end == BARE && in[j] == '\n' && (flags & SMTPD_DATA_REJECT_BARE_LF)) {
                        res.bare_lf = true;
                        res.consumed = j;
                        break;
                }
                if (end == UNFINISHED || end == CR_AT_END) {
                        if (end == CR_AT_END && !dots)
                                store(&res, "\n", 1);
                        res.consumed = len;
                        break;
                }
                store(&res, "\n", 1);
                prev_bare = end == BARE;
                i = next;
        }
        res.too_big = res.out_len > size_limit;
        return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 3)
                return 0;
        size_t chunk = 1 + data[2] % 16, out_size = 1 + data[2] / 16;
        unsigned flags = (data[0] & 0x20 ? 0 : SMTPD_DATA_DOT_STUFFED) |
                         (data[0] & 0x40 ? SMTPD_DATA_REJECT_BARE_LF : 0) |
                         (data[0] & 0x80 ? SMTPD_DATA_AFTER_BARE_LF : 0);
        uint64_t size_limit = (uint64_t) data[1] * 4;
        const char *in = (const char *) data + 3;
        size_t len = size - 3;

        Result whole = read_all(in, len, size_limit, flags, len + 1, 256);
        Result pieces = read_all(in, len, size_limit, flags, chunk, out_size);
        Result plain = read_plainly(in, len, size_limit, flags);

        /* However the input is cut, the result is the same. */
        CHECK(pieces.done == whole.done && pieces.bare_lf == whole.bare_lf && pieces.consumed == whole.consumed);
        CHECK(pieces.too_big == whole.too_big);
        CHECK(pieces.out_len == whole.out_len && memcmp(pieces.out, whole.out, whole.out_len) == 0);

        /* It is what the plain reading says; content is stored up to where the size limit is exceeded; lines
         * of any length are kept whole. */
        CHECK(plain.done == whole.done && plain.bare_lf == whole.bare_lf && plain.consumed == whole.consumed);
        CHECK(plain.too_big == whole.too_big);
        CHECK(whole.out_len <= plain.out_len && memcmp(plain.out, whole.out, whole.out_len) == 0);
        if (!whole.too_big)
                CHECK(plain.out_len == whole.out_len);

        /* Stored content has LF line ends only, and after DATA no line "." that was not sent as "..". */
        CHECK(!memchr(whole.out, '\r', whole.out_len));
        if (flags & SMTPD_DATA_DOT_STUFFED) {
                size_t dotdot = 0, dotlines = 0;
                for (size_t i = 0; i + 2 < len; i++)
                        if ((i == 0 || in[i - 1] == '\n' || in[i - 1] == '\r') && in[i] == '.' && in[i + 1] == '.' &&
                            (in[i + 2] == '\r' || in[i + 2] == '\n'))
                                dotdot++;
                for (size_t i = 0; i + 1 < whole.out_len; i++)
                        if ((i == 0 || whole.out[i - 1] == '\n') && whole.out[i] == '.' && whole.out[i + 1] == '\n')
                                dotlines++;
                CHECK(dotlines <= dotdot);
        }

        free(whole.out);
        free(pieces.out);
        free(plain.out);
        return 0;
}
