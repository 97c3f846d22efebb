/* milter-proto.h: the Sendmail milter protocol (version 6, as libmilter speaks it) on the wire: the
 * commands an MTA sends, encoded into a buffer, and the replies a milter sends, framed and parsed by pure
 * functions over (buf, len). Used by the milter client (milter.c) in smtpd and pickup. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A reply packet larger than this is a protocol error: libmilter sends body chunks of at most 64 KiB. */
#define MILTER_REPLY_MAX (65536U + 1024U)
/* Body chunks the MTA sends (libmilter's MILTER_CHUNK_SIZE). */
#define MILTER_CHUNK_SIZE 65535U

/* Commands (MTA to milter). */
#define MILTER_CMD_ABORT 'A'
#define MILTER_CMD_BODY 'B'
#define MILTER_CMD_CONNECT 'C'
#define MILTER_CMD_MACRO 'D'
#define MILTER_CMD_BODYEOB 'E'
#define MILTER_CMD_HELO 'H'
#define MILTER_CMD_QUIT_NC 'K'
#define MILTER_CMD_HEADER 'L'
#define MILTER_CMD_MAIL 'M'
#define MILTER_CMD_EOH 'N'
#define MILTER_CMD_OPTNEG 'O'
#define MILTER_CMD_QUIT 'Q'
#define MILTER_CMD_RCPT 'R'
#define MILTER_CMD_DATA 'T'

/* Actions a milter may take at the end of the message (SMFIF_*). */
#define MILTER_ACT_ADDHDRS 0x001U
#define MILTER_ACT_CHGBODY 0x002U
#define MILTER_ACT_ADDRCPT 0x004U
#define MILTER_ACT_DELRCPT 0x008U
#define MILTER_ACT_CHGHDRS 0x010U
#define MILTER_ACT_QUARANTINE 0x020U
#define MILTER_ACT_CHGFROM 0x040U
#define MILTER_ACT_ADDRCPT_PAR 0x080U
#define MILTER_ACT_SETSYMLIST 0x100U
#define MILTER_ACT_ALL 0x1ffU

/* Protocol flags (SMFIP_*): steps a milter does not want, and steps it does not answer. */
#define MILTER_P_NOCONNECT 0x00000001U
#define MILTER_P_NOHELO 0x00000002U
#define MILTER_P_NOMAIL 0x00000004U
#define MILTER_P_NORCPT 0x00000008U
#define MILTER_P_NOBODY 0x00000010U
#define MILTER_P_NOHDRS 0x00000020U
#define MILTER_P_NOEOH 0x00000040U
#define MILTER_P_NR_HDR 0x00000080U
#define MILTER_P_NOUNKNOWN 0x00000100U
#define MILTER_P_NODATA 0x00000200U
#define MILTER_P_SKIP 0x00000400U
#define MILTER_P_NR_CONN 0x00001000U
#define MILTER_P_NR_HELO 0x00002000U
#define MILTER_P_NR_MAIL 0x00004000U
#define MILTER_P_NR_RCPT 0x00008000U
#define MILTER_P_NR_DATA 0x00010000U
#define MILTER_P_NR_UNKN 0x00020000U
#define MILTER_P_NR_EOH 0x00040000U
#define MILTER_P_NR_BODY 0x00080000U
/* What this client offers: every step may be left out or left unanswered; no rejected recipients, no
 * leading space kept in header values, no body chunks above 64 KiB. */
#define MILTER_P_OFFERED 0x000ff7ffU

/* The stages of a session that carry macros (SMFIM_*), also the index of the macro lists. */
typedef enum MilterStage {
        MILTER_STAGE_CONNECT,
        MILTER_STAGE_HELO,
        MILTER_STAGE_MAIL,
        MILTER_STAGE_RCPT,
        MILTER_STAGE_DATA,
        MILTER_STAGE_EOM,
        MILTER_STAGE_EOH,
        _MILTER_STAGE_MAX,
        _MILTER_STAGE_INVALID = -EINVAL,
} MilterStage;

typedef enum MilterReplyType {
        MILTER_REPLY_CONTINUE,          /* 'c' */
        MILTER_REPLY_ACCEPT,            /* 'a' */
        MILTER_REPLY_REJECT,            /* 'r' */
        MILTER_REPLY_TEMPFAIL,          /* 't' */
        MILTER_REPLY_DISCARD,           /* 'd' */
        MILTER_REPLY_REPLYCODE,         /* 'y': text is "550 5.7.1 why" */
        MILTER_REPLY_SKIP,              /* 's': no more body chunks */
        MILTER_REPLY_PROGRESS,          /* 'p': still working, the timer starts again */
        MILTER_REPLY_QUARANTINE,        /* 'q': text is the reason */
        MILTER_REPLY_ADDHEADER,         /* 'h': name, value */
        MILTER_REPLY_INSHEADER,         /* 'i': index, name, value */
        MILTER_REPLY_CHGHEADER,         /* 'm': index, name, value ("" deletes) */
        MILTER_REPLY_REPLBODY,          /* 'b': data, len */
        MILTER_REPLY_ADDRCPT,           /* '+' and '2': text, args */
        MILTER_REPLY_DELRCPT,           /* '-': text */
        MILTER_REPLY_CHGFROM,           /* 'e': text, args */
        MILTER_REPLY_SHUTDOWN,          /* '4' or 'f': the milter is going away; taken as tempfail */
        MILTER_REPLY_OPTNEG,            /* 'O': version, actions, protocol, macro lists */
        _MILTER_REPLY_TYPE_MAX,
        _MILTER_REPLY_TYPE_INVALID = -EINVAL,
} MilterReplyType;

/* A parsed reply. Its strings point into the packet, which stays valid as long as they are used. */
typedef struct MilterReply {
        MilterReplyType type;
        uint32_t index;
        const char *name;
        const char *text;               /* value, reply text, address or reason */
        const char *args;               /* ESMTP arguments of ADDRCPT and CHGFROM, or NULL */
        const uint8_t *data;
        size_t len;
        uint32_t version, actions, protocol;
        const char *macros[_MILTER_STAGE_MAX];  /* OPTNEG: the macro lists the milter asks for, or NULL */
} MilterReply;

/* Looks at received bytes: the size of the first complete packet (its 4-byte length included) in *ret,
 * and 1; 0 when more is needed; -EBADMSG for a length of zero or above max. */
int milter_packet_frame(const uint8_t *buf, size_t len, size_t max, size_t *ret);

/* Parses one packet body (the command byte and its data, the length word removed). -EBADMSG for an
 * unknown reply, a missing NUL, a missing field, or bytes left over. */
int milter_reply_parse(const uint8_t *pkt, size_t len, MilterReply *ret);

/* Whether text is a reply a milter may give at stage: a 4xx or 5xx code, its optional enhanced status with
 * the same class, printable ASCII; several lines ("550-5.7.1 a\r\n550 5.7.1 b") with the same code. */
bool milter_reply_text_valid(const char *text);

/* A growing buffer of commands to send. */
typedef struct MilterBuf {
        uint8_t *data;
        size_t len, size;
        bool failed;                    /* out of memory at some append: the buffer is not to be sent */
} MilterBuf;

void milter_buf_done(MilterBuf *b);
/* Starts a packet; append its fields, then end it (which writes the length). */
void milter_buf_begin(MilterBuf *b, char cmd, size_t *ret_start);
void milter_buf_put(MilterBuf *b, const void *p, size_t n);
void milter_buf_put_str(MilterBuf *b, const char *s);      /* with its NUL */
void milter_buf_put_u32(MilterBuf *b, uint32_t v);
void milter_buf_put_u16(MilterBuf *b, uint16_t v);
void milter_buf_end(MilterBuf *b, size_t start);
/* A whole packet with no data, or with NUL-terminated strings (a NULL-terminated list). */
void milter_buf_command(MilterBuf *b, char cmd, const char *const *strings);
