/* smtpd-session.h: private to the smtpd process's session files (smtpd-session.c and the parts it is split
 * into): one client's session state, and what each part of a session calls in the others. */
#pragma once

#include <systemd/sd-bus.h>

#include "dsn.h"
#include "milter.h"
#include "smtpd-peername.h"
#include "smtpd-protocol.h"
#include "smtpd-sasl.h"
#include "smtpd.h"
#include "string-util.h"

/* Once this much output waits for the client to read it, no further command is read. */
#define SMTPD_OUT_PAUSE 4096U
/* Room for one reply (the EHLO reply has several lines). */
#define SMTPD_REPLY_MAX 1024U

#define SMTPD_REPLY_QUEUE_WRITE_ERROR "451 4.3.0 Error: queue file write error"

typedef enum SmtpdSessionState {
        SMTPD_SESSION_COMMAND,          /* reading commands */
        SMTPD_SESSION_DATA,             /* reading message content */
        SMTPD_SESSION_BDAT,             /* reading the bytes of a BDAT chunk */
        SMTPD_SESSION_CONNECT,          /* the message is complete, the connection to cleanup being set up */
        SMTPD_SESSION_SUBMIT,           /* waiting for cleanup's answer */
        SMTPD_SESSION_MILTER,           /* waiting for the milters (smtpd-milter.c) */
        SMTPD_SESSION_EOD_CHECK,        /* waiting for a lookup of smtpd_end_of_data_restrictions */
        SMTPD_SESSION_STARTTLS,         /* the 220 to STARTTLS is being sent; the handshake follows */
        SMTPD_SESSION_TLS_HANDSHAKE,    /* the TLS handshake (after STARTTLS, or at once on port 465) */
        SMTPD_SESSION_AUTH_RESPONSE,    /* AUTH: reading the client's answer to a 334 challenge */
        SMTPD_SESSION_AUTH_CHECK,       /* AUTH: waiting for Dovecot */
        SMTPD_SESSION_CLOSING,          /* sending the last replies, then closing */
        SMTPD_SESSION_CLOSED,           /* closing now */
        _SMTPD_SESSION_STATE_MAX,
        _SMTPD_SESSION_STATE_INVALID = -EINVAL,
} SmtpdSessionState;

typedef struct SmtpdCounter {
        unsigned ok, total;
} SmtpdCounter;

struct SmtpdSession {
        Smtpd *server;
        SmtpdListener *listener;        /* the service (port) the client came in through */
        SmtpdConf *conf;                /* the configuration the session began with (a reference) */
        SmtpdTls *tls;                  /* NULL until STARTTLS (or on port 465, the connect) */
        SmtpdSasl *sasl;                /* the AUTH exchange with Dovecot in progress */
        bool authenticated;             /* AUTH succeeded: may relay (permit_sasl_authenticated) */
        char *sasl_username;            /* the authenticated name, printable ASCII */
        const char *sasl_method;        /* "PLAIN", "LOGIN" */
        SmtpdSession *prev, *next;
        bool linked;                    /* in server->sessions, counted as busy */
        SmtpdSessionState state;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        uint64_t deadline_usec;         /* smtpd_session_deadline, on CLOCK_MONOTONIC */
        uint64_t last_io_usec;          /* smtpd_timeout runs from here */
        SmtpdAddress client;
        SmtpdPeerName peer;             /* the client's names; "unknown" until the lookup ends */
        SmtpdPeerLookup *peer_lookup;   /* smtpd_peername_lookup: running until the greeting */
        const char *stage;              /* the last command, as in "lost connection after RCPT" */
        unsigned errors;                /* 5xx replies since the last message accepted */
        unsigned junk;                  /* NOOP, RSET, VRFY */
        SmtpdCounter counters[_SMTPD_COMMAND_MAX + 1];  /* the last one counts unknown commands */
        int reply_code;                 /* of the last reply */
        bool in_reject;                 /* smtpd_session_reject() journals the reply it sends */
        bool reject_bare_lf;            /* smtpd_forbid_bare_newline = reject, and not excluded */
        unsigned ehlo_discard;          /* SmtpdEhloKeyword: not offered to this client, nor taken from it */
        bool ehlo_discard_failed;       /* its table could not be read: EHLO gets a 421, as in Postfix */
        SmtpdAnvilClient *anvil;        /* this client's rate counters; NULL when exempt */
        sd_event_source *delay;         /* smtpd_error_sleep_time before the next command */
        bool delaying;                  /* the next command waits for the delay timer */
        bool input_held;                /* input came while the milters or cleanup worked: read after them */
        bool delay_done;                /* the delay is over: the next command runs now */

        /* Restrictions (smtpd-restrictions.c): this client's DNS blocklist lookups, started at connect. */
        SmtpdCheckSession *checks;
        bool greet_pending;             /* smtpd_delay_reject = no: the greeting waits for the lookups */
        bool access_denied;             /* the client restrictions refused the greeting: 503 to all but QUIT */
        bool checks_wait;               /* the next command waits for the lookups (smtpd-dispatch.c) */
        bool command_wait;              /* the command asked a policy service: it runs again on the answer */
        bool command_resumed;           /* ...and this is that second run: nothing is counted twice */
        const char *check_helo;         /* the HELO name being checked, for the journal (Postfix logs it) */
        bool ill_pipelining;            /* commands came ahead of time where they may not (reject_unauth_pipelining) */
        char instance[32];              /* the mail transaction's id for policy services; "" until asked */
        uint64_t mail_size;             /* MAIL ... SIZE= */

        char *helo;                     /* NULL before HELO or EHLO */
        bool esmtp;

        /* The mail transaction. */
        bool in_mail;
        SmtpdMessageActions actions;    /* HOLD, DISCARD, ... of access tables, for this transaction */
        char sender[ADDRESS_MAX + 1];
        char **recipients;
        unsigned *rcpt_notify;          /* NOTIFY= of each recipient, DsnNotify flags or 0 */
        char **rcpt_orcpt;              /* ORCPT= of each recipient, or "" */
        size_t n_recipients, n_allocated;
        bool smtputf8;                  /* MAIL ... SMTPUTF8 */
        const char *body;               /* MAIL ... BODY=: "8BITMIME", "7BIT", or NULL */
        const char *dsn_ret;            /* MAIL ... RET=: "FULL", "HDRS", or NULL */
        char dsn_envid[DSN_ENVID_MAX + 1];      /* MAIL ... ENVID=, or "" */
        char verp_delims[3];            /* MAIL ... XVERP: the two VERP delimiters, or "" */
        bool bdat;                      /* a BDAT chunk came in this transaction: no DATA */
        bool bdat_last;                 /* the chunk being read is the last */
        uint64_t bdat_size;             /* bytes of the chunk being read */
        uint64_t bdat_remaining;        /* bytes of the chunk still to read */
        const char *bdat_error;         /* the reply to the chunk being read, once it or the transaction failed */
        bool bdat_failed;               /* the transaction failed: every chunk up to LAST gets bdat_error */
        int data_fd;                    /* the content in a memory file, once it is one (smtpd_data_spill()) */
        Buffer data_mem;                /* else the content so far, up to SMTPD_INLINE_MAX */
        bool data_failed;
        SmtpdDataReader data;
        sd_bus_slot *submit;            /* CONNECT: the Ping; SUBMIT: the Submit call */

        /* smtpd_milters (smtpd-milter.c). */
        MilterChain *milter;            /* NULL: no milters, or none could be started */
        char *milter_deny;              /* the milters refused the connection: the reply to every command */
        SmtpdCommandType milter_cmd;    /* the command whose reply waits for the milters */
        char *milter_ok;                /* its reply if they let it through */
        const char *milter_rcpt;        /* {rcpt_addr} while RCPT is asked about */
        bool milter_discard;            /* a milter said discard: this message is taken and dropped */
        bool milter_discard_session;    /* ... at the connection or HELO: every message */
        char *milter_hold;              /* quarantine: the message goes to hold, for this reason */
        MilterInput *milter_in;         /* the message the milters are reading */
        char milter_macro[SMTPD_REPLY_MAX];

        SmtpdLineReader lines;
        char *in;                       /* input not consumed yet is in[in_start .. in_end) */
        size_t in_size, in_start, in_end;
        char out[SMTPD_OUT_PAUSE + 2 * SMTPD_REPLY_MAX];
        size_t out_len;
};

/* smtpd-session.c: the session's life, from accept to close, and its replies. */

/* Sets up a session for an accepted client. The session takes fd only on success; anvil (the client's
 * counters, may be NULL) it releases also on failure. */
int smtpd_session_new(SmtpdListener *listener, int fd, const SmtpdAddress *client, SmtpdAnvilClient *anvil);
/* After any event: handle what input is buffered, send what replies are queued, then wait for what
 * the state needs. Frees the session when it is over. */
void smtpd_session_update(SmtpdSession *s);
/* Resets the mail transaction (RSET, HELO, and after each message). */
void smtpd_session_reset(SmtpdSession *s);
/* Queues one reply; CRLF is added. */
_printf_(2, 3) void smtpd_session_reply(SmtpdSession *s, const char *fmt, ...);
/* Queues a rejection and journals it as Postfix does; sender and rcpt may be NULL. */
_printf_(4, 5) void smtpd_session_reject(SmtpdSession *s, const char *sender, const char *rcpt, const char *fmt,
                                         ...);
/* Why a session ends early: "lost connection after DATA from unknown[192.0.2.1]". */
void smtpd_session_log_end(SmtpdSession *s, const char *why);
void smtpd_session_lost(SmtpdSession *s);
/* The 220 greeting, once the client restrictions allow it. */
void smtpd_session_greet(SmtpdSession *s);
/* Asks one of smtpd_check_{client,helo,sender,rcpt}() (smtpd-restrictions.c) about this client; a refusal
 * (1) is sent and journaled. Returns what the check returned. */
int smtpd_session_check(SmtpdSession *s, int (*check)(SmtpdCheckSession *, const SmtpdCheckInput *, char *),
                        const char *helo, const char *sender, const char *rcpt);

/* smtpd-dispatch.c: reading the client's lines, pipelining, and handing each command to its handler. */
void smtpd_session_process(SmtpdSession *s);

/* smtpd-commands.c: the commands of the SMTP dialogue itself. */
/* At connect: the EHLO keywords this client is not offered (smtpd_discard_ehlo_keyword_address_maps, by its
 * address, else smtpd_discard_ehlo_keywords). */
void smtpd_session_ehlo_discard_init(SmtpdSession *s);
void smtpd_cmd_helo(SmtpdSession *s, const SmtpdCommand *c);      /* also EHLO */
void smtpd_cmd_mail(SmtpdSession *s, const SmtpdCommand *c);
void smtpd_cmd_rcpt(SmtpdSession *s, const SmtpdCommand *c);
void smtpd_cmd_rset(SmtpdSession *s, const SmtpdCommand *c);
void smtpd_cmd_noop(SmtpdSession *s, const SmtpdCommand *c);
void smtpd_cmd_vrfy(SmtpdSession *s, const SmtpdCommand *c);
void smtpd_cmd_quit(SmtpdSession *s, const SmtpdCommand *c);

/* smtpd-data.c: DATA and BDAT, the message content into a memory file. */
void smtpd_cmd_data(SmtpdSession *s, const SmtpdCommand *c);
void smtpd_cmd_bdat(SmtpdSession *s, const SmtpdCommand *c);
/* Feed buffered input to the DATA reader or the BDAT chunk; true when the message or chunk has ended. */
bool smtpd_session_data(SmtpdSession *s);
bool smtpd_session_bdat(SmtpdSession *s);
/* smtpd_forbid_bare_newline = reject: the 521, and the end of the session. */
void smtpd_session_bare_lf(SmtpdSession *s);

/* smtpd-milter.c: smtpd_milters. Each returns whether the milters are being asked (the session waits in
 * SMTPD_SESSION_MILTER, and the reply follows); smtpd_milter_message() 1 for that, 0 for no milters, or a
 * negative errno. */
bool smtpd_milter_connect(SmtpdSession *s);
bool smtpd_milter_command(SmtpdSession *s, const SmtpdCommand *c, SmtpdCommandType cmd, const char *arg,
                          const char *ok);
int smtpd_milter_message(SmtpdSession *s);
void smtpd_milter_reset(SmtpdSession *s);
void smtpd_milter_free(SmtpdSession *s);
/* The session begins after the milters saw the connection: TLS on port 465, or the greeting. */
void smtpd_session_begin(SmtpdSession *s);
/* After DATA: the content starts empty, and 354 is sent. */
void smtpd_data_begin(SmtpdSession *s);
/* The content so far moves into a memory file (data_fd), where the rest goes too: for a message too large to
 * send inline, and for the milters. 0, or a negative errno (logged). */
int smtpd_data_spill(SmtpdSession *s);
/* The message is complete: smtpd_end_of_data_restrictions, then the milters, then cleanup. 0: the reply
 * follows later; 1: refused, the reply sent (the caller resets the transaction); or a negative errno. */
int smtpd_session_message_end(SmtpdSession *s);
/* The lookups smtpd_end_of_data_restrictions waited for are in (SMTPD_SESSION_EOD_CHECK): it goes on. */
void smtpd_session_eod_resume(SmtpdSession *s);
int smtpd_session_add_recipient(SmtpdSession *s, const SmtpdPath *p);

/* smtpd-submit.c: the complete message handed to cleanup over the bus; the reply follows its answer. */
int smtpd_session_submit(SmtpdSession *s);

/* smtpd-starttls.c: STARTTLS, port 465's TLS from the first byte, and the connection's reads and writes. */
bool smtpd_session_tls_offered(const SmtpdSession *s);
void smtpd_session_tls_start(SmtpdSession *s);
void smtpd_session_tls_handshake(SmtpdSession *s);
void smtpd_cmd_starttls(SmtpdSession *s, const SmtpdCommand *c);
/* Like read(2) and send(2), in plaintext or through TLS, with errno set on failure. */
ssize_t smtpd_session_recv(SmtpdSession *s, void *buf, size_t n);
ssize_t smtpd_session_send(SmtpdSession *s, const void *buf, size_t n);

/* smtpd-auth.c: AUTH, passed on to Dovecot (smtpd-sasl.c). */
bool smtpd_session_auth_offered(const SmtpdSession *s);
void smtpd_cmd_auth(SmtpdSession *s, const SmtpdCommand *c);
/* A line of the client in the AUTH exchange: the answer to a 334 challenge, or "*" to give up. */
void smtpd_session_auth_response(SmtpdSession *s, const char *line, size_t len);
/* Ends the AUTH exchange, if any, and goes back to reading commands. */
void smtpd_session_auth_end(SmtpdSession *s);
