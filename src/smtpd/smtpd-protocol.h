/* smtpd-protocol.h: the SMTP server's pure parsers over (buf, len): command lines, MAIL and RCPT
 * arguments, the DATA reader, and status texts from cleanup. No I/O and no allocation. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"

/* Longest HELO/EHLO argument kept (RFC 1035: a domain name has at most 255 octets). */
#define SMTPD_HELO_MAX 255

/* Longest reply line we send, including CRLF (RFC 5321 4.5.3.1.5). */
#define SMTPD_REPLY_LINE_MAX 512

/* Splitting the input into command lines. Only CRLF ends a line (RFC 5321 2.3.8). */
typedef enum SmtpdLineState {
        SMTPD_LINE_TEXT,                /* inside a line that may still fit */
        SMTPD_LINE_DISCARD,             /* inside an overlong line, dropped up to its CRLF */
        _SMTPD_LINE_STATE_MAX,
        _SMTPD_LINE_STATE_INVALID = -EINVAL,
} SmtpdLineState;

typedef struct SmtpdLineReader {
        SmtpdLineState state;
        size_t limit;                   /* longest line, not counting CRLF */
        size_t scanned;                 /* bytes at the start of the buffer already searched */
} SmtpdLineReader;

void smtpd_line_reader_init(SmtpdLineReader *r, size_t limit);

/* Looks for the next line at the start of buf, which holds the input not consumed yet (the same bytes
 * as at the previous call, plus any that arrived since). *consumed is always set: the bytes the caller
 * drops from the start of its buffer.
 *   1        a line: buf[0 .. *ret_line_len), CRLF not included
 *   0        no complete line yet; while an overlong line arrives its bytes are consumed as they come,
 *            so the caller never holds more than limit + 1 bytes of one line
 *   -E2BIG   an overlong line ended: reply, and go on with the next line */
int smtpd_line_next(SmtpdLineReader *r, const char *buf, size_t len, size_t *ret_line_len,
                    size_t *consumed);

typedef enum SmtpdCommandType {
        SMTPD_COMMAND_HELO,
        SMTPD_COMMAND_EHLO,
        SMTPD_COMMAND_MAIL,
        SMTPD_COMMAND_RCPT,
        SMTPD_COMMAND_DATA,
        SMTPD_COMMAND_RSET,
        SMTPD_COMMAND_NOOP,
        SMTPD_COMMAND_VRFY,
        SMTPD_COMMAND_QUIT,
        _SMTPD_COMMAND_MAX,
        _SMTPD_COMMAND_INVALID = -EINVAL,
} SmtpdCommandType;

typedef struct SmtpdCommand {
        SmtpdCommandType type;
        const char *arg;                /* within the line; white space around it removed */
        size_t arg_len;
} SmtpdCommand;

/* Parses a command line (without CRLF): a verb in any case, then optional white space and an argument.
 * -EBADMSG: a byte that is not printable ASCII, space or tab (no SMTPUTF8 yet);
 * -EOPNOTSUPP: an unknown verb. */
int smtpd_command_parse(const char *line, size_t len, SmtpdCommand *ret);

/* "HELO", "EHLO", ... */
const char *smtpd_command_to_string(SmtpdCommandType t);

/* The argument of MAIL or RCPT. */
typedef struct SmtpdPath {
        char address[ADDRESS_MAX + 1];  /* between the angle brackets, source route dropped; "" for <> */
        uint64_t size;                  /* MAIL's SIZE=, 0 when not given */
        bool body_8bitmime;             /* MAIL's BODY=8BITMIME */
} SmtpdPath;

/* Parse "FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]" and "TO:<path>", as smtpd_command_parse() left them.
 *   -EPROTO      no "FROM:" or "TO:"
 *   -EBADMSG     a malformed or overlong path, or the null path in RCPT
 *   -EOPNOTSUPP  an ESMTP parameter we do not know
 *   -EINVAL      a bad value of a parameter we know, or a parameter given twice */
int smtpd_mail_parse(const char *arg, size_t len, SmtpdPath *ret);
int smtpd_rcpt_parse(const char *arg, size_t len, SmtpdPath *ret);

/* Reading the message after DATA. Lines end at CRLF only; they are stored with LF. A bare LF or CR
 * inside a line is content and is kept, so "\n.\n" does not end the message (no SMTP smuggling). A
 * line that begins with '.' loses it (RFC 5321 4.5.2); the line "." ends the message. */
typedef enum SmtpdDataState {
        SMTPD_DATA_LINE_START,          /* at the start of a line, where '.' is special */
        SMTPD_DATA_DOT,                 /* the line began with '.', which was dropped */
        SMTPD_DATA_DOT_CR,              /* the line began with ".\r" */
        SMTPD_DATA_TEXT,                /* inside a line */
        SMTPD_DATA_CR,                  /* inside a line, after '\r' */
        SMTPD_DATA_END,                 /* the end marker was read */
        _SMTPD_DATA_STATE_MAX,
        _SMTPD_DATA_STATE_INVALID = -EINVAL,
} SmtpdDataState;

typedef struct SmtpdDataReader {
        SmtpdDataState state;
        size_t line_length_limit;       /* longest line, not counting its end */
        uint64_t size_limit;            /* most bytes of content stored */
        size_t line_len;                /* bytes of the current line so far */
        uint64_t size;                  /* bytes of content so far, up to size_limit */
        bool line_too_long;             /* a limit was exceeded: nothing more is stored, */
        bool too_big;                   /* but the input is still read up to the end marker */
} SmtpdDataReader;

void smtpd_data_reader_init(SmtpdDataReader *r, size_t line_length_limit, uint64_t size_limit);

/* Reads input up to the end marker at most, writing content to out (out_size > 0). Returns the bytes
 * of buf consumed; *ret_out_len bytes were written, and at least one of the two is not zero. Stops early
 * when out is full: call again with the rest. The result does not depend on how input and output are
 * cut into pieces. */
size_t smtpd_data_read(SmtpdDataReader *r, const char *buf, size_t len, char *out, size_t out_size,
                       size_t *ret_out_len);

static inline bool smtpd_data_done(const SmtpdDataReader *r) {
        return r->state == SMTPD_DATA_END;
}

/* A status text from another role, in D-Bus error messages: "554 5.4.6 Too many hops", or without the
 * reply code, "5.4.6 Too many hops" (then default_code is used, e.g. "554"). The class (first digit of
 * both codes) must be cls ('4' or '5'); only printable ASCII is allowed. Writes the reply line (no CRLF)
 * to ret, which has SMTPD_REPLY_LINE_MAX bytes. -EINVAL: not such a text. */
int smtpd_status_reply(const char *text, char cls, const char *default_code,
                       char ret[static SMTPD_REPLY_LINE_MAX]);
