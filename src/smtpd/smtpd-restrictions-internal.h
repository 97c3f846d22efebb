/* smtpd-restrictions-internal.h: private to the smtpd process's restriction files: the engine
 * (smtpd-restrictions.c), the individual checks (smtpd-restriction-checks.c) and the access maps
 * (smtpd-access.c). Everything else goes through smtpd-restrictions.h. */
#pragma once

#include <netinet/in.h>

#include "smtpd-restrictions.h"
#include "virtual-maps.h"

/* What a restriction does when DNS fails temporarily (reject_tempfail_action and its finer parameters). */
typedef enum SmtpdTempfailAction {
        SMTPD_TEMPFAIL_DEFER_IF_PERMIT, /* 450 at the end of the evaluation, if nothing else refuses */
        SMTPD_TEMPFAIL_DEFER,           /* 450 now */
        _SMTPD_TEMPFAIL_ACTION_MAX,
        _SMTPD_TEMPFAIL_ACTION_INVALID = -EINVAL,
} SmtpdTempfailAction;

/* Postfix's defer_if_permit and defer_if_reject: a refusal kept for later, the first one raised. */
typedef struct SmtpdDeferral {
        bool active;
        char reply[SMTPD_REPLY_LINE_MAX];
} SmtpdDeferral;

/* The longest "sleep" a restriction list may ask for, in seconds. */
#define SMTPD_SLEEP_MAX 3600U

/* How deep restriction classes and access table values may nest within each other. */
#define SMTPD_RESTRICTION_DEPTH_MAX 32

/* The server's restrictions. */
struct SmtpdChecks {
        const Config *config;
        const SmtpdNetworks *mynetworks;
        char **mydestination;
        SmtpdRestrictionList lists[_SMTPD_RESTRICTION_CLASS_MAX];
        char **class_names;             /* smtpd_restriction_classes */
        SmtpdRestrictionList *classes;  /* ...and their lists, in that order */
        size_t n_classes;
        SmtpdTempfailAction unknown_helo_tempfail, unknown_address_tempfail;
        /* receive_override_options of the service: no_unknown_recipient_checks clears check_recipients,
         * no_address_mappings clears mapped_known. */
        bool check_recipients, mapped_known;
        /* The maps that cleanup rewrites addresses with: an address they list is known (Postfix's smtpd). */
        TableList *canonical_maps, *recipient_canonical_maps, *sender_canonical_maps, *virtual_alias_maps;
        /* local_recipient_maps: the password database and tables; an empty value turns the check off. */
        bool local_check, local_passwd;
        Table **local_tables;
        bool *local_warned;             /* "not built" logged for this table */
        size_t n_local_tables;
        /* virtual_mailbox_domains and virtual_mailbox_maps: hosted domains and their known addresses. */
        VirtualDomains virtual_domains;
        VirtualMap virtual_mailboxes;
        /* relay_domains (subdomains included) and relay_recipient_maps: relayed domains and known recipients. */
        VirtualDomains relay_domains;
        VirtualMap relay_recipients;
        VirtualMap sender_logins;       /* smtpd_sender_login_maps: a sender address's owners (SASL names) */
        char **dnsbl_domains;           /* the domains of every reject_rbl_client, once each */
        TableList *rbl_reply_maps;      /* reply templates by blocklist domain, before default_rbl_reply */
        Resolver *resolver;             /* borrowed from the server */
        SmtpdPolicyPool *policy;        /* borrowed from the server; NULL: none */
        sd_event *event;                /* borrowed from the server; NULL: none */
};

typedef enum SmtpdDnsblStatus {
        SMTPD_DNSBL_PENDING,
        SMTPD_DNSBL_LISTED,
        SMTPD_DNSBL_NOT_LISTED,
        SMTPD_DNSBL_FAILED,
        _SMTPD_DNSBL_STATUS_MAX,
        _SMTPD_DNSBL_STATUS_INVALID = -EINVAL,
} SmtpdDnsblStatus;

/* One client's lookup in one DNS blocklist. */
typedef struct SmtpdDnsblLookup {
        SmtpdCheckSession *session;
        const char *domain;
        char name[RESOLVER_NAME_MAX + 1];
        ResolverQuery *a, *txt;
        SmtpdDnsblStatus status;
        uint8_t addresses[SMTPD_DNSBL_A_MAX][4];        /* the A records of a listed client */
        unsigned n_addresses;
        char text[SMTPD_DNSBL_TXT_MAX];
} SmtpdDnsblLookup;

/* A policy service's answer, kept while the evaluation that asked for it is resumed. */
typedef struct SmtpdPolicyAnswer {
        const SmtpdRestriction *item;
        int error;                      /* < 0: no answer, the default action applies */
        char action[SMTPD_POLICY_ACTION_MAX];
} SmtpdPolicyAnswer;

typedef struct SmtpdDomainLookup SmtpdDomainLookup;

/* Most names a session has looked up in right-hand-side lists, and most domains it has looked up for
 * reject_unknown_*: a client that names new ones without end gets a temporary failure for each beyond. */
#define SMTPD_SESSION_LOOKUPS_MAX 100U

/* A session's restriction state. */
struct SmtpdCheckSession {
        SmtpdChecks *checks;
        SmtpdAddress client;
        SmtpdDnsblLookup *lookups;
        size_t n_lookups;
        SmtpdDnsblLookup **rhsbl;       /* reject_rhsbl_*: one lookup per query name, started when asked */
        size_t n_rhsbl;
        SmtpdDomainLookup **domains;    /* reject_unknown_*_domain: one lookup per domain, kept */
        size_t n_domains;
        unsigned pending;               /* queries in flight */
        SmtpdPolicyRequest *policy;     /* the check_policy_service request in flight */
        const SmtpdRestriction *policy_item;    /* ...and the restriction that made it */
        SmtpdPolicyAnswer *answers;     /* of the evaluation in progress; cleared when it ends */
        size_t n_answers;
        sd_event_source *sleep;         /* the "sleep" restriction's timer, while it runs */
        const SmtpdRestriction *sleep_item;     /* ...and the restriction that started it */
        const SmtpdRestriction **slept; /* the "sleep"s over in the evaluation in progress; cleared when it ends */
        size_t n_slept;
        /* defer_if_permit: the reply, and whether the client, HELO and sender lists raised it (a later
         * stage inherits an earlier one's, as in Postfix). */
        SmtpdDeferral defer_if_permit;
        bool defer_client, defer_helo, defer_sender;
        void (*done)(void *userdata);
        void *userdata;
};

/* What one restriction decided. */
typedef enum SmtpdCheckStatus {
        SMTPD_CHECK_DUNNO,              /* no decision: the next restriction */
        SMTPD_CHECK_OK,                 /* permitted: the end of this list */
        SMTPD_CHECK_REJECT,             /* the reply is set: the end of everything */
        SMTPD_CHECK_WAIT,               /* a policy service is asked: the evaluation is resumed later */
} SmtpdCheckStatus;

/* One evaluation: a session's question at HELO, MAIL or RCPT. */
typedef struct SmtpdCheckContext {
        SmtpdCheckSession *cs;
        const SmtpdCheckInput *in;
        char *reply;
        SmtpdRestrictionClass cls;      /* the list being evaluated */
        const char *protocol_state;     /* "CONNECT", "HELO", "MAIL", "RCPT", "VRFY" */
        char client_name[RESOLVER_NAME_MAX + INET6_ADDRSTRLEN + 3];     /* "name[192.0.2.1]" */
        unsigned depth;                 /* lists being evaluated within each other (classes, table values) */
        unsigned warn_depth;            /* warn_if_reject: the depth it was given at; 0: none */
        SmtpdDeferral defer_if_reject;  /* of this stage's evaluation */
} SmtpdCheckContext;

/* smtpd-restrictions.c: sets the reply, and returns SMTPD_CHECK_REJECT; under warn_if_reject it only logs
 * "reject_warning: ..." and returns SMTPD_CHECK_DUNNO, and after defer_if_reject a 5xx reply becomes the
 * deferral's. The server's own failures ("451 4.3.x": a table that cannot be read, a configuration error, no
 * memory) are neither, as in Postfix. */
_printf_(2, 3) SmtpdCheckStatus smtpd_restriction_reject(SmtpdCheckContext *ctx, const char *fmt, ...);
/* A refusal for a temporary DNS failure, as action says: now (defer, or under warn_if_reject), or kept as
 * the session's defer_if_permit (the first one kept), SMTPD_CHECK_DUNNO. */
_printf_(3, 4) SmtpdCheckStatus smtpd_restriction_tempfail(SmtpdCheckContext *ctx, SmtpdTempfailAction action,
                                                           const char *fmt, ...);
/* Evaluates restrictions in order (a list, a class, an access table's value) until one decides. */
SmtpdCheckStatus smtpd_restriction_check_items(SmtpdCheckContext *ctx, const SmtpdRestriction *items, size_t n);
/* What "<name>: <class> rejected" names in a reply of this list. */
void smtpd_restriction_subject(SmtpdCheckContext *ctx, SmtpdRestrictionClass cls, const char **ret_name,
                               const char **ret_class);

/* smtpd-restriction-checks.c: evaluates one restriction of the list ctx->cls. */
SmtpdCheckStatus smtpd_restriction_check(SmtpdCheckContext *ctx, const SmtpdRestriction *item);
/* Whether the domain of addr is hosted (virtual_mailbox_domains): 1, 0, or negative errno. */
int smtpd_address_hosted(SmtpdChecks *c, const char *addr);
/* Whether the domain of addr is one of relay_domains (or below one): 1, 0, or negative errno. */
int smtpd_address_relayed(SmtpdChecks *c, const char *addr);
/* The enhanced status code for a reply code taken from a parameter: "X.m.n", X the class of the code, as
 * Postfix makes a 4xx code's detail 4.m.n. */
const char *smtpd_reply_dsn(unsigned code, const char *detail, char buf[static 16]);
/* reject_unlisted_recipient (and smtpd_reject_unlisted_recipient) with sender false; reject_unlisted_sender
 * (and smtpd_reject_unlisted_sender) with true. */
SmtpdCheckStatus smtpd_restriction_check_unlisted(SmtpdCheckContext *ctx, bool sender);

/* smtpd-access.c: what an access(5) action says (value, found for key in source, a table or a policy
 * service), about the subject name of the list's class ("Client host", ...): a reply, OK, DUNNO, a list of
 * restrictions evaluated in place, or a message-wide action noted in ctx->in->actions (HOLD, DISCARD,
 * FILTER, REDIRECT, PREPEND, WARN). The one interpreter of actions, for tables and policy services alike. */
SmtpdCheckStatus smtpd_access_action(SmtpdCheckContext *ctx, const char *value, const char *name, const char *class,
                                     const char *source, const char *key);
/* smtpd-access.c: check_client_access, check_helo_access, check_sender_access, check_recipient_access. */
SmtpdCheckStatus smtpd_restriction_check_access(SmtpdCheckContext *ctx, const SmtpdRestriction *item);
/* A copy of s[0 .. len) in lower case; NULL when out of memory. */
char *smtpd_strdup_lower(const char *s, size_t len);

/* smtpd-domain-check.c: reject_unknown_sender_domain (sender) and reject_unknown_recipient_domain. */
SmtpdCheckStatus smtpd_restriction_check_unknown_domain(SmtpdCheckContext *ctx, bool sender);
/* smtpd-restrictions.c: the lookup of what (a name, or an address's domain) in the right-hand side list
 * domain (borrowed: a restriction's argument), started on the first call; SMTPD_DNSBL_PENDING until it is
 * in. NULL when out of memory. */
SmtpdDnsblLookup *smtpd_rhsbl_lookup_get(SmtpdCheckSession *cs, const char *what, const char *domain);
/* smtpd-domain-check.c: reject_unknown_helo_hostname. */
SmtpdCheckStatus smtpd_restriction_check_unknown_helo(SmtpdCheckContext *ctx);
void smtpd_domain_lookups_free(SmtpdCheckSession *cs);

/* smtpd-restrictions.c: "sleep seconds": SMTPD_CHECK_WAIT while the timer runs (the session waits, the
 * others are served), then SMTPD_CHECK_DUNNO when the evaluation runs again. */
SmtpdCheckStatus smtpd_restriction_check_sleep(SmtpdCheckContext *ctx, const SmtpdRestriction *item);

/* smtpd-policy-check.c: check_policy_service: the request from the context, and the answer (or
 * smtpd_policy_service_default_action) taken as an access(5) action. */
SmtpdCheckStatus smtpd_restriction_check_policy(SmtpdCheckContext *ctx, const SmtpdRestriction *item);
/* Forgets the answers of an evaluation that has ended. */
void smtpd_policy_answers_clear(SmtpdCheckSession *cs);
