/* bounce.c: the bounce role: keeps the per-message bounce, defer and trace logs next to the queue, and
 * writes the delivery status notifications (failures, delay warnings, successes, and the postmaster's
 * copies) as RFC 3464 reports that it submits to cleanup as new mail, for qmgr and pickup over
 * org.postbus.Bounce1.
 *
 * SECURITY: runs as the unprivileged user postbus-bounce, with no network. It accepts connections only from
 * root, qmgr (postbus) and pickup (SO_PEERCRED at accept; the socket is 0660
 * postbus-bounce:postbus-to-bounce). Queue IDs are checked before any path is built from them; records are
 * checked (addresses, DSN values, status codes, bounded texts without control characters) before they are
 * written, and again when read back. It reads queue files and message content only through descriptors its
 * callers pass (checked: regular, sealed or read-only), never by path, and returns at most
 * bounce_size_limit bytes of a message. It writes only below queue_directory/bounce, defer and trace; every
 * report leaves through cleanup like any other mail, with the null sender, or double_bounce_sender for the
 * postmaster's, so a report that fails cannot loop. */
#include <fcntl.h>
#include <limits.h>

#include "agent-bus.h"
#include "bounce.h"
#include "log.h"

static int bounce_bus_setup(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, BOUNCE_OBJECT_PATH, BOUNCE_INTERFACE, bounce_vtable, userdata);
}

static int bounce_setup(Daemon *d) {
        _cleanup_free_ char *bad = NULL;
        Bounce *b;
        int fd, r;

        fd = daemon_listen_fd(d, "bounce");
        if (fd < 0)
                return log_error_errno(fd, "No socket named \"bounce\" was passed.");

        b = calloc(1, sizeof(Bounce));
        if (!b)
                return log_oom();
        d->userdata = b;
        b->daemon = d;
        for (BounceLogKind k = 0; k < _BOUNCE_LOG_KIND_MAX; k++)
                b->log_fds[k] = -EBADF;

        r = bounce_notify_classes_parse(d->config->notify_classes, &b->notify_classes, &bad);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                char where[PATH_MAX + 32];
                log_error("%s: notify_classes: unknown class \"%s\".",
                          config_where(d->config, CONFIG_PARAM_notify_classes, where, sizeof where), bad);
                return -EINVAL;
        }

        for (BounceLogKind k = 0; k < _BOUNCE_LOG_KIND_MAX; k++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", d->config->queue_directory, bounce_log_kind_to_string(k)) < 0)
                        return log_oom();
                b->log_fds[k] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (b->log_fds[k] < 0)
                        return log_error_errno(errno, "Failed to open %s: %m", path);
        }

        r = bus_client_new(d->event, POSTBUS_RUNDIR "/cleanup", &b->cleanup);
        if (r < 0)
                return log_oom();
        r = bus_server_new(d, fd, bounce_bus_setup, b, &b->server);
        if (r < 0)
                return log_error_errno(r, "Failed to serve the bounce socket: %m");
        /* qmgr, and pickup for the mail cleanup refused. */
        if (bus_server_allow_callers(b->server, "bounce") < 0)
                return log_oom();
        return 0;
}

static void bounce_done(Daemon *d) {
        Bounce *b = d->userdata;

        if (!b)
                return;
        /* Calls not answered yet have an unknown outcome for their callers, who repeat them. */
        while (b->jobs)
                bounce_job_free(b->jobs);
        bounce_parked_free_all(b);
        bus_server_free(b->server);
        bus_client_free(b->cleanup);
        for (BounceLogKind k = 0; k < _BOUNCE_LOG_KIND_MAX; k++)
                safe_close(b->log_fds[k]);
        free(b);
}

/* notify_classes is taken at once; every other parameter is read where a notice is written, from the new
 * d->config. */
static int bounce_reload(Daemon *d, Config *new) {
        _cleanup_free_ char *bad = NULL;
        Bounce *b = d->userdata;
        unsigned classes;
        int r;

        r = bounce_notify_classes_parse(new->notify_classes, &classes, &bad);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                char where[PATH_MAX + 32];
                log_error("%s: notify_classes: unknown class \"%s\".",
                          config_where(new, CONFIG_PARAM_notify_classes, where, sizeof where), bad);
                return -EINVAL;
        }
        b->notify_classes = classes;
        return 0;
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "bounce",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = bounce_setup,
                .done = bounce_done,
                .reload = bounce_reload,
        };
        return daemon_main(argc, argv, &spec);
}
