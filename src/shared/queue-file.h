/* queue-file.h: the queue file, a typed record stream (envelope, content, end marker), and the queue
 * directories. Readers accept only allow-listed record types in their section and fail on truncation
 * and on trailing bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "macro.h"
#include "queue-id.h"
#include "record.h"

/* A record: one type byte, a 4-byte big-endian length, then the data (record.h). */
#define QUEUE_RECORD_HEADER RECORD_HEADER
#define QUEUE_RECORD_MAX RECORD_MAX
#define QUEUE_MAGIC "postbus-queue-1"

typedef enum QueueRecordType {
        QUEUE_REC_MAGIC = 'P',          /* first record: QUEUE_MAGIC */
        QUEUE_REC_TIME = 'T',           /* arrival, microseconds since the epoch, decimal */
        QUEUE_REC_ATTR = 'A',           /* "name=value": client_address, helo_name, protocol, ... */
        QUEUE_REC_SENDER = 'S',         /* envelope sender, "" for the null sender */
        QUEUE_REC_RECIPIENT = 'R',      /* a recipient still to be delivered */
        QUEUE_REC_DONE = 'D',           /* a recipient finished (qmgr rewrites 'R' in place) */
        QUEUE_REC_DSN_RECIPIENT_OPTIONS = 'O',  /* right after an 'R' or 'D': its RFC 3461 DSN options,
                                                 * "NOTIFY=<list>", "ORCPT=<type;xtext>" or both, space-separated */
        QUEUE_REC_MESSAGE = 'M',        /* end of envelope, start of content (empty) */
        QUEUE_REC_CONTENT = 'C',        /* a piece of the message, LF line ends */
        QUEUE_REC_END = 'E',            /* end marker (empty); nothing may follow */
} QueueRecordType;

/* The sections of a queue file, each closed by the record named: the magic; the arrival time; attributes,
 * closed by the sender; recipients (each may be followed by its DSN options), closed by the message
 * marker; content, closed by the end marker. A maildrop file has the same sections. */
typedef enum QueueSection {
        QUEUE_SECTION_MAGIC,
        QUEUE_SECTION_TIME,
        QUEUE_SECTION_ATTRS,
        QUEUE_SECTION_RECIPIENTS,
        QUEUE_SECTION_CONTENT,
        _QUEUE_SECTION_MAX,
} QueueSection;

/* The allow-list of record types per section, for record_reader_*(). */
extern const RecordFormat queue_file_format;

typedef enum QueueName {
        QUEUE_INCOMING,
        QUEUE_ACTIVE,
        QUEUE_DEFERRED,
        QUEUE_HOLD,
        QUEUE_CORRUPT,
        _QUEUE_NAME_MAX,
        _QUEUE_NAME_INVALID = -EINVAL,
} QueueName;

const char *queue_name_to_string(QueueName q);
QueueName queue_name_from_string(const char *s);

typedef struct QueueRecipient {
        char *address;
        char *notify;           /* DSN NOTIFY: "NEVER" or e.g. "SUCCESS,FAILURE"; NULL: not given (RFC 3461 default) */
        char *orcpt;            /* DSN ORCPT: "rfc822;bob@example.org" (xtext as received); NULL: not given */
        uint64_t offset;        /* of the record's type byte, for queue_file_mark_done() */
        bool done;
} QueueRecipient;

typedef struct QueueEnvelope {
        uint64_t arrival_usec;
        char *sender;
        char **attrs;                   /* "name=value", NULL-terminated */
        QueueRecipient *recipients;
        size_t n_recipients;
        uint64_t content_offset;        /* first record after QUEUE_REC_MESSAGE */
        uint64_t content_size;          /* bytes of message content */
        uint64_t file_size;
        unsigned char *file;            /* the whole file, as queue_file_read_delivery() read it; or NULL */
} QueueEnvelope;

QueueEnvelope *queue_envelope_free(QueueEnvelope *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(QueueEnvelope *, queue_envelope_free);
const char *queue_envelope_attr(const QueueEnvelope *e, const char *name);
size_t queue_envelope_pending(const QueueEnvelope *e);

/* Validates the whole file (every record header, the end marker, no trailing bytes) and returns its
 * envelope. -EBADMSG: the file is corrupt or truncated. */
int queue_file_read(int fd, QueueEnvelope **ret);
/* The same for a delivery agent, with fd's stat taken just before: a file that one read took whole (up to
 * RECORD_READ_AHEAD) is kept in the envelope, and the content functions below read it from there. The
 * content never changes; only the envelope's done-marks do, which the agents do not read again. */
int queue_file_read_delivery(int fd, const struct stat *st, QueueEnvelope **ret);
/* The same over the bytes of a whole queue file that another process read and sent (local to its workers):
 * the envelope keeps a copy of them, as it keeps a file read whole. */
int queue_file_read_delivery_bytes(const void *file, size_t size, QueueEnvelope **ret);

/* A reader of e's content from offset on (a record boundary in it, e.g. e->content_offset): over the bytes
 * kept in e, which must outlive it, or over fd. */
void queue_file_content_reader(RecordReader *rr, int fd, const QueueEnvelope *e, uint64_t offset);

/* Calls cb for each piece of content in order (empty pieces are skipped); stops at and returns the first
 * negative cb result. */
typedef RecordDataFunc QueueContentFunc;
int queue_file_content_foreach(int fd, const QueueEnvelope *e, QueueContentFunc cb, void *userdata);

/* The same content a piece at a time, for a reader that must stop between pieces (an event loop feeding a
 * slow consumer): reads the piece at *offset (start at e->content_offset) into buf, which holds
 * QUEUE_RECORD_MAX bytes, and moves *offset past it. Returns the piece's length (> 0), 0 at the end of the
 * content, or -EBADMSG. */
int queue_file_content_next(int fd, const QueueEnvelope *e, uint64_t *offset, char buf[static QUEUE_RECORD_MAX]);

/* Turns the recipient record at offset from 'R' into 'D'. The caller syncs. */
int queue_file_mark_done(int fd, uint64_t offset);

/* The record writer (record.h) under the names the roles use. */
typedef RecordWriter QueueWriter;

static inline void queue_writer_init(QueueWriter *w, int fd) {
        record_writer_init(w, fd);
}
static inline int queue_writer_record(QueueWriter *w, QueueRecordType type, const void *data, size_t len) {
        return record_writer_record(w, (char) type, data, len);
}
/* A recipient record, and its DSN options record when notify or orcpt is not empty (NULL or "": not given).
 * -EINVAL: options that dsn_notify_parse() / dsn_orcpt_valid() refuse. */
int queue_writer_recipient(QueueWriter *w, const char *address, const char *notify, const char *orcpt);
int queue_writer_recordf(QueueWriter *w, QueueRecordType type, const char *fmt, ...) _printf_(3, 4);
/* Content of any length, split into records. */
static inline int queue_writer_content(QueueWriter *w, const void *data, size_t len) {
        return record_writer_split(w, (char) QUEUE_REC_CONTENT, data, len);
}
static inline int queue_writer_flush(QueueWriter *w) {
        return record_writer_flush(w);
}
/* Offset the next record will have. */
static inline uint64_t queue_writer_offset(const QueueWriter *w) {
        return record_writer_offset(w);
}
