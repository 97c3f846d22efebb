/* test-smtpd-sasl.c: the Dovecot auth protocol lines smtpd reads, base64 and mechanism checks, and the
 * client driven through a whole exchange against a scripted server in a child process. */
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "tests.h"
#include "sasl-util.h"
#include "../../src/smtpd/smtpd-sasl.h"

static int parse(const char *line, SmtpdSaslReply *r) {
        return smtpd_sasl_reply_parse(line, strlen(line), r);
}

TEST(handshake_lines) {
        SmtpdSaslReply r;

        ASSERT_OK(parse("VERSION\t1\t2", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_VERSION);
        ASSERT_EQ(r.version_major, 1);
        ASSERT_OK(parse("MECH\tPLAIN\tplaintext", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_MECH);
        ASSERT_OK(parse("MECH\tLOGIN\tplaintext", &r));
        ASSERT_OK(parse("SPID\t1234", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_SPID);
        ASSERT_OK(parse("CUID\t7", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_CUID);
        ASSERT_OK(parse("COOKIE\t0123456789abcdef", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_COOKIE);
        ASSERT_OK(parse("DONE", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_DONE);

        ASSERT_ERR(parse("VERSION", &r), EBADMSG);
        ASSERT_ERR(parse("VERSION\tx\t2", &r), EBADMSG);
        ASSERT_ERR(parse("VERSION\t99999999999\t2", &r), EBADMSG);
        ASSERT_ERR(parse("MECH", &r), EBADMSG);
        ASSERT_ERR(parse("MECH\t", &r), EBADMSG);
        ASSERT_ERR(parse("SPID", &r), EBADMSG);
        ASSERT_ERR(parse("NOTIFY\t1", &r), EOPNOTSUPP);
        ASSERT_ERR(parse("", &r), EOPNOTSUPP);
        ASSERT_ERR(parse("done", &r), EOPNOTSUPP);
        ASSERT_ERR(smtpd_sasl_reply_parse("DONE\0x", 6, &r), EBADMSG);
}

TEST(answers) {
        SmtpdSaslReply r;

        ASSERT_OK(parse("OK\t1\tuser=alice", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_OK);
        ASSERT_EQ(r.id, 1);
        ASSERT_STREQ(r.user, "alice");
        ASSERT_OK(parse("OK\t42\tuser=bob@example.org\toriginal_user=Bob", &r));
        ASSERT_EQ(r.id, 42);
        ASSERT_STREQ(r.user, "bob@example.org");
        ASSERT_OK(parse("OK\t1", &r));
        ASSERT_STREQ(r.user, "");
        /* Tab-escaping: \001 1 is \001 itself, which is no printable character. */
        ASSERT_ERR(parse("OK\t1\tuser=a\001tb", &r), EBADMSG);
        ASSERT_ERR(parse("OK\t1\tuser=a\001nb", &r), EBADMSG);
        ASSERT_ERR(parse("OK\t1\tuser=a\001", &r), EBADMSG);
        ASSERT_ERR(parse("OK\t1\tuser=a\001x", &r), EBADMSG);
        ASSERT_ERR(parse("OK\t1\tuser=a b", &r), EBADMSG);
        ASSERT_ERR(parse("OK\t1\tuser=a\rb", &r), EBADMSG);
        ASSERT_ERR(parse("OK\tx", &r), EBADMSG);
        ASSERT_ERR(parse("OK", &r), EBADMSG);

        char longuser[SMTPD_SASL_USER_MAX + 32];
        strcpy(longuser, "OK\t1\tuser=");
        memset(longuser + strlen(longuser), 'a', SMTPD_SASL_USER_MAX);
        longuser[10 + SMTPD_SASL_USER_MAX] = '\0';
        ASSERT_OK(parse(longuser, &r));
        ASSERT_EQ(strlen(r.user), SMTPD_SASL_USER_MAX);
        strcat(longuser, "a");
        ASSERT_ERR(parse(longuser, &r), EBADMSG);

        ASSERT_OK(parse("CONT\t1\tVXNlcm5hbWU6", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_CONT);
        ASSERT_EQ(r.challenge_len, strlen("VXNlcm5hbWU6"));
        ASSERT_TRUE(memcmp(r.challenge, "VXNlcm5hbWU6", r.challenge_len) == 0);
        ASSERT_OK(parse("CONT\t1\t", &r));
        ASSERT_EQ(r.challenge_len, 0);
        ASSERT_OK(parse("CONT\t1", &r));
        ASSERT_EQ(r.challenge_len, 0);
        ASSERT_ERR(parse("CONT\t1\tnot base64!", &r), EBADMSG);
        ASSERT_ERR(parse("CONT\t1\tVXNl\tcm5h", &r), EBADMSG);

        ASSERT_OK(parse("FAIL\t1\tuser=alice", &r));
        ASSERT_EQ(r.type, SMTPD_SASL_REPLY_FAIL);
        ASSERT_TRUE(!r.temp);
        ASSERT_STREQ(r.user, "alice");
        ASSERT_OK(parse("FAIL\t3\treason=Internal error\ttemp", &r));
        ASSERT_EQ(r.id, 3);
        ASSERT_TRUE(r.temp);
        ASSERT_OK(parse("FAIL\t3\tcode=temp_fail", &r));
        ASSERT_TRUE(!r.temp);
}

TEST(base64) {
        ASSERT_TRUE(sasl_base64_valid("", 0));
        ASSERT_TRUE(sasl_base64_valid("AGFsaWNlAHNlY3JldA==", 20));
        ASSERT_TRUE(sasl_base64_valid("YWJj", 4));
        ASSERT_TRUE(sasl_base64_valid("YWI=", 4));
        ASSERT_TRUE(sasl_base64_valid("a+/9", 4));
        ASSERT_TRUE(!sasl_base64_valid("=", 1));
        ASSERT_TRUE(!sasl_base64_valid("YWJ", 3));
        ASSERT_TRUE(!sasl_base64_valid("====", 4));
        ASSERT_TRUE(!sasl_base64_valid("Y===", 4));
        ASSERT_TRUE(!sasl_base64_valid("YW=j", 4));
        ASSERT_TRUE(!sasl_base64_valid("YW\tj", 4));
        ASSERT_TRUE(!sasl_base64_valid("YW j", 4));
        ASSERT_TRUE(!sasl_base64_valid("YWJj\n", 5));
        ASSERT_TRUE(!sasl_base64_valid("YW\0j", 4));
}

TEST(mechanisms) {
        ASSERT_STREQ(sasl_mechanism("PLAIN", 5), "PLAIN");
        ASSERT_STREQ(sasl_mechanism("plain", 5), "PLAIN");
        ASSERT_STREQ(sasl_mechanism("Login", 5), "LOGIN");
        ASSERT_TRUE(!sasl_mechanism("PLAI", 4));
        ASSERT_TRUE(!sasl_mechanism("CRAM-MD5", 8));
        ASSERT_TRUE(!sasl_mechanism("", 0));
        ASSERT_TRUE(!sasl_mechanism("PLAINX", 6));
}

/* The client against a scripted Dovecot: the child reads what the client sends, checks it, and answers
 * as told; the parent runs the client in an event loop and records the callbacks. */

typedef struct Outcome {
        SmtpdSaslResult results[4];
        char texts[4][64];
        unsigned n;
        const char *respond;            /* the answer to a CONTINUE */
        SmtpdSasl *client;
        sd_event *event;
} Outcome;

static void on_result(SmtpdSasl *a, SmtpdSaslResult result, const char *text, void *userdata) {
        Outcome *o = userdata;

        ASSERT_TRUE(o->n < 4);
        o->results[o->n] = result;
        snprintf(o->texts[o->n], sizeof o->texts[o->n], "%s", text);
        o->n++;
        if (result == SMTPD_SASL_CONTINUE) {
                ASSERT_OK(smtpd_sasl_respond(a, o->respond, strlen(o->respond)));
                return;
        }
        o->client = smtpd_sasl_free(a);
        (void) sd_event_exit(o->event, 0);
}

/* Reads one line (up to LF) from fd into buf, blocking. */
static void read_line(int fd, char *buf, size_t size) {
        size_t n = 0;

        while (n + 1 < size) {
                ssize_t k = read(fd, buf + n, 1);
                ASSERT_TRUE(k == 1);
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = '\0';
}

static void write_all(int fd, const char *s) {
        ASSERT_EQ(write(fd, s, strlen(s)), (ssize_t) strlen(s));
}

/* The scripted server: "<" lines are what the client must send (prefix match), ">" lines are sent, "!"
 * closes the connection at once. */
static void serve(int listen_fd, const char *const *script) {
        int fd = accept(listen_fd, NULL, NULL);
        char line[4096];

        if (fd < 0)
                _exit(2);
        for (const char *const *s = script; *s; s++) {
                if ((*s)[0] == '!')
                        _exit(0);
                if ((*s)[0] == '>')
                        write_all(fd, *s + 1);
                else {
                        read_line(fd, line, sizeof line);
                        if (strncmp(line, *s + 1, strlen(*s + 1)) != 0) {
                                fprintf(stderr, "server expected \"%s\", got \"%s\"\n", *s + 1, line);
                                _exit(1);
                        }
                }
        }
        /* Wait for the client to close. */
        (void) read(fd, line, sizeof line);
        _exit(0);
}

static void run_exchange(const char *const *script, const SmtpdSaslRequest *req, const char *respond,
                         Outcome *o) {
        char dir[] = "/tmp/test-smtpd-sasl-XXXXXX", path[128];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, status;
        pid_t pid;

        ASSERT_TRUE(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/auth", dir);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(listen(fd, 4));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0)
                serve(fd, script);
        close(fd);

        *o = (Outcome) { .respond = respond };
        ASSERT_OK(sd_event_new(&o->event));
        ASSERT_OK(smtpd_sasl_new(o->event, path, 10 * 1000000ULL, req, on_result, o, &o->client));
        ASSERT_OK(sd_event_loop(o->event));
        o->event = sd_event_unref(o->event);
        ASSERT_TRUE(!o->client);

        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        unlink(path);
        rmdir(dir);
}

static const char *const handshake[] = {
        "<VERSION\t1\t",
        "<CPID\t",
        ">VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t99\nCUID\t1\n"
        "COOKIE\t00112233445566778899aabbccddeeff\nDONE\n",
        NULL,
};

TEST(client_plain_ok) {
        const char *script[] = {
                handshake[0], handshake[1], handshake[2],
                "<AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip=192.0.2.1\tsecured\tresp=AGFsaWNlAHNlY3JldA==",
                ">OK\t1\tuser=alice\n",
                NULL,
        };
        SmtpdSaslRequest req = { .mechanism = "PLAIN", .initial_response = "AGFsaWNlAHNlY3JldA==",
                                 .client_address = "192.0.2.1", .secured = true };
        Outcome o;

        run_exchange(script, &req, NULL, &o);
        ASSERT_EQ(o.n, 1);
        ASSERT_EQ(o.results[0], SMTPD_SASL_OK);
        ASSERT_STREQ(o.texts[0], "alice");
}

TEST(client_login_fail) {
        const char *script[] = {
                handshake[0], handshake[1], handshake[2],
                "<AUTH\t1\tLOGIN\tservice=smtp\tnologin\trip=192.0.2.1\tsecured",
                ">CONT\t1\tVXNlcm5hbWU6\n",
                "<CONT\t1\tYWxpY2U=",
                ">FAIL\t1\tuser=alice\n",
                NULL,
        };
        SmtpdSaslRequest req = { .mechanism = "LOGIN", .client_address = "192.0.2.1", .secured = true };
        Outcome o;

        run_exchange(script, &req, "YWxpY2U=", &o);
        ASSERT_EQ(o.n, 2);
        ASSERT_EQ(o.results[0], SMTPD_SASL_CONTINUE);
        ASSERT_STREQ(o.texts[0], "VXNlcm5hbWU6");
        ASSERT_EQ(o.results[1], SMTPD_SASL_FAIL);
}

TEST(client_server_breaks) {
        /* A reply to another request id, a version we do not speak, a closed connection, junk. */
        const char *wrong_id[] = {
                handshake[0], handshake[1], handshake[2], "<AUTH\t1\tPLAIN", ">OK\t2\tuser=mallory\n", NULL,
        };
        const char *bad_version[] = { handshake[0], handshake[1], ">VERSION\t2\t0\nDONE\n", NULL };
        const char *closed[] = { handshake[0], handshake[1], handshake[2], "<AUTH\t1\tPLAIN", "!", NULL };
        const char *junk[] = {
                handshake[0], handshake[1], handshake[2], "<AUTH\t1\tPLAIN", ">OK\t1\tuser=a\001nb\n", NULL,
        };
        const char *no_user[] = { handshake[0], handshake[1], handshake[2], "<AUTH\t1\tPLAIN", ">OK\t1\n", NULL };
        const char *temp[] = {
                handshake[0], handshake[1], handshake[2], "<AUTH\t1\tPLAIN", ">FAIL\t1\ttemp\n", NULL,
        };
        const char *const *scripts[] = { wrong_id, bad_version, closed, junk, no_user, temp };
        SmtpdSaslRequest req = { .mechanism = "PLAIN", .initial_response = "", .client_address = "::1" };

        for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
                Outcome o;

                run_exchange(scripts[i], &req, NULL, &o);
                ASSERT_EQ(o.n, 1);
                ASSERT_EQ(o.results[0], SMTPD_SASL_TEMPFAIL);
        }
}

TEST(client_bad_arguments) {
        SmtpdSaslRequest req = { .mechanism = "PLAIN", .initial_response = "not base64", .client_address = "::1" };
        SmtpdSasl *a = NULL;
        sd_event *e = NULL;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_ERR(smtpd_sasl_new(e, "/nonexistent/auth", 1000000, &req, on_result, NULL, &a), EINVAL);
        req.initial_response = NULL;
        ASSERT_ERR(smtpd_sasl_new(e, "relative/auth", 1000000, &req, on_result, NULL, &a), EINVAL);
        ASSERT_TRUE(smtpd_sasl_new(e, "/nonexistent/auth", 1000000, &req, on_result, NULL, &a) < 0);
        req.client_address = "1.2.3.4\tsecured";
        ASSERT_ERR(smtpd_sasl_new(e, "/nonexistent/auth", 1000000, &req, on_result, NULL, &a), EINVAL);
        ASSERT_TRUE(!a);
        sd_event_unref(e);
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        RUN(handshake_lines);
        RUN(answers);
        RUN(base64);
        RUN(mechanisms);
        RUN(client_plain_ok);
        RUN(client_login_fail);
        RUN(client_server_breaks);
        RUN(client_bad_arguments);
        return 0;
}
