/* qmgr.h: private to the queue manager. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "answer-cache.h"
#include "bus-util.h"
#include "daemon.h"
#include "master-cf.h"
#include "queue-file.h"
#include "table.h"

typedef struct Qmgr Qmgr;
typedef struct QmgrSyncThread QmgrSyncThread;
typedef struct QmgrMessage QmgrMessage;
typedef struct QmgrTransport QmgrTransport;
typedef struct QmgrDest QmgrDest;
typedef struct QmgrJob QmgrJob;
typedef struct QmgrPeer QmgrPeer;
typedef struct QmgrEntry QmgrEntry;
typedef struct QmgrIndex QmgrIndex;
typedef struct QmgrIndexEntry QmgrIndexEntry;
typedef struct QmgrAuthQuery QmgrAuthQuery;
typedef struct QmgrCall QmgrCall;

/* What an administrator asked for a message in the active queue: done once nothing is in progress. */
typedef enum QmgrAction {
        QMGR_ACTION_NONE,
        QMGR_ACTION_HOLD,
        QMGR_ACTION_REQUEUE,
        QMGR_ACTION_DELETE,
        QMGR_ACTION_BOUNCE,
        _QMGR_ACTION_MAX,
} QmgrAction;

/* Where a recipient goes: rewrite's answer. transport NULL: not resolved (deferred). */
typedef struct QmgrRoute {
        char *transport;
        char *nexthop;
} QmgrRoute;

/* A message in the active queue, loaded into memory. */
struct QmgrMessage {
        Qmgr *qmgr;
        char id[QUEUE_ID_SIZE];
        QueueEnvelope *envelope;
        int fd, wfd;                    /* the queue file, read-only (read, and passed to the agents) and for
                                         * done-marks, kept while QMGR_KEPT_FDS_MAX allows: a few hundred
                                         * messages in progress open their file once, and thousands of active
                                         * messages cost no more descriptors; -EBADF when not kept */
        bool new_mail;                  /* came from incoming unknown to the index: no bounce log can exist */
        unsigned calls;                 /* calls in progress: resolve, deliver, bounce */
        unsigned entries;               /* deliveries scheduled and not started */
        QmgrJob *jobs;                  /* one per transport with scheduled deliveries */
        QmgrMessage *prev, *next;       /* on qmgr->messages */
        QmgrMessage *hash_next;         /* in qmgr->by_id */
        QmgrRoute *routes;              /* per recipient, from rewrite's Resolve; NULL until asked */
        size_t next_resolve;            /* the next recipient to resolve */
        unsigned resolving;             /* Resolve calls in flight (counted in calls too) */
        bool resolved;
        bool finishing;                 /* the last steps (bounce's Finish/Expire, the file's move) are on */
        bool had_logs;                  /* something was written to one of bounce's logs this time */
        size_t counted;                 /* pending recipients when loaded, in qmgr->n_recipients */
        uint64_t active_usec;           /* CLOCK_REALTIME: when it entered the active queue */
        bool suspect;                   /* in progress when a delivery agent died: delivered alone (qmgr-agent.c) */
        QmgrAction action;              /* asked for over the bus, not done yet */
        bool controlled;                /* an action took over: no (more) deliveries are scheduled */
        char *action_reason;            /* QMGR_ACTION_BOUNCE's text */
        bool corrupt;                   /* an agent found the file corrupt: checked, then set aside */
        bool marks_unwritten;           /* recipients done in memory only, the file going next (qmgr_mark_done()) */
};

/* A transport: a master.cf delivery service and the agent that runs it. */
struct QmgrTransport {
        Qmgr *qmgr;
        char *name;
        MasterCommand kind;
        BusClient *agent;               /* borrowed from qmgr->agents; NULL for error, discard and retry */
        int agent_id;                   /* its index there (QMGR_AGENT_*), or -1 */
        char **options;                 /* Deliver's a{ss}: key, value, key, value, ..., NULL */
        char *error_text;               /* error/retry: the text of nexthop-less use */
        unsigned recipient_limit;
        unsigned concurrency_limit;
        unsigned initial_concurrency;
        unsigned failed_cohort_limit;
        uint64_t rate_delay_usec;
        unsigned process_limit;         /* deliveries in progress at once for the whole transport */
        bool deferred;                  /* listed in defer_transports */
        unsigned busy;
        bool running;                   /* qmgr_schedule_run() is on: it does not nest */
        QmgrDest **dests;               /* hash table, QMGR_DEST_BUCKETS */
        QmgrJob *ring;                  /* jobs with deliveries to start, round robin: fairness between messages */
        sd_event_source *timer;         /* the earliest time a rate-delayed or dead destination opens again */
        char *last_done_dest;           /* where a delivery last ended well, and when (CLOCK_MONOTONIC): */
        uint64_t last_done_usec;        /* mail for it soon after may find the agent's connection still open */
        QmgrTransport *next;
};

/* A destination of one transport: a next hop, or for a recipient limit of 1 the recipient itself. */
struct QmgrDest {
        QmgrTransport *transport;
        char *name;
        double window;                  /* concurrency now: Postfix's feedback, between 1 and the limit */
        double failed_cohorts;
        unsigned busy;
        uint64_t not_before;            /* CLOCK_MONOTONIC usec: rate delay or dead until then */
        bool dead;
        char *dead_reason;
        QmgrPeer *peers, *peers_tail;   /* the messages with deliveries for it, newest first */
        unsigned held;                  /* looked at by qmgr_schedule_run_dest(): not dropped meanwhile */
        QmgrDest *hash_next;
};

/* The deliveries of one message through one transport. */
struct QmgrJob {
        QmgrMessage *message;
        QmgrTransport *transport;
        QmgrPeer *peers;                /* per destination */
        QmgrJob *rr_prev, *rr_next;     /* in transport->ring while it has entries */
        bool in_ring;
        QmgrJob *next;                  /* in message->jobs */
};

/* The deliveries of one job to one destination, oldest first. */
struct QmgrPeer {
        QmgrJob *job;
        QmgrDest *dest;
        QmgrEntry *head, *tail;
        QmgrPeer *job_next;             /* in job->peers */
        QmgrPeer *dest_prev, *dest_next;        /* in dest->peers */
};

/* One delivery: up to the transport's recipient limit of a message's recipients, to one destination. */
struct QmgrEntry {
        QmgrPeer *peer;                 /* NULL once started */
        QmgrDest *dest;
        QmgrMessage *message;
        QmgrEntry *next;
        bool alone;                     /* a suspect's delivery, with nothing else in progress at the agent */
        size_t n;
        size_t indices[];               /* in the envelope's recipient list */
};

#define QMGR_HASH_BUCKETS 4096U
#define QMGR_DEST_BUCKETS 1024U

enum {
        QMGR_AGENT_LOCAL,
        QMGR_AGENT_PIPE,
        QMGR_AGENT_SMTP,
        QMGR_AGENT_LMTP,
        QMGR_AGENT_VIRTUAL,
        _QMGR_AGENT_MAX,
};

/* What qmgr-call.c counts for a connection, so that a caller can tell a crash from other failures. */
typedef struct QmgrCallStats {
        unsigned in_flight;             /* sent on the connection and not answered */
        unsigned lost_left;             /* of the calls a closed connection is failing one by one, still to come */
        unsigned lost_size;             /* how many were in flight when it closed */
        uint64_t last_answer_usec;      /* CLOCK_MONOTONIC: the peer's last answer (or handshake); 0: none */
        bool quiet_burst;               /* the calls in flight began after QMGR_CALL_QUIET_USEC without one */
} QmgrCallStats;

/* A delivery agent as qmgr sees it (qmgr-agent.c): whether it answers, and who was in progress when it died. */
typedef struct QmgrAgentState {
        Qmgr *qmgr;
        int id;
        QmgrCallStats stats;
        unsigned busy;                  /* deliveries started, through every transport of this agent */
        bool suspect_running;           /* a suspect's delivery runs alone: nothing else starts */
        bool suspect_waiting;           /* a suspect waits for the deliveries in progress to end */
        bool reopened;                  /* a suspect's delivery ended: the others may start again */
        uint64_t isolated_since;        /* CLOCK_MONOTONIC: when a suspect began to wait or to run alone */
        sd_event_source *isolation_timer;       /* the others go on after QMGR_ISOLATION_MAX_USEC at most */
        bool down;                      /* unreachable, or died under a delivery: probed until it answers */
        uint64_t probe_delay;
        sd_event_source *probe_timer;
        sd_bus_slot *probe_slot;
} QmgrAgentState;

typedef struct QmgrHostFailure QmgrHostFailure;
/* A queue file whose recipients were marked done and not yet made durable: synced with the others of its
 * batch, QMGR_DONE_SYNC_USEC after the first of them. */
typedef struct QmgrDoneSync {
        char id[QUEUE_ID_SIZE];
        int fd;
} QmgrDoneSync;

struct Qmgr {
        Daemon *daemon;
        int queue_fds[_QUEUE_NAME_MAX];
        int log_fds[3];                 /* bounce's bounce, defer, trace directories, to see if a log exists */
        char **mydestination;
        char **defer_transports;
        TableList *relocated_maps;
        MasterConfig *master;

        QmgrMessage *messages;          /* the active queue in memory */
        QmgrMessage *by_id[QMGR_HASH_BUCKETS];
        unsigned n_messages;
        size_t n_recipients;            /* pending recipients of active messages */
        bool rescan;                    /* a scan stopped at an active queue limit */

        QmgrTransport *transports;
        BusClient *agents[_QMGR_AGENT_MAX];
        QmgrAgentState agent_state[_QMGR_AGENT_MAX];
        BusClient *bounce;
        BusClient *rewrite;             /* Resolve: transport and next hop of each recipient */
        AnswerCache resolve_cache;      /* its lasting answers: sender and recipient -> transport and next hop */

        BusServer *server;              /* the private socket: wake-ups from cleanup */
        uid_t cleanup_uid;              /* whose WakeInline bytes are taken (besides root's); or (uid_t) -1 */
        sd_bus *system_bus;             /* org.postbus.Queue1 */
        sd_event_source *changed_timer; /* PropertiesChanged of the counts, at most once a second */
        sd_event_source *scan_timer;

        QmgrIndex *index;               /* every queued message, for the bus (qmgr-index.c) */
        char **paused;                  /* destination, reason, destination, reason, ..., NULL */
        QmgrAuthQuery *auth_queries;    /* polkit questions in flight (qmgr-polkit.c) */
        QmgrHostFailure *host_failures; /* the agents' failing server addresses (qmgr-hosts.c) */
        size_t n_host_failures;
        unsigned n_kept_fds;            /* messages' fd and wfd open, at most QMGR_KEPT_FDS_MAX */
        size_t kept_file_bytes;         /* messages' files kept in memory, at most QMGR_KEPT_FILE_BYTES_MAX */
        QmgrDoneSync *done_sync;        /* queue files with done-marks not yet synced (qmgr-deliver.c) */
        size_t n_done_sync;
        sd_event_source *done_sync_timer;
        QmgrSyncThread *sync_thread;    /* syncs them off the loop (qmgr-sync.c) */
};

/* qmgr-hosts.c: the hosts of a Deliver answer (agent-bus.h), after its results, for transport and
 * destination; an answer without them is fine. */
int qmgr_hosts_read(Qmgr *q, const char *transport, const char *destination, sd_bus_message *reply);
/* ListHostFailures' array, a(sssst): the ones not expired. */
int qmgr_hosts_append(Qmgr *q, sd_bus_message *reply);
void qmgr_hosts_free(Qmgr *q);

/* qmgr-queue.c */
int qmgr_queue_scan(Qmgr *q, QueueName which);
int qmgr_queue_activate(Qmgr *q, QueueName from, const char *id);
/* A new message in incoming/, from the bytes of its file as cleanup wrote them (WakeInline): taken over. */
int qmgr_queue_activate_new(Qmgr *q, const char *id, QueueEnvelope *env);
/* The same, with an action to do instead of delivering (bounce now). */
int qmgr_queue_activate_for(Qmgr *q, QueueName from, const char *id, QmgrAction action, const char *reason);
/* Moves a file between queue directories and keeps the index current. */
int qmgr_queue_move(Qmgr *q, QueueName from, QueueName to, const char *id);
int qmgr_queue_move_as(Qmgr *q, QueueName from, QueueName to, const char *id, char ret_id[QUEUE_ID_SIZE]);
/* The active message with this ID, or NULL. */
QmgrMessage *qmgr_message_find(Qmgr *q, const char *id);
/* The active message's file goes to another queue directory, and the message out of memory. */
void qmgr_message_move(QmgrMessage *m, QueueName to);
unsigned qmgr_queue_count(Qmgr *q, QueueName which);
/* Calls f for each valid queue ID in a queue directory; stops early when f returns > 0. */
typedef int (*QmgrQueueEntryFunc)(Qmgr *q, QueueName which, const char *id, int dirfd, void *userdata);
int qmgr_queue_foreach(Qmgr *q, QueueName which, QmgrQueueEntryFunc f, void *userdata);
/* Once nothing is in progress for a message: remove it, return it, or defer what is left. */
void qmgr_message_finish(QmgrMessage *m);
/* After bounce's Finish (or when no log exists): the file goes; or back to deferred on failure. */
void qmgr_message_remove(QmgrMessage *m);
void qmgr_message_defer(QmgrMessage *m);
int qmgr_message_open(QmgrMessage *m, int flags);
/* The message's file for reading (O_RDONLY) or for done-marks (O_RDWR): the descriptor the message keeps,
 * opened now if need be; *ret_owned set when it could not be kept, and the caller closes it. */
#define QMGR_KEPT_FDS_MAX 256U
int qmgr_message_fd(QmgrMessage *m, int flags, bool *ret_owned);
/* An active message keeps its file's bytes for its DeliverInline calls while their total is at most this. */
#define QMGR_KEPT_FILE_BYTES_MAX (16U * 1024U * 1024U)
double qmgr_message_delay(const QmgrMessage *m);
int64_t qmgr_message_backoff(const QmgrMessage *m);

/* qmgr-deliver.c: resolving recipients and the calls to the agents */
void qmgr_deliver_message(QmgrMessage *m);
void qmgr_message_routes_free(QmgrMessage *m);
void qmgr_deliver_start(QmgrEntry *e);
/* A recipient qmgr itself decides about: the journal record, and bounce's log where one is due. */
void qmgr_recipient_deferred(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why);
/* A permanent failure, which soft_bounce makes a deferral (status=SOFTBOUNCE in the journal, dsn class 4). */
void qmgr_recipient_bounced(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why);
/* Returned to the sender whatever soft_bounce says: the administrator asked for it. */
void qmgr_recipient_returned(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why);
void qmgr_recipient_sent(QmgrMessage *m, size_t i, const char *relay, const char *dsn, const char *why);
/* Marks recipients done in the queue file, synced; false when that failed (they stay pending). With
 * file_goes_next, when these are the last and nothing else is due for the message (no bounce log, no action),
 * in memory only: qmgr_message_finish() removes the file at once, or writes them if it does not. */
bool qmgr_mark_done(QmgrMessage *m, const size_t *indices, size_t n, bool file_goes_next);
/* Writes the marks that qmgr_mark_done() left in memory, if any. */
void qmgr_marks_write(QmgrMessage *m);
/* Hands the queue files whose done-marks wait for their batch's sync to the sync thread, now. */
void qmgr_done_sync_flush(Qmgr *q);
/* The queue file of id is removed: its done-marks need no sync. */
void qmgr_done_sync_forget(Qmgr *q, const char *id);

/* qmgr-sync.c: a thread that fdatasyncs queue files and closes them. */
/* Takes fd, the queue file of id; -EBUSY when too many wait already, -errno when it cannot: the caller
 * syncs and closes it. */
int qmgr_sync_submit(Qmgr *q, const char *id, int fd);
/* Ends the thread once it has synced everything handed to it. */
void qmgr_sync_stop(Qmgr *q);

/* qmgr-transport.c: transports from master.cf, destinations, concurrency feedback */
int qmgr_transports_setup(Qmgr *q);
/* A reload: the transports of the new master.cf and main.cf (qmgr-transport.c). -EINVAL (logged) changes
 * nothing. */
int qmgr_transports_reload(Qmgr *q, const Config *c, char **defer_transports);
void qmgr_transports_free(Qmgr *q);
QmgrTransport *qmgr_transport_find(Qmgr *q, const char *name);
QmgrDest *qmgr_dest_get(QmgrTransport *t, const char *name);
/* A delivery to the destination ended: success grows its window, failure shrinks it and may kill it. */
void qmgr_dest_feedback(QmgrDest *d, bool success, const char *reason);
bool qmgr_dest_can_start(QmgrDest *d, uint64_t now);
bool qmgr_dest_back_to_back(QmgrDest *d);
/* Forgets a destination that has nothing waiting, nothing in progress and nothing to remember. */
void qmgr_dest_release(QmgrDest *d);
void qmgr_transport_arm_timer(QmgrTransport *t, uint64_t when);

/* qmgr-agent.c: the delivery agents' health: a crash (the connection closed under deliveries in progress)
 * is counted against the messages in progress, a message found in progress at crashes is delivered alone
 * and held after delivery_crash_limit crashes alone; an agent that is unreachable or died is probed, and
 * the mail deferred for it is tried again as soon as it answers. */
typedef enum QmgrAgentOutcome {
        QMGR_AGENT_ANSWERED,            /* a reply came (or the call failed at the agent's end, alive) */
        QMGR_AGENT_UNAVAILABLE,         /* never reached the agent: no connection */
        QMGR_AGENT_CRASHED,             /* the connection closed with the delivery in progress */
} QmgrAgentOutcome;
void qmgr_agents_init(Qmgr *q);
void qmgr_agents_free(Qmgr *q);
/* Whether m's delivery through t may start now (a suspect runs alone). */
bool qmgr_agent_may_start(QmgrTransport *t, QmgrMessage *m);
/* Nothing may start through t now. */
bool qmgr_agent_blocked(QmgrTransport *t);
QmgrCallStats *qmgr_agent_stats(QmgrTransport *t);
void qmgr_agent_started(QmgrEntry *e);
/* The delivery ended: counts a crash against its message, marks what waits for the agent, holds the
 * message at the crash limit. Returns what happened to the call. */
QmgrAgentOutcome qmgr_agent_ended(QmgrEntry *e, const QmgrCall *c);
/* After the entry is gone: lets waiting deliveries start. */
void qmgr_agent_after(Qmgr *q, int agent_id);

/* qmgr-schedule.c: jobs, peers and entries; the choice of what to deliver next */
int qmgr_schedule_add(QmgrMessage *m, QmgrTransport *t, const char *dest, const size_t *indices, size_t n);
void qmgr_schedule_run(QmgrTransport *t);
void qmgr_schedule_run_dest(QmgrDest *d, bool transport_was_full);
void qmgr_schedule_run_all(Qmgr *q);
/* A dead destination: every entry waiting for it is deferred now, without a try. */
void qmgr_schedule_defer_dest(QmgrDest *d);
void qmgr_schedule_defer_dest_why(QmgrDest *d, const char *dsn, const char *why);
/* qmgr_schedule_add() without the check for paused destinations. */
int qmgr_schedule_add_unpaused(QmgrMessage *m, QmgrTransport *t, const char *dest_name, const size_t *indices,
                               size_t n);
void qmgr_schedule_message_free(QmgrMessage *m);
void qmgr_entry_free(QmgrEntry *e);

/* qmgr-bounce.c: the calls to bounce */
typedef struct QmgrLogRecord {
        size_t index;
        const char *action, *status, *relay, *text;
} QmgrLogRecord;
/* Appends records to a log of bounce's; done(m, records, n, ok) runs when it is durable (or failed). */
typedef void (*QmgrLogDone)(QmgrMessage *m, const QmgrLogRecord *records, size_t n, bool ok);
void qmgr_bounce_append(QmgrMessage *m, const char *log, const QmgrLogRecord *records, size_t n,
                        QmgrLogDone done);
void qmgr_bounce_finish(QmgrMessage *m);
void qmgr_bounce_expire(QmgrMessage *m);
void qmgr_bounce_warn(QmgrMessage *m);
bool qmgr_bounce_logs_exist(QmgrMessage *m);

/* qmgr-call.c: a call to another role that may pass the queue file; done runs once, with the reply or
 * with error set (the call could not be made, failed, or timed out). */
typedef int (*QmgrCallBuild)(QmgrCall *c, sd_bus_message *msg);
typedef void (*QmgrCallDone)(QmgrCall *c, sd_bus_message *reply, const char *error);
struct QmgrCall {
        QmgrMessage *message;
        const char *path, *interface, *member;
        QmgrCallBuild build;            /* appends the arguments */
        QmgrCallDone done;
        uint64_t timeout_usec;
        void *data;                     /* the caller's; done frees it */
        bool corrupt;                   /* the answer was org.postbus.Error.CorruptQueueFile */
        QmgrCallStats *stats;           /* the caller's counts for this connection, or NULL */
        /* set for done: */
        bool sent;                      /* it reached the connection (the peer may have read it) */
        unsigned lost_with;             /* 0; or the connection closed before the reply, with this many in flight */
        /* qmgr-call.c's own: */
        BusClient *client;
        bool after_quiet;               /* sent to a peer quiet for a while, which may be exiting idle */
        bool retried;
        unsigned retry_waits;
        sd_event_source *retry;
};
/* Copies c and sends the call when the connection is ready; done always runs, maybe before this
 * returns. */
void qmgr_call(BusClient *client, const QmgrCall *c);

/* qmgr-index.c: what is queued where, compactly, for the bus; kept current on every move. */
struct QmgrIndexEntry {
        char id[QUEUE_ID_SIZE];
        uint8_t queue;                  /* QueueName */
        bool truncated;                 /* more pending recipients than kept here: read the file */
        uint32_t n_recipients, n_pending, attempts;
        uint8_t crashes;                /* a delivery agent died with this message alone in progress */
        bool suspect;                   /* in progress when an agent died: delivered alone next time */
        uint8_t waiting_agent;          /* deferred for an agent that did not answer: QMGR_AGENT_* + 1; or 0 */
        uint64_t arrival_usec, size, next_attempt_usec;
        char *reason;                   /* the last deferral or the hold reason, or NULL */
        QmgrIndexEntry *hash_next;
        size_t strings_size;
        char strings[];                 /* sender, then pending recipients, each NUL-terminated */
};
int qmgr_index_new(Qmgr *q);
void qmgr_index_free(Qmgr *q);
/* Reads every queue directory once, at start-up, a batch of files at a time while mail flows: until
 * it is done, what the bus lists may lack messages that have not moved since qmgr started. */
int qmgr_index_load(Qmgr *q);
bool qmgr_index_loading(Qmgr *q);
/* Finishes the start-up read now (a reader needs all of it); the lookups and walks below do. */
void qmgr_index_complete(Qmgr *q);
QmgrIndexEntry *qmgr_index_find(Qmgr *q, const char *id);
/* Whether id is in the index, without waiting for the start-up read (during it: yes). */
bool qmgr_index_known(Qmgr *q, const char *id);
/* The file is (now) in queue which: reads it if it is new to the index or announce is set. */
QmgrIndexEntry *qmgr_index_update(Qmgr *q, QueueName which, const char *id, bool announce);
/* From a message in memory (its pending recipients changed). */
void qmgr_index_update_message(QmgrMessage *m, QueueName which);
/* The same, and a delivery attempt counted, with one signal for both. */
void qmgr_index_update_message_attempted(QmgrMessage *m, QueueName which, bool attempted);
void qmgr_index_set_reason(Qmgr *q, const char *id, const char *reason);
void qmgr_index_set_next_attempt(Qmgr *q, const char *id, uint64_t usec);
void qmgr_index_attempted(Qmgr *q, const char *id);
void qmgr_index_remove(Qmgr *q, const char *id);
/* The entry, without waiting for the start-up read: NULL when not (yet) known. */
QmgrIndexEntry *qmgr_index_peek(Qmgr *q, const char *id);
typedef int (*QmgrIndexFunc)(Qmgr *q, QmgrIndexEntry *e, void *userdata);
/* Calls f for each entry; stops at f's first non-zero result and returns it. */
int qmgr_index_foreach(Qmgr *q, QmgrIndexFunc f, void *userdata);
size_t qmgr_index_count(Qmgr *q);
const char *qmgr_index_sender(const QmgrIndexEntry *e);
/* The next pending recipient after prev (NULL: the first), or NULL. */
const char *qmgr_index_next_recipient(const QmgrIndexEntry *e, const char *prev);
/* Whether a pending recipient's domain (or, when all are read from the file, any) is dest. */
bool qmgr_index_has_destination(Qmgr *q, const QmgrIndexEntry *e, const char *dest);
bool qmgr_index_has_recipient(Qmgr *q, const QmgrIndexEntry *e, const char *address);
/* The whole envelope of a queued message, read from its file. */
int qmgr_index_read_envelope(Qmgr *q, const QmgrIndexEntry *e, QueueEnvelope **ret);

/* qmgr-control.c: the actions of org.postbus.Queue1 and their methods. */
extern const sd_bus_vtable qmgr_control_vtable[];
int qmgr_control_act(Qmgr *q, QmgrAction action, const char *id, const char *reason);
int qmgr_control_release(Qmgr *q, const char *id);
/* Done when an active message's calls have ended: true when the action took the message over. */
bool qmgr_control_apply(QmgrMessage *m);
int qmgr_paused_load(Qmgr *q);
int qmgr_control_pause(Qmgr *q, const char *dest, const char *reason);
/* -ENOENT: not paused. */
int qmgr_control_resume(Qmgr *q, const char *dest);
/* The deferred mail for dest is tried now; -ENOENT when none is queued. */
int qmgr_control_flush_destination(Qmgr *q, const char *dest, unsigned *ret);
/* The reason when dest (a next hop or a recipient) is paused, else NULL. */
const char *qmgr_paused_reason(Qmgr *q, const char *dest);

/* qmgr-polkit.c: whether the sender of a call may change the queue. 1: yes; 0: the question is with
 * polkit and the call is dispatched again when it answered; < 0 with error set: no. */
int qmgr_authorize(Qmgr *q, sd_bus_message *m, sd_bus_error *error);
void qmgr_auth_queries_free(Qmgr *q);

/* qmgr-bus-message.c: the per-message objects and the signals. */
int qmgr_bus_message_setup(Qmgr *q);
void qmgr_bus_message_changed(Qmgr *q, const char *id);
void qmgr_signal_queued(Qmgr *q, const QmgrIndexEntry *e);
void qmgr_signal_delivered(Qmgr *q, const char *id, const char *rcpt, const char *relay, const char *dsn);
void qmgr_signal_deferred(Qmgr *q, const char *id, const char *rcpt, const char *dsn, const char *reason,
                          uint64_t next_usec);
void qmgr_signal_bounced(Qmgr *q, const char *id, const char *rcpt, const char *dsn, const char *reason);
void qmgr_signal_removed(Qmgr *q, const char *id);
void qmgr_signal_dead(Qmgr *q, const char *transport, const char *dest, const char *reason);
void qmgr_alert(Qmgr *q, const char *klass, const char *fmt, ...) _printf_(3, 4);

/* qmgr-bus.c */
int qmgr_bus_setup(Qmgr *q);
/* A queue's count changed: PropertiesChanged follows within a second. */
void qmgr_queue_changed(Qmgr *q);
extern const sd_bus_vtable qmgr_wake_vtable[];
