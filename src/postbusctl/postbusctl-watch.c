/* postbusctl-watch.c: "queue watch": the signals of org.postbus.Queue1 as they come, one line each, in
 * the shape of Postfix's log lines, or with --json one JSON object a line. Runs until interrupted, or
 * until the bus goes away. */
#include <inttypes.h>
#include <time.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "postbusctl-json.h"
#include "postbusctl.h"
#include "queue-bus.h"
#include "queue-client.h"

/* Each signal's arguments: their D-Bus types and the names the issue gives them (the JSON keys). */
typedef struct WatchSignal {
        const char *member;
        const char *signature;
        const char *names[5];
} WatchSignal;

static const WatchSignal watch_signals[] = {
        { "MessageQueued", "ssu", { "id", "sender", "recipients" } },
        { "MessageDelivered", "ssss", { "id", "recipient", "relay", "dsn" } },
        { "MessageDeferred", "ssssst", { "id", "recipient", "dsn", "reason", "next_attempt_usec" } },
        { "MessageBounced", "ssss", { "id", "recipient", "dsn", "reason" } },
        { "MessageRemoved", "s", { "id" } },
        { "DestinationDead", "sss", { "transport", "destination", "reason" } },
        { "Alert", "ss", { "class", "text" } },
};

typedef struct WatchValue {
        const char *s;
        uint64_t t;
} WatchValue;

static int read_values(sd_bus_message *m, const WatchSignal *w, WatchValue v[static 5]) {
        int r;

        for (size_t i = 0; w->signature[i]; i++) {
                char type = w->signature[i];
                uint32_t u;

                if (type == 's')
                        r = sd_bus_message_read_basic(m, 's', &v[i].s);
                else if (type == 't')
                        r = sd_bus_message_read_basic(m, 't', &v[i].t);
                else {
                        r = sd_bus_message_read_basic(m, 'u', &u);
                        v[i].t = u;
                }
                if (r <= 0)
                        return r < 0 ? r : -EBADMSG;
        }
        return 0;
}

static void print_json(const WatchSignal *w, const WatchValue *v) {
        fputs("{\"signal\": ", stdout);
        json_string(stdout, w->member);
        for (size_t i = 0; w->signature[i]; i++) {
                fputs(", ", stdout);
                json_string(stdout, w->names[i]);
                fputs(": ", stdout);
                if (w->signature[i] == 's')
                        json_string(stdout, v[i].s);
                else
                        printf("%" PRIu64, v[i].t);
        }
        fputs("}\n", stdout);
}

/* Peer text is escaped; one line whatever it holds. */
static void print_line(const WatchSignal *w, const WatchValue *v) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        char when[32] = "";

        a = v[0].s ? log_escape(v[0].s, strlen(v[0].s)) : NULL;
        b = w->signature[1] == 's' ? log_escape(v[1].s, strlen(v[1].s)) : NULL;
        c = w->signature[1] && w->signature[2] == 's' ? log_escape(v[2].s, strlen(v[2].s)) : NULL;
        d = w->signature[1] && w->signature[2] && w->signature[3] == 's' ? log_escape(v[3].s, strlen(v[3].s)) : NULL;

        if (streq(w->member, "MessageQueued"))
                printf("%s: queued, from=<%s>, nrcpt=%" PRIu64 "\n", strna(a), strempty(b), v[2].t);
        else if (streq(w->member, "MessageDelivered"))
                printf("%s: delivered, to=<%s>, relay=%s, dsn=%s\n", strna(a), strempty(b), strempty(c), strempty(d));
        else if (streq(w->member, "MessageDeferred")) {
                time_t t = (time_t) (v[4].t / 1000000);
                struct tm tm;

                if (v[4].t > 0 && localtime_r(&t, &tm))
                        (void) strftime(when, sizeof when, ", next=%Y-%m-%d %H:%M:%S", &tm);
                printf("%s: deferred, to=<%s>, dsn=%s%s (%s)\n", strna(a), strempty(b), strempty(c), when,
                       strempty(d));
        } else if (streq(w->member, "MessageBounced"))
                printf("%s: bounced, to=<%s>, dsn=%s (%s)\n", strna(a), strempty(b), strempty(c), strempty(d));
        else if (streq(w->member, "MessageRemoved"))
                printf("%s: removed\n", strna(a));
        else if (streq(w->member, "DestinationDead"))
                printf("destination dead: %s:%s (%s)\n", strna(a), strempty(b), strempty(c));
        else
                printf("alert: %s: %s\n", strna(a), strempty(b));
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *member = sd_bus_message_get_member(m);
        WatchValue v[5] = {};
        int r;

        if (!member)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(watch_signals); i++) {
                const WatchSignal *w = &watch_signals[i];

                if (!streq(w->member, member) || !sd_bus_message_has_signature(m, w->signature))
                        continue;
                r = read_values(m, w, v);
                if (r < 0) {
                        log_warning_errno(r, "Failed to read signal %s, ignoring: %m", member);
                        return 0;
                }
                if (arg_json)
                        print_json(w, v);
                else
                        print_line(w, v);
                if (fflush(stdout) != 0)
                        *(int *) userdata = EX_IOERR;   /* the reader has gone: stop */
                return 0;
        }
        return 0;       /* a signal this version does not know */
}

int queue_watch(int argc, char **argv) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r, status = 0;

        if (argc > 1) {
                log_error("\"queue watch\" takes no arguments (see --help).");
                return EX_USAGE;
        }
        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        /* Matched on path and interface: a match on the well-known name would miss the signals of a
         * qmgr that restarts while we watch. */
        r = sd_bus_match_signal(bus, &slot, NULL, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE, NULL, on_signal, &status);
        if (r < 0)
                return queue_client_error("cannot watch the queue", NULL, r);
        fprintf(stderr, "Watching %s; Ctrl-C to stop.\n", QUEUE_BUS_NAME);

        while (status == 0) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0 && r != -EINTR)
                        break;
        }
        if (status != 0)
                return status;
        fprintf(stderr, "%s: the system bus went away: %s\n", program_invocation_short_name, strerror(-r));
        return EX_UNAVAILABLE;
}
