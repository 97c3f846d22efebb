/* queue-client.c: the client side of org.postbus.Queue1 that postbusctl, postqueue, postsuper and mailq
 * (sendmail -bp) share: listing, Postfix's listing formats, acting on lists of IDs, and errors. Runs in
 * those commands, as whoever calls them. */
#include <inttypes.h>
#include <sysexits.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "postbusctl-json.h"
#include "queue-bus.h"
#include "queue-client.h"
#include "queue-id.h"
#include "string-util.h"

/* Property reads in flight at once while collecting deferral reasons. */
#define REASON_WINDOW 64

static void listed_message_done(ListedMessage *m) {
        free(m->id);
        free(m->queue);
        free(m->sender);
        for (size_t i = 0; i < m->n_recipients; i++) {
                free(m->recipients[i].address);
                free(m->recipients[i].reason);
        }
        free(m->recipients);
}

void queue_list_done(QueueList *l) {
        for (size_t i = 0; i < l->n_messages; i++)
                listed_message_done(&l->messages[i]);
        free(l->messages);
        *l = (QueueList) {};
}

int queue_client_open(sd_bus **ret) {
        int r;

        r = sd_bus_open_system(ret);
        if (r < 0) {
                fprintf(stderr, "%s: cannot connect to the system bus: %s\n", program_invocation_short_name,
                        strerror(-r));
                return EX_UNAVAILABLE;
        }
        return 0;
}

int queue_client_error(const char *what, const sd_bus_error *error, int r) {
        const char *text = error && error->message ? error->message : strerror(-r);
        int status = EX_SOFTWARE;

        if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                   SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_DISCONNECTED)) {
                text = "the queue manager is not running";
                status = EX_UNAVAILABLE;
        } else if (sd_bus_error_has_names(error, SD_BUS_ERROR_ACCESS_DENIED, POSTBUS_ERROR_ACCESS_DENIED,
                                          SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                status = EX_NOPERM;
        else if (sd_bus_error_has_names(error, POSTBUS_ERROR_INVALID_ARGS, SD_BUS_ERROR_INVALID_ARGS))
                status = EX_USAGE;
        else if (sd_bus_error_has_names(error, POSTBUS_ERROR_NO_SUCH_MESSAGE, POSTBUS_ERROR_NO_SUCH_DESTINATION,
                                        SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_METHOD))
                status = EX_NOINPUT;
        else if (!sd_bus_error_is_set(error))
                status = r == -ENOMEM ? EX_OSERR : EX_PROTOCOL;

        fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, text);
        return status;
}

int queue_client_flush(const char *site) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE,
                                           site ? "FlushDestination" : "FlushQueue");
        if (r >= 0 && site)
                r = sd_bus_message_append_basic(m, 's', site);
        if (r >= 0)
                r = sd_bus_message_set_allow_interactive_authorization(m, true);
        if (r < 0)
                return queue_client_error("cannot build the call", NULL, r);
        r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0) {
                if (site && sd_bus_error_has_name(&error, POSTBUS_ERROR_NO_SUCH_DESTINATION))
                        return EX_OK;
                return queue_client_error(site ? "cannot flush the destination" : "cannot flush the mail queue",
                                          &error, r);
        }
        return EX_OK;
}

static int read_recipients(sd_bus_message *reply, ListedMessage *m) {
        const char *rcpt;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(reply, 's', &rcpt)) > 0) {
                ListedRecipient *l = reallocarray(m->recipients, m->n_recipients + 1, sizeof(ListedRecipient));
                if (!l)
                        return -ENOMEM;
                m->recipients = l;
                l[m->n_recipients] = (ListedRecipient) { .address = strdup(rcpt), .reason = strdup("") };
                m->n_recipients++;
                if (!l[m->n_recipients - 1].address || !l[m->n_recipients - 1].reason)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

static bool id_listed(char *const *only, const char *id) {
        for (char *const *i = only; *i; i++)
                if (streq(*i, id))
                        return true;
        return false;
}

static int read_listing(sd_bus_message *reply, char *const *only, QueueList *l) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(ssttsas)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'r', "ssttsas")) > 0) {
                const char *id, *queue, *sender;
                uint64_t arrival, size;

                r = sd_bus_message_read(reply, "sstts", &id, &queue, &arrival, &size, &sender);
                if (r < 0)
                        return r;
                if (only && !id_listed(only, id)) {
                        r = sd_bus_message_skip(reply, "as");
                        if (r < 0)
                                return r;
                } else {
                        ListedMessage *a = reallocarray(l->messages, l->n_messages + 1, sizeof(ListedMessage));
                        if (!a)
                                return -ENOMEM;
                        l->messages = a;
                        ListedMessage *m = &a[l->n_messages++];
                        *m = (ListedMessage) {
                                .id = strdup(id), .queue = strdup(queue), .sender = strdup(sender),
                                .arrival_usec = arrival, .size = size,
                        };
                        if (!m->id || !m->queue || !m->sender)
                                return -ENOMEM;
                        r = read_recipients(reply, m);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

/* The Reason property of a message object (its last deferral reason, or why it is held) becomes the
 * reason of each of its pending recipients: qmgr keeps one reason a message, and answers this from
 * memory, where the Recipients property would make it read the queue file of every message listed. */
static int read_reason(sd_bus_message *reply, ListedMessage *m) {
        const char *reason;
        int r;

        r = sd_bus_message_read(reply, "v", "s", &reason);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_recipients; i++) {
                char *copy = strdup(reason);

                if (!copy)
                        return -ENOMEM;
                free(m->recipients[i].reason);
                m->recipients[i].reason = copy;
        }
        return 0;
}

typedef struct ReasonCall {
        ListedMessage *message;
        unsigned *in_flight;
        int *error;
} ReasonCall;

static int on_reasons(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        ReasonCall *c = userdata;
        int r;

        (*c->in_flight)--;
        /* An error (the message has left the queue meanwhile) keeps the listing as it was. */
        if (!sd_bus_message_is_method_error(reply, NULL)) {
                r = read_reason(reply, c->message);
                if (r == -ENOMEM)
                        *c->error = r;
        }
        return 0;
}

static int collect_reasons(sd_bus *bus, QueueList *l) {
        _cleanup_free_ ReasonCall *calls = NULL;
        _cleanup_free_ sd_bus_slot **slots = NULL;
        unsigned in_flight = 0;
        int error = 0, r = 0;
        size_t next = 0;

        if (l->n_messages == 0)
                return 0;
        calls = calloc(l->n_messages, sizeof(ReasonCall));
        slots = calloc(l->n_messages, sizeof(sd_bus_slot *));
        if (!calls || !slots)
                return -ENOMEM;

        while (r >= 0 && error >= 0 && (next < l->n_messages || in_flight > 0)) {
                while (next < l->n_messages && in_flight < REASON_WINDOW) {
                        ListedMessage *m = &l->messages[next];
                        _cleanup_free_ char *path = NULL;

                        if (!streq(m->queue, "deferred") && !streq(m->queue, "hold")) {
                                next++;
                                continue;
                        }
                        if (asprintf(&path, QUEUE_BUS_MESSAGE_PREFIX "/%s", m->id) < 0)
                                return -ENOMEM;
                        if (!sd_bus_object_path_is_valid(path)) {
                                next++;
                                continue;
                        }
                        calls[next] = (ReasonCall) { .message = m, .in_flight = &in_flight, .error = &error };
                        r = sd_bus_call_method_async(bus, &slots[next], QUEUE_BUS_NAME, path,
                                                     "org.freedesktop.DBus.Properties", "Get", on_reasons,
                                                     &calls[next], "ss", QUEUE_BUS_MESSAGE_INTERFACE,
                                                     "Reason");
                        if (r < 0)
                                break;
                        in_flight++;
                        next++;
                }
                if (r < 0 || in_flight == 0)
                        continue;
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(bus, UINT64_MAX);
        }
        for (size_t i = 0; i < l->n_messages; i++)
                sd_bus_slot_unref(slots[i]);
        return r < 0 ? r : error;
}

int queue_client_list(sd_bus *bus, const char *queue, char *const *only, bool reasons, QueueList *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        QueueList l = {};
        int r;

        r = sd_bus_call_method(bus, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE, "ListMessages", &error,
                               &reply, "s", strempty(queue));
        if (r < 0)
                return queue_client_error("cannot list the queue", &error, r);
        r = read_listing(reply, only, &l);
        if (r >= 0 && reasons)
                r = collect_reasons(bus, &l);
        if (r < 0) {
                queue_list_done(&l);
                return queue_client_error("cannot read the queue manager's answer", NULL, r);
        }
        *ret = l;
        return 0;
}

static char queue_mark(const char *queue) {
        return streq(queue, "active") ? '*' : streq(queue, "hold") ? '!' : streq(queue, "corrupt") ? '#' : ' ';
}

static const char *sender_shown(const char *sender) {
        return isempty(sender) ? "MAILER-DAEMON" : sender;
}

/* The queue ID column of the table: an ID and its queue's mark. */
#define ID_COLUMN (QUEUE_ID_LEN + 1)

void queue_print_table(FILE *f, const QueueList *l) {
        uint64_t bytes = 0;

        if (l->n_messages == 0) {
                fputs("Mail queue is empty\n", f);
                return;
        }
        /* Postfix's layout for long queue IDs, its first column as wide as our IDs and their mark. */
        char head[ID_COLUMN + 1];
        memset(head, '-', ID_COLUMN);
        head[ID_COLUMN] = '\0';
        memcpy(head + (ID_COLUMN - 8) / 2, "Queue ID", 8);
        fprintf(f, "%s %8s %-19s %s\n", head, "--Size--", "----Arrival Time----", "--Sender/Recipient------");
        for (size_t i = 0; i < l->n_messages; i++) {
                const ListedMessage *m = &l->messages[i];
                _cleanup_free_ char *sender = log_escape(sender_shown(m->sender), strlen(sender_shown(m->sender)));
                char id[64], when[32] = "??";
                time_t t = (time_t) (m->arrival_usec / 1000000);
                const char *last_reason = NULL;
                struct tm tm;

                (void) snprintf(id, sizeof id, "%s%c", m->id, queue_mark(m->queue));
                if (localtime_r(&t, &tm))
                        (void) strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
                fprintf(f, "%-*s %8" PRIu64 " %19.19s %s\n", ID_COLUMN, id, m->size, when, strna(sender));
                for (size_t j = 0; j < m->n_recipients; j++) {
                        const ListedRecipient *rc = &m->recipients[j];
                        _cleanup_free_ char *address = log_escape(rc->address, strlen(rc->address));

                        /* Recipients that share a reason share its line, as in Postfix. */
                        if (!isempty(rc->reason) && (!last_reason || !streq(last_reason, rc->reason))) {
                                _cleanup_free_ char *reason = log_escape(rc->reason, strlen(rc->reason));
                                int len = reason ? (int) MIN(strlen(reason), (size_t) 76) : 0;

                                fprintf(f, "%*s(%s)\n", 76 - len, "", strna(reason));
                                last_reason = rc->reason;
                        }
                        fprintf(f, "%-*s %8s %-19s %s\n", ID_COLUMN, "", "", "", strna(address));
                }
                fputc('\n', f);
                bytes += m->size;
        }
        fprintf(f, "-- %" PRIu64 " Kbytes in %zu Request%s.\n", bytes / 1024, l->n_messages,
                l->n_messages == 1 ? "" : "s");
}

void queue_print_json(FILE *f, const QueueList *l) {
        for (size_t i = 0; i < l->n_messages; i++) {
                const ListedMessage *m = &l->messages[i];

                fputs("{\"queue_name\": ", f);
                json_string(f, m->queue);
                fputs(", \"queue_id\": ", f);
                json_string(f, m->id);
                fprintf(f, ", \"arrival_time\": %" PRIu64 ", \"message_size\": %" PRIu64
                        ", \"forced_expire\": false, \"sender\": ", m->arrival_usec / 1000000, m->size);
                json_string(f, sender_shown(m->sender));
                fputs(", \"recipients\": [", f);
                for (size_t j = 0; j < m->n_recipients; j++) {
                        fputs(j == 0 ? "{\"address\": " : ", {\"address\": ", f);
                        json_string(f, m->recipients[j].address);
                        if (!isempty(m->recipients[j].reason)) {
                                fputs(", \"delay_reason\": ", f);
                                json_string(f, m->recipients[j].reason);
                        }
                        fputc('}', f);
                }
                fputs("]}\n", f);
        }
}

int queue_client_act(sd_bus *bus, const char *method, char *const *ids, const char *reason, bool missing_ok,
                     unsigned *ret_count) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *what = NULL;
        uint32_t n;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, QUEUE_BUS_NAME, QUEUE_BUS_PATH, QUEUE_BUS_INTERFACE, method);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, (char **) ids);
        if (r >= 0 && reason)
                r = sd_bus_message_append_basic(m, 's', reason);
        /* polkit may ask the user, when there is an agent to ask through. */
        if (r >= 0)
                r = sd_bus_message_set_allow_interactive_authorization(m, true);
        if (r < 0)
                return queue_client_error("cannot build the call", NULL, r);

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                if (missing_ok && sd_bus_error_has_name(&error, POSTBUS_ERROR_NO_SUCH_MESSAGE)) {
                        *ret_count = 0;
                        return 0;
                }
                if (asprintf(&what, "%s failed", method) < 0)
                        what = NULL;
                return queue_client_error(what ?: method, &error, r);
        }
        r = sd_bus_message_read(reply, "u", &n);
        if (r < 0)
                return queue_client_error("cannot read the queue manager's answer", NULL, r);
        *ret_count = n;
        return 0;
}

int queue_client_select(sd_bus *bus, sd_bus_message *call, char ***ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char **ids = NULL;
        int r;

        r = sd_bus_call(bus, call, 0, &error, &reply);
        if (r < 0)
                return queue_client_error("cannot select messages", &error, r);
        r = sd_bus_message_read_strv(reply, &ids);
        if (r >= 0 && !ids) {
                ids = calloc(1, sizeof(char *));
                if (!ids)
                        r = -ENOMEM;
        }
        if (r < 0)
                return queue_client_error("cannot read the queue manager's answer", NULL, r);
        *ret = ids;
        return 0;
}

int queue_read_ids(FILE *f, char ***ret) {
        _cleanup_strv_free_ char **ids = NULL;
        _cleanup_free_ char *line = NULL;
        size_t n = 0, size = 0;
        ssize_t len;
        int r;

        while ((len = getline(&line, &size, f)) >= 0) {
                char *s = strstrip(line);

                if (isempty(s))
                        continue;
                r = strv_push(&ids, &n, strdup(s));
                if (r < 0)
                        return r;
        }
        if (ferror(f))
                return -EIO;
        if (!ids) {
                ids = calloc(1, sizeof(char *));
                if (!ids)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(ids);
        return 0;
}

int queue_parse_age(const char *s, uint64_t *ret_usec) {
        int64_t seconds;
        int r;

        r = config_parse_time(s, &seconds);
        if (r < 0)
                return r;
        if (seconds < 0 || (uint64_t) seconds > UINT64_MAX / 1000000)
                return -ERANGE;
        *ret_usec = (uint64_t) seconds * 1000000;
        return 0;
}

int queue_client_print_queue(bool json) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        QueueList l = {};
        int r;

        r = queue_client_open(&bus);
        if (r > 0)
                return r;
        r = queue_client_list(bus, NULL, NULL, true, &l);
        if (r > 0)
                return r;
        if (json)
                queue_print_json(stdout, &l);
        else
                queue_print_table(stdout, &l);
        queue_list_done(&l);
        return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}
