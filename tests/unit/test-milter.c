/* test-milter.c: the milter protocol's reply reader and command encoder (milter-proto.c) and the message
 * changes of the end of a message (milter-message.c). */
#include <sys/mman.h>

#include "io-util.h"
#include "milter-message.h"
#include "milter-proto.h"
#include "tests.h"

static size_t packet(uint8_t *buf, char cmd, const void *data, size_t len) {
        uint32_t n = (uint32_t) len + 1;

        buf[0] = n >> 24, buf[1] = n >> 16, buf[2] = n >> 8, buf[3] = n;
        buf[4] = (uint8_t) cmd;
        memcpy(buf + 5, data, len);
        return len + 5;
}

static int parse(char cmd, const void *data, size_t len, MilterReply *r) {
        static uint8_t buf[4096];
        size_t n = packet(buf, cmd, data, len), size;

        ASSERT_EQ(milter_packet_frame(buf, n, 4096, &size), 1);
        ASSERT_EQ(size, n);
        return milter_reply_parse(buf + 4, n - 4, r);
}

static void test_frame(void) {
        uint8_t buf[16] = { 0, 0, 0, 1, 'c', 0, 0 };
        size_t size;

        ASSERT_EQ(milter_packet_frame(buf, 3, 100, &size), 0);
        ASSERT_EQ(milter_packet_frame(buf, 5, 100, &size), 1);
        ASSERT_EQ(size, 5);
        ASSERT_EQ(milter_packet_frame(buf + 5, 2, 100, &size), 0);
        buf[3] = 0;
        ASSERT_ERR(milter_packet_frame(buf, 5, 100, &size), EBADMSG);           /* zero length */
        memcpy(buf, "\x7f\xff\xff\xff", 4);
        ASSERT_ERR(milter_packet_frame(buf, 5, 100, &size), EBADMSG);           /* oversized */
        memcpy(buf, "\0\0\0\x0a", 4);
        ASSERT_EQ(milter_packet_frame(buf, 5, 100, &size), 0);                  /* incomplete */
}

static void test_replies(void) {
        MilterReply r;

        ASSERT_OK(parse('c', NULL, 0, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_CONTINUE);
        ASSERT_OK(parse('a', NULL, 0, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_ACCEPT);
        ASSERT_OK(parse('t', NULL, 0, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_TEMPFAIL);
        ASSERT_ERR(parse('c', "x", 1, &r), EBADMSG);                           /* left over */
        ASSERT_ERR(parse('Z', NULL, 0, &r), EBADMSG);                          /* unknown */

        ASSERT_OK(parse('y', "550 5.7.1 no thanks", 20, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_REPLYCODE);
        ASSERT_STREQ(r.text, "550 5.7.1 no thanks");
        ASSERT_ERR(parse('y', "550 5.7.1 no", 12, &r), EBADMSG);               /* no NUL */
        ASSERT_ERR(parse('y', "250 ok", 7, &r), EBADMSG);                      /* not a refusal */
        ASSERT_ERR(parse('y', "550 4.7.1 x", 12, &r), EBADMSG);                /* classes differ */

        ASSERT_OK(parse('h', "X-A\0v 1", 8, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_ADDHEADER);
        ASSERT_STREQ(r.name, "X-A");
        ASSERT_STREQ(r.text, "v 1");
        ASSERT_ERR(parse('h', "X:A\0v", 6, &r), EBADMSG);
        ASSERT_ERR(parse('h', "X-A", 4, &r), EBADMSG);                         /* no value */

        ASSERT_OK(parse('m', "\0\0\0\2Subject\0new", 16, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_CHGHEADER);
        ASSERT_EQ(r.index, 2);
        ASSERT_ERR(parse('m', "\0\0", 2, &r), EBADMSG);

        ASSERT_OK(parse('e', "<s@x>", 6, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_CHGFROM);
        ASSERT_TRUE(r.args == NULL);
        ASSERT_OK(parse('2', "<s@x>\0NOTIFY=NEVER", 19, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_ADDRCPT);
        ASSERT_STREQ(r.args, "NOTIFY=NEVER");

        ASSERT_OK(parse('b', "line\r\n", 6, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_REPLBODY);
        ASSERT_EQ(r.len, 6);

        ASSERT_OK(parse('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\2{mail_addr}", 28, &r));
        ASSERT_EQ(r.type, MILTER_REPLY_OPTNEG);
        ASSERT_EQ(r.version, 6);
        ASSERT_EQ(r.actions, 0x1ff);
        ASSERT_STREQ(r.macros[MILTER_STAGE_MAIL], "{mail_addr}");
        ASSERT_ERR(parse('O', "\0\0\0\6\0\0", 6, &r), EBADMSG);
        ASSERT_ERR(parse('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\x09x", 18, &r), EBADMSG);      /* stage 9 */
}

static void test_reply_text(void) {
        ASSERT_TRUE(milter_reply_text_valid("550 5.7.1 Go away"));
        ASSERT_TRUE(milter_reply_text_valid("421"));
        ASSERT_TRUE(milter_reply_text_valid("550-5.7.1 one\r\n550 5.7.1 two"));
        ASSERT_TRUE(!milter_reply_text_valid("550-5.7.1 one\r\n551 5.7.1 two"));
        ASSERT_TRUE(!milter_reply_text_valid("550 5.7.1 one\r\n550 5.7.1 two"));
        ASSERT_TRUE(!milter_reply_text_valid("550 a\tb"));
        ASSERT_TRUE(!milter_reply_text_valid("354 go"));
        ASSERT_TRUE(!milter_reply_text_valid("55"));
}

static void test_encode(void) {
        MilterBuf b = {};
        size_t start;

        milter_buf_command(&b, 'H', (const char *const[]) { "client.example", NULL });
        ASSERT_EQ(b.len, 4 + 1 + 15);
        ASSERT_TRUE(memcmp(b.data, "\0\0\0\x10H", 5) == 0);
        milter_buf_begin(&b, 'O', &start);
        milter_buf_put_u32(&b, 6);
        milter_buf_end(&b, start);
        ASSERT_TRUE(memcmp(b.data + 20, "\0\0\0\5O\0\0\0\6", 9) == 0);
        ASSERT_TRUE(!b.failed);
        milter_buf_done(&b);
}

static char *message_text(const MilterMessage *m) {
        int fd = memfd_new("test-milter");
        off_t size;
        char *t;

        ASSERT_OK(fd);
        ASSERT_OK(milter_message_write(m, fd));
        size = lseek(fd, 0, SEEK_END);
        t = calloc(1, (size_t) size + 1);
        ASSERT_TRUE(t);
        ASSERT_EQ(pread(fd, t, (size_t) size, 0), size);
        close(fd);
        return t;
}

static void apply(MilterMessage *m, char cmd, const void *data, size_t len, int expect) {
        MilterReply r;

        ASSERT_OK(parse(cmd, data, len, &r));
        ASSERT_EQ(milter_message_apply(m, &r), expect);
}

static void test_message(void) {
        static const char text[] = "From: a@example.org\nSubject: one\n\ttwo\nReceived: x\nReceived: y\n\nbody\nline\n";
        MilterMessage m;
        char chunk[64];
        size_t off = 0;
        char *t;

        ASSERT_OK(milter_message_parse(text, sizeof text - 1, 4096, &m));
        ASSERT_EQ(m.n_headers, 4);
        ASSERT_STREQ(m.headers[1].name, "Subject");
        ASSERT_STREQ(m.headers[1].value, "one\n\ttwo");
        ASSERT_EQ(m.body_len, 10);
        ASSERT_EQ(milter_message_body_chunk(&m, &off, chunk, 7), 6);           /* "body\r\n" */
        ASSERT_TRUE(memcmp(chunk, "body\r\n", 6) == 0);
        ASSERT_EQ(milter_message_body_chunk(&m, &off, chunk, sizeof chunk), 6);
        ASSERT_EQ(milter_message_body_chunk(&m, &off, chunk, sizeof chunk), 0);

        /* Unchanged, it is written as received. */
        t = message_text(&m);
        ASSERT_STREQ(t, text);
        free(t);

        apply(&m, 'h', "X-Added\0yes", 12, 0);
        apply(&m, 'i', "\0\0\0\0X-First\0top", 16, 0);
        apply(&m, 'm', "\0\0\0\2Received\0", 14, 0);                          /* delete the second */
        apply(&m, 'm', "\0\0\0\1Subject\0new\r\n\tfolded", 25, 0);
        apply(&m, 'b', "new body\r\n", 10, 0);
        apply(&m, 'b', "more\r", 5, 0);
        apply(&m, 'b', "\n", 1, 0);
        apply(&m, '+', "<added@example.org>", 20, 0);
        apply(&m, '-', "<old@example.org>", 18, 0);
        apply(&m, 'e', "<>", 3, 0);
        apply(&m, 'q', "suspicious", 11, 0);
        apply(&m, '+', "<a@b> <c@d>", 12, -EINVAL);
        ASSERT_OK(milter_message_commit(&m));
        t = message_text(&m);
        ASSERT_STREQ(t, "X-First: top\nFrom: a@example.org\nSubject: new\n\tfolded\nReceived: x\nX-Added: yes\n\n"
                        "new body\nmore\n");
        free(t);
        ASSERT_STREQ(m.add_rcpt[0], "added@example.org");
        ASSERT_STREQ(m.del_rcpt[0], "old@example.org");
        ASSERT_STREQ(m.sender, "");
        ASSERT_STREQ(m.quarantine, "suspicious");
        milter_message_done(&m);

        /* The size limit holds for headers and for a new body. */
        ASSERT_OK(milter_message_parse(text, sizeof text - 1, sizeof text + 8, &m));
        apply(&m, 'h', "X-Big\0aaaaaaaaaaaaaaaaaaaaaaaa", 31, -EFBIG);
        apply(&m, 'b', "012345678901234567890123456789012345678901234567890123456789", 60, 0);
        ASSERT_ERR(milter_message_commit(&m), EFBIG);
        milter_message_done(&m);

        /* No headers at all: everything is body. */
        ASSERT_OK(milter_message_parse("just text\n", 10, 4096, &m));
        ASSERT_EQ(m.n_headers, 0);
        ASSERT_EQ(m.body_len, 10);
        milter_message_done(&m);
}

int main(void) {
        test_frame();
        test_replies();
        test_reply_text();
        test_encode();
        test_message();
        return 0;
}
