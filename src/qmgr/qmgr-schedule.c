/* qmgr-schedule.c: what qmgr delivers next. Each transport keeps a ring of jobs (a message's deliveries
 * through it), served round robin so that one huge list cannot hold up single messages; each job keeps
 * its deliveries per destination, and a destination takes a new delivery only while its concurrency
 * window, its rate delay and its health allow. Run by qmgr. */
#include "log.h"
#include "qmgr.h"

/* How far one pass looks for a delivery that may start, so that a transport whose destinations are
 * all busy costs bounded time per event. The ring turns, so nothing is passed over for good. */
#define QMGR_SCAN_JOBS 256U
#define QMGR_SCAN_PEERS 16U

static void ring_insert(QmgrTransport *t, QmgrJob *j) {
        if (!t->ring) {
                j->rr_next = j->rr_prev = j;
                t->ring = j;
        } else {
                /* at the end: just before the one whose turn is next */
                j->rr_next = t->ring;
                j->rr_prev = t->ring->rr_prev;
                j->rr_prev->rr_next = j;
                t->ring->rr_prev = j;
        }
        j->in_ring = true;
}

static void ring_remove(QmgrTransport *t, QmgrJob *j) {
        if (!j->in_ring)
                return;
        if (j->rr_next == j)
                t->ring = NULL;
        else {
                j->rr_prev->rr_next = j->rr_next;
                j->rr_next->rr_prev = j->rr_prev;
                if (t->ring == j)
                        t->ring = j->rr_next;
        }
        j->in_ring = false;
}

static QmgrJob *job_get(QmgrMessage *m, QmgrTransport *t) {
        QmgrJob *j;

        for (j = m->jobs; j; j = j->next)
                if (j->transport == t)
                        return j;
        j = calloc(1, sizeof(QmgrJob));
        if (!j)
                return NULL;
        j->message = m;
        j->transport = t;
        j->next = m->jobs;
        m->jobs = j;
        return j;
}

static void job_free(QmgrJob *j) {
        QmgrMessage *m = j->message;
        QmgrJob **p;

        ring_remove(j->transport, j);
        for (p = &m->jobs; *p != j; p = &(*p)->next)
                ;
        *p = j->next;
        free(j);
}

static QmgrPeer *peer_get(QmgrJob *j, QmgrDest *d) {
        QmgrPeer *p;

        for (p = j->peers; p; p = p->job_next)
                if (p->dest == d)
                        return p;
        p = calloc(1, sizeof(QmgrPeer));
        if (!p)
                return NULL;
        p->job = j;
        p->dest = d;
        p->job_next = j->peers;
        j->peers = p;
        p->dest_next = d->peers;
        if (d->peers)
                d->peers->dest_prev = p;
        else
                d->peers_tail = p;
        d->peers = p;
        return p;
}

/* Frees an empty peer, and its job when that was the job's last. */
static void peer_free(QmgrPeer *p) {
        QmgrJob *j = p->job;
        QmgrDest *d = p->dest;
        QmgrPeer **pp;

        for (pp = &j->peers; *pp != p; pp = &(*pp)->job_next)
                ;
        *pp = p->job_next;
        if (p->dest_prev)
                p->dest_prev->dest_next = p->dest_next;
        else
                d->peers = p->dest_next;
        if (p->dest_next)
                p->dest_next->dest_prev = p->dest_prev;
        else
                d->peers_tail = p->dest_prev;
        free(p);
        if (!j->peers)
                job_free(j);
}

void qmgr_entry_free(QmgrEntry *e) {
        free(e);
}

/* Takes the oldest entry of a peer off the schedule; the caller starts it. */
static QmgrEntry *peer_pop(QmgrPeer *p) {
        QmgrEntry *e = p->head;

        p->head = e->next;
        if (!p->head)
                p->tail = NULL;
        e->next = NULL;
        e->peer = NULL;
        e->message->entries--;
        if (!p->head)
                peer_free(p);
        return e;
}

int qmgr_schedule_add(QmgrMessage *m, QmgrTransport *t, const char *dest_name, const size_t *indices, size_t n) {
        if (t->deferred) {
                for (size_t i = 0; i < n; i++)
                        qmgr_recipient_deferred(m, indices[i], "none", "4.3.2",
                                                "delivery temporarily suspended: deferred transport");
                return 0;
        }
        if (m->qmgr->paused) {
                /* A paused destination (the next hop, or a recipient's domain) keeps its mail queued. */
                _cleanup_free_ size_t *kept = malloc(MAX(n, 1U) * sizeof(size_t));
                size_t n_kept = 0;
                if (!kept)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        const char *why = qmgr_paused_reason(m->qmgr, dest_name) ?:
                                qmgr_paused_reason(m->qmgr, m->envelope->recipients[indices[i]].address);
                        if (!why) {
                                kept[n_kept++] = indices[i];
                                continue;
                        }
                        _cleanup_free_ char *text = NULL;
                        if (asprintf(&text, "delivery temporarily suspended: destination paused%s%s",
                                     isempty(why) ? "" : ": ", why) < 0)
                                return -ENOMEM;
                        qmgr_recipient_deferred(m, indices[i], "none", "4.3.2", text);
                }
                if (n_kept < n)
                        return n_kept == 0 ? 0 : qmgr_schedule_add_unpaused(m, t, dest_name, kept, n_kept);
        }
        return qmgr_schedule_add_unpaused(m, t, dest_name, indices, n);
}

int qmgr_schedule_add_unpaused(QmgrMessage *m, QmgrTransport *t, const char *dest_name, const size_t *indices,
                               size_t n) {
        QmgrDest *d;
        QmgrJob *j;
        QmgrPeer *p;
        QmgrEntry *e;

        d = qmgr_dest_get(t, dest_name);
        if (!d)
                return -ENOMEM;
        if (d->dead && !qmgr_dest_can_start(d, now_monotonic_usec()) && d->dead) {
                _cleanup_free_ char *why = NULL;
                if (asprintf(&why, "delivery temporarily suspended: %s", strna(d->dead_reason)) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        qmgr_recipient_deferred(m, indices[i], "none", "4.4.1", why);
                return 0;
        }
        e = malloc(sizeof(QmgrEntry) + n * sizeof(size_t));
        j = job_get(m, t);
        p = j ? peer_get(j, d) : NULL;
        if (!e || !p) {
                free(e);
                if (j && !j->peers)
                        job_free(j);
                qmgr_dest_release(d);
                return -ENOMEM;
        }
        *e = (QmgrEntry) { .peer = p, .dest = d, .message = m, .n = n };
        memcpy(e->indices, indices, n * sizeof(size_t));
        if (p->tail)
                p->tail->next = e;
        else
                p->head = e;
        p->tail = e;
        m->entries++;
        if (!j->in_ring)
                ring_insert(t, j);
        return 0;
}

/* One delivery that may start now, taken off the schedule; NULL when none. */
static QmgrEntry *schedule_pick(QmgrTransport *t, uint64_t now) {
        QmgrJob *j = t->ring;

        for (unsigned n = 0; j && n < QMGR_SCAN_JOBS; n++) {
                QmgrJob *next = j->rr_next;
                unsigned k = 0;

                for (QmgrPeer *p = j->peers; p && k < QMGR_SCAN_PEERS; p = p->job_next, k++)
                        if (qmgr_dest_can_start(p->dest, now) && qmgr_agent_may_start(t, j->message)) {
                                /* The next turn is the next job's, whatever happens to this one. */
                                t->ring = next == j ? j : next;
                                return peer_pop(p);
                        }
                j = next;
                if (j == t->ring)
                        break;
        }
        return NULL;
}

void qmgr_schedule_run(QmgrTransport *t) {
        uint64_t now = now_monotonic_usec();

        /* A delivery that ends at once (an agent that is down) calls back here: the loop below goes on. */
        if (t->running)
                return;
        t->running = true;
        while (t->busy < t->process_limit && !qmgr_agent_blocked(t)) {
                QmgrEntry *e = schedule_pick(t, now);
                if (!e)
                        break;
                qmgr_deliver_start(e);
        }
        t->running = false;
}

/* After a delivery to d ended: d has a slot more, and unless its transport had none left (then any
 * destination may take the freed one: the whole ring is looked at), no other destination does. So d alone
 * starts what it may, its oldest message first, without a look at the others: a transport with hundreds of
 * messages for busy destinations would otherwise go through them all after every delivery. */
void qmgr_schedule_run_dest(QmgrDest *d, bool transport_was_full) {
        QmgrTransport *t = d->transport;
        uint64_t now = now_monotonic_usec();

        if (transport_was_full) {
                qmgr_schedule_run(t);
                return;
        }
        if (t->running)
                return;
        t->running = true;
        d->held++;      /* a delivery that ends at once, below, may leave d with nothing */
        while (d->peers_tail && t->busy < t->process_limit && !qmgr_agent_blocked(t) &&
               qmgr_dest_can_start(d, now)) {
                QmgrPeer *p = d->peers_tail;

                if (!qmgr_agent_may_start(t, p->job->message))
                        break;  /* an agent's suspect waits its turn (qmgr_agent_after()) */
                qmgr_deliver_start(peer_pop(p));
        }
        d->held--;
        t->running = false;
}

void qmgr_schedule_run_all(Qmgr *q) {
        for (QmgrTransport *t = q->transports; t; t = t->next)
                if (t->ring)
                        qmgr_schedule_run(t);
}

void qmgr_schedule_defer_dest(QmgrDest *d) {
        _cleanup_free_ char *why = NULL;

        if (asprintf(&why, "delivery temporarily suspended: %s", strna(d->dead_reason)) < 0) {
                log_oom();
                return;
        }
        qmgr_schedule_defer_dest_why(d, "4.4.1", why);
}

void qmgr_schedule_defer_dest_why(QmgrDest *d, const char *dsn, const char *why) {
        _cleanup_free_ QmgrMessage **touched = NULL;
        size_t n_touched = 0, size = 0;

        while (d->peers) {
                QmgrEntry *e = peer_pop(d->peers);
                QmgrMessage *m = e->message;

                for (size_t i = 0; i < e->n; i++)
                        qmgr_recipient_deferred(m, e->indices[i], "none", dsn, why);
                qmgr_entry_free(e);
                if (n_touched == size) {
                        size = MAX(16U, size * 2);
                        QmgrMessage **l = realloc(touched, size * sizeof(QmgrMessage *));
                        if (!l) {
                                log_oom();
                                continue;       /* finished at its next event instead */
                        }
                        touched = l;
                }
                bool seen = false;
                for (size_t i = 0; i < n_touched; i++)
                        seen = seen || touched[i] == m;
                if (!seen)
                        touched[n_touched++] = m;
        }
        for (size_t i = 0; i < n_touched; i++)
                qmgr_message_finish(touched[i]);
}

void qmgr_schedule_message_free(QmgrMessage *m) {
        while (m->jobs) {
                QmgrJob *j = m->jobs;
                while (j->peers) {
                        QmgrPeer *p = j->peers;
                        QmgrDest *d = p->dest;
                        bool last = !p->job_next;
                        while (p->head)
                                qmgr_entry_free(peer_pop(p));   /* frees p, and j with its last peer */
                        qmgr_dest_release(d);
                        if (last)
                                break;
                }
        }
}
