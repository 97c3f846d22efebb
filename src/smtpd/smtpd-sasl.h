/* smtpd-sasl.h: AUTH in smtpd, checked by Dovecot's authentication service: the pure parts (the
 * Dovecot auth protocol's server lines, base64 and mechanism checks) and a non-blocking client that
 * runs one authentication exchange over its own connection to Dovecot's auth socket. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Longest line accepted from Dovecot (its own limit for auth lines is 8 KiB of base64 and fields). */
#define SMTPD_SASL_LINE_MAX 16384U
/* Longest user name kept: it goes into the Received header and the journal. */
#define SMTPD_SASL_USER_MAX 255U

/* The mechanisms offered (EHLO "AUTH PLAIN LOGIN"); Dovecot must enable them (auth_mechanisms). */
#define SMTPD_SASL_MECHANISMS "PLAIN LOGIN"

/* What Dovecot's auth server sends (doc/auth-protocol in Dovecot): the handshake, then the answers to
 * AUTH requests. Fields are separated by tabs; values are tab-escaped (\001 followed by 1, t, r, n). */
typedef enum SmtpdSaslReplyType {
        SMTPD_SASL_REPLY_VERSION,       /* VERSION <major> <minor> */
        SMTPD_SASL_REPLY_MECH,          /* MECH <name> [<flags>...] */
        SMTPD_SASL_REPLY_SPID,          /* SPID <server pid> */
        SMTPD_SASL_REPLY_CUID,          /* CUID <connection id> */
        SMTPD_SASL_REPLY_COOKIE,        /* COOKIE <hex> */
        SMTPD_SASL_REPLY_DONE,          /* DONE: end of the handshake */
        SMTPD_SASL_REPLY_OK,            /* OK <id> [user=<name>] ... */
        SMTPD_SASL_REPLY_CONT,          /* CONT <id> <base64 challenge> */
        SMTPD_SASL_REPLY_FAIL,          /* FAIL <id> [reason=<text>] [temp] [user=<name>] ... */
        _SMTPD_SASL_REPLY_TYPE_MAX,
        _SMTPD_SASL_REPLY_TYPE_INVALID = -EINVAL,
} SmtpdSaslReplyType;

typedef struct SmtpdSaslReply {
        SmtpdSaslReplyType type;
        unsigned version_major;         /* VERSION */
        unsigned id;                    /* OK, CONT, FAIL */
        const char *challenge;          /* CONT: within the line, base64 */
        size_t challenge_len;
        char user[SMTPD_SASL_USER_MAX + 1];     /* OK, FAIL: unescaped; "" if not given */
        bool temp;                      /* FAIL: a temporary failure */
} SmtpdSaslReply;

/* Parses one line from Dovecot, without its LF.
 *   -EOPNOTSUPP  a line type this client does not use (to be ignored)
 *   -EBADMSG     a malformed line: a bad number, a missing field, a user name that is too long or holds
 *                control characters, a challenge that is not base64 */
int smtpd_sasl_reply_parse(const char *line, size_t len, SmtpdSaslReply *ret);

typedef enum SmtpdSaslResult {
        SMTPD_SASL_CONTINUE,            /* text: the challenge (base64) for a 334 reply */
        SMTPD_SASL_OK,                  /* text: the authenticated user name */
        SMTPD_SASL_FAIL,                /* wrong credentials; text: Dovecot's reason, may be "" */
        SMTPD_SASL_TEMPFAIL,            /* Dovecot unreachable, too slow, or a temporary failure; text: why */
        _SMTPD_SASL_RESULT_MAX,
        _SMTPD_SASL_RESULT_INVALID = -EINVAL,
} SmtpdSaslResult;

typedef struct SmtpdSasl SmtpdSasl;

/* Called once for each step. After OK, FAIL and TEMPFAIL the exchange is over: the callback may free
 * the client, and nothing touches it after the callback returns. */
typedef void (*SmtpdSaslCallback)(SmtpdSasl *a, SmtpdSaslResult result, const char *text, void *userdata);

typedef struct SmtpdSaslRequest {
        const char *mechanism;          /* "PLAIN" or "LOGIN" */
        const char *initial_response;   /* base64 as the client sent it ("" for "="), or NULL */
        const char *client_address;     /* rip= */
        const char *local_address;      /* lip=, may be NULL */
        bool secured;                   /* the client connection is TLS */
} SmtpdSaslRequest;

/* Connects to Dovecot's auth socket at path and starts the exchange; the whole exchange must end within
 * timeout_usec. The strings of req are copied. A negative errno means no exchange was started (Dovecot
 * unreachable, out of memory): the caller answers 454 at once. */
int smtpd_sasl_new(sd_event *event, const char *path, uint64_t timeout_usec, const SmtpdSaslRequest *req,
                   SmtpdSaslCallback callback, void *userdata, SmtpdSasl **ret);

/* The client's answer (base64, checked by the caller) to the challenge of the last CONTINUE. */
int smtpd_sasl_respond(SmtpdSasl *a, const char *response, size_t len);

SmtpdSasl *smtpd_sasl_free(SmtpdSasl *a);
