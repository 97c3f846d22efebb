/* sendmail-queue.c: mailq (-bp) and sendmail -q, thin clients of org.postbus.Queue1 on the system bus, and
 * newaliases (-bi), which compiles alias_database's text files into their GDBM databases. */
#include <inttypes.h>
#include <stdio.h>
#include <sysexits.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-util.h"
#include "log.h"
#include "sendmail.h"
#include "src/postbusctl/queue-client.h"
#include "table.h"

#include "queue-bus.h"

static int bus_failed(const sd_bus_error *error, int r, const char *what) {
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                   SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT)) {
                log_error("Cannot %s: the queue manager is not running (%s).", what, error->message);
                return EX_UNAVAILABLE;
        }
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_ACCESS_DENIED, POSTBUS_ERROR_ACCESS_DENIED)) {
                log_error("Cannot %s: permission denied (%s).", what, error->message);
                return EX_NOPERM;
        }
        log_error_errno(r, "Cannot %s: %s", what, error && error->message ? error->message : strerror(-r));
        return EX_UNAVAILABLE;
}

/* mailq: Postfix's postqueue -p table, deferral reasons included (queue-client.c). */
int sendmail_list_queue(const Config *c, const SendmailOptions *o) {
        return queue_client_print_queue(false);
}

int sendmail_flush_queue(const Config *c, const SendmailOptions *o) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (getuid() != 0) {
                log_error("Only root may flush the mail queue.");
                return EX_NOPERM;
        }
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_error_errno(r, "Cannot connect to the system bus: %m");
                return EX_UNAVAILABLE;
        }
        r = sd_bus_call_method(bus, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE, "FlushQueue", &error, NULL, NULL);
        if (r < 0)
                return bus_failed(&error, r, "flush the queue");
        if (o->verbose)
                fputs("sendmail: the queue manager is retrying deferred mail now\n", stderr);
        return EX_OK;
}

/* "hash:/etc/aliases" -> "/etc/aliases", through table_open() so that the spec is checked as every role
 * checks it; NULL for a table type that has no database. */
static int alias_source(const char *spec, char **ret) {
        _cleanup_(table_freep) Table *t = NULL;
        const char *db;
        int r;

        r = table_open(spec, &t);
        if (r < 0)
                return r;
        db = table_db_path(t);
        if (!db) {
                /* regexp:, texthash:, ...: read as they are, nothing to build (Postfix's newaliases skips
                 * them too). */
                *ret = NULL;
                return 0;
        }
        size_t n = strlen(db);
        if (n <= STRLEN(TABLE_DB_SUFFIX) || !streq(db + n - STRLEN(TABLE_DB_SUFFIX), TABLE_DB_SUFFIX))
                return -EINVAL;
        *ret = strndup(db, n - STRLEN(TABLE_DB_SUFFIX));
        return *ret ? 0 : -ENOMEM;
}

int sendmail_rebuild_aliases(const Config *c, const SendmailOptions *o) {
        _cleanup_strv_free_ char **specs = NULL;
        int r, status = EX_OK;

        if (getuid() != 0) {
                log_error("Only root may rebuild the aliases database.");
                return EX_NOPERM;
        }
        /* As Postfix: newaliases builds alias_database, which is usually, not always, what alias_maps reads. */
        r = config_split_list(c->alias_database, &specs);
        if (r < 0) {
                log_oom();
                return EX_OSERR;
        }
        for (char **s = specs; s && *s; s++) {
                _cleanup_free_ char *source = NULL;

                r = alias_source(*s, &source);
                if (r < 0) {
                        log_error_errno(r, "alias_database: cannot rebuild %s: %m", *s);
                        status = EX_CONFIG;
                        continue;
                }
                if (!source)
                        continue;
                r = table_build(source, TABLE_FORMAT_ALIASES);
                if (r < 0) {
                        /* table_build() said which file and line. */
                        status = r == -ENOENT ? EX_NOINPUT : r == -EACCES || r == -EPERM ? EX_NOPERM
                               : r == -EINVAL ? EX_DATAERR : EX_IOERR;
                        continue;
                }
                if (o->verbose)
                        fprintf(stderr, "newaliases: %s: %d aliases\n", source, r);
        }
        return status;
}
