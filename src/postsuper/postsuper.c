/* postsuper.c: Postfix's postsuper command for postbus: -d (delete), -h (hold), -H (release) and -r
 * (requeue), each with a queue ID, ALL, or "-" to read IDs from standard input, and optional queue names
 * after the options that limit which messages are touched. A thin client of qmgr's org.postbus.Queue1
 * on the system bus; the summary lines on stderr are Postfix's ("postsuper: Deleted: 3 messages").
 *
 * SECURITY: runs as whoever calls it, with no privilege of its own: qmgr decides who may change the queue
 * (root, or polkit's org.postbus.queue.manage). IDs are checked here too, so that a typo stops the whole
 * command before anything is done, as in Postfix. -c is accepted and ignored (no configuration is read). */
#include <getopt.h>
#include <sysexits.h>

#include "log.h"
#include "queue-bus.h"
#include "queue-client.h"
#include "queue-file.h"
#include "queue-id.h"
#include "string-util.h"

typedef enum SuperOp {
        SUPER_DELETE,
        SUPER_HOLD,
        SUPER_RELEASE,
        SUPER_REQUEUE,
        _SUPER_OP_MAX,
} SuperOp;

typedef struct SuperAction {
        const char *method;
        const char *summary;
        const char *default_queue;      /* what ALL means without queue names; NULL: every queue */
} SuperAction;

/* In the order Postfix carries them out when several are given. */
static const SuperAction super_actions[_SUPER_OP_MAX] = {
        [SUPER_DELETE] = { "DeleteMessages", "Deleted", NULL },
        [SUPER_HOLD] = { "HoldMessages", "Placed on hold", NULL },
        [SUPER_RELEASE] = { "ReleaseMessages", "Released from hold", "hold" },
        [SUPER_REQUEUE] = { "RequeueMessages", "Requeued", NULL },
};

typedef struct SuperArgs {
        char **ids[_SUPER_OP_MAX];      /* as given: IDs, "ALL", "-" */
        size_t n_ids[_SUPER_OP_MAX];
        char **queues;                  /* the names after the options */
} SuperArgs;

static int usage(void) {
        fprintf(stderr, "usage: postsuper [-c config_dir] [-d queue_id (delete)] [-h queue_id (hold)] "
                        "[-H queue_id (un-hold)] [-r queue_id (requeue)] [-v (verbose)] [queue...]\n");
        return EX_USAGE;
}

/* "postsuper: fatal: <text><arg>", arg escaped. */
static int fatal(int status, const char *text, const char *arg) {
        _cleanup_free_ char *e = arg ? log_escape(arg, strlen(arg)) : NULL;

        fprintf(stderr, "postsuper: fatal: %s%s\n", text, strempty(e));
        return status;
}

/* SelectMessages({queue}) for each queue name, or {} when there are none. */
static int select_queue(sd_bus *bus, const char *queue, char ***ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE,
                                           "SelectMessages");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && queue)
                r = sd_bus_message_append(m, "{sv}", QUEUE_FILTER_QUEUE, "s", queue);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return queue_client_error("cannot build the call", NULL, r);
        return queue_client_select(bus, m, ret);
}

static int add_queue(sd_bus *bus, const char *queue, char ***ids, size_t *n) {
        _cleanup_strv_free_ char **selected = NULL;
        int r;

        r = select_queue(bus, queue, &selected);
        if (r > 0)
                return r;
        for (char **s = selected; *s; s++)
                if (strv_push(ids, n, TAKE_PTR(*s)) < 0)
                        return log_oom(), EX_OSERR;
        return 0;
}

/* Every message of the named queues (without names: of default_queue, or of all), appended to *ids. */
static int add_selected(sd_bus *bus, char **queues, const char *default_queue, char ***ids, size_t *n) {
        int r;

        if (!queues)
                return add_queue(bus, default_queue, ids, n);
        for (char **q = queues; *q; q++) {
                r = add_queue(bus, *q, ids, n);
                if (r > 0)
                        return r;
        }
        return 0;
}

static bool strv_has(char **l, const char *s) {
        for (char **i = l; i && *i; i++)
                if (streq(*i, s))
                        return true;
        return false;
}

/* The IDs of one operation: ALL expands to the queues' messages, "-" to standard input's lines; with queue
 * names, an explicit ID outside those queues is left alone, as in Postfix. */
static int resolve_ids(sd_bus *bus, SuperOp op, const SuperArgs *a, char ***ret) {
        _cleanup_strv_free_ char **ids = NULL, **in_queues = NULL;
        size_t n = 0, n_in = 0;
        int r;

        for (size_t i = 0; i < a->n_ids[op]; i++) {
                const char *arg = a->ids[op][i];

                if (streq(arg, "ALL")) {
                        r = add_selected(bus, a->queues, super_actions[op].default_queue, &ids, &n);
                        if (r > 0)
                                return r;
                        continue;
                }
                if (!streq(arg, "-")) {
                        if (strv_push(&ids, &n, strdup(arg)) < 0)
                                return log_oom(), EX_OSERR;
                        continue;
                }
                _cleanup_strv_free_ char **lines = NULL;
                r = queue_read_ids(stdin, &lines);
                if (r < 0)
                        return fatal(EX_IOERR, "cannot read queue IDs from standard input", NULL);
                for (char **l = lines; *l; l++) {
                        if (!queue_id_valid(*l))
                                return fatal(EX_DATAERR, "invalid mail queue id: ", *l);
                        if (strv_push(&ids, &n, TAKE_PTR(*l)) < 0)
                                return log_oom(), EX_OSERR;
                }
        }
        if (a->queues) {
                r = add_selected(bus, a->queues, NULL, &in_queues, &n_in);
                if (r > 0)
                        return r;
                size_t kept = 0;
                for (size_t i = 0; i < n; i++) {
                        if (strv_has(in_queues, ids[i]))
                                ids[kept++] = ids[i];
                        else
                                free(ids[i]);
                }
                if (ids)
                        ids[kept] = NULL;
        }
        if (!ids) {
                ids = calloc(1, sizeof(char *));
                if (!ids)
                        return log_oom(), EX_OSERR;
        }
        *ret = TAKE_PTR(ids);
        return 0;
}

static void args_done(SuperArgs *a) {
        for (SuperOp op = 0; op < _SUPER_OP_MAX; op++)
                strv_free(a->ids[op]);
}

static int parse_argv(int argc, char **argv, SuperArgs *a) {
        bool stdin_taken = false;
        int c;

        opterr = 0;
        while ((c = getopt(argc, argv, "+c:d:h:H:r:v")) >= 0) {
                SuperOp op;

                switch (c) {
                case 'c':
                case 'v':
                        continue;
                case 'd':
                        op = SUPER_DELETE;
                        break;
                case 'h':
                        op = SUPER_HOLD;
                        break;
                case 'H':
                        op = SUPER_RELEASE;
                        break;
                case 'r':
                        op = SUPER_REQUEUE;
                        break;
                default:
                        return usage();
                }
                if (streq(optarg, "-")) {
                        if (stdin_taken)
                                return fatal(EX_USAGE, "\"-\" may be given only once", NULL);
                        stdin_taken = true;
                } else if (!streq(optarg, "ALL") && !queue_id_valid(optarg))
                        return fatal(EX_USAGE, "invalid mail queue id: ", optarg);
                if (strv_push(&a->ids[op], &a->n_ids[op], strdup(optarg)) < 0)
                        return log_oom(), EX_OSERR;
        }
        for (int i = optind; i < argc; i++)
                if (queue_name_from_string(argv[i]) < 0)
                        return fatal(EX_USAGE, "invalid directory name: ", argv[i]);
        a->queues = optind < argc ? argv + optind : NULL;

        for (SuperOp op = 0; op < _SUPER_OP_MAX; op++)
                if (a->n_ids[op] > 0)
                        return 0;
        return usage();         /* nothing to do: Postfix would check the queue's structure */
}

int main(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        SuperArgs a = {};
        int r, status = EX_OK;

        log_setup("postsuper");
        log_set_target(LOG_TARGET_STDERR);

        r = parse_argv(argc, argv, &a);
        if (r != 0) {
                args_done(&a);
                return r;
        }
        r = queue_client_open(&bus);
        for (SuperOp op = 0; r == 0 && op < _SUPER_OP_MAX; op++) {
                _cleanup_strv_free_ char **ids = NULL;
                unsigned n = 0;

                if (a.n_ids[op] == 0)
                        continue;
                r = resolve_ids(bus, op, &a, &ids);
                if (r == 0 && ids[0])
                        r = queue_client_act(bus, super_actions[op].method, ids, NULL, true, &n);
                if (r == 0 && n > 0)
                        fprintf(stderr, "postsuper: %s: %u message%s\n", super_actions[op].summary, n,
                                n == 1 ? "" : "s");
        }
        if (r > 0)
                status = r;
        args_done(&a);
        return status;
}
