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

/* mailq: Postfix's postqueue -p table, deferral reasons included (queue-client.c). */
int sendmail_list_queue(const Config *c, const SendmailOptions *o) {
        return queue_client_print_queue(false);
}

/* -q: every deferred message now; -qRsite and -qSsite: those for one destination (qmgr's
 * FlushDestination, as postqueue -s site). */
int sendmail_flush_queue(const Config *c, const SendmailOptions *o) {
        int r;

        if (getuid() != 0) {
                log_error("Only root may flush the mail queue.");
                return EX_NOPERM;
        }
        r = queue_client_flush(o->flush_site);
        if (r == EX_OK && o->verbose)
                fprintf(stderr, "sendmail: the queue manager is retrying %s now\n",
                        o->flush_site ? "the destination's mail" : "deferred mail");
        return r;
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
