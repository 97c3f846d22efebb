/* smtpd-protocol.h: the SMTP server's pure parsers over (buf, len): command lines, MAIL, RCPT, BDAT and
 * VRFY arguments, the DATA/BDAT content reader, and status texts from cleanup. No I/O and no allocation. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"
#include "dsn.h"

/* Longest HELO/EHLO argument kept (RFC 1035: a domain name has at most 255 octets). */
#define SMTPD_HELO_MAX 255

/* Longest reply line we send, including CRLF (RFC 5321 4.5.3.1.5). */
#define SMTPD_REPLY_LINE_MAX 512

/* Splitting the input into command lines. CRLF ends a line (RFC 5321 2.3.8), and so does a bare LF, which
 * the reader reports (bare_lf) so that the session can normalize or reject it (smtpd_forbid_bare_newline). */
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
        bool bare_lf;                   /* the last line (or overlong line) ended in LF without CR */
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
        SMTPD_COMMAND_BDAT,
        SMTPD_COMMAND_STARTTLS,         /* RFC 3207; the session's TLS part: smtpd-tls.c */
        SMTPD_COMMAND_AUTH,             /* RFC 4954; checked by Dovecot: smtpd-sasl.c */
        _SMTPD_COMMAND_MAX,
        _SMTPD_COMMAND_INVALID = -EINVAL,
} SmtpdCommandType;

typedef struct SmtpdCommand {
        SmtpdCommandType type;
        const char *arg;                /* within the line; white space around it removed */
        size_t arg_len;
} SmtpdCommand;

/* Parses a command line (without CRLF): a verb in any case, then optional white space and an argument.
 * -EBADMSG: a control character or DEL (tab excepted), or bytes beyond ASCII that are not valid UTF-8
 * (UTF-8 itself is allowed here; whether an address may hold it is up to SMTPUTF8);
 * -EOPNOTSUPP: an unknown verb. */
int smtpd_command_parse(const char *line, size_t len, SmtpdCommand *ret);

/* "HELO", "EHLO", ... */
const char *smtpd_command_to_string(SmtpdCommandType t);

/* The argument of MAIL or RCPT. */
typedef struct SmtpdPath {
        char address[ADDRESS_MAX + 1];  /* between the angle brackets, source route dropped; "" for <> */
        uint64_t size;                  /* MAIL's SIZE=, 0 when not given */
        bool body_8bitmime;             /* MAIL's BODY=8BITMIME */
        bool body_given;                /* MAIL's BODY= was given (7BIT or 8BITMIME) */
        bool smtputf8;                  /* MAIL's SMTPUTF8 (RFC 6531) */
        const char *dsn_ret;            /* MAIL's RET= (RFC 3461): "FULL", "HDRS" or NULL */
        char dsn_envid[DSN_ENVID_MAX + 1];      /* MAIL's ENVID=, xtext as given; "" when not given */
        bool verp;                      /* MAIL's XVERP (Postfix's VERP extension) */
        bool verp_given;                /* XVERP=delims, not bare XVERP */
        char verp_delims[8];            /* the delims as given (cut short past 7 bytes); checked by the caller */
        unsigned dsn_notify;            /* RCPT's NOTIFY=, DsnNotify flags; 0 when not given */
        char dsn_orcpt[DSN_ORCPT_MAX];  /* RCPT's ORCPT= "addr-type;xtext" as given; "" when not given */
        char unsupported[64];           /* after -EOPNOTSUPP alone: the parameter, for the reply */
} SmtpdPath;

/* Parse "FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=xtext] [XVERP[=xy]]" and
 * "TO:<path> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=addr-type;xtext]", as smtpd_command_parse() left
 * them. An address beyond ASCII is returned as it is: the caller allows it only with SMTPUTF8.
 * Unless strict (strict_rfc821_envelopes), the path may also come without its brackets, as Postfix takes it:
 * the first word, quoted parts kept whole, is the address and the words after it are parameters.
 *   -EPROTO      no "FROM:" or "TO:", or nothing after it
 *   -EBADMSG     a malformed or overlong path, or the null path in RCPT
 *   -EOPNOTSUPP  an ESMTP parameter (or BODY= value) we do not know; ret->unsupported is then the one thing
 *                written, and names it
 *   -EINVAL      a bad value of a parameter we know, or a parameter given twice */
int smtpd_mail_parse(const char *arg, size_t len, bool strict, SmtpdPath *ret);
int smtpd_rcpt_parse(const char *arg, size_t len, bool strict, SmtpdPath *ret);

/* The argument of BDAT (RFC 3030): "size [LAST]". -EINVAL: anything else. */
int smtpd_bdat_parse(const char *arg, size_t len, uint64_t *ret_size, bool *ret_last);

/* The argument of VRFY: an address, with or without angle brackets. -EINVAL: none, or not valid. */
int smtpd_vrfy_parse(const char *arg, size_t len, char address[static ADDRESS_MAX + 1]);

/* Reading message content, after DATA (dot-stuffed, ends at the line ".") or in BDAT chunks (raw, the
 * session counts the bytes). It is stored with LF line ends. A line may be of any length, as in Postfix:
 * the reader streams it in pieces and never holds a line, so only message_size_limit bounds it (the smtp
 * client wraps what is over smtp_line_length_limit on the way out). Every line end is one of CRLF, a bare LF
 * and a bare CR (a CR not followed by LF), so that no sequence of CR and LF survives in the stored
 * content that another MTA might read as a line end where this reader saw none (SMTP smuggling): what
 * is stored has LF only, and a stored line is "." only where the client sent "..".
 * After DATA, a line that begins with '.' loses it (RFC 5321 4.5.2), and the line "." ends the message
 * only when both it and the line before it (or the DATA command) ended in CRLF: so "<LF>.<LF>",
 * "<LF>.<CR><LF>", "<CR><LF>.<LF>" and "<CR><LF>.<CR><CR><LF>" are content (an empty line), never the
 * end (smtpd_forbid_bare_newline = normalize, as Postfix 3.9). With SMTPD_DATA_REJECT_BARE_LF
 * (smtpd_forbid_bare_newline = reject), a bare LF stops the reader in SMTPD_DATA_BARE_LF instead. */
typedef enum SmtpdDataState {
        SMTPD_DATA_LINE_START,          /* at the start of a line, where '.' is special after DATA */
        SMTPD_DATA_TEXT,                /* inside a line */
        SMTPD_DATA_CR,                  /* after a CR: a line end, CRLF or bare */
        SMTPD_DATA_END,                 /* DATA's end marker was read */
        SMTPD_DATA_BARE_LF,             /* a bare LF, with SMTPD_DATA_REJECT_BARE_LF: nothing more is read */
        _SMTPD_DATA_STATE_MAX,
        _SMTPD_DATA_STATE_INVALID = -EINVAL,
} SmtpdDataState;

typedef enum SmtpdDataFlags {
        SMTPD_DATA_DOT_STUFFED = 1 << 0,        /* DATA: unstuff dots, end at "."; else BDAT: raw */
        SMTPD_DATA_REJECT_BARE_LF = 1 << 1,     /* stop at a bare LF */
        SMTPD_DATA_AFTER_BARE_LF = 1 << 2,      /* the DATA command itself ended in a bare LF */
} SmtpdDataFlags;

typedef struct SmtpdDataReader {
        SmtpdDataState state;
        unsigned flags;                 /* SmtpdDataFlags */
        uint64_t size_limit;            /* most bytes of content stored */
        uint64_t size;                  /* bytes of content so far, up to size_limit */
        bool dot_only;                  /* the line so far is the '.' that was dropped */
        bool prev_bare;                 /* the line before ended in a bare LF or CR */
        bool too_big;                   /* the size limit was exceeded: nothing more is stored, but the
                                         * input is still read up to the end marker */
} SmtpdDataReader;

void smtpd_data_reader_init(SmtpdDataReader *r, uint64_t size_limit, unsigned flags);

/* Reads input up to the end marker at most, writing content to out (out_size > 0). Returns the bytes
 * of buf consumed; *ret_out_len bytes were written, and at least one of the two is not zero unless the
 * reader stopped (END, BARE_LF). Stops early when out is full: call again with the rest. The result does
 * not depend on how input and output are cut into pieces. */
size_t smtpd_data_read(SmtpdDataReader *r, const char *buf, size_t len, char *out, size_t out_size,
                       size_t *ret_out_len);

/* At the end of BDAT content: a CR still pending is a bare CR, a line end. Writes at most one byte to
 * out (out_size > 0) and returns the bytes written. */
size_t smtpd_data_finish(SmtpdDataReader *r, char *out, size_t out_size);

static inline bool smtpd_data_done(const SmtpdDataReader *r) {
        return r->state == SMTPD_DATA_END;
}

static inline bool smtpd_data_bare_lf(const SmtpdDataReader *r) {
        return r->state == SMTPD_DATA_BARE_LF;
}

/* A status text from another role, in D-Bus error messages: "554 5.4.6 Too many hops", or without the
 * reply code, "5.4.6 Too many hops" (then default_code is used, e.g. "554"). The class (first digit of
 * both codes) must be cls ('4' or '5'); only printable ASCII is allowed. Writes the reply line (no CRLF)
 * to ret, which has SMTPD_REPLY_LINE_MAX bytes. -EINVAL: not such a text. */
int smtpd_status_reply(const char *text, char cls, const char *default_code,
                       char ret[static SMTPD_REPLY_LINE_MAX]);

/* smtpd_discard_ehlo_keywords (and the values of smtpd_discard_ehlo_keyword_address_maps): the EHLO keywords
 * a client is not offered, in Postfix's names, in its order (that of the "discarding EHLO keywords" line). */
typedef enum SmtpdEhloKeyword {
        SMTPD_EHLO_8BITMIME = 1U << 0,
        SMTPD_EHLO_AUTH = 1U << 1,
        SMTPD_EHLO_ETRN = 1U << 2,
        SMTPD_EHLO_PIPELINING = 1U << 3,
        SMTPD_EHLO_SIZE = 1U << 4,
        SMTPD_EHLO_VERP = 1U << 5,
        SMTPD_EHLO_VRFY = 1U << 6,
        SMTPD_EHLO_XCLIENT = 1U << 7,
        SMTPD_EHLO_XFORWARD = 1U << 8,
        SMTPD_EHLO_STARTTLS = 1U << 9,
        SMTPD_EHLO_ENHANCEDSTATUSCODES = 1U << 10,
        SMTPD_EHLO_DSN = 1U << 11,
        SMTPD_EHLO_SILENT_DISCARD = 1U << 12,   /* not a keyword: the discarding is not logged */
        SMTPD_EHLO_SMTPUTF8 = 1U << 13,
        SMTPD_EHLO_CHUNKING = 1U << 14,
} SmtpdEhloKeyword;

/* A list of keywords, any case, separated by white space or commas; as in Postfix, a word that names no
 * keyword is ignored ("xverp" is taken for "verp"). Returns the SmtpdEhloKeyword flags. */
unsigned smtpd_ehlo_discard_parse(const char *list, size_t len);

/* "DSN SMTPUTF8": the keywords of mask, upper case, silent-discard left out; "" for none. */
void smtpd_ehlo_discard_to_string(unsigned mask, char *ret, size_t size);

/* For a client that is not offered ENHANCEDSTATUSCODES: drops the "d.d.d " after the reply code of each line of
 * reply (len bytes, lines separated by CRLF), in place. Returns the new length. */
size_t smtpd_reply_strip_enhanced(char *reply, size_t len);

/* Text that a template ($name expanded: smtpd_reject_footer, rbl_reply_maps) puts into a reply: each byte that is
 * not printable ASCII (smtpd_expansion_filter's default set) becomes '_', in place, as Postfix censors it. */
void smtpd_reply_censor(char *s);

/* The length of the enhanced status code after the reply code of reply (len bytes): 5 for "550 5.1.1 text" or
 * "550 5.1.1", 0 when there is none. */
size_t smtpd_reply_enhanced_len(const char *reply, size_t len);

/* smtpd_reject_footer, as Postfix adds it: footer (its $names expanded) goes after the last line of reply (len
 * bytes, lines separated by CRLF, no CRLF at the end), on a line of its own that repeats the reply's code and
 * enhanced status code, or at the end of that last line when it begins with the two characters "\c"; each
 * two-character "\n" in it begins another such line, and every line but the last gets '-' after the code.
 * reply has size bytes of room. Returns the new length, or -E2BIG (reply unchanged) when it does not fit. */
int smtpd_reply_add_footer(char *reply, size_t len, size_t size, const char *footer);
