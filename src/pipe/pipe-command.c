/* pipe-command.c: one command of a pipe transport, run from the pipe process's event loop: forked into a
 * session of its own as the transport's user with a clean environment, fed the message through a
 * non-blocking pipe as fast as it reads, its stdout and stderr collected (the first PIPE_OUTPUT_MAX bytes kept),
 * its process group killed at the time limit, and its end turned into a delivery result. */
#include <sys/wait.h>
#include <sysexits.h>

#include "command-util.h"
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

        Buffer buf;                     /* what goes to stdin next: buf.data[written..len) */
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

static void close_stdin(PipeCommand *c) {
        c->in_source = sd_event_source_disable_unref(c->in_source);
        c->in_fd = safe_close(c->in_fd);
        buffer_done(&c->buf);
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
                                command_kill(c->pid);
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
        if (c->out_fd >= 0 && command_output_read(c->out_fd, c->output, sizeof c->output, &c->output_len, budget) > 0)
                close_output(c);
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        read_output(userdata, PIPE_READ_BUDGET);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        PipeCommand *c = userdata;

        c->timed_out = true;
        command_kill(c->pid);     /* on_child follows */
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        PipeCommand *c = userdata;
        PipeEnd end = { .code = si->si_code, .status = si->si_status, .timed_out = c->timed_out };
        PipeResult result;

        /* What it wrote before it ended is in the pipe, unless something it left behind still writes. */
        read_output(c, 16 * PIPE_READ_BUDGET);
        command_kill(c->pid);
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

PipeCommand *pipe_command_free(PipeCommand *c) {
        if (!c)
                return NULL;
        c->child_source = sd_event_source_disable_unref(c->child_source);
        if (c->pid > 0) {
                command_kill(c->pid);
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
        const PipeSettings *s = spec->settings;
        /* A failure before exec says why on the output and exits EX_TEMPFAIL, as Postfix's pipe does, so that
         * the mail is deferred. */
        const CommandSpec child = {
                .path = spec->argv[0],
                .argv = spec->argv,
                .env = spec->env,
                .user = s->user,
                .uid = s->uid,
                .gid = s->gid,
                .groups = s->groups,
                .n_groups = s->n_groups,
                .directory = s->directory,
                .home = s->home,
                .log_prefix = "pipe: ",
                .failure_status = EX_TEMPFAIL,
        };
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
        r = buffer_append(&c->buf, spec->prefix, strlen(spec->prefix));
        if (r < 0)
                return r;

        r = command_spawn(&child, &c->pid, &c->in_fd, &c->out_fd);
        if (r < 0)
                return r;
        /* From here on pipe_command_freep kills and reaps it. */
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
}

void pipe_command_kill(PipeCommand *c) {
        command_kill(c->pid);
}

pid_t pipe_command_pid(const PipeCommand *c) {
        return c->pid;
}
