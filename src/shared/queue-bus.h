/* queue-bus.h: the names of org.postbus.Queue1, the queue on the system bus that qmgr serves and
 * postbusctl, postqueue, postsuper and mailq call. This comment is the interface's reference. */
#pragma once

#include "bus-util.h"   /* POSTBUS_ERROR_NO_SUCH_MESSAGE, _INVALID_ARGS, _ACCESS_DENIED */

#define QUEUE_BUS_NAME "org.postbus.Queue1"
#define QUEUE_BUS_PATH "/org/postbus/Queue1"
#define QUEUE_BUS_INTERFACE "org.postbus.Queue1"
#define QUEUE_BUS_MESSAGE_PREFIX "/org/postbus/Queue1/message"        /* + "/" + queue ID */
#define QUEUE_BUS_MESSAGE_INTERFACE "org.postbus.Message1"
#define QUEUE_POLKIT_ACTION_MANAGE "org.postbus.queue.manage"

#define POSTBUS_ERROR_NO_SUCH_DESTINATION "org.postbus.Error.NoSuchDestination"

/* The filter keys of SelectMessages. */
#define QUEUE_FILTER_QUEUE "queue"                      /* s: incoming, active, deferred, hold, corrupt */
#define QUEUE_FILTER_SENDER "sender"                    /* s: the envelope sender, exactly (case-insensitive) */
#define QUEUE_FILTER_RECIPIENT "recipient"              /* s: a pending recipient, exactly (case-insensitive) */
#define QUEUE_FILTER_DESTINATION "destination"          /* s: the domain of a pending recipient (case-insensitive) */
#define QUEUE_FILTER_OLDER_THAN_USEC "older_than_usec"  /* t: arrived more than this many usec ago */
#define QUEUE_FILTER_REASON "reason"                    /* s: a substring of the last deferral reason */

/*
 * Object /org/postbus/Queue1, interface org.postbus.Queue1
 *
 * Properties (read by everyone; the counts emit PropertiesChanged at most once a second):
 *   Incoming, Active, Deferred, Hold, Corrupt   u   messages in each queue directory
 *   OldestDeferredUSec   t    arrival time (usec since the epoch) of the oldest deferred message; 0: none
 *   PausedDestinations   as   the destinations paused with PauseDestination (emits PropertiesChanged)
 *
 * Methods. IDs are queue IDs. Reading is open to every user; the methods that change the queue
 * (Hold/Release/Requeue/Delete/BounceMessages, FlushQueue, FlushDestination, Pause/ResumeDestination,
 * and the Message1 methods) need uid 0 or the polkit action org.postbus.queue.manage (interactive
 * authorization is asked for when the caller set the flag), else org.postbus.Error.AccessDenied.
 * The "→ u" methods return how many of the named messages they acted on; an ID that is not queued
 * (any more) is skipped, unless none of the IDs is queued: then org.postbus.Error.NoSuchMessage (an
 * empty list returns 0).
 * A malformed ID anywhere in the list: org.postbus.Error.InvalidArguments, and nothing is done.
 *
 *   ListMessages(s queue) → a(ssttsas)
 *        queue: "" for all, or a queue name. Each message: id, queue, arrival usec, content size in
 *        bytes, sender ("" for the null sender), pending recipients.
 *   SelectMessages(a{sv} filter) → as ids
 *        The keys QUEUE_FILTER_* above, all that are given must match; {} selects every message.
 *        An unknown key, a value of the wrong type or an unknown queue name: InvalidArguments.
 *   HoldMessages(as ids) → u
 *        Moves them to the hold queue (as postsuper -h); held mail is not tried and stays held
 *        across restarts. Already held: not counted.
 *   ReleaseMessages(as ids) → u
 *        Moves held messages to deferred, due now (as postsuper -H). Not held: not counted.
 *   RequeueMessages(as ids) → u
 *        The message's pending recipients are resolved again from the start (as postsuper -r): from
 *        any queue but corrupt (hold included) it goes to deferred, due now, and is activated now.
 *   DeleteMessages(as ids) → u
 *        Removes the queue file and its bounce logs, without a notice to anyone (postsuper -d).
 *   BounceMessages(as ids, s reason) → u
 *        Every pending recipient bounces now with reason ("" for a default text), through bounce:
 *        the sender gets a non-delivery notice as when the message expires.
 *   FlushQueue() → u
 *        Deferred mail is tried now (postqueue -f); returns how many were activated.
 *   FlushDestination(s destination) → u
 *        Deferred mail with a pending recipient whose domain is destination is tried now (postqueue
 *        -s). Returns how many were activated; none queued for it: NoSuchDestination.
 *   PauseDestination(s destination, s reason)
 *        Mail to the destination (a recipient domain or a next hop, case-insensitive) stays queued and
 *        is not tried until ResumeDestination. Persists across qmgr restarts. Empty: InvalidArguments.
 *   ResumeDestination(s destination)
 *        Ends a pause and tries its mail now. Not paused: NoSuchDestination.
 *   ListDestinations() → a(sssuuubt)
 *        transport, destination, state ("active", "dead" or "paused"), concurrency now, concurrency
 *        limit, messages waiting, dead, next retry (usec since the epoch; 0: now). Paused destinations
 *        that qmgr has no deliveries for are listed with transport "".
 *   ListHostFailures() → a(sssst)
 *        The server addresses the smtp and lmtp agents skip for now, because they timed out or refused
 *        (smtp_host_failure_cache_time): transport, destination (as in ListDestinations), server
 *        ("mx.example.org[192.0.2.1]:25"), reason, skipped until (usec since the epoch). As the agent's
 *        last Deliver answer for that destination reported them: they outlive the destination's
 *        ListDestinations row (its queue may be empty meanwhile), and qmgr forgets them at their end or
 *        when it restarts. A separate list because a destination has any number of them.
 *   GetMessage(s id) → o path
 *        The message's object path; NoSuchMessage when it is not queued, InvalidArguments when id is
 *        malformed.
 *
 * Signals:
 *   MessageQueued(s id, s sender, u recipients)         a new message entered the queue (from cleanup)
 *   MessageDelivered(s id, s recipient, s relay, s dsn)  dsn: "2.0.0"
 *   MessageDeferred(s id, s recipient, s dsn, s reason, t next_attempt_usec)
 *   MessageBounced(s id, s recipient, s dsn, s reason)
 *   MessageRemoved(s id)                                  the queue file is gone (delivered, bounced, deleted)
 *   DestinationDead(s transport, s destination, s reason)
 *   Alert(s class, s text)                                class as in notify_classes: "resource", "software"
 *
 * Objects /org/postbus/Queue1/message/<ID>, interface org.postbus.Message1, one per queued
 * message (busctl tree lists them):
 *   Properties: Id s, Queue s, Sender s, ArrivalUSec t, Size t (content bytes), Attempts u (delivery
 *     attempts so far, counted by qmgr since it started), NextAttemptUSec t (usec since the epoch; 0:
 *     not scheduled, e.g. held or active), Reason s (the last deferral reason, or the hold reason;
 *     qmgr keeps it in memory only: "" after a qmgr restart until the message's next attempt),
 *     Recipients a(ssss): address, original address (ORCPT's address, or address), state ("pending"
 *     or "done"), last reason. PropertiesChanged is sent when Queue, Attempts, NextAttemptUSec or
 *     Reason change.
 *   Methods (each as the Queue1 method on this one ID, with the same authorization): Hold(),
 *     Release(), Requeue(), Delete(), Bounce(s reason). They reply with nothing, also when there was
 *     nothing to do (Release of a message that is not held); NoSuchMessage when it is gone.
 *
 * Right after qmgr starts it reads the queue into its index at idle priority while mail flows; the
 * first call that reads the index (ListMessages, SelectMessages, GetMessage, a message object, ...)
 * waits until that is done.
 *
 * A message in the active queue while a delivery of it is in progress: hold, requeue, delete and
 * bounce are counted and take effect when the deliveries in progress have ended (as Postfix's
 * postsuper does); recipients delivered meanwhile stay delivered.
 */

/* org.postbus.QueueManager1 on qmgr's private socket (/run/postbus/qmgr), which only cleanup and pickup may
 * reach. Calls that expect no answer:
 *   Wake(s queue_id): incoming/<queue_id> is new and on disk; qmgr reads it.
 *   WakeInline(s queue_id, ay queue_file): the same with the file's bytes (at most QMGR_WAKE_INLINE_MAX) as
 *     cleanup wrote them, so that qmgr does not open and read the file just written. qmgr takes them only
 *     from cleanup (its unit's user, or root); from another caller, or when they do not read as a whole
 *     queue file, it reads the file as for Wake. */
#define QMGR_WAKE_OBJECT "/org/postbus/QueueManager1"
#define QMGR_WAKE_INTERFACE "org.postbus.QueueManager1"
#define QMGR_WAKE_INLINE_MAX (64U * 1024U)
