/* cleanup.h: private to the cleanup role: what the files of the cleanup process share, the submission in
 * progress (CleanupJob) among them. */
#pragma once

#include <sys/stat.h>
#include <systemd/sd-bus.h>

#include "answer-cache.h"
#include "bus-util.h"
#include "daemon.h"
#include "header-checks.h"
#include "mime.h"
#include "queue-id.h"
#include "receive-override.h"
#include "string-util.h"
#include "table.h"

/* Most recipients one submission may carry; smtpd's smtpd_recipient_limit is far below. */
#define CLEANUP_RECIPIENTS_MAX 100000U
#define CLEANUP_ATTRS_MAX 64U
#define CLEANUP_ATTR_MAX 1024U
/* Submitted messages up to this size are read into memory, larger ones mapped. */
#define CLEANUP_READ_MAX (128U * 1024U)

/* cleanup-sync.c: a written queue file to sync and rename into incoming/ and to make its name durable with one
 * sync of incoming/ for all that were renamed meanwhile (group commit), on one of cleanup_sync_threads worker
 * threads; done runs on the event loop afterwards, once both are on disk or the item failed. */
typedef struct CleanupSyncItem CleanupSyncItem;
struct CleanupSyncItem {
        CleanupSyncItem *next;
        int fd;                         /* the written queue file (closed when done) */
        char tmp[QUEUE_ID_SIZE + 4];    /* its name in incoming/, "<ID>.tmp" */
        char id[QUEUE_ID_SIZE];         /* the name it gets; a fresh ID if that was taken */
        int error;                      /* 0 or the negative errno of the failed call; the file is gone then */
        bool collided;                  /* id changed */
        bool dir_failed;                /* error is the sync of incoming/'s (id was removed again) */
        int unlink_error;               /* ... and that removal's, or 0 */
        void *file;                     /* not the sync's: the file's bytes, when one write took it whole and
                                         * it is small, for qmgr's WakeInline; or NULL */
        size_t file_size;
        void (*done)(CleanupSyncItem *item, void *userdata);
        void *userdata;
};
typedef struct CleanupSync CleanupSync;
/* dir_fd: incoming/, borrowed. dir_sync: incoming/ is synced after the renames; without, each file is synced
 * after its own rename. With 0 threads every item's file is done in cleanup_sync_submit() itself and the
 * directory once per turn of the event loop. */
int cleanup_sync_new(sd_event *e, int dir_fd, bool dir_sync, unsigned n_threads, CleanupSync **ret);
bool cleanup_sync_file_carries_name(int dir_fd);
/* here: in the calling thread (item->done is called before it returns), as without threads. */
void cleanup_sync_submit(CleanupSync *s, CleanupSyncItem *item, bool here);
/* Lets the threads finish their items, answers them all, and frees s; items submitted then are done at once. */
CleanupSync *cleanup_sync_free(CleanupSync *s);

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
        TableList *sender_bcc_maps;
        TableList *recipient_bcc_maps;
        TableList *header_checks;
        TableList *mime_header_checks;
        TableList *nested_header_checks;
        TableList *body_checks;
        ByteSet reject_chars;           /* message_reject_characters */
        ByteSet strip_chars;            /* message_strip_characters */
        bool mime;                      /* MIME structure followed (not disable_mime_input_processing) */
        bool inspect_notices;           /* internal_mail_filter_classes names bounce or notify */
        bool propagate_canonical;       /* propagate_unmatched_extensions names canonical */
        bool propagate_virtual;         /* ... and virtual */

        CleanupSync *sync;
        unsigned n_jobs;                /* submissions in progress */
        AnswerCache rewrite_cache;      /* rewrite's recent answers: address -> canonical form */
} Cleanup;

/* org.postbus.Cleanup1 at /org/postbus/Cleanup1, on $rundir/cleanup (peer-to-peer, callers are smtpd, pickup
 * and local):
 *   Submit(h content, s sender, a(sss) recipients, a{ss} attributes) -> s queue_id
 *   SubmitInline(ay content, s sender, a(sss) recipients, a{ss} attributes) -> s queue_id
 * content: the message, LF line ends: a sealed memory file (Submit), or its bytes in the call, which saves
 * the memory file's system calls on both sides for a small message (SubmitInline). sender: "" for <>.
 * recipients: (address, NOTIFY, ORCPT) each; NOTIFY and ORCPT as RFC 3461 has them ("NEVER" or a list of
 * SUCCESS, FAILURE, DELAY; "type;xtext"), "" where not given; kept per recipient in the queue file ('O').
 * attributes: client_address, client_name, client_port, helo_name, protocol; uid (local submission);
 * extract_recipients=yes (sendmail -t); dsn_ret (FULL, HDRS) and dsn_envid (xtext) of RFC 3461;
 * smtputf8=yes and body_type (7BIT, 8BITMIME) as the client declared them; queue_id, the ID the submitter
 * proposes (smtpd and pickup make one when the milters are asked, which see it as the macro "i"): the
 * message gets it unless a queue file has it already (then a fresh one, as without it);
 * receive_override_options, those of the submitting service that are cleanup's (no_address_mappings: no
 * canonical maps, masquerading, automatic BCC or virtual aliases; no_header_body_checks: none of the
 * header and body checks), taken from smtpd and pickup, never written into the queue file.
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
        const char *content;            /* the submitted message */
        size_t size;
        const char *sender;
        char **recipients;
        char **attrs;                   /* "name=value" */
        const char **dsn_notify;        /* per recipient, RFC 3461 NOTIFY or NULL/""; NULL: none at all */
        const char **dsn_orcpt;         /* per recipient, RFC 3461 ORCPT or NULL/""; NULL: none at all */
        const CleanupRange *edits;      /* headers, body lines and addresses changed: in order, disjoint */
        size_t n_edits;
        const char *hold;               /* the reason the message goes to the hold queue, or NULL */
        char **prepend;                 /* headers written before Received, or NULL */
        const char *filter;             /* FILTER (smtpd access, header_checks): replaces the content_filter attribute */
        const char *queue_id;           /* the submitter's proposal, valid, or NULL */
} CleanupRequest;

/* Writes the queue file as incoming/<ID>.tmp and fills item (fd, tmp, id) for cleanup_sync_submit(), which
 * syncs and renames it and syncs incoming/: answer the caller once it is done. ret_message_id: the Message-ID,
 * escaped for the log, or NULL. */
int cleanup_message_write(Cleanup *c, const CleanupRequest *req, CleanupSyncItem *item, char **ret_reject,
                          char **ret_message_id);
/* The log records of a message that is now in incoming/ under id. */
void cleanup_message_log(const char *id, const char *sender, const char *hold, const char *message_id);

/* The queue file threads (cleanup-sync.c), and their end: what is written is answered before exiting. */
int cleanup_commit_setup(Cleanup *c);
void cleanup_commit_done(Cleanup *c);

/* Building blocks of cleanup_message_write(), pure for unit tests. */
typedef struct CleanupHeaderScan {
        size_t header_end;              /* where missing headers go: before the empty line, or 0 */
        bool has_from, has_date, has_message_id;
        bool has_to_or_cc;              /* To, Cc, Resent-To or Resent-Cc */
        bool needs_separator;           /* the message has no empty line after its headers */
        unsigned received;
        char *message_id;               /* the value of Message-ID, if present */
} CleanupHeaderScan;

int cleanup_header_scan(const char *buf, size_t len, CleanupHeaderScan *ret);
void cleanup_header_scan_done(CleanupHeaderScan *s);

/* cleanup-message.c */
const char *cleanup_attr_get(char **attrs, const char *name);
/* Best effort: qmgr finds the message on its next scan anyway. */
void cleanup_wake_qmgr(Cleanup *c, const char *id, const void *file, size_t file_size);

/* A submission's content: a sealed memory file of size bytes (Submit), or the bytes of the call itself
 * (SubmitInline, fd negative). */
typedef struct CleanupContent {
        int fd;
        const void *bytes;
        uint64_t size;
} CleanupContent;

/* cleanup-job.c: one submission, from the request to the reply: header checks, recipients from the
 * headers, rewrite's canonical form, canonical maps, masquerading, virtual aliases, the queue file. Takes
 * recipients and attrs; replies to m itself. The content is read or mapped, not kept. A negative errno:
 * nothing was started, the caller answers. */
int cleanup_job_start(Cleanup *c, sd_bus_message *m, const CleanupContent *content, const char *sender,
                      char **recipients, char **dsn_notify, char **dsn_orcpt, char **attrs);

/* cleanup-headers.c: a display name as an RFC 5322 phrase: as it is when it is all atoms, else a quoted
 * string. */
char *cleanup_phrase(const char *name);

/* ---- one submission: cleanup-job.c (its course), cleanup-job-headers.c (the header pass),
 * cleanup-virtual.c (virtual aliases), cleanup-job-fail.c (the answers that are not a queue ID) ---- */

typedef struct CleanupJob CleanupJob;
typedef void (*CleanupJobStep)(CleanupJob *j);
typedef struct CleanupVirtualNode CleanupVirtualNode;

/* An address in a header that canonical maps and masquerading may change. */
typedef struct CleanupHeaderAddress {
        size_t start, end;              /* of the addr-spec in the content */
        char *original;
        char *address;                  /* what it becomes */
        bool sender;                    /* From, Sender, Reply-To, ...: else To, Cc, ... */
} CleanupHeaderAddress;

/* Most addresses in the headers of one message that cleanup rewrites; those beyond are left alone. */
#define CLEANUP_HEADER_ADDRESSES_MAX 10000U

struct CleanupJob {
        Cleanup *cleanup;
        sd_bus_message *request;
        void *content;                  /* the submitted message, read or (larger than CLEANUP_READ_MAX) mapped,
                                         * or in the request itself (SubmitInline: borrowed, not to be freed) */
        bool mapped;
        bool borrowed;
        size_t size;

        char *sender;
        char **recipients;
        size_t n_recipients;
        size_t bcc_first;               /* recipients from here on are automatic BCC ones (NOTIFY=NEVER) */
        char **dsn_notify, **dsn_orcpt; /* RFC 3461, per submitted recipient ("" where not given) */
        size_t n_dsn;
        char **attrs;

        CleanupRange *drops;            /* headers and body lines left out, replaced or prepended to */
        size_t n_drops;
        char **edit_texts;              /* the texts of those edits, owned */
        size_t n_edit_texts;
        CleanupHeaderAddress *header_addresses;
        size_t n_header_addresses;
        char *hold;
        bool discard;
        char queue_id[QUEUE_ID_SIZE];   /* the submitter's proposal, or "" */
        unsigned receive_override;      /* what the submitter's receive_override_options leave out of cleanup's
                                         * work (RECEIVE_OVERRIDE_CLEANUP bits) */
        char **prepend;                 /* headers smtpd's access tables added (PREPEND), in order */
        char *filter;                   /* FILTER transport:nexthop (smtpd access or header_checks), or NULL */
        char *reject;                   /* "550 5.7.1 ...": the permanent answer */
        char *defer;                    /* "451 4.3.0 ...": the temporary answer */

        unsigned pending;               /* rewrite calls in flight */
        char ***queue;                  /* the slots of this round, sent a window at a time */
        size_t n_queue, queue_next;
        CleanupJobStep next;            /* what runs once they are all back */

        CleanupVirtualNode *nodes, *frontier;
        size_t n_nodes;

        CleanupSyncItem sync;           /* the written queue file, on its way into incoming/ */
        char *message_id;               /* for the log, once it is there */
};

/* Frees a job in any state (half-built too) and tells the daemon it is one submission less busy. */
CleanupJob *cleanup_job_free(CleanupJob *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(CleanupJob *, cleanup_job_free);
/* Asks rewrite for the canonical form of *slot in the coming round; the answer replaces it (at once when it is
 * a recent one). */
void cleanup_job_rewrite(CleanupJob *j, char **slot);
/* Appends a recipient (a copy of address); -E2BIG beyond CLEANUP_RECIPIENTS_MAX. */
int cleanup_job_add_recipient(CleanupJob *j, const char *address);
/* Looks *addr up in each table list given, in order; the first match replaces it, and goes to rewrite again in
 * the coming round. A lookup failure answers the submitter and frees j: -errno. */
int cleanup_job_canonicalize(CleanupJob *j, char **addr, TableList *first, TableList *second);
/* Sends the round; next runs when its last answer is in (at once when nothing was asked), unless the
 * answer is known by then: that is given instead. */
void cleanup_job_round_start(CleanupJob *j, CleanupJobStep next);
/* The last step: the final recipients, the header edits, the queue file, the reply. */
void cleanup_job_write(CleanupJob *j);

/* cleanup-job-fail.c. The temporary answer, unless one (or a rejection) is set already. */
void cleanup_job_defer(CleanupJob *j, const char *text);
/* The permanent answer, replacing any other; -ENOMEM. */
int cleanup_job_reject(CleanupJob *j, const char *fmt, ...) _printf_(2, 3);
/* Answers the submitter with the rejection, the temporary failure, or an internal error, and frees j. */
void cleanup_job_reply_error(CleanupJob *j);
/* cleanup_job_defer() and cleanup_job_reply_error(): the end of j. */
void cleanup_job_fail(CleanupJob *j, const char *text);

/* cleanup-job-headers.c. header_checks, the addresses of sender and recipient headers, and for sendmail
 * -t the recipients of To, Cc and Bcc (the header section is content[0..header_end)). A rejection is
 * j->reject, with 0; -E2BIG: too many recipients. */
int cleanup_job_header_pass(CleanupJob *j, size_t header_end);
/* Whether header_checks, body_checks and the message_*_characters apply to j (not to notices, by default,
 * nor with receive_override_options = no_header_body_checks). */
bool cleanup_job_content_inspected(CleanupJob *j);
/* message_reject_characters and message_strip_characters on the whole content, before any other check (which
 * then sees it stripped): a rejection is j->reject, with 0. */
int cleanup_job_characters(CleanupJob *j);
/* body_checks on each body line (the body starts at header_end); a rejection is j->reject, with 0. */
int cleanup_job_body_pass(CleanupJob *j, size_t header_end);
/* header_checks or body_checks ("header", "body": what) on logical, the header or line at start..end of the
 * content: 1 when it is left out or replaced, 0 to go on with it; a rejection is j->reject. */
int cleanup_job_check(CleanupJob *j, const char *what, TableList *tables, const char *logical, size_t start,
                      size_t end);
/* The edits of the content, in order: the headers and body lines left out, replaced or prepended to, and
 * the addresses that changed outside them. */
int cleanup_job_header_edits(CleanupJob *j, CleanupRange **ret, size_t *ret_n);
void cleanup_job_header_addresses_free(CleanupJob *j);

/* cleanup-bcc.c. Adds the automatic BCC recipients of new mail (always_bcc, sender_bcc_maps,
 * recipient_bcc_maps) after j->recipients, from j->bcc_first on, in canonical form; then
 * cleanup_virtual_start(). */
void cleanup_bcc_start(CleanupJob *j);

/* cleanup-virtual.c. Expands the recipients through virtual_alias_maps round by round, each round's
 * results in canonical form again; then cleanup_job_write(). */
void cleanup_virtual_start(CleanupJob *j);
/* The final recipients (borrowed, NULL-terminated): the leaves of the expansion in the order of expansion,
 * or the recipients when nothing was expanded; and for each the index in j->recipients of the recipient it
 * came from. */
int cleanup_virtual_final(CleanupJob *j, char ***ret, size_t **ret_roots, size_t *ret_n);
void cleanup_virtual_free(CleanupJob *j);
