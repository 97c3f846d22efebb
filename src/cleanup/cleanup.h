/* cleanup.h: private to the cleanup role. */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "daemon.h"
#include "cleanup-checks.h"
#include "queue-id.h"
#include "table.h"

/* Most recipients one submission may carry; smtpd's smtpd_recipient_limit is far below. */
#define CLEANUP_RECIPIENTS_MAX 100000U
#define CLEANUP_ATTRS_MAX 64U
#define CLEANUP_ATTR_MAX 1024U

typedef struct CleanupCommit {
        sd_bus_message *request;        /* the Submit call to answer */
        char id[QUEUE_ID_SIZE];
} CleanupCommit;

typedef struct Cleanup {
        Daemon *daemon;
        int incoming_fd;                /* queue_directory/incoming */
        BusServer *server;
        BusClient *qmgr;
        BusClient *rewrite;             /* canonical form of every address */

        char **mydestination;
        char **masquerade_domains;
        char **masquerade_exceptions;
        TableList *canonical_maps;
        TableList *sender_canonical_maps;
        TableList *recipient_canonical_maps;
        TableList *virtual_alias_maps;
        CleanupChecks *header_checks;

        /* Messages renamed into incoming/ whose directory entry is not yet on disk: one fsync of the
         * directory makes all of them durable, and only then are they answered (group commit). */
        sd_event_source *commit_source;
        CleanupCommit *commits;
        size_t n_commits, size_commits;
} Cleanup;

/* org.postbus.Cleanup1 at /org/postbus/Cleanup1, on $rundir/cleanup (peer-to-peer, callers are smtpd, pickup
 * and local):
 *   Submit(h content, s sender, a(sss) recipients, a{ss} attributes) -> s queue_id
 * content: the message, a sealed memory file or a regular file, LF line ends. sender: "" for <>.
 * recipients: (address, NOTIFY, ORCPT) each; NOTIFY and ORCPT as RFC 3461 has them ("NEVER" or a list of
 * SUCCESS, FAILURE, DELAY; "type;xtext"), "" where not given; kept per recipient in the queue file ('O').
 * attributes: client_address, client_name, client_port, helo_name, protocol; uid (local submission);
 * extract_recipients=yes (sendmail -t); dsn_ret (FULL, HDRS) and dsn_envid (xtext) of RFC 3461;
 * smtputf8=yes and body_type (7BIT, 8BITMIME) as the client declared them.
 * Errors: org.postbus.Error.InvalidArguments (malformed input), .Rejected ("5xx x.y.z text": permanent),
 * .TemporaryFailure ("4xx x.y.z text"). */
extern const sd_bus_vtable cleanup_vtable[];

/* Writes one message into incoming/ and returns its queue ID. A rejection comes back as ret_reject
 * ("554 5.4.6 ..."), with 0 returned; a negative errno is a temporary failure. */
/* An edit of the header section: the bytes start..end are replaced by text, or removed (text NULL). */
typedef struct CleanupRange {
        size_t start, end;
        const char *text;
} CleanupRange;

typedef struct CleanupRequest {
        const char *content;            /* the submitted message, mapped */
        size_t size;
        const char *sender;
        char **recipients;
        char **attrs;                   /* "name=value" */
        const char **dsn_notify;        /* per recipient, RFC 3461 NOTIFY or NULL/""; NULL: none at all */
        const char **dsn_orcpt;         /* per recipient, RFC 3461 ORCPT or NULL/""; NULL: none at all */
        const CleanupRange *edits;      /* headers left out, addresses rewritten: in order, disjoint */
        size_t n_edits;
        const char *hold;               /* the reason the message goes to the hold queue, or NULL */
} CleanupRequest;

/* The queue file is written and synced and renamed into incoming/, but its directory entry is durable
 * only after cleanup_commit_later() has run its course: answer the caller through it. */
int cleanup_message_write(Cleanup *c, const CleanupRequest *req, char ret_id[static QUEUE_ID_SIZE],
                          char **ret_reject);

/* Answers request with the queue ID once incoming/ has been synced, together with every other message
 * written in the same turn of the event loop; then wakes qmgr. */
int cleanup_commit_later(Cleanup *c, sd_bus_message *request, const char *id);
int cleanup_commit_setup(Cleanup *c);
void cleanup_commit_done(Cleanup *c);

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

/* cleanup-message.c */
const char *cleanup_attr_get(char **attrs, const char *name);
void cleanup_wake_qmgr(Cleanup *c, const char *id);

/* cleanup-job.c: one submission, from the request to the reply: header checks, recipients from the
 * headers, rewrite's canonical form, canonical maps, masquerading, virtual aliases, the queue file. Takes
 * recipients and attrs; replies to m itself. A negative errno: nothing was started, the caller answers. */
int cleanup_job_start(Cleanup *c, sd_bus_message *m, int fd, const char *sender, char **recipients,
                      char **dsn_notify, char **dsn_orcpt, char **attrs);

/* A display name as an RFC 5322 phrase: as it is when it is all atoms, else a quoted string. */
char *cleanup_phrase(const char *name);
