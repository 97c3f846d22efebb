/* cleanup.c: the cleanup role: the last step of receiving. Takes a message (a file descriptor plus its
 * envelope) from smtpd, adds the headers it lacks, writes it durably into the incoming queue and tells
 * qmgr its queue ID.
 *
 * SECURITY: runs as the unprivileged postbus user. It accepts connections only from root and postbus
 * (SO_PEERCRED at accept; the socket is 0660 postbus:postbus). It trusts neither the envelope nor the
 * content: addresses are checked, counts and sizes bounded, the content only copied, never interpreted
 * beyond the header names it looks for. It writes only below queue_directory/incoming, and a file there
 * becomes visible under its queue ID only after it and its directory are synced. */
#include <dirent.h>
#include <fcntl.h>

#include "cleanup.h"
#include "log.h"
#include "queue-file.h"

static int cleanup_bus_setup(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, "/org/postbus/Cleanup1", "org.postbus.Cleanup1", cleanup_vtable,
                                        userdata);
}

/* Leftovers of writes that were interrupted: never acknowledged, so never promised to anyone. */
static void remove_stale_temporary_files(Cleanup *c) {
        int fd = fcntl(c->incoming_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!d) {
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n == QUEUE_ID_LEN + 4 && streq(de->d_name + QUEUE_ID_LEN, ".tmp") &&
                    unlinkat(c->incoming_fd, de->d_name, 0) >= 0)
                        log_info("Removed the unfinished queue file incoming/%s.", de->d_name);
        }
        closedir(d);
}

static int cleanup_setup(Daemon *d) {
        Cleanup *c;
        _cleanup_free_ char *incoming = NULL, *qmgr_path = NULL;
        uid_t uid;
        int fd, r;

        fd = daemon_listen_fd(d, "cleanup");
        if (fd < 0)
                return log_error_errno(fd, "No socket named \"cleanup\" was passed.");

        c = calloc(1, sizeof(Cleanup));
        if (!c)
                return log_oom();
        d->userdata = c;
        c->daemon = d;
        c->incoming_fd = -EBADF;

        if (asprintf(&incoming, "%s/incoming", d->config->queue_directory) < 0)
                return log_oom();
        c->incoming_fd = open(incoming, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c->incoming_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", incoming);
        remove_stale_temporary_files(c);

        r = bus_server_new(d, fd, cleanup_bus_setup, c, &c->server);
        if (r < 0)
                return log_error_errno(r, "Failed to serve the cleanup socket: %m");
        if (get_user_uid("postbus", &uid) >= 0)
                bus_server_allow_uid(c->server, uid);

        r = bus_client_new(d->event, POSTBUS_RUNDIR "/qmgr", &c->qmgr);
        if (r < 0)
                return log_oom();
        return 0;
}

static void cleanup_done(Daemon *d) {
        Cleanup *c = d->userdata;

        if (!c)
                return;
        bus_server_free(c->server);
        bus_client_free(c->qmgr);
        safe_close(c->incoming_fd);
        free(c);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "cleanup",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = cleanup_setup,
                .done = cleanup_done,
        };
        return daemon_main(argc, argv, &spec);
}
