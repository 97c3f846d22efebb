/* pickup.c: the pickup role: takes the messages sendmail left in the maildrop directory and passes each
 * to cleanup. Started by postbus-pickup.path when the directory holds a file; it works through every
 * file, lingers max_idle for more (inotify), and exits.
 *
 * SECURITY: runs as the unprivileged user postbus-pickup, the maildrop directory's owner (it lists and
 * removes), with the postdrop group so that it can read the files (0440, owned by their users, group
 * postdrop). Nothing in a file is trusted: each must be a
 * regular file with one link, owned by a known user, no larger than message_size_limit allows, and a
 * maildrop file whose every record is of a type allowed where it stands, with attribute names from an
 * allow-list and valid addresses (maildrop_parse()). The submitting user is the file's owner, never what
 * the file says; the sender address is the user's to choose, as with any sendmail. A file that fails a
 * check is removed with a journal record and the others go on. It writes nothing but removals in the
 * maildrop directory; cleanup gets the content alone, in a sealed memory file, over its socket. */
#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>

#include "log.h"
#include "pickup.h"

static int on_scan(sd_event_source *s, void *userdata) {
        pickup_scan(userdata);
        return 0;
}

static int on_inotify(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        Pickup *p = userdata;

        /* While a batch is in progress its end reads the directory again anyway. */
        if (!p->working && event->len > 0 && event->name[0] != '.') {
                pickup_set_working(p, true);
                (void) sd_event_source_set_enabled(p->scan_event, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* receive_override_options (a bad one stops pickup, with its line) and non_smtpd_milters, which no_milters
 * leaves unasked. The options that are cleanup's go with each message (pickup-submit.c). */
static int pickup_settings_load(const Config *c, MilterSettings *ret_milters, unsigned *ret_override) {
        char where[PATH_MAX + 32];
        unsigned override;
        int r;

        r = receive_override_from_config(c, config_where(c, CONFIG_PARAM_receive_override_options, where,
                                                         sizeof where), &override);
        if (r < 0)
                return r;
        r = milter_settings_load(c, override & RECEIVE_OVERRIDE_NO_MILTERS ? "" : c->non_smtpd_milters,
                                 ret_milters);
        if (r < 0)
                return r;
        *ret_override = override;
        return 0;
}

static int pickup_setup(Daemon *d) {
        Pickup *p;
        int r;

        p = calloc(1, sizeof(Pickup));
        if (!p)
                return log_oom();
        d->userdata = p;
        p->daemon = d;
        p->dir_fd = -EBADF;

        if (asprintf(&p->maildrop_path, "%s/maildrop", d->config->queue_directory) < 0) {
                p->maildrop_path = NULL;
                return log_oom();
        }
        p->dir_fd = open(p->maildrop_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (p->dir_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", p->maildrop_path);

        r = bus_client_new(d->event, POSTBUS_RUNDIR "/bounce", &p->bounce);
        if (r < 0)
                return log_oom();
        r = bus_client_new(d->event, POSTBUS_RUNDIR "/cleanup", &p->cleanup);
        if (r < 0)
                return log_oom();
        r = pickup_settings_load(d->config, &p->milters, &p->receive_override);
        if (r < 0)
                return r;

        r = sd_event_add_inotify(d->event, &p->inotify, p->maildrop_path, IN_MOVED_TO | IN_ONLYDIR, on_inotify, p);
        if (r < 0)
                return log_error_errno(r, "Failed to watch %s: %m", p->maildrop_path);
        r = sd_event_add_defer(d->event, &p->scan_event, on_scan, p);
        if (r < 0)
                return log_error_errno(r, "Failed to schedule reading %s: %m", p->maildrop_path);
        r = sd_event_source_set_enabled(p->scan_event, SD_EVENT_ONESHOT);
        if (r < 0)
                return log_error_errno(r, "Failed to schedule reading %s: %m", p->maildrop_path);
        /* The first reading is due: no idle exit before it. */
        pickup_set_working(p, true);
        return 0;
}

void pickup_retired_free(Pickup *p) {
        for (size_t i = 0; i < p->n_retired; i++)
                milter_settings_done(p->retired + i);
        p->retired = mfree(p->retired);
        p->n_retired = 0;
}

/* non_smtpd_milters and their parameters are taken at once: a message the milters are reading keeps the
 * settings it began with (its chain points into them); every other parameter is read where it is used,
 * from the new d->config. */
static int pickup_reload(Daemon *d, Config *new) {
        Pickup *p = d->userdata;
        MilterSettings milters;
        unsigned override;
        int r;

        r = pickup_settings_load(new, &milters, &override);
        if (r < 0)
                return r;
        p->receive_override = override;
        if (p->n_in_flight == 0)
                milter_settings_done(&p->milters);
        else {
                MilterSettings *l = realloc(p->retired, (p->n_retired + 1) * sizeof(MilterSettings));
                if (!l) {
                        milter_settings_done(&milters);
                        return log_oom();
                }
                p->retired = l;
                p->retired[p->n_retired++] = p->milters;
        }
        p->milters = milters;
        return 0;
}

static void pickup_done(Daemon *d) {
        Pickup *p = d->userdata;

        if (!p)
                return;
        /* Files whose submission is in flight stay in the maildrop: the next start takes them again. */
        while (p->in_flight) {
                PickupMessage *m = p->in_flight;
                p->in_flight = m->next;
                pickup_message_free(m);
        }
        sd_bus_slot_unref(p->ping);
        sd_event_source_disable_unref(p->inotify);
        sd_event_source_disable_unref(p->scan_event);
        sd_event_source_disable_unref(p->retry_timer);
        bus_client_free(p->cleanup);
        milter_settings_done(&p->milters);
        pickup_retired_free(p);
        bus_client_free(p->bounce);
        strv_free(p->names);
        safe_close(p->dir_fd);
        free(p->maildrop_path);
        free(p);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "pickup",
                .may_exit_idle = true,
                .needs_sockets = false,
                .setup = pickup_setup,
                .done = pickup_done,
                .reload = pickup_reload,
        };
        return daemon_main(argc, argv, &spec);
}
