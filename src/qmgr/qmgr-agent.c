/* qmgr-agent.c: the health of the delivery agents as qmgr sees it: crashes counted against the messages
 * in progress, poison messages held, and an agent that went away probed until it answers, when the mail
 * deferred for it is tried again at once. Run by qmgr.
 *
 * A crash is a connection to the agent that closed with deliveries in progress: the agent died (or was
 * killed) under them. Every message in progress then becomes a suspect, but a crash with several in
 * progress says nothing about which one caused it, and a kill from outside hits innocent messages too.
 * So a suspect is delivered alone: it starts only when nothing else is in progress at its agent, and
 * nothing else starts while it runs (for QMGR_ISOLATION_MAX_USEC at most, so that a slow delivery cannot
 * stop an agent). Only a crash with one message in progress counts against that
 * message, and delivery_crash_limit such crashes move it to hold, with a journal record and an Alert on
 * the bus. A reply from the agent clears the suspicion. The counts live in qmgr's index in memory: a
 * restart of qmgr forgets them, which costs at most delivery_crash_limit more crashes.
 *
 * A delivery that could not reach the agent (no connection: its unit is restarting, or failed), or that
 * the agent died under, defers its message as before, marked as waiting for that agent. qmgr then probes
 * the agent (a connection and a Ping, which starts it by socket activation) after 1 s, 2 s, 4 s and so on
 * up to transport_retry_time; as soon as it answers, the marked mail is made due and the deferred queue
 * scanned, instead of waiting for each message's back-off. Neither failure counts against the
 * destination's concurrency: the destination is not at fault. */
#include <fcntl.h>
#include <sys/stat.h>

#include "log.h"
#include "qmgr.h"

#define PROBE_DELAY_MIN_USEC USEC_PER_SEC
/* How long a suspect may hold the others of its agent back, waiting for them to end or running alone: a slow
 * delivery (a remote server that takes minutes) must not stop an agent for as long. After it, the others go
 * on beside the suspect; a crash then has more than one delivery in progress and counts against none. */
#define QMGR_ISOLATION_MAX_USEC (10 * USEC_PER_SEC)

static QmgrAgentState *agent_of_transport(QmgrTransport *t) {
        if (!t || t->agent_id < 0 || t->agent_id >= _QMGR_AGENT_MAX)
                return NULL;
        return &t->qmgr->agent_state[t->agent_id];
}

void qmgr_agents_init(Qmgr *q) {
        for (int i = 0; i < _QMGR_AGENT_MAX; i++)
                q->agent_state[i] = (QmgrAgentState) { .qmgr = q, .id = i, .probe_delay = PROBE_DELAY_MIN_USEC };
}

void qmgr_agents_free(Qmgr *q) {
        for (int i = 0; i < _QMGR_AGENT_MAX; i++) {
                QmgrAgentState *a = &q->agent_state[i];
                a->probe_timer = sd_event_source_disable_unref(a->probe_timer);
                a->probe_slot = sd_bus_slot_unref(a->probe_slot);
                a->isolation_timer = sd_event_source_disable_unref(a->isolation_timer);
        }
}

QmgrCallStats *qmgr_agent_stats(QmgrTransport *t) {
        QmgrAgentState *a = agent_of_transport(t);
        return a ? &a->stats : NULL;
}

static int on_isolation_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QmgrAgentState *a = userdata;

        qmgr_schedule_run_all(a->qmgr);
        return 0;
}

/* A suspect begins to wait, or to run alone: the others are held back until it is done, or for
 * QMGR_ISOLATION_MAX_USEC at most. */
static void isolation_start(QmgrAgentState *a) {
        uint64_t when;
        int r;

        a->isolated_since = now_monotonic_usec();
        when = a->isolated_since + QMGR_ISOLATION_MAX_USEC;
        if (!a->isolation_timer)
                r = sd_event_add_time(a->qmgr->daemon->event, &a->isolation_timer, CLOCK_MONOTONIC, when,
                                      USEC_PER_SEC, on_isolation_timer, a);
        else {
                r = sd_event_source_set_time(a->isolation_timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(a->isolation_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to start the isolation timer of a delivery agent, ignoring: %m");
}

static bool isolating(QmgrAgentState *a) {
        return (a->suspect_running || a->suspect_waiting) &&
                now_monotonic_usec() < a->isolated_since + QMGR_ISOLATION_MAX_USEC;
}

bool qmgr_agent_blocked(QmgrTransport *t) {
        QmgrAgentState *a = agent_of_transport(t);
        return a && a->suspect_running && isolating(a);
}

bool qmgr_agent_may_start(QmgrTransport *t, QmgrMessage *m) {
        QmgrAgentState *a = agent_of_transport(t);

        if (!a)
                return true;
        if (a->suspect_running)
                return !isolating(a);
        if (m->suspect) {
                if (a->busy == 0 || (a->suspect_waiting && !isolating(a)))
                        return true;
                /* Others end first, and no new one starts meanwhile: the suspect's turn comes. */
                if (!a->suspect_waiting) {
                        a->suspect_waiting = true;
                        isolation_start(a);
                }
                return false;
        }
        return !(a->suspect_waiting && isolating(a));
}

void qmgr_agent_started(QmgrEntry *e) {
        QmgrAgentState *a = agent_of_transport(e->dest->transport);

        if (!a)
                return;
        if (e->message->suspect && a->busy == 0) {
                e->alone = true;
                a->suspect_running = true;
                a->suspect_waiting = false;
                isolation_start(a);
        } else if (e->message->suspect)
                a->suspect_waiting = false;     /* waited long enough: it goes beside the others */
        a->busy++;
}

/* ---- the probe: is the agent back? ---------------------------------------------------------------- */

static int mark_due(Qmgr *q, QmgrIndexEntry *e, void *userdata) {
        QmgrAgentState *a = userdata;

        if (e->waiting_agent != a->id + 1)
                return 0;
        e->waiting_agent = 0;
        if (e->queue != QUEUE_DEFERRED)
                return 0;
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_NOW } };
        if (utimensat(q->queue_fds[QUEUE_DEFERRED], e->id, ts, AT_SYMLINK_NOFOLLOW) >= 0)
                qmgr_index_set_next_attempt(q, e->id, now_realtime_usec());
        return 0;
}

static void agent_up(QmgrAgentState *a) {
        Qmgr *q = a->qmgr;

        if (a->probe_timer)
                (void) sd_event_source_set_enabled(a->probe_timer, SD_EVENT_OFF);
        a->probe_slot = sd_bus_slot_unref(a->probe_slot);
        a->probe_delay = PROBE_DELAY_MIN_USEC;
        if (!a->down)
                return;
        a->down = false;
        log_info("delivery agent %s answers again: deferred mail for it is tried now",
                 bus_client_path(q->agents[a->id]));
        (void) qmgr_index_foreach(q, mark_due, a);
        (void) qmgr_queue_scan(q, QUEUE_DEFERRED);
        qmgr_schedule_run_all(q);
}

static void probe_arm(QmgrAgentState *a, uint64_t delay);

static void probe_failed(QmgrAgentState *a) {
        uint64_t max = (uint64_t) a->qmgr->daemon->config->transport_retry_time * USEC_PER_SEC;

        a->probe_slot = sd_bus_slot_unref(a->probe_slot);
        a->probe_delay = MIN(a->probe_delay * 2, MAX(max, PROBE_DELAY_MIN_USEC));
        probe_arm(a, a->probe_delay);
}

static int on_probe_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        QmgrAgentState *a = userdata;

        a->probe_slot = sd_bus_slot_unref(a->probe_slot);
        if (sd_bus_is_ready(sd_bus_message_get_bus(reply)) > 0 && !sd_bus_message_is_method_error(reply, NULL))
                agent_up(a);
        else
                probe_failed(a);
        return 0;
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QmgrAgentState *a = userdata;
        sd_bus *bus = NULL;
        int r;

        if (!a->down || a->probe_slot)
                return 0;
        r = bus_client_get_ready(a->qmgr->agents[a->id], on_probe_ready, a, &a->probe_slot, &bus);
        if (r > 0)
                agent_up(a);
        else if (r < 0)
                probe_failed(a);
        return 0;
}

static void probe_arm(QmgrAgentState *a, uint64_t delay) {
        int r;

        if (!a->probe_timer) {
                r = sd_event_add_time_relative(a->qmgr->daemon->event, &a->probe_timer, CLOCK_MONOTONIC,
                                               delay, USEC_PER_MSEC * 10, on_probe_timer, a);
                if (r < 0)
                        log_error_errno(r, "Failed to start the probe timer of a delivery agent: %m");
                return;
        }
        r = sd_event_source_set_time_relative(a->probe_timer, delay);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->probe_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to re-arm the probe timer of a delivery agent: %m");
}

static void agent_down(QmgrAgentState *a) {
        if (a->down)
                return;
        a->down = true;
        a->probe_delay = PROBE_DELAY_MIN_USEC;
        probe_arm(a, a->probe_delay);
}

/* ---- the end of a delivery ------------------------------------------------------------------------- */

static void hold_poison(QmgrMessage *m, QmgrTransport *t, unsigned crashes) {
        Qmgr *q = m->qmgr;
        _cleanup_free_ char *why = NULL;

        if (m->action != QMGR_ACTION_NONE || m->controlled || m->finishing)
                return;
        if (asprintf(&why, "delivery agent %s crashed %u times while delivering this message alone "
                     "(delivery_crash_limit)", t->name, crashes) < 0) {
                log_oom();
                return;
        }
        log_mail(LOG_WARNING, m->id,
                 LOG_FIELDS({ "QUEUE", "hold" }, { "TRANSPORT", t->name },
                            { "MESSAGE_ID", POSTBUS_MESSAGE_DELIVERY_CRASH_HOLD }),
                 "held: %s", why);
        qmgr_alert(q, "software", "%s: held: %s", m->id, why);
        /* As an administrator's hold: what has not started never will, and it moves once the calls in
         * progress have ended. */
        free(m->action_reason);
        m->action_reason = TAKE_PTR(why);
        m->action = QMGR_ACTION_HOLD;
        qmgr_schedule_message_free(m);
}

QmgrAgentOutcome qmgr_agent_ended(QmgrEntry *e, const QmgrCall *c) {
        QmgrTransport *t = e->dest->transport;
        QmgrAgentState *a = agent_of_transport(t);
        QmgrMessage *m = e->message;
        Qmgr *q = m->qmgr;
        QmgrIndexEntry *ie = qmgr_index_peek(q, m->id);
        int64_t limit = q->daemon->config->delivery_crash_limit;
        QmgrAgentOutcome outcome;

        if (!a)
                return QMGR_AGENT_ANSWERED;
        if (a->busy > 0)
                a->busy--;
        if (e->alone) {
                a->suspect_running = false;
                a->reopened = true;
        }

        if (!c->sent)
                outcome = QMGR_AGENT_UNAVAILABLE;
        else if (c->lost_with > 0)
                outcome = QMGR_AGENT_CRASHED;
        else
                outcome = QMGR_AGENT_ANSWERED;

        if (outcome == QMGR_AGENT_ANSWERED) {
                m->suspect = false;
                if (ie) {
                        ie->suspect = false;
                        ie->crashes = 0;
                }
                /* It answers: the mail waiting for it goes now, from the event loop rather than from
                 * under this delivery's end. */
                if (a->down && !a->probe_slot)
                        probe_arm(a, 0);
                return outcome;
        }

        if (ie)
                ie->waiting_agent = (uint8_t) (a->id + 1);
        agent_down(a);
        if (outcome == QMGR_AGENT_UNAVAILABLE)
                return outcome;

        m->suspect = true;
        unsigned crashes = 0;
        if (ie) {
                ie->suspect = true;
                if (c->lost_with == 1 && ie->crashes < UINT8_MAX)
                        ie->crashes++;
                crashes = ie->crashes;
        }
        log_mail(LOG_WARNING, m->id, LOG_FIELDS({ "TRANSPORT", t->name }),
                 "delivery agent %s died with %u deliveries in progress, this one among them (%u crash%s with "
                 "it alone)", t->name, c->lost_with, crashes, crashes == 1 ? "" : "es");
        if (limit > 0 && crashes >= (uint64_t) limit)
                hold_poison(m, t, crashes);
        return outcome;
}

void qmgr_agent_after(Qmgr *q, int agent_id) {
        QmgrAgentState *a;

        if (agent_id < 0 || agent_id >= _QMGR_AGENT_MAX)
                return;
        a = &q->agent_state[agent_id];
        if (a->reopened) {
                /* Every transport of this agent was held back while the suspect ran. */
                a->reopened = false;
                qmgr_schedule_run_all(q);
        }
        if (a->busy > 0 || !a->suspect_waiting)
                return;
        /* Nothing in progress: a waiting suspect starts now, alone. If none is found (it went, or its
         * destination cannot take it now), the others go on. */
        qmgr_schedule_run_all(q);
        if (a->suspect_waiting && !a->suspect_running) {
                a->suspect_waiting = false;
                qmgr_schedule_run_all(q);
        }
}
