/* local-pool.c: runs in local, the long-lived process: the per-user workers (local-worker.c) as local sees
 * them: which worker a mailbox delivery goes to, forking one when its identity has none, handing it requests
 * several at a time (LOCAL_WORKER_BATCH) with the queue file inside (or as a descriptor when it is large),
 * reading its answers in order, and closing the idle ones. */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "local.h"
#include "log.h"

typedef struct LocalPending {
        LocalPoolDone done;             /* NULL: forgotten */
        void *userdata;
        char *recipient;
        char *msg;
        size_t len;
        int queue_fd;                   /* -EBADF: the queue file is in msg */
        bool own_fd;                    /* queue_fd is a copy of this request's; else the caller's, until sent */
} LocalPending;

typedef struct LocalWorker {
        LocalPool *pool;
        LocalWorkerId id;
        pid_t pid;
        int fd;                         /* -EBADF once retired */
        sd_event_source *io, *child;
        LocalPending *pending;          /* in order; the first n_sent of them are sent */
        size_t n_pending;
        size_t n_sent;                  /* at most LOCAL_WORKER_BATCH */
        uint64_t last_used;
        unsigned generation;            /* the pool's at its fork: it runs the configuration of then */
} LocalWorker;

/* A delivery whose identity has no worker yet, while default_process_limit workers are all busy. */
typedef struct LocalBacklog {
        LocalWorkerId id;
        char *user;
        bool killed;                    /* its call's time is up: it fails without being started */
        LocalPending q;
} LocalBacklog;

struct LocalPool {
        Daemon *daemon;
        LocalWorker **workers;          /* live and retired (until they end) */
        size_t n_workers;
        LocalBacklog *backlog;          /* oldest first */
        size_t n_backlog;
        sd_event_source *sweep;
        sd_event_source *kick;          /* a worker became idle or ended: the backlog moves on */
        unsigned generation;            /* one more on each reload */
};

LocalWorkerId local_worker_id(const Config *c, const LocalPrivs *user) {
        /* The spool's mode, looked at again after a second rather than for every delivery. */
        static struct { const Config *config; uint64_t when; int r; mode_t mode; gid_t gid; } spool;
        LocalWorkerId id = { .uid = user->uid, .gid = user->gid, .sgid = user->gid };
        uint64_t now = now_monotonic_usec();

        if (!isempty(c->home_mailbox))
                return id;
        if (spool.config != c || now - spool.when >= USEC_PER_SEC) {
                struct stat st = {};

                spool.r = stat(c->mail_spool_directory, &st) < 0 ? -errno : 0;
                spool.mode = st.st_mode;
                spool.gid = st.st_gid;
                spool.config = c;
                spool.when = now;
        }
        if (spool.r < 0 || (spool.mode & S_IWOTH))
                return id;
        if (spool.mode & S_IWGRP)
                id.sgid = spool.gid;    /* dot-locks and new mailboxes with the spool's group */
        else
                id = (LocalWorkerId) {};        /* only root can: the root worker */
        return id;
}

static void pending_done(LocalPending *q) {
        free(q->recipient);
        free(q->msg);
        if (q->own_fd)
                safe_close(q->queue_fd);
}

/* A request that waits to be sent holds a copy of the queue file's descriptor of its own: its call may end
 * meanwhile. One sent at once needs none (the socket holds the file), which saves a dup and a close. */
static int pending_own(LocalPending *q) {
        if (q->own_fd || q->queue_fd < 0)
                return 0;
        q->queue_fd = fcntl(q->queue_fd, F_DUPFD_CLOEXEC, 3);
        if (q->queue_fd < 0)
                return -errno;
        q->own_fd = true;
        return 0;
}

/* Takes the first request off the line and tells its caller. */
static void worker_pop(LocalWorker *w, const MailboxResult *r) {
        LocalPending q = w->pending[0];

        memmove(w->pending, w->pending + 1, (w->n_pending - 1) * sizeof(LocalPending));
        w->n_pending--;
        if (w->n_sent > 0)
                w->n_sent--;    /* not when a worker that ended drops what it never got */
        w->last_used = now_monotonic_usec();
        if (w->n_pending == 0 && w->pool->n_backlog > 0)
                (void) sd_event_source_set_enabled(w->pool->kick, SD_EVENT_ONESHOT);
        if (q.done)
                q.done(q.recipient, r, q.userdata);
        pending_done(&q);
}

/* Closes the socket: the worker ends once it has answered what it holds. */
static void worker_retire(LocalWorker *w) {
        w->io = sd_event_source_disable_unref(w->io);
        w->fd = safe_close(w->fd);
}

/* Sends what waits, up to LOCAL_WORKER_BATCH unanswered: those the worker finds waiting when it is done with
 * the last ones it writes together. */
static int worker_send(LocalWorker *w) {
        LocalPending *q;
        union {
                struct cmsghdr cmsghdr;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof control };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        while (w->fd >= 0 && w->n_sent < w->n_pending && w->n_sent < LOCAL_WORKER_BATCH) {
                q = w->pending + w->n_sent;
                iov = (struct iovec) { .iov_base = q->msg, .iov_len = q->len };
                mh.msg_control = q->queue_fd >= 0 ? &control : NULL;
                mh.msg_controllen = q->queue_fd >= 0 ? sizeof control : 0;
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &q->queue_fd, sizeof(int));
                /* A few small messages: the buffer has room; should it not, the rest go with the next answer. */
                if (sendmsg(w->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                        return errno == EAGAIN && w->n_sent > 0 ? 0 : -errno;
                w->n_sent++;
        }
        return 0;
}

/* What the workers' requests become when it ended: each gets a temporary failure. */
static void worker_free(LocalWorker *w, const siginfo_t *si) {
        LocalPool *p = w->pool;
        MailboxResult r;

        /* Out of the list first: the callers told below may hand out new deliveries. */
        for (size_t k = 0; k < p->n_workers; k++)
                if (p->workers[k] == w) {
                        p->workers[k] = p->workers[--p->n_workers];
                        break;
                }
        worker_retire(w);
        w->child = sd_event_source_disable_unref(w->child);
        if (p->n_backlog > 0)
                (void) sd_event_source_set_enabled(p->kick, SD_EVENT_ONESHOT);
        local_child_failure(si, false, &r);
        while (w->n_pending > 0)
                worker_pop(w, &r);
        free(w->pending);
        free(w);
}

/* An answer has come (or the worker closed its end): the next request goes out. */
static int worker_read(LocalWorker *w, int flags) {
        char buf[MAILBOX_RESULT_WIRE_MAX + 1];
        MailboxResult r;
        ssize_t n;

        n = recv(w->fd, buf, sizeof buf, flags);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0 || w->n_sent == 0) {
                /* It ended or misbehaves: its end is reported by its child source. */
                (void) kill(w->pid, SIGKILL);
                worker_retire(w);
                return -EPIPE;
        }
        if (mailbox_result_parse(buf, (size_t) n, &r) < 0)
                mailbox_result_set(&r, "4.3.0", "malformed answer from a delivery process");
        worker_pop(w, &r);
        if (worker_send(w) < 0) {
                (void) kill(w->pid, SIGKILL);
                worker_retire(w);
        }
        return 1;
}

static int on_worker_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) worker_read(userdata, MSG_DONTWAIT);
        return 0;
}

static int on_worker_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        worker_free(userdata, si);
        return 0;
}

static int worker_start(LocalPool *p, const LocalWorkerId *id, const char *user, LocalWorker **ret) {
        _cleanup_free_ LocalWorker *w = NULL;
        int sv[2], r;

        w = calloc(1, sizeof(LocalWorker));
        LocalWorker **l = realloc(p->workers, (p->n_workers + 1) * sizeof(LocalWorker *));
        if (!w || !l)
                return -ENOMEM;
        p->workers = l;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        w->pid = fork();
        if (w->pid < 0) {
                r = -errno;
                safe_close(sv[0]);
                safe_close(sv[1]);
                return r;
        }
        if (w->pid == 0)
                local_worker_main(sv[1], p->daemon->config, id, user);
        safe_close(sv[1]);
        *w = (LocalWorker) { .pool = p, .id = *id, .pid = w->pid, .fd = sv[0], .last_used = now_monotonic_usec(),
                             .generation = p->generation };
        r = sd_event_add_child(p->daemon->event, &w->child, w->pid, WEXITED, on_worker_exit, w);
        if (r >= 0)
                r = sd_event_add_io(p->daemon->event, &w->io, w->fd, EPOLLIN, on_worker_io, w);
        if (r < 0) {
                (void) kill(w->pid, SIGKILL);
                (void) waitpid(w->pid, NULL, 0);
                w->child = sd_event_source_disable_unref(w->child);
                worker_retire(w);
                return r;
        }
        p->workers[p->n_workers++] = w;
        *ret = TAKE_PTR(w);
        return 0;
}

/* At most default_process_limit workers: the idle one used longest ago makes way for a new one. Whether
 * there is room for one more. */
static bool pool_make_room(LocalPool *p) {
        LocalWorker *oldest = NULL;
        size_t live = 0;

        for (size_t k = 0; k < p->n_workers; k++) {
                LocalWorker *w = p->workers[k];
                if (w->fd < 0)
                        continue;
                live++;
                if (w->n_pending == 0 && (!oldest || w->last_used < oldest->last_used))
                        oldest = w;
        }
        if (live < (size_t) p->daemon->config->default_process_limit)
                return true;
        if (!oldest)
                return false;
        worker_retire(oldest);
        return true;
}

/* The live worker of id with the fewest requests, and how many id has. */
static LocalWorker *pool_find_counted(LocalPool *p, const LocalWorkerId *id, size_t *ret_n) {
        LocalWorker *best = NULL;
        size_t n = 0;

        for (size_t k = 0; k < p->n_workers; k++) {
                LocalWorker *x = p->workers[k];
                if (x->fd < 0 || x->id.uid != id->uid || x->id.gid != id->gid || x->id.sgid != id->sgid)
                        continue;
                n++;
                if (!best || x->n_pending < best->n_pending)
                        best = x;
        }
        if (ret_n)
                *ret_n = n;
        return best;
}

static LocalWorker *pool_find(LocalPool *p, const LocalWorkerId *id) {
        return pool_find_counted(p, id, NULL);
}

/* A Maildir takes no lock: while its user's worker is busy, a second one may write beside it, as two of
 * Postfix's local processes do (local_destination_concurrency_limit is 2 by default), and their syncs go to
 * disk together. An mbox keeps one worker, which writes what waits under one lock. */
#define LOCAL_MAILDIR_WORKERS 2U

static bool pool_wants_another(LocalPool *p, const LocalWorker *w, size_t n) {
        return w->n_pending > 0 && n < LOCAL_MAILDIR_WORKERS && local_home_maildir(p->daemon->config) &&
               p->n_backlog == 0;
}

/* Puts q in line at w and sends it if w is idle; on success q is w's, whatever happens to w. */
static int worker_queue(LocalWorker *w, LocalPending *q) {
        LocalPending *l = realloc(w->pending, (w->n_pending + 1) * sizeof(LocalPending));
        if (!l)
                return -ENOMEM;
        w->pending = l;
        w->pending[w->n_pending++] = *q;
        if (worker_send(w) < 0) {
                /* Its requests fail when its end is seen. */
                (void) kill(w->pid, SIGKILL);
                worker_retire(w);
        }
        if (w->n_sent < w->n_pending && pending_own(w->pending + w->n_pending - 1) < 0) {
                w->n_pending--;         /* never sent: the caller is told by the failure */
                return -EMFILE;
        }
        return 0;
}

/* Takes backlog entry k out of the line, into ret. */
static bool backlog_take(LocalPool *p, size_t k, LocalBacklog *ret) {
        if (k >= p->n_backlog)
                return false;
        *ret = p->backlog[k];
        memmove(p->backlog + k, p->backlog + k + 1, (p->n_backlog - k - 1) * sizeof(LocalBacklog));
        p->n_backlog--;
        return true;
}

static void backlog_fail(LocalBacklog *b, const char *text) {
        MailboxResult r;

        mailbox_result_set(&r, "4.3.0", "%s", text);
        if (b->q.done)
                b->q.done(b->q.recipient, &r, b->q.userdata);
        pending_done(&b->q);
        free(b->user);
}

/* Starts what waits in the backlog while there is room. Callers told here may add to it. */
static int on_kick(sd_event_source *s, void *userdata) {
        LocalPool *p = userdata;

        for (size_t k = 0; k < p->n_backlog;) {
                LocalBacklog b;
                LocalWorker *w = pool_find(p, &p->backlog[k].id);
                int r = 0;

                if (p->backlog[k].killed || !p->backlog[k].q.done) {
                        (void) backlog_take(p, k, &b);
                        backlog_fail(&b, "delivery time limit exceeded");
                        continue;
                }
                if (!w && !pool_make_room(p)) {
                        k++;
                        continue;
                }
                (void) backlog_take(p, k, &b);
                if (!w)
                        r = worker_start(p, &b.id, b.user, &w);
                if (r >= 0)
                        r = worker_queue(w, &b.q);
                if (r >= 0)
                        free(b.user);
                else
                        backlog_fail(&b, "cannot start a delivery process");
                k = 0;  /* callers told above may have changed the line */
        }
        return 0;
}

static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
        LocalPool *p = userdata;
        uint64_t now = now_monotonic_usec();

        for (size_t k = 0; k < p->n_workers; k++) {
                LocalWorker *w = p->workers[k];
                if (w->fd >= 0 && w->n_pending == 0 &&
                    (now - w->last_used >= LOCAL_WORKER_IDLE_USEC || w->generation != p->generation))
                        worker_retire(w);
        }
        (void) sd_event_source_set_time_relative(s, LOCAL_WORKER_IDLE_USEC / 4);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

void local_pool_reload(LocalPool *p) {
        p->generation++;
        for (size_t k = 0; k < p->n_workers; k++) {
                LocalWorker *w = p->workers[k];
                if (w->fd >= 0 && w->n_pending == 0)
                        worker_retire(w);
        }
        /* The busy ones at the next sweep once idle, sooner than LOCAL_WORKER_IDLE_USEC. */
        (void) sd_event_source_set_time_relative(p->sweep, USEC_PER_SEC);
        (void) sd_event_source_set_enabled(p->sweep, SD_EVENT_ON);
}

int local_pool_new(Daemon *d, LocalPool **ret) {
        _cleanup_free_ LocalPool *p = calloc(1, sizeof(LocalPool));
        int r;

        if (!p)
                return -ENOMEM;
        p->daemon = d;
        r = sd_event_add_time_relative(d->event, &p->sweep, CLOCK_MONOTONIC, LOCAL_WORKER_IDLE_USEC / 4, 0,
                                       on_sweep, p);
        if (r >= 0)
                r = sd_event_add_defer(d->event, &p->kick, on_kick, p);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->kick, SD_EVENT_OFF);
        if (r < 0) {
                sd_event_source_disable_unref(p->sweep);
                sd_event_source_disable_unref(p->kick);
                return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

LocalPool *local_pool_free(LocalPool *p) {
        if (!p)
                return NULL;
        /* Every worker ends when its socket closes; what it writes now it finishes first. */
        for (size_t k = 0; k < p->n_workers; k++)
                worker_retire(p->workers[k]);
        while (p->n_workers > 0) {
                siginfo_t si = {};
                LocalWorker *w = p->workers[0];
                (void) waitid(P_PID, w->pid, &si, WEXITED);
                worker_free(w, &si);
        }
        for (size_t k = 0; k < p->n_backlog; k++) {
                pending_done(&p->backlog[k].q);
                free(p->backlog[k].user);
        }
        free(p->backlog);
        sd_event_source_disable_unref(p->sweep);
        sd_event_source_disable_unref(p->kick);
        free(p->workers);
        return mfree(p);
}

/* The request for m into q; the queue file goes inside when local read it whole and it is small, else its
 * descriptor goes with it. */
static int request_build(const MailboxMessage *m, const LocalPrivs *user, LocalPending *q) {
        const char *f[] = { user->user, strempty(user->home), m->sender, m->recipient, strempty(m->original) };
        const QueueEnvelope *e = m->envelope;
        const bool inside = e->file && e->file_size <= LOCAL_WORK_FILE_MAX;
        const LocalWorkHeader h = { .uid = user->uid, .gid = user->gid,
                                    .file_size = inside ? (uint32_t) e->file_size : 0 };
        size_t len = sizeof h, off = sizeof h;
        char *buf;

        for (size_t k = 0; k < ELEMENTSOF(f); k++)
                len += strlen(f[k]) + 1;
        if (len > LOCAL_WORK_MAX)
                return -E2BIG;
        buf = malloc(len + h.file_size);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, &h, sizeof h);
        for (size_t k = 0; k < ELEMENTSOF(f); k++) {
                memcpy(buf + off, f[k], strlen(f[k]) + 1);
                off += strlen(f[k]) + 1;
        }
        if (inside)
                memcpy(buf + off, e->file, h.file_size);
        q->msg = buf;
        q->len = len + h.file_size;
        q->queue_fd = inside ? -EBADF : m->queue_fd;
        return 0;
}

int local_pool_deliver(LocalPool *p, const MailboxMessage *m, const LocalPrivs *user, LocalPoolDone done,
                       void *userdata) {
        const LocalWorkerId id = local_worker_id(p->daemon->config, user);
        LocalPending q = { .done = done, .userdata = userdata, .queue_fd = -EBADF };
        size_t n_workers;
        LocalWorker *w = pool_find_counted(p, &id, &n_workers), *second;
        int r;

        r = request_build(m, user, &q);
        if (r < 0)
                return r;
        q.recipient = strdup(m->recipient);
        if (!q.recipient) {
                pending_done(&q);
                return -ENOMEM;
        }
        if (!w && (p->n_backlog > 0 || !pool_make_room(p))) {
                /* Every worker is busy: it waits for one to be idle, after those that wait already. */
                LocalBacklog *l = realloc(p->backlog, (p->n_backlog + 1) * sizeof(LocalBacklog));
                char *name = strdup(id.uid == 0 ? "root" : user->user);
                if (l)
                        p->backlog = l;
                r = !l || !name ? -ENOMEM : pending_own(&q);
                if (r < 0) {
                        free(name);
                        pending_done(&q);
                        return r;
                }
                p->backlog[p->n_backlog++] = (LocalBacklog) { .id = id, .user = name, .q = q };
                return 0;
        }
        if (!w) {
                r = worker_start(p, &id, id.uid == 0 ? "root" : user->user, &w);
                if (r < 0) {
                        pending_done(&q);
                        return r;
                }
        } else if (pool_wants_another(p, w, n_workers) && pool_make_room(p) &&
                   worker_start(p, &id, id.uid == 0 ? "root" : user->user, &second) >= 0)
                w = second;
        r = worker_queue(w, &q);
        if (r < 0)
                pending_done(&q);
        return r;
}

static bool worker_holds(const LocalWorker *w, void *userdata) {
        for (size_t k = 0; k < w->n_pending; k++)
                if (w->pending[k].userdata == userdata && w->pending[k].done)
                        return true;
        return false;
}

void local_pool_drain(LocalPool *p, void *userdata) {
        /* Not started yet: they wait for the next start of local. */
        for (size_t k = 0; k < p->n_backlog;) {
                LocalBacklog b;

                if (p->backlog[k].q.userdata != userdata) {
                        k++;
                        continue;
                }
                (void) backlog_take(p, k, &b);
                backlog_fail(&b, "local delivery agent is stopping");
        }
        for (size_t k = 0; k < p->n_workers;) {
                LocalWorker *w = p->workers[k];

                if (!worker_holds(w, userdata)) {
                        k++;
                        continue;
                }
                if (w->fd < 0 || worker_send(w) < 0 || worker_read(w, 0) < 0) {
                        siginfo_t si = {};
                        (void) kill(w->pid, SIGKILL);
                        (void) waitid(P_PID, w->pid, &si, WEXITED);
                        worker_free(w, &si);
                        k = 0;  /* the list changed */
                }
        }
}

void local_pool_kill(LocalPool *p, void *userdata) {
        for (size_t k = 0; k < p->n_backlog; k++)
                if (p->backlog[k].q.userdata == userdata) {
                        p->backlog[k].killed = true;
                        (void) sd_event_source_set_enabled(p->kick, SD_EVENT_ONESHOT);
                }
        for (size_t k = 0; k < p->n_workers; k++)
                if (worker_holds(p->workers[k], userdata)) {
                        (void) kill(p->workers[k]->pid, SIGKILL);
                        worker_retire(p->workers[k]);
                }
}

void local_pool_forget(LocalPool *p, void *userdata) {
        for (size_t k = 0; k < p->n_backlog; k++)
                if (p->backlog[k].q.userdata == userdata)
                        p->backlog[k].q.done = NULL;
        for (size_t k = 0; k < p->n_workers; k++)
                for (size_t j = 0; j < p->workers[k]->n_pending; j++)
                        if (p->workers[k]->pending[j].userdata == userdata)
                                p->workers[k]->pending[j].done = NULL;
}
