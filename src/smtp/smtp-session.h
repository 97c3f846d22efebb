/* smtp-session.h: private to postbus-smtp's session (smtp-session.c: connection, greeting, EHLO, TLS,
 * content, QUIT; smtp-transaction.c: the envelope and the replies to it and to the final dot). */
#pragma once

#include "smtp.h"
#include "string-util.h"

typedef enum SmtpStage {
        SMTP_STAGE_CONNECT,
        SMTP_STAGE_GREETING,
        SMTP_STAGE_EHLO,
        SMTP_STAGE_HELO,
        SMTP_STAGE_STARTTLS,            /* waiting for 220 to STARTTLS */
        SMTP_STAGE_TLS_HANDSHAKE,
        SMTP_STAGE_AUTH,                /* waiting for the reply to AUTH or to a response (smtp-sasl.c) */
        SMTP_STAGE_MAIL,                /* waiting for the reply to MAIL FROM */
        SMTP_STAGE_RCPT,                /* waiting for the replies to RCPT TO */
        SMTP_STAGE_DATA,                /* waiting for 354 */
        SMTP_STAGE_CONTENT,             /* sending the message */
        SMTP_STAGE_DATA_DONE,           /* waiting for the reply (LMTP: replies) to the final dot */
        SMTP_STAGE_QUIT,
        SMTP_STAGE_IDLE,                /* in the connection cache, no call */
        SMTP_STAGE_RSET,                /* taken from the cache: waiting for the reply to RSET */
        _SMTP_STAGE_MAX,
} SmtpStage;

#define SMTP_INPUT_MAX 4096U
/* Content octets encoded ahead of one write (one record more at most, so the buffer stays near its size
 * with a record at a time). */
#define SMTP_CONTENT_BATCH (16U * 1024U)

struct SmtpSession {
        SmtpCall *call;                 /* NULL once the session has reported its end (QUIT in progress) */
        Daemon *daemon;
        SmtpAddress address;
        char namaddr[384];              /* "host[addr]" */
        char relay[400];                /* "host[addr]:port" */
        bool final_server;
        bool lmtp;
        bool finished;                  /* to be freed when the event handler returns */
        bool connected;
        bool greeted;                   /* the server's 220 greeting was read */
        bool broken;                    /* ended by a failure of the server: never kept for reuse */
        unsigned n_use;                 /* transactions begun in this session, for conn_use= */
        char tls_text[700];             /* the TLS facts for delivery records, "" without TLS */
        char *cache_key;                /* in the connection cache under this key (smtp-cache.c) */
        uint64_t idle_since;
        SmtpSession *cache_next, *cache_prev;
        uint64_t started;               /* when the connect began, for the host cache */
        SSL *ssl;                       /* after STARTTLS, or from the connect on in wrapper mode */
        bool authenticated;             /* AUTH succeeded (smtp-sasl.c) */
        bool auth_offered;              /* the last EHLO reply offered AUTH */
        unsigned auth_mechanisms;       /* its mechanisms postbus speaks (bits of sasl_mechanisms[]) */
        size_t auth_n_passed;           /* its mechanisms that passed smtp_sasl_mechanism_filter */
        const char *sasl_mechanism;     /* "PLAIN" or "LOGIN" while authenticating */
        unsigned sasl_step;             /* LOGIN: responses sent */
        char *sasl_user, *sasl_password;        /* held only until they are sent */
        uint32_t tls_wants;             /* what the last TLS call waits for */
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        SmtpStage stage;
        unsigned features;
        uint64_t size_limit;

        char *out;                      /* bytes to send: out[out_off..out_len) */
        size_t out_len, out_off, out_size;
        char in[SMTP_INPUT_MAX];
        size_t in_len;
        bool in_overlong;               /* dropping the rest of a line longer than SMTP_INPUT_MAX */
        SmtpReply reply;

        SmtpRecipient **rcpts;          /* recipients sent RCPT TO in this session, in order */
        size_t n_rcpts;
        size_t n_rcpt_sent;             /* without PIPELINING: RCPT commands written so far */
        size_t n_rcpt_replies;
        bool mail_failed;
        bool envelope_after_rset;       /* MAIL FROM and RCPT TO went out right behind RSET */
        bool data_pipelined;            /* DATA went out behind the RCPT TO commands */
        SmtpRecipient **accepted;       /* those RCPT accepted, in order (LMTP replies after DATA follow it) */
        size_t n_accepted;
        size_t n_lmtp_replies;          /* LMTP: replies after the final dot so far */

        RecordReader content;           /* the queue file's content, while it is sent */
        SmtpEncoder encoder;
        bool head_pending;              /* smtp_generic_maps: the header section is still being read */
        Buffer head;                    /* ... into here, up to SMTP_GENERIC_HEADERS_MAX */
        SmtpChecks *checks;             /* smtp_*_checks on the content, or NULL: none */

        SmtpSession *linger_next, *linger_prev;
};

static inline const SmtpSettings *settings(SmtpSession *s) {
        return smtp_call_settings(s->call);
}

/* smtp-session.c */
void session_set_timeout(SmtpSession *s, uint64_t usec);
int session_command(SmtpSession *s, const char *fmt, ...) _printf_(2, 3);
void session_end(SmtpSession *s, SmtpSessionEnd end, const char *dsn, const char *text, bool quit);
bool session_any_pending(SmtpSession *s);
void session_site_fail(SmtpSession *s, const char *dsn, const char *text, bool quit);

/* smtp-cache.c: idle sessions by destination. */
void smtp_cache_put(SmtpSession *s, const char *key, uint64_t idle_limit);
void smtp_cache_remove(SmtpSession *s);

/* smtp-sasl.c: after EHLO, authenticate when the settings and the server call for it: true when the session
 * went on with AUTH (or failed), false when it goes on to MAIL without. */
bool session_sasl_begin(SmtpSession *s);
void session_sasl_reply(SmtpSession *s);
void session_sasl_forget(SmtpSession *s);

/* smtp-transaction.c */
void session_after_hello(SmtpSession *s);
/* A session taken from the cache, after its RSET: with PIPELINING, and when nothing the server offers rules
 * the mail out, MAIL FROM and RCPT TO follow in the same write (RFC 2920 lets RSET stand anywhere in a
 * group), which saves a round trip per reuse. 1: sent (the stage is then SMTP_STAGE_MAIL); 0: not sent. */
int session_pipeline_envelope(SmtpSession *s);
void session_envelope_reply(SmtpSession *s);
void session_fail_accepted(SmtpSession *s, const char *in_reply_to);
void session_data_done_reply(SmtpSession *s);
