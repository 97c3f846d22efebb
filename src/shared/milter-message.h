/* milter-message.h: a message as milters see it at the end of DATA (its headers, its body) and the changes
 * they ask for (headers, body, sender, recipients, quarantine), applied in memory and written out as the
 * one message the role hands to cleanup. Pure code, used by milter.c in smtpd and pickup. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "milter-proto.h"

typedef struct MilterHeader {
        char *name;
        char *value;            /* after the colon and its leading blanks; folded lines joined with "\n" */
        char *raw;              /* the header as received ("Name: value\n..."), NULL once built or changed */
} MilterHeader;

typedef struct MilterMessage {
        MilterHeader *headers;
        size_t n_headers;
        const char *body;       /* with LF line ends; points into the received message or into body_owned */
        size_t body_len;
        char *body_owned;       /* a body replaced by a milter */
        bool separator;         /* the received message had the empty line after its headers */
        size_t size_max;        /* the largest message the edits may make (message_size_limit) */
        size_t size;            /* the size of the message as written */
        bool changed;           /* headers or body differ from what was received */

        /* The body a milter is replacing, chunk by chunk, until its end-of-message reply. */
        char *new_body;
        size_t new_body_len;
        bool new_body_cr;       /* the last chunk ended in CR */
        bool replacing;

        /* The envelope changes, for the role to apply to its own envelope. */
        char *sender;           /* NULL: unchanged */
        char **add_rcpt;
        size_t n_add_rcpt;
        char **del_rcpt;
        size_t n_del_rcpt;
        char *quarantine;       /* NULL: not held */
} MilterMessage;

/* Parses a message (LF line ends, as smtpd and pickup hold it) whose content must outlive m. -E2BIG when
 * it has more than MILTER_HEADERS_MAX headers. */
#define MILTER_HEADERS_MAX 10000U
int milter_message_parse(const char *buf, size_t len, size_t size_max, MilterMessage *ret);
void milter_message_done(MilterMessage *m);

/* Applies one end-of-message change (ADDHEADER, INSHEADER, CHGHEADER, REPLBODY, ADDRCPT, DELRCPT,
 * CHGFROM, QUARANTINE). -EFBIG when it would grow the message beyond size_max, -ENOMEM. */
int milter_message_apply(MilterMessage *m, const MilterReply *r);
/* The milter ended its end-of-message replies: a body it replaced takes effect. */
int milter_message_commit(MilterMessage *m);
/* Forgets a body replacement not committed (the milter failed). */
void milter_message_rollback(MilterMessage *m);

/* The body as milters receive it: from *off, up to max bytes with CRLF line ends into out (max >= 2);
 * returns the number of bytes; 0 at the end of the body. */
size_t milter_message_body_chunk(const MilterMessage *m, size_t *off, char *out, size_t max);

/* Writes the message (headers, empty line, body) to fd. */
int milter_message_write(const MilterMessage *m, int fd);

/* The message a role shows the milters: its memory file read (a small one) or mapped, and parsed. */
typedef struct MilterInput {
        MilterMessage message;
        void *map;              /* NULL for an empty file */
        size_t map_len;
        bool mapped;            /* map is a mapping of the file, not a copy */
} MilterInput;

/* A message up to this size is read into memory rather than mapped: mapping and unmapping it cost more. */
#define MILTER_INPUT_READ_MAX (256U * 1024U)

/* Reads or maps the file fd (the role keeps it open) and parses it; size_max: message_size_limit. */
int milter_input_new(int fd, size_t size_max, MilterInput **ret);
MilterInput *milter_input_free(MilterInput *in);
DEFINE_TRIVIAL_CLEANUP_FUNC(MilterInput *, milter_input_free);

/* The message with the milters' changes, written to a new memory file (named name) in *ret_fd. */
int milter_message_memfd(const MilterMessage *m, const char *name, int *ret_fd);

/* An address as a milter gives it: "<a@b>" or "a@b", into ret (at most size - 1 bytes). -EINVAL when it
 * is not one address. */
int milter_address_strip(const char *s, char *ret, size_t size);
