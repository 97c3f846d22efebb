/* daemon.c: the common daemon skeleton. */
#include <getopt.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon.h"
#include "log.h"

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

int daemon_listen_fd(Daemon *d, const char *name) {
        for (int i = 0; i < d->n_fds; i++)
                if (d->fd_names && d->fd_names[i] && streq(d->fd_names[i], name))
                        return d->fds[i];
        return -ENOENT;
}

static int on_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        log_debug("Idle for %" PRIi64 "s, exiting.", d->config->max_idle);
        return sd_event_exit(d->event, 0);
}

static void idle_timer_arm(Daemon *d) {
        int r;

        if (!d->spec->may_exit_idle || !d->event)
                return;
        uint64_t when = now_monotonic_usec() + (uint64_t) d->config->max_idle * USEC_PER_SEC;
        if (d->idle_timer) {
                (void) sd_event_source_set_time(d->idle_timer, when);
                (void) sd_event_source_set_enabled(d->idle_timer, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_add_time(d->event, &d->idle_timer, CLOCK_MONOTONIC, when, USEC_PER_SEC, on_idle, d);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the idle timer, ignoring: %m");
}

void daemon_busy_inc(Daemon *d) {
        if (d->busy++ == 0 && d->idle_timer)
                (void) sd_event_source_set_enabled(d->idle_timer, SD_EVENT_OFF);
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

static int parse_argv(int argc, char **argv, const char **ret_config) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        *ret_config = NULL;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        *ret_config = optarg;
                        break;
                case 'h':
                        printf("%s [-c MAIN.CF]\n\nThe postbus %s role; started by systemd.\n",
                               program_invocation_short_name, log_role());
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("Unexpected argument: %s", argv[optind]);
                return -EINVAL;
        }
        return 1;
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
        if (r <= 0)
                return r < 0 ? EX_USAGE : EXIT_SUCCESS;

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
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_error_errno(errno, "Failed to block signals: %m");
                goto finish;
        }

        r = sd_event_default(&d.event);
        if (r < 0) {
                log_error_errno(r, "Failed to allocate the event loop: %m");
                goto finish;
        }
        if (sd_event_add_signal(d.event, NULL, SIGTERM, on_exit_signal, &d) < 0 ||
            sd_event_add_signal(d.event, NULL, SIGINT, on_exit_signal, &d) < 0) {
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
