/* qmgr-transport.c: the transports qmgr delivers through (master.cf's delivery services with main.cf's
 * <transport>_* limits), their destinations, and Postfix's concurrency feedback. Run by qmgr. */
#include <math.h>

#include "log.h"
#include "qmgr.h"

static const char *const agent_sockets[_QMGR_AGENT_MAX] = {
        [QMGR_AGENT_LOCAL] = POSTBUS_RUNDIR "/local",
        [QMGR_AGENT_PIPE] = POSTBUS_RUNDIR "/pipe",
        [QMGR_AGENT_SMTP] = POSTBUS_RUNDIR "/smtp",
        [QMGR_AGENT_LMTP] = POSTBUS_RUNDIR "/lmtp",
        [QMGR_AGENT_VIRTUAL] = POSTBUS_RUNDIR "/virtual",
};

static int agent_of(MasterCommand kind) {
        switch (kind) {
        case MASTER_COMMAND_LOCAL: return QMGR_AGENT_LOCAL;
        case MASTER_COMMAND_PIPE: return QMGR_AGENT_PIPE;
        case MASTER_COMMAND_SMTP: return QMGR_AGENT_SMTP;
        case MASTER_COMMAND_LMTP: return QMGR_AGENT_LMTP;
        case MASTER_COMMAND_VIRTUAL: return QMGR_AGENT_VIRTUAL;
        default: return -1;
        }
}

static unsigned dest_hash(const char *s) {
        unsigned h = 2166136261U;

        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 16777619U;
        return h % QMGR_DEST_BUCKETS;
}

static QmgrDest *dest_free(QmgrDest *d) {
        if (!d)
                return NULL;
        free(d->name);
        free(d->dead_reason);
        free(d);
        return NULL;
}

static QmgrTransport *transport_free(QmgrTransport *t) {
        if (!t)
                return NULL;
        for (unsigned i = 0; t->dests && i < QMGR_DEST_BUCKETS; i++)
                while (t->dests[i]) {
                        QmgrDest *d = t->dests[i];
                        t->dests[i] = d->hash_next;
                        dest_free(d);
                }
        free(t->dests);
        sd_event_source_unref(t->timer);
        strv_free(t->options);
        free(t->error_text);
        free(t->last_done_dest);
        free(t->name);
        free(t);
        return NULL;
}

void qmgr_transports_free(Qmgr *q) {
        while (q->transports) {
                QmgrTransport *t = q->transports;
                q->transports = t->next;
                transport_free(t);
        }
        for (int i = 0; i < _QMGR_AGENT_MAX; i++)
                q->agents[i] = bus_client_free(q->agents[i]);
}

/* A transport of master.cf line s with the limits of c, not yet in q->transports. */
static int transport_new(Qmgr *q, const Config *c, char **defer_transports, const MasterService *s,
                         QmgrTransport **ret) {
        QmgrTransport *t;
        int64_t v[6];
        int r;

        /* Per-transport parameters, as Postfix: <transport>_<suffix>, else the default_ one. */
        const struct {
                const char *suffix;
                ConfigParamId fallback;
        } params[] = {
                { "destination_recipient_limit", CONFIG_PARAM_default_destination_recipient_limit },
                { "destination_concurrency_limit", CONFIG_PARAM_default_destination_concurrency_limit },
                { "initial_destination_concurrency", CONFIG_PARAM_initial_destination_concurrency },
                { "destination_concurrency_failed_cohort_limit",
                  CONFIG_PARAM_default_destination_concurrency_failed_cohort_limit },
                { "destination_rate_delay", CONFIG_PARAM_default_destination_rate_delay },
                { "time_limit", CONFIG_PARAM_command_time_limit },
        };
        for (size_t i = 0; i < ELEMENTSOF(params); i++) {
                r = config_transport_int(c, s->name, params[i].suffix, params[i].fallback, v + i);
                if (r < 0)
                        return r;
        }

        t = calloc(1, sizeof(QmgrTransport));
        if (!t)
                return -ENOMEM;
        t->qmgr = q;
        t->kind = s->kind;
        t->name = strdup(s->name);
        t->dests = calloc(QMGR_DEST_BUCKETS, sizeof(QmgrDest *));
        if (!t->name || !t->dests || master_service_delivery_options(s, v[5], &t->options) < 0) {
                transport_free(t);
                return -ENOMEM;
        }
        t->recipient_limit = (unsigned) v[0];
        t->concurrency_limit = (unsigned) v[1];
        t->initial_concurrency = (unsigned) MIN(v[2], v[1]);
        t->failed_cohort_limit = (unsigned) v[3];
        t->rate_delay_usec = (uint64_t) v[4] * USEC_PER_SEC;
        /* master.cf's process limit caps the transport, as Postfix's master caps its agents. */
        t->process_limit = s->maxproc > 0 ? (unsigned) s->maxproc : (unsigned) c->default_process_limit;
        t->deferred = config_list_contains_domain(defer_transports, t->name);

        int a = agent_of(s->kind);
        t->agent_id = a;
        if (a >= 0) {
                if (!q->agents[a]) {
                        r = bus_client_new(q->daemon->event, agent_sockets[a], &q->agents[a]);
                        if (r < 0) {
                                transport_free(t);
                                return r;
                        }
                }
                t->agent = q->agents[a];
        }
        *ret = t;
        return 0;
}

static void transport_add(Qmgr *q, QmgrTransport *t) {
        t->next = q->transports;
        q->transports = t;
        log_debug("transport %s: %s, %u recipients per delivery, concurrency %u..%u, %u at once", t->name,
                  master_command_to_string(t->kind), t->recipient_limit, t->initial_concurrency,
                  t->concurrency_limit, t->process_limit);
}

static QmgrTransport *transport_list_find(QmgrTransport *list, const char *name) {
        for (QmgrTransport *t = list; t; t = t->next)
                if (streq(t->name, name))
                        return t;
        return NULL;
}

static int transport_build(Qmgr *q, const Config *c, char **defer_transports, const MasterService *s,
                           QmgrTransport **list) {
        QmgrTransport *t;
        int r;

        r = transport_new(q, c, defer_transports, s, &t);
        if (r < 0)
                return r;
        t->next = *list;
        *list = t;
        return 0;
}

static void transport_list_free(QmgrTransport *list) {
        while (list) {
                QmgrTransport *t = list;
                list = t->next;
                transport_free(t);
        }
}

/* The transports of master.cf beside c's main.cf, with c's limits, into a list of their own: -EINVAL for a
 * configuration error (logged), -ENOMEM. */
static int transports_build(Qmgr *q, const Config *c, char **defer_transports, MasterConfig **ret_master,
                            QmgrTransport **ret) {
        _cleanup_(master_config_freep) MasterConfig *master = NULL;
        QmgrTransport *list = NULL;
        int r;

        r = master_config_load_beside(c->path, &master);
        if (r < 0)
                return r;
        for (size_t i = 0; i < master->n_services; i++) {
                const MasterService *s = master->services + i;
                if (!streq(s->type, "unix") || s->kind == MASTER_COMMAND_OTHER)
                        continue;
                r = transport_build(q, c, defer_transports, s, &list);
                if (r < 0)
                        goto fail;
        }
        /* Postfix's built-in transports are there even when master.cf leaves them out. */
        static const char *const builtin[] = { "local", "smtp", "lmtp", "error", "discard", "retry" };
        for (size_t i = 0; i < ELEMENTSOF(builtin); i++) {
                if (transport_list_find(list, builtin[i]))
                        continue;
                _cleanup_free_ char *line = NULL;
                _cleanup_(master_config_freep) MasterConfig *m = NULL;
                if (asprintf(&line, "%s unix - n n - - %s\n", builtin[i],
                             streq(builtin[i], "retry") ? "error" : builtin[i]) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = master_config_parse(line, "built-in", &m);
                if (r >= 0)
                        r = transport_build(q, c, defer_transports, m->services, &list);
                if (r < 0)
                        goto fail;
        }
        *ret_master = TAKE_PTR(master);
        *ret = list;
        return 0;
fail:
        transport_list_free(list);
        return r;
}

int qmgr_transports_setup(Qmgr *q) {
        QmgrTransport *list;
        int r;

        r = transports_build(q, q->daemon->config, q->defer_transports, &q->master, &list);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return r;
        while (list) {
                QmgrTransport *t = list;
                list = t->next;
                transport_add(q, t);
        }
        return 0;
}

/* A reload: each transport takes the limits, options and defer_transports of the new files at its next
 * delivery, keeping its destinations, their concurrency windows and what is in flight; a new one is added.
 * One that master.cf no longer has stays (mail may still be queued for it), and one whose command changed
 * keeps the old until qmgr restarts. */
int qmgr_transports_reload(Qmgr *q, const Config *c, char **defer_transports) {
        MasterConfig *master = NULL;
        QmgrTransport *list = NULL;
        int r;

        r = transports_build(q, c, defer_transports, &master, &list);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return r;
        while (list) {
                QmgrTransport *n = list, *t;
                list = n->next;
                n->next = NULL;
                t = qmgr_transport_find(q, n->name);
                if (!t) {
                        transport_add(q, n);
                        continue;
                }
                if (t->kind != n->kind)
                        log_warning("%s: transport %s is now %s: qmgr keeps it %s until it is restarted.",
                                    master->path, t->name, master_command_to_string(n->kind),
                                    master_command_to_string(t->kind));
                else {
                        t->recipient_limit = n->recipient_limit;
                        t->concurrency_limit = n->concurrency_limit;
                        t->initial_concurrency = n->initial_concurrency;
                        t->failed_cohort_limit = n->failed_cohort_limit;
                        t->rate_delay_usec = n->rate_delay_usec;
                        t->process_limit = n->process_limit;
                        t->deferred = n->deferred;
                        char **options = t->options;
                        t->options = n->options;
                        n->options = options;
                }
                transport_free(n);
        }
        master_config_free(q->master);
        q->master = master;
        return 0;
}

QmgrTransport *qmgr_transport_find(Qmgr *q, const char *name) {
        for (QmgrTransport *t = q->transports; t; t = t->next)
                if (streq(t->name, name))
                        return t;
        return NULL;
}

QmgrDest *qmgr_dest_get(QmgrTransport *t, const char *name) {
        unsigned h = dest_hash(name);
        QmgrDest *d;

        for (d = t->dests[h]; d; d = d->hash_next)
                if (streq(d->name, name))
                        return d;
        d = calloc(1, sizeof(QmgrDest));
        if (!d)
                return NULL;
        d->name = strdup(name);
        if (!d->name)
                return dest_free(d);
        d->transport = t;
        d->window = t->initial_concurrency;
        d->hash_next = t->dests[h];
        t->dests[h] = d;
        return d;
}

/* A destination nothing refers to any more is forgotten, unless it is dead: that must last. */
static void dest_maybe_drop(QmgrDest *d) {
        QmgrTransport *t = d->transport;
        QmgrDest **p;

        if (d->busy > 0 || d->held > 0 || d->peers || d->dead || d->not_before > now_monotonic_usec())
                return;
        for (p = &t->dests[dest_hash(d->name)]; *p != d; p = &(*p)->hash_next)
                ;
        *p = d->hash_next;
        dest_free(d);
}

bool qmgr_dest_can_start(QmgrDest *d, uint64_t now) {
        QmgrTransport *t = d->transport;

        if (d->dead || now < d->not_before) {
                if (d->dead && now >= d->not_before) {
                        /* Its time out is over: try again, carefully. */
                        d->dead = false;
                        d->dead_reason = mfree(d->dead_reason);
                        d->failed_cohorts = 0;
                        d->window = t->initial_concurrency;
                } else {
                        /* Work that came after the pause began (a rate delay) needs the wake-up at its end. */
                        if (!d->dead)
                                qmgr_transport_arm_timer(t, d->not_before);
                        return false;
                }
        }
        if (t->rate_delay_usec > 0)
                return d->busy == 0;
        return d->busy < (unsigned) floor(d->window);
}

static int on_transport_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QmgrTransport *t = userdata;

        qmgr_schedule_run(t);
        return 0;
}

void qmgr_transport_arm_timer(QmgrTransport *t, uint64_t when) {
        uint64_t cur;
        int r;

        if (!t->timer) {
                r = sd_event_add_time(t->qmgr->daemon->event, &t->timer, CLOCK_MONOTONIC, when, USEC_PER_MSEC,
                                      on_transport_timer, t);
                if (r < 0)
                        log_error_errno(r, "Failed to start a timer for transport %s: %m", t->name);
                return;
        }
        if (sd_event_source_get_enabled(t->timer, NULL) > 0 && sd_event_source_get_time(t->timer, &cur) >= 0 &&
            cur <= when)
                return;
        (void) sd_event_source_set_time(t->timer, when);
        (void) sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

void qmgr_dest_feedback(QmgrDest *d, bool success, const char *reason) {
        QmgrTransport *t = d->transport;
        uint64_t now = now_monotonic_usec();

        /* Postfix's defaults: +1/window per success, -1/window per failure, so one cohort (a window's
         * worth of deliveries) moves the window by one. */
        if (success) {
                d->window = MIN(d->window + 1.0 / d->window, (double) t->concurrency_limit);
                d->failed_cohorts = 0;
                if (!t->last_done_dest || !streq(t->last_done_dest, d->name)) {
                        char *name = strdup(d->name);
                        if (name) {
                                free(t->last_done_dest);
                                t->last_done_dest = name;
                        }
                }
                t->last_done_usec = now;
        } else {
                d->failed_cohorts += 1.0 / d->window;
                d->window = MAX(d->window - 1.0 / d->window, 1.0);
                if (d->failed_cohorts >= t->failed_cohort_limit && !d->dead) {
                        d->dead = true;
                        free(d->dead_reason);
                        d->dead_reason = strdup(reason ?: "destination unavailable");
                        d->not_before = now + (uint64_t) t->qmgr->daemon->config->minimal_backoff_time *
                                                      USEC_PER_SEC;
                        log_info("transport %s, destination %s: dead for %" PRIi64 "s after %.0f failed cohort(s): %s",
                                 t->name, d->name, t->qmgr->daemon->config->minimal_backoff_time,
                                 d->failed_cohorts, strna(d->dead_reason));
                        qmgr_signal_dead(t->qmgr, t->name, d->name, d->dead_reason);
                        qmgr_schedule_defer_dest(d);
                }
        }
        if (t->rate_delay_usec > 0)
                d->not_before = MAX(d->not_before, now + t->rate_delay_usec);
        if (d->not_before > now && d->peers)
                qmgr_transport_arm_timer(t, d->not_before);
}

/* Whether mail for d follows a delivery there that ended well within the last second, as Postfix's qmgr
 * judges back-to-back delivery: then the agent is told that more comes (DELIVERY_OPTION_BACKLOG), and with
 * smtp_connection_cache_on_demand a single stream of mail reuses one connection instead of one each. */
bool qmgr_dest_back_to_back(QmgrDest *d) {
        QmgrTransport *t = d->transport;

        return t->last_done_dest && streq(t->last_done_dest, d->name) &&
               now_monotonic_usec() < t->last_done_usec + USEC_PER_SEC;
}

void qmgr_dest_release(QmgrDest *d) {
        dest_maybe_drop(d);
}
