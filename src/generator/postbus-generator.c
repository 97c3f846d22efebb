/* postbus-generator.c: the systemd generator that turns master.cf's inet smtpd lines into sockets, run by
 * systemd at boot and at each daemon-reload: an address on the smtp, submission or smtps line becomes the
 * ListenStream= of that service's socket (a drop-in), and any other inet smtpd line (a re-injection port)
 * gets a socket unit of its own, wanted by postbus.target, whose descriptors go to postbus-smtpd.service
 * under the name smtpd reads the line's -o options by.
 *
 * SECURITY: runs as root before most of the system, so it does the least: it reads master.cf with the
 * bounded parser the roles use and writes unit files into the directory systemd gives it, nowhere else. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "master-cf.h"
#include "postbus-config.h"

static const char *const builtin_units[][2] = {
        { "smtp", "postbus-smtpd.socket" },
        { "submission", "postbus-submission.socket" },
        { "smtps", "postbus-smtps.socket" },
};

/* Opens dir/name for appending, creating dir/name's directory if needed. */
static FILE *open_unit(const char *dir, const char *sub, const char *name, const char *mode) {
        char path[4096];

        if (sub) {
                (void) snprintf(path, sizeof path, "%s/%s", dir, sub);
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return NULL;
                (void) snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
        } else
                (void) snprintf(path, sizeof path, "%s/%s", dir, name);
        return fopen(path, mode);
}

static int write_builtin(const char *dir, const char *unit, const char *listen, bool *reset) {
        char sub[256];
        FILE *f;

        (void) snprintf(sub, sizeof sub, "%s.d", unit);
        f = open_unit(dir, sub, "50-master-cf.conf", "ae");
        if (!f)
                return log_error_errno(errno, "Failed to write a drop-in for %s: %m", unit);
        /* The unit's own address goes, master.cf's come in its place. */
        if (!*reset)
                fputs("[Socket]\nListenStream=\n", f);
        fprintf(f, "ListenStream=%s\n", listen);
        *reset = true;
        return fclose(f) == 0 ? 0 : -errno;
}

static int write_other(const char *dir, const MasterService *s, const char *name, const char *listen) {
        char unit[256], target[300], link[4096];
        FILE *f;

        (void) snprintf(unit, sizeof unit, "postbus-%s.socket", name);
        f = open_unit(dir, NULL, unit, "we");
        if (!f)
                return log_error_errno(errno, "Failed to write %s: %m", unit);
        fprintf(f, "# From %s:%u (postbus-generator)\n[Unit]\nDescription=postbus SMTP server socket (%s)\n"
                   "PartOf=postbus.target\n\n[Socket]\nListenStream=%s\nFileDescriptorName=%s\n"
                   "Service=postbus-smtpd.service\nAccept=no\nBacklog=256\n",
                POSTBUS_CONFDIR "/master.cf", s->line, s->name, listen, name);
        if (fclose(f) != 0)
                return log_error_errno(errno, "Failed to write %s: %m", unit);

        /* smtpd gets this socket's descriptors too, and postbus.target starts it. */
        f = open_unit(dir, "postbus-smtpd.service.d", "50-master-cf.conf", "ae");
        if (!f)
                return log_error_errno(errno, "Failed to write a drop-in for postbus-smtpd.service: %m");
        fprintf(f, "[Unit]\nAfter=%s\n[Service]\nSockets=%s\n", unit, unit);
        if (fclose(f) != 0)
                return -errno;
        (void) snprintf(link, sizeof link, "%s/postbus.target.wants", dir);
        if (mkdir(link, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", link);
        (void) snprintf(link, sizeof link, "%s/postbus.target.wants/%s", dir, unit);
        (void) snprintf(target, sizeof target, "../%s", unit);
        if (symlink(target, link) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to link %s: %m", link);
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_(master_config_freep) MasterConfig *m = NULL;
        bool reset[3] = {};
        int r;

        if (argc != 2 && argc != 4) {
                log_error("Usage: %s NORMAL-DIR [EARLY-DIR LATE-DIR]", argv[0]);
                return 1;
        }
        r = master_config_load(POSTBUS_CONFDIR "/master.cf", &m);
        if (r < 0)
                return 0;       /* the roles say what is wrong with it; the units stay as installed */
        for (size_t i = 0; i < m->n_services; i++) {
                const MasterService *s = m->services + i;
                char name[MASTER_SOCKET_NAME_MAX], listen[MASTER_LISTEN_MAX];
                bool builtin = false;

                r = master_service_smtpd_socket(s, name, listen);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        log_warning("%s:%u: %s: not a port to listen on, ignoring", m->path, s->line, s->name);
                        continue;
                }
                for (size_t k = 0; k < ELEMENTSOF(builtin_units); k++)
                        if (streq(name, builtin_units[k][0])) {
                                builtin = true;
                                if (listen[0])
                                        (void) write_builtin(argv[1], builtin_units[k][1], listen, &reset[k]);
                        }
                if (!builtin)
                        (void) write_other(argv[1], s, name, listen);
        }
        return 0;
}
