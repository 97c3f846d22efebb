/* test-smtpd-policy.c: Postfix's policy protocol as smtpd speaks it: the request lines, the strict reply
 * reader and the endpoints; and the client (smtpd-policy.c) against a scripted server in a child process:
 * one connection reused for two requests, and the failure reported after the attempts of a dead one. */
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include "config.h"
#include "log.h"
#include "resolver.h"
#include "tests.h"
#include "../../src/smtpd/smtpd-policy.h"
#include "../../src/smtpd/smtpd-restrictions.h"

static int reply(const char *s, char *action, size_t *consumed) {
        return smtpd_policy_reply_parse(s, strlen(s), action, consumed);
}

TEST(replies) {
        char action[SMTPD_POLICY_ACTION_MAX];
        size_t consumed = 0;

        ASSERT_EQ(reply("action=DUNNO\n\n", action, &consumed), 1);
        ASSERT_STREQ(action, "DUNNO");
        ASSERT_EQ(consumed, 14);
        ASSERT_EQ(reply("action=450 4.7.1 Greylisted, see http://x/\n\nextra", action, &consumed), 1);
        ASSERT_STREQ(action, "450 4.7.1 Greylisted, see http://x/");
        ASSERT_EQ(consumed, strlen("action=450 4.7.1 Greylisted, see http://x/\n\n"));
        ASSERT_EQ(reply("action=OK\r\n\r\n", action, &consumed), 1);
        ASSERT_STREQ(action, "OK");
        ASSERT_EQ(reply("action=PREPEND X-Test:\tyes\n\n", action, &consumed), 1);
        ASSERT_STREQ(action, "PREPEND X-Test:\tyes");

        /* Not complete yet. */
        ASSERT_EQ(reply("", action, &consumed), 0);
        ASSERT_EQ(reply("action=DUN", action, &consumed), 0);
        ASSERT_EQ(reply("action=DUNNO\n", action, &consumed), 0);

        /* Malformed: no action, another attribute, twice, empty, junk, control characters. */
        ASSERT_ERR(reply("\n", action, &consumed), EBADMSG);
        ASSERT_ERR(reply("foo=bar\naction=OK\n\n", action, &consumed), EBADMSG);
        ASSERT_ERR(reply("action=OK\naction=OK\n\n", action, &consumed), EBADMSG);
        ASSERT_ERR(reply("action=\n\n", action, &consumed), EBADMSG);
        ASSERT_ERR(reply("actions=OK\n\n", action, &consumed), EBADMSG);
        ASSERT_ERR(reply("action OK\n\n", action, &consumed), EBADMSG);
        ASSERT_ERR(reply("action=O\001K\n\n", action, &consumed), EBADMSG);
        ASSERT_ERR(reply("action=O\377K\n\n", action, &consumed), EBADMSG);
        ASSERT_ERR(smtpd_policy_reply_parse("action=O\0K\n\n", 12, action, &consumed), EBADMSG);

        /* Too long: an action beyond its room, a reply that never ends. */
        char big[SMTPD_POLICY_REPLY_MAX + 16];
        memset(big, 'x', sizeof big);
        memcpy(big, "action=", 7);
        big[SMTPD_POLICY_ACTION_MAX + 8] = '\n';
        big[SMTPD_POLICY_ACTION_MAX + 9] = '\n';
        ASSERT_ERR(smtpd_policy_reply_parse(big, SMTPD_POLICY_ACTION_MAX + 10, action, &consumed), EBADMSG);
        memset(big, 'x', sizeof big);
        ASSERT_ERR(smtpd_policy_reply_parse(big, sizeof big, action, &consumed), E2BIG);
        memcpy(big, "action=OK\n", 10);
        ASSERT_ERR(smtpd_policy_reply_parse(big, sizeof big, action, &consumed), E2BIG);
}

TEST(requests) {
        char buf[256];
        const SmtpdPolicyAttr attrs[] = {
                { "request", "smtpd_access_policy" },
                { "helo_name", "evil\nrecipient=x" },
                { "sender", NULL },
        };
        const SmtpdPolicyAttr bad[] = { { "Bad-Name", "x" } };
        int n;

        n = smtpd_policy_request_format(attrs, 3, buf, sizeof buf);
        ASSERT_TRUE(n > 0);
        buf[n] = '\0';
        ASSERT_STREQ(buf, "request=smtpd_access_policy\nhelo_name=evil?recipient=x\nsender=\n\n");
        ASSERT_ERR(smtpd_policy_request_format(bad, 1, buf, sizeof buf), EINVAL);
        ASSERT_ERR(smtpd_policy_request_format(attrs, 3, buf, 20), E2BIG);
        n = smtpd_policy_request_format(NULL, 0, buf, sizeof buf);
        ASSERT_EQ(n, 1);
}

TEST(endpoints) {
        SmtpdPolicyEndpoint e;

        ASSERT_OK(smtpd_policy_endpoint_parse("inet:127.0.0.1:10023", &e));
        ASSERT_EQ(e.family, AF_INET);
        ASSERT_EQ(ntohs(((struct sockaddr_in *) &e.addr)->sin_port), 10023);
        ASSERT_STREQ(e.text, "inet:127.0.0.1:10023");
        ASSERT_OK(smtpd_policy_endpoint_parse("inet:[::1]:12345", &e));
        ASSERT_EQ(e.family, AF_INET6);
        ASSERT_OK(smtpd_policy_endpoint_parse("127.0.0.1:9998", &e));
        ASSERT_EQ(e.family, AF_INET);
        ASSERT_OK(smtpd_policy_endpoint_parse("unix:/run/policyd-spf.sock", &e));
        ASSERT_EQ(e.family, AF_UNIX);
        ASSERT_STREQ(((struct sockaddr_un *) &e.addr)->sun_path, "/run/policyd-spf.sock");
        ASSERT_OK(smtpd_policy_endpoint_parse("/run/x", &e));
        ASSERT_EQ(e.family, AF_UNIX);

        ASSERT_ERR(smtpd_policy_endpoint_parse("inet:policy.example:10023", &e), EADDRNOTAVAIL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("inet:127.0.0.1", &e), EINVAL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("inet:127.0.0.1:0", &e), EINVAL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("inet:127.0.0.1:65536", &e), EINVAL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("inet:127.0.0.1:1x", &e), EINVAL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("inet:::1:25", &e), EINVAL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("inet:[::1:25", &e), EINVAL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("unix:relative", &e), EINVAL);
        ASSERT_ERR(smtpd_policy_endpoint_parse("", &e), EINVAL);
        ASSERT_OK(smtpd_policy_endpoint_resolve("inet:localhost:10023", &e));
        ASSERT_TRUE(e.family == AF_INET || e.family == AF_INET6);
}

/* The scripted server: accepts connections on fd, reads requests (up to the empty line) and answers each
 * with the next of answers; exits with the number of connections it accepted. */
static _Noreturn void serve(int fd, const char *const *answers, size_t n) {
        size_t next = 0;
        int conns = 0;

        while (next < n) {
                int c = accept(fd, NULL, NULL);
                char buf[8192];
                size_t len = 0;

                if (c < 0)
                        _exit(100);
                conns++;
                for (;;) {
                        ssize_t k = read(c, buf + len, sizeof buf - len);
                        if (k <= 0)
                                break;
                        len += (size_t) k;
                        char *end = memmem(buf, len, "\n\n", 2);
                        if (!end)
                                continue;
                        if (!memmem(buf, len, "request=smtpd_access_policy\n", 28))
                                _exit(101);
                        len = 0;
                        if (write(c, answers[next], strlen(answers[next])) < 0)
                                _exit(102);
                        if (++next == n)
                                break;
                }
                close(c);
        }
        _exit(conns);
}

typedef struct Result {
        int calls, error;
        char action[SMTPD_POLICY_ACTION_MAX];
} Result;

static void on_answer(int error, const char *action, void *userdata) {
        Result *r = userdata;

        r->calls++;
        r->error = error;
        snprintf(r->action, sizeof r->action, "%s", action ? action : "");
}

static void run_until(sd_event *e, const Result *r, int calls) {
        for (int i = 0; i < 200 && r->calls < calls; i++)
                ASSERT_OK(sd_event_run(e, 100000));
        ASSERT_EQ(r->calls, calls);
}

TEST(client) {
        const char *const answers[] = { "action=DUNNO\n\n", "action=REJECT go away\n\n" };
        const SmtpdPolicySettings settings = {
                .timeout_usec = 5000000,
                .max_idle_usec = 5000000,
                .max_ttl_usec = 60000000,
                .retry_delay_usec = 10000,
                .try_limit = 2,
        };
        char path[] = "/tmp/test-smtpd-policy-XXXXXX", sock[64];
        SmtpdPolicyEndpoint ep;
        SmtpdPolicyPool *pool;
        SmtpdPolicyRequest *req;
        sd_event *e;
        Result res = {};
        int fd, status;
        pid_t pid;

        ASSERT_TRUE(mkdtemp(path) != NULL);
        snprintf(sock, sizeof sock, "unix:%s/s", path);
        ASSERT_OK(smtpd_policy_endpoint_parse(sock, &ep));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(fd);
        ASSERT_OK(bind(fd, (struct sockaddr *) &ep.addr, ep.addr_len));
        ASSERT_OK(listen(fd, 8));
        pid = fork();
        ASSERT_OK(pid);
        if (pid == 0)
                serve(fd, answers, 2);

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(smtpd_policy_pool_new(e, &settings, &pool));
        ASSERT_OK(smtpd_policy_query(pool, &ep, "request=smtpd_access_policy\n\n", 29, on_answer, &res, &req));
        ASSERT_EQ(res.calls, 0);        /* never from within the call */
        run_until(e, &res, 1);
        ASSERT_EQ(res.error, 0);
        ASSERT_STREQ(res.action, "DUNNO");
        ASSERT_OK(smtpd_policy_query(pool, &ep, "request=smtpd_access_policy\n\n", 29, on_answer, &res, &req));
        run_until(e, &res, 2);
        ASSERT_STREQ(res.action, "REJECT go away");
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 1);      /* one connection for both */

        /* Nobody listens any more: both attempts fail, and the failure is reported once. */
        close(fd);
        ASSERT_OK(smtpd_policy_query(pool, &ep, "request=smtpd_access_policy\n\n", 29, on_answer, &res, &req));
        run_until(e, &res, 3);
        ASSERT_TRUE(res.error < 0);
        ASSERT_STREQ(res.action, "");

        /* A cancelled request never calls back. */
        ASSERT_OK(smtpd_policy_query(pool, &ep, "request=smtpd_access_policy\n\n", 29, on_answer, &res, &req));
        ASSERT_TRUE(smtpd_policy_request_cancel(req) == NULL);
        for (int i = 0; i < 5; i++)
                ASSERT_OK(sd_event_run(e, 20000));
        ASSERT_EQ(res.calls, 3);

        smtpd_policy_pool_free(pool);
        sd_event_unref(e);
        snprintf(sock, sizeof sock, "%s/s", path);
        unlink(sock);
        rmdir(path);
}

static unsigned dones;

static void on_checks_done(void *userdata) {
        dones++;
}

/* check_policy_service in a restriction list: the evaluation waits (-EAGAIN) for the answer, and asked again
 * once done() has run, decides by it; the next evaluation asks again. */
TEST(restriction) {
        const char *const answers[] = { "action=REJECT no thanks\n\n", "action=DUNNO\n\n" };
        const SmtpdPolicySettings settings = {
                .timeout_usec = 5000000, .max_idle_usec = 5000000, .max_ttl_usec = 60000000, .try_limit = 1,
        };
        char dir[] = "/tmp/test-smtpd-policy-XXXXXX", text[512], reply[SMTPD_REPLY_LINE_MAX], sock[64];
        SmtpdAddress client = { .family = AF_INET, .bytes = { 127, 0, 0, 1 }, .text = "127.0.0.1" };
        SmtpdCheckInput in = { .client = &client, .helo = "client.test", .sender = "a@example.org",
                               .recipient = "bob@example.test", .server_fd = -1 };
        SmtpdPolicyEndpoint ep;
        SmtpdNetworks mynetworks;
        SmtpdCheckSession *cs;
        SmtpdPolicyPool *pool;
        SmtpdChecks *checks;
        Resolver *resolver;
        Config *config;
        sd_event *e;
        int fd, status;
        pid_t pid;

        ASSERT_TRUE(mkdtemp(dir) != NULL);
        snprintf(sock, sizeof sock, "unix:%s/p", dir);
        snprintf(text, sizeof text,
                 "mydestination = example.test\nsmtpd_reject_unlisted_recipient = no\n"
                 "smtpd_recipient_restrictions = check_policy_service %s\n", sock);
        ASSERT_OK(smtpd_policy_endpoint_parse(sock, &ep));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(fd);
        ASSERT_OK(bind(fd, (struct sockaddr *) &ep.addr, ep.addr_len));
        ASSERT_OK(listen(fd, 8));
        pid = fork();
        ASSERT_OK(pid);
        if (pid == 0)
                serve(fd, answers, 2);
        close(fd);

        ASSERT_OK(config_parse(text, "main.cf", &config));
        ASSERT_OK(smtpd_networks_parse(config->mynetworks, "main.cf", &mynetworks));
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(resolver_new(e, &resolver));
        ASSERT_OK(smtpd_policy_pool_new(e, &settings, &pool));
        ASSERT_OK(smtpd_checks_new(config, &mynetworks, NULL, resolver, &checks));
        smtpd_checks_set_policy_pool(checks, pool);
        ASSERT_OK(smtpd_check_session_new(checks, &client, on_checks_done, NULL, &cs));

        ASSERT_ERR(smtpd_check_rcpt(cs, &in, reply), EAGAIN);
        ASSERT_TRUE(smtpd_check_session_pending(cs));
        for (int i = 0; i < 100 && dones == 0; i++)
                ASSERT_OK(sd_event_run(e, 100000));
        ASSERT_EQ(dones, 1);
        ASSERT_TRUE(!smtpd_check_session_pending(cs));
        ASSERT_EQ(smtpd_check_rcpt(cs, &in, reply), 1);
        ASSERT_STREQ(reply, "554 5.7.1 <bob@example.test>: Recipient address rejected: no thanks");

        /* A new evaluation asks again, on the same connection. */
        ASSERT_ERR(smtpd_check_rcpt(cs, &in, reply), EAGAIN);
        for (int i = 0; i < 100 && dones == 1; i++)
                ASSERT_OK(sd_event_run(e, 100000));
        ASSERT_EQ(smtpd_check_rcpt(cs, &in, reply), 0);
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 1);

        /* Without the process's connections, the default action, at once. */
        smtpd_checks_set_policy_pool(checks, NULL);
        ASSERT_EQ(smtpd_check_rcpt(cs, &in, reply), 1);
        ASSERT_STREQ(reply, "451 4.3.5 <bob@example.test>: Recipient address rejected: Server configuration problem");

        smtpd_check_session_free(cs);
        smtpd_checks_free(checks);
        smtpd_policy_pool_free(pool);
        resolver_free(resolver);
        sd_event_unref(e);
        smtpd_networks_done(&mynetworks);
        config_free(config);

        /* A restriction without its endpoint, or with a malformed one, is a configuration error. */
        ASSERT_OK(config_parse("smtpd_recipient_restrictions = reject_unauth_destination check_policy_service\n",
                               "main.cf", &config));
        ASSERT_ERR(smtpd_checks_new(config, &mynetworks, NULL, NULL, &checks), EINVAL);
        config_free(config);
        ASSERT_OK(config_parse("smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1\n", "main.cf",
                               &config));
        ASSERT_ERR(smtpd_checks_new(config, &mynetworks, NULL, NULL, &checks), EINVAL);
        config_free(config);

        snprintf(sock, sizeof sock, "%s/p", dir);
        unlink(sock);
        rmdir(dir);
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        log_set_max_level(LOG_WARNING);
        RUN(replies);
        RUN(requests);
        RUN(endpoints);
        RUN(client);
        RUN(restriction);
        return 0;
}
