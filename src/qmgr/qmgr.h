/* qmgr.h: private to the queue manager. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "daemon.h"
#include "queue-file.h"

typedef struct Qmgr Qmgr;
typedef struct QmgrMessage QmgrMessage;

/* Where a recipient goes: rewrite's answer. transport NULL: not resolved (deferred). */
typedef struct QmgrRoute {
        char *transport;
        char *nexthop;
} QmgrRoute;

/* A message in the active queue, loaded into memory. */
struct QmgrMessage {
        Qmgr *qmgr;
        char id[QUEUE_ID_SIZE];
        QueueEnvelope *envelope;        /* the file is opened only to deliver and to mark recipients done,
                                         * so thousands of active messages cost no descriptors */
        unsigned calls;                 /* deliveries in progress */
        bool waiting;                   /* on the ready list, for a free delivery slot */
        QmgrMessage *prev, *next;       /* on qmgr->messages */
        QmgrMessage *ready_next;
        QmgrMessage *hash_next;         /* in qmgr->by_id */
        QmgrRoute *routes;              /* per recipient, from rewrite's Resolve; NULL until asked */
        size_t next_resolve;            /* the next recipient to resolve */
        unsigned resolving;             /* Resolve calls in flight (counted in calls too) */
        bool resolved;
};

#define QMGR_HASH_BUCKETS 4096U

struct Qmgr {
        Daemon *daemon;
        int queue_fds[_QUEUE_NAME_MAX];
        char **mydestination;

        QmgrMessage *messages;          /* the active queue in memory */
        QmgrMessage *by_id[QMGR_HASH_BUCKETS];
        unsigned n_messages;
        QmgrMessage *ready_head, *ready_tail;   /* waiting for a delivery slot */
        bool rescan;                    /* a scan stopped at qmgr_message_active_limit */

        BusClient *local;
        BusClient *rewrite;             /* Resolve: transport and next hop of each recipient */
        unsigned local_calls;

        BusServer *server;              /* the private socket: wake-ups from cleanup */
        sd_bus *system_bus;             /* org.postbus.Queue1 */
        sd_event_source *changed_timer; /* PropertiesChanged of the counts, at most once a second */
        sd_event_source *scan_timer;
};

/* qmgr-queue.c */
int qmgr_queue_scan(Qmgr *q, QueueName which);
int qmgr_queue_activate(Qmgr *q, QueueName from, const char *id);
void qmgr_message_finish(QmgrMessage *m);
unsigned qmgr_queue_count(Qmgr *q, QueueName which);
/* Calls f for each valid queue ID in a queue directory; stops early when f returns > 0. */
typedef int (*QmgrQueueEntryFunc)(Qmgr *q, QueueName which, const char *id, int dirfd, void *userdata);
int qmgr_queue_foreach(Qmgr *q, QueueName which, QmgrQueueEntryFunc f, void *userdata);

/* qmgr-deliver.c */
void qmgr_deliver_message(QmgrMessage *m);
void qmgr_deliver_ready(Qmgr *q);
void qmgr_message_routes_free(QmgrMessage *m);

/* qmgr-bus.c */
int qmgr_bus_setup(Qmgr *q);
/* A queue's count changed: PropertiesChanged follows within a second. */
void qmgr_queue_changed(Qmgr *q);
extern const sd_bus_vtable qmgr_wake_vtable[];
