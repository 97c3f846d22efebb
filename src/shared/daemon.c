/* daemon.c: the common daemon skeleton, run by every role: start-up, signals (SIGHUP reloads the
 * configuration), the watchdog, passed sockets, and exit when idle. */
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon.h"
#include "log.h"
#include "master-cf.h"

uint64_t now_monotonic_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* What a process keeps of its own and a fork()ed child must not take over: its ID, and random bytes. */
static pid_t pid_cached;
static struct {
        uint8_t buf[256];
        size_t left;                    /* unused, at the end of buf */
} random_pool;

static void forget_in_child(void) {
        pid_cached = 0;
        random_pool.left = 0;
}

static bool atfork_registered(void) {
        static bool registered;

        if (!registered)
                registered = pthread_atfork(NULL, NULL, forget_in_child) == 0;
        return registered;
}

pid_t getpid_cached(void) {
        if (pid_cached != 0)
                return pid_cached;
        if (!atfork_registered())
                return getpid();        /* not kept: a child would not know to forget it */
        return pid_cached = getpid();
}

void random_bytes(void *p, size_t n) {
        uint8_t *out = p;

        while (n > 0) {
                if (random_pool.left == 0) {
                        ssize_t k = atfork_registered() ?
                                getrandom(random_pool.buf, sizeof random_pool.buf, GRND_NONBLOCK) : -1;
                        if (k != (ssize_t) sizeof random_pool.buf) {
                                /* No entropy yet (early boot): the time and the process, as unique as they go. */
                                uint64_t x = now_realtime_usec() ^ ((uint64_t) getpid() << 40) ^ (uintptr_t) p;
                                for (size_t i = 0; i < n; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
                                        out[i] = (uint8_t) (x >> 56);
                                return;
                        }
                        random_pool.left = sizeof random_pool.buf;
                }
                size_t take = MIN(n, random_pool.left);
                memcpy(out, random_pool.buf + sizeof random_pool.buf - random_pool.left, take);
                random_pool.left -= take;
                out += take;
                n -= take;
        }
}

int daemon_listen_fd(Daemon *d, const char *name) {
        for (int i = 0; i < d->n_fds; i++)
                if (d->fd_names && d->fd_names[i] && streq(d->fd_names[i], name))
                        return d->fds[i];
        return -ENOENT;
}

static int on_idle(sd_event_source *s, uint64_t usec, void *userdata);

/* The idle timer is armed once and left alone while work comes and goes: changing it at every job would cost
 * a timerfd_settime() or two per message. When it fires, it exits only after max_idle without work, and
 * otherwise waits until then. */
static void idle_timer_set(Daemon *d, uint64_t when) {
        int r;

        if (d->idle_timer) {
                (void) sd_event_source_set_time(d->idle_timer, when);
                (void) sd_event_source_set_enabled(d->idle_timer, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_add_time(d->event, &d->idle_timer, CLOCK_MONOTONIC, when, USEC_PER_SEC, on_idle, d);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the idle timer, ignoring: %m");
}

static int on_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        uint64_t max_idle = (uint64_t) d->config->max_idle * USEC_PER_SEC, now = now_monotonic_usec();

        if (d->busy > 0)
                idle_timer_set(d, now + max_idle);
        else if (now < d->idle_since_usec + max_idle)
                idle_timer_set(d, d->idle_since_usec + max_idle);
        else {
                log_debug("Idle for %" PRIi64 "s, exiting.", d->config->max_idle);
                return sd_event_exit(d->event, 0);
        }
        return 0;
}

static void idle_timer_arm(Daemon *d) {
        int enabled = SD_EVENT_OFF;

        if (!d->spec->may_exit_idle || !d->event)
                return;
        d->idle_since_usec = now_monotonic_usec();
        if (d->idle_timer && sd_event_source_get_enabled(d->idle_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        idle_timer_set(d, d->idle_since_usec + (uint64_t) d->config->max_idle * USEC_PER_SEC);
}

void daemon_busy_inc(Daemon *d) {
        d->busy++;
}

void daemon_busy_dec(Daemon *d) {
        if (d->busy > 0 && --d->busy == 0)
                idle_timer_arm(d);
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;

        log_debug("Received signal %u, exiting.", si->ssi_signo);
        return sd_event_exit(d->event, 0);
}

/* main.cf and master.cf beside it, as the role would read them at start: 0, or -EINVAL after logging
 * "file:line: ..." (ExecReload= runs this first, so that a bad configuration fails the reload). */
static int check_config(const char *path) {
        _cleanup_(config_freep) Config *c = NULL;
        MasterConfig *m = NULL;
        int r;

        r = config_load(path, &c);
        if (r < 0)
                return log_error_errno(EINVAL, "The configuration is not valid.");
        r = master_config_load_beside(c->path, &m);
        if (r < 0)
                return log_error_errno(EINVAL, "The configuration is not valid (its master.cf).");
        master_config_free(m);
        return 0;
}

/* > 0: run; 0: exit with success; -ENOEXEC: --check found an error (EX_CONFIG); other < 0: a usage error. */
static int parse_argv(int argc, char **argv, const char **ret_config) {
        enum { ARG_CHECK = 0x100 };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "check", no_argument, NULL, ARG_CHECK },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        bool check = false;
        int c;

        *ret_config = NULL;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        *ret_config = optarg;
                        break;
                case ARG_CHECK:
                        check = true;
                        break;
                case 'h':
                        printf("%s [-c MAIN.CF] [--check]\n\nThe postbus %s role; started by systemd.\n"
                               "  --check  check main.cf and master.cf as this role reads them, and exit\n",
                               program_invocation_short_name, log_role());
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("Unexpected argument: %s", argv[optind]);
                return -EINVAL;
        }
        if (check)
                return check_config(*ret_config) < 0 ? -ENOEXEC : 0;
        return 1;
}

/* SIGHUP (ExecReload=, after --check passed): main.cf is read again and handed to the role's reload hook.
 * Any error keeps the old configuration and the old state; the role serves on either way. */
static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;
        _cleanup_(config_freep) Config *new = NULL;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nSTATUS=Reloading the configuration.\nMONOTONIC_USEC=%" PRIu64,
                          now_monotonic_usec());
        r = config_load(d->config_path, &new);
        if (r < 0)
                log_error("Reload failed: the new configuration is not valid; keeping the old one.");
        else if (d->spec->reload) {
                r = d->spec->reload(d, new);
                if (r < 0)
                        log_error("Reload failed: the role cannot use the new configuration; keeping the old one.");
                else {
                        config_free(d->config);
                        d->config = TAKE_PTR(new);
                        log_info("Reloaded the configuration.");
                }
        } else
                /* Exiting at once would race with a call a caller has just sent on its kept connection
                 * (a temporary failure for that message): the role keeps serving, and reads the new
                 * configuration when it next starts (after max_idle without work, or a restart). */
                log_notice("Reload: this role reads a new configuration only when it starts again, ignoring.");
        (void) sd_notifyf(false, "READY=1\nSTATUS=Running.\nMONOTONIC_USEC=%" PRIu64, now_monotonic_usec());
        return 0;
}

/* A role that cannot run its configuration stops with EX_CONFIG, which systemd does not restart. Its socket
 * would start it again at once for every connection still waiting there, in a loop for as long as the
 * client waits (the services have no start limit, so that crashes never leave a role failed): the waiting
 * connections are accepted and closed first, so that their clients hear at once that nobody serves them.
 * Each later connection then costs one start, until the configuration is fixed. */
static void refuse_waiting_connections(int n) {
        for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
                int flags = fcntl(fd, F_GETFL);
                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0 || flags < 0 ||
                    fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                        continue;
                for (unsigned k = 0; k < 4096; k++) {
                        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        if (c < 0)
                                break;
                        safe_close(c);
                }
        }
}

int daemon_main(int argc, char **argv, const DaemonSpec *spec) {
        Daemon d = { .spec = spec };
        const char *config_path;
        sigset_t mask;
        int r, status = EXIT_FAILURE;

        log_setup(spec->role);
        r = parse_argv(argc, argv, &config_path);
        if (r == -ENOEXEC)
                return EX_CONFIG;
        if (r <= 0)
                return r < 0 ? EX_USAGE : EXIT_SUCCESS;
        d.config_path = config_path;

        r = config_load(config_path, &d.config);
        if (r < 0) {
                log_error("Stopping: the configuration is not valid.");
                refuse_waiting_connections(MAX(sd_listen_fds(false), 0));
                return EX_CONFIG;
        }

        (void) signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_error_errno(errno, "Failed to block signals: %m");
                goto finish;
        }

        /* Not sd_event_default(): the default loop's sd_event_prepare() asks gettid() on every turn, a system
         * call each time, to check the thread; every loop here is attached explicitly. */
        r = sd_event_new(&d.event);
        if (r < 0) {
                log_error_errno(r, "Failed to allocate the event loop: %m");
                goto finish;
        }
        if (sd_event_add_signal(d.event, NULL, SIGTERM, on_exit_signal, &d) < 0 ||
            sd_event_add_signal(d.event, NULL, SIGINT, on_exit_signal, &d) < 0 ||
            sd_event_add_signal(d.event, NULL, SIGHUP, on_reload_signal, &d) < 0) {
                log_error("Failed to watch signals.");
                goto finish;
        }
        (void) sd_event_set_watchdog(d.event, true);

        r = sd_listen_fds_with_names(true, &d.fd_names);
        if (r < 0) {
                log_error_errno(r, "Failed to get the passed sockets: %m");
                goto finish;
        }
        d.n_fds = r;
        if (d.n_fds == 0 && spec->needs_sockets) {
                log_error("No sockets were passed; start this role through its .socket unit.");
                goto finish;
        }
        d.fds = calloc((size_t) MAX(d.n_fds, 1), sizeof(int));
        if (!d.fds) {
                log_oom();
                goto finish;
        }
        for (int i = 0; i < d.n_fds; i++)
                d.fds[i] = SD_LISTEN_FDS_START + i;

        r = spec->setup(&d);
        if (r < 0) {
                if (r == -EINVAL) {
                        status = EX_CONFIG;
                        refuse_waiting_connections(d.n_fds);
                }
                goto finish;
        }
        if (d.busy == 0)
                idle_timer_arm(&d);

        (void) sd_notify(false, "READY=1\nSTATUS=Running.");
        r = sd_event_loop(d.event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                goto finish;
        }
        status = r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
finish:
        if (spec->done)
                spec->done(&d);
        sd_event_source_unref(d.idle_timer);
        sd_event_unref(d.event);
        for (int i = 0; i < d.n_fds; i++)
                safe_close(d.fds[i]);
        free(d.fds);
        strv_free(d.fd_names);
        config_free(d.config);
        return status;
}
