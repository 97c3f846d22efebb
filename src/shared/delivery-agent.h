/* delivery-agent.h: org.postbus.Delivery1 (agent-bus.h) as every delivery agent (local, pipe, smtp) serves it:
 * Deliver calls read and checked into DeliveryRequests, in line for default_process_limit process slots (unless
 * the agent runs without), timed and answered; DeliveryAgentOps say what runs for a request. Runs in the delivery
 * agent processes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "agent-bus.h"
#include "bus-util.h"
#include "daemon.h"
#include "log.h"
#include "queue-file.h"

/* Longest transport name, next hop and option name accepted. */
#define DELIVERY_TRANSPORT_MAX 64U
#define DELIVERY_NEXTHOP_MAX 1024U
#define DELIVERY_OPTION_NAME_MAX 64U
/* Most listening sockets one agent serves. */
#define DELIVERY_AGENT_SOCKETS_MAX 4U

typedef struct DeliveryRecipient {
        uint32_t index;                 /* in the queue file's recipient list, handed back as it came */
        char *address;                  /* as qmgr resolved it */
        const char *original;           /* the queue file's recipient (owned by the envelope) */
} DeliveryRecipient;

typedef struct DeliveryAgent DeliveryAgent;
typedef struct DeliveryRequest DeliveryRequest;

/* One Deliver call, checked. A role keeps its own state of a call in a struct that begins with the
 * DeliveryRequest: the agent allocates DeliveryAgentOps.request_size bytes, zeroed. */
struct DeliveryRequest {
        DeliveryAgent *agent;
        sd_bus_message *message;        /* answered by delivery_request_reply() */
        char queue_id[QUEUE_ID_SIZE];
        int fd;                         /* the queue file: the call's descriptor, open while message is held;
                                         * -EBADF for DeliverInline: the envelope holds the file's bytes */
        char *sender;
        char *transport;
        char *nexthop;
        char **options;                 /* "name", "value" pairs, NULL-terminated; NULL when the agent takes none */
        QueueEnvelope *envelope;
        DeliveryRecipient *recipients;
        size_t n_recipients;
        uint64_t active_usec, sent_usec;        /* qmgr's "q:" timings, for delays=; 0: not given */
        unsigned socket_flags;          /* of the socket the call came on (delivery_agent_serve()) */
        bool deadline_hit;              /* the call's time is up */
        bool running;                   /* holds a process slot */

        /* the agent's own */
        sd_event_source *timer;
        bool prepared;                  /* prepare ran: done is to run too */
        bool waiting;
        DeliveryRequest *prev, *next;   /* in DeliveryAgent.requests */
        DeliveryRequest *waiting_next;
};

/* What a role does with its requests. Every callback but done may end the request with finish. */
typedef struct DeliveryAgentOps {
        size_t request_size;            /* of the role's struct, which begins with a DeliveryRequest */
        unsigned recipients_max;        /* most recipients in one call */
        /* Most options in one call, and the longest value. 0: the agent takes no options (they are skipped),
         * and does not use transport and nexthop, which are then not checked either. */
        unsigned options_max;
        size_t option_value_max;
        /* The agent runs no processes (its work is driven by the event loop): no request waits for a slot, start
         * runs for each at once, and one that started holds no slot (it is running until it is freed). */
        bool without_slots;

        /* Sets up the role's state of a request that was read and checked (whatever it leaves, done copes with).
         * 0: it goes in line for a process slot; 1: it has its results already and is finished at once;
         * negative errno: the call fails. */
        int (*prepare)(DeliveryRequest *req);
        /* A slot is free: starts the request's next process. 1: it runs, and holds the slot until the role
         * calls delivery_request_ended(); 0: it could not start, and the role has dealt with that (back in
         * line with delivery_request_wait(), or finished). */
        int (*start)(DeliveryRequest *req);
        /* The call's time is up (deadline_hit is set). A running request's process is to be stopped (its end
         * then comes as usual); one that was waiting is out of the line and is to be finished. */
        void (*deadline)(DeliveryRequest *req);
        /* The agent stops: what runs for the request ends now, and the recipients without a result get one.
         * finish follows. */
        void (*stop)(DeliveryRequest *req);
        /* Logs, answers (delivery_request_reply()) and frees (delivery_request_free()) the request. */
        void (*finish)(DeliveryRequest *req);
        /* Frees what the role's state holds (not the request itself), killing what still runs. */
        void (*done)(DeliveryRequest *req);
        /* Optional: appends the answer's hosts, each "(sst)" (agent-bus.h), into the open array. */
        int (*append_hosts)(const DeliveryRequest *req, sd_bus_message *reply);
} DeliveryAgentOps;

/* One listening socket, and what the calls that come on it are told. */
typedef struct DeliverySocket {
        DeliveryAgent *agent;
        BusServer *server;
        unsigned flags;
} DeliverySocket;

/* The service. The role reads daemon and userdata. */
struct DeliveryAgent {
        Daemon *daemon;
        const DeliveryAgentOps *ops;
        void *userdata;                 /* the role's */
        DeliverySocket sockets[DELIVERY_AGENT_SOCKETS_MAX];
        size_t n_sockets;
        sd_event_source *exit_source;
        DeliveryRequest *requests;      /* every call in progress */
        DeliveryRequest *waiting;       /* requests waiting for a process slot, oldest first */
        DeliveryRequest *waiting_tail;
        unsigned n_running;
};

/* Serves org.postbus.Delivery1 on listen_fd to uid 0 and peer_uid ((uid_t) -1: none). listen_fd < 0: on no
 * socket yet (delivery_agent_serve() adds them). */
int delivery_agent_new(Daemon *d, int listen_fd, uid_t peer_uid, const DeliveryAgentOps *ops, void *userdata,
                       DeliveryAgent **ret);
/* Serves it on the passed socket of this FileDescriptorName= too, to uid 0 and the postbus user (as
 * bus_server_serve()); the requests of its calls carry flags in socket_flags. -ENOENT when no such socket was
 * passed, -E2BIG past DELIVERY_AGENT_SOCKETS_MAX sockets; other errors are logged. */
int delivery_agent_serve(DeliveryAgent *a, const char *fd_name, unsigned flags);
/* Stops what runs (ops->stop), answers every call in progress, closes the connections, and frees. */
DeliveryAgent *delivery_agent_free(DeliveryAgent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(DeliveryAgent *, delivery_agent_free);

/* Starts the requests in line while process slots are free. */
void delivery_agent_dispatch(DeliveryAgent *a);

/* Reads and checks a Deliver call (or DeliverInline: inline): the arguments, the queue ID, the addresses, the
 * queue file (a regular file, readable, its envelope read; or its bytes) and each recipient's index in it. A
 * call that is wrong fails with org.postbus.Error.InvalidArguments; one whose queue file cannot be read now
 * with TemporaryFailure, so that qmgr looks at the file again. */
int delivery_request_new(DeliveryAgent *a, sd_bus_message *m, bool inline_file, sd_bus_error *error,
                         DeliveryRequest **ret);
DeliveryRequest *delivery_request_free(DeliveryRequest *req);
DEFINE_TRIVIAL_CLEANUP_FUNC(DeliveryRequest *, delivery_request_free);

/* Puts the request at the end of the line for a process slot. */
void delivery_request_wait(DeliveryRequest *req);
/* The request's process has ended: its slot is free (delivery_agent_dispatch() hands it on). */
void delivery_request_ended(DeliveryRequest *req);
/* Whether qmgr still waits for the answer. */
bool delivery_request_peer_connected(const DeliveryRequest *req);
/* soft_bounce, Postfix's safety net: a recipient that bounced (status) is deferred instead, with dsn made class 4
 * in ret_dsn; the agent's journal record says status=SOFTBOUNCE. false: status stands. delivery_request_log() and
 * delivery_request_reply() apply it; an agent that writes its own records asks it. */
bool delivery_request_soft_bounce(const DeliveryRequest *req, const char *status, const char *dsn,
                                  char ret_dsn[static DELIVERY_DSN_MAX]);
/* The journal record of one recipient's outcome (log_delivery_record() with the request's times). */
void delivery_request_log(const DeliveryRequest *req, const char *recipient, const char *original, const char *relay,
                          const char *dsn, const char *status, const char *text, const LogField *fields);

/* One recipient's result, as the answer carries it. */
typedef struct DeliveryResult {
        const char *status;             /* DELIVERY_STATUS_* */
        const char *dsn;
        const char *relay;
        const char *text;
} DeliveryResult;

/* Answers the call with the result of each recipient, which result(req, i, ...) gives for recipients[i], and
 * the hosts of ops->append_hosts (none without it). */
typedef void (*DeliveryResultFunc)(const DeliveryRequest *req, size_t i, DeliveryResult *ret);
void delivery_request_reply(DeliveryRequest *req, DeliveryResultFunc result);
/* The end of every call: answers it as delivery_request_reply() does and frees it. When the queue manager
 * has gone away, or complete is false (the results were cut short because it did), logs that instead: it
 * takes the whole call as failed and tries again, at worst a duplicate. */
void delivery_request_finish(DeliveryRequest *req, DeliveryResultFunc result, bool complete);
