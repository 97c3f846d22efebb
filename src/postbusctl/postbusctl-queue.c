/* postbusctl-queue.c: "queue [list|show|...]": the dispatch of the queue sub-commands, and the two that
 * read: list (ListMessages, SelectMessages with the filter options; Postfix's mailq table or, with
 * --json, postqueue -j lines) and show (the properties of one message's org.postbus.Message1 object).
 * The ones that change the queue are in postbusctl-queue-control.c, watch in postbusctl-watch.c. */
#include <inttypes.h>
#include <time.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "postbusctl-json.h"
#include "postbusctl.h"
#include "queue-bus.h"
#include "queue-client.h"

static int append_filter_string(sd_bus_message *m, const char *key, const char *value) {
        if (!value)
                return 0;
        return sd_bus_message_append(m, "{sv}", key, "s", value);
}

int queue_select(sd_bus *bus, const char *queue, char ***ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        uint64_t age = 0;
        int r;

        if (arg_older_than && queue_parse_age(arg_older_than, &age) < 0) {
                log_error("--older-than: \"%s\" is not a time (300s, 5m, 1h, 2d, 1w).", arg_older_than);
                return EX_USAGE;
        }
        r = sd_bus_message_new_method_call(bus, &m, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE,
                                           "SelectMessages");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = append_filter_string(m, QUEUE_FILTER_QUEUE, queue);
        if (r >= 0)
                r = append_filter_string(m, QUEUE_FILTER_SENDER, arg_sender);
        if (r >= 0)
                r = append_filter_string(m, QUEUE_FILTER_RECIPIENT, arg_recipient);
        if (r >= 0)
                r = append_filter_string(m, QUEUE_FILTER_DESTINATION, arg_destination);
        if (r >= 0)
                r = append_filter_string(m, QUEUE_FILTER_REASON, arg_reason);
        if (r >= 0 && arg_older_than)
                r = sd_bus_message_append(m, "{sv}", QUEUE_FILTER_OLDER_THAN_USEC, "t", age);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return queue_client_error("cannot build the filter", NULL, r);

        return queue_client_select(bus, m, ret);
}

static int queue_list(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_strv_free_ char **ids = NULL;
        const char *queue = argc > 1 ? argv[1] : arg_queue;
        bool filtered = arg_sender || arg_recipient || arg_destination || arg_older_than || arg_reason;
        QueueList l = {};
        int r;

        if (argc > 2) {
                log_error("Too many arguments for \"queue list\" (see --help).");
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        if (filtered) {
                r = queue_select(bus, queue, &ids);
                if (r > 0)
                        return r;
        }
        r = queue_client_list(bus, queue, ids, true, &l);
        if (r > 0)
                return r;
        if (arg_json)
                queue_print_json(stdout, &l);
        else
                queue_print_table(stdout, &l);
        queue_list_done(&l);
        if (fflush(stdout) != 0) {
                log_error_errno(errno, "Failed to write: %m");
                return EX_IOERR;
        }
        return 0;
}

static void print_time(const char *label, uint64_t usec) {
        time_t t = (time_t) (usec / 1000000);
        char when[64] = "";
        struct tm tm;

        if (usec == 0) {
                printf("%16s: -\n", label);
                return;
        }
        if (localtime_r(&t, &tm))
                (void) strftime(when, sizeof when, "%a %Y-%m-%d %H:%M:%S %Z", &tm);
        printf("%16s: %s\n", label, when);
}

/* One property of GetAll's a{sv}, printed as "Name: value" or as a JSON member. */
static int show_property(sd_bus_message *reply, const char *name, bool first) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(reply, &type, &contents);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'v', contents);
        if (r < 0)
                return r;
        if (arg_json) {
                fputs(first ? "{" : ", ", stdout);
                json_string(stdout, name);
                fputs(": ", stdout);
        }
        if (streq(contents, "s")) {
                const char *s;
                r = sd_bus_message_read_basic(reply, 's', &s);
                if (r < 0)
                        return r;
                if (arg_json)
                        json_string(stdout, s);
                else {
                        _cleanup_free_ char *e = log_escape(s, strlen(s));
                        printf("%16s: %s\n", name, strna(e));
                }
        } else if (streq(contents, "t") || streq(contents, "u")) {
                uint64_t t = 0;
                uint32_t u = 0;
                r = contents[0] == 't' ? sd_bus_message_read_basic(reply, 't', &t)
                                       : sd_bus_message_read_basic(reply, 'u', &u);
                if (r < 0)
                        return r;
                if (contents[0] == 'u')
                        t = u;
                if (arg_json)
                        printf("%" PRIu64, t);
                else if (strlen(name) > 4 && streq(name + strlen(name) - 4, "USec"))
                        print_time(name, t);
                else
                        printf("%16s: %" PRIu64 "\n", name, t);
        } else if (streq(contents, "a(ssss)")) {
                const char *address, *original, *state, *reason;
                bool first_rcpt = true;

                r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
                if (r < 0)
                        return r;
                if (arg_json)
                        fputc('[', stdout);
                while ((r = sd_bus_message_read(reply, "(ssss)", &address, &original, &state, &reason)) > 0) {
                        if (arg_json) {
                                fputs(first_rcpt ? "{\"address\": " : ", {\"address\": ", stdout);
                                json_string(stdout, address);
                                fputs(", \"original_address\": ", stdout);
                                json_string(stdout, original);
                                fputs(", \"state\": ", stdout);
                                json_string(stdout, state);
                                fputs(", \"reason\": ", stdout);
                                json_string(stdout, reason);
                                fputc('}', stdout);
                        } else {
                                _cleanup_free_ char *a = log_escape(address, strlen(address));
                                _cleanup_free_ char *o = log_escape(original, strlen(original));
                                _cleanup_free_ char *e = log_escape(reason, strlen(reason));
                                printf("%16s: %s", first_rcpt ? name : "", strna(a));
                                if (!streq(original, address))
                                        printf(" (orig_to=%s)", strna(o));
                                printf(" %s%s%s%s\n", state, isempty(reason) ? "" : " (", isempty(reason) ? "" : strna(e),
                                       isempty(reason) ? "" : ")");
                        }
                        first_rcpt = false;
                }
                if (r < 0)
                        return r;
                if (arg_json)
                        fputc(']', stdout);
                else if (first_rcpt)
                        printf("%16s: -\n", name);
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        } else {
                r = sd_bus_message_skip(reply, contents);
                if (r < 0)
                        return r;
                if (arg_json)
                        fputs("null", stdout);
        }
        return sd_bus_message_exit_container(reply);
}

static int queue_show(int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL, *props = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *path, *name;
        bool first = true;
        int r;

        if (argc != 2) {
                log_error("\"queue show\" takes one queue ID (see --help).");
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        r = sd_bus_call_method(bus, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE, "GetMessage", &error,
                               &reply, "s", argv[1]);
        if (r < 0)
                return queue_client_error(argv[1], &error, r);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return queue_client_error("cannot read the queue manager's answer", NULL, r);
        r = sd_bus_call_method(bus, QUEUE_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", &error,
                               &props, "s", QUEUE_BUS_MESSAGE_INTERFACE);
        if (r < 0)
                return queue_client_error(argv[1], &error, r);

        r = sd_bus_message_enter_container(props, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(props, 'e', "sv")) > 0) {
                r = sd_bus_message_read_basic(props, 's', &name);
                if (r >= 0)
                        r = show_property(props, name, first);
                if (r >= 0)
                        r = sd_bus_message_exit_container(props);
                first = false;
        }
        if (r < 0)
                return queue_client_error("cannot read the message's properties", NULL, r);
        if (arg_json)
                fputs(first ? "{}\n" : "}\n", stdout);
        if (fflush(stdout) != 0) {
                log_error_errno(errno, "Failed to write: %m");
                return EX_IOERR;
        }
        return 0;
}

typedef struct QueueVerb {
        const char *name;
        int (*run)(int argc, char **argv);
} QueueVerb;

static const QueueVerb queue_verbs[] = {
        { "list", queue_list },
        { "show", queue_show },
        { "hold", queue_hold },
        { "release", queue_release },
        { "requeue", queue_requeue },
        { "delete", queue_delete },
        { "bounce", queue_bounce },
        { "flush", queue_flush },
        { "pause", queue_pause },
        { "resume", queue_resume },
        { "destinations", queue_destinations },
        { "hosts", queue_hosts },
        { "watch", queue_watch },
};

int verb_queue(int argc, char **argv) {
        if (argc < 2)
                return queue_list(1, (char *[]) { (char *) "list", NULL });
        for (size_t i = 0; i < ELEMENTSOF(queue_verbs); i++)
                if (streq(queue_verbs[i].name, argv[1]))
                        return queue_verbs[i].run(argc - 1, argv + 1);

        _cleanup_free_ char *e = log_escape(argv[1], strlen(argv[1]));
        log_error("Unknown queue command \"%s\" (see --help).", strna(e));
        return EX_USAGE;
}
