/* qmgr-hosts.c: the server addresses the smtp and lmtp agents skip for now (their host failure cache,
 * smtp_host_failure_cache_time), as each Deliver answer reports them for its next hop; listed on the bus by
 * ListHostFailures. Run by qmgr. The agent's cache is the truth: this is its last report, in memory only. */
#include <inttypes.h>

#include "log.h"
#include "qmgr.h"
#include "queue-bus.h"

/* Most failing addresses kept, and the longest server and reason text taken from an agent. */
#define QMGR_HOST_FAILURES_MAX 1024U
#define QMGR_HOST_TEXT_MAX 1024U

struct QmgrHostFailure {
        char *transport;
        char *destination;
        char *server;           /* "mx.example.org[192.0.2.1]:25" */
        char *reason;
        uint64_t until_usec;    /* CLOCK_REALTIME */
};

static void failure_done(QmgrHostFailure *f) {
        free(f->transport);
        free(f->destination);
        free(f->server);
        free(f->reason);
}

/* Drops the entries of transport and destination (NULL: none), and those that have expired. */
static void prune(Qmgr *q, const char *transport, const char *destination) {
        uint64_t now = now_realtime_usec();
        size_t k = 0;

        for (size_t i = 0; i < q->n_host_failures; i++) {
                QmgrHostFailure *f = q->host_failures + i;
                if (f->until_usec <= now ||
                    (transport && streq(f->transport, transport) && streq(f->destination, destination))) {
                        failure_done(f);
                        continue;
                }
                q->host_failures[k++] = *f;
        }
        q->n_host_failures = k;
}

static int add(Qmgr *q, const char *transport, const char *destination, const char *server, const char *reason,
               uint64_t until_usec) {
        QmgrHostFailure f = {};

        if (q->n_host_failures >= QMGR_HOST_FAILURES_MAX)
                return 0;
        if (q->n_host_failures % 16 == 0) {
                QmgrHostFailure *n = reallocarray(q->host_failures, q->n_host_failures + 16, sizeof(QmgrHostFailure));
                if (!n)
                        return -ENOMEM;
                q->host_failures = n;
        }
        f.transport = strdup(transport);
        f.destination = strdup(destination);
        f.server = strdup(server);
        f.reason = strdup(reason);
        f.until_usec = until_usec;
        if (!f.transport || !f.destination || !f.server || !f.reason) {
                failure_done(&f);
                return -ENOMEM;
        }
        q->host_failures[q->n_host_failures++] = f;
        return 0;
}

int qmgr_hosts_read(Qmgr *q, const char *transport, const char *destination, sd_bus_message *reply) {
        uint64_t now = now_realtime_usec();
        const char *server, *reason;
        uint64_t until;
        bool any = false;
        char type;
        int r;

        /* An agent of an older build answers with the results only. */
        r = sd_bus_message_peek_type(reply, &type, NULL);
        if (r <= 0 || type != 'a')
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sst)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(sst)", &server, &reason, &until)) > 0) {
                if (!any) {
                        /* The report is the whole next hop: what it does not name failing is not. */
                        prune(q, transport, destination);
                        any = true;
                }
                if (until <= now)
                        continue;
                if (strlen(server) > QMGR_HOST_TEXT_MAX || strlen(reason) > QMGR_HOST_TEXT_MAX)
                        return -EBADMSG;
                r = add(q, transport, destination, server, reason, until);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

int qmgr_hosts_append(Qmgr *q, sd_bus_message *reply) {
        int r;

        prune(q, NULL, NULL);
        r = sd_bus_message_open_container(reply, 'a', "(sssst)");
        for (size_t i = 0; r >= 0 && i < q->n_host_failures; i++) {
                const QmgrHostFailure *f = q->host_failures + i;
                r = sd_bus_message_append(reply, "(sssst)", f->transport, f->destination, f->server, f->reason,
                                          f->until_usec);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

void qmgr_hosts_free(Qmgr *q) {
        for (size_t i = 0; i < q->n_host_failures; i++)
                failure_done(q->host_failures + i);
        q->host_failures = mfree(q->host_failures);
        q->n_host_failures = 0;
}
