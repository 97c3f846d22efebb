/* cleanup.h: private to the cleanup role. */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "daemon.h"
#include "queue-id.h"

/* Most recipients one submission may carry; smtpd's smtpd_recipient_limit is far below. */
#define CLEANUP_RECIPIENTS_MAX 100000U
#define CLEANUP_ATTRS_MAX 64U
#define CLEANUP_ATTR_MAX 1024U

typedef struct Cleanup {
        Daemon *daemon;
        int incoming_fd;                /* queue_directory/incoming */
        BusServer *server;
        BusClient *qmgr;
} Cleanup;

extern const sd_bus_vtable cleanup_vtable[];

/* Writes one message into incoming/ and returns its queue ID. A rejection comes back as ret_reject
 * ("554 5.4.6 ..."), with 0 returned; a negative errno is a temporary failure. */
typedef struct CleanupRequest {
        int content_fd;
        const char *sender;
        char **recipients;
        char **attrs;                   /* "name=value" */
} CleanupRequest;

int cleanup_message_write(Cleanup *c, const CleanupRequest *req, char ret_id[static QUEUE_ID_SIZE],
                          char **ret_reject);

/* Building blocks of cleanup_message_write(), pure for unit tests. */
typedef struct CleanupHeaderScan {
        size_t header_end;              /* where missing headers go: before the empty line, or 0 */
        bool has_from, has_date, has_message_id;
        bool needs_separator;           /* the message has no empty line after its headers */
        unsigned received;
        char *message_id;               /* the value of Message-ID, if present */
} CleanupHeaderScan;

int cleanup_header_scan(const char *buf, size_t len, CleanupHeaderScan *ret);
void cleanup_header_scan_done(CleanupHeaderScan *s);
