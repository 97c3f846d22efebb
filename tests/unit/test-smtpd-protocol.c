/* test-smtpd-protocol.c: smtpd's command lines, MAIL/RCPT arguments, DATA reader and status texts. */
#include <dirent.h>

#include "tests.h"
#include "../../src/smtpd/smtpd-protocol.h"

/* Runs input through the line reader the way a session does: a buffer of limit + 2 + chunk bytes,
 * filled chunk bytes at a time. Returns the events joined: "L:<line>|" or "E|" (line too long). */
static char *lines_run(const char *input, size_t len, size_t limit, size_t chunk) {
        size_t size = limit + 2 + chunk, start = 0, end = 0, fed = 0, max_held = 0;
        char *buf = malloc(size), *res = calloc(1, len * 3 + 16);
        SmtpdLineReader r;

        ASSERT_TRUE(buf && res);
        smtpd_line_reader_init(&r, limit);
        for (;;) {
                size_t line_len = 0, consumed;
                const char *line = buf + start;
                int k = smtpd_line_next(&r, line, end - start, &line_len, &consumed);

                ASSERT_TRUE(consumed <= end - start);
                start += consumed;
                if (k == 1) {
                        strcat(res, "L:");
                        strncat(res, line, line_len);
                        strcat(res, "|");
                        continue;
                }
                if (k == -E2BIG) {
                        strcat(res, "E|");
                        continue;
                }
                ASSERT_EQ(k, 0);
                /* What is left of an incomplete line never exceeds limit + 1 bytes. */
                ASSERT_TRUE(end - start <= limit + 1);
                max_held = MAX(max_held, end - start);
                if (fed == len)
                        break;
                memmove(buf, buf + start, end - start);
                end -= start;
                start = 0;
                size_t n = MIN(chunk, len - fed);
                ASSERT_TRUE(n <= size - end);
                memcpy(buf + end, input + fed, n);
                end += n;
                fed += n;
        }
        ASSERT_TRUE(max_held <= limit + 1);
        free(buf);
        return res;
}

static void check_lines(const char *input, size_t limit, const char *expected) {
        size_t chunks[] = { 1, 2, 3, 7, 64, 100000 };

        for (size_t i = 0; i < ELEMENTSOF(chunks); i++) {
                char *res = lines_run(input, strlen(input), limit, chunks[i]);
                ASSERT_STREQ(res, expected);
                free(res);
        }
}

TEST(lines) {
        check_lines("HELO x\r\n", 100, "L:HELO x|");
        check_lines("HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", 100,
                    "L:HELO x|L:MAIL FROM:<a@b>|L:RCPT TO:<c@d>|");
        check_lines("\r\n\r\n", 100, "L:|L:|");
        /* Only CRLF ends a line: a bare LF or CR is part of it. */
        check_lines("NOOP\nQUIT\r\n", 100, "L:NOOP\nQUIT|");
        check_lines("NOOP\rQUIT\r\r\n", 100, "L:NOOP\rQUIT\r|");
        /* An incomplete line is not a line. */
        check_lines("QUIT", 100, "");
        check_lines("QUIT\r", 100, "");
}

TEST(lines_limit) {
        check_lines("1234567890\r\n", 10, "L:1234567890|");
        check_lines("12345678901\r\n", 10, "E|");
        check_lines("12345678901\r\nNOOP\r\n", 10, "E|L:NOOP|");
        /* A long line is dropped as it comes, whatever the chunks; the session goes on after it. */
        check_lines("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nNOOP\r\n", 10, "E|L:NOOP|");
        check_lines("xxxxxxxxxxxxxxxxxxxxxxxx\rxxxxxxxxxx\nxxxxxxxxxx\r\r\nQUIT\r\n", 10, "E|L:QUIT|");
        check_lines("123456789012\r\n123\r\n12345678901\r\n1234567890\r\n", 10, "E|L:123|E|L:1234567890|");
}

static SmtpdCommand command(const char *line, int expected) {
        SmtpdCommand c = { .type = _SMTPD_COMMAND_INVALID };
        ASSERT_EQ(smtpd_command_parse(line, strlen(line), &c), expected);
        return c;
}

static void check_command(const char *line, SmtpdCommandType type, const char *arg) {
        SmtpdCommand c = command(line, 0);

        ASSERT_EQ(c.type, type);
        ASSERT_EQ(c.arg_len, strlen(arg));
        ASSERT_TRUE(strncmp(c.arg, arg, c.arg_len) == 0);
}

TEST(commands) {
        check_command("HELO client.example.org", SMTPD_COMMAND_HELO, "client.example.org");
        check_command("ehlo   client  ", SMTPD_COMMAND_EHLO, "client");
        check_command("EHLO a b", SMTPD_COMMAND_EHLO, "a b");
        check_command("MAIL FROM:<a@b> SIZE=10", SMTPD_COMMAND_MAIL, "FROM:<a@b> SIZE=10");
        check_command("Rcpt\tTO:<a@b>", SMTPD_COMMAND_RCPT, "TO:<a@b>");
        check_command("DATA", SMTPD_COMMAND_DATA, "");
        check_command("data ", SMTPD_COMMAND_DATA, "");
        check_command("RSET", SMTPD_COMMAND_RSET, "");
        check_command("NOOP anything", SMTPD_COMMAND_NOOP, "anything");
        check_command("VRFY root", SMTPD_COMMAND_VRFY, "root");
        check_command("QUIT", SMTPD_COMMAND_QUIT, "");

        command("", -EOPNOTSUPP);
        command(" NOOP", -EOPNOTSUPP);
        command("BOGUS", -EOPNOTSUPP);
        command("HELP", -EOPNOTSUPP);
        command("MAILFROM:<a@b>", -EOPNOTSUPP);
        command("QUITX", -EOPNOTSUPP);
        command("NOOP\nQUIT", -EBADMSG);
        command("HELO \x7f", -EBADMSG);
        command("HELO caf\xc3\xa9", -EBADMSG);
        ASSERT_EQ(smtpd_command_parse("NOOP\0x", 6, &(SmtpdCommand) {}), -EBADMSG);

        ASSERT_STREQ(smtpd_command_to_string(SMTPD_COMMAND_RCPT), "RCPT");
        ASSERT_TRUE(smtpd_command_to_string(_SMTPD_COMMAND_MAX) == NULL);
}

static SmtpdPath mail(const char *arg, int expected) {
        SmtpdPath p = {};
        ASSERT_EQ(smtpd_mail_parse(arg, strlen(arg), &p), expected);
        return p;
}

static SmtpdPath rcpt(const char *arg, int expected) {
        SmtpdPath p = {};
        ASSERT_EQ(smtpd_rcpt_parse(arg, strlen(arg), &p), expected);
        return p;
}

TEST(mail_from) {
        SmtpdPath p;

        ASSERT_STREQ(mail("FROM:<alice@example.org>", 0).address, "alice@example.org");
        ASSERT_STREQ(mail("from:<>", 0).address, "");
        ASSERT_STREQ(mail("FROM: <alice@example.org>", 0).address, "alice@example.org");
        ASSERT_STREQ(mail("FROM:<alice>", 0).address, "alice");

        p = mail("FROM:<a@b> SIZE=12345 BODY=8BITMIME", 0);
        ASSERT_EQ(p.size, 12345);
        ASSERT_TRUE(p.body_8bitmime);
        p = mail("FROM:<a@b>   body=7bit  size=0", 0);
        ASSERT_EQ(p.size, 0);
        ASSERT_TRUE(!p.body_8bitmime);
        ASSERT_EQ(mail("FROM:<> SIZE=18446744073709551615", 0).size, UINT64_MAX);

        mail("", -EPROTO);
        mail("FROM<a@b>", -EPROTO);
        mail("TO:<a@b>", -EPROTO);
        mail("FROM:", -EBADMSG);
        mail("FROM:a@b", -EBADMSG);
        mail("FROM:<a@b", -EBADMSG);
        mail("FROM:<a@b>SIZE=1", -EBADMSG);
        mail("FROM:<a b@c>", -EBADMSG);
        mail("FROM:<a@b@c>", -EBADMSG);
        mail("FROM:<@b>", -EBADMSG);
        mail("FROM:<a@>", -EBADMSG);
        mail("FROM:<<a@b>>", -EBADMSG);
        mail("FROM:<a@b> SIZE=", -EINVAL);
        mail("FROM:<a@b> SIZE", -EINVAL);
        mail("FROM:<a@b> SIZE=-1", -EINVAL);
        mail("FROM:<a@b> SIZE=1x", -EINVAL);
        mail("FROM:<a@b> SIZE=18446744073709551616", -EINVAL);
        mail("FROM:<a@b> SIZE=1 SIZE=2", -EINVAL);
        mail("FROM:<a@b> BODY=BINARYMIME", -EINVAL);
        mail("FROM:<a@b> BODY", -EINVAL);
        mail("FROM:<a@b> BODY=7BIT BODY=7BIT", -EINVAL);
        mail("FROM:<a@b> AUTH=<>", -EOPNOTSUPP);
        mail("FROM:<a@b> SMTPUTF8", -EOPNOTSUPP);
}

TEST(rcpt_to) {
        char long_addr[ADDRESS_MAX + 16];

        ASSERT_STREQ(rcpt("TO:<bob@example.org>", 0).address, "bob@example.org");
        ASSERT_STREQ(rcpt("to:<Postmaster>", 0).address, "Postmaster");
        /* A source route is accepted and dropped (RFC 5321 appendix C). */
        ASSERT_STREQ(rcpt("TO:<@relay1.example,@relay2.example:bob@example.org>", 0).address,
                     "bob@example.org");
        /* A quoted local part may hold '>' and spaces. */
        ASSERT_STREQ(rcpt("TO:<\"b>o b\"@example.org>", 0).address, "\"b>o b\"@example.org");
        ASSERT_STREQ(rcpt("TO:<\"a\\\"b\"@example.org>", 0).address, "\"a\\\"b\"@example.org");

        rcpt("TO:<>", -EBADMSG);
        rcpt("TO:<@relay.example>", -EBADMSG);
        rcpt("TO:<@relay.example:>", -EBADMSG);
        rcpt("TO:<\"unterminated@example.org>", -EBADMSG);
        rcpt("TO:<a@b> x", -EOPNOTSUPP);
        rcpt("TO:<a@b> NOTIFY=NEVER", -EOPNOTSUPP);
        rcpt("TO:<a@b> SIZE=1", -EOPNOTSUPP);
        rcpt("FROM:<a@b>", -EPROTO);

        /* ADDRESS_MAX bytes between the brackets, and one more. */
        strcpy(long_addr, "TO:<a@");
        memset(long_addr + 6, 'd', ADDRESS_MAX - 2);
        strcpy(long_addr + 6 + ADDRESS_MAX - 2, ">");
        ASSERT_EQ(strlen(rcpt(long_addr, 0).address), ADDRESS_MAX);
        strcpy(long_addr + 6 + ADDRESS_MAX - 2, "d>");
        rcpt(long_addr, -EBADMSG);
}

typedef struct DataResult {
        char *out;
        size_t out_len, consumed;
        bool done, line_too_long, too_big;
} DataResult;

/* Feeds input in pieces of chunk bytes, with an output buffer of out_size bytes. */
static DataResult data_run(const char *input, size_t len, size_t line_limit, uint64_t size_limit,
                           size_t chunk, size_t out_size) {
        DataResult res = { .out = calloc(1, len + 1) };
        char *out = malloc(out_size);
        SmtpdDataReader r;

        ASSERT_TRUE(res.out && out);
        smtpd_data_reader_init(&r, line_limit, size_limit);
        while (res.consumed < len && !smtpd_data_done(&r)) {
                size_t piece = MIN(chunk, len - res.consumed), n;
                size_t used = smtpd_data_read(&r, input + res.consumed, piece, out, out_size, &n);

                ASSERT_TRUE(used <= piece && n <= out_size);
                ASSERT_TRUE(used > 0 || n > 0);
                ASSERT_TRUE(res.out_len + n <= len);
                memcpy(res.out + res.out_len, out, n);
                res.out_len += n;
                res.consumed += used;
        }
        res.done = smtpd_data_done(&r);
        res.line_too_long = r.line_too_long;
        res.too_big = r.too_big;
        free(out);
        return res;
}

/* The same result however the input and output are cut. */
static DataResult data_check(const char *input, size_t len, size_t line_limit, uint64_t size_limit) {
        size_t chunks[] = { 1, 2, 3, 5, 17, 4096 }, outs[] = { 1, 2, 3, 64 * 1024 };
        DataResult first = data_run(input, len, line_limit, size_limit, len + 1, 64 * 1024);

        for (size_t i = 0; i < ELEMENTSOF(chunks); i++)
                for (size_t j = 0; j < ELEMENTSOF(outs); j++) {
                        DataResult d = data_run(input, len, line_limit, size_limit, chunks[i], outs[j]);

                        ASSERT_EQ(d.out_len, first.out_len);
                        ASSERT_TRUE(memcmp(d.out, first.out, d.out_len) == 0);
                        ASSERT_EQ(d.consumed, first.consumed);
                        ASSERT_EQ(d.done, first.done);
                        ASSERT_EQ(d.line_too_long, first.line_too_long);
                        ASSERT_EQ(d.too_big, first.too_big);
                        free(d.out);
                }
        return first;
}

/* All of input is consumed, unless a rest is given that must be left over. */
static void check_data(const char *input, const char *expected, const char *rest) {
        size_t expected_consumed = strlen(input) - strlen(rest ?: "");
        DataResult d = data_check(input, strlen(input), 1000, 100000);

        ASSERT_TRUE(d.done);
        ASSERT_TRUE(!d.line_too_long && !d.too_big);
        ASSERT_STREQ(d.out, expected);
        ASSERT_EQ(d.consumed, expected_consumed);
        free(d.out);
}

TEST(data) {
        check_data("Subject: x\r\n\r\nHello\r\n.\r\n", "Subject: x\n\nHello\n", NULL);
        check_data(".\r\n", "", NULL);
        check_data("\r\n.\r\n", "\n", NULL);
        /* The end marker is consumed, and nothing after it. */
        check_data("a\r\n.\r\nQUIT\r\n", "a\n", "QUIT\r\n");
        /* Dot-unstuffing (RFC 5321 4.5.2). */
        check_data("..\r\n.\r\n", ".\n", NULL);
        check_data("..x\r\n.x\r\nx.\r\n.\r\n", ".x\nx\nx.\n", NULL);
        check_data("...\r\n.\r\n", "..\n", NULL);
        /* Only CRLF.CRLF ends the message: bare LF and CR are content, and do not start a line. */
        check_data("a\n.\nb\r\n.\r\n", "a\n.\nb\n", NULL);
        check_data("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\n\nMAIL FROM:<x@y>\n", NULL);
        check_data("a\n.\r\nb\r\n.\r\n", "a\n.\nb\n", NULL);
        check_data("a\r.\r\nb\r\n.\r\n", "a\r.\nb\n", NULL);
        check_data("a\rb\r\r\n.\r\n", "a\rb\r\n", NULL);
        check_data(".\r.\r\n.\r\n", "\r.\n", NULL);
        check_data(".\n\r\n.\r\n", "\n\n", NULL);
        check_data("a\r\n.\r\r\n.\r\n", "a\n\r\n", NULL);
        check_data("\n..\r\n.\r\n", "\n..\n", NULL);
}

TEST(data_unfinished) {
        const char *in = "a\r\n.\n\r.\r";
        DataResult d = data_check(in, strlen(in), 1000, 100000);

        ASSERT_TRUE(!d.done);
        ASSERT_EQ(d.consumed, strlen(in));
        free(d.out);
}

TEST(data_limits) {
        const char *in;
        DataResult d;

        /* line_length_limit counts the bytes of a line without its end, after unstuffing. */
        d = data_check("12345\r\n.12345\r\n.\r\n", 18, 5, 1000);
        ASSERT_TRUE(d.done && !d.line_too_long);
        ASSERT_STREQ(d.out, "12345\n12345\n");
        free(d.out);

        in = "123456\r\nabc\r\n.\r\nNOOP\r\n";
        d = data_check(in, strlen(in), 5, 1000);
        ASSERT_TRUE(d.done && d.line_too_long && !d.too_big);
        ASSERT_EQ(d.consumed, strlen(in) - STRLEN("NOOP\r\n"));
        free(d.out);

        /* A bare LF does not end a line, so it does not reset the count either. */
        d = data_check("123\n45\r\n.\r\n", 11, 5, 1000);
        ASSERT_TRUE(d.done && d.line_too_long);
        free(d.out);

        /* message_size_limit counts the content as stored, with LF line ends. */
        d = data_check("123456789\r\n.\r\n", 14, 1000, 10);
        ASSERT_TRUE(d.done && !d.too_big);
        ASSERT_STREQ(d.out, "123456789\n");
        free(d.out);

        in = "1234567890\r\nmore\r\n.\r\nNOOP\r\n";
        d = data_check(in, strlen(in), 1000, 10);
        ASSERT_TRUE(d.done && d.too_big && !d.line_too_long);
        ASSERT_EQ(d.consumed, strlen(in) - STRLEN("NOOP\r\n"));
        free(d.out);
}

static char *read_file(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *buf;
        long n;

        ASSERT_TRUE(f);
        ASSERT_EQ(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        ASSERT_TRUE(n >= 0);
        rewind(f);
        buf = malloc((size_t) n + 1);
        ASSERT_TRUE(buf);
        ASSERT_EQ(fread(buf, 1, (size_t) n, f), (size_t) n);
        buf[n] = '\0';
        fclose(f);
        *ret_len = (size_t) n;
        return buf;
}

/* tests/data/smtpd-data/NAME.in is what a client sends after DATA; NAME.out is the content stored. */
TEST(data_golden) {
        const char *dir = getenv("POSTBUS_TEST_DATA");
        char path[4096];
        unsigned n = 0;
        DIR *d;

        ASSERT_TRUE(dir);
        (void) snprintf(path, sizeof path, "%s/smtpd-data", dir);
        d = opendir(path);
        ASSERT_TRUE(d);
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name), in_len, out_len;

                if (len < 4 || strcmp(de->d_name + len - 3, ".in") != 0)
                        continue;
                (void) snprintf(path, sizeof path, "%s/smtpd-data/%s", dir, de->d_name);
                char *in = read_file(path, &in_len);
                strcpy(path + strlen(path) - 3, ".out");
                char *out = read_file(path, &out_len);

                fprintf(stderr, "    %s\n", de->d_name);
                DataResult r = data_check(in, in_len, 1000, 100000);
                ASSERT_TRUE(r.done && !r.line_too_long && !r.too_big);
                ASSERT_EQ(r.consumed, in_len);
                ASSERT_EQ(r.out_len, out_len);
                ASSERT_TRUE(memcmp(r.out, out, out_len) == 0);
                free(r.out);
                free(in);
                free(out);
                n++;
        }
        closedir(d);
        ASSERT_TRUE(n >= 3);
}

static void check_status(const char *text, char cls, const char *def, const char *expected) {
        char reply[SMTPD_REPLY_LINE_MAX];

        if (!expected) {
                ASSERT_EQ(smtpd_status_reply(text, cls, def, reply), -EINVAL);
                return;
        }
        ASSERT_OK(smtpd_status_reply(text, cls, def, reply));
        ASSERT_STREQ(reply, expected);
}

TEST(status) {
        char long_text[SMTPD_REPLY_LINE_MAX + 1];

        check_status("554 5.4.6 Too many hops", '5', "554", "554 5.4.6 Too many hops");
        check_status("552 5.3.4 Message file too big", '5', "554", "552 5.3.4 Message file too big");
        check_status("5.7.1 Content rejected", '5', "554", "554 5.7.1 Content rejected");
        check_status("5.7.1", '5', "554", "554 5.7.1");
        check_status("550 5.123.456 x", '5', "554", "550 5.123.456 x");
        check_status("451 4.3.0 Error: queue file write error", '4', "451",
                     "451 4.3.0 Error: queue file write error");
        check_status("4.3.0 try later", '4', "451", "451 4.3.0 try later");

        check_status("451 4.3.0 Error", '5', "554", NULL);
        check_status("554 4.4.6 x", '5', "554", NULL);
        check_status("250 2.0.0 Ok", '5', "554", NULL);
        check_status("599 5.0.0 x", '5', "554", NULL);
        check_status("554 5.4.6x", '5', "554", NULL);
        check_status("554 5..6 x", '5', "554", NULL);
        check_status("554 5.1234.1 x", '5', "554", NULL);
        check_status("554 5.1.", '5', "554", NULL);
        check_status("554  5.1.1 x", '5', "554", NULL);
        check_status("554", '5', "554", NULL);
        check_status("", '5', "554", NULL);
        check_status("Too many hops", '5', "554", NULL);
        check_status("554 5.4.6 a\r\n250 ok", '5', "554", NULL);
        check_status("554 5.4.6 caf\xc3\xa9", '5', "554", NULL);
        memset(long_text, 'x', sizeof long_text - 1);
        long_text[sizeof long_text - 1] = '\0';
        memcpy(long_text, "554 5.0.0 ", 10);
        check_status(long_text, '5', "554", NULL);
}

int main(void) {
        RUN(lines);
        RUN(lines_limit);
        RUN(commands);
        RUN(mail_from);
        RUN(rcpt_to);
        RUN(data);
        RUN(data_unfinished);
        RUN(data_limits);
        RUN(data_golden);
        RUN(status);
        return 0;
}
