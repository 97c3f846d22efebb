/* test-smtp-proto.c: the smtp role's pure protocol helpers: server replies, EHLO keywords, next hops, the
 * DATA encoder (dot-stuffing, CRLF, long lines wrapped with CRLF SPACE), and the pure parts of SASL client
 * authentication (AUTH in EHLO, security options, password table keys, PLAIN). */
#include <errno.h>

#include "tests.h"
#include "macro.h"
#include "sasl-util.h"
#include "src/smtp/smtp.h"

static int add(SmtpReply *r, const char *line) {
        return smtp_reply_add_line(r, line, strlen(line));
}

TEST(reply_single) {
        SmtpReply r;
        char dsn[16];

        smtp_reply_init(&r);
        ASSERT_EQ(add(&r, "550 5.1.1 <bob@example.org>: Recipient address rejected"), 1);
        ASSERT_EQ(r.code, 550);
        ASSERT_STREQ(r.dsn, "5.1.1");
        ASSERT_STREQ(r.text, "550 5.1.1 <bob@example.org>: Recipient address rejected");
        ASSERT_STREQ(smtp_reply_dsn(&r, dsn), "5.1.1");
        ASSERT_EQ(add(&r, "250 more"), -EBADMSG);       /* after the last line */
        smtp_reply_done(&r);

        /* no enhanced code, or one of another class: the class's X.0.0 */
        ASSERT_EQ(add(&r, "451 try later"), 1);
        ASSERT_STREQ(smtp_reply_dsn(&r, dsn), "4.0.0");
        smtp_reply_done(&r);
        ASSERT_EQ(add(&r, "451 5.1.1 mixed"), 1);
        ASSERT_STREQ(smtp_reply_dsn(&r, dsn), "4.0.0");
        smtp_reply_done(&r);
        ASSERT_EQ(add(&r, "250"), 1);
        ASSERT_EQ(r.code, 250);
        ASSERT_STREQ(r.text, "250");
        smtp_reply_done(&r);
        ASSERT_EQ(add(&r, "250 2.0.0"), 1);
        ASSERT_STREQ(r.dsn, "2.0.0");
        smtp_reply_done(&r);
}

TEST(reply_bad) {
        SmtpReply r;

        smtp_reply_init(&r);
        ASSERT_EQ(add(&r, "25"), -EBADMSG);
        ASSERT_EQ(add(&r, "2500 x"), -EBADMSG);
        ASSERT_EQ(add(&r, "abc def"), -EBADMSG);
        ASSERT_EQ(add(&r, "150 x"), -EBADMSG);
        ASSERT_EQ(add(&r, "650 x"), -EBADMSG);
        ASSERT_EQ(add(&r, "250-first"), 0);
        ASSERT_EQ(add(&r, "251 other code"), -EBADMSG);
        smtp_reply_done(&r);
        ASSERT_EQ(add(&r, "250 5.1.1.1 x"), 1);
        ASSERT_STREQ(r.dsn, "");
        smtp_reply_done(&r);
}

TEST(reply_multi_and_ehlo) {
        SmtpReply r;
        uint64_t size = 1;

        smtp_reply_init(&r);
        ASSERT_EQ(add(&r, "250-mx.example.org hello"), 0);
        ASSERT_EQ(add(&r, "250-PIPELINING"), 0);
        ASSERT_EQ(add(&r, "250-size 10240000"), 0);
        ASSERT_EQ(add(&r, "250-8BITMIME"), 0);
        ASSERT_EQ(add(&r, "250-DSN"), 0);
        ASSERT_EQ(add(&r, "250-STARTTLS"), 0);
        ASSERT_EQ(add(&r, "250-PIPELININGX"), 0);
        ASSERT_EQ(add(&r, "250 SMTPUTF8"), 1);
        ASSERT_EQ(r.n_lines, 8);
        ASSERT_STREQ(r.text, "250-mx.example.org hello 250-PIPELINING 250-size 10240000 250-8BITMIME 250-DSN "
                             "250-STARTTLS 250-PIPELININGX 250 SMTPUTF8");
        ASSERT_EQ(smtp_ehlo_features(&r, &size),
                  SMTP_FEATURE_PIPELINING | SMTP_FEATURE_SIZE | SMTP_FEATURE_8BITMIME | SMTP_FEATURE_DSN |
                  SMTP_FEATURE_STARTTLS | SMTP_FEATURE_SMTPUTF8);
        ASSERT_EQ(size, 10240000);
        smtp_reply_done(&r);

        /* the first line is the server's name, never a keyword; SIZE without a number: no limit */
        ASSERT_EQ(add(&r, "250-PIPELINING"), 0);
        ASSERT_EQ(add(&r, "250 SIZE"), 1);
        ASSERT_EQ(smtp_ehlo_features(&r, &size), SMTP_FEATURE_SIZE);
        ASSERT_EQ(size, 0);
        smtp_reply_done(&r);
        ASSERT_EQ(add(&r, "250-x"), 0);
        ASSERT_EQ(add(&r, "250 SIZE 12x"), 1);
        ASSERT_EQ(smtp_ehlo_features(&r, &size), SMTP_FEATURE_SIZE);
        ASSERT_EQ(size, 0);
        smtp_reply_done(&r);
}

TEST(reply_limits) {
        SmtpReply r;
        char line[SMTP_REPLY_LINE_MAX + 100];

        smtp_reply_init(&r);
        for (unsigned i = 0; i < SMTP_REPLY_LINES_MAX; i++)
                ASSERT_EQ(add(&r, "250-x"), 0);
        ASSERT_EQ(add(&r, "250 x"), -E2BIG);
        ASSERT_TRUE(r.text_len <= SMTP_REPLY_TEXT_MAX);
        smtp_reply_done(&r);

        memset(line, 'a', sizeof line - 1);
        line[sizeof line - 1] = '\0';
        memcpy(line, "250 ", 4);
        ASSERT_EQ(add(&r, line), 1);
        ASSERT_EQ(r.text_len, SMTP_REPLY_LINE_MAX);
        smtp_reply_done(&r);
}

TEST(hop) {
        SmtpHop h;

        ASSERT_OK(smtp_hop_parse("example.org", false, 25, &h));
        ASSERT_STREQ(h.host, "example.org");
        ASSERT_EQ(h.port, 25);
        ASSERT_TRUE(h.mx);
        ASSERT_OK(smtp_hop_parse("example.org:587", false, 25, &h));
        ASSERT_EQ(h.port, 587);
        ASSERT_TRUE(h.mx);
        ASSERT_OK(smtp_hop_parse("[mail.example.org]", false, 25, &h));
        ASSERT_STREQ(h.host, "mail.example.org");
        ASSERT_TRUE(!h.mx);
        ASSERT_OK(smtp_hop_parse("[127.0.0.1]:2525", false, 25, &h));
        ASSERT_STREQ(h.host, "127.0.0.1");
        ASSERT_EQ(h.port, 2525);
        ASSERT_TRUE(!h.mx);
        ASSERT_OK(smtp_hop_parse("[ipv6:::1]:smtp", false, 2525, &h));
        ASSERT_STREQ(h.host, "::1");
        ASSERT_EQ(h.port, 25);
        ASSERT_OK(smtp_hop_parse("192.0.2.1", false, 25, &h));
        ASSERT_TRUE(!h.mx);
        ASSERT_OK(smtp_hop_parse("unix:/run/dovecot/lmtp", true, 24, &h));
        ASSERT_EQ(h.kind, SMTP_HOP_UNIX);
        ASSERT_STREQ(h.host, "/run/dovecot/lmtp");
        ASSERT_OK(smtp_hop_parse("inet:lmtp.example:2424", true, 24, &h));
        ASSERT_EQ(h.kind, SMTP_HOP_INET);
        ASSERT_STREQ(h.host, "lmtp.example");
        ASSERT_EQ(h.port, 2424);
        ASSERT_TRUE(!h.mx);
        ASSERT_OK(smtp_hop_parse("inet:[127.0.0.1]", true, 24, &h));
        ASSERT_EQ(h.port, 24);

        ASSERT_ERR(smtp_hop_parse("unix:/x", false, 25, &h), EINVAL);   /* smtp has no unix: */
        ASSERT_ERR(smtp_hop_parse("unix:relative", true, 24, &h), EINVAL);
        ASSERT_ERR(smtp_hop_parse("", false, 25, &h), EINVAL);
        ASSERT_ERR(smtp_hop_parse("[127.0.0.1", false, 25, &h), EINVAL);
        ASSERT_ERR(smtp_hop_parse("[127.0.0.1]x", false, 25, &h), EINVAL);
        ASSERT_ERR(smtp_hop_parse("example.org:0", false, 25, &h), EINVAL);
        ASSERT_ERR(smtp_hop_parse("example.org:65536", false, 25, &h), EINVAL);
        ASSERT_ERR(smtp_hop_parse("exa mple.org", false, 25, &h), EINVAL);
        ASSERT_ERR(smtp_hop_parse("[]:25", false, 25, &h), EINVAL);
}

/* Encodes in (in pieces of step octets) and checks the output. */
static void encode(const char *in, size_t limit, size_t step, const char *expected) {
        SmtpEncoder e;
        size_t len = strlen(in), o = 0;
        char *out = malloc(2 * len + 3 * (len + 1) + 16);

        ASSERT_TRUE(out);
        smtp_encoder_init(&e, limit);
        for (size_t i = 0; i < len; i += step) {
                size_t n = MIN(step, len - i);
                ASSERT_TRUE(smtp_encoder_bound(&e, n) >= 2 * n);
                o += smtp_encoder_feed(&e, in + i, n, out + o);
        }
        o += smtp_encoder_finish(&e, out + o);
        out[o] = '\0';
        ASSERT_STREQ(out, expected);
        free(out);
}

TEST(encoder) {
        for (size_t step = 1; step < 8; step++) {
                encode("a\nb\n", 998, step, "a\r\nb\r\n.\r\n");
                encode(".\n..x\nx.\n.", 998, step, "..\r\n...x\r\nx.\r\n..\r\n.\r\n");
                encode("no newline", 998, step, "no newline\r\n.\r\n");
                encode("", 998, step, ".\r\n");
                encode("abcdefgh\n", 4, step, "abcd\r\n efg\r\n h\r\n.\r\n");
                encode(".bcdefg\n", 4, step, "..bc\r\n def\r\n g\r\n.\r\n");
                encode("abcd\n", 4, step, "abcd\r\n.\r\n");
                encode("abcdefgh\n", 0, step, "abcdefgh\r\n.\r\n");
        }
}

TEST(encoder_long_line) {
        /* A 1,500-octet line under the default limit: 998 octets, then CRLF SPACE and the other 502. */
        char in[1502], expected[1600];
        size_t o = 0;

        for (size_t i = 0; i < 1500; i++)
                in[i] = (char) ('a' + i % 26);
        in[1500] = '\n';
        in[1501] = '\0';
        memcpy(expected, in, 998);
        o = 998;
        memcpy(expected + o, "\r\n ", 3);
        o += 3;
        memcpy(expected + o, in + 998, 502);
        o += 502;
        memcpy(expected + o, "\r\n.\r\n", 6);
        encode(in, 998, 1501, expected);
        encode(in, 998, 7, expected);
}

/* The encoder as the rules say it, one octet at a time: what smtp_encoder_feed() must give. */
static size_t reference_encode(const char *in, size_t len, size_t limit, char *out) {
        size_t o = 0, column = 0;
        bool line_start = true;

        for (size_t i = 0; i < len; i++) {
                if (in[i] == '\n') {
                        out[o++] = '\r';
                        out[o++] = '\n';
                        line_start = true;
                        column = 0;
                        continue;
                }
                if (limit > 0 && column >= limit) {
                        out[o++] = '\r';
                        out[o++] = '\n';
                        out[o++] = ' ';
                        column = 1;
                        line_start = false;
                }
                if (line_start && in[i] == '.') {
                        out[o++] = '.';
                        column++;
                }
                out[o++] = in[i];
                column++;
                line_start = false;
        }
        return o;
}

TEST(encoder_random) {
        /* Random text of dots, newlines and letters, in random pieces, under a few limits. */
        static const char alphabet[] = "..\n\nabc";
        char in[600], out[4 * sizeof in + 16], expected[4 * sizeof in + 16];     /* a wrap after each octet at limit 1 */
        unsigned seed = 42;

        for (unsigned round = 0; round < 3000; round++) {
                size_t len = (size_t) rand_r(&seed) % sizeof in, limit = (size_t[]) { 0, 1, 2, 5, 998 }[round % 5];
                size_t o = 0, exp_len;
                SmtpEncoder e;

                for (size_t i = 0; i < len; i++)
                        in[i] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
                if (round % 7 == 0)
                        for (size_t i = 0; i < len; i++)
                                in[i] = i % 300 == 299 ? '\n' : 'x';
                exp_len = reference_encode(in, len, limit, expected);
                smtp_encoder_init(&e, limit);
                for (size_t i = 0; i < len;) {
                        size_t n = (size_t) rand_r(&seed) % 40 + 1;     /* MIN() evaluates twice */
                        n = MIN(n, len - i);
                        ASSERT_TRUE(o + smtp_encoder_bound(&e, n) <= sizeof out);
                        o += smtp_encoder_feed(&e, in + i, n, out + o);
                        i += n;
                }
                ASSERT_EQ(o, exp_len);
                ASSERT_TRUE(memcmp(out, expected, o) == 0);
        }
}

static void ehlo(SmtpReply *r, const char *const *lines) {
        smtp_reply_init(r);
        for (size_t i = 0; lines[i]; i++)
                ASSERT_EQ(add(r, lines[i]), lines[i + 1] ? 0 : 1);
}

TEST(ehlo_auth) {
        static const char *const plain_login[] = { "250-fake.test", "250-PIPELINING", "250-AUTH login PLAIN CRAM-MD5",
                                                   "250 8BITMIME", NULL };
        static const char *const old_form[] = { "250-fake.test", "250-AUTH=LOGIN", "250 SIZE 100", NULL };
        static const char *const cram[] = { "250-fake.test", "250 AUTH CRAM-MD5 DIGEST-MD5", NULL };
        static const char *const none[] = { "250-fake.test", "250-AUTHX PLAIN", "250 SIZE", NULL };
        char *filter_login[] = { (char *) "login", NULL }, *filter_gssapi[] = { (char *) "GSSAPI", NULL };
        SmtpReply r;
        unsigned m;
        size_t n;

        ehlo(&r, plain_login);
        ASSERT_EQ(smtp_ehlo_auth(&r, NULL, &m, &n), 1);
        ASSERT_EQ(m, 3U);
        ASSERT_EQ(n, 3U);
        ASSERT_EQ(smtp_ehlo_auth(&r, filter_login, &m, &n), 1);
        ASSERT_EQ(m, 2U);
        ASSERT_EQ(n, 1U);
        ASSERT_EQ(smtp_ehlo_auth(&r, filter_gssapi, &m, &n), 1);
        ASSERT_EQ(m, 0U);
        ASSERT_EQ(n, 0U);
        smtp_reply_done(&r);
        ehlo(&r, old_form);
        ASSERT_EQ(smtp_ehlo_auth(&r, NULL, &m, &n), 1);
        ASSERT_EQ(m, 2U);
        smtp_reply_done(&r);
        ehlo(&r, cram);
        ASSERT_EQ(smtp_ehlo_auth(&r, NULL, &m, &n), 1);
        ASSERT_EQ(m, 0U);
        ASSERT_EQ(n, 2U);
        smtp_reply_done(&r);
        ehlo(&r, none);
        ASSERT_EQ(smtp_ehlo_auth(&r, NULL, &m, &n), 0);
        ASSERT_EQ(m, 0U);
        smtp_reply_done(&r);
}

TEST(sasl_options) {
        unsigned o;

        ASSERT_EQ(smtp_sasl_options_parse("noplaintext, noanonymous", &o), 0);
        ASSERT_EQ(o, (unsigned) (SMTP_SASL_NOPLAINTEXT | SMTP_SASL_NOANONYMOUS));
        ASSERT_TRUE(!smtp_sasl_choose(3, o));           /* the default: no password outside TLS */
        ASSERT_EQ(smtp_sasl_options_parse("noanonymous", &o), 0);
        ASSERT_STREQ(smtp_sasl_choose(3, o), "PLAIN");
        ASSERT_STREQ(smtp_sasl_choose(2, o), "LOGIN");
        ASSERT_TRUE(!smtp_sasl_choose(0, o));
        ASSERT_EQ(smtp_sasl_options_parse("", &o), 0);
        ASSERT_EQ(o, 0U);
        ASSERT_STREQ(smtp_sasl_choose(1, o), "PLAIN");
        ASSERT_EQ(smtp_sasl_options_parse("nodictionary", &o), 0);
        ASSERT_TRUE(!smtp_sasl_choose(3, o));
        ASSERT_EQ(smtp_sasl_options_parse("noanonymous bogus", &o), -EINVAL);
        ASSERT_EQ(o, (unsigned) SMTP_SASL_NOANONYMOUS);
}

static void keys_are(const char *sender, const char *host, uint16_t port, const char *nexthop,
                     const char *const *expected) {
        _cleanup_strv_free_ char **keys = NULL;
        size_t i;

        ASSERT_EQ(smtp_sasl_keys(sender, host, port, nexthop, false, &keys), 0);
        for (i = 0; expected[i]; i++)
                ASSERT_STREQ(keys[i], expected[i]);
        ASSERT_TRUE(!keys[i]);
}

TEST(sasl_keys) {
        static const char *const relay[] = { "[relay.test]:587", "[relay.test]", "relay.test:587", "relay.test",
                                             NULL };
        static const char *const mx[] = { "[mx1.example.org]:25", "[mx1.example.org]", "mx1.example.org:25",
                                          "mx1.example.org", "example.org", NULL };
        static const char *const by_sender[] = { "bob@example.com", "@example.com", "[127.0.0.1]:2525",
                                                 "[127.0.0.1]", "127.0.0.1:2525", "127.0.0.1", NULL };

        keys_are(NULL, "relay.test", 587, "[relay.test]:587", relay);
        keys_are("", "mx1.example.org", 25, "example.org", mx);
        keys_are("bob@example.com", "127.0.0.1", 2525, "[127.0.0.1]:2525", by_sender);
}

TEST(sasl_plain) {
        _cleanup_free_ char *b64 = NULL, *back = NULL;
        size_t n;

        ASSERT_EQ(smtp_sasl_plain_response("alice", "secret", &b64), 0);
        ASSERT_STREQ(b64, "AGFsaWNlAHNlY3JldA==");
        ASSERT_EQ(sasl_base64_decode(b64, strlen(b64), &back, &n), 0);
        ASSERT_EQ(n, 13U);
        ASSERT_TRUE(memcmp(back, "\0alice\0secret", 13) == 0);
        free(back);
        back = NULL;
        ASSERT_EQ(sasl_base64_decode("YWI=", 4, &back, &n), 0);
        ASSERT_STREQ(back, "ab");
        ASSERT_EQ(n, 2U);
        ASSERT_EQ(sasl_base64_decode("YW=j", 4, &back, &n), -EINVAL);
}

int main(void) {
        RUN(reply_single);
        RUN(reply_bad);
        RUN(reply_multi_and_ehlo);
        RUN(reply_limits);
        RUN(hop);
        RUN(encoder);
        RUN(encoder_long_line);
        RUN(encoder_random);
        RUN(ehlo_auth);
        RUN(sasl_options);
        RUN(sasl_keys);
        RUN(sasl_plain);
        return 0;
}
