/* test-milter.c: the milter protocol's reply reader and command encoder (milter-proto.c) and the message
 * changes of the end of a message (milter-message.c). */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon.h"
#include "io-util.h"
#include "milter.h"
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

/* ---- the chain against a scripted milter on a unix socket, on one event loop ------------------------ */

typedef enum FakeMode { FAKE_GOOD, FAKE_GARBAGE, FAKE_SILENT, FAKE_NOREPLY } FakeMode;

typedef struct Fake {
        FakeMode mode;
        int listen_fd, fd;
        sd_event_source *listen, *io;
        uint8_t buf[1 << 17];
        size_t len;
        unsigned commands, reads;
        char seen[64];                  /* the commands received, macros left out */
} Fake;

static void fake_send(Fake *f, char cmd, const void *data, size_t len) {
        uint8_t pkt[256];

        ASSERT_TRUE(len + 5 <= sizeof pkt);
        ASSERT_EQ(write(f->fd, pkt, packet(pkt, cmd, data, len)), (ssize_t) len + 5);
}

static int on_fake_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Fake *f = userdata;
        ssize_t n = read(fd, f->buf + f->len, sizeof f->buf - f->len);
        size_t size;

        if (n <= 0) {
                f->io = sd_event_source_disable_unref(f->io);
                return 0;
        }
        f->len += (size_t) n;
        f->reads++;
        while (milter_packet_frame(f->buf, f->len, sizeof f->buf, &size) > 0) {
                char cmd = (char) f->buf[4];

                f->commands++;
                if (cmd != 'D' && strlen(f->seen) + 1 < sizeof f->seen)
                        f->seen[strlen(f->seen)] = cmd;
                if (f->mode == FAKE_NOREPLY && cmd == 'O')
                        /* No HELO, no DATA; no reply to the connection, MAIL, RCPT, headers, EOH, body. */
                        fake_send(f, 'O', "\0\0\0\6\0\0\x01\xff\0\x0c\xd2\x82", 12);
                else if (f->mode == FAKE_NOREPLY && cmd != 'E')
                        ;
                else if (f->mode == FAKE_GARBAGE && cmd != 'O')
                        ASSERT_EQ(write(fd, "\0\0\0\3Zxx", 7), 7);
                else if (cmd == 'O')
                        fake_send(f, 'O', "\0\0\0\6\0\0\1\xff\0\0\0\0", 12);
                else if (f->mode == FAKE_SILENT || cmd == 'D' || cmd == 'A' || cmd == 'Q')
                        ;
                else if (cmd == 'E') {
                        fake_send(f, 'h', "X-Fake\0yes", 11);
                        fake_send(f, 'b', "new\r\n", 5);
                        fake_send(f, '+', "<new@example.org>", 18);
                        fake_send(f, 'q', "held", 5);
                        fake_send(f, 'c', NULL, 0);
                } else if (cmd == 'R' && memcmp(f->buf + 5, "<bad@", 5) == 0)
                        fake_send(f, 'y', "550 5.7.1 bad rcpt", 19);
                else
                        fake_send(f, 'c', NULL, 0);
                memmove(f->buf, f->buf + size, f->len - size);
                f->len -= size;
        }
        return 0;
}

static int on_fake_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Fake *f = userdata;

        f->fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_OK(f->fd);
        ASSERT_OK(sd_event_add_io(sd_event_source_get_event(s), &f->io, f->fd, EPOLLIN, on_fake_io, f));
        return 0;
}

static void fake_start(sd_event *e, Fake *f, FakeMode mode, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        *f = (Fake) { .mode = mode, .fd = -EBADF };
        strcpy(sa.sun_path, path);
        (void) unlink(path);
        f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(f->listen_fd);
        ASSERT_OK(bind(f->listen_fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(listen(f->listen_fd, 4));
        ASSERT_OK(sd_event_add_io(e, &f->listen, f->listen_fd, EPOLLIN, on_fake_accept, f));
}

static void fake_stop(Fake *f, const char *path) {
        sd_event_source_disable_unref(f->listen);
        sd_event_source_disable_unref(f->io);
        safe_close(f->listen_fd);
        safe_close(f->fd);
        (void) unlink(path);
}

typedef struct Outcome {
        bool done;
        MilterVerdict verdict;
        char reply[256];
} Outcome;

static Outcome outcome;

static void on_done(MilterChain *c, MilterVerdict verdict, const char *reply, void *userdata) {
        outcome = (Outcome) { .done = true, .verdict = verdict };
        if (reply)
                (void) snprintf(outcome.reply, sizeof outcome.reply, "%s", reply);
}

static const char *macro(const char *name, void *userdata) {
        return strcmp(name, "j") == 0 ? "mx.example.org" : NULL;
}

static void run_step(sd_event *e) {
        outcome.done = false;
        for (unsigned i = 0; !outcome.done && i < 1000; i++)
                ASSERT_OK(sd_event_run(e, 100 * 1000));
        ASSERT_TRUE(outcome.done);
}

static void settings_for(MilterSettings *s, const char *spec, MilterAction action) {
        Config *config = NULL;
        char *text = NULL;

        ASSERT_TRUE(asprintf(&text, "smtpd_milters = %s\nmilter_default_action = %s\n", spec,
                             action == MILTER_ACTION_ACCEPT ? "accept" : "tempfail") > 0);
        ASSERT_OK(config_parse(text, "test", &config));
        ASSERT_OK(milter_settings_load(config, config->smtpd_milters, s));
        s->command_timeout = s->content_timeout = s->connect_timeout = 200 * 1000;
        config_free(config);
        free(text);
}

static void test_chain(void) {
        static const char text[] = "From: a@example.org\nSubject: x\n\nold\n";
        char path[] = "/tmp/test-milter-XXXXXX", sock[64];
        char *from[] = { (char *) "<a@example.org>", (char *) "SIZE=10", NULL };
        char *good[] = { (char *) "<b@example.org>", NULL }, *bad[] = { (char *) "<bad@example.org>", NULL };
        MilterSettings settings;
        MilterChain *c = NULL;
        MilterMessage m;
        sd_event *e = NULL;
        Fake f;

        ASSERT_TRUE(mkdtemp(path));
        (void) snprintf(sock, sizeof sock, "%s/m.sock", path);
        ASSERT_OK(sd_event_new(&e));

        /* A good milter: every stage, a refused recipient, the changes at the end. */
        char spec[80];
        (void) snprintf(spec, sizeof spec, "unix:%s", sock);
        fake_start(e, &f, FAKE_GOOD, sock);
        settings_for(&settings, spec, MILTER_ACTION_TEMPFAIL);
        ASSERT_OK(milter_chain_new(e, &settings, macro, NULL, &c));
        ASSERT_OK(milter_chain_connect(c, "client.example.org", '4', "192.0.2.1", 25, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_OK(milter_chain_helo(c, "client.example.org", on_done));
        run_step(e);
        ASSERT_OK(milter_chain_mail(c, from, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_OK(milter_chain_rcpt(c, bad, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_REJECT);
        ASSERT_STREQ(outcome.reply, "550 5.7.1 bad rcpt");
        ASSERT_OK(milter_chain_rcpt(c, good, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_OK(milter_message_parse(text, sizeof text - 1, 4096, &m));
        ASSERT_OK(milter_chain_message(c, &m, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_STREQ(m.headers[2].name, "X-Fake");
        ASSERT_EQ(m.body_len, 4);
        ASSERT_TRUE(memcmp(m.body, "new\n", 4) == 0);
        ASSERT_STREQ(m.add_rcpt[0], "new@example.org");
        ASSERT_STREQ(m.quarantine, "held");
        milter_chain_abort(c);
        milter_message_done(&m);
        c = milter_chain_free(c);
        fake_stop(&f, sock);
        milter_settings_done(&settings);

        /* Garbage: the default action (tempfail) at once, and at every later step. */
        fake_start(e, &f, FAKE_GARBAGE, sock);
        settings_for(&settings, spec, MILTER_ACTION_TEMPFAIL);
        ASSERT_OK(milter_chain_new(e, &settings, macro, NULL, &c));
        ASSERT_OK(milter_chain_connect(c, "client.example.org", '4', "192.0.2.1", 25, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_TEMPFAIL);
        ASSERT_STREQ(outcome.reply, "451 4.7.1 Service unavailable - try again later");
        ASSERT_OK(milter_chain_helo(c, "client.example.org", on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_TEMPFAIL);
        c = milter_chain_free(c);
        fake_stop(&f, sock);
        milter_settings_done(&settings);

        /* Silent: the timeout, then the default action (accept: go on without it). */
        fake_start(e, &f, FAKE_SILENT, sock);
        settings_for(&settings, spec, MILTER_ACTION_ACCEPT);
        ASSERT_OK(milter_chain_new(e, &settings, macro, NULL, &c));
        uint64_t start = now_monotonic_usec();
        ASSERT_OK(milter_chain_connect(c, "client.example.org", '4', "192.0.2.1", 25, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_TRUE(now_monotonic_usec() - start >= 200 * 1000);
        ASSERT_TRUE(f.commands >= 2);   /* the negotiation, then the connect that was never answered */
        c = milter_chain_free(c);
        fake_stop(&f, sock);
        milter_settings_done(&settings);

        /* A milter that asks for no replies but at the end of the message: what it does not answer goes out
         * with the next command that it does, in one write; the steps it left out are not asked. */
        fake_start(e, &f, FAKE_NOREPLY, sock);
        settings_for(&settings, spec, MILTER_ACTION_TEMPFAIL);
        ASSERT_OK(milter_chain_new(e, &settings, macro, NULL, &c));
        ASSERT_TRUE(milter_chain_asks(c, MILTER_CMD_HELO));     /* not connected yet */
        ASSERT_OK(milter_chain_connect(c, "client.example.org", '4', "192.0.2.1", 25, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_TRUE(!milter_chain_asks(c, MILTER_CMD_HELO));
        ASSERT_TRUE(milter_chain_asks(c, MILTER_CMD_RCPT));
        ASSERT_TRUE(!milter_chain_asks(c, MILTER_CMD_DATA));
        ASSERT_OK(milter_chain_mail(c, from, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_OK(milter_chain_rcpt(c, good, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        unsigned reads = f.reads;
        ASSERT_STREQ(f.seen, "O");
        ASSERT_OK(milter_message_parse(text, sizeof text - 1, 4096, &m));
        ASSERT_OK(milter_chain_message(c, &m, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_CONTINUE);
        ASSERT_STREQ(f.seen, "OCMRLLNBE");
        ASSERT_EQ(f.reads, reads + 1);
        milter_chain_abort(c);
        milter_message_done(&m);
        c = milter_chain_free(c);
        fake_stop(&f, sock);
        milter_settings_done(&settings);

        /* Nobody listening: the default action. */
        settings_for(&settings, spec, MILTER_ACTION_TEMPFAIL);
        ASSERT_OK(milter_chain_new(e, &settings, macro, NULL, &c));
        ASSERT_OK(milter_chain_connect(c, "client.example.org", '4', "192.0.2.1", 25, on_done));
        run_step(e);
        ASSERT_EQ(outcome.verdict, MILTER_TEMPFAIL);
        c = milter_chain_free(c);
        milter_settings_done(&settings);

        sd_event_unref(e);
        (void) rmdir(path);
}

int main(void) {
        test_frame();
        test_replies();
        test_reply_text();
        test_encode();
        test_message();
        test_chain();
        return 0;
}
