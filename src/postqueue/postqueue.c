/* postqueue.c: Postfix's postqueue command for postbus: -p (the mailq table), -j (JSON lines with Postfix's
 * field names), -f (flush), -s site (flush one destination) and -i id (one message now), as a thin client
 * of qmgr's org.postbus.Queue1 on the system bus.
 *
 * SECURITY: runs as whoever calls it, with no privilege of its own. Listing is open to every user, as
 * qmgr serves it; flushing is qmgr's to allow (root, or polkit's org.postbus.queue.manage). -c is accepted
 * for Postfix's scripts and ignored: postqueue reads no configuration. */
#include <getopt.h>
#include <sysexits.h>

#include "log.h"
#include "queue-bus.h"
#include "queue-client.h"
#include "queue-id.h"

typedef enum PostqueueMode {
        POSTQUEUE_NONE,
        POSTQUEUE_LIST,
        POSTQUEUE_JSON,
        POSTQUEUE_FLUSH,
        POSTQUEUE_SITE,
        POSTQUEUE_ID,
} PostqueueMode;

static int usage(void) {
        fprintf(stderr, "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | "
                        "postqueue -s site\n");
        return EX_USAGE;
}

static int list(bool json) {
        int r = queue_client_print_queue(json);

        if (r == EX_IOERR)
                fprintf(stderr, "postqueue: fatal: output write error: %s\n", strerror(errno));
        return r;
}

/* -i: the message goes to the active queue now, whatever its retry time. */
static int flush_id(const char *id) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        unsigned n;
        int r;

        if (!queue_id_valid(id)) {
                _cleanup_free_ char *e = log_escape(id, strlen(id));
                fprintf(stderr, "postqueue: fatal: Cannot flush queue ID - invalid name: \"%s\"\n", strna(e));
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        r = queue_client_act(bus, "RequeueMessages", (char *[]) { (char *) id, NULL }, NULL, false, &n);
        return r > 0 ? r : EX_OK;
}

int main(int argc, char **argv) {
        PostqueueMode mode = POSTQUEUE_NONE;
        const char *arg = NULL;
        int c;

        log_setup("postqueue");
        log_set_target(LOG_TARGET_STDERR);

        opterr = 0;
        while ((c = getopt(argc, argv, "+c:fi:jps:v")) >= 0) {
                PostqueueMode m = POSTQUEUE_NONE;

                switch (c) {
                case 'c':
                case 'v':
                        continue;
                case 'f':
                        m = POSTQUEUE_FLUSH;
                        break;
                case 'i':
                        m = POSTQUEUE_ID;
                        break;
                case 'j':
                        m = POSTQUEUE_JSON;
                        break;
                case 'p':
                        m = POSTQUEUE_LIST;
                        break;
                case 's':
                        m = POSTQUEUE_SITE;
                        break;
                default:
                        return usage();
                }
                if (mode != POSTQUEUE_NONE)
                        return usage();         /* one mode at a time, as Postfix wants */
                mode = m;
                arg = optarg;
        }
        if (optind < argc)
                return usage();

        switch (mode) {
        case POSTQUEUE_LIST:
                return list(false);
        case POSTQUEUE_JSON:
                return list(true);
        case POSTQUEUE_FLUSH:
                return queue_client_flush(NULL);
        case POSTQUEUE_SITE:
                return queue_client_flush(arg);
        case POSTQUEUE_ID:
                return flush_id(arg);
        default:
                return usage();
        }
}
