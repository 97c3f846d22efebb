/* queue-client.h: what postbusctl, postqueue, postsuper and mailq share as thin clients of
 * org.postbus.Queue1 on the system bus: the listing, Postfix's two listing formats, calls on lists of
 * IDs, and one way of turning a failed call into a line on stderr and a sysexits status. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#include "macro.h"

typedef struct ListedRecipient {
        char *address;
        char *reason;           /* the last deferral reason, "" when none is known */
} ListedRecipient;

typedef struct ListedMessage {
        char *id;
        char *queue;
        char *sender;           /* "" for the null sender */
        uint64_t arrival_usec;
        uint64_t size;
        ListedRecipient *recipients;     /* the pending ones */
        size_t n_recipients;
} ListedMessage;

typedef struct QueueList {
        ListedMessage *messages;
        size_t n_messages;
} QueueList;

void queue_list_done(QueueList *l);

/* Connects to the system bus; on failure writes the line and returns a sysexits status (>0). */
int queue_client_open(sd_bus **ret);

/* One line on stderr, "<program>: <what>: <the error's message>", and the sysexits status of a failed
 * call: EX_UNAVAILABLE when qmgr is not there, EX_NOPERM when refused, EX_USAGE for a malformed
 * argument, EX_NOINPUT for no such message or destination, else EX_SOFTWARE. */
int queue_client_error(const char *what, const sd_bus_error *error, int r);

/* postqueue -f and -s site, sendmail -q, -qRsite and -qSsite: FlushQueue, or FlushDestination(site) when
 * site is not NULL. A destination with no mail queued is nothing to do, as in Postfix. Returns EX_OK or
 * the status of queue_client_error(). */
int queue_client_flush(const char *site);

/* ListMessages(queue) into *ret ("" or NULL: every queue). With reasons, the last deferral reason of
 * a deferred or held message comes from the Reason property of its org.postbus.Message1 object, read
 * with many calls in flight (a message gone meanwhile keeps its listing without reasons). Returns 0 or the status of
 * queue_client_error(). When only is not NULL, just the messages whose ID it lists are kept. */
int queue_client_list(sd_bus *bus, const char *queue, char *const *only, bool reasons, QueueList *ret);
/* mailq and postqueue -p (the table) or postqueue -j (json): the whole queue on standard output, reasons
 * included. Returns 0, EX_IOERR when standard output failed (errno says why), or the status of an error
 * it has told the user of. */
int queue_client_print_queue(bool json);

/* Postfix's postqueue -p (mailq) table, with the long queue ID layout, as Postfix prints it when
 * enable_long_queue_ids is set (postbus's IDs are 16 characters). */
void queue_print_table(FILE *f, const QueueList *l);
/* Postfix's postqueue -j: one JSON object per message and line. */
void queue_print_json(FILE *f, const QueueList *l);

/* Calls method(as ids[, s reason]) → u. Returns 0 with *ret_count, or the status of
 * queue_client_error(); with missing_ok, NoSuchMessage is a count of 0. */
int queue_client_act(sd_bus *bus, const char *method, char *const *ids, const char *reason, bool missing_ok,
                     unsigned *ret_count);

/* SelectMessages(filter) → as, as a NULL-terminated vector (empty, not NULL, when nothing matched: a NULL
 * `only` of queue_client_list() would mean every message). Returns 0 or the status of
 * queue_client_error(). */
int queue_client_select(sd_bus *bus, sd_bus_message *call, char ***ret);

/* Reads queue IDs, one a line (white space around them ignored, empty lines skipped), from f. */
int queue_read_ids(FILE *f, char ***ret);

/* "1h", "30m", "2d", plain seconds → microseconds. */
int queue_parse_age(const char *s, uint64_t *ret_usec);
