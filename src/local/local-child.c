/* local-child.c: the delivery child, forked for one recipient: it looks the user up, takes on the
 * recipient's identity, writes the mailbox and reports a LocalResult over a pipe; and the parent's reading
 * of that report. The child never logs: it holds none of the parent's descriptors but the queue file. */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "address.h"
#include "command-util.h"
#include "local.h"

/* Closes every descriptor above stderr except a and b. */
static void close_other_fds(int a, int b) {
        unsigned lo = (unsigned) MIN(a, b), hi = (unsigned) MAX(a, b);

        if (lo > 3)
                (void) close_range(3, lo - 1, 0);
        if (hi > lo + 1)
                (void) close_range(lo + 1, hi - 1, 0);
        (void) close_range(hi + 1, ~0U, 0);
}

/* A user name that is safe as the last component of a path in the mail spool directory. */
static bool user_name_ok(const char *name) {
        return !isempty(name) && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..");
}

/* The identities of mail spool delivery, as Postfix chooses them: a world-writable spool is written as the
 * recipient; a group-writable one (Debian: root:mail 2775) as the recipient with the spool's group; any
 * other needs root, and a mailbox it creates is handed to the recipient and the "mail" group. */
static void spool_identities(const char *spool, const struct passwd *pw, LocalMbox *mb) {
        struct stat st;
        struct group *gr;

        mb->uid = mb->lock_uid = pw->pw_uid;
        mb->gid = mb->lock_gid = mb->create_gid = pw->pw_gid;
        if (stat(spool, &st) < 0 || (st.st_mode & S_IWOTH))
                return;
        if (st.st_mode & S_IWGRP) {
                mb->lock_gid = st.st_gid;
                return;
        }
        mb->lock_uid = 0;
        mb->lock_gid = 0;
        gr = getgrnam("mail");
        if (gr)
                mb->create_gid = gr->gr_gid;
}

void local_deliver_user(const LocalMessage *m, const Config *c, const struct passwd *pw, LocalResult *ret) {
        _cleanup_free_ char *path = NULL;
        const LocalLocking locking = {
                .attempts = (unsigned) c->deliver_lock_attempts,
                .delay_usec = (uint64_t) c->deliver_lock_delay * USEC_PER_SEC,
                .stale_usec = (uint64_t) c->stale_lock_time * USEC_PER_SEC,
        };
        int r;

        if (!user_name_ok(pw->pw_name)) {
                local_result_set(ret, "4.3.0", "unusable user name \"%s\"", pw->pw_name);
                return;
        }

        if (isempty(c->home_mailbox)) {
                LocalMbox mb = { .locking = locking };

                if (asprintf(&path, "%s/%s", c->mail_spool_directory, pw->pw_name) < 0) {
                        local_result_set(ret, "4.3.0", "out of memory");
                        return;
                }
                spool_identities(c->mail_spool_directory, pw, &mb);
                mb.path = path;
                local_deliver_mbox(m, &mb, ret);
                return;
        }

        if (!pw->pw_dir || pw->pw_dir[0] != '/') {
                local_result_set(ret, "4.3.0", "user %s has no usable home directory", pw->pw_name);
                return;
        }
        /* In the home directory everything is done as the user, who owns it. */
        r = become_user(pw->pw_name, pw->pw_uid, pw->pw_gid, NULL, 0);
        if (r < 0) {
                local_result_set(ret, "4.3.0", "cannot switch to user %s: %s", pw->pw_name, strerror(-r));
                return;
        }
        if (asprintf(&path, "%s/%s", pw->pw_dir, c->home_mailbox) < 0) {
                local_result_set(ret, "4.3.0", "out of memory");
                return;
        }
        if (c->home_mailbox[strlen(c->home_mailbox) - 1] == '/') {
                local_deliver_maildir(m, path, c->myhostname, ret);
                return;
        }
        const LocalMbox mb = {
                .path = path,
                .uid = pw->pw_uid, .gid = pw->pw_gid,
                .lock_uid = pw->pw_uid, .lock_gid = pw->pw_gid,
                .create_gid = pw->pw_gid,
                .locking = locking,
        };
        local_deliver_mbox(m, &mb, ret);
}

_Noreturn static void child_main(const LocalMessage *m, const Config *c, int report_fd) {
        /* SIGTERM stays blocked as in the parent: a stop lets the mailbox write finish, the parent waits. */
        (void) signal(SIGXFSZ, SIG_IGN);        /* a write past mailbox_size_limit fails with EFBIG */
        (void) signal(SIGPIPE, SIG_IGN);        /* a command that does not read all of its input */
        close_other_fds(m->queue_fd, report_fd);

        const rlim_t limit = (rlim_t) c->mailbox_size_limit;
        const struct rlimit rl = { .rlim_cur = limit, .rlim_max = limit };
        if (c->mailbox_size_limit > 0 && setrlimit(RLIMIT_FSIZE, &rl) < 0) {
                LocalResult result;
                local_result_set(&result, "4.3.0", "cannot set the file size limit: %m");
                (void) local_report_delivery(report_fd, m->recipient, NULL, &result);
        } else
                local_expand_deliver(m, c, report_fd);
        _exit(EXIT_SUCCESS);
}

int local_child_start(const LocalMessage *m, const Config *config, pid_t *ret_pid, int *ret_report_fd) {
        int fd;
        pid_t pid;

        /* A file, not a pipe: the report of a large expansion need not fit a pipe's buffer, and the parent
         * reads it only once the child has ended. */
        fd = memfd_create("postbus-local-report", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                safe_close(fd);
                return -errno;
        }
        if (pid == 0) {
                /* Its own process group, so that a time limit kills the deliveries it started too. */
                (void) setpgid(0, 0);
                child_main(m, config, fd);
        }
        (void) setpgid(pid, pid);
        *ret_pid = pid;
        *ret_report_fd = fd;
        return 0;
}

void local_child_failure(const siginfo_t *si, bool timed_out, LocalResult *ret) {
        if (timed_out)
                local_result_set(ret, "4.3.0", "delivery time limit exceeded");
        else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)
                local_result_set(ret, "4.3.0", "delivery process killed by signal %s",
                                 strsignal(si->si_status));
        else if (si->si_code == CLD_EXITED && si->si_status == EXIT_SUCCESS)
                local_result_set(ret, "4.3.0", "delivery process reported no result");
        else
                local_result_set(ret, "4.3.0", "delivery process ended without a result (exit status %i)",
                                 si->si_status);
}
