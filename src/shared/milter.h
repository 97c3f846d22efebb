/* milter.h: the milter client (Sendmail milter protocol 6): one chain of milters per SMTP session in
 * smtpd (smtpd_milters) or per message in pickup (non_smtpd_milters), driven on the role's sd-event loop,
 * one step at a time, each step answered through a callback. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "milter-message.h"
#include "milter-proto.h"

typedef enum MilterAction {
        MILTER_ACTION_TEMPFAIL,
        MILTER_ACTION_ACCEPT,
        MILTER_ACTION_REJECT,
        MILTER_ACTION_QUARANTINE,
        _MILTER_ACTION_MAX,
        _MILTER_ACTION_INVALID = -EINVAL,
} MilterAction;

MilterAction milter_action_from_string(const char *s);

/* What main.cf says about milters, checked once at start. */
typedef struct MilterSettings {
        char **milters;                 /* "inet:host:port", "unix:/path" */
        struct sockaddr_storage *addresses;     /* of each, looked up at start */
        socklen_t *address_lens;                /* 0: the host name could not be looked up */
        uint32_t protocol;              /* milter_protocol: 2 to 6 */
        MilterAction default_action;
        uint64_t connect_timeout, command_timeout, content_timeout;     /* µs */
        char **macros[_MILTER_STAGE_MAX];
        size_t size_max;                /* message_size_limit */
} MilterSettings;

/* Reads the settings for list (the value of smtpd_milters or non_smtpd_milters); *ret is empty (no
 * milters) when the list is. -EINVAL after logging a bad value. */
int milter_settings_load(const Config *config, const char *list, MilterSettings *ret);
/* The macros every role answers from main.cf: "j" (myhostname), "{daemon_name}", "v"; NULL for others.
 * ("i" the chain answers itself: milter_chain_queue_id().) */
const char *milter_config_macro(const Config *config, const char *name);
void milter_settings_done(MilterSettings *s);

/* The verdict of a step. */
typedef enum MilterVerdict {
        MILTER_CONTINUE,                /* go on (also after an accept: that milter is done) */
        MILTER_REJECT,                  /* reply is a 5xx */
        MILTER_TEMPFAIL,                /* reply is a 4xx */
        MILTER_DISCARD,                 /* accept the message and drop it */
        _MILTER_VERDICT_MAX,
        _MILTER_VERDICT_INVALID = -EINVAL,
} MilterVerdict;

typedef struct MilterChain MilterChain;

/* reply is the SMTP reply for REJECT and TEMPFAIL ("550 5.7.1 Command rejected" or the milter's own),
 * valid during the call. The callback may free the chain. */
typedef void (*MilterDoneFunc)(MilterChain *c, MilterVerdict verdict, const char *reply, void *userdata);
/* A macro's value ("{client_addr}"), or NULL when it has none. */
typedef const char *(*MilterMacroFunc)(const char *name, void *userdata);

int milter_chain_new(sd_event *event, const MilterSettings *settings, MilterMacroFunc macro, void *userdata,
                     MilterChain **ret);
/* Sends QUIT to each milter and closes. */
MilterChain *milter_chain_free(MilterChain *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(MilterChain *, milter_chain_free);

/* The steps. Each starts one exchange with the milters in turn; done follows from the event loop. Only one
 * step at a time. family is '4', '6', 'L' (unix) or 'U' (unknown). args: the address first, then ESMTP
 * parameters. */
int milter_chain_connect(MilterChain *c, const char *hostname, char family, const char *addr, uint16_t port,
                         MilterDoneFunc done);
int milter_chain_helo(MilterChain *c, const char *helo, MilterDoneFunc done);
int milter_chain_mail(MilterChain *c, char *const *args, MilterDoneFunc done);
int milter_chain_rcpt(MilterChain *c, char *const *args, MilterDoneFunc done);
int milter_chain_data(MilterChain *c, MilterDoneFunc done);
/* DATA (if not sent yet), headers, end of headers, body, end of message, for message m, which collects the
 * milters' changes (and the quarantine of the default action). */
int milter_chain_message(MilterChain *c, MilterMessage *m, MilterDoneFunc done);
/* The transaction ended (RSET, a new MAIL, a refusal, the message done): ABORT to milters within one. */
void milter_chain_abort(MilterChain *c);
/* Whether the step of a HELO, RCPT or DATA (cmd: MILTER_CMD_HELO, _RCPT, _DATA) would reach a milter: false
 * when every milter is connected and has left that step out (SMFIP_NOHELO, ...) or accepted the session (or
 * the message), so the role answers the command at once, without a step. */
bool milter_chain_asks(const MilterChain *c, char cmd);
/* The queue ID of the transaction since its MAIL, which the milters see as "i" (and the role proposes to
 * cleanup as the attribute queue_id), or NULL before the first MAIL. */
const char *milter_chain_queue_id(const MilterChain *c);
/* A step is in progress. */
bool milter_chain_busy(const MilterChain *c);
