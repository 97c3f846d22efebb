/* maildrop-file.h: the maildrop file that sendmail writes and pickup reads: the record format of the queue
 * file (queue-file.h) with a magic of its own, an allow-list of attributes, and no recipient required
 * (with -t cleanup takes them from the headers). The submitting user is not in the file: pickup takes it
 * from the file's owner. The reader is a pure function over the file's bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "queue-file.h"

#define MAILDROP_MAGIC "postbus-maildrop-1"

/* Most bytes of records before the content (sender, recipients, attributes): a little over 3000
 * recipients of the longest length, far more of the usual one. The content is bounded by
 * message_size_limit. */
#define MAILDROP_ENVELOPE_MAX (1024U * 1024U)
#define MAILDROP_ATTR_MAX 1024U

/* A maildrop file's name: a queue ID (sortable by arrival) and 16 random hex digits, so that nobody can
 * guess another user's file. Files being written are hidden: "." + name + ".tmp". */
#define MAILDROP_NAME_LEN (QUEUE_ID_LEN + 16)
#define MAILDROP_NAME_SIZE (MAILDROP_NAME_LEN + 1)
#define MAILDROP_TMP_SUFFIX ".tmp"

typedef struct MaildropEnvelope {
        uint64_t time_usec;
        char *sender;                   /* "" is the null sender; a bare login name is qualified by cleanup */
        char **recipients;              /* NULL-terminated; may be empty with extract_recipients */
        size_t n_recipients;
        bool extract_recipients;        /* sendmail -t */
        char *full_name;                /* sendmail -F */
        char *dsn_notify;               /* sendmail -N: "NEVER" or a list of SUCCESS, FAILURE, DELAY */
        char *dsn_ret;                  /* sendmail -R: "FULL" or "HDRS" */
        char *dsn_envid;                /* sendmail -V */
        char *body_type;                /* sendmail -B: "7BIT" or "8BITMIME" */
        char *verp_delims;              /* sendmail -XV: two VERP delimiters (verp.h) */
        size_t content_offset;          /* of the first record after the message marker */
        uint64_t content_size;          /* bytes of message content */
} MaildropEnvelope;

MaildropEnvelope *maildrop_envelope_free(MaildropEnvelope *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(MaildropEnvelope *, maildrop_envelope_free);

/* Validates a whole maildrop file (record types allowed in each section, attribute names and values,
 * addresses, the end marker, no trailing bytes) and returns its envelope. -EBADMSG: malformed or
 * truncated; -E2BIG: an envelope beyond MAILDROP_ENVELOPE_MAX; -EFBIG: more than content_max bytes of
 * content. */
int maildrop_parse(const void *buf, size_t len, uint64_t content_max, MaildropEnvelope **ret);

/* Calls cb for each piece of content of a file maildrop_parse() accepted. */
int maildrop_content_foreach(const void *buf, size_t len, const MaildropEnvelope *e, QueueContentFunc cb,
                             void *userdata);

/* Writes the records up to the start of the content (e->content_* are not used). */
int maildrop_write_envelope(QueueWriter *w, const MaildropEnvelope *e);
/* Writes the end marker and flushes. */
int maildrop_write_end(QueueWriter *w);

/* Values as the options give them, normalised to upper case in place; false when not valid. */
bool maildrop_dsn_notify_normalize(char *s);
bool maildrop_dsn_ret_normalize(char *s);
bool maildrop_body_type_normalize(char *s);
/* An RFC 3461 envelope ID: xtext of at most DSN_ENVID_MAX characters. */
bool maildrop_envid_valid(const char *s);
/* A full name for a From header: no control characters, at most MAILDROP_ATTR_MAX bytes. */
bool maildrop_full_name_valid(const char *s);

int maildrop_name_new(char ret[static MAILDROP_NAME_SIZE]);
bool maildrop_name_valid(const char *s);
