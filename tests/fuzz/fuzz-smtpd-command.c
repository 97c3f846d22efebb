/* fuzz-smtpd-command.c: what a client sends in command mode: split into lines as smtpd does, in pieces
 * whose size the first byte picks, and checked against a plain split on LF (a CR before it is not part of
 * the line); each line parsed as a command, MAIL and RCPT arguments as paths with their ESMTP parameters
 * (SIZE, BODY, SMTPUTF8, DSN), BDAT and VRFY arguments, and as a status text; the argument as EHLO keywords
 * (smtpd_discard_ehlo_keywords), the line as a reply given a footer and stripped of its enhanced codes. */
#include "../../src/shared/utf8.h"
#include "../../src/smtpd/smtpd-protocol.h"
#include "fuzz.h"

#define LINE_LIMIT 64

static void parse_line(const char *line, size_t len) {
        char text[LINE_LIMIT + 1], reply[SMTPD_REPLY_LINE_MAX];
        SmtpdCommand c;
        SmtpdPath p;
        int r;

        if (smtpd_command_parse(line, len, &c) < 0)
                return;
        CHECK(c.type >= 0 && c.type < _SMTPD_COMMAND_MAX);
        CHECK(c.arg >= line && c.arg + c.arg_len <= line + len);
        if (c.type == SMTPD_COMMAND_MAIL || c.type == SMTPD_COMMAND_RCPT) {
                bool strict = len % 2;  /* both ways of strict_rfc821_envelopes */
                r = c.type == SMTPD_COMMAND_MAIL ? smtpd_mail_parse(c.arg, c.arg_len, strict, &p)
                                                 : smtpd_rcpt_parse(c.arg, c.arg_len, strict, &p);
                if (r >= 0) {
                        CHECK(strlen(p.address) <= ADDRESS_MAX);
                        CHECK(address_valid(p.address));
                        CHECK(utf8_valid(p.address, strlen(p.address)));
                        CHECK(c.type == SMTPD_COMMAND_MAIL || p.address[0] != '\0');
                        CHECK(strlen(p.dsn_envid) <= DSN_ENVID_MAX);
                        CHECK(!p.dsn_envid[0] || dsn_envid_valid(p.dsn_envid, strlen(p.dsn_envid)));
                        CHECK(!p.dsn_orcpt[0] || dsn_orcpt_valid(p.dsn_orcpt, strlen(p.dsn_orcpt)));
                        CHECK(!p.dsn_ret || streq(p.dsn_ret, "FULL") || streq(p.dsn_ret, "HDRS"));
                        if (p.dsn_notify) {
                                char t[DSN_NOTIFY_TEXT_MAX];
                                unsigned back;
                                dsn_notify_format(p.dsn_notify, t);
                                CHECK(dsn_notify_parse(t, strlen(t), &back) == 0 && back == p.dsn_notify);
                        }
                }
        }
        if (c.type == SMTPD_COMMAND_BDAT) {
                uint64_t size;
                bool last;
                if (smtpd_bdat_parse(c.arg, c.arg_len, &size, &last) >= 0)
                        CHECK(c.arg_len > 0 && c.arg[0] >= '0' && c.arg[0] <= '9');
        }
        if (c.type == SMTPD_COMMAND_VRFY) {
                char address[ADDRESS_MAX + 1];
                if (smtpd_vrfy_parse(c.arg, c.arg_len, address) >= 0)
                        CHECK(address[0] && address_valid(address));
        }
        memcpy(text, c.arg, c.arg_len);
        text[c.arg_len] = '\0';
        if (smtpd_status_reply(text, '5', "554", reply) >= 0)
                CHECK(reply[0] == '5' && strlen(reply) < SMTPD_REPLY_LINE_MAX - 2);

        /* The argument as a list of EHLO keywords, and the line as a reply given a footer (itself as the
         * footer) and stripped of its enhanced status codes. */
        unsigned mask = smtpd_ehlo_discard_parse(c.arg, c.arg_len);
        char words[256], out[2 * LINE_LIMIT + 64];
        smtpd_ehlo_discard_to_string(mask, words, sizeof words);
        CHECK(strlen(words) < sizeof words);
        memcpy(out, line, len);
        r = smtpd_reply_add_footer(out, len, sizeof out, text);
        CHECK(r < 0 || ((size_t) r >= len && (size_t) r <= sizeof out));
        if (r < 0)
                CHECK(memcmp(out, line, len) == 0);
        else
                CHECK((size_t) smtpd_reply_strip_enhanced(out, (size_t) r) <= (size_t) r);
}

/* The events of the line reader ("L" + line + NUL, or "E"), reading chunk bytes at a time into a
 * buffer as small as a session's. */
static size_t split(const char *in, size_t len, size_t chunk, char *events) {
        char buf[LINE_LIMIT + 2 + 16];
        size_t start = 0, end = 0, fed = 0, n = 0;
        SmtpdLineReader r;

        smtpd_line_reader_init(&r, LINE_LIMIT);
        for (;;) {
                size_t line_len = 0, consumed;
                const char *line = buf + start;
                int k = smtpd_line_next(&r, line, end - start, &line_len, &consumed);

                CHECK(consumed <= end - start);
                start += consumed;
                if (k == 1) {
                        CHECK(line_len <= LINE_LIMIT);
                        events[n++] = 'L';
                        memcpy(events + n, line, line_len);
                        n += line_len;
                        events[n++] = '\0';
                        parse_line(line, line_len);
                        continue;
                }
                if (k == -E2BIG) {
                        events[n++] = 'E';
                        continue;
                }
                CHECK(k == 0);
                CHECK(end - start <= LINE_LIMIT + 1);
                if (fed == len)
                        return n;
                memmove(buf, buf + start, end - start);
                end -= start;
                start = 0;
                size_t piece = MIN(chunk, MIN(len - fed, sizeof buf - end));
                memcpy(buf + end, in + fed, piece);
                end += piece;
                fed += piece;
        }
}

/* The same, the plain way. */
static size_t split_plainly(const char *in, size_t len, char *events) {
        size_t n = 0;

        for (const char *p = in, *end = in + len;;) {
                const char *lf = memchr(p, '\n', (size_t) (end - p));
                if (!lf)
                        return n;
                size_t line_len = (size_t) (lf - p) - (lf > p && lf[-1] == '\r');
                if (line_len > LINE_LIMIT)
                        events[n++] = 'E';
                else {
                        events[n++] = 'L';
                        memcpy(events + n, p, line_len);
                        n += line_len;
                        events[n++] = '\0';
                }
                p = lf + 1;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *a, *b;
        size_t na, nb;

        if (size < 1)
                return 0;
        size_t chunk = 1 + data[0] % 32;
        const char *in = (const char *) data + 1;
        size_t len = size - 1;

        a = malloc(len * 2 + 1);
        b = malloc(len * 2 + 1);
        CHECK(a && b);
        na = split(in, len, chunk, a);
        nb = split_plainly(in, len, b);
        CHECK(na == nb && memcmp(a, b, na) == 0);
        free(a);
        free(b);
        return 0;
}
