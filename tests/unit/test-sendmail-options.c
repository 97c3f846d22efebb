/* test-sendmail-options.c: sendmail's command line, its stdin filter, mailq's table, and the maildrop file
 * reader against what the writer produces. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "../../src/sendmail/sendmail.h"
#include "tests.h"

#define PARSE(o, err, ...)                                                                              \
        ({                                                                                              \
                char *_argv[] = { __VA_ARGS__, NULL };                                                  \
                free(err);                                                                              \
                err = NULL;                                                                             \
                sendmail_parse_argv((int) ELEMENTSOF(_argv) - 1, _argv, &(o), &(err));                 \
        })

static void test_deliver_options(void) {
        SendmailOptions o;
        char *err = NULL;

        ASSERT_OK(PARSE(o, err, "sendmail", "-t", "-i"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_DELIVER);
        ASSERT_TRUE(o.extract_recipients && o.ignore_dots);
        ASSERT_EQ(o.n_recipients, 0);
        sendmail_options_done(&o);

        /* cron: -FCronDaemon -i -B8BITMIME -oem user; git send-email: -i -f sender rcpt... */
        ASSERT_OK(PARSE(o, err, "/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "alice"));
        ASSERT_STREQ(o.full_name, "CronDaemon");
        ASSERT_STREQ(o.body_type, "8BITMIME");
        ASSERT_TRUE(o.ignore_dots);
        ASSERT_EQ(o.n_recipients, 1);
        ASSERT_STREQ(o.recipients[0], "alice");
        ASSERT_TRUE(o.warnings && strstr(o.warnings[0], "-o em"));
        sendmail_options_done(&o);

        ASSERT_OK(PARSE(o, err, "sendmail", "-oi", "-f", "<bob@example.org>", "-N", "delay, FAILURE", "-R", "hdrs",
                        "-V", "abc123", "a@example.org, Carol <carol@example.org>", "dave"));
        ASSERT_STREQ(o.sender, "bob@example.org");
        ASSERT_STREQ(o.dsn_notify, "FAILURE,DELAY");  /* canonical order */
        ASSERT_STREQ(o.dsn_ret, "HDRS");
        ASSERT_STREQ(o.dsn_envid, "abc123");
        ASSERT_TRUE(o.verp_delims == NULL);
        ASSERT_EQ(o.n_recipients, 3);
        ASSERT_STREQ(o.recipients[0], "a@example.org");
        ASSERT_STREQ(o.recipients[1], "carol@example.org");
        ASSERT_STREQ(o.recipients[2], "dave");
        sendmail_options_done(&o);

        /* -XV: VERP, with the delimiters given or "" for the configured ones; -X file stays ignored. */
        ASSERT_OK(PARSE(o, err, "sendmail", "-XV", "-f", "list@example.org", "a@example.org"));
        ASSERT_STREQ(o.verp_delims, "");
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-XV-=", "a@example.org"));
        ASSERT_STREQ(o.verp_delims, "-=");
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-X", "/tmp/log", "a@example.org"));
        ASSERT_TRUE(o.verp_delims == NULL);
        ASSERT_TRUE(o.warnings && strstr(o.warnings[0], "-X /tmp/log"));
        sendmail_options_done(&o);

        /* -r is -f; "<>" is the null sender. */
        ASSERT_OK(PARSE(o, err, "sendmail", "-r<>", "-t"));
        ASSERT_STREQ(o.sender, "");
        sendmail_options_done(&o);

        /* Quoted commas do not split. */
        ASSERT_OK(PARSE(o, err, "sendmail", "\"Doe, John\" <john@example.org>,x@example.org"));
        ASSERT_EQ(o.n_recipients, 2);
        ASSERT_STREQ(o.recipients[0], "john@example.org");
        sendmail_options_done(&o);
        free(err);
}

static void test_modes(void) {
        SendmailOptions o;
        char *err = NULL;

        ASSERT_OK(PARSE(o, err, "mailq"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_LIST);
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "/usr/bin/newaliases"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_ALIASES);
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-bp"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_LIST);
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-bi"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_ALIASES);
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-I"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_ALIASES);
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-bs"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_SMTP);
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-q"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_FLUSH);
        ASSERT_TRUE(o.flush_site == NULL);
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-qRexample.org"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_FLUSH);
        ASSERT_STREQ(o.flush_site, "example.org");
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-qSexample.net"));
        ASSERT_STREQ(o.flush_site, "example.net");
        sendmail_options_done(&o);
        ASSERT_OK(PARSE(o, err, "sendmail", "-qR", "example.com"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_FLUSH);
        ASSERT_STREQ(o.flush_site, "example.com");
        ASSERT_TRUE(o.recipients[0] == NULL);
        sendmail_options_done(&o);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-qR"), EINVAL);
        ASSERT_TRUE(strstr(err, "-qRsitename"));
        ASSERT_ERR(PARSE(o, err, "sendmail", "-bd"), EINVAL);
        ASSERT_TRUE(strstr(err, "systemctl"));
        ASSERT_OK(PARSE(o, err, "sendmail", "-q30m"));
        ASSERT_EQ(o.mode, SENDMAIL_MODE_NOTHING);
        sendmail_options_done(&o);
        free(err);
}

static void test_bad_usage(void) {
        SendmailOptions o;
        char *err = NULL;

        ASSERT_ERR(PARSE(o, err, "sendmail"), EINVAL);
        ASSERT_TRUE(strstr(err, "Recipient addresses"));
        ASSERT_ERR(PARSE(o, err, "sendmail", "-Z", "alice"), EINVAL);
        ASSERT_TRUE(strstr(err, "Unknown option -Z"));
        ASSERT_ERR(PARSE(o, err, "sendmail", "-t", "-f"), EINVAL);
        ASSERT_TRUE(strstr(err, "-f needs a value"));
        ASSERT_ERR(PARSE(o, err, "sendmail", "-N", "sometimes", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-N", "never,delay", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-R", "most", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-V", "a+b", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-B", "binary", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-f", "a b@c", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "alice@", "bob"), EINVAL);
        ASSERT_TRUE(strstr(err, "Invalid recipient"));
        ASSERT_ERR(PARSE(o, err, "sendmail", "<bob"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-bv", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-bp", "alice"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-bs", "-t"), EINVAL);
        ASSERT_ERR(PARSE(o, err, "sendmail", "-bp", "-bs"), EINVAL);
        ASSERT_TRUE(strstr(err, "conflicts"));
        ASSERT_ERR(PARSE(o, err, "sendmail", "-F", "a\nb", "alice"), EINVAL);
        free(err);
}

static char *filter(const char *in, bool ignore_dots, size_t piece) {
        SendmailInput st;
        size_t len = strlen(in), n = 0;
        char *out = malloc(len + 3);

        ASSERT_TRUE(out);
        sendmail_input_init(&st, ignore_dots);
        for (size_t off = 0; off < len; off += piece)
                n += sendmail_input_feed(&st, in + off, MIN(piece, len - off), out + n);
        n += sendmail_input_finish(&st, out + n);
        out[n] = '\0';
        return out;
}

static void test_input_filter(void) {
        static const struct {
                const char *in;
                bool ignore_dots;
                const char *out;
        } cases[] = {
                { "Subject: x\r\n\r\nbody\r\n", false, "Subject: x\n\nbody\n" },
                { "a\n.\nafter\n", false, "a\n" },
                { "a\r\n.\r\nafter\n", false, "a\n" },
                { "a\n.\nafter\n", true, "a\n.\nafter\n" },
                { "a\n..b\n.c\n", false, "a\n..b\n.c\n" },
                { ".", false, "." },
                { "x\r", false, "x\r" },
                { "bare\rcr\n", false, "bare\rcr\n" },
                { "end\n.", false, "end\n." },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                for (size_t piece = 1; piece <= 4; piece++) {
                        char *out = filter(cases[i].in, cases[i].ignore_dots, piece);
                        ASSERT_STREQ(out, cases[i].out);
                        free(out);
                }
}

static int collect(const char *data, size_t len, void *userdata) {
        FILE *f = userdata;
        return fwrite(data, 1, len, f) == len ? 0 : -EIO;
}

/* What the writer produces, the reader accepts whole; a file cut anywhere, it refuses. */
static void test_maildrop_round_trip(void) {
        char *rcpts[] = { strdup("bob@example.org"), strdup("carol"), NULL };
        MaildropEnvelope e = {
                .time_usec = 1700000000123456ULL,
                .sender = (char *) "alice",
                .recipients = rcpts,
                .n_recipients = 2,
                .extract_recipients = true,
                .full_name = (char *) "Alice Liddell",
                .dsn_notify = (char *) "SUCCESS,DELAY",
                .body_type = (char *) "8BITMIME",
                .verp_delims = (char *) "+=",
        };
        MaildropEnvelope *got = NULL;
        int fd = memfd_create("test", MFD_CLOEXEC);
        QueueWriter *w = malloc(sizeof(QueueWriter));
        struct stat st;

        ASSERT_TRUE(fd >= 0 && w);
        queue_writer_init(w, fd);
        ASSERT_OK(maildrop_write_envelope(w, &e));
        ASSERT_OK(queue_writer_content(w, "Subject: hi\n\nhello\n", 19));
        ASSERT_OK(maildrop_write_end(w));
        ASSERT_OK(fstat(fd, &st));
        char *buf = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        ASSERT_TRUE(buf != MAP_FAILED);

        ASSERT_OK(maildrop_parse(buf, (size_t) st.st_size, 1000, &got));
        ASSERT_STREQ(got->sender, "alice");
        ASSERT_EQ(got->n_recipients, 2);
        ASSERT_STREQ(got->recipients[1], "carol");
        ASSERT_TRUE(got->extract_recipients);
        ASSERT_STREQ(got->full_name, "Alice Liddell");
        ASSERT_STREQ(got->dsn_notify, "SUCCESS,DELAY");
        ASSERT_STREQ(got->body_type, "8BITMIME");
        ASSERT_STREQ(got->verp_delims, "+=");
        ASSERT_EQ(got->content_size, 19);
        char *content = NULL;
        size_t content_len = 0;
        FILE *f = open_memstream(&content, &content_len);
        ASSERT_OK(maildrop_content_foreach(buf, (size_t) st.st_size, got, collect, f));
        ASSERT_OK(fclose(f));
        ASSERT_STREQ(content, "Subject: hi\n\nhello\n");
        free(content);
        maildrop_envelope_free(got);

        ASSERT_ERR(maildrop_parse(buf, (size_t) st.st_size, 18, &got), EFBIG);
        for (size_t cut = 0; cut < (size_t) st.st_size; cut++)
                ASSERT_ERR(maildrop_parse(buf, cut, 1000, &got), EBADMSG);

        /* A queue file is not a maildrop file. */
        char *copy = malloc((size_t) st.st_size);
        memcpy(copy, buf, (size_t) st.st_size);
        memcpy(copy + QUEUE_RECORD_HEADER, "postbus-queue-1xxx", STRLEN(MAILDROP_MAGIC));
        ASSERT_ERR(maildrop_parse(copy, (size_t) st.st_size, 1000, &got), EBADMSG);
        free(copy);

        munmap(buf, (size_t) st.st_size);
        close(fd);
        free(w);
        free(rcpts[0]);
        free(rcpts[1]);
}

static void test_maildrop_names(void) {
        char name[MAILDROP_NAME_SIZE], other[MAILDROP_NAME_SIZE];

        ASSERT_OK(maildrop_name_new(name));
        ASSERT_OK(maildrop_name_new(other));
        ASSERT_TRUE(maildrop_name_valid(name));
        ASSERT_TRUE(!streq(name, other));
        ASSERT_TRUE(!maildrop_name_valid("6925A7F30B81C3A4D2E1"));
        ASSERT_TRUE(!maildrop_name_valid("../../etc/passwd"));
        name[20] = 'g';
        ASSERT_TRUE(!maildrop_name_valid(name));
}

int main(void) {
        test_deliver_options();
        test_modes();
        test_bad_usage();
        test_input_filter();
        test_maildrop_round_trip();
        test_maildrop_names();
        return 0;
}
