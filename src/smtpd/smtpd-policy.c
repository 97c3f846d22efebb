/* smtpd-policy.c: the smtpd process's client of policy services (check_policy_service): one request at a
 * time on a connection, connections kept open and reused by every session of the process, all of it on
 * sd-event so that no session waits for another's policy server.
 *
 * Each attempt (connect, send, reply) has smtpd_policy_service_timeout; a failed one is tried again on a
 * new connection after smtpd_policy_service_retry_delay, up to smtpd_policy_service_try_limit attempts,
 * as Postfix does; then the caller applies smtpd_policy_service_default_action. An idle connection is
 * closed after smtpd_policy_service_max_idle or when the server closes it; one older than
 * smtpd_policy_service_max_ttl, or that has served smtpd_policy_service_request_limit requests, is not
 * reused. A reply is bounded (SMTPD_POLICY_REPLY_MAX) and read strictly (smtpd-policy-protocol.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "macro.h"
#include "smtpd-policy.h"
#include "string-util.h"

typedef struct PolicyConn PolicyConn;

struct SmtpdPolicyRequest {
        SmtpdPolicyPool *pool;
        SmtpdPolicyEndpoint endpoint;
        char *text;
        size_t len;
        unsigned tries;
        PolicyConn *conn;               /* the connection it is on; NULL while waiting to retry */
        sd_event_source *timer;         /* the retry delay, or the deferred callback of a failure */
        int error;                      /* of the last attempt */
        SmtpdPolicyCallback callback;
        void *userdata;
};

struct PolicyConn {
        SmtpdPolicyPool *pool;
        SmtpdPolicyEndpoint endpoint;
        PolicyConn *prev, *next;        /* in pool->conns */
        int fd;
        bool connected;
        sd_event_source *io, *timer;    /* timer: the attempt's timeout, or max_idle while idle */
        uint64_t created_usec;
        unsigned n_requests;
        SmtpdPolicyRequest *req;        /* NULL: idle */
        size_t out_off;
        char in[SMTPD_POLICY_REPLY_MAX];
        size_t in_len;
};

struct SmtpdPolicyPool {
        sd_event *event;
        SmtpdPolicySettings settings;
        PolicyConn *conns;
};

static int request_failed(SmtpdPolicyRequest *r, int error, bool stale, bool report);

static PolicyConn *conn_free(PolicyConn *c) {
        if (!c)
                return NULL;
        if (c->prev)
                c->prev->next = c->next;
        else if (c->pool->conns == c)
                c->pool->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c);
        return NULL;
}

static void request_free(SmtpdPolicyRequest *r) {
        sd_event_source_disable_unref(r->timer);
        free(r->text);
        free(r);
}

/* The attempt on this connection failed: the connection goes, the request may be tried again. */
static void conn_fail(PolicyConn *c, int error, const char *what) {
        SmtpdPolicyRequest *r = c->req;
        /* A reused connection the server has closed meanwhile: no fault of the service. */
        bool stale = c->n_requests > 0 && error != -ETIMEDOUT && error != -EBADMSG && error != -E2BIG;

        if (!stale)
                log_warning_errno(error, "Policy service %s: %s: %m", c->endpoint.text, what);
        c->req = NULL;
        conn_free(c);
        if (r) {
                r->conn = NULL;
                (void) request_failed(r, error, stale, true);
        }
}

static int conn_set_timer(PolicyConn *c, uint64_t usec) {
        int r;

        r = sd_event_source_set_time(c->timer, now_monotonic_usec() + usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        return r;
}

static void conn_done(PolicyConn *c, const char *action, bool reusable) {
        SmtpdPolicyPool *pool = c->pool;
        SmtpdPolicyRequest *r = c->req;

        c->req = NULL;
        c->n_requests++;
        if (!reusable || (pool->settings.request_limit > 0 && c->n_requests >= pool->settings.request_limit) ||
            now_monotonic_usec() - c->created_usec >= pool->settings.max_ttl_usec ||
            sd_event_source_set_io_events(c->io, EPOLLIN) < 0 || conn_set_timer(c, pool->settings.max_idle_usec) < 0)
                conn_free(c);
        r->callback(0, action, r->userdata);
        request_free(r);
}

static void conn_read(PolicyConn *c) {
        char action[SMTPD_POLICY_ACTION_MAX];
        size_t consumed;
        ssize_t n;
        int k;

        n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                if (!c->req) {          /* the server closed an idle connection: no harm */
                        conn_free(c);
                        return;
                }
                conn_fail(c, n < 0 ? -errno : -ECONNRESET, n < 0 ? "read failed" : "connection closed before the reply");
                return;
        }
        if (!c->req) {                  /* nothing was asked: the connection is out of step */
                log_warning("Policy service %s: data on an idle connection, closing it.", c->endpoint.text);
                conn_free(c);
                return;
        }
        c->in_len += (size_t) n;
        k = smtpd_policy_reply_parse(c->in, c->in_len, action, &consumed);
        if (k == 0)
                return;
        if (k < 0) {
                _cleanup_free_ char *e = log_escape(c->in, MIN(c->in_len, (size_t) 200));
                log_warning("Policy service %s: malformed reply \"%s\".", c->endpoint.text, strna(e));
                conn_fail(c, k, "protocol error");
                return;
        }
        /* Anything after the reply was never asked for: take the answer, not the connection. */
        conn_done(c, action, consumed == c->in_len);
}

static void conn_write(PolicyConn *c) {
        SmtpdPolicyRequest *r = c->req;
        ssize_t n;

        if (!c->connected) {
                int err = 0;
                socklen_t len = sizeof err;

                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err != 0) {
                        conn_fail(c, -err, "cannot connect");
                        return;
                }
                c->connected = true;
        }
        n = send(c->fd, r->text + c->out_off, r->len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n < 0) {
                conn_fail(c, -errno, "cannot send the request");
                return;
        }
        c->out_off += (size_t) n;
        if (c->out_off == r->len && sd_event_source_set_io_events(c->io, EPOLLIN) < 0)
                conn_fail(c, -ENOMEM, "cannot wait for the reply");
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        PolicyConn *c = userdata;

        if (c->req && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && c->out_off < c->req->len) {
                conn_write(c);
                return 0;
        }
        if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(c);
        return 0;
}

static int on_conn_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        PolicyConn *c = userdata;

        if (c->req)
                conn_fail(c, -ETIMEDOUT, "timeout");
        else
                conn_free(c);           /* smtpd_policy_service_max_idle */
        return 0;
}

static int conn_new(SmtpdPolicyPool *pool, const SmtpdPolicyEndpoint *e, PolicyConn **ret) {
        PolicyConn *c;
        int r;

        c = calloc(1, sizeof(PolicyConn));
        if (!c)
                return -ENOMEM;
        c->pool = pool;
        c->endpoint = *e;
        c->created_usec = now_monotonic_usec();
        c->next = pool->conns;
        if (c->next)
                c->next->prev = c;
        pool->conns = c;
        c->fd = socket(e->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                r = -errno;
                conn_free(c);
                return r;
        }
        if (connect(c->fd, (const struct sockaddr *) &e->addr, e->addr_len) < 0 && errno != EINPROGRESS) {
                r = -errno;
                conn_free(c);
                return r;
        }
        r = sd_event_add_io(pool->event, &c->io, c->fd, EPOLLOUT, on_conn_io, c);
        if (r >= 0)
                r = sd_event_add_time(pool->event, &c->timer, CLOCK_MONOTONIC, 0, USEC_PER_SEC / 10, on_conn_timer, c);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

static bool endpoint_equal(const SmtpdPolicyEndpoint *a, const SmtpdPolicyEndpoint *b) {
        return a->family == b->family && a->addr_len == b->addr_len && memcmp(&a->addr, &b->addr, a->addr_len) == 0;
}

/* One attempt: an idle connection to the endpoint that may still be used, or a new one. */
static int request_start(SmtpdPolicyRequest *r) {
        SmtpdPolicyPool *pool = r->pool;
        PolicyConn *c = NULL;
        int k;

        r->tries++;
        for (PolicyConn *i = pool->conns, *next; i; i = next) {
                next = i->next;
                if (i->req || !endpoint_equal(&i->endpoint, &r->endpoint))
                        continue;
                if (now_monotonic_usec() - i->created_usec >= pool->settings.max_ttl_usec) {
                        conn_free(i);
                        continue;
                }
                c = i;
                break;
        }
        if (!c) {
                k = conn_new(pool, &r->endpoint, &c);
                if (k < 0)
                        return k;
        }
        r->conn = c;
        c->req = r;
        c->out_off = 0;
        c->in_len = 0;
        k = sd_event_source_set_io_events(c->io, EPOLLOUT);
        if (k >= 0)
                k = conn_set_timer(c, pool->settings.timeout_usec);
        if (k < 0) {
                c->req = NULL;
                r->conn = NULL;
                conn_free(c);
                return k;
        }
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        SmtpdPolicyRequest *r = userdata;
        int k;

        if (r->tries >= r->pool->settings.try_limit) {      /* out of attempts: the caller's default */
                SmtpdPolicyCallback cb = r->callback;
                void *userdata_cb = r->userdata;
                int error = r->error;

                request_free(r);
                cb(error, NULL, userdata_cb);
                return 0;
        }
        k = request_start(r);
        if (k < 0) {
                log_warning_errno(k, "Policy service %s: cannot connect: %m", r->endpoint.text);
                (void) request_failed(r, k, false, true);
        }
        return 0;
}

/* After a failed attempt: the next one after the retry delay (at once, and not counted, when the attempt
 * was on a stale connection), or the failure reported (from a timer, so that the callback never runs
 * within smtpd_policy_query()). Without a timer, with report the callback runs now; without, the error is
 * returned and the request left to the caller. */
static int request_failed(SmtpdPolicyRequest *r, int error, bool stale, bool report) {
        SmtpdPolicySettings *s = &r->pool->settings;
        uint64_t delay;
        int k;

        if (stale)
                r->tries--;
        delay = stale || r->tries >= s->try_limit ? 0 : s->retry_delay_usec;

        r->error = error;
        if (r->timer) {
                k = sd_event_source_set_time(r->timer, now_monotonic_usec() + delay);
                if (k >= 0)
                        k = sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
        } else
                k = sd_event_add_time(r->pool->event, &r->timer, CLOCK_MONOTONIC, now_monotonic_usec() + delay, 0,
                                      on_retry, r);
        if (k < 0 && report) {
                /* Without a timer there is no later: the caller hears it now. */
                log_warning_errno(k, "Policy service %s: cannot arm a timer: %m", r->endpoint.text);
                SmtpdPolicyCallback cb = r->callback;
                void *userdata = r->userdata;
                request_free(r);
                cb(error, NULL, userdata);
        }
        return k;
}

int smtpd_policy_query(SmtpdPolicyPool *p, const SmtpdPolicyEndpoint *endpoint, const char *request, size_t len,
                       SmtpdPolicyCallback callback, void *userdata, SmtpdPolicyRequest **ret) {
        SmtpdPolicyRequest *r;
        int k;

        r = calloc(1, sizeof(SmtpdPolicyRequest));
        if (!r)
                return -ENOMEM;
        r->pool = p;
        r->endpoint = *endpoint;
        r->callback = callback;
        r->userdata = userdata;
        r->len = len;
        r->text = malloc(len);
        if (!r->text) {
                free(r);
                return -ENOMEM;
        }
        memcpy(r->text, request, len);
        k = request_start(r);
        if (k < 0 && k != -ENOMEM) {
                log_warning_errno(k, "Policy service %s: cannot connect: %m", endpoint->text);
                k = request_failed(r, k, false, false);
        }
        if (k < 0) {
                request_free(r);
                return k;
        }
        *ret = r;
        return 0;
}

SmtpdPolicyRequest *smtpd_policy_request_cancel(SmtpdPolicyRequest *r) {
        if (!r)
                return NULL;
        if (r->conn) {
                r->conn->req = NULL;
                conn_free(r->conn);
        }
        request_free(r);
        return NULL;
}

int smtpd_policy_pool_new(sd_event *event, const SmtpdPolicySettings *settings, SmtpdPolicyPool **ret) {
        SmtpdPolicyPool *p;

        p = calloc(1, sizeof(SmtpdPolicyPool));
        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(event);
        p->settings = *settings;
        if (p->settings.try_limit == 0)
                p->settings.try_limit = 1;
        *ret = p;
        return 0;
}

SmtpdPolicyPool *smtpd_policy_pool_free(SmtpdPolicyPool *p) {
        if (!p)
                return NULL;
        /* Requests belong to the sessions, which are freed first. */
        while (p->conns) {
                p->conns->req = NULL;
                conn_free(p->conns);
        }
        sd_event_unref(p->event);
        free(p);
        return NULL;
}
