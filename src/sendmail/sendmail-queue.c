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
#include "table.h"

#define QUEUE_BUS_NAME "org.postbus.Queue1"
#define QUEUE_OBJECT "/org/postbus/Queue1"
#define QUEUE_INTERFACE "org.postbus.Queue1"

/* Postfix's mailq table: ID with a status mark ('*' active, '!' on hold, '#' corrupt), size, arrival,
 * sender; the recipients below, under the sender. */
void sendmail_queue_print(FILE *f, const SendmailQueueEntry *entries, size_t n) {
        uint64_t kbytes = 0;

        if (n == 0) {
                fputs("Mail queue is empty\n", f);
                return;
        }
        fprintf(f, "%-*s %8s %-20s %s\n", QUEUE_ID_LEN + 1, "-Queue ID-", "--Size--", "----Arrival Time----",
                "-Sender/Recipient-------");
        for (size_t i = 0; i < n; i++) {
                const SendmailQueueEntry *e = &entries[i];
                char id[QUEUE_ID_SIZE + 1], when[32] = "";
                time_t t = (time_t) (e->arrival_usec / 1000000ULL);
                struct tm tm;
                char mark = streq(e->queue, "active") ? '*' : streq(e->queue, "hold") ? '!'
                          : streq(e->queue, "corrupt") ? '#' : ' ';

                (void) snprintf(id, sizeof id, "%s%c", e->id, mark);
                if (localtime_r(&t, &tm))
                        (void) strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
                fprintf(f, "%-*s %8" PRIu64 " %-20s %s\n", QUEUE_ID_LEN + 1, id, e->size, when,
                        isempty(e->sender) ? "MAILER-DAEMON" : e->sender);
                for (char **r = e->recipients; r && *r; r++)
                        fprintf(f, "%*s%s\n", QUEUE_ID_LEN + 1 + 1 + 8 + 1 + 20 + 1, "", *r);
                fputc('\n', f);
                kbytes += (e->size + 1023) / 1024;
        }
        fprintf(f, "-- %" PRIu64 " Kbytes in %zu Request%s.\n", kbytes, n, n == 1 ? "" : "s");
}

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

static void entries_free(SendmailQueueEntry *entries, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(entries[i].recipients);    /* the strings belong to the reply */
        free(entries);
}

int sendmail_list_queue(const Config *c, const SendmailOptions *o) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        SendmailQueueEntry *entries = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_error_errno(r, "Cannot connect to the system bus: %m");
                return EX_UNAVAILABLE;
        }
        r = sd_bus_call_method(bus, QUEUE_BUS_NAME, QUEUE_OBJECT, QUEUE_INTERFACE, "ListMessages", &error, &reply,
                               "s", "");
        if (r < 0)
                return bus_failed(&error, r, "list the queue");

        r = sd_bus_message_enter_container(reply, 'a', "(ssttsas)");
        while (r >= 0) {
                SendmailQueueEntry e = {};
                size_t nr = 0;

                r = sd_bus_message_enter_container(reply, 'r', "ssttsas");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "sstts", &e.id, &e.queue, &e.arrival_usec, &e.size, &e.sender);
                if (r < 0)
                        break;
                r = sd_bus_message_enter_container(reply, 'a', "s");
                while (r >= 0) {
                        const char *rcpt;
                        r = sd_bus_message_read_basic(reply, 's', &rcpt);
                        if (r <= 0)
                                break;
                        char **l = realloc(e.recipients, (nr + 2) * sizeof(char *));
                        if (!l) {
                                r = -ENOMEM;
                                break;
                        }
                        e.recipients = l;
                        l[nr++] = (char *) rcpt;
                        l[nr] = NULL;
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                SendmailQueueEntry *l = r >= 0 ? realloc(entries, (n + 1) * sizeof(SendmailQueueEntry)) : NULL;
                if (!l) {
                        free(e.recipients);
                        r = r < 0 ? r : -ENOMEM;
                        break;
                }
                entries = l;
                entries[n++] = e;
        }
        if (r < 0) {
                entries_free(entries, n);
                log_error_errno(r, "Cannot read the queue manager's answer: %m");
                return EX_PROTOCOL;
        }
        sendmail_queue_print(stdout, entries, n);
        entries_free(entries, n);
        return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
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
        r = sd_bus_call_method(bus, QUEUE_BUS_NAME, QUEUE_OBJECT, QUEUE_INTERFACE, "FlushQueue", &error, NULL, NULL);
        if (r < 0)
                return bus_failed(&error, r, "flush the queue");
        if (o->verbose)
                fputs("sendmail: the queue manager is retrying deferred mail now\n", stderr);
        return EX_OK;
}

/* "hash:/etc/aliases" -> "/etc/aliases", through table_open() so that the spec is checked as every role
 * checks it. */
static int alias_source(const char *spec, char **ret) {
        _cleanup_(table_freep) Table *t = NULL;
        const char *db;
        int r;

        r = table_open(spec, &t);
        if (r < 0)
                return r;
        db = table_db_path(t);
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
