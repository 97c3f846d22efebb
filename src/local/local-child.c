/* local-child.c: runs in the command process, forked by local for a recipient whose expansion names files,
 * commands or addresses of other domains: it writes each file (in a process of its own that takes on the
 * file's identity), runs each command, submits the forwarded copies, and writes a report line for each. It
 * never logs: it holds none of local's descriptors but the queue file and the report. */
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "command-util.h"
#include "io-util.h"
#include "local.h"

/* Runs f in a process of its own (which may give up root for good) and returns its result. */
typedef void (*IsolatedFunc)(const void *userdata, MailboxResult *ret);

static void run_isolated(IsolatedFunc f, const void *userdata, MailboxResult *ret) {
        char buf[MAILBOX_RESULT_WIRE_MAX + 1];
        int p[2], status = 0;
        size_t len = 0;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot create a pipe: %m");
                return;
        }
        pid = fork();
        if (pid < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot fork: %m");
                safe_close(p[0]);
                safe_close(p[1]);
                return;
        }
        if (pid == 0) {
                MailboxResult r = {};
                safe_close(p[0]);
                f(userdata, &r);
                size_t n = mailbox_result_format(&r, buf, sizeof buf);
                _exit(write(p[1], buf, n) == (ssize_t) n ? EXIT_SUCCESS : EXIT_FAILURE);
        }
        safe_close(p[1]);
        for (;;) {
                ssize_t n = read(p[0], buf + len, sizeof buf - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
                if (len == sizeof buf)
                        break;
        }
        safe_close(p[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && len > 0 && len < sizeof buf &&
            mailbox_result_parse(buf, len, ret) >= 0)
                return;
        mailbox_result_set(ret, "4.3.0", "delivery process ended without a result");
}

typedef struct FileDelivery {
        const MailboxMessage *m;
        const Config *c;
        const LocalPrivs *privs;
        const char *path;
} FileDelivery;

static void file_delivery(const void *userdata, MailboxResult *ret) {
        const FileDelivery *f = userdata;
        int r;

        r = become_user(f->privs->user, f->privs->uid, f->privs->gid, NULL, 0);
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot switch to user %s: %s", f->privs->user, strerror(-r));
                return;
        }
        if (f->path[strlen(f->path) - 1] == '/') {
                mailbox_deliver_maildir(f->m, f->path, f->c->myhostname, ret);
                if (ret->status == MAILBOX_STATUS_SENT)
                        mailbox_result_set(ret, "2.0.0", "delivered to maildir: %s", f->path);
                return;
        }
        const MailboxMbox mb = {
                .path = f->path,
                .uid = f->privs->uid, .gid = f->privs->gid,
                .lock_uid = f->privs->uid, .lock_gid = f->privs->gid,
                .create_gid = f->privs->gid,
                .locking = local_mailbox_locking(f->c),
                .file_target = true,
        };
        mailbox_deliver_mbox(f->m, &mb, ret);
        if (ret->status == MAILBOX_STATUS_SENT)
                mailbox_result_set(ret, "2.0.0", "delivered to file: %s", f->path);
}

static void report(LocalReport *rep, const MailboxMessage *m, const char *to, const MailboxResult *r) {
        (void) local_report_delivery(rep, to, strcaseeq(to, m->recipient) ? NULL : m->recipient, r);
}

static void child_run(const MailboxMessage *orig, const Config *c, const LocalPlan *plan, LocalReport *rep) {
        for (size_t k = 0; k < plan->n_jobs; k++) {
                const LocalJob *j = plan->jobs + k;
                MailboxMessage m = *orig;
                MailboxResult r;

                m.recipient = j->address;
                if (j->type == LOCAL_JOB_FILE) {
                        const FileDelivery f = { .m = &m, .c = c, .privs = &j->privs, .path = j->value };
                        run_isolated(file_delivery, &f, &r);
                } else if (j->type == LOCAL_JOB_COMMAND)
                        local_command_run(&m, j->value, &j->privs, j->env,
                                          (uint64_t) c->command_time_limit * USEC_PER_SEC, &r);
                else
                        continue;       /* mailboxes are the workers' */
                report(rep, orig, j->address, &r);
        }
        for (size_t k = 0; k < plan->n_groups; k++) {
                const LocalForwardGroup *g = plan->groups + k;
                char id[QUEUE_ID_SIZE];
                MailboxResult r;

                (void) local_forward_submit(orig, g->delivered_to, g->sender, g->recipients,
                                            (uint64_t) c->daemon_timeout * USEC_PER_SEC / 10, id, &r);
                for (size_t j = 0; j < g->n; j++)
                        report(rep, orig, g->recipients[j], &r);
        }
}

_Noreturn static void child_main(const MailboxMessage *m, const Config *c, const LocalPlan *plan, int report_fd) {
        LocalReport rep = { .fd = report_fd };

        /* SIGTERM stays blocked as in local: a stop lets the work finish, local waits. */
        (void) signal(SIGXFSZ, SIG_IGN);        /* a write past mailbox_size_limit fails with EFBIG */
        (void) signal(SIGPIPE, SIG_IGN);        /* a command that does not read all of its input */
        close_fds_except(m->queue_fd, report_fd);

        const rlim_t limit = (rlim_t) c->mailbox_size_limit;
        const struct rlimit rl = { .rlim_cur = limit, .rlim_max = limit };
        if (c->mailbox_size_limit > 0 && setrlimit(RLIMIT_FSIZE, &rl) < 0) {
                MailboxResult result;
                mailbox_result_set(&result, "4.3.0", "cannot set the file size limit: %m");
                (void) local_report_delivery(&rep, m->recipient, NULL, &result);
        } else
                child_run(m, c, plan, &rep);
        _exit(EXIT_SUCCESS);
}

int local_child_start(const MailboxMessage *m, const Config *config, const LocalPlan *plan, int report_fd,
                      pid_t *ret_pid) {
        pid_t pid;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Its own process group, so that a time limit kills the commands it started too. */
                (void) setpgid(0, 0);
                child_main(m, config, plan, report_fd);
        }
        (void) setpgid(pid, pid);
        *ret_pid = pid;
        return 0;
}

void local_child_failure(const siginfo_t *si, bool timed_out, MailboxResult *ret) {
        if (timed_out)
                mailbox_result_set(ret, "4.3.0", "delivery time limit exceeded");
        else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)
                mailbox_result_set(ret, "4.3.0", "delivery process killed by signal %s",
                                 strsignal(si->si_status));
        else if (si->si_code == CLD_EXITED && si->si_status == EXIT_SUCCESS)
                mailbox_result_set(ret, "4.3.0", "delivery process reported no result");
        else
                mailbox_result_set(ret, "4.3.0", "delivery process ended without a result (exit status %i)",
                                 si->si_status);
}
