/* postbusctl-queue-control.c: the queue sub-commands that change the queue (hold, release, requeue, delete,
 * bounce on lists of IDs; flush, pause and resume of destinations) and "destinations", each one call of
 * org.postbus.Queue1. qmgr decides who may: the commands pass the call on and report its refusal. */
#include <inttypes.h>
#include <time.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "postbusctl-json.h"
#include "postbusctl.h"
#include "queue-bus.h"
#include "queue-client.h"
#include "string-util.h"

static bool filter_given(void) {
        return arg_queue || arg_sender || arg_recipient || arg_destination || arg_older_than;
}

/* The IDs a command acts on: its arguments, "-" for standard input, or with none, the messages that the
 * filter options select (all of them only when --queue names a queue: never by accident). */
static int collect_ids(sd_bus *bus, int argc, char **argv, char ***ret) {
        _cleanup_strv_free_ char **ids = NULL;
        size_t n = 0;
        int r;

        if (argc < 2) {
                if (!filter_given()) {
                        log_error("\"queue %s\" needs queue IDs, \"-\" to read them from standard input, or "
                                  "filter options (see --help).", argv[0]);
                        return EX_USAGE;
                }
                return queue_select(bus, arg_queue, ret);
        }
        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "-")) {
                        _cleanup_strv_free_ char **more = NULL;

                        r = queue_read_ids(stdin, &more);
                        if (r < 0) {
                                log_error_errno(r, "Failed to read queue IDs from standard input: %m");
                                return EX_IOERR;
                        }
                        for (char **m = more; *m; m++) {
                                r = strv_push(&ids, &n, TAKE_PTR(*m));
                                if (r < 0)
                                        return log_oom(), EX_OSERR;
                        }
                        continue;
                }
                r = strv_push(&ids, &n, strdup(argv[i]));
                if (r < 0)
                        return log_oom(), EX_OSERR;
        }
        if (!ids) {
                ids = calloc(1, sizeof(char *));
                if (!ids)
                        return log_oom(), EX_OSERR;
        }
        *ret = TAKE_PTR(ids);
        return 0;
}

static int act(int argc, char **argv, const char *method, const char *reason, const char *done) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_strv_free_ char **ids = NULL;
        unsigned n;
        int r;

        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        r = collect_ids(bus, argc, argv, &ids);
        if (r > 0)
                return r;
        r = queue_client_act(bus, method, ids, reason, false, &n);
        if (r > 0)
                return r;
        printf("%s %u message%s.\n", done, n, n == 1 ? "" : "s");
        return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

int queue_hold(int argc, char **argv) {
        return act(argc, argv, "HoldMessages", NULL, "Held");
}

int queue_release(int argc, char **argv) {
        return act(argc, argv, "ReleaseMessages", NULL, "Released");
}

int queue_requeue(int argc, char **argv) {
        return act(argc, argv, "RequeueMessages", NULL, "Requeued");
}

int queue_delete(int argc, char **argv) {
        return act(argc, argv, "DeleteMessages", NULL, "Deleted");
}

int queue_bounce(int argc, char **argv) {
        return act(argc, argv, "BounceMessages", strempty(arg_reason), "Bounced");
}

/* Calls a method on the manager object, with the arguments as strings; *ret the reply. */
static int call(sd_bus *bus, const char *method, const char *what, sd_bus_message **ret, const char *a,
                const char *b) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE, method);
        if (r >= 0 && a)
                r = sd_bus_message_append_basic(m, 's', a);
        if (r >= 0 && b)
                r = sd_bus_message_append_basic(m, 's', b);
        if (r >= 0)
                r = sd_bus_message_set_allow_interactive_authorization(m, true);
        if (r < 0)
                return queue_client_error("cannot build the call", NULL, r);
        r = sd_bus_call(bus, m, 0, &error, ret);
        if (r < 0)
                return queue_client_error(what, &error, r);
        return 0;
}

/* FlushQueue, or FlushDestination of each destination named; prints how many messages are tried now. */
static int flush_one(sd_bus *bus, const char *destination) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t n;
        int r;

        r = destination ? call(bus, "FlushDestination", destination, &reply, destination, NULL)
                        : call(bus, "FlushQueue", "cannot flush the queue", &reply, NULL, NULL);
        if (r > 0)
                return r;
        r = sd_bus_message_read(reply, "u", &n);
        if (r < 0)
                return queue_client_error("cannot read the queue manager's answer", NULL, r);
        if (destination)
                printf("%s: ", destination);
        printf("%u message%s to be tried now.\n", n, n == 1 ? "" : "s");
        return 0;
}

int queue_flush(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        if (argc < 2)
                r = flush_one(bus, NULL);
        for (int i = 1; r == 0 && i < argc; i++)
                r = flush_one(bus, argv[i]);
        if (r > 0)
                return r;
        return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

int queue_pause(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (argc < 2) {
                log_error("\"queue pause\" needs a destination (see --help).");
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        for (int i = 1; i < argc; i++) {
                r = call(bus, "PauseDestination", argv[i], NULL, argv[i], strempty(arg_reason));
                if (r > 0)
                        return r;
        }
        return 0;
}

int queue_resume(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (argc < 2) {
                log_error("\"queue resume\" needs a destination (see --help).");
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        for (int i = 1; i < argc; i++) {
                r = call(bus, "ResumeDestination", argv[i], NULL, argv[i], NULL);
                if (r > 0)
                        return r;
        }
        return 0;
}

static void print_destination(const char *transport, const char *destination, const char *state, uint32_t active,
                              uint32_t limit, uint32_t waiting, int dead, uint64_t retry_usec) {
        if (arg_json) {
                fputs("{\"transport\": ", stdout);
                json_string(stdout, transport);
                fputs(", \"destination\": ", stdout);
                json_string(stdout, destination);
                fputs(", \"state\": ", stdout);
                json_string(stdout, state);
                printf(", \"concurrency\": %" PRIu32 ", \"concurrency_limit\": %" PRIu32 ", \"waiting\": %" PRIu32
                       ", \"dead\": %s, \"next_retry_usec\": %" PRIu64 "}\n",
                       active, limit, waiting, dead ? "true" : "false", retry_usec);
                return;
        }
        _cleanup_free_ char *t = log_escape(transport, strlen(transport));
        _cleanup_free_ char *d = log_escape(destination, strlen(destination));
        char when[32] = "-";
        time_t secs = (time_t) (retry_usec / 1000000);
        struct tm tm;

        if (retry_usec > 0 && localtime_r(&secs, &tm))
                (void) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        printf("%-10s %-32s %-7s %6" PRIu32 " %6" PRIu32 " %7" PRIu32 " %s\n", isempty(t) ? "-" : t, strna(d),
               state, active, limit, waiting, when);
}

int queue_destinations(int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        unsigned n = 0;
        int r;

        if (argc > 1) {
                log_error("\"queue destinations\" takes no arguments (see --help).");
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        r = call(bus, "ListDestinations", "cannot list the destinations", &reply, NULL, NULL);
        if (r > 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'a', "(sssuuubt)");
        while (r >= 0) {
                const char *transport, *destination, *state;
                uint32_t active, limit, waiting;
                uint64_t retry;
                int dead;

                r = sd_bus_message_read(reply, "(sssuuubt)", &transport, &destination, &state, &active, &limit,
                                        &waiting, &dead, &retry);
                if (r <= 0)
                        break;
                if (!arg_json && n == 0)
                        printf("%-10s %-32s %-7s %6s %6s %7s %s\n", "TRANSPORT", "DESTINATION", "STATE", "ACTIVE",
                               "LIMIT", "WAITING", "NEXT RETRY");
                print_destination(transport, destination, state, active, limit, waiting, dead, retry);
                n++;
        }
        if (r < 0)
                return queue_client_error("cannot read the queue manager's answer", NULL, r);
        if (!arg_json)
                printf("%s%u destination%s listed.\n", n > 0 ? "\n" : "", n, n == 1 ? "" : "s");
        return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

static void print_host_failure(const char *transport, const char *destination, const char *server,
                               const char *reason, uint64_t until_usec) {
        if (arg_json) {
                fputs("{\"transport\": ", stdout);
                json_string(stdout, transport);
                fputs(", \"destination\": ", stdout);
                json_string(stdout, destination);
                fputs(", \"server\": ", stdout);
                json_string(stdout, server);
                fputs(", \"reason\": ", stdout);
                json_string(stdout, reason);
                printf(", \"until_usec\": %" PRIu64 "}\n", until_usec);
                return;
        }
        _cleanup_free_ char *t = log_escape(transport, strlen(transport));
        _cleanup_free_ char *d = log_escape(destination, strlen(destination));
        _cleanup_free_ char *s = log_escape(server, strlen(server));
        _cleanup_free_ char *why = log_escape(reason, strlen(reason));
        char when[32] = "-";
        time_t secs = (time_t) (until_usec / 1000000);
        struct tm tm;

        if (localtime_r(&secs, &tm))
                (void) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        printf("%-10s %-24s %-40s %-19s %s\n", strna(t), strna(d), strna(s), when, strna(why));
}

int queue_hosts(int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        unsigned n = 0;
        int r;

        if (argc > 1) {
                log_error("\"queue hosts\" takes no arguments (see --help).");
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        r = call(bus, "ListHostFailures", "cannot list the failing hosts", &reply, NULL, NULL);
        if (r > 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'a', "(sssst)");
        while (r >= 0) {
                const char *transport, *destination, *server, *reason;
                uint64_t until;

                r = sd_bus_message_read(reply, "(sssst)", &transport, &destination, &server, &reason, &until);
                if (r <= 0)
                        break;
                if (!arg_json && n == 0)
                        printf("%-10s %-24s %-40s %-19s %s\n", "TRANSPORT", "DESTINATION", "SERVER", "SKIPPED UNTIL",
                               "REASON");
                print_host_failure(transport, destination, server, reason, until);
                n++;
        }
        if (r < 0)
                return queue_client_error("cannot read the queue manager's answer", NULL, r);
        if (!arg_json)
                printf("%s%u failing server address%s skipped.\n", n > 0 ? "\n" : "", n, n == 1 ? "" : "es");
        return fflush(stdout) == 0 ? 0 : EX_IOERR;
}
