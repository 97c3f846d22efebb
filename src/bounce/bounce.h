/* bounce.h: private to the bounce role: the per-message logs (bounce-log.c), the RFC 3464 reports
 * (bounce-report.c), the notices sent through cleanup (bounce-notice.c) and org.postbus.Bounce1
 * (bounce-bus.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "daemon.h"
#include "queue-file.h"
#include "queue-id.h"

/* ---- bounce-log.c: $queue_directory/{bounce,defer,trace}/<queue id> ---------------------------------- */

typedef enum BounceLogKind {
        BOUNCE_LOG_KIND_BOUNCE,         /* recipients that failed for good */
        BOUNCE_LOG_KIND_DEFER,          /* recipients that were deferred, and whether the sender was warned */
        BOUNCE_LOG_KIND_TRACE,          /* successes the sender asked to hear about (NOTIFY=SUCCESS) */
        _BOUNCE_LOG_KIND_MAX,
        _BOUNCE_LOG_KIND_INVALID = -EINVAL,
} BounceLogKind;

const char *bounce_log_kind_to_string(BounceLogKind k);
BounceLogKind bounce_log_kind_from_string(const char *s);

/* A log is a record stream in the queue file's framing (QueueWriter): the magic record, then one entry of
 * nine records per recipient, in this order, and 'W' records between entries. */
#define BOUNCE_LOG_MAGIC "postbus-bounce-log-1"
typedef enum BounceLogRecordType {
        BOUNCE_REC_MAGIC = 'P',
        BOUNCE_REC_RECIPIENT = 'R',     /* starts an entry */
        BOUNCE_REC_ORIGINAL = 'F',      /* the recipient before alias expansion, "" when the same */
        BOUNCE_REC_ORCPT = 'O',         /* the DSN ORCPT, "type;xtext" or "" */
        BOUNCE_REC_NOTIFY = 'N',        /* the DSN NOTIFY, or "" */
        BOUNCE_REC_ACTION = 'A',        /* failed, delayed, delivered, expanded, relayed */
        BOUNCE_REC_STATUS = 'S',        /* the enhanced status code */
        BOUNCE_REC_RELAY = 'H',         /* as Delivery1 reports it: "local", "none", "host[addr]:port" */
        BOUNCE_REC_TEXT = 'X',          /* the diagnostic */
        BOUNCE_REC_TIME = 'T',          /* microseconds since the epoch, decimal; ends the entry */
        BOUNCE_REC_WARNED = 'W',        /* defer log: a delay warning was sent (the time, decimal) */
} BounceLogRecordType;

/* Bounds on what a peer may put into a log. */
#define BOUNCE_TEXT_MAX 4096U
#define BOUNCE_RELAY_MAX 1024U
#define BOUNCE_RECORDS_PER_CALL_MAX 100000U
/* A log larger than this is not read whole: the calls on that message fail until it is removed. */
#define BOUNCE_LOG_SIZE_MAX (256U * 1024U * 1024U)

typedef struct BounceRecord {
        char *recipient;
        char *original_recipient;
        char *orcpt;
        char *notify;
        char *action;
        char *status;
        char *relay;
        char *text;
        uint64_t time_usec;
} BounceRecord;

typedef struct BounceLog {
        BounceRecord *records;
        size_t n_records;
        bool warned;
} BounceLog;

void bounce_record_done(BounceRecord *r);
BounceLog *bounce_log_free(BounceLog *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(BounceLog *, bounce_log_free);

/* Whether a record (from a peer) may go into a log: -EINVAL with a short reason in *ret_why otherwise. */
int bounce_record_check(const BounceRecord *r, const char **ret_why);
/* Whether s is an enhanced status code, class 2, 4 or 5 ("5.1.1"). */
bool bounce_status_valid(const char *s);

/* Parses a log over (buf, len). Never fails on bad input: it returns the entries up to the first thing that
 * is not a complete, well-formed entry, and in *ret_valid the length of that good prefix (== len for a
 * sound log; less after a torn write or damage). */
int bounce_log_parse(const char *buf, size_t len, BounceLog **ret, size_t *ret_valid);

/* Writes entries (and a 'W' record when warned) with w; the magic record first when magic is set. */
int bounce_log_write(QueueWriter *w, bool magic, const BounceRecord *records, size_t n, bool warned);

/* Reads a log; a missing one is an empty log. -EFBIG beyond BOUNCE_LOG_SIZE_MAX. */
int bounce_log_read(int dir_fd, const char *id, BounceLog **ret);

/* Appends durably: O_APPEND, the records, fdatasync, and the directory synced when the file is new. A torn
 * tail that an earlier crash left is cut off first. */
int bounce_log_append(int dir_fd, const char *id, const BounceRecord *records, size_t n, bool warned);

/* The last record of each recipient (recipient and original recipient), in the order of the log, as
 * borrowed copies: a recipient deferred three times appears once. */
int bounce_log_latest(const BounceLog *l, BounceRecord **ret, size_t *ret_n);

/* Unlinks a log (none is fine) and syncs its directory. */
int bounce_log_remove(int dir_fd, const char *id);

/* ---- bounce-report.c: RFC 3464 delivery status notifications ------------------------------------------ */

typedef enum BounceReportKind {
        BOUNCE_REPORT_FAILURE,
        BOUNCE_REPORT_DELAY,
        BOUNCE_REPORT_SUCCESS,
        _BOUNCE_REPORT_KIND_MAX,
        _BOUNCE_REPORT_KIND_INVALID = -EINVAL,
} BounceReportKind;

typedef struct BounceReport {
        BounceReportKind kind;
        bool postmaster;                /* for the postmaster: a copy, or a report that cannot go back to <> */
        const char *myhostname;
        const char *queue_id;           /* NULL: the message never had one (Reject) */
        const char *sender;             /* the original envelope sender, "" for <> */
        const char *to;                 /* who gets this report */
        const char *message_id;         /* "<...@host>" */
        const char *envid;              /* the DSN ENVID (xtext), or NULL */
        const char *ret;                /* the DSN RET: "FULL", "HDRS" or NULL */
        uint64_t arrival_usec;
        uint64_t now_usec;
        uint64_t retry_until_usec;      /* delay reports: when the message will be given up */
        const BounceRecord *records;
        size_t n_records;
        const char *content;            /* the original as read, LF line ends: whole, or at least its headers */
        size_t content_size;
        uint64_t original_size;         /* of the whole original */
        uint64_t size_limit;            /* bounce_size_limit */
} BounceReport;

/* Whether the recipient's NOTIFY lets it appear in a report of this kind ("" is RFC 3461's default:
 * failures and delays). NEVER never does. */
bool bounce_record_notify_allows(const BounceRecord *r, BounceReportKind kind);

/* Whether the report returns the whole original (message/rfc822), or only its headers
 * (text/rfc822-headers): RET=HDRS, over size_limit, delay warnings, postmaster notices, and success
 * reports unless RET=FULL. */
bool bounce_report_full_content(const BounceReport *r);

/* The report as a message with LF line ends, ready for cleanup. */
int bounce_report_compose(const BounceReport *r, char **ret, size_t *ret_size);

/* RFC 5322 date of a time in microseconds, in local time. */
void bounce_format_date(uint64_t usec, char *buf, size_t size);

/* ---- the role ------------------------------------------------------------------------------------------ */

typedef enum BounceNotifyClass {
        BOUNCE_CLASS_BOUNCE = 1 << 0,
        BOUNCE_CLASS_2BOUNCE = 1 << 1,
        BOUNCE_CLASS_DATA = 1 << 2,
        BOUNCE_CLASS_DELAY = 1 << 3,
        BOUNCE_CLASS_POLICY = 1 << 4,
        BOUNCE_CLASS_PROTOCOL = 1 << 5,
        BOUNCE_CLASS_RESOURCE = 1 << 6,
        BOUNCE_CLASS_SOFTWARE = 1 << 7,
} BounceNotifyClass;

/* notify_classes: a list of class names (bounce-report.c). -EINVAL with the unknown word in *ret_bad. */
int bounce_notify_classes_parse(const char *value, unsigned *ret_mask, char **ret_bad);

typedef struct BounceJob BounceJob;
typedef struct BounceParked BounceParked;

typedef struct Bounce {
        Daemon *daemon;
        BusServer *server;
        BusClient *cleanup;
        int log_fds[_BOUNCE_LOG_KIND_MAX];      /* $queue_directory/bounce, defer, trace */
        unsigned notify_classes;
        BounceJob *jobs;                        /* Finish, Warn and Reject calls waiting for cleanup */
        BounceParked *parked;                   /* calls for a message that has a job in flight, in order */
        bool unparking;
} Bounce;

/* The original message as a report needs it. */
typedef struct BounceMessage {
        const char *queue_id;           /* NULL for Reject */
        const char *sender;
        const char *envid;
        const char *ret;
        uint64_t arrival_usec;
        char *content;                  /* owned */
        size_t content_size;
        uint64_t original_size;
} BounceMessage;

/* ---- bounce-notice.c: reports through cleanup --------------------------------------------------------- */

typedef enum BounceJobKind {
        BOUNCE_JOB_FINISH,              /* replies "as": the notices' queue IDs; removes all logs at the end */
        BOUNCE_JOB_WARN,                /* replies "s"; marks the defer log warned */
        BOUNCE_JOB_REJECT,              /* replies "s" */
        _BOUNCE_JOB_KIND_MAX,
        _BOUNCE_JOB_KIND_INVALID = -EINVAL,
} BounceJobKind;

int bounce_job_new(Bounce *b, BounceJobKind kind, sd_bus_message *request, const char *queue_id, BounceJob **ret);
BounceJob *bounce_job_free(BounceJob *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(BounceJob *, bounce_job_free);

/* Queues the notices for a report of this kind on records (filtered by NOTIFY here): to the sender, or for
 * mail from <> to 2bounce_notice_recipient, and the postmaster's copy that notify_classes asks for. Mail
 * from double_bounce_sender gets none. A job of kind FINISH removes the log the records came from once the
 * first notice is in the queue (log: that kind, or -1). */
int bounce_job_add_report(BounceJob *j, BounceReportKind kind, const BounceMessage *msg, const BounceRecord *records,
                          size_t n, int log);

/* Sends the notices one after the other, then answers the request and frees the job. */
void bounce_job_start(BounceJob *j);

/* Whether a Finish, Warn or Reject for this queue ID is in flight. */
bool bounce_busy(Bounce *b, const char *queue_id);
/* Holds a call until the job for its queue ID is done; then handler runs again on it. */
int bounce_park(Bounce *b, sd_bus_message *m, sd_bus_message_handler_t handler, const char *queue_id);
/* Runs the parked calls for queue_id, in order, until one starts a job of its own. */
void bounce_unpark(Bounce *b, const char *queue_id);
void bounce_parked_free_all(Bounce *b);

/* Whether addr is double_bounce_sender (qualified with myorigin or myhostname, or as written). */
bool bounce_is_double_bounce_sender(Bounce *b, const char *addr);

/* ---- bounce-bus.c ---- */
extern const sd_bus_vtable bounce_vtable[];
