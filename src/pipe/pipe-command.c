/* pipe-command.c: one command of a pipe transport, run from the pipe process's event loop: forked into a
 * session of its own as the transport's user with a clean environment, fed the message through a
 * non-blocking pipe as fast as it reads, its stdout and stderr collected (the first PIPE_OUTPUT_MAX bytes kept),
 * its process group killed at the time limit, and its end turned into a delivery result. */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>

#include "pipe.h"

/* Most bytes moved through a command's stdin, and read from its output, in one turn of the event loop, so that
 * one fast command does not hold up the others. */
#define PIPE_WRITE_BUDGET (1024U * 1024U)
#define PIPE_READ_BUDGET (64U * 1024U)

struct PipeCommand {
        pid_t pid;                      /* 0 once it has ended */
        int in_fd;                      /* its stdin; -EBADF once closed */
        int out_fd;                     /* its stdout and stderr; -EBADF at end of file */
        sd_event_source *in_source, *out_source, *child_source, *timer;

        PipeBuffer buf;                 /* what goes to stdin next: buf.data[written..len) */
        size_t written;
        PipeCopy copy;
        int queue_fd;
        const QueueEnvelope *envelope;
        uint64_t offset;                /* of the next content record */
        bool content_done;              /* the whole message is in buf */
        char *record;
        int read_error;                 /* reading the queue file failed: never a success */
        int write_error;                /* writing to stdin failed other than by EPIPE */

        char output[PIPE_OUTPUT_MAX];
        size_t output_len;
        bool timed_out;

        char *command;
        char *transport;
        PipeCommandDone done;
        void *userdata;
};

/* Kills the command and whatever it started in its session; the process itself too in case it has not
 * made its session yet. */
static void kill_group(pid_t pid) {
        if (pid > 0 && kill(-pid, SIGKILL) < 0)
                (void) kill(pid, SIGKILL);
}

static void close_stdin(PipeCommand *c) {
        c->in_source = sd_event_source_disable_unref(c->in_source);
        c->in_fd = safe_close(c->in_fd);
        pipe_buffer_done(&c->buf);
        c->written = 0;
}

static void close_output(PipeCommand *c) {
        c->out_source = sd_event_source_disable_unref(c->out_source);
        c->out_fd = safe_close(c->out_fd);
}

/* The next piece of the message into buf: one content record transformed, or the end. */
static int refill(PipeCommand *c) {
        int n = queue_file_content_next(c->queue_fd, c->envelope, &c->offset, c->record);

        if (n < 0)
                return n;
        if (n == 0) {
                c->content_done = true;
                return pipe_copy_finish(&c->copy, &c->buf);
        }
        return pipe_copy_feed(&c->copy, c->record, (size_t) n, &c->buf);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        PipeCommand *c = userdata;
        size_t budget = PIPE_WRITE_BUDGET;
        int r;

        while (budget > 0) {
                if (c->written == c->buf.len) {
                        c->buf.len = c->written = 0;
                        if (c->content_done) {
                                close_stdin(c);         /* end of file for the command */
                                return 0;
                        }
                        r = refill(c);
                        if (r < 0) {
                                /* Never a command that exits 0 after a message cut short. */
                                c->read_error = r;
                                kill_group(c->pid);
                                close_stdin(c);
                                return 0;
                        }
                        continue;
                }
                ssize_t n = write(c->in_fd, c->buf.data + c->written, MIN(c->buf.len - c->written, budget));
                if (n > 0) {
                        c->written += (size_t) n;
                        budget -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                /* EPIPE: it stopped reading; as in Postfix its exit status decides. */
                if (n < 0 && errno != EPIPE)
                        c->write_error = errno;
                close_stdin(c);
                return 0;
        }
        return 0;
}

/* Reads what the command wrote, keeping the first PIPE_OUTPUT_MAX bytes; at most budget bytes. */
static void read_output(PipeCommand *c, size_t budget) {
        char buf[4096];

        while (c->out_fd >= 0 && budget > 0) {
                ssize_t n = read(c->out_fd, buf, MIN(sizeof buf, budget));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        close_output(c);
                        return;
                }
                size_t keep = MIN((size_t) n, sizeof c->output - c->output_len);
                memcpy(c->output + c->output_len, buf, keep);
                c->output_len += keep;
                budget -= (size_t) n;
        }
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        read_output(userdata, PIPE_READ_BUDGET);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        PipeCommand *c = userdata;

        c->timed_out = true;
        kill_group(c->pid);     /* on_child follows */
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        PipeCommand *c = userdata;
        PipeEnd end = { .code = si->si_code, .status = si->si_status, .timed_out = c->timed_out };
        PipeResult result;

        /* What it wrote before it ended is in the pipe, unless something it left behind still writes. */
        read_output(c, 16 * PIPE_READ_BUDGET);
        kill_group(c->pid);
        c->pid = 0;
        close_stdin(c);
        close_output(c);
        c->timer = sd_event_source_disable_unref(c->timer);

        if (c->read_error == -EBADMSG)
                pipe_result_set(&result, "4.3.0", "queue file is corrupt");
        else if (c->read_error < 0)
                pipe_result_set(&result, "4.3.0", "cannot read the queue file: %s", strerror(-c->read_error));
        else if (c->write_error > 0 && !c->timed_out && end.code == CLD_EXITED && end.status == 0)
                pipe_result_set(&result, "4.3.0", "Command failed: error writing message: %s: \"%s\"",
                                strerror(c->write_error), c->command);
        else
                pipe_command_result(&end, c->command, c->transport, c->output, c->output_len, &result);

        c->done(c, &result, c->userdata);       /* may free c */
        return 0;
}

/* Takes on the transport's user for good; a process that already is that user (tests) stays as it is. */
static int become_user(const PipeSettings *s) {
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;

        if (getuid() == s->uid && geteuid() == s->uid && getgid() == s->gid)
                return 0;
        if (setgroups(s->n_groups, s->groups) < 0 || setresgid(s->gid, s->gid, s->gid) < 0 ||
            setresuid(s->uid, s->uid, s->uid) < 0)
                return -errno;
        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return -errno;
        if (ruid != s->uid || euid != s->uid || suid != s->uid || rgid != s->gid || egid != s->gid || sgid != s->gid)
                return -EPERM;
        if (s->uid != 0 && setuid(0) >= 0)
                return -EPERM;
        return 0;
}

/* In the child: never returns. A failure before exec says why on the output and exits EX_TEMPFAIL, as
 * Postfix's pipe does, so that the mail is deferred. */
_Noreturn static void exec_child(const PipeCommandSpec *spec, int in_fd, int out_fd, pid_t parent) {
        extern char **environ;
        const PipeSettings *s = spec->settings;
        sigset_t all;
        int r;

        (void) setsid();
        if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)
                _exit(EX_TEMPFAIL);
        (void) close_range(3, ~0U, 0);
        /* The daemon ignores SIGPIPE and blocks SIGCHLD; a command starts as any program does. */
        for (int sig = 1; sig < NSIG; sig++)
                (void) signal(sig, SIG_DFL);
        sigfillset(&all);
        (void) sigprocmask(SIG_UNBLOCK, &all, NULL);

        r = become_user(s);
        if (r < 0) {
                errno = -r;
                dprintf(STDERR_FILENO, "pipe: cannot switch to user %s: %m\n", s->user);
                _exit(EX_TEMPFAIL);
        }
        /* Set only now, since a change of identity clears it: a command dies with the pipe process. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(EX_TEMPFAIL);
        if (s->directory) {
                if (chdir(s->directory) < 0) {
                        dprintf(STDERR_FILENO, "pipe: cannot change directory to \"%s\": %m\n", s->directory);
                        _exit(EX_TEMPFAIL);
                }
        } else if (isempty(s->home) || chdir(s->home) < 0)
                (void) chdir("/");

        /* execvp() searches the PATH of this environment, /usr/bin:/bin. */
        environ = spec->env;
        execvp(spec->argv[0], spec->argv);
        dprintf(STDERR_FILENO, "pipe: cannot run %s: %m\n", spec->argv[0]);
        _exit(EX_TEMPFAIL);
}

PipeCommand *pipe_command_free(PipeCommand *c) {
        if (!c)
                return NULL;
        c->child_source = sd_event_source_disable_unref(c->child_source);
        if (c->pid > 0) {
                kill_group(c->pid);
                (void) waitpid(c->pid, NULL, 0);
        }
        close_stdin(c);
        close_output(c);
        sd_event_source_disable_unref(c->timer);
        free(c->record);
        free(c->command);
        free(c->transport);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PipeCommand *, pipe_command_free);

int pipe_command_start(sd_event *e, const PipeCommandSpec *spec, PipeCommandDone done, void *userdata,
                       PipeCommand **ret) {
        _cleanup_(pipe_command_freep) PipeCommand *c = NULL;
        int in[2] = { -EBADF, -EBADF }, out[2] = { -EBADF, -EBADF };
        const PipeSettings *s = spec->settings;
        int r;

        c = calloc(1, sizeof(PipeCommand));
        if (!c)
                return -ENOMEM;
        c->in_fd = c->out_fd = -EBADF;
        c->queue_fd = spec->queue_fd;
        c->envelope = spec->envelope;
        c->offset = spec->envelope->content_offset;
        c->done = done;
        c->userdata = userdata;
        c->record = malloc(QUEUE_RECORD_MAX);
        c->command = strdup(spec->argv[0]);
        c->transport = strdup(spec->transport);
        if (!c->record || !c->command || !c->transport)
                return -ENOMEM;
        pipe_copy_init(&c->copy, s->flags, s->eol);
        r = pipe_buffer_append(&c->buf, spec->prefix, strlen(spec->prefix));
        if (r < 0)
                return r;

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        pid_t parent = getpid();
        c->pid = fork();
        if (c->pid < 0) {
                r = -errno;
                c->pid = 0;
                goto fail;
        }
        if (c->pid == 0)
                exec_child(spec, in[0], out[1], parent);

        in[0] = safe_close(in[0]);
        out[1] = safe_close(out[1]);
        c->in_fd = TAKE_FD(in[1]);
        c->out_fd = TAKE_FD(out[0]);
        if (fcntl(c->in_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(c->out_fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;  /* pipe_command_freep kills and reaps it */

        r = sd_event_add_io(e, &c->in_source, c->in_fd, EPOLLOUT, on_stdin, c);
        if (r >= 0)
                r = sd_event_add_io(e, &c->out_source, c->out_fd, EPOLLIN, on_output, c);
        if (r >= 0)
                r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC, s->time_limit_usec, USEC_PER_MSEC * 10,
                                               on_timeout, c);
        if (r >= 0)
                r = sd_event_add_child(e, &c->child_source, c->pid, WEXITED, on_child, c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;

fail:
        safe_close(in[0]);
        safe_close(in[1]);
        safe_close(out[0]);
        safe_close(out[1]);
        return r;
}

void pipe_command_kill(PipeCommand *c) {
        kill_group(c->pid);
}

pid_t pipe_command_pid(const PipeCommand *c) {
        return c->pid;
}
