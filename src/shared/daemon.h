/* daemon.h: the skeleton every role's run() uses: config, sd-event, signals, watchdog, socket
 * activation by FileDescriptorName=, READY=1/STOPPING=1, and exit when idle. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"

typedef struct Daemon Daemon;

typedef struct DaemonSpec {
        const char *role;
        bool may_exit_idle;     /* exit after max_idle without work; socket activation restarts it */
        bool needs_sockets;     /* fail without passed sockets */
        /* Sets the role up once the loop and sockets exist; negative errno stops the role, and -EINVAL
         * means a configuration error (exit status EX_CONFIG, which the units do not restart). */
        int (*setup)(Daemon *d);
        /* Frees the role's state after the loop ends. */
        void (*done)(Daemon *d);
        /* A reload (SIGHUP, from ExecReload=): builds the role's configuration-derived state from new and
         * swaps it in, or fails (-EINVAL after logging file:line) and leaves the old state as it was. While
         * it runs d->config is still the old configuration; after it succeeds the daemon makes new
         * d->config and drops its reference to the old (config_ref() keeps it for whoever still reads it).
         * NULL: the role reads a new configuration only when it starts again. */
        int (*reload)(Daemon *d, Config *new);
} DaemonSpec;

struct Daemon {
        const DaemonSpec *spec;
        Config *config;
        sd_event *event;
        int n_fds;
        int *fds;
        char **fd_names;
        unsigned busy;                  /* connections or jobs in progress; 0 arms the idle timer */
        sd_event_source *idle_timer;
        uint64_t idle_since_usec;       /* when busy last went to 0 */
        void *userdata;                 /* the role's state */
        const char *config_path;        /* -c, or NULL for the default main.cf: read again on reload */
};

/* Runs the role: returns the process exit status. */
int daemon_main(int argc, char **argv, const DaemonSpec *spec);

/* The passed socket with this FileDescriptorName=, or -ENOENT. */
int daemon_listen_fd(Daemon *d, const char *name);

/* Work started and finished, for the idle-exit timer. */
void daemon_busy_inc(Daemon *d);
void daemon_busy_dec(Daemon *d);

/* Microseconds on CLOCK_MONOTONIC, and on CLOCK_REALTIME. */
uint64_t now_monotonic_usec(void);
uint64_t now_realtime_usec(void);

/* getpid() without a system call after the first (glibc asks the kernel every time); a fork()ed child asks
 * again. */
pid_t getpid_cached(void);
/* n random bytes (getrandom()) from a pool of the process's own, refilled 256 bytes at a time; a fork()ed
 * child fills its own. Unique rather than secret: for names (queue IDs, Maildir files), not for keys. */
void random_bytes(void *p, size_t n);

#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MSEC 1000ULL
