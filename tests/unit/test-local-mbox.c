/* test-local-mbox.c: ">From " quoting over content split anywhere, the From_ line, Maildir names, and the
 * result a delivery child reports. */
#include "tests.h"
#include "src/local/local.h"

typedef struct Output {
        char buf[4096];
        size_t len;
        int fail_after;         /* > 0: the nth call fails with -EIO */
} Output;

static int output(const char *data, size_t len, void *userdata) {
        Output *o = userdata;

        if (o->fail_after > 0 && --o->fail_after == 0)
                return -EIO;
        ASSERT_TRUE(len <= sizeof o->buf - o->len);
        memcpy(o->buf + o->len, data, len);
        o->len += len;
        return 0;
}

/* The obvious definition: a '>' before every line that begins with "From ". */
static void reference_quote(const char *in, Output *o) {
        bool line_start = true;

        o->len = 0;
        for (const char *p = in; *p; p++) {
                if (line_start && strncmp(p, "From ", 5) == 0)
                        o->buf[o->len++] = '>';
                o->buf[o->len++] = *p;
                line_start = *p == '\n';
        }
}

/* Feeds in as pieces cut at the given offsets. */
static void quote_pieces(const char *in, const size_t *cuts, size_t n_cuts, Output *o) {
        MboxQuote q;
        size_t prev = 0, len = strlen(in);

        o->len = 0;
        mbox_quote_init(&q);
        for (size_t i = 0; i <= n_cuts; i++) {
                size_t end = i < n_cuts ? cuts[i] : len;
                ASSERT_OK(mbox_quote_feed(&q, in + prev, end - prev, output, o));
                prev = end;
        }
        ASSERT_OK(mbox_quote_finish(&q, output, o));
}

static const char *const quote_samples[] = {
        "From alice Tue\nhello\nFrom bob\n>From carol\nFrom\nFromage\n From dave\nFFrom x\nFrom ",
        "From ",
        "Fro",
        "From",
        "\nFrom x",
        "From From From \nFrom \n\nFrom x\n",
        "x\nFr\nFro\nFrom\nFrom \n",
        "",
};

TEST(quote_golden) {
        Output o = {};
        const size_t none[] = { 0 };

        quote_pieces(quote_samples[0], none, 0, &o);
        ASSERT_EQ(o.len, strlen(quote_samples[0]) + 3);
        ASSERT_TRUE(memcmp(o.buf, ">From alice Tue\nhello\n>From bob\n>From carol\nFrom\nFromage\n From dave\nFFrom x\n>From ",
                           o.len) == 0);
        quote_pieces("Fro", none, 0, &o);
        ASSERT_EQ(o.len, 3);
        ASSERT_TRUE(memcmp(o.buf, "Fro", 3) == 0);
}

TEST(quote_every_split) {
        for (size_t s = 0; s < ELEMENTSOF(quote_samples); s++) {
                const char *in = quote_samples[s];
                size_t len = strlen(in);
                Output want = {}, got = {};

                reference_quote(in, &want);
                /* every way of cutting into two and three pieces, empty pieces included */
                for (size_t i = 0; i <= len; i++)
                        for (size_t j = i; j <= len; j++) {
                                size_t cuts[2] = { i, j };
                                quote_pieces(in, cuts, 2, &got);
                                ASSERT_EQ(got.len, want.len);
                                ASSERT_TRUE(memcmp(got.buf, want.buf, want.len) == 0);
                        }
                /* one byte at a time */
                size_t cuts[256];
                ASSERT_TRUE(len < ELEMENTSOF(cuts));
                for (size_t i = 0; i < len; i++)
                        cuts[i] = i + 1;
                quote_pieces(in, cuts, len > 0 ? len - 1 : 0, &got);
                ASSERT_EQ(got.len, want.len);
                ASSERT_TRUE(memcmp(got.buf, want.buf, want.len) == 0);
        }
}

TEST(quote_error) {
        Output o = { .fail_after = 2 };
        MboxQuote q;

        mbox_quote_init(&q);
        ASSERT_ERR(mbox_quote_feed(&q, "a\nFrom b\n", 9, output, &o), EIO);
}

TEST(from_line) {
        const struct tm tm = { .tm_year = 124, .tm_mon = 2, .tm_mday = 5, .tm_wday = 2,
                               .tm_hour = 7, .tm_min = 8, .tm_sec = 9 };
        char buf[128];

        ASSERT_EQ(mbox_from_line("alice@example.org", &tm, buf, sizeof buf),
                  strlen("From alice@example.org  Tue Mar  5 07:08:09 2024\n"));
        ASSERT_STREQ(buf, "From alice@example.org  Tue Mar  5 07:08:09 2024\n");
        ASSERT_OK(mbox_from_line("", &tm, buf, sizeof buf));
        ASSERT_STREQ(buf, "From MAILER-DAEMON  Tue Mar  5 07:08:09 2024\n");
        ASSERT_OK(mbox_from_line("\"a b\"@example.org", &tm, buf, sizeof buf));
        ASSERT_STREQ(buf, "From \"a_b\"@example.org  Tue Mar  5 07:08:09 2024\n");

        const struct tm late = { .tm_year = 99, .tm_mon = 11, .tm_mday = 31, .tm_wday = 5,
                                 .tm_hour = 23, .tm_min = 59, .tm_sec = 59 };
        ASSERT_OK(mbox_from_line("a@b", &late, buf, sizeof buf));
        ASSERT_STREQ(buf, "From a@b  Fri Dec 31 23:59:59 1999\n");

        ASSERT_ERR(mbox_from_line("alice@example.org", &tm, buf, 20), ENOBUFS);
        const struct tm bad = { .tm_mon = 12 };
        ASSERT_ERR(mbox_from_line("a@b", &bad, buf, sizeof buf), EINVAL);
}

TEST(delivery_headers) {
        MailboxMessage m = { .sender = "alice@example.org", .recipient = "root@example.org" };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        /* Postfix's order; X-Original-To only when the original recipient is known. */
        ASSERT_OK(mailbox_delivery_headers(&m, NULL, &a));
        ASSERT_STREQ(a, "Return-Path: <alice@example.org>\nDelivered-To: root@example.org\n");
        m.original = "postmaster@example.org";
        ASSERT_OK(mailbox_delivery_headers(&m, "From alice@example.org  Tue Mar  5 07:08:09 2024\n", &b));
        ASSERT_STREQ(b, "From alice@example.org  Tue Mar  5 07:08:09 2024\nReturn-Path: <alice@example.org>\n"
                        "X-Original-To: postmaster@example.org\nDelivered-To: root@example.org\n");
        m.original = "";
        m.sender = "";
        ASSERT_OK(mailbox_delivery_headers(&m, NULL, &c));
        ASSERT_STREQ(c, "Return-Path: <>\nDelivered-To: root@example.org\n");
}

TEST(maildir_name) {
        _cleanup_free_ char *a = NULL, *b = NULL;

        ASSERT_OK(maildir_unique_name(1700000000012345ULL, 4242, 0xdeadbeefULL, "mx.example.org", &a));
        ASSERT_STREQ(a, "1700000000.M012345P4242R00000000deadbeef.mx.example.org");
        ASSERT_OK(maildir_unique_name(1700000000012345ULL, 4242, 1, "odd/host:name", &b));
        ASSERT_STREQ(b, "1700000000.M012345P4242R0000000000000001.odd\\057host\\072name");
}

TEST(result_round_trip) {
        MailboxResult r = {}, back = {};
        char buf[MAILBOX_RESULT_WIRE_MAX];
        size_t n;

        mailbox_result_set(&r, "2.0.0", "delivered to %s", "mailbox");
        ASSERT_EQ(r.status, MAILBOX_STATUS_SENT);
        n = mailbox_result_format(&r, buf, sizeof buf);
        ASSERT_EQ(n, strlen("2.0.0 delivered to mailbox"));
        ASSERT_OK(mailbox_result_parse(buf, n, &back));
        ASSERT_EQ(back.status, MAILBOX_STATUS_SENT);
        ASSERT_STREQ(back.dsn, "2.0.0");
        ASSERT_STREQ(back.text, "delivered to mailbox");

        mailbox_result_set(&r, "5.1.1", "unknown user: \"%s\"", "x");
        ASSERT_STREQ(mailbox_status_to_string(r.status), "bounced");
        mailbox_result_set(&r, "4.2.0", "busy");
        ASSERT_STREQ(mailbox_status_to_string(r.status), "deferred");

        ASSERT_OK(mailbox_result_parse("4.123.456 ", 10, &back));
        ASSERT_STREQ(back.dsn, "4.123.456");
        ASSERT_STREQ(back.text, "");
        ASSERT_EQ(back.status, MAILBOX_STATUS_DEFERRED);

        /* control characters and broken UTF-8 from the child come out escaped */
        ASSERT_OK(mailbox_result_parse("4.2.0 a\tb\xff", 10, &back));
        ASSERT_STREQ(back.text, "a\\x09b\\xff");
}

TEST(result_parse_bad) {
        static const char *const bad[] = {
                "", "2.0.0", "2.0.0x", "3.0.0 x", "2.0 x", "2..0 x", "2.1234.0 x", "2.0.1234 x", " 2.0.0 x",
                "x.0.0 x", "20.0 x",
        };
        MailboxResult r;
        char big[MAILBOX_RESULT_WIRE_MAX + 10];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERR(mailbox_result_parse(bad[i], strlen(bad[i]), &r), EBADMSG);
        memset(big, 'a', sizeof big);
        memcpy(big, "2.0.0 ", 6);
        ASSERT_ERR(mailbox_result_parse(big, sizeof big, &r), EBADMSG);
}

TEST(result_text_cut_on_utf8_boundary) {
        char text[3 * MAILBOX_TEXT_SIZE] = "";
        MailboxResult r;

        for (size_t i = 0; i + 2 < sizeof text; i += 2)
                strcat(text, "\xc3\xa9");       /* é */
        mailbox_result_set(&r, "4.3.0", "x%s", text);
        ASSERT_TRUE(strlen(r.text) < MAILBOX_TEXT_SIZE);
        ASSERT_EQ(strlen(r.text) % 2, 1);        /* "x" and whole characters only */
        ASSERT_TRUE(strlen(r.text) >= MAILBOX_TEXT_SIZE - 3);
}

int main(void) {
        RUN(quote_golden);
        RUN(quote_every_split);
        RUN(quote_error);
        RUN(from_line);
        RUN(delivery_headers);
        RUN(maildir_name);
        RUN(result_round_trip);
        RUN(result_parse_bad);
        RUN(result_text_cut_on_utf8_boundary);
        return 0;
}
