/* smtp.h: private to the smtp role (postbus-smtp, the SMTP and LMTP delivery agent): the pure protocol
 * helpers (replies, EHLO keywords, next hops, the content encoder), the session, and the Delivery1 service. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "daemon.h"
#include "queue-file.h"

/* ---- smtp-proto.c: pure functions over (buf, len) ---- */

/* Longest reply line kept (the rest of a longer line is dropped), and most reply text kept over all lines. */
#define SMTP_REPLY_LINE_MAX 2048U
#define SMTP_REPLY_TEXT_MAX 8192U
/* Most lines in one reply; more is a protocol error. */
#define SMTP_REPLY_LINES_MAX 1000U

typedef struct SmtpReply {
        int code;               /* 200..599 */
        char dsn[16];           /* the enhanced status code of the first line, or "" */
        char *text;             /* every line, CRLF stripped, joined by single spaces */
        char **lines;           /* each line after "NNN-"/"NNN " (for EHLO keywords), NULL-terminated */
        size_t n_lines;
        size_t text_len;
        bool done;              /* the last line ("NNN ") was seen */
} SmtpReply;

void smtp_reply_init(SmtpReply *r);
void smtp_reply_done(SmtpReply *r);
/* Adds one reply line (without CRLF) to r. Returns 1 when it was the last line, 0 when more follow,
 * -EBADMSG when the line is no reply line or its code differs from the first line's, -E2BIG past
 * SMTP_REPLY_LINES_MAX lines. */
int smtp_reply_add_line(SmtpReply *r, const char *line, size_t len);
/* The status the reply gives: its enhanced code when it has one of the reply's class, else "X.0.0". */
const char *smtp_reply_dsn(const SmtpReply *r, char buf[static 16]);

typedef enum SmtpFeature {
        SMTP_FEATURE_PIPELINING = 1 << 0,
        SMTP_FEATURE_SIZE = 1 << 1,
        SMTP_FEATURE_8BITMIME = 1 << 2,
        SMTP_FEATURE_SMTPUTF8 = 1 << 3,
        SMTP_FEATURE_DSN = 1 << 4,
        SMTP_FEATURE_STARTTLS = 1 << 5,
        SMTP_FEATURE_ENHANCEDSTATUSCODES = 1 << 6,
} SmtpFeature;

/* The ESMTP features an EHLO (or LHLO) reply offers, and the SIZE limit (0: none given). */
unsigned smtp_ehlo_features(const SmtpReply *r, uint64_t *ret_size_limit);

/* A next hop as transport_maps and relayhost write it. */
typedef enum SmtpHopKind {
        SMTP_HOP_INET,          /* host (and port) */
        SMTP_HOP_UNIX,          /* lmtp: unix:/path */
        _SMTP_HOP_KIND_MAX,
        _SMTP_HOP_KIND_INVALID = -EINVAL,
} SmtpHopKind;

typedef struct SmtpHop {
        SmtpHopKind kind;
        char host[256];         /* a name or an IP address (brackets removed); the path for SMTP_HOP_UNIX */
        uint16_t port;
        bool mx;                /* look up MX records (a name without brackets, smtp only) */
} SmtpHop;

/* Parses "domain", "domain:port", "[host]", "[host]:port", "[ipv6]:port", and with lmtp "unix:/path",
 * "inet:host:port", "inet:[host]:port" (LMTP never looks up MX). The port may be a number or "smtp"/"lmtp".
 * -EINVAL for anything else. */
int smtp_hop_parse(const char *s, bool lmtp, uint16_t default_port, SmtpHop *ret);

/* The content encoder: queue file content (LF line ends, not dot-stuffed) into SMTP DATA (CRLF line ends,
 * every line starting with '.' doubled, lines longer than line_limit broken with CRLF SPACE; 0: no limit). */
typedef struct SmtpEncoder {
        size_t line_limit;
        size_t column;          /* octets of the current output line so far */
        bool line_start;        /* the next octet starts a line */
} SmtpEncoder;

void smtp_encoder_init(SmtpEncoder *e, size_t line_limit);
/* Encodes len octets of in into out, which holds at least smtp_encoder_bound(len) octets; returns the
 * octets written. */
size_t smtp_encoder_bound(const SmtpEncoder *e, size_t len);
size_t smtp_encoder_feed(SmtpEncoder *e, const char *in, size_t len, char *out);
/* The end of the content: a CRLF if the last line had none, then ".\r\n". out holds 5 octets. */
size_t smtp_encoder_finish(SmtpEncoder *e, char *out);

/* SASL client authentication: smtp_sasl_security_options words, as Cyrus SASL names them. */
typedef enum SmtpSaslOption {
        SMTP_SASL_NOPLAINTEXT = 1 << 0,
        SMTP_SASL_NOACTIVE = 1 << 1,
        SMTP_SASL_NODICTIONARY = 1 << 2,
        SMTP_SASL_NOANONYMOUS = 1 << 3,
        SMTP_SASL_MUTUAL_AUTH = 1 << 4,
        SMTP_SASL_FORWARD_SECRECY = 1 << 5,
} SmtpSaslOption;

/* The options of s (words separated by spaces or commas) in *ret; -EINVAL when a word is unknown (*ret then
 * holds the known ones). */
int smtp_sasl_options_parse(const char *s, unsigned *ret);
/* Whether the EHLO reply offers AUTH (1) or not (0). The mechanisms it names that pass filter
 * (smtp_sasl_mechanism_filter; NULL or empty passes all) and that postbus speaks go into *ret_mechanisms
 * (bit k: sasl_mechanisms[k]); *ret_n_passed counts every name that passed, spoken or not. */
int smtp_ehlo_auth(const SmtpReply *r, char **filter, unsigned *ret_mechanisms, size_t *ret_n_passed);
/* The mechanism to use among mechanisms under the security options, or NULL when none is allowed. */
const char *smtp_sasl_choose(unsigned mechanisms, unsigned options);
/* The smtp_sasl_password_maps keys, in lookup order: the sender and its @domain (sender: NULL or "" unless
 * smtp_sender_dependent_authentication), "[host]:port", "[host]", "host:port" and "host" of the server,
 * then the next hop as written and its domain. Duplicates are left out. */
int smtp_sasl_keys(const char *sender, const char *host, uint16_t port, const char *nexthop, bool lmtp,
                   char ***ret);
/* The base64 initial response of PLAIN: "\0user\0password". */
int smtp_sasl_plain_response(const char *user, const char *password, char **ret);

/* ---- smtp-tls.c ---- */

typedef enum SmtpTlsLevel {
        SMTP_TLS_NONE,
        SMTP_TLS_MAY,
        SMTP_TLS_ENCRYPT,
        SMTP_TLS_VERIFY,
        SMTP_TLS_SECURE,
} SmtpTlsLevel;

/* What a server's certificate showed, in Postfix's words: none, not from a trusted CA, from a trusted CA,
 * from a trusted CA with a name that matched (verify and secure only). */
typedef enum SmtpTlsTrust {
        SMTP_TLS_ANONYMOUS,
        SMTP_TLS_UNTRUSTED,
        SMTP_TLS_TRUSTED,
        SMTP_TLS_VERIFIED,
} SmtpTlsTrust;

typedef struct ssl_st SSL;
typedef struct SmtpSettings SmtpSettings;
int smtp_tls_level_from_string(const char *s);
/* A client TLS connection on fd with the settings' CAs (and at verify/secure their match names; hostname is
 * the server's name, also sent as SNI). server ("nexthop host[address]:port") and the TLS settings key the
 * session cache: a session kept for them is offered for resumption. */
int smtp_tls_new(int fd, const SmtpSettings *set, const char *hostname, const char *server, SSL **ret);
SmtpTlsTrust smtp_tls_trust(SSL *ssl, int level);
/* "Verified TLSv1.3 with cipher TLS_AES_256_GCM_SHA384", for the TLS field of delivery records. */
void smtp_tls_describe(SSL *ssl, SmtpTlsTrust trust, char *buf, size_t size);
ssize_t smtp_tls_result(SSL *ssl, int r, uint32_t *wants);
void smtp_tls_cleanup(void);
/* A send or receive through TLS when ssl is set, else on fd: bytes, -EAGAIN (with *wants for TLS), 0 at the
 * end (receive), or negative errno. */
ssize_t smtp_io_send(SSL *ssl, int fd, const void *buf, size_t n, uint32_t *wants);
ssize_t smtp_io_recv(SSL *ssl, int fd, void *buf, size_t n, uint32_t *wants);
/* smtp-tls-cache.c: the TLS session cache. setup: on a new client context. attach: the connection's
 * sessions are kept under key for timeout usec (0: none), and a kept one is offered; 1 when it was. */
typedef struct ssl_ctx_st SSL_CTX;
int smtp_tls_cache_setup(SSL_CTX *ctx);
int smtp_tls_cache_attach(SSL *ssl, const char *key, uint64_t timeout);
void smtp_tls_cache_cleanup(void);
/* The journal record of an established TLS connection: trust, protocol, cipher, whether resumed. */
void smtp_tls_log(SSL *ssl, SmtpTlsTrust trust, const char *queue_id, const char *relay);

/* ---- the session and the calls ---- */

typedef struct Smtp Smtp;
typedef struct SmtpCall SmtpCall;
typedef struct SmtpSession SmtpSession;
typedef struct SmtpAddress SmtpAddress;

/* The settings of one transport: main.cf with the transport's master.cf -o overrides. */
/* The tables of smtp_header_checks, smtp_mime_header_checks, smtp_nested_header_checks, smtp_body_checks. */
typedef enum SmtpChecksKind {
        SMTP_CHECKS_HEADER,
        SMTP_CHECKS_MIME_HEADER,
        SMTP_CHECKS_NESTED_HEADER,
        SMTP_CHECKS_BODY,
        _SMTP_CHECKS_MAX,
} SmtpChecksKind;

struct SmtpSettings {
        bool lmtp;
        uint64_t connect_timeout;       /* microseconds */
        uint64_t helo_timeout;
        uint64_t mail_timeout;
        uint64_t rcpt_timeout;
        uint64_t data_init_timeout;
        uint64_t data_xfer_timeout;
        uint64_t data_done_timeout;
        uint64_t quit_timeout;
        size_t line_length_limit;
        unsigned mx_address_limit;
        unsigned mx_session_limit;
        char *helo_name;
        int tls_level;                  /* SmtpTlsLevel */
        uint64_t host_failure_cache_time;
        char *tls_cafile;
        char *tls_capath;
        char *tls_match;                /* the match strategies and names for verify and secure */
        char *tls_nexthop;              /* the next-hop domain, for nexthop and dot-nexthop */
        bool cache_on_demand;
        bool cache_always;              /* the next hop is in smtp_connection_cache_destinations */
        uint64_t cache_time_limit;
        uint64_t reuse_time_limit;
        unsigned reuse_count_limit;
        uint64_t rset_timeout;
        int64_t tls_loglevel;           /* smtp_tls_loglevel: 0, no record of each TLS session */
        uint64_t tls_session_cache_timeout;     /* usec; 0: no TLS session cache */
        char **fallback_relay;          /* NULL: none */
        int address_family;             /* inet_protocols: AF_UNSPEC (all), AF_INET or AF_INET6 */
        int address_preference;         /* smtp_address_preference: AF_UNSPEC (any), AF_INET or AF_INET6 */
        bool tls_wrappermode;           /* TLS from the connect on (port 465) */
        bool sasl_enable;
        bool sasl_sender_dependent;
        unsigned sasl_options;          /* SmtpSaslOption, without TLS */
        unsigned sasl_tls_options;      /* over TLS */
        char *sasl_password_maps;
        char **sasl_mechanism_filter;
        char *generic_maps;             /* smtp_generic_maps; "" for none */
        char *checks[_SMTP_CHECKS_MAX];  /* smtp_header_checks ... smtp_body_checks; "" for none */
};

typedef enum SmtpRcptState {
        SMTP_RCPT_PENDING,              /* no final result yet: may go to the next server */
        SMTP_RCPT_ACCEPTED,             /* RCPT TO accepted in the current session, DATA outcome to come */
        SMTP_RCPT_DONE,
} SmtpRcptState;

typedef struct SmtpRecipient {
        uint32_t index;
        const char *address;            /* owned by the request */
        char *rcpt_to;                  /* the address RCPT TO gives, after smtp_generic_maps, or NULL: address */
        const char *notify;             /* owned by the envelope */
        const char *orcpt;
        SmtpRcptState state;
        char status[16];                /* "sent", "deferred", "bounced", for the journal record */
        const char *sent_as;            /* sent: the result's status for qmgr, "sent", "relayed" or "passed" */
        char dsn[16];
        char *relay;
        char *text;
} SmtpRecipient;

/* The TLS facts of the session that gives a delivery its result ("none" without TLS), for its record. */
void smtp_call_set_tls(SmtpCall *c, const char *tls);
/* The transactions the session that gives a delivery its result has carried (2 and more: reused), for the
 * record's conn_use=. */
void smtp_call_set_conn_use(SmtpCall *c, unsigned n);
/* Whether the session should stay open for the next delivery after this call's transaction (the
 * destination is in smtp_connection_cache_destinations, or qmgr has more for it and caching on demand is
 * on) and a is one of its best MX hosts, and the cache key of the call's destination. */
bool smtp_call_keep_session(SmtpCall *c, const SmtpAddress *a);
const char *smtp_call_cache_key(SmtpCall *c);

/* One server address to try. */
typedef struct SmtpAddress {
        char host[256];                 /* the name the address is of (the MX host), or the address itself */
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_un un;
        } sockaddr;
        socklen_t socklen;
        char text[sizeof(struct sockaddr_un)];  /* the address (or socket path) for "host[text]" */
        unsigned preference;            /* the MX preference of host (0 without MX) */
} SmtpAddress;

/* smtp-sasl.c: the SASL and wrapper-mode fields of set, from main.cf and the transport's -o overrides. */
int smtp_sasl_settings_load(const Config *cfg, char **options, SmtpSettings *set);
void smtp_sasl_settings_done(SmtpSettings *set);
void smtp_sasl_cleanup(void);
/* A STRING or BOOL parameter's text: the -o override ("o:smtp_x", or "o:lmtp_x" for smtp_x), else value. */
const char *smtp_setting_string(char **options, const char *name, const char *value);

/* smtp-generic.c: smtp_generic_maps. The address addr becomes with the tables of spec (a table list; "": none):
 * 1 and *ret when it changes, 0 when it does not, negative errno when a table fails. */
int smtp_generic_address(const Config *cfg, const char *spec, const char *addr, char **ret);
void smtp_generic_cleanup(void);
/* Most addresses of one header rewritten; a header with more is sent as it is. */
#define SMTP_GENERIC_HEADER_ADDRESSES_MAX 10000U
/* Longest header section rewritten; a longer one is sent as it is. */
#define SMTP_GENERIC_HEADERS_MAX (1024U * 1024U)
typedef int (*SmtpGenericFunc)(const char *addr, char **ret, void *userdata);
/* The header section buf[0..len) (LF line ends, up to the empty line) with each addr-spec of the sender and
 * recipient headers (addrlist_header_class()) replaced by what map makes of it (map: as smtp_generic_address()),
 * in place, names, comments and folding kept: 1 and *ret (len *ret_len) when anything changed, 0 when nothing
 * did, negative errno when map fails. */
int smtp_generic_headers(const char *buf, size_t len, SmtpGenericFunc map, void *userdata, char **ret,
                         size_t *ret_len);

/* smtp-checks.c: smtp_header_checks, smtp_mime_header_checks, smtp_nested_header_checks and smtp_body_checks on
 * the content of one delivery, which goes out through output as the rules leave it. */
typedef struct SmtpChecksSpec {
        const char *tables[_SMTP_CHECKS_MAX];   /* table lists, "" or NULL: none */
        size_t header_limit;                    /* header_size_limit */
        size_t body_limit;                      /* body_checks_size_limit */
        size_t nesting_limit;                   /* mime_nesting_limit */
        const char *queue_id;                   /* for the log; borrowed for the life of the checks */
} SmtpChecksSpec;

/* A body line or a header longer than this goes out as it is, checked as far as it came or not at all. */
#define SMTP_CHECKS_LINE_MAX (1024U * 1024U)
typedef int (*SmtpChecksOutput)(const char *data, size_t len, void *userdata);
typedef struct SmtpChecks SmtpChecks;

/* 1 and *ret when spec names any tables, 0 and NULL when none; negative errno when one cannot be opened. */
int smtp_checks_new(const SmtpChecksSpec *spec, SmtpChecksOutput output, void *userdata, SmtpChecks **ret);
SmtpChecks *smtp_checks_free(SmtpChecks *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpChecks *, smtp_checks_free);
/* A piece of the content (LF line ends), in any cut; -EIO when a table lookup failed (logged). */
int smtp_checks_feed(SmtpChecks *k, const char *data, size_t len);
/* The end of the content: what is held back goes out. */
int smtp_checks_finish(SmtpChecks *k);
/* The tables kept open between deliveries. */
void smtp_checks_cleanup(void);

/* smtp-tls-policy.c: the TLS fields of set (set->lmtp already set) for a delivery to nexthop. */
int smtp_tls_settings_load(const Config *cfg, char **options, const char *nexthop, SmtpSettings *set);
void smtp_tls_policy_cleanup(void);

/* smtp-hostcache.c: how addresses performed. Sorts a (in MX preference order) so that within one preference
 * addresses that greeted us recently come first, fastest first, and addresses that timed out or refused
 * within cache_time (usec) go after all others. family_bound (smtp_address_preference is set): the speed
 * order stays within one address family, so that the preferred family keeps its place. */
void smtp_hostcache_sort(SmtpAddress *a, size_t n, uint64_t cache_time, bool family_bound);
bool smtp_hostcache_failing(const SmtpAddress *a);
/* Until when (CLOCK_REALTIME usec) the address is skipped, and why; 0 when it is not. */
uint64_t smtp_hostcache_failing_until(const SmtpAddress *a, const char **ret_reason);
/* The address greeted us latency usec after the connect began. */
void smtp_hostcache_ok(const SmtpAddress *a, uint64_t latency);
/* The address timed out or refused: logged when it enters the cache. */
void smtp_hostcache_fail(const SmtpAddress *a, uint64_t cache_time, const char *queue_id, const char *reason);

/* What a session asks of its call when it ends. */
typedef enum SmtpSessionEnd {
        SMTP_SESSION_FINISHED,          /* every recipient given to it has a result (or stays pending) */
        SMTP_SESSION_TRY_NEXT,          /* a failure of this server: pending recipients may go to the next */
        SMTP_SESSION_STALE,             /* a cached session that failed its RSET: the call goes on without it */
} SmtpSessionEnd;

/* smtp-session.c: a session with one address. final_server: a temporary failure of a recipient is its
 * result, rather than a reason to try the next server. Immediate connect errors are returned. */
int smtp_session_start(SmtpCall *call, const SmtpAddress *address, bool final_server, SmtpSession **ret);
SmtpSession *smtp_session_free(SmtpSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpSession *, smtp_session_free);
/* Sessions that wait for the reply to QUIT, and the cached ones, at exit. */
void smtp_sessions_free_lingering(void);
/* A session from the connection cache for a call: RSET, then the call's transaction. A failed RSET ends
 * it with SMTP_SESSION_STALE. */
int smtp_session_reuse(SmtpSession *s, SmtpCall *call);
const SmtpAddress *smtp_session_address(const SmtpSession *s);

/* smtp-cache.c: the connection cache (in process, as Postfix's scache, which it replaces): sessions that
 * wait after a transaction for the next delivery to the same destination. smtp_cache_take() hands out the
 * most recently kept session for key (NULL: none), out of the cache. */
SmtpSession *smtp_cache_take(const char *key);
void smtp_cache_free_all(void);

/* smtp-dest.c: from a next hop to the list of server addresses, in the order to try them. */
typedef struct SmtpDest SmtpDest;
int smtp_dest_setup(sd_event *e);
void smtp_dest_cleanup(void);
/* Starts finding the addresses; smtp_call_dest_done() is called from the event loop, never from here.
 * -EINVAL: the next hop has no valid syntax. */
int smtp_dest_start(SmtpCall *call, const char *nexthop, SmtpDest **ret);
SmtpDest *smtp_dest_free(SmtpDest *d);

/* smtp-bus.c: what a session reports to its call. */
sd_event *smtp_call_event(SmtpCall *c);
Daemon *smtp_call_daemon(SmtpCall *c);
const SmtpSettings *smtp_call_settings(SmtpCall *c);
const char *smtp_call_queue_id(SmtpCall *c);
const char *smtp_call_sender(SmtpCall *c);
/* The sender MAIL FROM gives: after smtp_generic_maps. */
const char *smtp_call_mail_from(SmtpCall *c);
/* The next hop whose addresses the call is trying: the request's, or a fallback relay. */
const char *smtp_call_nexthop(SmtpCall *c);
const QueueEnvelope *smtp_call_envelope(SmtpCall *c);
int smtp_call_queue_fd(SmtpCall *c);
SmtpRecipient *smtp_call_recipients(SmtpCall *c, size_t *ret_n);
/* Gives a recipient its result and writes the journal record. */
void smtp_call_result(SmtpCall *c, SmtpRecipient *rcpt, const char *dsn, const char *relay, const char *fmt, ...)
        _printf_(5, 6);
/* A server deferred the recipient, which stays pending for the next server: the reply it gets if no later
 * server gives it a result. */
void smtp_call_soft_failure(SmtpCall *c, SmtpRecipient *rcpt, const char *dsn, const char *relay, const char *text);
/* The session has ended and frees itself; relay, dsn and text (each may be NULL) describe a failure of the
 * server that makes the remaining recipients try the next one. */
void smtp_call_session_done(SmtpCall *c, SmtpSessionEnd end, const char *relay, const char *dsn,
                            const char *text);
/* The server addresses (taken over; n == 0: none, dsn and text say why). */
void smtp_call_dest_done(SmtpCall *c, SmtpAddress *addresses, size_t n, const char *dsn, const char *text);

int smtp_new(Daemon *d, Smtp **ret);
Smtp *smtp_free(Smtp *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Smtp *, smtp_free);
