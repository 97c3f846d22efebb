/* smtpd-restrictions.h: Postfix's restriction lists (smtpd_client_restrictions ... smtpd_recipient_restrictions,
 * smtpd_data_restrictions, smtpd_end_of_data_restrictions): parsing them from main.cf, access(5) tables, and
 * evaluating them for a session at HELO, MAIL, RCPT, DATA and the end of the message. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "smtpd-dnsbl.h"
#include "smtpd-mynetworks.h"
#include "smtpd-peername.h"
#include "smtpd-policy.h"
#include "smtpd-protocol.h"
#include "table.h"

typedef enum SmtpdRestrictionType {
        SMTPD_RESTRICTION_PERMIT,
        SMTPD_RESTRICTION_REJECT,
        SMTPD_RESTRICTION_DEFER,
        SMTPD_RESTRICTION_PERMIT_MYNETWORKS,
        SMTPD_RESTRICTION_PERMIT_SASL_AUTHENTICATED,
        SMTPD_RESTRICTION_PERMIT_AUTH_DESTINATION,
        SMTPD_RESTRICTION_REJECT_UNAUTH_DESTINATION,
        SMTPD_RESTRICTION_DEFER_UNAUTH_DESTINATION,
        SMTPD_RESTRICTION_REJECT_UNLISTED_RECIPIENT,
        SMTPD_RESTRICTION_REJECT_NON_FQDN_SENDER,
        SMTPD_RESTRICTION_REJECT_NON_FQDN_RECIPIENT,
        SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME,
        SMTPD_RESTRICTION_REJECT_INVALID_HELO_HOSTNAME,
        SMTPD_RESTRICTION_REJECT_UNKNOWN_CLIENT_HOSTNAME,
        SMTPD_RESTRICTION_REJECT_UNKNOWN_REVERSE_CLIENT_HOSTNAME,
        SMTPD_RESTRICTION_REJECT_UNKNOWN_SENDER_DOMAIN,
        SMTPD_RESTRICTION_REJECT_UNKNOWN_RECIPIENT_DOMAIN,
        SMTPD_RESTRICTION_REJECT_UNKNOWN_HELO_HOSTNAME,
        SMTPD_RESTRICTION_REJECT_UNAUTH_PIPELINING,
        SMTPD_RESTRICTION_REJECT_MULTI_RECIPIENT_BOUNCE,
        SMTPD_RESTRICTION_REJECT_PLAINTEXT_SESSION,
        SMTPD_RESTRICTION_REJECT_SENDER_LOGIN_MISMATCH,
        SMTPD_RESTRICTION_REJECT_AUTHENTICATED_SENDER_LOGIN_MISMATCH,
        SMTPD_RESTRICTION_REJECT_KNOWN_SENDER_LOGIN_MISMATCH,
        SMTPD_RESTRICTION_REJECT_UNAUTHENTICATED_SENDER_LOGIN_MISMATCH,
        SMTPD_RESTRICTION_REJECT_UNLISTED_SENDER,
        SMTPD_RESTRICTION_WARN_IF_REJECT,       /* the next restriction's refusal is only logged */
        SMTPD_RESTRICTION_DEFER_IF_PERMIT,
        SMTPD_RESTRICTION_DEFER_IF_REJECT,
        SMTPD_RESTRICTION_CLASS_NAME,           /* a name of smtpd_restriction_classes (in arg); no name of its own */
        SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS,  /* these take a table */
        SMTPD_RESTRICTION_CHECK_HELO_ACCESS,
        SMTPD_RESTRICTION_CHECK_SENDER_ACCESS,
        SMTPD_RESTRICTION_CHECK_RECIPIENT_ACCESS,
        SMTPD_RESTRICTION_CHECK_REVERSE_CLIENT_HOSTNAME_ACCESS,
        SMTPD_RESTRICTION_REJECT_RBL_CLIENT,    /* these take a DNS domain */
        SMTPD_RESTRICTION_REJECT_RHSBL_CLIENT,
        SMTPD_RESTRICTION_REJECT_RHSBL_REVERSE_CLIENT,
        SMTPD_RESTRICTION_REJECT_RHSBL_SENDER,
        SMTPD_RESTRICTION_REJECT_RHSBL_HELO,
        SMTPD_RESTRICTION_REJECT_RHSBL_RECIPIENT,
        SMTPD_RESTRICTION_PERMIT_DNSWL_CLIENT,  /* allow lists, asked as the blocklists are */
        SMTPD_RESTRICTION_PERMIT_RHSWL_CLIENT,
        SMTPD_RESTRICTION_CHECK_POLICY_SERVICE, /* this takes an endpoint (smtpd-policy.h) */
        SMTPD_RESTRICTION_SLEEP,                /* this takes a number of seconds */
        _SMTPD_RESTRICTION_TYPE_MAX,
        _SMTPD_RESTRICTION_TYPE_INVALID = -EINVAL,
} SmtpdRestrictionType;

const char *smtpd_restriction_type_to_string(SmtpdRestrictionType t);
SmtpdRestrictionType smtpd_restriction_type_from_string(const char *s);
/* Whether the restriction is followed by an argument (a table, a domain). */
bool smtpd_restriction_type_has_arg(SmtpdRestrictionType t);
/* Whether it is a DNS blocklist, reject_rbl_client or reject_rhsbl_*: its argument is domain[=d.d.d.d]. */
bool smtpd_restriction_type_is_dnsbl(SmtpdRestrictionType t);

/* The lists: the first five in the order Postfix evaluates them at RCPT, then those of DATA and of the end of
 * the message. */
typedef enum SmtpdRestrictionClass {
        SMTPD_RESTRICTION_CLIENT,
        SMTPD_RESTRICTION_HELO,
        SMTPD_RESTRICTION_SENDER,
        SMTPD_RESTRICTION_RELAY,
        SMTPD_RESTRICTION_RECIPIENT,
        SMTPD_RESTRICTION_DATA,
        SMTPD_RESTRICTION_END_OF_DATA,
        _SMTPD_RESTRICTION_CLASS_MAX,
        _SMTPD_RESTRICTION_CLASS_INVALID = -EINVAL,
} SmtpdRestrictionClass;

typedef struct SmtpdRestriction {
        SmtpdRestrictionType type;
        char *arg;                      /* the table spec or DNS domain; NULL for the others */
        Table *table;                   /* check_*_access, once opened */
        SmtpdDnsblFilter *filter;       /* reject_rbl_client/reject_rhsbl_* domain=d.d.d.d; NULL: any A record lists */
        SmtpdPolicyEndpoint *endpoint;  /* check_policy_service, once resolved */
        size_t class_index;             /* SMTPD_RESTRICTION_CLASS_NAME: which of the classes */
} SmtpdRestriction;

typedef struct SmtpdRestrictionList {
        SmtpdRestriction *items;
        size_t n;
} SmtpdRestrictionList;

/* Parses a list value ("permit_mynetworks, check_client_access gdbm:/etc/postbus/access reject"). Pure:
 * no table is opened. classes (NULL-terminated, may be NULL) are the names of smtpd_restriction_classes,
 * which a list may name as restrictions. An unknown name, a missing argument or a bad reject_rbl_client
 * filter is logged as "<where>: <param>: ..." and is -EINVAL. */
int smtpd_restriction_list_parse(const char *value, const char *param, const char *where, char *const *classes,
                                 SmtpdRestrictionList *ret);
void smtpd_restriction_list_done(SmtpdRestrictionList *l);
/* Whether l has a restriction of type t that acts (not one that warn_if_reject makes a journal line). */
bool smtpd_restriction_list_has(const SmtpdRestrictionList *l, SmtpdRestrictionType t);

/* What an access(5) table (or a policy service) says about a key. */
typedef enum SmtpdAccessAction {
        SMTPD_ACCESS_PERMIT,            /* OK, PERMIT, or all digits */
        SMTPD_ACCESS_DUNNO,             /* DUNNO: as if the key had not been found */
        SMTPD_ACCESS_REJECT,            /* REJECT, DEFER, 4NN text, 5NN text: code, dsn and text below */
        /* The message-wide actions; the evaluation goes on after them (DISCARD: it ends, accepting). text
         * holds the argument: the optional reason, the header, the address, the transport:nexthop. */
        SMTPD_ACCESS_HOLD,              /* HOLD [text]: into the hold queue */
        SMTPD_ACCESS_DISCARD,           /* DISCARD [text]: accepted, and thrown away */
        SMTPD_ACCESS_FILTER,            /* FILTER transport:nexthop: a content filter */
        SMTPD_ACCESS_REDIRECT,          /* REDIRECT address: to this address instead of the recipients */
        SMTPD_ACCESS_PREPEND,           /* PREPEND name: value: a header added at the top */
        SMTPD_ACCESS_WARN,              /* WARN [text]: logged, nothing else */
        _SMTPD_ACCESS_ACTION_MAX,
        _SMTPD_ACCESS_ACTION_INVALID = -EINVAL,
} SmtpdAccessAction;

typedef struct SmtpdAccessResult {
        SmtpdAccessAction action;
        unsigned code;                  /* 450, 554, ... */
        bool keyword;                   /* REJECT or DEFER: access_map_reject_code or _defer_code applies */
        char dsn[16];                   /* "5.7.1" */
        char text[SMTPD_REPLY_LINE_MAX];        /* "Access denied", or the table's text; printable ASCII */
} SmtpdAccessResult;

/* Parses an access(5) action, Postfix's semantics, for tables and policy services alike. -EOPNOTSUPP for
 * an action this is not (the caller may try a restriction list), -EINVAL for a malformed one ("6NN text", a
 * DSN whose class differs from the code's, FILTER without transport:nexthop, REDIRECT without an address,
 * PREPEND without "name: value"). */
int smtpd_access_result_parse(const char *value, SmtpdAccessResult *ret);

/* The message-wide actions met while evaluating the restrictions of one mail transaction; the session
 * hands them to cleanup with the message. */
typedef struct SmtpdMessageActions {
        char *hold;                     /* the HOLD reason ("" without text), or NULL */
        char *discard;                  /* the DISCARD reason, or NULL */
        char *filter;                   /* the last FILTER's transport:nexthop, or NULL */
        char *redirect;                 /* the last REDIRECT's address, or NULL */
        char **prepend;                 /* the PREPENDed headers, each once, in order */
        size_t n_prepend;
} SmtpdMessageActions;

void smtpd_message_actions_clear(SmtpdMessageActions *a);

/* access(5) lookup keys, most specific first, as a NULL-terminated vector:
 *   client address: "1.2.3.4", "1.2.3", "1.2", "1" (IPv6: the address, then without its last ":part" ...);
 *   domain: "a.b.example", "b.example", "example" (parent_domain_matches_subdomains, Postfix's default);
 *   mail address: "user@a.example", the domain and its parents, "user@"; the null address is "<>". */
int smtpd_access_client_keys(const SmtpdAddress *client, char ***ret);
int smtpd_access_domain_keys(const char *domain, char ***ret);
int smtpd_access_address_keys(const char *address, char ***ret);

/* HELO name checks: a syntactically valid host name or address literal; one with a dot (or a literal). */
bool smtpd_helo_valid(const char *helo);
bool smtpd_helo_fqdn(const char *helo);
/* Whether a mail address's domain is fully qualified (a valid name with a dot, or an address literal). */
bool smtpd_address_fqdn(const char *address);

/* The server's restrictions, built at start from the configuration. */
typedef struct SmtpdChecks SmtpdChecks;

/* Parses the lists and local_recipient_maps and opens their tables. A configuration error is logged with
 * file and line and is -EINVAL. mynetworks, mydestination and resolver (for reject_rbl_client; may be NULL
 * if no list uses it) are borrowed and must outlive the result. */
int smtpd_checks_new(const Config *config, const SmtpdNetworks *mynetworks, char **mydestination,
                     Resolver *resolver, SmtpdChecks **ret);
SmtpdChecks *smtpd_checks_free(SmtpdChecks *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdChecks *, smtpd_checks_free);

/* The policy services' connections of the process (smtpd-policy.c), for check_policy_service; borrowed.
 * Without one, every check_policy_service gives smtpd_policy_service_default_action. */
void smtpd_checks_set_policy_pool(SmtpdChecks *c, SmtpdPolicyPool *pool);
/* The event loop (borrowed) that the "sleep" restriction's timers run on; without one, "sleep" does not wait. */
void smtpd_checks_set_event(SmtpdChecks *c, sd_event *event);

/* The state of one session: its DNS blocklist lookups, started at connect, and its policy request. */
typedef struct SmtpdCheckSession SmtpdCheckSession;

/* done(userdata) runs once all lookups have finished (never from within this call), and again each time a
 * policy service has answered. */
int smtpd_check_session_new(SmtpdChecks *c, const SmtpdAddress *client, void (*done)(void *userdata),
                            void *userdata, SmtpdCheckSession **ret);
SmtpdCheckSession *smtpd_check_session_free(SmtpdCheckSession *cs);
/* Whether DNS lookups or a policy request are still running: the session waits before it evaluates
 * anything. */
bool smtpd_check_session_pending(const SmtpdCheckSession *cs);

/* What the session knows when it asks. */
typedef struct SmtpdCheckInput {
        const SmtpdAddress *client;
        const SmtpdPeerName *peer;      /* the client's names; NULL: "unknown", SMTPD_PEER_PERM */
        const char *helo;               /* NULL before HELO/EHLO */
        const char *sender;             /* NULL before MAIL; "" is the null sender */
        const char *recipient;          /* NULL except at RCPT */
        bool authenticated;             /* SASL */
        SmtpdMessageActions *actions;   /* where HOLD, DISCARD, ... go; NULL: they are refused as unsupported */
        /* What policy services are told besides (SMTPD_POLICY_README); each may be NULL or 0. */
        const char *protocol_state;     /* "VRFY", where the command is not the check's own */
        const char *protocol_name;      /* "SMTP", "ESMTP" */
        const char *sasl_method, *sasl_username;
        const char *instance;           /* the same for every request of one mail transaction */
        unsigned recipient_count;       /* recipients accepted so far */
        bool ill_pipelining;            /* the client sent commands ahead of time where it may not (reject_unauth_pipelining) */
        uint64_t size;                  /* MAIL ... SIZE= */
        const char *tls_protocol, *tls_cipher;
        int tls_bits;
        int server_fd;                  /* the connection, whose local end a policy request names; or -1 */
        const char *command;            /* "EHLO", "RCPT", ... for the journal's reject_warning lines; NULL:
                                         * the protocol state */
} SmtpdCheckInput;

/* Each returns 0 when the command may go on, or 1 with the reply ("554 5.7.1 ...", no CRLF) in reply
 * (SMTPD_REPLY_LINE_MAX bytes). smtpd_check_rcpt() also evaluates the client, HELO and sender lists when
 * smtpd_delay_reject is set; the others do nothing then. smtpd_check_client() is for connect time: it
 * returns -EAGAIN while DNS lookups are pending (the greeting waits for done()). Each returns -EAGAIN
 * while it waits for a policy service (check_policy_service): the caller asks the same again after done(),
 * which then goes on with the answer. */
int smtpd_check_client(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply);
int smtpd_check_helo(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply);
int smtpd_check_sender(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply);
int smtpd_check_rcpt(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply);
/* smtpd_data_restrictions at DATA (and the first BDAT), smtpd_end_of_data_restrictions once the message is
 * complete, whatever smtpd_delay_reject says. As in Postfix, in->recipient is NULL unless the message has
 * exactly one recipient: a decision about it is about all of them. */
int smtpd_check_data(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply);
int smtpd_check_eod(SmtpdCheckSession *cs, const SmtpdCheckInput *in, char *reply);
