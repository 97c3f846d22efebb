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
        /* A bare LF ends a line too (smtpd_forbid_bare_newline decides what becomes of it); a bare CR is
         * part of the line (and refused by the command parser). */
        check_lines("NOOP\nQUIT\r\n", 100, "L:NOOP|L:QUIT|");
        check_lines("NOOP\rQUIT\r\r\n", 100, "L:NOOP\rQUIT\r|");
        /* An incomplete line is not a line. */
        check_lines("QUIT", 100, "");
        check_lines("QUIT\r", 100, "");
}

TEST(lines_bare_lf) {
        SmtpdLineReader r;
        size_t n, consumed;

        smtpd_line_reader_init(&r, 100);
        ASSERT_EQ(smtpd_line_next(&r, "NOOP\r\n", 6, &n, &consumed), 1);
        ASSERT_TRUE(!r.bare_lf && n == 4 && consumed == 6);
        ASSERT_EQ(smtpd_line_next(&r, "NOOP\n", 5, &n, &consumed), 1);
        ASSERT_TRUE(r.bare_lf && n == 4 && consumed == 5);
        ASSERT_EQ(smtpd_line_next(&r, "\n", 1, &n, &consumed), 1);
        ASSERT_TRUE(r.bare_lf && n == 0 && consumed == 1);
}

TEST(lines_limit) {
        check_lines("1234567890\r\n", 10, "L:1234567890|");
        check_lines("12345678901\r\n", 10, "E|");
        check_lines("12345678901\r\nNOOP\r\n", 10, "E|L:NOOP|");
        /* A long line is dropped as it comes, whatever the chunks; the session goes on after it. */
        check_lines("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nNOOP\r\n", 10, "E|L:NOOP|");
        check_lines("xxxxxxxxxxxxxxxxxxxxxxxx\rxxxxxxxxxx\nxxxxxxxxxx\r\r\nQUIT\r\n", 10, "E|E|L:QUIT|");
        check_lines("1234567890\nxxxxxxxxxxx\n", 10, "L:1234567890|E|");
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
        check_command("BDAT 100 LAST", SMTPD_COMMAND_BDAT, "100 LAST");
        /* UTF-8 is allowed (SMTPUTF8); whether an address may hold it is decided later. */
        check_command("HELO caf\xc3\xa9", SMTPD_COMMAND_HELO, "caf\xc3\xa9");
        check_command("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@example.org>", SMTPD_COMMAND_RCPT,
                      "TO:<\xe7\x94\xa8\xe6\x88\xb7@example.org>");

        command("", -EOPNOTSUPP);
        command(" NOOP", -EOPNOTSUPP);
        command("BOGUS", -EOPNOTSUPP);
        command("HELP", -EOPNOTSUPP);
        command("MAILFROM:<a@b>", -EOPNOTSUPP);
        command("QUITX", -EOPNOTSUPP);
        command("NOOP\nQUIT", -EBADMSG);
        command("HELO \x7f", -EBADMSG);
        command("HELO caf\xc3", -EBADMSG);                      /* truncated */
        command("HELO caf\xc0\xa9", -EBADMSG);                  /* overlong */
        command("HELO \xed\xa0\x80", -EBADMSG);                 /* a surrogate */
        command("HELO \xff", -EBADMSG);
        ASSERT_EQ(smtpd_command_parse("NOOP\0x", 6, &(SmtpdCommand) {}), -EBADMSG);

        ASSERT_STREQ(smtpd_command_to_string(SMTPD_COMMAND_RCPT), "RCPT");
        ASSERT_TRUE(smtpd_command_to_string(_SMTPD_COMMAND_MAX) == NULL);
}

static SmtpdPath mail(const char *arg, int expected) {
        SmtpdPath p = {};
        ASSERT_EQ(smtpd_mail_parse(arg, strlen(arg), true, &p), expected);
        return p;
}

static SmtpdPath rcpt(const char *arg, int expected) {
        SmtpdPath p = {};
        ASSERT_EQ(smtpd_rcpt_parse(arg, strlen(arg), true, &p), expected);
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
        mail("FROM:", -EPROTO);
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
        /* as Postfix: "555 5.5.4 Unsupported option: BODY=BINARYMIME", the parameter named */
        ASSERT_STREQ(mail("FROM:<a@b> BODY=BINARYMIME", -EOPNOTSUPP).unsupported, "BODY=BINARYMIME");
        ASSERT_STREQ(mail("FROM:<a@b> FOO=BAR", -EOPNOTSUPP).unsupported, "FOO=BAR");
        ASSERT_STREQ(mail("FROM:<a@b> X=" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9", -EOPNOTSUPP).unsupported,
                     "X=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");   /* cut before the é */
        mail("FROM:<a@b> BODY", -EOPNOTSUPP);                 /* no value: Postfix's "Unsupported option: BODY" */
        mail("FROM:<a@b> BODY=7BIT BODY=7BIT", -EINVAL);
        mail("FROM:<a@b> NOTIFY=NEVER", -EOPNOTSUPP);

        /* SMTPUTF8 (RFC 6531): a flag; the address itself is checked by the session. */
        p = mail("FROM:<a@b> SMTPUTF8", 0);
        ASSERT_TRUE(p.smtputf8);
        p = mail("FROM:<\xe7\x94\xa8@example.org> smtputf8 BODY=8BITMIME", 0);
        ASSERT_TRUE(p.smtputf8 && p.body_8bitmime && p.body_given);
        ASSERT_STREQ(p.address, "\xe7\x94\xa8@example.org");
        ASSERT_TRUE(!mail("FROM:<\xe7\x94\xa8@example.org>", 0).smtputf8);
        mail("FROM:<a@b> SMTPUTF8=yes", -EINVAL);
        mail("FROM:<a@b> SMTPUTF8 SMTPUTF8", -EINVAL);
        mail("FROM:<caf\xc3@b> SMTPUTF8", -EBADMSG);

        /* Postfix's XVERP: bare, or with the delimiters as given (the caller checks them). */
        p = mail("FROM:<a@b> XVERP", 0);
        ASSERT_TRUE(p.verp && !p.verp_given);
        p = mail("FROM:<a@b> xverp=-=", 0);
        ASSERT_TRUE(p.verp && p.verp_given);
        ASSERT_STREQ(p.verp_delims, "-=");
        p = mail("FROM:<a@b> XVERP=", 0);
        ASSERT_TRUE(p.verp_given && p.verp_delims[0] == '\0');
        ASSERT_STREQ(mail("FROM:<a@b> XVERP=abcdefghij", 0).verp_delims, "abcdefg");      /* cut short */
        ASSERT_TRUE(!mail("FROM:<a@b>", 0).verp);
        mail("FROM:<a@b> XVERP XVERP=+=", -EINVAL);
        rcpt("TO:<a@b> XVERP", -EOPNOTSUPP);

        /* DSN (RFC 3461): RET and ENVID. */
        p = mail("FROM:<a@b> RET=hdrs ENVID=QQ314159+2B+3Dx", 0);
        ASSERT_STREQ(p.dsn_ret, "HDRS");
        ASSERT_STREQ(p.dsn_envid, "QQ314159+2B+3Dx");
        ASSERT_STREQ(mail("FROM:<a@b> RET=FULL", 0).dsn_ret, "FULL");
        ASSERT_TRUE(mail("FROM:<a@b>", 0).dsn_ret == NULL);
        mail("FROM:<a@b> RET=ALL", -EINVAL);
        mail("FROM:<a@b> RET=", -EINVAL);
        mail("FROM:<a@b> RET", -EINVAL);
        mail("FROM:<a@b> RET=FULL RET=HDRS", -EINVAL);
        mail("FROM:<a@b> ENVID=", -EINVAL);
        mail("FROM:<a@b> ENVID=a=b", -EINVAL);
        mail("FROM:<a@b> ENVID=a+2", -EINVAL);
        mail("FROM:<a@b> ENVID=a+2g", -EINVAL);
        mail("FROM:<a@b> ENVID=a+2b", -EINVAL);         /* hex digits are upper case */
        mail("FROM:<a@b> ENVID=1 ENVID=2", -EINVAL);
        char envid[160];
        strcpy(envid, "FROM:<a@b> ENVID=");
        memset(envid + strlen(envid), 'x', 100);
        envid[17 + 100] = '\0';
        ASSERT_EQ(strlen(mail(envid, 0).dsn_envid), 100);
        strcat(envid, "x");
        mail(envid, -EINVAL);
}

/* strict_rfc821_envelopes = no, Postfix's default: a bare address is the first word. */
TEST(bare_paths) {
        SmtpdPath p = {};

        ASSERT_OK(smtpd_mail_parse("FROM:a@example.org", 18, false, &p));
        ASSERT_STREQ(p.address, "a@example.org");
        p = (SmtpdPath) {};
        ASSERT_OK(smtpd_mail_parse("FROM: a@example.org SIZE=100", 28, false, &p));
        ASSERT_STREQ(p.address, "a@example.org");
        ASSERT_EQ(p.size, 100);
        /* Postfix answers "Unsupported option: <a@example.org>" to a phrase before the address */
        ASSERT_EQ(smtpd_mail_parse("FROM:Name <a@example.org>", 25, false, &p), -EOPNOTSUPP);
        ASSERT_EQ(smtpd_mail_parse("FROM:", 5, false, &p), -EPROTO);
        ASSERT_EQ(smtpd_mail_parse("FROM:  ", 7, false, &p), -EPROTO);
        ASSERT_EQ(smtpd_mail_parse("FROM:a@b@c", 10, false, &p), -EBADMSG);
        /* brackets are still taken, and still have to close */
        ASSERT_EQ(smtpd_mail_parse("FROM:<a@b", 9, false, &p), -EBADMSG);
        p = (SmtpdPath) {};
        ASSERT_OK(smtpd_mail_parse("FROM:<>", 7, false, &p));
        ASSERT_STREQ(p.address, "");

        p = (SmtpdPath) {};
        ASSERT_OK(smtpd_rcpt_parse("TO:bench@localhost NOTIFY=NEVER", 31, false, &p));
        ASSERT_STREQ(p.address, "bench@localhost");
        p = (SmtpdPath) {};
        ASSERT_OK(smtpd_rcpt_parse("TO:\"x y\"@localhost", 18, false, &p));
        ASSERT_STREQ(p.address, "\"x y\"@localhost");
        ASSERT_EQ(smtpd_rcpt_parse("TO:", 3, false, &p), -EPROTO);
        ASSERT_EQ(smtpd_rcpt_parse("TO:bench@localhost", 18, true, &p), -EBADMSG);
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
        rcpt("TO:<a@b> SIZE=1", -EOPNOTSUPP);
        rcpt("TO:<a@b> RET=FULL", -EOPNOTSUPP);
        rcpt("TO:<a@b> SMTPUTF8", -EOPNOTSUPP);

        /* DSN (RFC 3461): NOTIFY and ORCPT. */
        SmtpdPath p = rcpt("TO:<a@b> NOTIFY=success,DELAY ORCPT=rfc822;bob+40example.org", 0);
        ASSERT_EQ(p.dsn_notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
        ASSERT_STREQ(p.dsn_orcpt, "rfc822;bob+40example.org");
        ASSERT_EQ(rcpt("TO:<a@b> NOTIFY=NEVER", 0).dsn_notify, DSN_NOTIFY_NEVER);
        ASSERT_EQ(rcpt("TO:<a@b>", 0).dsn_notify, 0);
        ASSERT_STREQ(rcpt("TO:<a@b> ORCPT=utf-8;\xe7\x94\xa8\\x{2B}@b", 0).dsn_orcpt, "utf-8;\xe7\x94\xa8\\x{2B}@b");
        rcpt("TO:<a@b> NOTIFY=NEVER,SUCCESS", -EINVAL);
        rcpt("TO:<a@b> NOTIFY=SUCCESS,SUCCESS", -EINVAL);
        rcpt("TO:<a@b> NOTIFY=SUCCESS,", -EINVAL);
        rcpt("TO:<a@b> NOTIFY=,SUCCESS", -EINVAL);
        rcpt("TO:<a@b> NOTIFY=ALWAYS", -EINVAL);
        rcpt("TO:<a@b> NOTIFY=", -EINVAL);
        rcpt("TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", -EINVAL);
        rcpt("TO:<a@b> ORCPT=bob@example.org", -EINVAL);
        rcpt("TO:<a@b> ORCPT=;bob@example.org", -EINVAL);
        rcpt("TO:<a@b> ORCPT=rfc822;", -EINVAL);
        rcpt("TO:<a@b> ORCPT=rfc822;a=b", -EINVAL);
        rcpt("TO:<a@b> ORCPT=rfc 822;ab", -EINVAL);
        rcpt("TO:<a@b> ORCPT=rfc822;\xe7\x94\xa8", -EINVAL);
        rcpt("TO:<a@b> ORCPT=utf-8;a\\x{}", -EINVAL);
        rcpt("TO:<a@b> ORCPT=rfc822;a ORCPT=rfc822;b", -EINVAL);
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
        bool done, bare_lf, too_big;
} DataResult;

/* Feeds input in pieces of chunk bytes, with an output buffer of out_size bytes; flags as
 * smtpd_data_reader_init() takes them. */
static unsigned data_flags = SMTPD_DATA_DOT_STUFFED;

static DataResult data_run(const char *input, size_t len, uint64_t size_limit, size_t chunk, size_t out_size) {
        DataResult res = { .out = calloc(1, len + 2) };
        char *out = malloc(out_size);
        SmtpdDataReader r;

        ASSERT_TRUE(res.out && out);
        smtpd_data_reader_init(&r, size_limit, data_flags);
        while (res.consumed < len && !smtpd_data_done(&r) && !smtpd_data_bare_lf(&r)) {
                size_t piece = MIN(chunk, len - res.consumed), n;
                size_t used = smtpd_data_read(&r, input + res.consumed, piece, out, out_size, &n);

                ASSERT_TRUE(used <= piece && n <= out_size);
                ASSERT_TRUE(used > 0 || n > 0 || smtpd_data_bare_lf(&r));
                ASSERT_TRUE(res.out_len + n <= len);
                memcpy(res.out + res.out_len, out, n);
                res.out_len += n;
                res.consumed += used;
        }
        res.done = smtpd_data_done(&r);
        res.bare_lf = smtpd_data_bare_lf(&r);
        if (!(data_flags & SMTPD_DATA_DOT_STUFFED) && res.consumed == len) {
                size_t n = smtpd_data_finish(&r, out, out_size);
                memcpy(res.out + res.out_len, out, n);
                res.out_len += n;
        }
        res.too_big = r.too_big;
        free(out);
        return res;
}

/* The same result however the input and output are cut. */
static DataResult data_check(const char *input, size_t len, uint64_t size_limit) {
        size_t chunks[] = { 1, 2, 3, 5, 17, 4096 }, outs[] = { 1, 2, 3, 64 * 1024 };
        DataResult first = data_run(input, len, size_limit, len + 1, 64 * 1024);

        for (size_t i = 0; i < ELEMENTSOF(chunks); i++)
                for (size_t j = 0; j < ELEMENTSOF(outs); j++) {
                        DataResult d = data_run(input, len, size_limit, chunks[i], outs[j]);

                        ASSERT_EQ(d.out_len, first.out_len);
                        ASSERT_TRUE(memcmp(d.out, first.out, d.out_len) == 0);
                        ASSERT_EQ(d.consumed, first.consumed);
                        ASSERT_EQ(d.done, first.done);
                        ASSERT_EQ(d.bare_lf, first.bare_lf);
                        ASSERT_EQ(d.too_big, first.too_big);
                        free(d.out);
                }
        return first;
}

/* All of input is consumed, unless a rest is given that must be left over. */
static void check_data(const char *input, const char *expected, const char *rest) {
        size_t expected_consumed = strlen(input) - strlen(rest ?: "");
        DataResult d = data_check(input, strlen(input), 100000);

        ASSERT_TRUE(d.done);
        ASSERT_TRUE(!d.too_big);
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
        /* Only CRLF.CRLF after a CRLF ends the message. A bare LF or CR ends a line, and a "." line ended
         * so, or after a line ended so, is content: it is unstuffed into an empty line (smuggling). */
        check_data("a\n.\nb\r\n.\r\n", "a\n\nb\n", NULL);                      /* <LF>.<LF> */
        check_data("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\n\nMAIL FROM:<x@y>\n", NULL); /* <CR><LF>.<LF> */
        check_data("a\n.\r\nb\r\n.\r\n", "a\n\nb\n", NULL);                    /* <LF>.<CR><LF> */
        check_data("a\r\n.\r\r\nb\r\n.\r\n", "a\n\n\nb\n", NULL);            /* .<CR><CR><LF> */
        check_data("a\r.\r\nb\r\n.\r\n", "a\n\nb\n", NULL);                    /* <CR>.<CR><LF> */
        check_data("a\r\n.\rb\r\n.\r\n", "a\n\nb\n", NULL);                    /* <CR><LF>.<CR> */
        check_data("a\rb\r\r\n.\r\n", "a\nb\n\n", NULL);
        check_data(".\r.\r\n.\r\n", "\n\n", NULL);
        check_data(".\n\r\n.\r\n", "\n\n", NULL);
        check_data("\n..\r\n.\r\n", "\n.\n", NULL);
        /* A stored line is "." only where the client sent "..". */
        check_data("..\n\r\n.\r\n", ".\n\n", NULL);
}

/* smtpd_forbid_bare_newline = reject: the reader stops at a bare LF, whatever comes after it. */
TEST(data_reject_bare_lf) {
        DataResult d;

        data_flags = SMTPD_DATA_DOT_STUFFED | SMTPD_DATA_REJECT_BARE_LF;
        d = data_check("ok\r\nab\n.\r\n", 10, 1000);
        ASSERT_TRUE(d.bare_lf && !d.done);
        ASSERT_EQ(d.consumed, 6);
        ASSERT_STREQ(d.out, "ok\nab");
        free(d.out);
        d = data_check("a\r\n.\r\n", 6, 1000);
        ASSERT_TRUE(d.done && !d.bare_lf);
        free(d.out);
        /* A bare CR is still a line end, not a reason to disconnect. */
        d = data_check("a\rb\r\n.\r\n", 8, 1000);
        ASSERT_TRUE(d.done && !d.bare_lf);
        ASSERT_STREQ(d.out, "a\nb\n");
        free(d.out);
        /* The DATA command itself ended in a bare LF (normalize): the first "." does not end it. */
        data_flags = SMTPD_DATA_DOT_STUFFED | SMTPD_DATA_AFTER_BARE_LF;
        d = data_check(".\r\n.\r\n", 6, 1000);
        ASSERT_TRUE(d.done);
        ASSERT_STREQ(d.out, "\n");
        free(d.out);
        data_flags = SMTPD_DATA_DOT_STUFFED;
}

/* BDAT: raw content, no dots, no end marker; the same line ends. */
TEST(data_bdat) {
        DataResult d;

        data_flags = 0;
        d = data_check("a\r\n.\r\n..\r\nb\nc\rd\r", 16, 1000);
        ASSERT_TRUE(!d.done && !d.bare_lf && d.consumed == 16);
        ASSERT_STREQ(d.out, "a\n.\n..\nb\nc\nd\n");      /* the last CR is a line end at the end */
        free(d.out);
        d = data_check("x\r\ny", 4, 1000);
        ASSERT_STREQ(d.out, "x\ny");
        free(d.out);
        d = data_check("12345\r\n", 7, 5);
        ASSERT_TRUE(d.too_big);
        free(d.out);
        data_flags = SMTPD_DATA_REJECT_BARE_LF;
        d = data_check("a\r\nb\nc", 6, 1000);
        ASSERT_TRUE(d.bare_lf && d.consumed == 4);
        free(d.out);
        data_flags = SMTPD_DATA_DOT_STUFFED;
}

TEST(bdat_vrfy_args) {
        char address[ADDRESS_MAX + 1];
        uint64_t size;
        bool last;

        ASSERT_OK(smtpd_bdat_parse("100", 3, &size, &last));
        ASSERT_TRUE(size == 100 && !last);
        ASSERT_OK(smtpd_bdat_parse("0 last", 6, &size, &last));
        ASSERT_TRUE(size == 0 && last);
        ASSERT_OK(smtpd_bdat_parse("7 \tLAST", 7, &size, &last));
        ASSERT_TRUE(size == 7 && last);
        ASSERT_EQ(smtpd_bdat_parse("", 0, &size, &last), -EINVAL);
        ASSERT_EQ(smtpd_bdat_parse("LAST", 4, &size, &last), -EINVAL);
        ASSERT_EQ(smtpd_bdat_parse("10LAST", 6, &size, &last), -EINVAL);
        ASSERT_EQ(smtpd_bdat_parse("10 LASTX", 8, &size, &last), -EINVAL);
        ASSERT_EQ(smtpd_bdat_parse("-1", 2, &size, &last), -EINVAL);
        ASSERT_EQ(smtpd_bdat_parse("1 2", 3, &size, &last), -EINVAL);
        ASSERT_EQ(smtpd_bdat_parse("18446744073709551616", 20, &size, &last), -EINVAL);

        ASSERT_OK(smtpd_vrfy_parse("root", 4, address));
        ASSERT_STREQ(address, "root");
        ASSERT_OK(smtpd_vrfy_parse("<bob@example.org>", 17, address));
        ASSERT_STREQ(address, "bob@example.org");
        ASSERT_EQ(smtpd_vrfy_parse("", 0, address), -EINVAL);
        ASSERT_EQ(smtpd_vrfy_parse("<>", 2, address), -EINVAL);
        ASSERT_EQ(smtpd_vrfy_parse("a b", 3, address), -EINVAL);
        ASSERT_EQ(smtpd_vrfy_parse("<a@b> x", 7, address), -EINVAL);
}

TEST(data_unfinished) {
        const char *in = "a\r\n.\n\r.\r";
        DataResult d = data_check(in, strlen(in), 100000);

        ASSERT_TRUE(!d.done);
        ASSERT_EQ(d.consumed, strlen(in));
        free(d.out);
}

TEST(data_limits) {
        const char *in;
        DataResult d;

        /* message_size_limit counts the content as stored, with LF line ends. */
        d = data_check("123456789\r\n.\r\n", 14, 10);
        ASSERT_TRUE(d.done && !d.too_big);
        ASSERT_STREQ(d.out, "123456789\n");
        free(d.out);

        in = "1234567890\r\nmore\r\n.\r\nNOOP\r\n";
        d = data_check(in, strlen(in), 10);
        ASSERT_TRUE(d.done && d.too_big);
        ASSERT_EQ(d.consumed, strlen(in) - STRLEN("NOOP\r\n"));
        free(d.out);
}

/* A line of any length is stored whole, as Postfix takes it: no line length limit applies to content, after
 * DATA (its stuffed leading dot taken off) and in BDAT chunks; only the size limit cuts it. */
static void check_long_line(size_t n, unsigned flags) {
        bool data = flags & SMTPD_DATA_DOT_STUFFED;
        const char *tail = "\r\nnext\r\n.\r\n", *expected_tail = data ? "\nnext\n" : "\nnext\n.\n";
        size_t dot = data ? 1 : 0, len = dot + n + strlen(tail);
        _cleanup_free_ char *in = malloc(len + 1), *expected = malloc(n + strlen(expected_tail) + 1);
        unsigned saved = data_flags;
        DataResult d;

        ASSERT_TRUE(in && expected);
        /* After DATA the line starts with a stuffed dot, which is taken off. */
        in[0] = '.';
        for (size_t i = 0; i < n; i++)
                in[dot + i] = expected[i] = i == 0 ? '.' : (char) ('a' + i % 26);
        strcpy(in + dot + n, tail);
        strcpy(expected + n, expected_tail);
        data_flags = flags;
        d = data_check(in, len, 1000000);
        data_flags = saved;
        ASSERT_EQ(d.done, data);
        ASSERT_TRUE(!d.too_big);
        ASSERT_EQ(d.out_len, strlen(expected));
        ASSERT_TRUE(memcmp(d.out, expected, d.out_len) == 0);
        ASSERT_EQ(d.consumed, len);
        free(d.out);

        /* The size limit still holds within the line. */
        data_flags = flags;
        d = data_check(in, len, n / 2);
        data_flags = saved;
        ASSERT_TRUE(d.too_big);
        ASSERT_EQ(d.out_len, n / 2);
        free(d.out);
}

TEST(data_long_lines) {
        check_long_line(1500, SMTPD_DATA_DOT_STUFFED);
        check_long_line(10000, SMTPD_DATA_DOT_STUFFED);
        check_long_line(200000, SMTPD_DATA_DOT_STUFFED);
        check_long_line(1500, 0);
        check_long_line(70000, 0);
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
                DataResult r = data_check(in, in_len, 100000);
                ASSERT_TRUE(r.done && !r.too_big);
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

static void check_strip(const char *in, const char *expect) {
        char buf[256];
        size_t n = strlen(in);

        memcpy(buf, in, n + 1);
        n = smtpd_reply_strip_enhanced(buf, n);
        buf[n] = '\0';
        ASSERT_STREQ(buf, expect);
}

TEST(ehlo_discard) {
        char words[128];
        unsigned m;

        ASSERT_EQ(smtpd_ehlo_discard_parse("", 0), 0U);
        m = smtpd_ehlo_discard_parse("silent-discard, dsn", strlen("silent-discard, dsn"));
        ASSERT_EQ(m, (unsigned) (SMTPD_EHLO_SILENT_DISCARD | SMTPD_EHLO_DSN));
        m = smtpd_ehlo_discard_parse("Chunking,,PIPELINING xverp\tnosuch starttls", 42);
        ASSERT_EQ(m, (unsigned) (SMTPD_EHLO_CHUNKING | SMTPD_EHLO_PIPELINING | SMTPD_EHLO_VERP | SMTPD_EHLO_STARTTLS));
        /* Only len bytes count; a keyword's prefix is not the keyword. */
        ASSERT_EQ(smtpd_ehlo_discard_parse("dsn,auth", 3), (unsigned) SMTPD_EHLO_DSN);
        ASSERT_EQ(smtpd_ehlo_discard_parse("ds dsnx sizes", 13), 0U);
        smtpd_ehlo_discard_to_string(SMTPD_EHLO_SMTPUTF8 | SMTPD_EHLO_DSN | SMTPD_EHLO_SILENT_DISCARD |
                                     SMTPD_EHLO_8BITMIME, words, sizeof words);
        ASSERT_STREQ(words, "8BITMIME DSN SMTPUTF8");
        smtpd_ehlo_discard_to_string(0, words, sizeof words);
        ASSERT_STREQ(words, "");

        check_strip("250 2.1.0 Ok", "250 Ok");
        check_strip("554 5.7.1 <x@y>: Relay access denied", "554 <x@y>: Relay access denied");
        check_strip("550-5.1.1 a\r\n550 5.1.1 b", "550-a\r\n550 b");
        check_strip("250-host\r\n250 PIPELINING", "250-host\r\n250 PIPELINING");
        check_strip("221 2.0.0", "221 2.0.0");
        check_strip("250 2.1.0x", "250 2.1.0x");
        check_strip("250 6.1.0 x", "250 6.1.0 x");
        check_strip("250 2.1234.0 x", "250 2.1234.0 x");
        check_strip("", "");
}

static void check_footer(const char *in, size_t size, const char *footer, const char *expect) {
        char buf[256];
        size_t n = strlen(in);
        int r;

        assert(size <= sizeof buf);
        memcpy(buf, in, n + 1);
        r = smtpd_reply_add_footer(buf, n, size, footer);
        if (!expect) {
                ASSERT_TRUE(r < 0);
                buf[n] = '\0';
                ASSERT_STREQ(buf, in);          /* left as it was */
                return;
        }
        ASSERT_TRUE(r >= 0);
        buf[r] = '\0';
        ASSERT_STREQ(buf, expect);
}

TEST(reply_footer) {
        check_footer("550 5.1.1 <u@x>: User unknown", 256, "Call 555-0101.",
                     "550-5.1.1 <u@x>: User unknown\r\n550 5.1.1 Call 555-0101.");
        check_footer("550 5.1.1 <u@x>: User unknown", 256, "\\c. Call us.", "550 5.1.1 <u@x>: User unknown. Call us.");
        check_footer("550 5.1.1 User unknown", 256, "\\c. Call\\nor write",
                     "550-5.1.1 User unknown. Call\r\n550 5.1.1 or write");
        check_footer("450 4.7.1 x", 256, "a\\nb\\nc", "450-4.7.1 x\r\n450-4.7.1 a\r\n450-4.7.1 b\r\n450 4.7.1 c");
        /* No enhanced status code: none on the footer lines; a multi-line reply gets it after its last line. */
        check_footer("421 localhost closing", 256, "bye", "421-localhost closing\r\n421 bye");
        check_footer("554-5.7.1 one\r\n554 5.7.1 two", 256, "three",
                     "554-5.7.1 one\r\n554-5.7.1 two\r\n554 5.7.1 three");
        check_footer("554 5.7.1", 256, "x", "554-5.7.1\r\n554 5.7.1 x");
        /* Too long for the room: unchanged. */
        check_footer("550 5.1.1 abc", 35, "0123456789", "550-5.1.1 abc\r\n550 5.1.1 0123456789");
        check_footer("550 5.1.1 abc", 34, "0123456789", NULL);
        check_footer("550 5.1.1 abc", 20, "\\c0123456789", NULL);
        check_footer("550", 256, "x", NULL);

        char censored[] = "helo caf\xc3\xa9\tok~";
        smtpd_reply_censor(censored);
        ASSERT_STREQ(censored, "helo caf___ok~");
}

int main(void) {
        RUN(lines);
        RUN(lines_bare_lf);
        RUN(lines_limit);
        RUN(commands);
        RUN(mail_from);
        RUN(bare_paths);
        RUN(rcpt_to);
        RUN(data);
        RUN(data_unfinished);
        RUN(data_limits);
        RUN(data_long_lines);
        RUN(data_reject_bare_lf);
        RUN(data_bdat);
        RUN(bdat_vrfy_args);
        RUN(data_golden);
        RUN(status);
        RUN(ehlo_discard);
        RUN(reply_footer);
        return 0;
}
