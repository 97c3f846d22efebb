/* command-util.h: a command run for a mail recipient (local's |command, pipe's argv=): forked into a session of
 * its own with pipes as stdio, the recipient's identity taken on for good, killed with its parent; and its
 * output read. Runs in the local delivery child and in the pipe process. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Takes on an identity for good: the supplementary groups (groups NULL: the user's own, from the group
 * database), the gid, the uid; then checks that there is no way back to root. A process that already runs as
 * uid, gid stays as it is (a role run by hand as that user, the unit tests). */
int become_user(const char *user, uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups);

typedef struct CommandSpec {
        const char *path;               /* the program; without a '/', searched in the PATH of env */
        char **argv;
        char **env;                     /* "NAME=value", NULL-terminated */
        const char *user;               /* the identity it runs as (become_user()) */
        uid_t uid;
        gid_t gid;
        const gid_t *groups;
        size_t n_groups;
        const char *directory;          /* where it runs, which must exist; NULL: home, or / without one */
        const char *home;
        const char *log_prefix;         /* before what the child writes to the output when it cannot run */
        int failure_status;             /* the child's exit status then */
} CommandSpec;

/* Forks and runs the command, its stdin and its output (stdout and stderr) on two pipes whose other ends are
 * returned, non-blocking and close-on-exec. A failure after the fork (set-up, identity, exec) is the child's:
 * it says why on its output and exits failure_status. On error nothing is left running. */
int command_spawn(const CommandSpec *spec, pid_t *ret_pid, int *ret_stdin, int *ret_output);

/* Kills a command and whatever it started in its session; the process itself too in case it has not made
 * its session yet. */
void command_kill(pid_t pid);

/* Reads what a command wrote on the non-blocking fd, at most budget bytes (SIZE_MAX: as much as is there):
 * keeps what fits in buf[*len..size) and drops the rest. 1 at the end of the output or on an error (the caller
 * closes fd), 0 when nothing more is there now or the budget is spent. */
int command_output_read(int fd, char *buf, size_t size, size_t *len, size_t budget);
