/* local-command.c: |command delivery: /bin/sh -c as the destination's owner, in a session of its own,
 * with a clean environment, the message on stdin, the output captured (bounded) and a time limit after
 * which the whole process group is killed; and the mapping of how it ended to a delivery result. */
#include <grp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>

#include "address.h"
#include "command-util.h"
#include "local.h"
#include "sys-exits.h"

/* Bytes of command output kept for the result text; the rest is read and dropped. */
#define LOCAL_COMMAND_OUTPUT_MAX MAILBOX_TEXT_SIZE

void local_command_status(int wait_status, bool timed_out, const char *command, const char *output,
                          MailboxResult *ret) {
        _cleanup_free_ char *out = output ? strdup(output) : NULL;
        const char *sep = "";

        if (out) {
                for (char *p = out; *p; p++)
                        if ((unsigned char) *p < ' ' || *p == 0x7F)
                                *p = ' ';
                /* Trailing blanks (the final newline) say nothing. */
                size_t n = strlen(out);
                while (n > 0 && out[n - 1] == ' ')
                        out[--n] = '\0';
                if (n > 0)
                        sep = ". Command output: ";
        }

        if (timed_out) {
                mailbox_result_set(ret, "5.3.0", "Command time limit exceeded: \"%s\"%s%s", command, sep,
                                 strempty(out));
                return;
        }
        if (WIFSIGNALED(wait_status)) {
                mailbox_result_set(ret, "4.3.0", "Command died with signal %d: \"%s\"%s%s",
                                 WTERMSIG(wait_status), command, sep, strempty(out));
                return;
        }
        int status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 255;
        if (status == 0) {
                mailbox_result_set(ret, "2.0.0", "delivered to command: %s", command);
                return;
        }
        const SysExit *e = sys_exit_find(status);
        if (e) {
                mailbox_result_set(ret, e->dsn, "%s%s%s", e->text, sep, strempty(out));
                return;
        }
        mailbox_result_set(ret, "5.3.0", "Command died with status %d: \"%s\"%s%s", status, command, sep,
                         strempty(out));
}

void local_privs_done(LocalPrivs *p) {
        p->user = mfree(p->user);
        p->home = mfree(p->home);
        p->shell = mfree(p->shell);
}

typedef struct Pump {
        int in_fd;              /* the command's stdin, or -EBADF once it is closed */
        int out_fd;             /* its stdout and stderr, or -EBADF at end of file */
        char out[LOCAL_COMMAND_OUTPUT_MAX];
        size_t out_len;
        uint64_t deadline;      /* CLOCK_MONOTONIC */
        bool timed_out;
        bool last_nl;           /* the last byte written was a newline */
} Pump;

/* Reads the output there is, keeping what fits with a NUL after it. */
static void pump_read(Pump *p) {
        if (p->out_fd >= 0 && command_output_read(p->out_fd, p->out, sizeof p->out - 1, &p->out_len, SIZE_MAX) > 0)
                p->out_fd = safe_close(p->out_fd);
}

/* Waits until stdin takes more (when writing) or output comes; -ETIME at the deadline. */
static int pump_wait(Pump *p, bool writing) {
        struct pollfd fds[2];
        nfds_t n = 0;
        uint64_t now = now_monotonic_usec();

        if (now >= p->deadline) {
                p->timed_out = true;
                return -ETIME;
        }
        if (writing && p->in_fd >= 0)
                fds[n++] = (struct pollfd) { .fd = p->in_fd, .events = POLLOUT };
        if (p->out_fd >= 0)
                fds[n++] = (struct pollfd) { .fd = p->out_fd, .events = POLLIN };
        int timeout = (int) MIN((p->deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, 1000U);
        if (n == 0) {
                /* Nothing to watch: the caller polls for the process to end. */
                struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
                (void) nanosleep(&ts, NULL);
                return 0;
        }
        if (poll(fds, n, timeout) < 0 && errno != EINTR)
                return -errno;
        if (p->out_fd >= 0)
                pump_read(p);
        return 0;
}

/* Output to the command's stdin; a command that stops reading gets no more (its exit status decides). */
static int pump_write(const char *data, size_t len, void *userdata) {
        Pump *p = userdata;
        int r;

        if (len > 0)
                p->last_nl = data[len - 1] == '\n';
        while (len > 0 && p->in_fd >= 0) {
                ssize_t n = write(p->in_fd, data, len);
                if (n > 0) {
                        data += n;
                        len -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EPIPE) {
                        p->in_fd = safe_close(p->in_fd);
                        break;
                }
                if (n < 0 && errno != EAGAIN)
                        return -errno;
                r = pump_wait(p, true);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The user's groups, and postdrop. A command (vacation, a list manager, procmail) submits mail with
 * sendmail, whose set-group-ID bit does nothing under postbus-local.service's NoNewPrivileges=: the command
 * holds the group itself instead. It gives no more than sendmail gives every user: files may be created in
 * the maildrop, which it cannot list, and pickup trusts nothing in a file but its owner, the user. */
static int command_groups(const LocalPrivs *privs, gid_t **ret, size_t *ret_n) {
        _cleanup_free_ gid_t *groups = NULL;
        struct group *gr;
        int n = 16;

        for (;;) {
                gid_t *l = reallocarray(groups, (size_t) n + 1, sizeof(gid_t));
                if (!l)
                        return -ENOMEM;
                groups = l;
                int k = n;
                if (getgrouplist(privs->user, privs->gid, groups, &k) >= 0) {
                        n = k;
                        break;
                }
                if (k <= n || k > 65536)
                        return -E2BIG;
                n = k;
        }
        errno = 0;
        gr = getgrnam("postdrop");
        if (gr)
                groups[n++] = gr->gr_gid;
        *ret_n = (size_t) n;
        *ret = TAKE_PTR(groups);
        return 0;
}

void local_command_run(const MailboxMessage *m, const char *command, const LocalPrivs *privs, char **env,
                       uint64_t time_limit_usec, MailboxResult *ret) {
        _cleanup_free_ char *headers = NULL;
        _cleanup_free_ gid_t *groups = NULL;
        size_t n_groups = 0;
        Pump p = { .in_fd = -EBADF, .out_fd = -EBADF, .deadline = now_monotonic_usec() + time_limit_usec };
        char from_line[ADDRESS_MAX + 64];
        char *argv[] = { (char *) "sh", (char *) "-c", (char *) command, NULL };
        int status = 0, r;
        struct tm tm;
        time_t now = time(NULL);
        pid_t pid;

        r = command_groups(privs, &groups, &n_groups);
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot look up the groups of %s: %s", privs->user, strerror(-r));
                return;
        }
        const CommandSpec child = {
                .path = "/bin/sh",
                .argv = argv,
                .env = env,
                .user = privs->user,
                .uid = privs->uid,
                .gid = privs->gid,
                .groups = groups,
                .n_groups = n_groups,
                .home = privs->home,
                .failure_status = EX_OSERR,
        };

        /* As Postfix: a From_ line (procmail wants one) and the delivery headers, no ">From " quoting. */
        if (!localtime_r(&now, &tm) || mbox_from_line(m->sender, &tm, from_line, sizeof from_line) < 0 ||
            mailbox_delivery_headers(m, from_line, &headers) < 0) {
                mailbox_result_set(ret, "4.3.0", "out of memory");
                return;
        }
        r = command_spawn(&child, &pid, &p.in_fd, &p.out_fd);
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot start command: %s", strerror(-r));
                return;
        }

        r = pump_write(headers, strlen(headers), &p);
        if (r >= 0)
                r = queue_file_content_foreach(m->queue_fd, m->envelope, pump_write, &p);
        if (r >= 0 && !p.last_nl)
                r = pump_write("\n", 1, &p);
        p.in_fd = safe_close(p.in_fd);
        if (r < 0 && !p.timed_out) {
                command_kill(pid);
                (void) waitpid(pid, NULL, 0);
                if (r == -EBADMSG)
                        mailbox_result_set(ret, "4.3.0", "queue file is corrupt");
                else
                        mailbox_result_set(ret, "4.3.0", "cannot write to command \"%s\": %s", command,
                                         strerror(-r));
                goto finish;
        }

        /* The output until it ends, then the exit status, within the time limit. */
        while (!p.timed_out) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid && p.out_fd < 0)
                        break;
                if (w < 0 && errno != EINTR) {
                        mailbox_result_set(ret, "4.3.0", "cannot wait for command: %m");
                        goto finish;
                }
                if (w == pid) {
                        /* Ended; what it wrote is in the pipe unless a process it left behind holds it. */
                        pump_read(&p);
                        break;
                }
                (void) pump_wait(&p, false);
        }
        if (p.timed_out) {
                command_kill(pid);
                (void) waitpid(pid, &status, 0);
        } else
                command_kill(pid);              /* what the command left running in its session */
        p.out[p.out_len] = '\0';
        local_command_status(status, p.timed_out, command, p.out, ret);
finish:
        safe_close(p.in_fd);
        safe_close(p.out_fd);
}
