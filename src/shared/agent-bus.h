/* agent-bus.h: the calls between qmgr and the roles it drives: the delivery agents (local, pipe, smtp,
 * lmtp) speak org.postbus.Delivery1, and bounce speaks org.postbus.Bounce1. Names and signatures live
 * here so that both sides of each call are written against one text. */
#pragma once

/* ---- org.postbus.Delivery1, served by every delivery agent on /run/postbus/<agent> ----
 *
 * Deliver(h queue_fd, s queue_id, s sender, s transport, s nexthop, a{ss} options, a(us) recipients)
 *      -> (a(ussss) results, a(sst) hosts)
 *
 *   queue_fd    the queue file, opened read-only by qmgr; the agent reads the envelope (attributes, DSN
 *               options) and the content from it with queue_file_read() and never writes it.
 *   transport   the master.cf service name the recipients were resolved to ("local", "dovecot", ...).
 *   nexthop     rewrite's next hop (a domain, "[host]:port", or for local the domain part).
 *   options     the transport's settings as qmgr knows them from master.cf and main.cf, for agents that
 *               need them. For pipe: "argv" (the words after argv=, separated by single spaces),
 *               "flags", "user" ("name" or "name:group"), "size" (bytes, absent: no limit), "eol",
 *               "time_limit" (seconds: <transport>_time_limit, else command_time_limit). Every -o
 *               name=value of the master.cf line is passed as "o:name" = value.
 *   recipients  (index in the queue file's recipient list, address as resolved)
 *
 * DeliverInline(ay queue_file, s queue_id, s sender, s transport, s nexthop, a{ss} options, a(us) recipients)
 *      -> (a(ussss) results, a(sst) hosts)
 *
 *   The same, with the queue file's bytes inside the call (at most DELIVERY_INLINE_MAX) as qmgr read them,
 *   instead of its descriptor: for a small file, which qmgr keeps in memory while the message is active,
 *   the agent then neither checks, reads nor closes a descriptor, and qmgr passes none (sd-bus copies and
 *   closes each one it sends).
 *
 *   results     one per recipient given: (index, status, dsn, relay, text)
 *               status  "sent", "relayed", "passed", "deferred" or "bounced". "relayed" and "passed" are
 *                       sent too, to a next hop that is not the final one (the smtp agent, not lmtp):
 *                       "relayed" when the server did not announce DSN, so the sender's NOTIFY=SUCCESS
 *                       stops here and qmgr writes a trace record with action "relayed" (Postfix's
 *                       "relayed to non-DSN-aware mailer"); "passed" when the server announced DSN and got
 *                       the NOTIFY, so that it reports success itself and qmgr writes no trace record.
 *                       A plain "sent" with NOTIFY=SUCCESS gets a trace record with action "delivered".
 *               dsn     the enhanced status code, "2.0.0", "4.3.0", "5.1.1", ...
 *               relay   what Postfix logs as relay= and a DSN report shows as Remote-MTA: "local",
 *                       "dovecot", "mx.example.org[192.0.2.1]:25", or "none"
 *               text    the reason, as the journal record's "(...)" and the report's Diagnostic-Code
 *
 *   hosts       the server addresses of nexthop as the agent last saw them, from the smtp and lmtp agents'
 *               host failure cache (smtp_host_failure_cache_time): (server, reason, until_usec)
 *               server      "mx.example.org[192.0.2.1]:25"
 *               reason      why it is skipped ("" when it is not): "connection refused", "timed out ..."
 *               until_usec  CLOCK_REALTIME microseconds until which it is skipped; 0: it is not
 *               Empty when the agent has nothing to say (every other agent; a delivery made on a cached
 *               connection without a lookup). qmgr keeps the failing ones for ListHostFailures (queue-bus.h).
 *
 * The agent writes the journal record for each recipient itself (to=<...>, relay=, delay=, dsn=,
 * status=). It answers when the last recipient has a result. A call that fails as a whole (D-Bus error,
 * lost connection, timeout) leaves every one of its recipients deferred: the worst case is a duplicate.
 */
#define DELIVERY_OBJECT_PATH "/org/postbus/Delivery1"
/* Options qmgr adds to every call: when the message entered the active queue and when the call was made
 * (CLOCK_REALTIME microseconds, decimal), for the delays= of the agent's journal record. */
#define DELIVERY_OPTION_ACTIVE_USEC "q:active_usec"
#define DELIVERY_OPTION_SENT_USEC "q:sent_usec"
/* Added with the value "yes" when more deliveries to the same transport and next hop wait in qmgr after
 * this one (Postfix's connection caching on demand: the smtp agent keeps the session open for them). */
#define DELIVERY_OPTION_BACKLOG "q:backlog"
#define DELIVERY_INTERFACE "org.postbus.Delivery1"
#define DELIVERY_INLINE_MAX (64U * 1024U)

/* Room for a result's enhanced status code ("5.1.1"; three digits each at most) and its NUL. */
#define DELIVERY_DSN_MAX 16U

#define DELIVERY_STATUS_SENT "sent"
#define DELIVERY_STATUS_RELAYED "relayed"
#define DELIVERY_STATUS_PASSED "passed"
#define DELIVERY_STATUS_DEFERRED "deferred"
#define DELIVERY_STATUS_BOUNCED "bounced"
/* Not an answer: the journal's status= of a failure that soft_bounce keeps queued, as Postfix logs it. */
#define DELIVERY_LOG_SOFTBOUNCE "SOFTBOUNCE"

/* ---- org.postbus.Bounce1, served by bounce on /run/postbus/bounce ----
 *
 * bounce keeps, next to the queue, one log per message and kind (Postfix's bounce, defer and trace logs):
 * $queue_directory/bounce/<id>, defer/<id>, trace/<id>. Each is a typed record file that only bounce
 * writes. Every call answers only when what it did is durable.
 *
 * Append(s queue_id, s log, a(sssssssst) records) -> ()
 *   log      "bounce" (a recipient failed for good), "defer" (a recipient was deferred), or "trace" (a
 *            success that the sender asked to hear about: NOTIFY=SUCCESS)
 *   record   (recipient, original_recipient, orcpt, notify, action, status, relay, text, time_usec)
 *            original_recipient: before alias expansion ("" when the same); orcpt: the DSN ORCPT
 *            ("rfc822;bob@example.org", "" when not given); notify: the DSN NOTIFY ("" when not
 *            given); action: "failed", "delayed", "delivered", "expanded" or "relayed"; status: the
 *            enhanced code; relay: as in Delivery1 results; text: the diagnostic.
 *
 * Finish(h queue_fd, s queue_id) -> (as notice_ids)
 *   qmgr calls this once every recipient of a message is done, before it removes the queue file: a
 *   failure report for the bounce log's recipients, a success report for the trace log's, each through
 *   cleanup; then every log of the message is removed. Returns the queue IDs of the notices it made
 *   (none when the logs are empty or NOTIFY says NEVER).
 *
 * Warn(h queue_fd, s queue_id) -> (s notice_id)
 *   A delay warning for the recipients in the defer log whose NOTIFY allows it (default: yes), at most
 *   once per message: bounce remembers in the defer log that it warned. "" when nothing was sent.
 *
 * Expire(h queue_fd, s queue_id) -> ()
 *   The message is past its lifetime: every recipient still pending in the queue file gets a bounce
 *   log record with action "failed", and the status and text of its last defer log record ("4.7.0",
 *   "message expired" when there is none). qmgr then marks them done and calls Finish.
 *
 * Reject(h content_fd, s sender, as recipients, s status, s text) -> (s notice_id)
 *   A message that never got a queue file (cleanup refused mail that pickup brought from the
 *   maildrop): a failure report to sender for all recipients, with the content from a sealed memfd.
 *
 * Remove(s queue_id) -> ()
 *   Removes the logs of a message that is deleted without notices.
 */
#define BOUNCE_OBJECT_PATH "/org/postbus/Bounce1"
#define BOUNCE_INTERFACE "org.postbus.Bounce1"

#define BOUNCE_LOG_BOUNCE "bounce"
#define BOUNCE_LOG_DEFER "defer"
#define BOUNCE_LOG_TRACE "trace"
