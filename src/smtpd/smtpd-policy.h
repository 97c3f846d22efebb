/* smtpd-policy.h: Postfix's policy delegation (check_policy_service) in the smtpd process: the attribute
 * protocol of SMTPD_POLICY_README (smtpd-policy-protocol.c, pure) and the client that keeps connections to
 * the policy servers open between requests (smtpd-policy.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

/* A reply ("action=...\n\n") longer than this is a protocol error. */
#define SMTPD_POLICY_REPLY_MAX 4096U
/* Room for the action's value, with its NUL. */
#define SMTPD_POLICY_ACTION_MAX 1024U
/* A request: about 30 attributes, each value bounded by the session (addresses, names). */
#define SMTPD_POLICY_REQUEST_MAX 16384U

typedef struct SmtpdPolicyAttr {
        const char *name;
        const char *value;              /* NULL is sent as "" */
} SmtpdPolicyAttr;

/* "name=value\n" for each attribute, then the empty line. A control character in a value (a peer's text)
 * becomes '?', so that a value can neither end early nor add an attribute. -EINVAL for a name that is
 * not [a-z0-9_]+; -E2BIG beyond SMTPD_POLICY_REQUEST_MAX. Returns the length written to buf (size bytes). */
int smtpd_policy_request_format(const SmtpdPolicyAttr *attrs, size_t n, char *buf, size_t size);

/* Reads a reply from what the server has sent so far, buf[0 .. len): "action=<value>\n" and the empty line
 * that ends it, as Postfix's attr_scan reads it strictly (no other attribute, action given once, a CR
 * before an LF ignored). Returns 0 when the reply is not complete yet (and len is below
 * SMTPD_POLICY_REPLY_MAX), 1 with the action (printable ASCII and tabs, non-empty) in ret_action
 * (SMTPD_POLICY_ACTION_MAX bytes) and the bytes the reply took in ret_consumed, -EBADMSG for a malformed
 * reply and -E2BIG for one that does not end within SMTPD_POLICY_REPLY_MAX bytes. */
int smtpd_policy_reply_parse(const char *buf, size_t len, char *ret_action, size_t *ret_consumed);

/* An endpoint, "inet:host:port", "inet:[v6]:port" or "unix:/path"; a bare "/path" is unix, a bare
 * "host:port" inet, as Postfix allows. The host is a numeric address or a name looked up at start-up. */
typedef struct SmtpdPolicyEndpoint {
        int family;                     /* AF_UNIX, AF_INET, AF_INET6 */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char text[128];                 /* as configured, for the log */
} SmtpdPolicyEndpoint;

/* Parses a numeric endpoint (pure); -EINVAL when malformed, -EADDRNOTAVAIL for a host that is a name. */
int smtpd_policy_endpoint_parse(const char *spec, SmtpdPolicyEndpoint *ret);
/* Like smtpd_policy_endpoint_parse(), and a host name is looked up (at start-up only: it may block). */
int smtpd_policy_endpoint_resolve(const char *spec, SmtpdPolicyEndpoint *ret);

/* The smtpd_policy_service_* parameters, in microseconds and counts. */
typedef struct SmtpdPolicySettings {
        uint64_t timeout_usec;          /* connect, send and reply of one attempt */
        uint64_t max_idle_usec;         /* an idle connection is closed after this */
        uint64_t max_ttl_usec;          /* a connection is not reused once this old */
        uint64_t retry_delay_usec;      /* between two attempts */
        unsigned try_limit;             /* attempts per request */
        unsigned request_limit;         /* requests per connection; 0: no limit */
} SmtpdPolicySettings;

/* Every policy service this smtpd process talks to, each with its idle connections, shared by all
 * sessions. */
typedef struct SmtpdPolicyPool SmtpdPolicyPool;
typedef struct SmtpdPolicyRequest SmtpdPolicyRequest;

/* error is 0 with the reply's action, or negative when every attempt failed (action NULL). The request is
 * freed after the callback returns. */
typedef void (*SmtpdPolicyCallback)(int error, const char *action, void *userdata);

int smtpd_policy_pool_new(sd_event *event, const SmtpdPolicySettings *settings, SmtpdPolicyPool **ret);
SmtpdPolicyPool *smtpd_policy_pool_free(SmtpdPolicyPool *p);

/* Sends request[0 .. len) to the endpoint, on an idle connection or a new one. The callback runs later,
 * never from within this call. */
int smtpd_policy_query(SmtpdPolicyPool *p, const SmtpdPolicyEndpoint *endpoint, const char *request, size_t len,
                       SmtpdPolicyCallback callback, void *userdata, SmtpdPolicyRequest **ret);
/* The callback will not run; the connection the request was on is closed (its reply would come late). */
SmtpdPolicyRequest *smtpd_policy_request_cancel(SmtpdPolicyRequest *r);
