/* cleanup-sync.c: the blocking tail of a submission (fsync of the queue file, its no-replace rename into
 * incoming/, fsync of incoming/) on a few worker threads, so that the event loop reads other jobs meanwhile.
 * Runs in the cleanup process. The workers make system calls only and store their errno; no logging, no
 * sd-bus: every answer is given on the loop, woken through an eventfd. */
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "cleanup.h"
#include "log.h"

struct CleanupSync {
        sd_event_source *source;        /* the eventfd: items are done */
        int event_fd;
        pthread_mutex_t lock;
        pthread_cond_t wake;            /* items to do, or stop */
        CleanupSyncItem *todo, **todo_tail;
        CleanupSyncItem *done;          /* in any order */
        pthread_t *threads;
        unsigned n_threads;
        bool stop;
};

/* What an item asks for, in the calling thread. */
static void item_run(CleanupSyncItem *item) {
        int r = 0;

        if (item->fd < 0) {
                if (fsync(item->dir_fd) < 0)
                        r = -errno;
                item->error = r;
                return;
        }
        if (fsync(item->fd) < 0)
                r = -errno;
        /* Never over another message's file: a taken name gets a fresh ID. */
        if (r >= 0) {
                r = queue_id_rename(item->dir_fd, item->tmp, item->dir_fd, item->id);
                if (r > 0)
                        item->collided = true;
        }
        if (r < 0)
                (void) unlinkat(item->dir_fd, item->tmp, 0);
        item->fd = safe_close(item->fd);
        item->error = MIN(r, 0);
}

static void *worker(void *userdata) {
        CleanupSync *s = userdata;
        uint64_t one = 1;

        (void) pthread_mutex_lock(&s->lock);
        for (;;) {
                CleanupSyncItem *item = s->todo;
                if (!item) {
                        if (s->stop)
                                break;
                        (void) pthread_cond_wait(&s->wake, &s->lock);
                        continue;
                }
                s->todo = item->next;
                if (!s->todo)
                        s->todo_tail = &s->todo;
                (void) pthread_mutex_unlock(&s->lock);

                item_run(item);

                (void) pthread_mutex_lock(&s->lock);
                item->next = s->done;
                s->done = item;
                /* The counter only grows, and the loop reads it before it takes the list: no wake-up is
                 * lost. A full counter (never, at 2^64-2) would fail with EAGAIN, and it is read anyway. */
                (void) write(s->event_fd, &one, sizeof one);
        }
        (void) pthread_mutex_unlock(&s->lock);
        return NULL;
}

/* Answers every item that is done, on the loop. */
static void sync_dispatch(CleanupSync *s) {
        CleanupSyncItem *list;

        (void) pthread_mutex_lock(&s->lock);
        list = s->done;
        s->done = NULL;
        (void) pthread_mutex_unlock(&s->lock);
        while (list) {
                CleanupSyncItem *item = list;
                list = item->next;
                item->next = NULL;
                item->done(item, item->userdata);
        }
}

static int on_event(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        uint64_t n;

        if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN && errno != EINTR)
                log_warning_errno(errno, "Failed to read the sync threads' eventfd, ignoring: %m");
        sync_dispatch(userdata);
        return 0;
}

void cleanup_sync_submit(CleanupSync *s, CleanupSyncItem *item) {
        item->next = NULL;
        item->error = 0;
        item->collided = false;
        if (!s || s->n_threads == 0 || s->stop) {
                item_run(item);
                item->done(item, item->userdata);
                return;
        }
        (void) pthread_mutex_lock(&s->lock);
        *s->todo_tail = item;
        s->todo_tail = &item->next;
        (void) pthread_cond_signal(&s->wake);
        (void) pthread_mutex_unlock(&s->lock);
}

int cleanup_sync_new(sd_event *e, unsigned n_threads, CleanupSync **ret) {
        CleanupSync *s;
        int r;

        s = calloc(1, sizeof(CleanupSync));
        if (!s)
                return -ENOMEM;
        s->event_fd = -EBADF;
        s->todo_tail = &s->todo;
        (void) pthread_mutex_init(&s->lock, NULL);
        (void) pthread_cond_init(&s->wake, NULL);
        *ret = s;               /* cleanup_sync_free() takes it from here on, in any state */
        if (n_threads == 0)
                return 0;

        s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->event_fd < 0)
                return -errno;
        r = sd_event_add_io(e, &s->source, s->event_fd, EPOLLIN, on_event, s);
        if (r < 0)
                return r;
        s->threads = calloc(n_threads, sizeof(pthread_t));
        if (!s->threads)
                return -ENOMEM;
        /* The workers take no signal: they stay with the loop's signal sources. */
        sigset_t all, old;
        (void) sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &old);
        for (r = 0; r >= 0 && s->n_threads < n_threads; s->n_threads++) {
                r = -pthread_create(s->threads + s->n_threads, NULL, worker, s);
                if (r < 0)
                        break;
        }
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        return MIN(r, 0);
}

CleanupSync *cleanup_sync_free(CleanupSync *s) {
        if (!s)
                return NULL;
        /* The workers finish what is queued and exit; what the answers queue then runs at once, here. */
        (void) pthread_mutex_lock(&s->lock);
        s->stop = true;
        (void) pthread_cond_broadcast(&s->wake);
        (void) pthread_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < s->n_threads; i++)
                (void) pthread_join(s->threads[i], NULL);
        sync_dispatch(s);
        sd_event_source_disable_unref(s->source);
        safe_close(s->event_fd);
        (void) pthread_cond_destroy(&s->wake);
        (void) pthread_mutex_destroy(&s->lock);
        free(s->threads);
        free(s);
        return NULL;
}
