/* command-util.c: a command forked and set up for a mail recipient, and its output read. Runs in the local
 * delivery child and in the pipe process. */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "command-util.h"
#include "macro.h"

int become_user(const char *user, uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups) {
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;
        int r;

        if (getuid() == uid && geteuid() == uid && getgid() == gid)
                return 0;
        r = groups ? setgroups(n_groups, groups) : initgroups(user, gid);
        if (r < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                return -errno;
        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return -errno;
        if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
                return -EPERM;
        if (uid != 0 && setuid(0) >= 0)
                return -EPERM;
        return 0;
}

/* In the child: never returns. */
_Noreturn static void command_exec(const CommandSpec *s, int in_fd, int out_fd, pid_t parent) {
        extern char **environ;
        const char *prefix = strempty(s->log_prefix);
        sigset_t all;
        int r;

        (void) setsid();
        if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)
                _exit(s->failure_status);
        (void) close_range(3, ~0U, 0);
        /* The daemons ignore SIGPIPE and block signals; a command starts as any program does. */
        for (int sig = 1; sig < NSIG; sig++)
                (void) signal(sig, SIG_DFL);
        sigfillset(&all);
        (void) sigprocmask(SIG_UNBLOCK, &all, NULL);

        r = become_user(s->user, s->uid, s->gid, s->groups, s->n_groups);
        if (r < 0) {
                errno = -r;
                dprintf(STDERR_FILENO, "%scannot switch to user %s: %m\n", prefix, s->user);
                _exit(s->failure_status);
        }
        /* Set only now, since a change of identity clears it: the command dies with its parent. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(s->failure_status);
        if (s->directory) {
                if (chdir(s->directory) < 0) {
                        dprintf(STDERR_FILENO, "%scannot change directory to \"%s\": %m\n", prefix, s->directory);
                        _exit(s->failure_status);
                }
        } else if (isempty(s->home) || chdir(s->home) < 0)
                (void) chdir("/");

        environ = s->env;
        execvp(s->path, s->argv);
        dprintf(STDERR_FILENO, "%scannot run %s: %m\n", prefix, s->path);
        _exit(s->failure_status);
}

int command_spawn(const CommandSpec *spec, pid_t *ret_pid, int *ret_stdin, int *ret_output) {
        int in[2] = { -EBADF, -EBADF }, out[2] = { -EBADF, -EBADF };
        pid_t parent = getpid(), pid;
        int r = 0;

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
                r = -errno;
                goto finish;
        }
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto finish;
        }
        if (pid == 0)
                command_exec(spec, in[0], out[1], parent);

        if (fcntl(in[1], F_SETFL, O_NONBLOCK) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
                r = -errno;
                command_kill(pid);
                (void) waitpid(pid, NULL, 0);
                goto finish;
        }
        *ret_pid = pid;
        *ret_stdin = TAKE_FD(in[1]);
        *ret_output = TAKE_FD(out[0]);
finish:
        safe_close(in[0]);
        safe_close(in[1]);
        safe_close(out[0]);
        safe_close(out[1]);
        return r;
}

void command_kill(pid_t pid) {
        if (pid > 0 && kill(-pid, SIGKILL) < 0)
                (void) kill(pid, SIGKILL);
}

int command_output_read(int fd, char *buf, size_t size, size_t *len, size_t budget) {
        char chunk[4096];

        while (budget > 0) {
                ssize_t n = read(fd, chunk, MIN(sizeof chunk, budget));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0)
                        return 1;
                size_t keep = MIN((size_t) n, size - *len);
                memcpy(buf + *len, chunk, keep);
                *len += keep;
                budget -= (size_t) n;
        }
        return 0;
}
