/* qmgr.c: the queue manager: moves new mail into the active queue, hands recipients to the delivery
 * roles, marks them done, defers and retries, and publishes the queue on the system bus.
 *
 * SECURITY: runs as the unprivileged postbus user, the owner of the queue, long-running. It alone moves
 * files between the queue directories and marks recipients done; it writes nothing else. It trusts no queue
 * file: each is validated before use and a bad one is moved to corrupt. Wake-ups come over its private
 * socket from root, cleanup and pickup only (SO_PEERCRED; the socket is 0660 postbus:postbus-to-qmgr). On
 * the system bus reading the queue is open to all users; every change (hold, release, requeue, delete,
 * bounce, flush, pause) needs the caller's effective uid 0, as the bus daemon vouches for it, or polkit's
 * yes for org.postbus.queue.manage (qmgr-polkit.c): the bus policy lets anyone call, qmgr decides. It also
 * writes $queue_directory/state/paused-destinations. Delivery roles get a read-only descriptor of the queue
 * file. */
#include <fcntl.h>

#include "address.h"
#include "log.h"
#include "qmgr.h"
#include "queue-bus.h"

static int qmgr_bus_server_setup(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, QMGR_WAKE_OBJECT, QMGR_WAKE_INTERFACE, qmgr_wake_vtable,
                                        userdata);
}

static int on_scan_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Qmgr *q = userdata;
        int r;

        /* active/ too: a file that could not be loaded before (out of memory, say) is tried again. */
        (void) qmgr_queue_scan(q, QUEUE_ACTIVE);
        (void) qmgr_queue_scan(q, QUEUE_INCOMING);
        (void) qmgr_queue_scan(q, QUEUE_DEFERRED);
        r = sd_event_source_set_time_relative(s, (uint64_t) q->daemon->config->queue_run_delay * USEC_PER_SEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to re-arm the queue scan timer: %m");
        return 0;
}

static int qmgr_setup(Daemon *d) {
        Qmgr *q;
        int r;

        q = calloc(1, sizeof(Qmgr));
        if (!q)
                return log_oom();
        d->userdata = q;
        q->daemon = d;
        for (QueueName i = 0; i < _QUEUE_NAME_MAX; i++)
                q->queue_fds[i] = -EBADF;
        for (size_t i = 0; i < ELEMENTSOF(q->log_fds); i++)
                q->log_fds[i] = -EBADF;

        for (QueueName i = 0; i < _QUEUE_NAME_MAX; i++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", d->config->queue_directory, queue_name_to_string(i)) < 0)
                        return log_oom();
                q->queue_fds[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (q->queue_fds[i] < 0)
                        return log_error_errno(errno, "Failed to open %s: %m", path);
        }
        r = config_split_list(d->config->mydestination, &q->mydestination);
        if (r < 0)
                return log_oom();

        for (size_t i = 0; i < ELEMENTSOF(q->log_fds); i++) {
                static const char *const logs[] = { "bounce", "defer", "trace" };
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", d->config->queue_directory, logs[i]) < 0)
                        return log_oom();
                /* Where bounce keeps its logs: only looked at, to know whether a message has one. */
                q->log_fds[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (q->log_fds[i] < 0)
                        log_warning_errno(errno, "Failed to open %s, ignoring: %m", path);
        }
        if (config_split_list(d->config->defer_transports, &q->defer_transports) < 0)
                return log_oom();
        r = table_list_open(d->config->relocated_maps, &q->relocated_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_error("relocated_maps = %s: bad table list.", d->config->relocated_maps);
                return -EINVAL;
        }
        qmgr_agents_init(q);
        r = qmgr_transports_setup(q);
        if (r < 0)
                return r == -ENOMEM ? log_oom() : -EINVAL;
        r = bus_client_new(d->event, POSTBUS_RUNDIR "/bounce", &q->bounce);
        if (r < 0)
                return log_oom();
        r = bus_client_new(d->event, POSTBUS_RUNDIR "/rewrite", &q->rewrite);
        if (r < 0)
                return log_oom();

        /* What is queued, before anything moves; and which destinations an administrator paused. */
        r = qmgr_index_new(q);
        if (r < 0)
                return log_oom();
        r = qmgr_index_load(q);
        if (r < 0)
                return r;
        (void) qmgr_paused_load(q);

        if (get_user_uid("postbus-cleanup", &q->cleanup_uid) < 0)
                q->cleanup_uid = (uid_t) -1;    /* every wake-up reads its file */
        r = bus_server_serve(d, "qmgr", qmgr_bus_server_setup, q, &q->server);
        if (r == -ENOENT)
                log_warning("No socket named \"qmgr\" was passed: new mail is found by scans only.");
        else if (r < 0)
                return r;

        /* Mail flows without the system bus; only the queue's D-Bus API is missing then. */
        r = qmgr_bus_setup(q);
        if (r < 0) {
                q->system_bus = sd_bus_flush_close_unref(q->system_bus);
                log_warning("Running without org.postbus.Queue1.");
        }

        /* What a previous run left in active first, then what arrived and what is due. */
        (void) qmgr_queue_scan(q, QUEUE_ACTIVE);
        (void) qmgr_queue_scan(q, QUEUE_INCOMING);
        (void) qmgr_queue_scan(q, QUEUE_DEFERRED);

        r = sd_event_add_time_relative(d->event, &q->scan_timer, CLOCK_MONOTONIC,
                                       (uint64_t) d->config->queue_run_delay * USEC_PER_SEC, USEC_PER_SEC / 10,
                                       on_scan_timer, q);
        if (r < 0)
                return log_error_errno(r, "Failed to start the queue scan timer: %m");
        return 0;
}

/* A reload: relocated_maps, mydestination, defer_transports and the transports of master.cf with their limits
 * are taken at once; every other parameter is read where it is used, from the new d->config. Each lookup
 * runs within one callback, so nothing in progress holds the old tables. */
static int qmgr_reload(Daemon *d, Config *new) {
        Qmgr *q = d->userdata;
        _cleanup_strv_free_ char **mydestination = NULL, **defer_transports = NULL;
        TableList *relocated = NULL;
        int r;

        if (config_split_list(new->mydestination, &mydestination) < 0 ||
            config_split_list(new->defer_transports, &defer_transports) < 0)
                return log_oom();
        r = table_list_open(new->relocated_maps, &relocated);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_error("relocated_maps = %s: bad table list.", new->relocated_maps);
                return -EINVAL;
        }
        r = qmgr_transports_reload(q, new, defer_transports);
        if (r < 0) {
                table_list_free(relocated);
                return r;
        }
        strv_free(q->mydestination);
        q->mydestination = TAKE_PTR(mydestination);
        strv_free(q->defer_transports);
        q->defer_transports = TAKE_PTR(defer_transports);
        table_list_free(q->relocated_maps);
        q->relocated_maps = relocated;
        answer_cache_flush(&q->resolve_cache);  /* postbus.target's reload reloads rewrite too */
        return 0;
}

static void qmgr_done(Daemon *d) {
        Qmgr *q = d->userdata;

        if (!q)
                return;
        qmgr_done_sync_flush(q);
        qmgr_sync_stop(q);
        q->done_sync_timer = sd_event_source_disable_unref(q->done_sync_timer);
        q->done_sync = mfree(q->done_sync);
        /* Messages still in active/ are picked up again at the next start. */
        while (q->messages) {
                QmgrMessage *m = q->messages;
                q->messages = m->next;
                qmgr_schedule_message_free(m);
                qmgr_message_routes_free(m);
                queue_envelope_free(m->envelope);
                free(m->action_reason);
                free(m);
        }
        qmgr_agents_free(q);
        qmgr_transports_free(q);
        master_config_free(q->master);
        table_list_free(q->relocated_maps);
        strv_free(q->defer_transports);
        bus_client_free(q->bounce);
        for (size_t i = 0; i < ELEMENTSOF(q->log_fds); i++)
                safe_close(q->log_fds[i]);
        sd_event_source_unref(q->scan_timer);
        sd_event_source_unref(q->changed_timer);
        bus_server_free(q->server);
        bus_client_free(q->rewrite);
        answer_cache_flush(&q->resolve_cache);
        qmgr_auth_queries_free(q);
        sd_bus_flush_close_unref(q->system_bus);
        qmgr_index_free(q);
        strv_free(q->paused);
        qmgr_hosts_free(q);
        strv_free(q->mydestination);
        for (QueueName i = 0; i < _QUEUE_NAME_MAX; i++)
                safe_close(q->queue_fds[i]);
        free(q);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "qmgr",
                .may_exit_idle = false,
                .needs_sockets = false,
                .setup = qmgr_setup,
                .done = qmgr_done,
                .reload = qmgr_reload,
        };
        return daemon_main(argc, argv, &spec);
}
