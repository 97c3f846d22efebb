/* test-pipe-command.c: pipe commands run for real from an event loop, as the user running the test: the
 * message with its header lines and flags reaches stdin, exit statuses and output become results, the time
 * limit kills a command's whole process group, a command that does not read its input or reads it slowly
 * holds up nobody, the output kept is bounded, and the environment is clean. */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "tests.h"
#include "../../src/pipe/pipe.h"

static char tmpdir[] = "/tmp/test-pipe-command.XXXXXX";

/* A queue file with this content, in memory. */
static int queue_file(const char *content, size_t len, QueueEnvelope **ret) {
        int fd = memfd_create("queue", MFD_CLOEXEC);
        QueueWriter *w = malloc(sizeof(QueueWriter));

        ASSERT_TRUE(fd >= 0 && w);
        queue_writer_init(w, fd);
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, strlen(QUEUE_MAGIC)));
        ASSERT_OK(queue_writer_recordf(w, QUEUE_REC_TIME, "%u", 1234567u));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_SENDER, "s@x.org", 7));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_RECIPIENT, "r@y.org", 7));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0));
        ASSERT_OK(queue_writer_content(w, content, len));
        ASSERT_OK(queue_writer_record(w, QUEUE_REC_END, NULL, 0));
        ASSERT_OK(queue_writer_flush(w));
        free(w);
        ASSERT_OK(queue_file_read(fd, ret));
        return fd;
}

typedef struct Run {
        PipeResult result;
        bool done;
        uint64_t finished;
        PipeCommand *command;
} Run;

static void on_done(PipeCommand *cmd, const PipeResult *result, void *userdata) {
        Run *r = userdata;

        r->result = *result;
        r->done = true;
        r->finished = now_monotonic_usec();
        r->command = pipe_command_free(r->command);
}

static PipeSettings settings(unsigned flags, uint64_t time_limit_usec) {
        static gid_t groups[1];

        groups[0] = getgid();
        return (PipeSettings) {
                .user = (char *) "test",
                .uid = getuid(),
                .gid = getgid(),
                .groups = groups,
                .n_groups = 1,
                .home = tmpdir,
                .eol = (char *) "\n",
                .flags = flags,
                .time_limit_usec = time_limit_usec,
        };
}

static void start(sd_event *e, const PipeSettings *s, const char *script, const char *prefix, int fd,
                  const QueueEnvelope *env, Run *run) {
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) script, (char *) "sh", NULL };
        char *envp[] = { (char *) "PATH=/usr/bin:/bin", (char *) "TZ=UTC", NULL };
        const PipeCommandSpec spec = {
                .argv = argv,
                .env = envp,
                .settings = s,
                .transport = "test",
                .prefix = prefix,
                .queue_fd = fd,
                .envelope = env,
        };

        *run = (Run) {};
        ASSERT_OK(pipe_command_start(e, &spec, on_done, run, &run->command));
        ASSERT_TRUE(pipe_command_pid(run->command) > 0);
}

static void wait_for(sd_event *e, Run *const *runs, size_t n) {
        for (;;) {
                bool all = true;
                for (size_t i = 0; i < n; i++)
                        all = all && runs[i]->done;
                if (all)
                        return;
                ASSERT_OK(sd_event_run(e, 30 * USEC_PER_SEC));
        }
}

static char *slurp(const char *name) {
        char path[256], *buf = calloc(1, 4 * 1024 * 1024);
        int fd;
        ssize_t n, len = 0;

        (void) snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        while ((n = read(fd, buf + len, 4 * 1024 * 1024 - 1 - (size_t) len)) > 0)
                len += n;
        close(fd);
        return buf;
}

TEST(message_and_status) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(queue_envelope_freep) QueueEnvelope *env = NULL;
        const char *content = "Subject: hi\n\nFrom here\n.dot\nlast";
        int fd = queue_file(content, strlen(content), &env);
        PipeSettings s = settings(PIPE_FLAG_QUOTE_FROM | PIPE_FLAG_DOT | PIPE_FLAG_BLANK, 30 * USEC_PER_SEC);
        Run a, b;

        ASSERT_OK(sd_event_new(&e));
        start(e, &s, "cat > message; pwd > cwd; env | sort > env", "Return-Path: <s@x.org>\n", fd, env, &a);
        start(e, &s, "echo 'no such mailbox'; exit 67", "", fd, env, &b);
        wait_for(e, (Run *[]) { &a, &b }, 2);

        ASSERT_EQ(a.result.status, PIPE_STATUS_SENT);
        ASSERT_STREQ(a.result.dsn, "2.0.0");
        ASSERT_STREQ(a.result.text, "delivered via test service");
        _cleanup_free_ char *m = slurp("message"), *cwd = slurp("cwd"), *envs = slurp("env");
        ASSERT_STREQ(m, "Return-Path: <s@x.org>\nSubject: hi\n\n>From here\n..dot\nlast\n\n");
        ASSERT_TRUE(strncmp(cwd, tmpdir, strlen(tmpdir)) == 0);          /* the user's home */
        /* What the shell adds (PWD, SHLVL, _) aside, the environment is what was given. */
        ASSERT_TRUE(strstr(envs, "PATH=/usr/bin:/bin\n") && strstr(envs, "TZ=UTC\n"));
        ASSERT_TRUE(!strstr(envs, "HOME=") && !strstr(envs, "USER=") && !strstr(envs, "INVOCATION_ID="));

        ASSERT_EQ(b.result.status, PIPE_STATUS_BOUNCED);
        ASSERT_STREQ(b.result.dsn, "5.1.1");
        ASSERT_STREQ(b.result.text, "user unknown. Command output: no such mailbox");
        close(fd);
}

TEST(failures) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(queue_envelope_freep) QueueEnvelope *env = NULL;
        int fd = queue_file("x\n", 2, &env);
        PipeSettings s = settings(0, 30 * USEC_PER_SEC), dir = settings(0, 30 * USEC_PER_SEC);
        Run a, b, c, d, f;

        ASSERT_OK(sd_event_new(&e));
        dir.directory = (char *) "/nonexistent/dir";
        start(e, &s, "exit 75", "", fd, env, &a);
        start(e, &s, "echo '4.2.2 mailbox full'; exit 1", "", fd, env, &b);
        start(e, &s, "kill -TERM $$", "", fd, env, &c);
        start(e, &dir, "exit 0", "", fd, env, &d);
        /* Output beyond PIPE_OUTPUT_MAX is read and dropped. */
        start(e, &s, "i=0; while [ $i -lt 2000 ]; do echo 0123456789; i=$((i+1)); done; exit 1", "", fd, env, &f);
        wait_for(e, (Run *[]) { &a, &b, &c, &d, &f }, 5);

        ASSERT_EQ(a.result.status, PIPE_STATUS_DEFERRED);
        ASSERT_STREQ(a.result.dsn, "4.3.0");
        ASSERT_EQ(b.result.status, PIPE_STATUS_DEFERRED);
        ASSERT_STREQ(b.result.dsn, "4.2.2");
        ASSERT_STREQ(b.result.text, "mailbox full");
        ASSERT_EQ(c.result.status, PIPE_STATUS_DEFERRED);
        ASSERT_STREQ(c.result.text, "Command died with signal 15: \"/bin/sh\"");
        ASSERT_EQ(d.result.status, PIPE_STATUS_DEFERRED);
        ASSERT_TRUE(strstr(d.result.text, "cannot change directory to \"/nonexistent/dir\""));
        ASSERT_EQ(f.result.status, PIPE_STATUS_BOUNCED);
        ASSERT_TRUE(strlen(f.result.text) < PIPE_OUTPUT_MAX + 100 && strlen(f.result.text) > PIPE_OUTPUT_MAX - 100);

        /* A command that cannot be run defers, and says why. */
        char *argv[] = { (char *) "/nonexistent/command", NULL };
        char *envp[] = { NULL };
        const PipeCommandSpec spec = {
                .argv = argv, .env = envp, .settings = &s, .transport = "t", .prefix = "", .queue_fd = fd,
                .envelope = env,
        };
        Run g = {};
        ASSERT_OK(pipe_command_start(e, &spec, on_done, &g, &g.command));
        wait_for(e, (Run *[]) { &g }, 1);
        ASSERT_EQ(g.result.status, PIPE_STATUS_DEFERRED);
        ASSERT_TRUE(strstr(g.result.text, "cannot run /nonexistent/command"));
        close(fd);
}

TEST(time_limit_and_slow_readers) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(queue_envelope_freep) QueueEnvelope *env = NULL;
        size_t big = 3 * 1024 * 1024;
        char *content = malloc(big);
        for (size_t i = 0; i < big; i++)
                content[i] = i % 64 == 63 ? '\n' : (char) ('a' + i % 26);
        int fd = queue_file(content, big, &env);
        PipeSettings quick = settings(0, 1 * USEC_PER_SEC), s = settings(0, 60 * USEC_PER_SEC);
        Run a, b, c;
        uint64_t t0 = now_monotonic_usec();

        ASSERT_OK(sd_event_new(&e));
        /* Killed at its time limit with what it started: the background sleep holds the output pipe open. */
        start(e, &quick, "echo started; sleep 30 & sleep 30", "", fd, env, &a);
        /* Reads the 3 MiB after a pause: the others go on meanwhile. */
        start(e, &s, "sleep 2; wc -c > slow", "", fd, env, &b);
        /* Never reads its input and exits at once: the exit status decides. */
        start(e, &s, "exit 0", "", fd, env, &c);
        wait_for(e, (Run *[]) { &c }, 1);
        ASSERT_TRUE(!b.done);
        wait_for(e, (Run *[]) { &a, &b }, 2);

        ASSERT_EQ(a.result.status, PIPE_STATUS_BOUNCED);
        ASSERT_STREQ(a.result.dsn, "5.3.0");
        ASSERT_STREQ(a.result.text, "Command time limit exceeded: \"/bin/sh\". Command output: started");
        ASSERT_TRUE(a.finished - t0 < 20 * USEC_PER_SEC);
        ASSERT_EQ(b.result.status, PIPE_STATUS_SENT);
        _cleanup_free_ char *n = slurp("slow");
        ASSERT_EQ(atol(n), (long) big);
        ASSERT_EQ(c.result.status, PIPE_STATUS_SENT);
        ASSERT_TRUE(c.finished < b.finished);
        free(content);
        close(fd);
}

int main(void) {
        sigset_t mask;

        /* As the daemon has it: SIGCHLD for sd-event, SIGPIPE ignored. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        ASSERT_OK(sigprocmask(SIG_BLOCK, &mask, NULL));
        (void) signal(SIGPIPE, SIG_IGN);
        ASSERT_TRUE(mkdtemp(tmpdir) != NULL);

        RUN(message_and_status);
        RUN(failures);
        RUN(time_limit_and_slow_readers);

        char cmd[512];
        (void) snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        (void) system(cmd);
        return 0;
}
