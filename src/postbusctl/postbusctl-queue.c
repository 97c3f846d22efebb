/* postbusctl-queue.c: "queue [QUEUE]" lists the mail queue from qmgr's org.postbus.Queue1 on the system
 * bus: a table in the shape of Postfix's mailq, or with --json one JSON object per message and line, in
 * the shape of Postfix's postqueue -j. */
#include <inttypes.h>
#include <time.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "postbusctl-json.h"
#include "postbusctl.h"
#include "queue-id.h"

#define QUEUE_BUS_NAME "org.postbus.Queue1"
#define QUEUE_OBJECT "/org/postbus/Queue1"
#define QUEUE_INTERFACE "org.postbus.Queue1"

typedef struct QueueSummary {
        uint64_t messages;
        uint64_t bytes;
} QueueSummary;

static char queue_mark(const char *queue) {
        if (streq(queue, "active"))
                return '*';
        if (streq(queue, "hold"))
                return '!';
        if (streq(queue, "corrupt"))
                return '#';
        return ' ';
}

/* Reads the recipients array of one entry and prints them. */
static int print_recipients(sd_bus_message *reply, bool json) {
        const char *rcpt;
        bool first = true;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(reply, 's', &rcpt)) > 0) {
                if (json) {
                        fputs(first ? "{\"address\": " : ", {\"address\": ", stdout);
                        json_string(stdout, rcpt);
                        fputc('}', stdout);
                } else {
                        _cleanup_free_ char *e = log_escape(rcpt, strlen(rcpt));
                        printf("%*s%s\n", QUEUE_ID_LEN + 1 + 1 + 8 + 1 + 20 + 1, "", strna(e));
                }
                first = false;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

static int print_entry(sd_bus_message *reply, bool json, QueueSummary *sum) {
        const char *id, *queue, *sender;
        uint64_t arrival_usec, size;
        int r;

        r = sd_bus_message_read(reply, "sstts", &id, &queue, &arrival_usec, &size, &sender);
        if (r < 0)
                return r;
        sum->messages++;
        sum->bytes += size;

        if (json) {
                fputs("{\"queue_name\": ", stdout);
                json_string(stdout, queue);
                fputs(", \"queue_id\": ", stdout);
                json_string(stdout, id);
                printf(", \"arrival_time\": %" PRIu64 ", \"message_size\": %" PRIu64 ", \"sender\": ",
                       arrival_usec / 1000000, size);
                json_string(stdout, sender);
                fputs(", \"recipients\": [", stdout);
                r = print_recipients(reply, true);
                fputs("]}\n", stdout);
                return r;
        }

        _cleanup_free_ char *esender = log_escape(sender, strlen(sender));
        time_t t = (time_t) (arrival_usec / 1000000);
        char when[64] = "";
        struct tm tm;

        if (localtime_r(&t, &tm))
                (void) strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
        printf("%-*s%c %8" PRIu64 " %-20.20s %s\n", QUEUE_ID_LEN, id, queue_mark(queue), size, when,
               isempty(sender) ? "MAILER-DAEMON" : strna(esender));
        r = print_recipients(reply, false);
        if (r < 0)
                return r;
        putchar('\n');
        return 0;
}

int verb_queue(int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *which = argc > 1 ? argv[1] : "";
        QueueSummary sum = {};
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_error_errno(r, "Failed to connect to the system bus: %m");
                return EX_UNAVAILABLE;
        }
        r = sd_bus_call_method(bus, QUEUE_BUS_NAME, QUEUE_OBJECT, QUEUE_INTERFACE, "ListMessages", &error, &reply,
                               "s", which);
        if (r < 0) {
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                        log_error("The queue manager is not running (%s is not on the system bus).", QUEUE_BUS_NAME);
                        return EX_UNAVAILABLE;
                }
                if (sd_bus_error_has_name(&error, "org.postbus.Error.InvalidArguments")) {
                        log_error("%s", error.message ?: "Invalid arguments.");
                        return EX_USAGE;
                }
                if (sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED)) {
                        log_error("Not allowed to list the queue: %s", strna(error.message));
                        return EX_NOPERM;
                }
                log_error_errno(r, "Failed to list the queue: %s", error.message ?: strerror(-r));
                return EX_UNAVAILABLE;
        }

        r = sd_bus_message_enter_container(reply, 'a', "(ssttsas)");
        if (r < 0)
                goto bad_reply;
        while ((r = sd_bus_message_enter_container(reply, 'r', "ssttsas")) > 0) {
                if (!arg_json && sum.messages == 0)
                        printf("%-*s  %8s %-20s %s\n", QUEUE_ID_LEN, "-Queue ID-", "--Size--", "----Arrival Time----",
                               "-Sender/Recipient-------");
                r = print_entry(reply, arg_json, &sum);
                if (r < 0)
                        goto bad_reply;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        goto bad_reply;
        }
        if (r < 0)
                goto bad_reply;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                goto bad_reply;

        if (!arg_json) {
                if (sum.messages == 0)
                        printf("Mail queue is empty\n");
                else
                        printf("-- %" PRIu64 " Kbytes in %" PRIu64 " Request%s.\n", (sum.bytes + 1023) / 1024,
                               sum.messages, sum.messages == 1 ? "" : "s");
        }
        if (fflush(stdout) != 0) {
                log_error_errno(errno, "Failed to write: %m");
                return EX_IOERR;
        }
        return 0;

bad_reply:
        log_error_errno(r, "Failed to parse the reply of ListMessages: %m");
        return EX_PROTOCOL;
}
